/* tls.c - TLS sessions on tt_conn (tls.h). OpenSSL reads and writes through a BIO of ours:
 * reading takes ciphertext from the pooled chunk the socket was read into (in), writing appends
 * records to a chunk queue (out) that one uv_write at a time sends. SSL_read decrypts straight
 * into the owner's buffer. The socket is read only while the handshake runs or the owner reads
 * and OpenSSL has taken everything read so far, so a reader that stops holds back the peer
 * through TCP, as on a plain conn. Owner callbacks are never called from inside the owner's
 * own calls: what is due then (data left over at a read start, a failed write) is delivered
 * from a uv_idle handle.
 *
 * Session tickets: the server side's ticket key callback (ticket_cb) takes keys from the
 * process's ring (tls.h); the client side keeps the newest session of each client context. */
#include "common/tls.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(_WIN32)
/* Before OpenSSL's headers, which undefine wincrypt.h's X509_NAME and friends. */
#include <windows.h>
#include <wincrypt.h>
#endif

#if !defined(_WIN32)
#include <dirent.h>
#include <sys/stat.h>
#endif

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/pool.h"
#include "tether_err.h"

#define TLS_MAX_BUFS 64
/* Cap on the ciphertext queue. It holds the records of the owner's writes under way (at most
 * TT_TLS_MAX_WRITES; wsconn and pipe have one at a time, of at most 64 pooled chunks: 4 MiB) and
 * the few records OpenSSL writes by itself (handshake flight, tickets, a key update answer,
 * alerts). Past it (four times that) a record fails, and with it the session. */
#define TLS_OUT_MAX (16u * 1024u * 1024u)
/* What a read asks the owner's alloc callback for (a pool chunk, as libuv would suggest). */
#define TLS_READ_SIZE 65536

struct tt_tls_ctx {
    SSL_CTX *ssl; /* its app data points back here until tt_tls_ctx_free */
    bool server;
    /* client: the newest session a server gave, and the host it was for (offered to that host
     * only); memory only */
    SSL_SESSION *session;
    char *session_host;
};

struct pending_write {
    uv_write_t *req; /* the owner's */
    uint64_t mark;   /* done once this many ciphertext bytes are written */
};

/* conn.h's calls on a conn with a TLS session (c->filter), at the end of this file. */
static const struct tt_conn_filter tls_filter;

struct tt_tls {
    struct tt_conn *conn;
    SSL *ssl;       /* owns the BIO */
    uv_idle_t idle; /* deferred deliveries */
    bool server;
    bool handshaking; /* until the handshake is over (done or failed) */
    bool failed;      /* the session broke (err says why): no more records either way */
    bool closing;     /* tt_conn_close was called */
    bool reading;     /* the owner reads */
    bool tcp_reading; /* the socket is being read */
    bool tcp_eof;     /* the socket's EOF was read */
    int tcp_err;      /* a socket read error (libuv code), 0 if none */
    int end;          /* how the plaintext input ends once drained: UV_EOF or an error */
    bool end_told;    /* the owner has had it */
    uv_alloc_cb alloc_cb;
    uv_read_cb read_cb;
    tt_tls_handshake_cb hs_cb;
    void *hs_ud;

    struct tt_chunk *in; /* ciphertext read; [off, len) not yet taken by OpenSSL */

    struct tt_chunkq out; /* ciphertext to send */
    size_t inflight;      /* bytes of out in the uv_write under way (0: none) */
    uint64_t queued;      /* ciphertext bytes queued in total */
    uint64_t written;     /* and written */
    int write_err;        /* the socket failed a write: every write now fails with it */
    uv_write_t wreq;
    struct pending_write w[TT_TLS_MAX_WRITES]; /* a ring, oldest at whead */
    unsigned whead, wn;
    uv_shutdown_t *shut_req; /* the owner's, until its callback */
    int shut_err;            /* a shutdown that failed to start: told from the idle handle */
    bool shut_started;       /* uv_shutdown issued */
    uv_shutdown_t sreq;
    int nhandles;

    char *err;  /* why the session failed (malloc'd when it fails; NULL: none) */
    char *host; /* client: the host dialed (its session is kept for it) */
};

static struct tt_tls_ticket_ring ticket_ring = {.period_s = TT_TLS_TICKET_DEFAULT_PERIOD_S};
static struct tt_tls_stats stats;

static void pump(struct tt_tls *t);
static void flush_out(struct tt_tls *t);
static void on_idle(uv_idle_t *h);

/* ---- the BIO ---------------------------------------------------------------------------- */

static bool input_left(const struct tt_tls *t)
{
    return t->in != NULL && t->in->off < t->in->len;
}

static int bio_write(BIO *b, const char *data, int len)
{
    struct tt_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (tt_chunkq_append(&t->out, (const uint8_t *)data, (size_t)len) != 0)
        return -1; /* out of memory or over the cap: OpenSSL fails the record and the session */
    t->queued += (uint64_t)len;
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    struct tt_tls *t = BIO_get_data(b);
    size_t n;
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (!input_left(t)) {
        if (t->tcp_eof || t->tcp_err != 0)
            return 0; /* the end of the socket's input */
        BIO_set_retry_read(b);
        return -1;
    }
    n = t->in->len - t->in->off;
    if (n > (size_t)len)
        n = (size_t)len;
    memcpy(out, t->in->data + t->in->off, n);
    t->in->off += n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;
static uv_once_t bio_once = UV_ONCE_INIT;

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tether");
    if (m == NULL)
        return;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    bio_method = m;
}

/* ---- session tickets -------------------------------------------------------------------- */

int64_t tt_tls_ticket_epoch(uint64_t period_s, int64_t now_s)
{
    int64_t p = (int64_t)period_s;
    int64_t q = now_s / p;
    return (now_s % p != 0 && now_s < 0) ? q - 1 : q;
}

