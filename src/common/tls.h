/* tls.h - TLS for tt_conn (conn.h), with OpenSSL: the contexts (the relay's certificate and key,
 * reloadable; the agent's trust: system CAs, an extra CA file, or no verification at all) and
 * the TLS session a conn carries. OpenSSL works over our own memory BIO: ciphertext read from
 * the socket lands in a pooled chunk that OpenSSL reads from, plaintext is decrypted straight
 * into the reader's buffer, and records are written into a queue of pooled chunks that one
 * uv_write at a time sends. That queue holds the ciphertext of the owner's writes under way
 * (at most TT_TLS_MAX_WRITES of them, each bounded by its owner) and the few records OpenSSL
 * sends by itself; it is capped at 16 MiB, past which the session fails (UV_EPROTO). A read
 * holds one pooled chunk of ciphertext at most. TLS 1.2 is the minimum on both sides;
 * renegotiation is off.
 *
 * Memory per idle session: OpenSSL's SSL (about 7.5 KiB in OpenSSL 3.0, most of it the record
 * layer's fixed arrays), its two record ciphers (about 1 KiB each) and the session (about
 * 2.5 KiB with the peer's cipher list and handshake leftovers), plus struct tt_tls (about
 * 0.8 KiB); record buffers are given back once idle (SSL_MODE_RELEASE_BUFFERS), no input chunk
 * is held between reads, and the server keeps no session cache (tickets only: the session
 * lives in the ticket the client holds). docs/DESIGN.md, "TLS".
 *
 * Resumption: a server context issues one session ticket per full handshake (TLS 1.3 and 1.2)
 * encrypted with the process's ticket key ring (below: keys by epoch of a rotation period,
 * made here from the CSPRNG or put in by the cluster from Redis); a client context keeps the
 * newest session it got (memory only) and offers it on the next connection to the same host.
 *
 * No OpenSSL type appears here: relay and agent code hold a struct tt_tls_ctx. */
#ifndef TT_TLS_H
#define TT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/conn.h"
#include "common/util.h"

/* Writes a TLS conn accepts at once (tt_conn_write): more is UV_ENOBUFS. */
#define TT_TLS_MAX_WRITES 16

/* An OpenSSL SSL_CTX and its settings. Sessions made from a context hold their own reference
 * to it: freeing (or replacing) a context never disturbs connections made with it. */
struct tt_tls_ctx;

/* A server context from PEM files: cert_file holds the certificate (the wildcard *.DOMAIN one)
 * followed by its chain, key_file the private key. Returns 0 and *out (tt_tls_ctx_free), or
 * TETHER_ERR_CONFIG (unreadable or malformed file, key not matching the certificate),
 * TETHER_ERR_NOMEM, with a one-line message naming the file and the cause in err. */
int tt_tls_ctx_server(struct tt_tls_ctx **out, const char *cert_file, const char *key_file,
                      char err[TT_ERRLEN]);

/* A client context: the relay's certificate is verified against the system's CAs (or
 * Android's: tt_tls_pick_store) plus those of ca_file (PEM; NULL for none), and its name against
 * the host dialed, unless insecure (then nothing is verified). Returns 0 and *out, or
 * TETHER_ERR_CONFIG (ca_file unreadable or holds no certificate), TETHER_ERR_NOMEM, with a one-line
 * message in err. */
int tt_tls_ctx_client(struct tt_tls_ctx **out, const char *ca_file, bool insecure,
                      char err[TT_ERRLEN]);

/* Drops the caller's reference. NULL is ignored. */
void tt_tls_ctx_free(struct tt_tls_ctx *ctx);

/* Where a client context's CAs come from, besides ca_file: OpenSSL's default file or directory
 * (SSL_CERT_FILE and SSL_CERT_DIR, when set, instead of the paths built into OpenSSL: the
 * system's store; on Windows, plus Windows' ROOT store), or, when none exists, Android's
 * store, the first of TT_TLS_ANDROID_CA_DIRS that exists (Android 14's updatable one first).
 * Android names its files by OpenSSL's old subject hash (openssl x509 -subject_hash_old), which
 * OpenSSL's hashed-directory lookup no longer computes: every file of the directory is loaded
 * instead (at most TT_TLS_ANDROID_MAX_FILES, each at most TT_TLS_ANDROID_MAX_FILE bytes; Android
 * has about 150). */
