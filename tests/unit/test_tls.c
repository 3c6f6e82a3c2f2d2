/* test_tls.c - src/common/tls.c and conn.c on a real libuv loop over loopback TCP: contexts
 * from PEM files (made here with OpenSSL's API: a self-signed certificate for localhost and
 * 127.0.0.1), a client and a server conn that handshake and echo a few MiB written in uneven
 * pieces, verification failures (unknown CA, wrong name) reported with their reason, a
 * session handed from one reader to another with decrypted bytes still pending, writes
 * cancelled by a close, and a relay and a device wsconn registering over TLS. Every test ends
 * with every handle closed and uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/conn.h"
#include "common/pipe.h"
#include "common/pool.h"
#include "common/tls.h"
#include "common/wsconn.h"
#include "tether_err.h"

#include "support_loop.h"

/* ---- certificates ----------------------------------------------------------------------- */

static char cert_path[64], key_path[64], other_cert_path[64];

/* Writes a self-signed certificate (CN=cn, subjectAltName san) and its key as PEM files. */
static void make_cert(const char *cn, const char *san, char *crt_out, char *key_out)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    FILE *f;
    int fd;

    assert_non_null(pk);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);

    strcpy(crt_out, "/tmp/tt-test-tls-XXXXXX");
    fd = mkstemp(crt_out);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    if (key_out != NULL) {
        strcpy(key_out, "/tmp/tt-test-tls-XXXXXX");
        fd = mkstemp(key_out);
        assert_true(fd >= 0);
        f = fdopen(fd, "w");
        assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
        fclose(f);
    }
    X509_free(x);
    EVP_PKEY_free(pk);
}

static int setup_certs(void **state)
{
    char other_key[64];
    (void)state;
    make_cert("localhost", "DNS:localhost,IP:127.0.0.1", cert_path, key_path);
    make_cert("other", "DNS:other.example", other_cert_path, other_key);
    unlink(other_key);
    return 0;
}

static int teardown_certs(void **state)
{
    (void)state;
    unlink(cert_path);
    unlink(key_path);
    unlink(other_cert_path);
    return 0;
}

/* ---- TLS contexts ----------------------------------------------------------------------- */

static struct tt_tls_ctx *server_ctx(void)
{
    struct tt_tls_ctx *ctx = NULL;
    char err[TT_ERRLEN];
    assert_int_equal(tt_tls_ctx_server(&ctx, cert_path, key_path, err), 0);
    return ctx;
}

static struct tt_tls_ctx *client_ctx(const char *ca, bool insecure)
{
    struct tt_tls_ctx *ctx = NULL;
    char err[TT_ERRLEN];
    assert_int_equal(tt_tls_ctx_client(&ctx, ca, insecure, err), 0);
    return ctx;
}

/* ---- a peer: reads into a growing buffer, echoes if asked ------------------------------- */

struct peer {
    struct tt_conn *c;
    uint8_t *in;
    size_t inlen, incap;
    size_t small;      /* > 0: alloc at most this much per read */
    size_t stop_after; /* > 0: stop reading once this much came */
    bool echo;
    bool eof;
    int err;           /* a read error, if any */
    int writes_done;   /* write callbacks with status 0 */
    int writes_failed; /* and with an error (the last one in last_write_err) */
    int last_write_err;
    bool shut;
    int hs_err;
    bool hs_done;
    char hs_msg[TT_ERRLEN];
    bool closed;
};

struct wreq {
    uv_write_t req;
    struct peer *p;
    size_t len;
    uint8_t data[];
};

static void peer_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    struct peer *p = h->data;
    size_t room;
    (void)sz;
    if (p->incap - p->inlen < 65536) {
        p->incap = p->incap ? 2 * p->incap + 65536 : 1 << 20;
        p->in = realloc(p->in, p->incap);
        assert_non_null(p->in);
    }
    room = p->incap - p->inlen;
    if (p->small > 0 && room > p->small)
        room = p->small;
    *buf = uv_buf_init((char *)p->in + p->inlen, (unsigned)room);
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    if (status == 0) {
        w->p->writes_done++;
    } else {
        w->p->writes_failed++;
        w->p->last_write_err = status;
    }
    free(w);
}