static const struct tt_tls_ticket_key *slot_for(const struct tt_tls_ticket_ring *ring,
                                                int64_t epoch)
{
    int64_t i = epoch % TT_TLS_TICKET_SLOTS;
    const struct tt_tls_ticket_key *k = &ring->slot[i < 0 ? i + TT_TLS_TICKET_SLOTS : i];
    return k->set && k->epoch == epoch ? k : NULL;
}

size_t tt_tls_ticket_missing(const struct tt_tls_ticket_ring *ring, int64_t now_s, bool want_old,
                             int64_t out[TT_TLS_TICKET_SLOTS])
{
    size_t n = 0;
    if (ring->period_s == 0)
        return 0;
    int64_t e = tt_tls_ticket_epoch(ring->period_s, now_s);
    for (int64_t d = want_old ? -1 : 0; d <= 1; d++)
        if (slot_for(ring, e + d) == NULL)
            out[n++] = e + d;
    return n;
}

int tt_tls_ticket_put(struct tt_tls_ticket_ring *ring, int64_t epoch,
                      const uint8_t material[TT_TLS_TICKET_KEYLEN], int64_t now_s)
{
    if (ring->period_s == 0)
        return -1;
    int64_t e = tt_tls_ticket_epoch(ring->period_s, now_s);
    if (epoch < e - 1 || epoch > e + 1)
        return -1;
    int64_t i = epoch % TT_TLS_TICKET_SLOTS;
    struct tt_tls_ticket_key *k = &ring->slot[i < 0 ? i + TT_TLS_TICKET_SLOTS : i];
    OPENSSL_cleanse(k->material, sizeof(k->material));
    k->set = true;
    k->epoch = epoch;
    memcpy(k->material, material, TT_TLS_TICKET_KEYLEN);
    return 0;
}

const struct tt_tls_ticket_key *tt_tls_ticket_for_issue(const struct tt_tls_ticket_ring *ring,
                                                        int64_t now_s)
{
    if (ring->period_s == 0)
        return NULL;
    int64_t e = tt_tls_ticket_epoch(ring->period_s, now_s);
    const struct tt_tls_ticket_key *k = slot_for(ring, e);
    if (k == NULL)
        k = slot_for(ring, e - 1);
    if (k == NULL)
        k = slot_for(ring, e + 1);
    return k;
}

int tt_tls_ticket_find(const struct tt_tls_ticket_ring *ring,
                       const uint8_t name[TT_TLS_TICKET_NAMELEN], int64_t now_s,
                       const struct tt_tls_ticket_key **out)
{
    const struct tt_tls_ticket_key *found = NULL;
    if (ring->period_s == 0)
        return 0;
    int64_t e = tt_tls_ticket_epoch(ring->period_s, now_s);
    for (int64_t d = -1; d <= 1; d++) {
        const struct tt_tls_ticket_key *k = slot_for(ring, e + d);
        if (k != NULL && CRYPTO_memcmp(k->material, name, TT_TLS_TICKET_NAMELEN) == 0)
            found = k;
    }
    if (found == NULL)
        return 0;
    *out = found;
    return found == tt_tls_ticket_for_issue(ring, now_s) ? 1 : 2;
}

struct tt_tls_ticket_ring *tt_tls_tickets(void)
{
    return &ticket_ring;
}

void tt_tls_tickets_configure(uint64_t period_s, bool external)
{
    OPENSSL_cleanse(&ticket_ring, sizeof(ticket_ring)); /* zeroes it, keys included */
    ticket_ring.period_s = period_s;
    ticket_ring.external = external;
}

void tt_tls_stats_get(struct tt_tls_stats *out)
{
    *out = stats;
}

void tt_tls_tickets_note(unsigned keys_taken, bool failed)
{
    stats.keys_shared += keys_taken;
    stats.share_failures += failed ? 1 : 0;
}

size_t tt_tls_metrics(char *out, size_t outlen)
{
    int n = snprintf(
        out, outlen,
        "# HELP tether_tls_handshakes_total TLS handshakes completed on --tls-listen ports: "
        "full, or resumed from a session ticket (no certificate, no signature).\n"
        "# TYPE tether_tls_handshakes_total counter\n"
        "tether_tls_handshakes_total{kind=\"full\"} %llu\n"
        "tether_tls_handshakes_total{kind=\"resumed\"} %llu\n"
        "# HELP tether_tls_ticket_unknown_total Session tickets offered under a key that is "
        "unknown or rotated out (--tls-ticket-rotate): a full handshake followed.\n"
        "# TYPE tether_tls_ticket_unknown_total counter\n"
        "tether_tls_ticket_unknown_total %llu\n"
        "# HELP tether_tls_ticket_keys_total Ticket keys made here from the CSPRNG, or taken "
        "from the cluster's Redis.\n"
        "# TYPE tether_tls_ticket_keys_total counter\n"
        "tether_tls_ticket_keys_total{source=\"made\"} %llu\n"
        "tether_tls_ticket_keys_total{source=\"shared\"} %llu\n"
        "# HELP tether_tls_ticket_key_failures_total Look-ups of the cluster's ticket keys in "
        "Redis that failed (the keys held are used meanwhile).\n"
        "# TYPE tether_tls_ticket_key_failures_total counter\n"
        "tether_tls_ticket_key_failures_total %llu\n",
        (unsigned long long)stats.full, (unsigned long long)stats.resumed,
        (unsigned long long)stats.ticket_unknown, (unsigned long long)stats.keys_made,
        (unsigned long long)stats.keys_shared, (unsigned long long)stats.share_failures);
    if (n < 0 || outlen == 0)
        return 0;
    if ((size_t)n < outlen)
        return (size_t)n;
    /* cut at the last whole line */
    size_t len = outlen - 1;
    while (len > 0 && out[len - 1] != '\n')
        len--;
    out[len] = '\0';
    return len;
}