#define TT_TLS_ANDROID_CA_DIRS "/apex/com.android.conscrypt/cacerts", "/system/etc/security/cacerts"
#define TT_TLS_ANDROID_MAX_FILES 1024
#define TT_TLS_ANDROID_MAX_FILE (256 * 1024)

enum tt_tls_store_kind {
    TT_TLS_STORE_SYSTEM,  /* OpenSSL's default paths (SSL_CTX_set_default_verify_paths) */
    TT_TLS_STORE_ANDROID, /* every file of dir */
    TT_TLS_STORE_NONE,    /* no store: only ca_file's CAs are trusted */
};

struct tt_tls_store {
    enum tt_tls_store_kind kind;
    const char *dir; /* TT_TLS_STORE_ANDROID: one of android_dirs; NULL otherwise */
};

/* True when path exists as a file (want_dir false) or a directory (true). */
typedef bool (*tt_tls_exists_fn)(const char *path, bool want_dir, void *ud);

/* Picks the store (see above). sys_file: the system's CA file; sys_dir: its directory, or a
 * ':'-separated list of them (as SSL_CERT_DIR may be); either may be NULL; android_dirs:
 * NULL-terminated, in order of preference. exists is asked about those paths only. Pure. */
void tt_tls_pick_store(const char *sys_file, const char *sys_dir, const char *const *android_dirs,
                       tt_tls_exists_fn exists, void *ud, struct tt_tls_store *out);

/* Writes "subject=... serial=... not_after=..." of a server context's certificate into out
 * (for logs); "" for a client context. */
void tt_tls_ctx_describe(const struct tt_tls_ctx *ctx, char *out, size_t outlen);

/* The notAfter of a server context's certificate, in unix seconds; 0 for a client context or
 * when it cannot be read. */
int64_t tt_tls_ctx_not_after(const struct tt_tls_ctx *ctx);

/* Server side: puts a TLS session from ctx (a server context) on c, a connected plain conn
 * that has read nothing yet. The handshake runs as soon as the owner starts reading; a failed
 * one ends the input with UV_EPROTO (tt_tls_error() says why). Returns 0, TETHER_ERR_NOMEM,
 * TETHER_ERR_TLS (OpenSSL failed) or TETHER_ERR_STATE (c already has TLS). */
int tt_tls_accept(struct tt_conn *c, struct tt_tls_ctx *ctx);
/* The same for a conn that has read pre[0..prelen) already (at most TT_CHUNK_SIZE bytes: the
 * start of the ClientHello, read to tell TLS from plain HTTP): the handshake takes them first.
 * Also TETHER_ERR_INVAL for prelen over a chunk. */
int tt_tls_accept_pre(struct tt_conn *c, struct tt_tls_ctx *ctx, const uint8_t *pre, size_t prelen);

/* The outcome of a client handshake: err is 0, or TETHER_ERR_TLS with msg saying why in one
 * line ("certificate verify failed: unable to get local issuer certificate", "tlsv1 alert
 * protocol version"...). msg is valid during the call only. The callback may close c. */
typedef void (*tt_tls_handshake_cb)(struct tt_conn *c, int err, const char *msg, void *ud);

/* Client side: puts a TLS session from ctx (a client context) on c, a connected plain conn
 * that is not reading, and starts the handshake, with host (a name or an IP literal, without
 * brackets) for SNI and for the certificate's name check. pre[0..prelen) are bytes already
 * read from the socket (they belong to the handshake). c reads on its own until the handshake
 * is over; cb follows exactly once, never from inside this call, unless c is closed first.
 * The owner's reads see plaintext only, from then on. Returns 0, TETHER_ERR_NOMEM,
 * TETHER_ERR_TLS, TETHER_ERR_STATE or TETHER_ERR_INVAL (prelen over one chunk). */
int tt_tls_connect(struct tt_conn *c, struct tt_tls_ctx *ctx, const char *host, const uint8_t *pre,
                   size_t prelen, tt_tls_handshake_cb cb, void *ud);

/* ---- session tickets (server side) ----------------------------------------------------- */

/* A ticket key: name (16 bytes, sent in the clear in the ticket), AES-256-CBC key (32) and
 * HMAC-SHA256 key (32), all from the CSPRNG. OpenSSL's ticket format encrypts and MACs with
 * them (SSL_CTX_set_tlsext_ticket_key_evp_cb). */
#define TT_TLS_TICKET_NAMELEN 16
#define TT_TLS_TICKET_KEYLEN 80
/* Keys live by epoch: epoch E = floor(unix time / period). New tickets use epoch E's key;
 * tickets under E-1, E or E+1 are accepted (E+1: a node whose clock is ahead), those under E-1
 * or E+1 renewed; anything older gives a full handshake. So a ticket lives at most two periods. */
