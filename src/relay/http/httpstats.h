/* httpstats.h - counters of the relay's HTTP proxying for /metrics: requests refused, by reason
 * (the listener's first request and every later one on a proxied connection), Upgrade and
 * CONNECT requests the device did not accept, connections whose responses the relay could not
 * follow, and reads held back by the cap on unanswered pipelined requests. One set per process
 * (the relay runs one loop on one thread); admin.c prints them. */
#ifndef TT_HTTPSTATS_H
#define TT_HTTPSTATS_H

#include <stdint.h>
#include "relay/http/headparse.h"
#include "relay/http/pages.h"

struct tt_httpstats {
    uint64_t refused[TT_REFUSAL_COUNT]; /* by enum tt_http_refusal ([NONE]: the relay's own
                                           failures, out of memory) */
    uint64_t upgrades_declined;         /* answered by anything but 101 (2xx for CONNECT) */
    uint64_t tracking_lost;             /* a response the relay could not read */
    uint64_t pipeline_full;             /* reads held at TT_HTTPPROXY_MAX_PENDING */
    uint64_t device_cookie;             /* responses cut: the device set the relay's cookie */
};

extern struct tt_httpstats tt_httpstats;

/* The page that answers a refusal: 431, 414, 501 or 400. */
enum tt_page tt_httpstats_page(enum tt_http_refusal reason);

/* Counts a refusal and returns its page. */
enum tt_page tt_httpstats_refuse(enum tt_http_refusal reason);

#endif