/* A lone relay makes the keys it lacks for E and E+1 (so that E+1's is there at the turn). */
static void make_missing_keys(int64_t now_s)
{
    int64_t want[TT_TLS_TICKET_SLOTS];
    if (ticket_ring.external)
        return;
    size_t n = tt_tls_ticket_missing(&ticket_ring, now_s, false, want);
    for (size_t i = 0; i < n; i++) {
        uint8_t m[TT_TLS_TICKET_KEYLEN];
        if (RAND_bytes(m, sizeof(m)) != 1) {
            ERR_clear_error();
            return;
        }
        if (tt_tls_ticket_put(&ticket_ring, want[i], m, now_s) == 0)
            stats.keys_made++;
        OPENSSL_cleanse(m, sizeof(m));
    }
}

/* OpenSSL's ticket key callback: enc 1 sets up a new ticket's name, IV, cipher and MAC; enc 0
 * finds the key of a ticket offered (0: unknown, a full handshake follows). */
static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char iv[16], EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    const struct tt_tls_ticket_key *k = NULL;
    int64_t now = (int64_t)time(NULL);
    int rc;

    if (enc) {
        make_missing_keys(now);
        k = tt_tls_ticket_for_issue(&ticket_ring, now);
        if (k == NULL)
            return 0;                /* no key (the cluster's are not known yet): no ticket */
        if (RAND_bytes(iv, 16) != 1) /* AES-CBC: a 16-byte IV, fresh per ticket */
            return -1;
        memcpy(name, k->material, TT_TLS_TICKET_NAMELEN);
        rc = 1;
    } else {
        rc = tt_tls_ticket_find(&ticket_ring, name, now, &k);
        if (rc == 0) {
            stats.ticket_unknown++;
            return 0;
        }
    }
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(
        OSSL_MAC_PARAM_KEY, (void *)(k->material + TT_TLS_TICKET_NAMELEN + 32), 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    const unsigned char *key = k->material + TT_TLS_TICKET_NAMELEN;
    int ok = enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key, iv)
                 : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key, iv);
    if (ok != 1)
        return -1;
    /* TLS 1.3 clients use a ticket once (OpenSSL's drop it after a resumption): a resumed
     * session gets a new ticket, or the next reconnection would be a full handshake again. */
    return !enc && SSL_version(ssl) >= TLS1_3_VERSION ? 2 : rc;
}

/* ---- contexts --------------------------------------------------------------------------- */

/* The reason of OpenSSL's last queued error, or fallback. Empties the queue. */
static const char *ssl_reason(const char *fallback)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    const char *r = last ? ERR_reason_error_string(last) : NULL;
    return r ? r : fallback;
}

/* Checks that path can be opened for reading (OpenSSL's own message for a missing file is
 * "system lib"). */
static int readable(const char *path, const char *what, char err[TT_ERRLEN])
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        tt_errf(err, "cannot read %s %.200s: %s", what, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    /* HTTP/1.1 only (WebSocket upgrades and the proxied requests need it). */
    for (unsigned i = 0; i < inlen;) {
        unsigned n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *new_ssl_ctx(bool server)
{
    SSL_CTX *s = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (s == NULL)
        return NULL;
    if (SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(s);
        return NULL;
    }
    uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    opts |= SSL_OP_IGNORE_UNEXPECTED_EOF; /* a TCP EOF without close_notify is just EOF */
#endif
    if (server)
        opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    SSL_CTX_set_options(s, opts);
    /* Idle connections give their record buffers back. */
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    return s;
}

int tt_tls_ctx_server(struct tt_tls_ctx **out, const char *cert_file, const char *key_file,
                      char err[TT_ERRLEN])
{
    struct tt_tls_ctx *ctx;

    if (readable(cert_file, "TLS certificate", err) != 0 || readable(key_file, "TLS key", err) != 0)
        return TETHER_ERR_CONFIG;
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL || (ctx->ssl = new_ssl_ctx(true)) == NULL) {
        free(ctx);
        tt_errf(err, "cannot set up TLS: %s", ssl_reason("out of memory"));
        return TETHER_ERR_NOMEM;
    }
    ctx->server = true;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx->ssl, cert_file) != 1) {
        tt_errf(err, "cannot load TLS certificate %.200s: not a PEM certificate chain (%s)",
                cert_file, ssl_reason("unknown error"));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx->ssl, key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            tt_errf(err, "TLS key %.200s does not match certificate %.200s", key_file, cert_file);
        } else {
            tt_errf(err, "cannot load TLS key %.200s: not a PEM private key (%s)", key_file,
                    ssl_reason("unknown error"));
        }
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx->ssl) != 1) {
        ERR_clear_error();
        tt_errf(err, "TLS key %.200s does not match certificate %.200s", key_file, cert_file);
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(ctx->ssl, alpn_select, NULL);
    /* No session cache: a session lives in the ticket the client holds, so an idle connection
     * (or a TLS 1.2 one that ended) leaves nothing behind here. One ticket per full handshake,
     * under the ring's keys, valid as long as its key is accepted (two periods at most). */
    SSL_CTX_set_session_cache_mode(ctx->ssl, SSL_SESS_CACHE_OFF);
    if (ticket_ring.period_s > 0) {
        SSL_CTX_set_num_tickets(ctx->ssl, 1);
        /* the lifetime hint: two periods, plus one for a node whose clock is ahead */
        SSL_CTX_set_timeout(ctx->ssl, (long)(3 * ticket_ring.period_s));
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx->ssl, ticket_cb);
    } else {
        SSL_CTX_set_num_tickets(ctx->ssl, 0);
        SSL_CTX_set_options(ctx->ssl, SSL_OP_NO_TICKET);
    }
    *out = ctx;
    return 0;
fail:
    tt_tls_ctx_free(ctx);
    return TETHER_ERR_CONFIG;
}

#if defined(_WIN32)
/* OpenSSL does not read Windows' certificate store (its default paths are a directory fixed at
 * build time): the certificates of the system's "ROOT" store are copied into the context's. */