static int peer_write(struct peer *p, const uint8_t *data, size_t len)
{
    struct wreq *w = malloc(sizeof(*w) + len);
    uv_buf_t b;
    int r;
    assert_non_null(w);
    w->p = p;
    w->len = len;
    memcpy(w->data, data, len);
    b = uv_buf_init((char *)w->data, (unsigned)len);
    r = tt_conn_write(p->c, &w->req, &b, 1, on_written);
    if (r != 0)
        free(w);
    return r;
}

static void on_shut(uv_shutdown_t *req, int status)
{
    struct peer *p = req->data;
    (void)status;
    p->shut = true;
    free(req);
}

static void peer_shutdown(struct peer *p)
{
    uv_shutdown_t *req = malloc(sizeof(*req));
    req->data = p;
    assert_int_equal(tt_conn_shutdown(p->c, req, on_shut), 0);
}

static void peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct peer *p = s->data;
    (void)buf;
    if (nread > 0) {
        if (p->echo)
            assert_int_equal(peer_write(p, p->in + p->inlen, (size_t)nread), 0);
        p->inlen += (size_t)nread;
        if (p->stop_after > 0 && p->inlen >= p->stop_after)
            tt_conn_read_stop(p->c);
    } else if (nread == UV_EOF) {
        p->eof = true;
        if (p->echo)
            peer_shutdown(p);
    } else if (nread < 0) {
        p->err = (int)nread;
    }
}

static void on_handshake(struct tt_conn *c, int err, const char *msg, void *ud)
{
    struct peer *p = ud;
    (void)c;
    p->hs_done = true;
    p->hs_err = err;
    snprintf(p->hs_msg, sizeof(p->hs_msg), "%s", msg);
}

static void peer_closed(uv_handle_t *h)
{
    struct peer *p = h->data;
    p->closed = true;
}

static void peer_close(uv_loop_t *loop, struct peer *p)
{
    tt_conn_close(p->c, peer_closed);
    while (!p->closed)
        uv_run(loop, UV_RUN_ONCE);
    free(p->in);
}

/* A TLS pair: server side of b with the test certificate, client side of a dialing host with
 * client context cctx. Runs until the client's handshake callback. */
static void tls_pair(uv_loop_t *loop, struct peer *cl, struct peer *sv, struct tt_tls_ctx *cctx,
                     const char *host)
{
    struct tt_tls_ctx *sctx = server_ctx();
    struct tt_conn *a, *b;

    ut_make_pair(loop, &a, &b);
    cl->c = a;
    sv->c = b;
    a->tcp.data = cl;
    b->tcp.data = sv;
    assert_int_equal(tt_tls_accept(b, sctx), 0);
    /* The sessions hold their own references: the contexts may go at once. */
    tt_tls_ctx_free(sctx);
    assert_int_equal(tt_conn_read_start(b, peer_alloc, peer_read), 0);
    assert_int_equal(tt_tls_connect(a, cctx, host, NULL, 0, on_handshake, cl), 0);
    assert_false(cl->hs_done); /* never from inside tt_tls_connect */
    assert_int_equal(tt_conn_read_start(a, peer_alloc, peer_read), 0);
    while (!cl->hs_done)
        uv_run(loop, UV_RUN_ONCE);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_echo(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct peer cl = {0}, sv = {0};
    struct tt_tls_ctx *cctx = client_ctx(cert_path, false);
    char desc[96];
    size_t total = 3u << 20, off = 0, piece = 1;
    uint8_t *data = malloc(total);
    (void)state;

    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 11));
    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    sv.echo = true;
    tls_pair(&loop, &cl, &sv, cctx, "localhost");
    tt_tls_ctx_free(cctx);
    assert_int_equal(cl.hs_err, 0);
    assert_string_equal(tt_tls_error(cl.c), "");
    tt_tls_describe(cl.c, desc, sizeof(desc));
    assert_non_null(strstr(desc, "TLSv1.3"));
    /* Uneven pieces, several writes under way at once. */
    while (off < total) {
        size_t n = piece < total - off ? piece : total - off;
        int r = peer_write(&cl, data + off, n);
        if (r == UV_ENOBUFS) { /* TT_TLS_MAX_WRITES under way: let some complete */
            uv_run(&loop, UV_RUN_ONCE);
            continue;
        }
        assert_int_equal(r, 0);
        off += n;
        piece = piece * 3 + 1;
        if (piece > 200000)
            piece = 1;
    }
    peer_shutdown(&cl);
    while (!cl.eof || !sv.shut)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(sv.eof);
    assert_int_equal(cl.inlen, total);
    assert_memory_equal(cl.in, data, total);
    assert_int_equal(sv.inlen, total);
    assert_int_equal(cl.writes_failed, 0);
    assert_int_equal(cl.err, 0);
    assert_int_equal(sv.err, 0);
    /* Writing after our shutdown is refused, at once. */
    assert_int_equal(peer_write(&cl, data, 1), UV_EPIPE);
    peer_close(&loop, &cl);
    peer_close(&loop, &sv);
    ut_finish_loop(&loop, &guard);
    free(data);
}

