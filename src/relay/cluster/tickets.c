/* tickets.c - the cluster's TLS session ticket keys in Redis (tickets.h). */
#include "relay/cluster/tickets.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "common/tls.h"

static uv_timer_t timer;
static bool timer_on;
static struct tt_redisasync *conn_async; /* after start-up (NULL once stopped) */

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

/* ---- after start-up: the cluster's asynchronous connection (store/redisasync.h) ---------- */

/* One refresh in flight: its replies are counted down; the last one notes the round. Allocated
 * per round, so a reply arriving after tt_cluster_tickets_stop (the connection freed: NULL)
 * finds its own round. */
struct round {
    unsigned pending; /* replies due */
    unsigned taken;   /* keys put into the ring */
    bool failed;      /* a command not sent, not answered, or answered with an error */
    int64_t now_s;    /* when it was sent (a key is put in at the later of this and now) */
};

struct call {
    struct round *rd;
    int64_t epoch;
    bool is_get; /* the GET (its value is the key); else the SET NX before it */
};

static struct round *inflight; /* the round whose replies are due, NULL when none */

static void round_done(struct round *rd)
{
    if (--rd->pending > 0)
        return;
    tt_tls_tickets_note(rd->taken, rd->failed);
    if (rd->failed)
        TT_LOG(TT_LOG_DEBUG, "tls: cluster ticket keys: Redis call failed, keeping the keys held");
    if (inflight == rd)
        inflight = NULL;
    free(rd);
}

static void on_reply(redisReply *rep, void *ud)
{
    struct call call = *(struct call *)ud;
    int64_t now = (int64_t)time(NULL);
    free(ud);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        call.rd->failed = true;
    } else if (call.is_get && rep->type == REDIS_REPLY_STRING) {
        /* a value of another size (not ours) is not used; nil: none yet (E-1's) */
        if (rep->len == TT_TLS_TICKET_KEYLEN &&
            tt_tls_ticket_put(tt_tls_tickets(), call.epoch, (const uint8_t *)rep->str,
                              now > call.rd->now_s ? now : call.rd->now_s) == 0)
            call.rd->taken++;
        OPENSSL_cleanse(rep->str, rep->len);
    }
    round_done(call.rd);
}

/* Queues one command of rd; on failure (not sent: no reply will come) marks rd failed. */
static void send_cmd(struct tt_redisasync *ra, struct round *rd, int64_t epoch, bool is_get,
                     int argc, const char **argv, const size_t *lens)
{
    struct call *call = malloc(sizeof(*call));
    if (call == NULL) {
        rd->failed = true;
        return;
    }
    *call = (struct call){.rd = rd, .epoch = epoch, .is_get = is_get};
    rd->pending++;
    if (tt_redisasync_argv(ra, argc, argv, lens, on_reply, call) != 0) {
        rd->pending--;
        rd->failed = true;
        free(call);
    }
}

int tt_cluster_tickets_refresh_async(struct tt_redisasync *ra, int64_t now_s)
{
    struct tt_tls_ticket_ring *ring = tt_tls_tickets();
    int64_t want[TT_TLS_TICKET_SLOTS];

    if (ring->period_s == 0)
        return 0;
    size_t n = tt_tls_ticket_missing(ring, now_s, true, want);
    if (n == 0)
        return 0;
    if (inflight != NULL) {
        /* Redis has not answered the previous refresh yet (late, or stopped): this one is
         * skipped, never queued up behind it, and counted as failed */
        tt_tls_tickets_note(0, true);
        return 1;
    }
    if (ra == NULL) {
        tt_tls_tickets_note(0, true);
        return -1;
    }
    struct round *rd = calloc(1, sizeof(*rd));
    if (rd == NULL) {
        tt_tls_tickets_note(0, true);
        return -1;
    }
    int64_t cur = tt_tls_ticket_epoch(ring->period_s, now_s);
    rd->now_s = now_s;
    rd->pending = 1; /* held while queuing: the round ends after the last send at the earliest */
    inflight = rd;
    for (size_t i = 0; i < n; i++) {
        char name[96];
        char ttl[24];
        snprintf(name, sizeof(name), TT_REDIS_PREFIX "tls:ticket:%llu:%lld",
                 (unsigned long long)ring->period_s, (long long)want[i]);
        if (want[i] >= cur) {
            /* E's or E+1's: a new key of ours, unless another node's is there already (SET NX
             * keeps the first); the GET queued right behind it reads whichever is there */
            uint8_t m[TT_TLS_TICKET_KEYLEN];
            if (RAND_bytes(m, sizeof(m)) != 1) {
                ERR_clear_error();
                rd->failed = true;
                break;
            }
            snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(3 * ring->period_s + 60));
            const char *argv[6] = {"SET", name, (const char *)m, "NX", "EX", ttl};
            size_t lens[6] = {3, strlen(name), sizeof(m), 2, 2, strlen(ttl)};
            send_cmd(ra, rd, want[i], false, 6, argv, lens);
            OPENSSL_cleanse(m, sizeof(m));
        }
        const char *gargv[2] = {"GET", name};
        size_t glens[2] = {3, strlen(name)};
        send_cmd(ra, rd, want[i], true, 2, gargv, glens);
        if (rd->failed)
            break; /* Redis down or the connection full: the rest would fail the same way */
    }
    round_done(rd); /* the hold */
    return 0;
}

bool tt_cluster_tickets_inflight(void)
{
    return inflight != NULL;
}

static void on_timer(uv_timer_t *t)
{
    (void)t;
    tt_cluster_tickets_refresh_async(conn_async, (int64_t)time(NULL));
}

int tt_cluster_tickets_start(uv_loop_t *loop, struct tt_redisconn *rc, struct tt_redisasync *ra)
{
    const struct tt_tls_ticket_ring *ring = tt_tls_tickets();
    if (ring->period_s == 0 || timer_on)
        return 0;
    conn_async = ra;
    /* start-up, before the loop runs: the one synchronous read */
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
    conn_async = NULL;
    if (!timer_on)
        return;
    timer_on = false;
    uv_close((uv_handle_t *)&timer, NULL);
}