static void add_windows_roots(SSL_CTX *ssl)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ssl);
    HCERTSTORE sys = CertOpenSystemStoreW(0, L"ROOT");
    PCCERT_CONTEXT c = NULL;
    int n = 0;

    if (sys == NULL) {
        TT_LOG(TT_LOG_WARN, "cannot open the Windows ROOT certificate store");
        return;
    }
    while ((c = CertEnumCertificatesInStore(sys, c)) != NULL) {
        const unsigned char *p = c->pbCertEncoded;
        X509 *x = d2i_X509(NULL, &p, (long)c->cbCertEncoded);
        if (x != NULL && X509_STORE_add_cert(store, x) == 1)
            n++;
        X509_free(x);
    }
    ERR_clear_error(); /* a certificate already there, or one OpenSSL cannot parse */
    CertCloseStore(sys, 0);
    TT_LOG(TT_LOG_DEBUG, "tls: %d certificates from the Windows ROOT store", n);
}
#endif

/* True when one of the directories of list (separated by ':') exists. */
static bool some_dir_exists(const char *list, tt_tls_exists_fn exists, void *ud)
{
    while (list != NULL && *list != '\0') {
        const char *end = strchr(list, ':');
        size_t n = end ? (size_t)(end - list) : strlen(list);
        char one[PATH_MAX];

        if (n > 0 && n < sizeof one) {
            memcpy(one, list, n);
            one[n] = '\0';
            if (exists(one, true, ud))
                return true;
        }
        list = end ? end + 1 : NULL;
    }
    return false;
}

void tt_tls_pick_store(const char *sys_file, const char *sys_dir, const char *const *android_dirs,
                       tt_tls_exists_fn exists, void *ud, struct tt_tls_store *out)
{
    out->kind = TT_TLS_STORE_SYSTEM;
    out->dir = NULL;
    if ((sys_file != NULL && sys_file[0] != '\0' && exists(sys_file, false, ud)) ||
        some_dir_exists(sys_dir, exists, ud))
        return;
    for (size_t i = 0; android_dirs != NULL && android_dirs[i] != NULL; i++) {
        if (exists(android_dirs[i], true, ud)) {
            out->kind = TT_TLS_STORE_ANDROID;
            out->dir = android_dirs[i];
            return;
        }
    }
    out->kind = TT_TLS_STORE_NONE;
}

#if !defined(_WIN32)
static bool path_exists(const char *path, bool want_dir, void *ud)
{
    struct stat st;
    (void)ud;

    if (stat(path, &st) != 0)
        return false;
    return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

/* Android's store: every regular file of dir (one PEM certificate each, followed by its text
 * form, which OpenSSL skips), up to the caps. A file that holds no certificate is skipped.
 * Returns how many files gave certificates. */
static int add_dir_certs(SSL_CTX *ssl, const char *dir)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ssl);
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0, seen = 0;

    if (d == NULL) {
        TT_LOG(TT_LOG_WARN, "tls: cannot read the CA directory %s: %s", dir, strerror(errno));
        return 0;
    }
    while ((e = readdir(d)) != NULL && seen < TT_TLS_ANDROID_MAX_FILES) {
        char path[PATH_MAX];
        struct stat st;

        if (e->d_name[0] == '.')
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TT_TLS_ANDROID_MAX_FILE)
            continue;
        seen++;
        if (X509_STORE_load_file(store, path) == 1)
            n++;
    }
    closedir(d);
    ERR_clear_error(); /* a certificate already there, or a file that is not one */
    if (seen == TT_TLS_ANDROID_MAX_FILES)
        TT_LOG(TT_LOG_WARN, "tls: CA directory %s: only its first %d files were read", dir,
               TT_TLS_ANDROID_MAX_FILES);
    return n;
}

/* The system's store, or Android's when there is none (tt_tls_pick_store). */
static void add_store(SSL_CTX *ssl)
{
    static const char *const android[] = {TT_TLS_ANDROID_CA_DIRS, NULL};
    const char *file = getenv(X509_get_default_cert_file_env());
    const char *dir = getenv(X509_get_default_cert_dir_env());
    struct tt_tls_store st;

    /* OpenSSL reads the variables instead of its built-in paths when they are set */
    if (file == NULL)
        file = X509_get_default_cert_file();
    if (dir == NULL)
        dir = X509_get_default_cert_dir();
    tt_tls_pick_store(file, dir, android, path_exists, NULL, &st);
    switch (st.kind) {
    case TT_TLS_STORE_SYSTEM:
        /* No system store is not an error by itself: the CA file may be all there is. */
        if (SSL_CTX_set_default_verify_paths(ssl) != 1)
            ERR_clear_error();
        break;
    case TT_TLS_STORE_ANDROID: {
        int n = add_dir_certs(ssl, st.dir); /* not inside TT_LOG: it may not evaluate */
        TT_LOG(TT_LOG_DEBUG, "tls: no %s or %s: %d CA files from Android's store %s", file, dir, n,
               st.dir);
        break;
    }
    case TT_TLS_STORE_NONE:
        TT_LOG(TT_LOG_DEBUG, "tls: no CA store (%s, %s, or Android's): only --ca-file's CAs", file,
               dir);
        break;
    }
}
#endif

/* A client session got a session (ticket): its context keeps it for its host. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tt_tls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct tt_tls *t = SSL_get_app_data(ssl);
    if (ctx == NULL || t == NULL || t->host == NULL)
        return 0;
    char *host = ctx->session_host != NULL && strcmp(ctx->session_host, t->host) == 0
                     ? ctx->session_host
                     : strdup(t->host);
    if (host == NULL)
        return 0;
    if (host != ctx->session_host)
        free(ctx->session_host);
    SSL_SESSION_free(ctx->session);
    ctx->session = sess;
    ctx->session_host = host;
    return 1; /* the reference is ours */
}

