/* respond.c - write-then-close of relay answers (respond.h). Each answer owns its socket, a
 * linger timer and a copy of the bytes; it is freed once both handles are closed. The list of
 * live answers is process-wide (the relay runs one loop on one thread). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "relay/http/respond.h"

struct answer {
    struct tt_conn *conn;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sh;
    bool closing;
    int open_handles;
    struct answer *prev, *next;
    size_t len;
    char data[];
};

static struct answer *answers;

void tt_respond_drop(struct tt_conn *conn)
{
    if (!tt_conn_is_closing(conn))
        tt_conn_close(conn, NULL);
}

static void on_handle_close(uv_handle_t *h)
{
    struct answer *a = h->data;
    if (--a->open_handles == 0)
        free(a);
}

static void finish(struct answer *a)
{
    if (a->closing)
        return;
    a->closing = true;
    if (a->prev)
        a->prev->next = a->next;
    else
        answers = a->next;
    if (a->next)
        a->next->prev = a->prev;
    tt_conn_close(a->conn, on_handle_close);
    uv_close((uv_handle_t *)&a->timer, on_handle_close);
}

static void on_timer(uv_timer_t *t)
{
    finish(t->data);
}

static void discard_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static char sink[4096];
    (void)h;
    (void)size;
    *buf = uv_buf_init(sink, sizeof(sink));
}

static void on_discard(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0)
        finish(s->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct answer *a = req->data;
    if (a->closing)
        return;
    if (status < 0 || tt_conn_read_start(a->conn, discard_alloc, on_discard) != 0)
        finish(a);
}

static void on_write(uv_write_t *req, int status)
{
    struct answer *a = req->data;
    if (a->closing)
        return;
    a->sh.data = a;
    if (status < 0 || tt_conn_shutdown(a->conn, &a->sh, on_shutdown) != 0)
        finish(a);
}

void tt_respond_close(struct tt_conn *conn, const void *data, size_t len)
{
    tt_conn_read_stop(conn);
    struct answer *a = malloc(sizeof(*a) + len);
    if (!a) {
        tt_respond_drop(conn);
        return;
    }
    memset(a, 0, sizeof(*a));
    a->conn = conn;
    a->len = len;
    memcpy(a->data, data, len);
    conn->tcp.data = a;
    uv_timer_init(conn->tcp.loop, &a->timer);
    a->timer.data = a;
    a->open_handles = 2;
    a->next = answers;
    if (answers)
        answers->prev = a;
    answers = a;
    uv_timer_start(&a->timer, on_timer, TT_RESPOND_LINGER_MS, 0);
    uv_buf_t b = uv_buf_init(a->data, (unsigned)len);
    a->wr.data = a;
    if (tt_conn_write(conn, &a->wr, &b, 1, on_write) != 0)
        finish(a);
}

void tt_respond_close_all(void)
{
    while (answers)
        finish(answers);
}