static void expect_verify_failure(const char *ca, const char *host, const char *reason)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct peer cl = {0}, sv = {0};
    struct tt_tls_ctx *cctx = client_ctx(ca, false);

    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    tls_pair(&loop, &cl, &sv, cctx, host);
    tt_tls_ctx_free(cctx);
    assert_int_equal(cl.hs_err, TETHER_ERR_TLS);
    if (strstr(cl.hs_msg, reason) == NULL)
        fail_msg("handshake message '%s' does not say '%s'", cl.hs_msg, reason);
    assert_string_equal(tt_tls_error(cl.c), cl.hs_msg);
    /* The client's alert ends the server's input with an error. */
    while (sv.err == 0 && !sv.eof)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(sv.inlen, 0);
    peer_close(&loop, &cl);
    peer_close(&loop, &sv);
    ut_finish_loop(&loop, &guard);
}

/* The server reads the first 5 bytes of the ClientHello as plain bytes (the relay's TLS
 * listener does, to tell TLS from plain HTTP), then puts the session on with them: the
 * handshake takes them first and the rest from the socket. */
static void test_accept_with_bytes_read_first(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct peer cl = {0}, sv = {0};
    struct tt_tls_ctx *cctx = client_ctx(cert_path, false), *sctx = server_ctx();
    struct tt_conn *a, *b;
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    ut_make_pair(&loop, &a, &b);
    cl.c = a;
    sv.c = b;
    a->tcp.data = &cl;
    b->tcp.data = &sv;
    sv.small = 5;
    sv.stop_after = 5;
    assert_int_equal(tt_conn_read_start(b, peer_alloc, peer_read), 0);
    assert_int_equal(tt_tls_connect(a, cctx, "localhost", NULL, 0, on_handshake, &cl), 0);
    assert_int_equal(tt_conn_read_start(a, peer_alloc, peer_read), 0);
    while (sv.inlen < 5)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(sv.inlen, 5);
    assert_int_equal(sv.in[0], 0x16); /* a TLS handshake record */
    assert_int_equal(tt_tls_accept_pre(b, sctx, NULL, 1), TETHER_ERR_INVAL);
    assert_int_equal(tt_tls_accept_pre(b, sctx, sv.in, sv.inlen), 0);
    assert_int_equal(tt_tls_accept_pre(b, sctx, sv.in, sv.inlen), TETHER_ERR_STATE);
    tt_tls_ctx_free(sctx);
    sv.inlen = 0;
    sv.small = 0;
    sv.stop_after = 0;
    sv.echo = true;
    assert_int_equal(tt_conn_read_start(b, peer_alloc, peer_read), 0);
    while (!cl.hs_done)
        uv_run(&loop, UV_RUN_ONCE);
    tt_tls_ctx_free(cctx);
    assert_int_equal(cl.hs_err, 0);
    assert_int_equal(peer_write(&cl, (const uint8_t *)"hello", 5), 0);
    while (cl.inlen < 5 && cl.err == 0 && !cl.eof)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(cl.inlen, 5);
    assert_memory_equal(cl.in, "hello", 5);
    peer_close(&loop, &cl);
    peer_close(&loop, &sv);
    ut_finish_loop(&loop, &guard);
}