int tt_tls_ctx_client(struct tt_tls_ctx **out, const char *ca_file, bool insecure,
                      char err[TT_ERRLEN])
{
    static const unsigned char alpn[] = "\x08http/1.1";
    struct tt_tls_ctx *ctx;

    if (ca_file != NULL && readable(ca_file, "CA file", err) != 0)
        return TETHER_ERR_CONFIG;
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL || (ctx->ssl = new_ssl_ctx(false)) == NULL) {
        free(ctx);
        tt_errf(err, "cannot set up TLS: %s", ssl_reason("out of memory"));
        return TETHER_ERR_NOMEM;
    }
    ERR_clear_error();
    if (insecure) {
        SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_PEER, NULL);
#if defined(_WIN32)
        /* No system store is not an error by itself: the CA file may be all there is. */
        if (SSL_CTX_set_default_verify_paths(ctx->ssl) != 1)
            ERR_clear_error();
        add_windows_roots(ctx->ssl);
#else
        add_store(ctx->ssl);
#endif
        if (ca_file != NULL && SSL_CTX_load_verify_locations(ctx->ssl, ca_file, NULL) != 1) {
            tt_errf(err, "cannot load CA file %.200s: no PEM certificate in it (%s)", ca_file,
                    ssl_reason("unknown error"));
            tt_tls_ctx_free(ctx);
            return TETHER_ERR_CONFIG;
        }
    }
    SSL_CTX_set_alpn_protos(ctx->ssl, alpn, sizeof(alpn) - 1);
    /* The newest session (ticket) is kept in ctx, offered on the next connection. */
    SSL_CTX_set_app_data(ctx->ssl, ctx);
    SSL_CTX_set_session_cache_mode(ctx->ssl,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx->ssl, on_new_session);
    *out = ctx;
    return 0;
}

void tt_tls_ctx_free(struct tt_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_set_app_data(ctx->ssl, NULL); /* sessions still open keep the SSL_CTX, not ctx */
    SSL_CTX_free(ctx->ssl);
    SSL_SESSION_free(ctx->session);
    free(ctx->session_host);
    free(ctx);
}

int64_t tt_tls_ctx_not_after(const struct tt_tls_ctx *ctx)
{
    X509 *x;
    struct tm tm;
    if (ctx == NULL || !ctx->server || (x = SSL_CTX_get0_certificate(ctx->ssl)) == NULL)
        return 0;
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
        ERR_clear_error();
        return 0;
    }
#ifdef _WIN32
    time_t t = _mkgmtime(&tm);
#else
    time_t t = timegm(&tm);
#endif
    return t > 0 ? (int64_t)t : 0;
}

void tt_tls_ctx_describe(const struct tt_tls_ctx *ctx, char *out, size_t outlen)
{
    X509 *x;
    char subject[160] = "", serial[80] = "", after[40] = "";

    if (outlen == 0)
        return;
    out[0] = '\0';
    if (ctx == NULL || !ctx->server || (x = SSL_CTX_get0_certificate(ctx->ssl)) == NULL)
        return;
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn != NULL) {
        char *hex = BN_bn2hex(bn);
        if (hex != NULL)
            snprintf(serial, sizeof(serial), "%s", hex);
        OPENSSL_free(hex);
        BN_free(bn);
    }
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem != NULL) {
        if (ASN1_TIME_print(mem, X509_get0_notAfter(x)) == 1) {
            int n = BIO_read(mem, after, (int)sizeof(after) - 1);
            after[n > 0 ? n : 0] = '\0';
        }
        BIO_free(mem);
    }
    ERR_clear_error();
    snprintf(out, outlen, "subject=\"%s\" serial=%s not_after=\"%s\"", subject, serial, after);
}

/* ---- sessions: helpers ------------------------------------------------------------------ */

static uv_stream_t *stream_of(struct tt_tls *t)
{
    return (uv_stream_t *)&t->conn->tcp;
}

static void schedule(struct tt_tls *t)
{
    if (!t->closing && !uv_is_active((uv_handle_t *)&t->idle))
        uv_idle_start(&t->idle, on_idle);
}

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Reads the socket exactly when something needs its bytes and OpenSSL took all read so far. */
static void update_tcp_read(struct tt_tls *t)
{
    bool want = !t->closing && !t->failed && !t->tcp_eof && t->tcp_err == 0 && t->end == 0 &&
                !input_left(t) && (t->handshaking || t->reading);
    if (want && !t->tcp_reading) {
        int r = uv_read_start(stream_of(t), on_tcp_alloc, on_tcp_read);
        if (r < 0) {
            t->tcp_err = r;
            schedule(t);
            return;
        }
        t->tcp_reading = true;
    } else if (!want && t->tcp_reading) {
        uv_read_stop(stream_of(t));
        t->tcp_reading = false;
    }
}

/* Gives the input chunk back once OpenSSL has taken all of it (idle connections hold none). */
static void release_input(struct tt_tls *t)
{
    if (t->in != NULL && !input_left(t)) {
        tt_chunk_put(t->in);
        t->in = NULL;
    }
}

/* Records why the session failed (during what: "the handshake"...), from OpenSSL's state and
 * error queue, in words that follow "TLS handshake failed: " well: "certificate verify failed:
 * unable to get local issuer certificate", "wrong version number", "connection closed during
 * the handshake". */
static void set_err(struct tt_tls *t, const char *fmt, ...) TT_PRINTF(2, 3);

