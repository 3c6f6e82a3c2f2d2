/* throttle.c - failures per client address (throttle.h): a strmap (bounded,
 * TT_THROTTLE_MAX_ADDRS) with an LRU list through its entries, so that both the eviction at the
 * cap and the expiry of idle entries cost O(1) per entry, and the token buckets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "relay/lib/throttle.h"

/* ---- token buckets ---- */

void tt_throttle_bucket_fill(struct tt_throttle_bucket *b, int64_t burst, int64_t now)
{
    b->milli = burst * 1000;
    b->at = now;
}

void tt_throttle_bucket_refill(struct tt_throttle_bucket *b, int64_t burst, int64_t per_sec,
                               int64_t now)
{
    if (now > b->at) {
        int64_t dt = now - b->at;
        /* per_sec tokens a second = per_sec thousandths a millisecond */
        if (dt > burst * 1000)
            dt = burst * 1000; /* no overflow: the bucket is full after that anyway */
        b->milli += dt * per_sec;
        if (b->milli > burst * 1000)
            b->milli = burst * 1000;
    }
    b->at = now;
}

bool tt_throttle_bucket_has(const struct tt_throttle_bucket *b)
{
    return b->milli >= 1000;
}

void tt_throttle_bucket_take(struct tt_throttle_bucket *b)
{
    b->milli = b->milli >= 1000 ? b->milli - 1000 : 0;
}

void tt_throttle_bucket_give(struct tt_throttle_bucket *b, int64_t burst)
{
    b->milli += 1000;
    if (b->milli > burst * 1000)
        b->milli = burst * 1000;
}

/* ---- the address table ---- */

void tt_throttle_init(struct tt_throttle *t, const char *what)
{
    memset(t, 0, sizeof(*t));
    t->what = what;
    tt_strmap_init(&t->addrs);
}

static void unlink_addr(struct tt_throttle *t, struct tt_throttle_addr *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        t->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        t->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void push_newest(struct tt_throttle *t, struct tt_throttle_addr *e)
{
    e->older = t->newest;
    e->newer = NULL;
    if (t->newest)
        t->newest->newer = e;
    t->newest = e;
    if (!t->oldest)
        t->oldest = e;
}

/* The last line about e: what it did since its last logged line. */
static void log_summary(const struct tt_throttle *t, const struct tt_throttle_addr *e, int64_t now)
{
    if (e->refused == 0 && e->throttled == 0)
        return;
    TT_LOG(TT_LOG_WARN,
           "%s refused peer=%s refused=%llu throttled=%llu seconds=%lld "
           "(one line per address per %d s)",
           t->what, e->key, (unsigned long long)e->refused, (unsigned long long)e->throttled,
           (long long)((now - e->log_at) / 1000), TT_THROTTLE_LOG_MS / 1000);
}

static void drop_addr(struct tt_throttle *t, struct tt_throttle_addr *e, int64_t now)
{
    log_summary(t, e, now);
    unlink_addr(t, e);
    tt_strmap_del(&t->addrs, e->key);
    free(e);
}

void tt_throttle_reset(struct tt_throttle *t)
{
    struct tt_throttle_addr *e = t->newest;
    while (e) {
        struct tt_throttle_addr *next = e->older;
        free(e);
        e = next;
    }
    tt_strmap_reset(&t->addrs);
    t->newest = t->oldest = NULL;
}

void tt_throttle_sweep(struct tt_throttle *t, int64_t now)
{
    for (int i = 0; i < 512 && t->oldest && now - t->oldest->last >= TT_THROTTLE_IDLE_MS; i++)
        drop_addr(t, t->oldest, now);
}

size_t tt_throttle_addresses(const struct tt_throttle *t)
{
    return tt_strmap_count(&t->addrs);
}

void tt_throttle_key(const char *client, char out[TT_ADDRKEY_LEN])
{
    char ip[64];
    const char *end;
    out[0] = '\0';
    if (!client)
        return;
    if (client[0] == '[') {
        client++;
        if (!(end = strchr(client, ']')))
            return;
    } else if (tt_addrkey_from_ip(client, out) == 0) {
        return; /* a bare address (IPv6 ones hold colons) */
    } else {
        end = strrchr(client, ':');
    }
    size_t n = end ? (size_t)(end - client) : strlen(client);
    if (n >= sizeof(ip))
        return;
    memcpy(ip, client, n);
    ip[n] = '\0';
    (void)tt_addrkey_from_ip(ip, out);
}

struct tt_throttle_addr *tt_throttle_get(struct tt_throttle *t, const char *key, bool create,
                                         int64_t now)
{
    if (!key[0])
        return NULL;
    struct tt_throttle_addr *e = tt_strmap_get(&t->addrs, key);
    if (e || !create)
        return e;
    tt_throttle_sweep(t, now);
    if (tt_strmap_count(&t->addrs) >= TT_THROTTLE_MAX_ADDRS && t->oldest) {
        t->evicted++;
        drop_addr(t, t->oldest, now);
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    snprintf(e->key, sizeof(e->key), "%s", key);
    tt_throttle_bucket_fill(&e->b, TT_THROTTLE_BURST, now);
    e->last = now;
    if (tt_strmap_put(&t->addrs, e->key, e) != 0) {
        free(e);
        return NULL;
    }
    push_newest(t, e);
    return e;
}

bool tt_throttle_blocked(struct tt_throttle_addr *e, int64_t now)
{
    if (!e)
        return false;
    tt_throttle_bucket_refill(&e->b, TT_THROTTLE_BURST, TT_THROTTLE_PER_SEC, now);
    return !tt_throttle_bucket_has(&e->b);
}

void tt_throttle_fail(struct tt_throttle_addr *e, int64_t now)
{
    if (!e)
        return;
    tt_throttle_bucket_refill(&e->b, TT_THROTTLE_BURST, TT_THROTTLE_PER_SEC, now);
    tt_throttle_bucket_take(&e->b);
}

void tt_throttle_touch(struct tt_throttle *t, struct tt_throttle_addr *e, int64_t now)
{
    if (!e)
        return;
    e->last = now;
    if (t->newest != e) {
        unlink_addr(t, e);
        push_newest(t, e);
    }
}

bool tt_throttle_note(struct tt_throttle *t, struct tt_throttle_addr *e, bool throttled,
                      int64_t now)
{
    if (e && e->log_at != 0 && now - e->log_at < TT_THROTTLE_LOG_MS && now >= e->log_at) {
        if (throttled)
            e->throttled++;
        else
            e->refused++;
        return false;
    }
    if (e) {
        log_summary(t, e, now);
        e->log_at = now;
        e->refused = e->throttled = 0;
    }
    return true;
}