static void test_verify_failures(void **state)
{
    (void)state;
    /* No CA that knows the certificate (an unrelated one instead). */
    expect_verify_failure(other_cert_path, "localhost", "certificate verify failed");
    /* The right CA, the wrong name. */
    expect_verify_failure(cert_path, "relay.example.com", "hostname mismatch");
    /* An IP address is checked against the certificate's IP entries. */
    expect_verify_failure(cert_path, "127.0.0.2", "certificate verify failed");
}

static void test_insecure_and_ip(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct peer cl = {0}, sv = {0};
    struct tt_tls_ctx *cctx = client_ctx(NULL, true);
    (void)state;

    /* No verification at all: an unknown certificate and a name it does not carry. */
    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    tls_pair(&loop, &cl, &sv, cctx, "anything.example");
    tt_tls_ctx_free(cctx);
    assert_int_equal(cl.hs_err, 0);
    peer_close(&loop, &cl);
    peer_close(&loop, &sv);
    ut_finish_loop(&loop, &guard);

    /* Verified against an IP address in the certificate. */
    memset(&cl, 0, sizeof(cl));
    memset(&sv, 0, sizeof(sv));
    cctx = client_ctx(cert_path, false);
    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    tls_pair(&loop, &cl, &sv, cctx, "127.0.0.1");
    tt_tls_ctx_free(cctx);
    assert_int_equal(cl.hs_err, 0);
    peer_close(&loop, &cl);
    peer_close(&loop, &sv);
    ut_finish_loop(&loop, &guard);
}

/* A reader takes a few bytes and stops (as the relay's head reader does); the rest, already
 * decrypted or still ciphertext, reaches the next owner when it starts reading. */
static void test_handover_keeps_pending_bytes(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct peer cl = {0}, sv = {0}, next = {0};
    struct tt_tls_ctx *cctx = client_ctx(cert_path, false);
    size_t total = 300000;
    uint8_t *data = malloc(total);
    (void)state;

    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)(i % 251);
    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    sv.small = 100;
    sv.stop_after = 100;
    tls_pair(&loop, &cl, &sv, cctx, "localhost");
    tt_tls_ctx_free(cctx);
    assert_int_equal(peer_write(&cl, data, total), 0);
    peer_shutdown(&cl);
    while (sv.inlen < 100 || !cl.shut)
        uv_run(&loop, UV_RUN_ONCE);
    /* Let the rest arrive at the socket while nobody reads. */
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(sv.inlen, 100);
    /* Hand over. */
    next.c = sv.c;
    sv.c->tcp.data = &next;
    assert_int_equal(tt_conn_read_start(next.c, peer_alloc, peer_read), 0);
    assert_int_equal(next.inlen, 0); /* never from inside read_start */
    while (!next.eof)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(next.inlen, total - 100);
    assert_memory_equal(sv.in, data, 100);
    assert_memory_equal(next.in, data + 100, total - 100);
    free(sv.in);
    sv.in = NULL;
    peer_close(&loop, &cl);
    peer_close(&loop, &next);
    ut_finish_loop(&loop, &guard);
    free(data);
}