/* Records why the session failed (the buffer is only allocated then). */
static void set_err(struct tt_tls *t, const char *fmt, ...)
{
    va_list ap;
    if (t->err == NULL && (t->err = malloc(TT_ERRLEN)) == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(t->err, TT_ERRLEN, fmt, ap);
    va_end(ap);
}

static const char *err_of(const struct tt_tls *t)
{
    return t->err != NULL ? t->err : "";
}

static void describe_failure(struct tt_tls *t, const char *during)
{
    /* Without SSL_VERIFY_PEER (insecure) a verification result is only advice. */
    bool verifies = !t->server && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) != 0;
    long vr = verifies ? SSL_get_verify_result(t->ssl) : X509_V_OK;
    if (vr != X509_V_OK) {
        ERR_clear_error();
        set_err(t, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
    } else if (t->tcp_err != 0) {
        ERR_clear_error();
        set_err(t, "connection failed during %s: %s", during, uv_strerror(t->tcp_err));
    } else if (t->tcp_eof && ERR_peek_error() == 0) {
        set_err(t, "connection closed during %s", during);
    } else {
        set_err(t, "%s", ssl_reason("unknown TLS error"));
    }
}

/* ---- sessions: output ------------------------------------------------------------------- */

/* Completes the owner's writes whose ciphertext is out (or all of them, once writing failed or
 * the conn is closing). */
static void complete_writes(struct tt_tls *t)
{
    while (t->wn > 0) {
        struct pending_write *pw = &t->w[t->whead];
        int status;
        if (t->closing)
            status = UV_ECANCELED;
        else if (t->write_err != 0)
            status = t->write_err;
        else if (pw->mark <= t->written)
            status = 0;
        else
            break;
        uv_write_t *req = pw->req;
        t->whead = (t->whead + 1) % TT_TLS_MAX_WRITES;
        t->wn--;
        req->cb(req, status);
    }
}

static void on_tcp_shutdown(uv_shutdown_t *req, int status)
{
    struct tt_tls *t = req->data;
    uv_shutdown_t *own = t->shut_req;
    t->shut_req = NULL;
    if (own != NULL)
        own->cb(own, t->closing ? UV_ECANCELED : status);
}

/* Once all ciphertext is out, the owner's shutdown becomes the socket's. */
static void maybe_shutdown(struct tt_tls *t)
{
    if (t->shut_req == NULL || t->shut_started || t->shut_err != 0 || t->closing ||
        t->inflight > 0 || t->out.bytes > 0)
        return;
    if (t->write_err != 0) {
        t->shut_err = t->write_err; /* told from the idle handle */
        schedule(t);
        return;
    }
    t->sreq.data = t;
    int r = uv_shutdown(&t->sreq, stream_of(t), on_tcp_shutdown);
    if (r < 0) {
        t->shut_err = r;
        schedule(t);
        return;
    }
    t->shut_started = true;
}

static void on_tcp_write(uv_write_t *req, int status)
{
    struct tt_tls *t = req->data;
    tt_chunkq_consume(&t->out, t->inflight);
    t->written += t->inflight;
    t->inflight = 0;
    if (status < 0 && t->write_err == 0)
        t->write_err = status;
    complete_writes(t);
    flush_out(t);
}

static void flush_out(struct tt_tls *t)
{
    uv_buf_t bufs[TLS_MAX_BUFS]; /* uv_write copies the array */
    size_t nbytes;
    unsigned n;

    if (t->closing || t->inflight > 0 || t->write_err != 0) {
        maybe_shutdown(t);
        return;
    }
    n = tt_chunkq_bufs(&t->out, bufs, TLS_MAX_BUFS, &nbytes);
    if (n == 0) {
        maybe_shutdown(t);
        return;
    }
    t->wreq.data = t;
    int r = uv_write(&t->wreq, stream_of(t), bufs, n, on_tcp_write);
    if (r < 0) {
        t->write_err = r;
        schedule(t); /* the owner's writes fail from the idle handle */
        return;
    }
    t->inflight = nbytes;
}

/* ---- sessions: input -------------------------------------------------------------------- */

/* Runs the handshake as far as the input allows. */
static void handshake(struct tt_tls *t)
{
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
    flush_out(t); /* our flight, or the alert that ends a failed handshake */
    if (r != 1 && e == SSL_ERROR_WANT_READ && !t->tcp_eof && t->tcp_err == 0)
        return;
    t->handshaking = false;
    if (r == 1) {
        char d[96];
        bool resumed = SSL_session_reused(t->ssl) == 1;
        if (t->server && resumed)
            stats.resumed++;
        else if (t->server)
            stats.full++;
        tt_tls_describe(t->conn, d, sizeof(d));
        TT_LOG(TT_LOG_DEBUG, "tls: handshake done %s%s", d, resumed ? " resumed" : "");
    } else {
        describe_failure(t, "the handshake");
        t->failed = true;
        t->end = UV_EPROTO;
    }
    if (t->hs_cb != NULL) {
        tt_tls_handshake_cb cb = t->hs_cb;
        t->hs_cb = NULL;
        cb(t->conn, r == 1 ? 0 : TETHER_ERR_TLS, r == 1 ? "" : err_of(t), t->hs_ud);
    }
}

/* Tells the owner how its input ended. */
static void tell_end(struct tt_tls *t, uv_buf_t *buf)
{
    uv_buf_t none = uv_buf_init(NULL, 0);
    t->end_told = true;
    t->reading = false; /* as libuv stops reading at EOF */
    t->read_cb(stream_of(t), t->end, buf ? buf : &none);
}

/* Decrypts into the owner's buffers while it reads and there is input. */
static void deliver(struct tt_tls *t)
{
    while (t->reading && !t->closing && !t->end_told) {
        if (t->end != 0) {
            tell_end(t, NULL);
            return;
        }
        if (!input_left(t) && !SSL_has_pending(t->ssl) && !t->tcp_eof && t->tcp_err == 0)
            return; /* wait for the socket */
        uv_buf_t buf = uv_buf_init(NULL, 0);
        t->alloc_cb((uv_handle_t *)stream_of(t), TLS_READ_SIZE, &buf);
        if (buf.base == NULL || buf.len == 0) {
            t->read_cb(stream_of(t), UV_ENOBUFS, &buf);
            return;
        }
        size_t n = 0;
        bool more = true;
        while (n < buf.len) {
            size_t want = buf.len - n > INT_MAX ? INT_MAX : buf.len - n;
            ERR_clear_error();
            int r = SSL_read(t->ssl, buf.base + n, (int)want);
            if (r > 0) {
                n += (size_t)r;
                continue;
            }
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                more = false;
            } else if (t->tcp_err != 0 && !input_left(t)) {
                t->end = t->tcp_err; /* the socket failed */
            } else if (e == SSL_ERROR_ZERO_RETURN || t->tcp_eof) {
                t->end = UV_EOF; /* close_notify, or the socket's EOF */
            } else {
                describe_failure(t, "a read");
                TT_LOG(TT_LOG_DEBUG, "tls: record failed: %s", err_of(t));
                t->failed = true;
                t->end = UV_EPROTO;
            }
            break;
        }
        flush_out(t); /* reading may answer (a key update, an alert) */
        if (n > 0 || t->end == 0) {
            t->read_cb(stream_of(t), (ssize_t)n, &buf); /* n == 0 gives the buffer back */
            if (!more)
                return;
            continue;
        }
        tell_end(t, &buf);
        return;
    }
}

