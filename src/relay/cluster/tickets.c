/* tickets.c - the cluster's TLS session ticket keys in Redis (tickets.h). */
#include "relay/cluster/tickets.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "common/tls.h"

static uv_timer_t timer;
static bool timer_on;
static struct tt_redisconn *conn;

/* The key of epoch e as Redis holds it, into m: 1 (found), 0 (none), -1 (Redis failed). */
static int get_key(struct tt_redisconn *rc, const char *name, uint8_t m[TT_TLS_TICKET_KEYLEN])
{
    redisReply *rep = tt_redisconn_cmd(rc, "GET %s", name);
    int found;
    if (rep == NULL)
        return -1;
    if (rep->type == REDIS_REPLY_STRING && rep->len == TT_TLS_TICKET_KEYLEN) {
        memcpy(m, rep->str, TT_TLS_TICKET_KEYLEN);
        found = 1;
    } else {
        /* nil; a value of another size (not ours) is not used */
        found = rep->type == REDIS_REPLY_ERROR ? -1 : 0;
    }
    if (rep->type == REDIS_REPLY_STRING)
        OPENSSL_cleanse(rep->str, rep->len);
    freeReplyObject(rep);
    return found;
}

void tt_cluster_tickets_refresh(struct tt_redisconn *rc, int64_t now_s)
{
    struct tt_tls_ticket_ring *ring = tt_tls_tickets();
    int64_t want[TT_TLS_TICKET_SLOTS];
    unsigned taken = 0;
    bool failed = false;

    if (ring->period_s == 0)
        return;
    int64_t cur = tt_tls_ticket_epoch(ring->period_s, now_s);
    size_t n = tt_tls_ticket_missing(ring, now_s, true, want);
    for (size_t i = 0; i < n && !failed; i++) {
        char name[96];
        uint8_t m[TT_TLS_TICKET_KEYLEN];
        snprintf(name, sizeof(name), TT_REDIS_PREFIX "tls:ticket:%llu:%lld",
                 (unsigned long long)ring->period_s, (long long)want[i]);
        int got = get_key(rc, name, m);
        if (got == 0 && want[i] >= cur) {
            /* none yet: ours, unless another node's SET NX came first (then we read theirs) */
            if (RAND_bytes(m, sizeof(m)) != 1) {
                ERR_clear_error();
                failed = true;
                break;
            }
            long long ttl = (long long)(3 * ring->period_s + 60);
            redisReply *rep =
                tt_redisconn_cmd(rc, "SET %s %b NX EX %lld", name, (const char *)m, sizeof(m), ttl);
            OPENSSL_cleanse(m, sizeof(m));
            if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
                failed = true;
            } else {
                got = get_key(rc, name, m);
            }
            if (rep != NULL)
                freeReplyObject(rep);
        }
        if (got < 0)
            failed = true;
        if (got == 1 && tt_tls_ticket_put(ring, want[i], m, now_s) == 0)
            taken++;
        OPENSSL_cleanse(m, sizeof(m));
    }
    tt_tls_tickets_note(taken, failed);
    if (failed)
        TT_LOG(TT_LOG_DEBUG, "tls: cluster ticket keys: Redis call failed, keeping the keys held");
}

static void on_timer(uv_timer_t *t)
{
    (void)t;
    tt_cluster_tickets_refresh(conn, (int64_t)time(NULL));
}

int tt_cluster_tickets_start(uv_loop_t *loop, struct tt_redisconn *rc)
{
    const struct tt_tls_ticket_ring *ring = tt_tls_tickets();
    if (ring->period_s == 0 || timer_on)
        return 0;
    conn = rc;
    tt_cluster_tickets_refresh(rc, (int64_t)time(NULL));
    uint64_t every = ring->period_s * 1000 / 4;
    if (every > TT_TICKETS_REFRESH_MAX_MS)
        every = TT_TICKETS_REFRESH_MAX_MS;
    if (every < TT_TICKETS_REFRESH_MIN_MS)
        every = TT_TICKETS_REFRESH_MIN_MS;
    int r = uv_timer_init(loop, &timer);
    if (r != 0)
        return r;
    timer_on = true;
    uv_timer_start(&timer, on_timer, every, every);
    uv_unref((uv_handle_t *)&timer);
    return 0;
}

void tt_cluster_tickets_stop(void)
{
    if (!timer_on)
        return;
    timer_on = false;
    uv_close((uv_handle_t *)&timer, NULL);
}