/* Writes under way when the conn closes get UV_ECANCELED before the close callback. */
static void test_close_cancels_writes(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct peer cl = {0}, sv = {0};
    struct tt_tls_ctx *cctx = client_ctx(cert_path, false);
    size_t big = 8u << 20;
    uint8_t *data = calloc(1, big);
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    tls_pair(&loop, &cl, &sv, cctx, "localhost");
    tt_tls_ctx_free(cctx);
    tt_conn_read_stop(sv.c); /* nobody drains: the writes stay under way */
    for (int i = 0; i < 4; i++)
        assert_int_equal(peer_write(&cl, data, big / 4), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(cl.writes_done < 4);
    tt_conn_close(cl.c, peer_closed);
    while (!cl.closed)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(cl.writes_done + cl.writes_failed, 4);
    assert_int_equal(cl.last_write_err, UV_ECANCELED);
    free(cl.in);
    peer_close(&loop, &sv);
    ut_finish_loop(&loop, &guard);
    free(data);
}

static void test_context_errors(void **state)
{
    struct tt_tls_ctx *ctx = NULL;
    char err[TT_ERRLEN];
    (void)state;

    assert_int_equal(tt_tls_ctx_server(&ctx, "/nonexistent/cert.pem", key_path, err),
                     TETHER_ERR_CONFIG);
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));
    /* A key for another certificate. */
    assert_int_equal(tt_tls_ctx_server(&ctx, other_cert_path, key_path, err), TETHER_ERR_CONFIG);
    assert_non_null(strstr(err, "does not match"));
    /* A certificate where the key should be. */
    assert_int_equal(tt_tls_ctx_server(&ctx, cert_path, cert_path, err), TETHER_ERR_CONFIG);
    assert_non_null(strstr(err, "not a PEM private key"));
    assert_int_equal(tt_tls_ctx_client(&ctx, key_path, false, err), TETHER_ERR_CONFIG);
    assert_non_null(strstr(err, "CA file"));
    assert_int_equal(tt_tls_ctx_server(&ctx, cert_path, key_path, err), 0);
    tt_tls_ctx_describe(ctx, err, sizeof(err));
    assert_non_null(strstr(err, "CN=localhost"));
    assert_non_null(strstr(err, "serial=1092")); /* 4242 */
    tt_tls_ctx_free(ctx);
    tt_tls_ctx_free(NULL);
}

/* ---- where a client's CAs come from (pure) ------------------------------------------------- */

/* The paths that exist, for tt_tls_pick_store: "f:PATH" a file, "d:PATH" a directory. */
static bool fake_exists(const char *path, bool want_dir, void *ud)
{
    for (const char *const *p = ud; *p != NULL; p++)
        if ((*p)[0] == (want_dir ? 'd' : 'f') && strcmp(*p + 2, path) == 0)
            return true;
    return false;
}

static struct tt_tls_store pick_from(const char *file, const char *dir, const char *const *present)
{
    static const char *const android[] = {TT_TLS_ANDROID_CA_DIRS, NULL};
    struct tt_tls_store st;
    tt_tls_pick_store(file, dir, android, fake_exists, (void *)present, &st);
    return st;
}

static struct tt_tls_store pick(const char *const *present)
{
    return pick_from("/usr/lib/ssl/cert.pem", "/usr/lib/ssl/certs", present);
}