static void pump(struct tt_tls *t)
{
    if (t->handshaking && !t->closing)
        handshake(t);
    if (!t->handshaking && !t->closing)
        deliver(t);
    if (!t->closing) {
        release_input(t);
        update_tcp_read(t);
    }
}

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tt_tls *t = tt_conn_of(h)->tls;
    (void)suggested;
    if (t->in == NULL)
        t->in = tt_chunk_get();
    if (t->in == NULL) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    /* Only read when all earlier input was taken: the whole chunk is free. */
    t->in->off = t->in->len = 0;
    *buf = uv_buf_init((char *)t->in->data, TT_CHUNK_SIZE);
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tt_tls *t = tt_conn_of((uv_handle_t *)s)->tls;
    (void)buf;
    if (nread == 0)
        return;
    if (nread > 0)
        t->in->len = (size_t)nread;
    else if (nread == UV_EOF)
        t->tcp_eof = true;
    else
        t->tcp_err = (int)nread;
    if (nread < 0) {
        uv_read_stop(s);
        t->tcp_reading = false;
    }
    pump(t);
}

static void on_idle(uv_idle_t *h)
{
    struct tt_tls *t = h->data;
    uv_idle_stop(h);
    if (t->closing)
        return;
    complete_writes(t);
    if (t->shut_err != 0 && t->shut_req != NULL && !t->shut_started && !t->closing) {
        uv_shutdown_t *own = t->shut_req;
        int err = t->shut_err;
        t->shut_req = NULL;
        own->cb(own, err);
    }
    if (!t->closing)
        pump(t);
}

/* ---- sessions: life cycle --------------------------------------------------------------- */

static struct tt_tls *tls_new(struct tt_conn *c, struct tt_tls_ctx *ctx)
{
    struct tt_tls *t;
    BIO *b;

    uv_once(&bio_once, make_bio_method);
    if (bio_method == NULL)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->conn = c;
    t->server = ctx->server;
    tt_chunkq_init(&t->out, TLS_OUT_MAX);
    t->ssl = SSL_new(ctx->ssl);
    b = BIO_new(bio_method);
    if (t->ssl == NULL || b == NULL) {
        BIO_free(b);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b);
    SSL_set_app_data(t->ssl, t);
    uv_idle_init(c->tcp.loop, &t->idle);
    t->idle.data = t;
    return t;
}

/* Frees t and its SSL. A session whose handshake completed and that did not fail stays
 * resumable: OpenSSL marks the session of an SSL freed without close_notify as not resumable,
 * yet a connection that merely ended (the peer closed, the network went) broke nothing. */
static void tls_free(struct tt_tls *t)
{
    tt_chunk_put(t->in);
    tt_chunkq_clear(&t->out);
    if (!t->handshaking && !t->failed && SSL_is_init_finished(t->ssl))
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_set_app_data(t->ssl, NULL);
    SSL_free(t->ssl);
    free(t->err);
    free(t->host);
    free(t);
}

/* Frees a session whose handle was never used (set-up failed before any I/O). */
static void on_early_idle_closed(uv_handle_t *h)
{
    tls_free(h->data);
}

int tt_tls_accept(struct tt_conn *c, struct tt_tls_ctx *ctx)
{
    return tt_tls_accept_pre(c, ctx, NULL, 0);
}

int tt_tls_accept_pre(struct tt_conn *c, struct tt_tls_ctx *ctx, const uint8_t *pre, size_t prelen)
{
    struct tt_tls *t;
    if (c->tls != NULL || ctx == NULL || !ctx->server || prelen > TT_CHUNK_SIZE ||
        (prelen > 0 && pre == NULL))
        return c->tls != NULL ? TETHER_ERR_STATE : TETHER_ERR_INVAL;
    t = tls_new(c, ctx);
    if (t == NULL)
        return TETHER_ERR_NOMEM;
    if (prelen > 0) {
        t->in = tt_chunk_get();
        if (t->in == NULL) {
            uv_close((uv_handle_t *)&t->idle, on_early_idle_closed);
            return TETHER_ERR_NOMEM;
        }
        memcpy(t->in->data, pre, prelen);
        t->in->len = prelen;
    }
    SSL_set_accept_state(t->ssl);
    t->handshaking = true;
    c->tls = t;
    c->filter = &tls_filter;
    return 0;
}

static bool ip_literal(const char *host)
{
    unsigned char buf[16];
    return uv_inet_pton(AF_INET, host, buf) == 0 || uv_inet_pton(AF_INET6, host, buf) == 0;
}

