/* webhook.h - device events POSTed to the operator's receivers (--webhook URL, repeatable;
 * SPEC "tetherd"): a bounded queue of events per receiver and their delivery.
 *
 * Each event (online, offline, expired, takeover, deleted) becomes one JSON body
 * (webhookbody.h), signed with --webhook-secret when one is set, and is queued once per
 * receiver. Each receiver has its own FIFO and at most one request in flight (HTTP/1.1 POST,
 * Connection: close, over libuv TCP, TLS for https:// through tls.h): its events are delivered
 * in the order they happened on this node, and a slow or dead receiver holds back only its own
 * queue, never the relay's traffic nor the other receivers. A 2xx answer delivers the event;
 * anything else (refused, reset, timeout after TT_WEBHOOK_TIMEOUT_MS, another status) is
 * retried after tt_webhook_backoff(): 1 s doubling to 60 s, jittered, until the event is
 * TT_WEBHOOK_MAX_AGE_MS old, when it is dropped as expired. All receivers' queues together
 * hold at most TT_WEBHOOK_QUEUE_MAX events: an event that finds them full is dropped for that
 * receiver. Everything is counted (tt_webhook_stats, /metrics). Host names are resolved with
 * uv_getaddrinfo (libuv's thread pool) at each attempt; the relay connects to nothing but the
 * configured URLs.
 *
 * Shutdown (tt_webhooks_stop): new events are refused; what is queued (the "offline" of every
 * device online at that moment among them, which the relay queues first) is delivered for at
 * most TT_WEBHOOK_FLUSH_MS, each event tried once (a failure drops it), then whatever is left
 * is dropped, counted (dropped) and logged. The queue lives in memory only: a crash or a
 * SIGKILL loses it.
 *
 * Owns: its receivers, their queues, timers and connections. */
#ifndef TT_WEBHOOK_H
#define TT_WEBHOOK_H

#include <stdint.h>
#include <uv.h>
#include "relay/admin/webhookbody.h"

#define TT_WEBHOOK_MAX_URLS 8
#define TT_WEBHOOK_QUEUE_MAX 10000
#define TT_WEBHOOK_TIMEOUT_MS 10000
#define TT_WEBHOOK_MAX_AGE_MS 3600000
/* How long a stopping relay keeps delivering queued events (within main.c's 2 s deadline). */
#define TT_WEBHOOK_FLUSH_MS 1500

struct tt_webhooks;

struct tt_webhook_stats {
    uint64_t delivered, dropped, expired; /* events */
    uint64_t ok, failed;                  /* requests: 2xx answers, attempts that failed */
    uint64_t queued;                      /* events waiting now (every receiver) */
    uint64_t queue_max;
};

/* Makes the set for urls[0..n) (checked by tt_webhook_parse_url: a bad one fails here too)
 * with secret (NULL or "": requests go unsigned), node (NULL: a single relay), the event queue
 * capped at queue_max events and events given up at max_age_ms. Returns 0 and *out (NULL when n
 * is 0), or -1 with a one-line message in err. */
int tt_webhooks_new(struct tt_webhooks **out, uv_loop_t *loop,
                    const char (*urls)[TT_WEBHOOK_URL_MAX + 1], size_t n, const char *secret,
                    const char *node, size_t queue_max, uint64_t max_age_ms, char err[TT_ERRLEN]);

/* Queues event for device name (label) at time now_ms (unix ms) for every receiver, and starts
 * its delivery. w NULL: nothing. Never blocks, never fails (what cannot be queued is counted). */
void tt_webhook_emit(struct tt_webhooks *w, const char *event, const char *name, const char *label,
                     int64_t now_ms);

void tt_webhook_stats(const struct tt_webhooks *w, struct tt_webhook_stats *s);

/* Relay shutdown: no new event is taken; the queued ones are delivered for at most
 * TT_WEBHOOK_FLUSH_MS (a referenced timer keeps the loop running that long at most), each tried
 * once, then the rest is dropped and counted, and every timer and connection closes. Returns at
 * once. Safe twice. */
void tt_webhooks_stop(struct tt_webhooks *w);

/* Frees w (after the loop ended). NULL is ignored. */
void tt_webhooks_free(struct tt_webhooks *w);

#endif