static void test_pick_store(void **state)
{
    const char *const debian[] = {"f:/usr/lib/ssl/cert.pem", "d:/usr/lib/ssl/certs",
                                  "d:/system/etc/security/cacerts", NULL};
    const char *const dir_only[] = {"d:/usr/lib/ssl/certs", NULL};
    const char *const file_only[] = {"f:/usr/lib/ssl/cert.pem", NULL};
    const char *const android_old[] = {"d:/system/etc/security/cacerts", NULL};
    const char *const android_14[] = {"d:/system/etc/security/cacerts",
                                      "d:/apex/com.android.conscrypt/cacerts", NULL};
    /* a file where a directory should be, and the reverse, do not count */
    const char *const wrong_kinds[] = {"d:/usr/lib/ssl/cert.pem", "f:/usr/lib/ssl/certs",
                                       "f:/system/etc/security/cacerts", NULL};
    const char *const nothing[] = {NULL};
    const char *const env_dirs[] = {"d:/opt/certs", "d:/system/etc/security/cacerts", NULL};
    struct tt_tls_store st;
    (void)state;

    st = pick(debian);
    assert_int_equal(st.kind, TT_TLS_STORE_SYSTEM);
    assert_null(st.dir);
    assert_int_equal(pick(dir_only).kind, TT_TLS_STORE_SYSTEM);
    assert_int_equal(pick(file_only).kind, TT_TLS_STORE_SYSTEM);

    st = pick(android_old);
    assert_int_equal(st.kind, TT_TLS_STORE_ANDROID);
    assert_string_equal(st.dir, "/system/etc/security/cacerts");
    st = pick(android_14); /* the updatable store first */
    assert_int_equal(st.kind, TT_TLS_STORE_ANDROID);
    assert_string_equal(st.dir, "/apex/com.android.conscrypt/cacerts");

    st = pick(wrong_kinds);
    assert_int_equal(st.kind, TT_TLS_STORE_NONE);
    assert_null(st.dir);
    assert_int_equal(pick(nothing).kind, TT_TLS_STORE_NONE);
    /* no Android list at all, no system paths */
    tt_tls_pick_store(NULL, NULL, NULL, fake_exists, (void *)nothing, &st);
    assert_int_equal(st.kind, TT_TLS_STORE_NONE);

    /* SSL_CERT_DIR's list: any of its directories counts; empty entries are skipped */
    assert_int_equal(pick_from(NULL, "/nope:/opt/certs", env_dirs).kind, TT_TLS_STORE_SYSTEM);
    assert_int_equal(pick_from("", "::/opt/certs:", env_dirs).kind, TT_TLS_STORE_SYSTEM);
    /* a variable naming what does not exist (as on a phone) does not hide Android's store */
    st = pick_from("/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs:/nope", env_dirs);
    assert_int_equal(st.kind, TT_TLS_STORE_ANDROID);
    assert_string_equal(st.dir, "/system/etc/security/cacerts");
}

/* ---- a relay and a device wsconn over TLS ----------------------------------------------- */

struct world {
    struct tt_wsconn *relay, *device;
    bool welcomed;
    int closed;
};