int tt_tls_connect(struct tt_conn *c, struct tt_tls_ctx *ctx, const char *host, const uint8_t *pre,
                   size_t prelen, tt_tls_handshake_cb cb, void *ud)
{
    struct tt_tls *t;
    int ok;

    if (c->tls != NULL)
        return TETHER_ERR_STATE;
    if (ctx == NULL || ctx->server || host == NULL || cb == NULL || prelen > TT_CHUNK_SIZE ||
        (prelen > 0 && pre == NULL))
        return TETHER_ERR_INVAL;
    t = tls_new(c, ctx);
    if (t == NULL)
        return TETHER_ERR_NOMEM;
    SSL_set_connect_state(t->ssl);
    if (ip_literal(host)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
    } else {
        ok = SSL_set_tlsext_host_name(t->ssl, host) == 1 && SSL_set1_host(t->ssl, host) == 1;
    }
    if (ok != 1 || (t->host = strdup(host)) == NULL)
        goto fail;
    /* The session this context kept for host, if any: a resumption (no certificate sent, no
     * signature made) when the server still accepts its ticket, else a full handshake. */
    if (ctx->session != NULL && ctx->session_host != NULL && strcmp(ctx->session_host, host) == 0 &&
        SSL_SESSION_is_resumable(ctx->session))
        (void)SSL_set_session(t->ssl, ctx->session);
    if (prelen > 0) {
        t->in = tt_chunk_get();
        if (t->in == NULL)
            goto fail;
        memcpy(t->in->data, pre, prelen);
        t->in->len = prelen;
    }
    t->handshaking = true;
    t->hs_cb = cb;
    t->hs_ud = ud;
    c->tls = t;
    c->filter = &tls_filter;
    /* The ClientHello goes out now; the callback only ever comes from a later read. */
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
        c->tls = NULL;
        c->filter = NULL;
        goto fail;
    }
    flush_out(t);
    release_input(t);
    update_tcp_read(t);
    return 0;
fail:
    ERR_clear_error();
    uv_close((uv_handle_t *)&t->idle, on_early_idle_closed);
    return TETHER_ERR_TLS;
}

const char *tt_tls_error(const struct tt_conn *c)
{
    return c->tls != NULL ? err_of(c->tls) : "";
}

void tt_tls_describe(const struct tt_conn *c, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (c->tls == NULL || c->tls->handshaking || c->tls->failed)
        return;
    snprintf(out, outlen, "%s %s", SSL_get_version(c->tls->ssl),
             SSL_CIPHER_get_name(SSL_get_current_cipher(c->tls->ssl)));
}

static int tls_read_start(struct tt_conn *c, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
    struct tt_tls *t = c->tls;
    if (t->closing)
        return UV_EINVAL;
    t->alloc_cb = alloc_cb;
    t->read_cb = read_cb;
    t->reading = true;
    /* What is already here (left by an earlier owner, or an end) comes on the next turn; so
     * does a handshake's input read before the session was made (tt_tls_accept_pre). */
    if ((!t->handshaking &&
         (SSL_has_pending(t->ssl) || t->end != 0 || t->tcp_eof || t->tcp_err != 0)) ||
        input_left(t))
        schedule(t);
    update_tcp_read(t);
    return 0;
}

static int tls_read_stop(struct tt_conn *c)
{
    struct tt_tls *t = c->tls;
    t->reading = false;
    if (!t->closing)
        update_tcp_read(t);
    return 0;
}

static int tls_write(struct tt_conn *c, uv_write_t *req, const uv_buf_t bufs[], unsigned nbufs,
                     uv_write_cb cb)
{
    struct tt_tls *t = c->tls;

    if (t->closing || t->shut_req != NULL || t->shut_started)
        return UV_EPIPE;
    if (t->handshaking)
        return UV_ENOTCONN;
    if (t->failed)
        return UV_EPROTO;
    if (t->write_err != 0)
        return t->write_err;
    if (t->wn == TT_TLS_MAX_WRITES)
        return UV_ENOBUFS;
    for (unsigned i = 0; i < nbufs; i++) {
        const char *p = bufs[i].base;
        size_t len = bufs[i].len;
        while (len > 0) {
            int k = len > INT_MAX ? INT_MAX : (int)len;
            ERR_clear_error();
            int r = SSL_write(t->ssl, p, k);
            if (r <= 0) {
                /* Records may be half queued: the stream is broken. */
                describe_failure(t, "a write");
                t->failed = true;
                t->end = UV_EPROTO;
                return UV_EPROTO;
            }
            p += r;
            len -= (size_t)r;
        }
    }
    req->handle = stream_of(t);
    req->cb = cb;
    struct pending_write *pw = &t->w[(t->whead + t->wn) % TT_TLS_MAX_WRITES];
    pw->req = req;
    pw->mark = t->queued;
    t->wn++;
    if (t->inflight == 0 && t->out.bytes == 0)
        schedule(t); /* nothing to send (empty write): complete it on the next turn */
    flush_out(t);
    return 0;
}

static int tls_shutdown(struct tt_conn *c, uv_shutdown_t *req, uv_shutdown_cb cb)
{
    struct tt_tls *t = c->tls;

    if (t->closing)
        return UV_ENOTCONN;
    if (t->shut_req != NULL || t->shut_started)
        return UV_EALREADY;
    req->handle = stream_of(t);
    req->cb = cb;
    t->shut_req = req;
    if (!t->handshaking && !t->failed) {
        ERR_clear_error();
        (void)SSL_shutdown(t->ssl); /* queues our close_notify; we do not wait for theirs */
        ERR_clear_error();
    }
    flush_out(t);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct tt_tls *t = h->type == UV_IDLE ? h->data : tt_conn_of(h)->tls;
    struct tt_conn *c = t->conn;

    if (--t->nhandles > 0)
        return;
    complete_writes(t); /* UV_ECANCELED for any left */
    if (t->shut_req != NULL) {
        uv_shutdown_t *own = t->shut_req;
        t->shut_req = NULL;
        own->cb(own, UV_ECANCELED);
    }
    tls_free(t);
    tt_conn_closed(c); /* the owner's close callback, then c freed */
}

static void tls_close(struct tt_conn *c)
{
    struct tt_tls *t = c->tls;
    t->closing = true;
    t->reading = false;
    t->nhandles = 2;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&t->idle, on_closed);
}

/* conn.h's calls on a conn with a TLS session (c->filter). */
static const struct tt_conn_filter tls_filter = {
    .read_start = tls_read_start,
    .read_stop = tls_read_stop,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .close = tls_close,
};