#define TT_TLS_TICKET_SLOTS 3
#define TT_TLS_TICKET_DEFAULT_PERIOD_S (12 * 3600)

struct tt_tls_ticket_key {
    bool set;
    int64_t epoch;
    uint8_t material[TT_TLS_TICKET_KEYLEN];
};

/* Fixed size: three slots, epoch e in slot e mod 3 (a newer epoch replaces an older one). */
struct tt_tls_ticket_ring {
    uint64_t period_s; /* 0: no tickets (no resumption) */
    bool external;     /* keys are put in from outside (cluster: Redis), never made here */
    struct tt_tls_ticket_key slot[TT_TLS_TICKET_SLOTS];
};

/* floor(now_s / period_s) (period_s > 0). Pure. */
int64_t tt_tls_ticket_epoch(uint64_t period_s, int64_t now_s);

/* The epochs of E-1, E, E+1 (E at now_s) that the ring lacks, into out (at most 3), oldest
 * first; want_old false leaves E-1 out (a lone relay never needs a key it did not issue with).
 * Returns how many. Pure. */
size_t tt_tls_ticket_missing(const struct tt_tls_ticket_ring *ring, int64_t now_s, bool want_old,
                             int64_t out[TT_TLS_TICKET_SLOTS]);

/* Puts material as epoch's key. Returns 0, or -1 (ring off, or epoch outside E-1..E+1 at
 * now_s: nothing changed). Pure. */
int tt_tls_ticket_put(struct tt_tls_ticket_ring *ring, int64_t epoch,
                      const uint8_t material[TT_TLS_TICKET_KEYLEN], int64_t now_s);

/* The key new tickets use at now_s: E's, else E-1's, else E+1's; NULL when none. Pure. */
const struct tt_tls_ticket_key *tt_tls_ticket_for_issue(const struct tt_tls_ticket_ring *ring,
                                                        int64_t now_s);

/* The key named name that may still open tickets at now_s (epoch E-1..E+1): returns 1 (it is
 * the issuing key) or 2 (valid, the ticket is to be renewed) with *out, or 0 (unknown or
 * rotated out: a full handshake). Compares names in constant time. Pure. */
int tt_tls_ticket_find(const struct tt_tls_ticket_ring *ring,
                       const uint8_t name[TT_TLS_TICKET_NAMELEN], int64_t now_s,
                       const struct tt_tls_ticket_key **out);

/* The process's ring, which every server context uses (cert reloads keep it). Set it up before
 * the first server context: period_s (0: no tickets), external (cluster: keys only come from
 * tt_tls_ticket_put on it; otherwise missing keys are made from the CSPRNG when needed). */
struct tt_tls_ticket_ring *tt_tls_tickets(void);
void tt_tls_tickets_configure(uint64_t period_s, bool external);

/* Process-wide TLS counters (server sessions), for /metrics. */
struct tt_tls_stats {
    uint64_t full;           /* server handshakes done without resumption */
    uint64_t resumed;        /* server handshakes that resumed a session (ticket) */
    uint64_t ticket_unknown; /* tickets offered under an unknown or rotated-out key */
    uint64_t keys_made;      /* ticket keys made here (lone relay) */
    uint64_t keys_shared;    /* ticket keys taken from the cluster (Redis) */
    uint64_t share_failures; /* cluster key look-ups that failed (Redis unreachable...) */
};
void tt_tls_stats_get(struct tt_tls_stats *out);
/* Counts a cluster look-up of ticket keys: keys taken (0 or more), or failed. */
void tt_tls_tickets_note(unsigned keys_taken, bool failed);

/* The counters as Prometheus text (tether_tls_handshakes_total{kind="full|resumed"},
 * tether_tls_ticket_unknown_total, tether_tls_ticket_keys_total{source="made|shared"},
 * tether_tls_ticket_key_failures_total) into out. Returns the length (out is cut, but ends in
 * a whole line, if outlen is too small). */
size_t tt_tls_metrics(char *out, size_t outlen);

/* Why c's TLS session failed ("" if it did not, or c is plain). Valid until c is closed. */
const char *tt_tls_error(const struct tt_conn *c);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for an established session, "" otherwise. */
void tt_tls_describe(const struct tt_conn *c, char *out, size_t outlen);

#endif