static int relay_on_hello(struct tt_session *s, const struct tt_hello *m, void *ud)
{
    struct world *w = ud;
    struct tt_welcome wel;
    uint8_t buf[512];
    memset(&wel, 0, sizeof(wel));
    wel.label.p = (const uint8_t *)"abcdefgh";
    wel.label.len = 8;
    wel.nservices = m->nservices;
    tt_ssize n = tt_session_accept(s, &wel, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(tt_wsconn_send_frame(w->relay, buf, (size_t)n), 0);
    return 0;
}

static int device_on_welcome(struct tt_session *s, const struct tt_welcome *m, void *ud)
{
    struct world *w = ud;
    (void)s;
    assert_int_equal(m->label.len, 8);
    w->welcomed = true;
    return 0;
}

static void ws_closed(struct tt_wsconn *c, int err, const char *reason, void *ud)
{
    struct world *w = ud;
    (void)c;
    (void)err;
    (void)reason;
    w->closed++;
}

static void test_wsconn_over_tls(void **state)
{
    uv_loop_t loop;
    uv_timer_t guard;
    struct peer cl = {0}, sv = {0};
    struct world w = {0};
    struct tt_tls_ctx *cctx = client_ctx(cert_path, false);
    struct tt_session_callbacks rcb, dcb;
    struct tt_wsconn_config rc = {0}, dc = {0};
    static const struct tt_wsconn_callbacks wcb = {ws_closed};
    struct tt_hello h;
    uint8_t buf[512];
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    ut_start_guard(&loop, &guard);
    tls_pair(&loop, &cl, &sv, cctx, "localhost");
    tt_tls_ctx_free(cctx);
    assert_int_equal(cl.hs_err, 0);
    tt_conn_read_stop(cl.c);
    tt_conn_read_stop(sv.c);
    memset(&rcb, 0, sizeof(rcb));
    memset(&dcb, 0, sizeof(dcb));
    tt_pipe_session_callbacks(&rcb);
    tt_pipe_session_callbacks(&dcb);
    rcb.on_hello = relay_on_hello;
    dcb.on_welcome = device_on_welcome;
    rc.session.role = TT_ROLE_RELAY;
    rc.session.window = 65536;
    rc.session.max_streams = 4;
    rc.session_cb = &rcb;
    dc = rc;
    dc.client = true;
    dc.session.role = TT_ROLE_DEVICE;
    dc.session_cb = &dcb;
    assert_int_equal(tt_wsconn_new(&w.relay, &loop, sv.c, NULL, 0, &rc, &wcb, &w), 0);
    assert_int_equal(tt_wsconn_new(&w.device, &loop, cl.c, NULL, 0, &dc, &wcb, &w), 0);
    memset(&h, 0, sizeof(h));
    h.name.p = (const uint8_t *)"dev1";
    h.name.len = 4;
    h.token.p = (const uint8_t *)"secret";
    h.token.len = 6;
    tt_ssize n = tt_session_hello(tt_wsconn_session(w.device), &h, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(tt_wsconn_send_frame(w.device, buf, (size_t)n), 0);
    while (!w.welcomed)
        uv_run(&loop, UV_RUN_ONCE);
    /* An orderly close over TLS: close frames, close_notify, EOF both ways. */
    tt_wsconn_close(w.relay, TT_GOAWAY_SHUTDOWN, 1001, 0, "test over");
    while (w.closed < 2)
        uv_run(&loop, UV_RUN_ONCE);
    free(cl.in);
    free(sv.in);
    ut_finish_loop(&loop, &guard);
}

/* ---- ticket key ring (pure) --------------------------------------------------------------- */

static void key_of(uint8_t m[TT_TLS_TICKET_KEYLEN], uint8_t v)
{
    memset(m, v, TT_TLS_TICKET_KEYLEN);
}

static void test_ticket_epochs(void **state)
{
    (void)state;
    assert_int_equal(tt_tls_ticket_epoch(10, 0), 0);
    assert_int_equal(tt_tls_ticket_epoch(10, 9), 0);
    assert_int_equal(tt_tls_ticket_epoch(10, 10), 1);
    assert_int_equal(tt_tls_ticket_epoch(10, -1), -1);
    assert_int_equal(tt_tls_ticket_epoch(43200, 1765000000), 1765000000 / 43200);
}

static void test_ticket_ring_rotation(void **state)
{
    struct tt_tls_ticket_ring ring;
    uint8_t m[TT_TLS_TICKET_KEYLEN];
    int64_t want[TT_TLS_TICKET_SLOTS];
    const struct tt_tls_ticket_key *k = NULL;
    (void)state;

    memset(&ring, 0, sizeof(ring));
    ring.period_s = 100;
    /* at t=1050 (epoch 10) an empty ring lacks 9, 10, 11; a lone relay wants 10 and 11 only */
    assert_int_equal(tt_tls_ticket_missing(&ring, 1050, true, want), 3);
    assert_int_equal(want[0], 9);
    assert_int_equal(want[2], 11);
    assert_int_equal(tt_tls_ticket_missing(&ring, 1050, false, want), 2);
    assert_int_equal(want[0], 10);
    assert_null(tt_tls_ticket_for_issue(&ring, 1050));
    /* outside E-1..E+1: refused */
    key_of(m, 8);
    assert_int_equal(tt_tls_ticket_put(&ring, 8, m, 1050), -1);
    assert_int_equal(tt_tls_ticket_put(&ring, 12, m, 1050), -1);
    key_of(m, 10);
    assert_int_equal(tt_tls_ticket_put(&ring, 10, m, 1050), 0);
    key_of(m, 11);
    assert_int_equal(tt_tls_ticket_put(&ring, 11, m, 1050), 0);
    assert_int_equal(tt_tls_ticket_missing(&ring, 1050, false, want), 0);
    /* epoch 10 issues; its key opens (1), 11's opens and renews (2), an unknown name is 0 */
    k = tt_tls_ticket_for_issue(&ring, 1050);
    assert_non_null(k);
    assert_int_equal(k->epoch, 10);
    uint8_t name[TT_TLS_TICKET_NAMELEN];
    memset(name, 10, sizeof(name));
    assert_int_equal(tt_tls_ticket_find(&ring, name, 1050, &k), 1);
    assert_int_equal(k->epoch, 10);
    memset(name, 11, sizeof(name));
    assert_int_equal(tt_tls_ticket_find(&ring, name, 1050, &k), 2);
    memset(name, 99, sizeof(name));
    assert_int_equal(tt_tls_ticket_find(&ring, name, 1050, &k), 0);
    /* at epoch 11: 11 issues, 10 still opens (renewed), 12 is wanted */
    assert_int_equal(tt_tls_ticket_for_issue(&ring, 1150)->epoch, 11);
    memset(name, 10, sizeof(name));
    assert_int_equal(tt_tls_ticket_find(&ring, name, 1150, &k), 2);
    assert_int_equal(tt_tls_ticket_missing(&ring, 1150, false, want), 1);
    assert_int_equal(want[0], 12);
    /* at epoch 12 without 12's key: 11 issues (the newest held), 10 is rotated out */
    assert_int_equal(tt_tls_ticket_for_issue(&ring, 1250)->epoch, 11);
    assert_int_equal(tt_tls_ticket_find(&ring, name, 1250, &k), 0);
    /* 13's key replaces 10's slot; 10's tickets stay refused */
    key_of(m, 13);
    assert_int_equal(tt_tls_ticket_put(&ring, 13, m, 1250), 0);
    assert_int_equal(tt_tls_ticket_find(&ring, name, 1250, &k), 0);
    memset(name, 13, sizeof(name));
    assert_int_equal(tt_tls_ticket_find(&ring, name, 1250, &k), 2);
    /* tickets off: nothing wanted, nothing issued */
    ring.period_s = 0;
    assert_int_equal(tt_tls_ticket_missing(&ring, 1250, true, want), 0);
    assert_null(tt_tls_ticket_for_issue(&ring, 1250));
    assert_int_equal(tt_tls_ticket_put(&ring, 12, m, 1250), -1);
}

static void test_ticket_metrics_text(void **state)
{
    char buf[4096], small[200];
    (void)state;
    size_t n = tt_tls_metrics(buf, sizeof(buf));
    assert_true(n > 0 && n == strlen(buf));
    assert_non_null(strstr(buf, "tether_tls_handshakes_total{kind=\"resumed\"} "));
    n = tt_tls_metrics(small, sizeof(small));
    assert_true(n < sizeof(small) && n == strlen(small));
    assert_true(n == 0 || small[n - 1] == '\n');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_accept_with_bytes_read_first),
        cmocka_unit_test(test_verify_failures),
        cmocka_unit_test(test_insecure_and_ip),
        cmocka_unit_test(test_handover_keeps_pending_bytes),
        cmocka_unit_test(test_close_cancels_writes),
        cmocka_unit_test(test_context_errors),
        cmocka_unit_test(test_pick_store),
        cmocka_unit_test(test_wsconn_over_tls),
        cmocka_unit_test(test_ticket_epochs),
        cmocka_unit_test(test_ticket_ring_rotation),
        cmocka_unit_test(test_ticket_metrics_text),
    };
    int rc = cmocka_run_group_tests(tests, setup_certs, teardown_certs);
    tt_chunk_pool_drain();
    return rc;
}
