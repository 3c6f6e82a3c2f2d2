/* adminmetrics.c - the admin listener's /metrics (Prometheus text, names tether_*): the relay's
 * counters, its limits, the cluster's and the drain's, HTTP proxying, audit, webhooks, sign-in
 * sessions and the process. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/tls.h"
#include "relay/admin/adminint.h"
#include "relay/core.h"
#include "relay/device/device.h"
#include "relay/http/httpproxy.h"
#include "relay/http/httpstats.h"
#include "relay/looplag.h"
#include "relay/acceptcap.h"
#include "relay/admin/procmetrics.h"
#include "relay/access/signin.h"
#include "relay/device/visitor.h"
#include "relay/admin/webhook.h"

/* ---- metrics ---- */

/* Longer than any line of a part cut at a whole line (tls.h: its longest is 155 bytes, its numbers
 * included at most 175). */
#define METRICS_LINE_MAX 512

/* Parts of /metrics that did not fit their buffer (tether_metrics_truncated_total). */
static uint64_t metrics_truncated;

/* Appends part (text[0..len), written by another module into a buffer of cap bytes); cut: it did
 * not fit, and only its whole lines are kept, counted and logged at the first cut. */
static void add_part(struct tt_adminbuf *b, const char *part, const char *text, size_t len,
                     bool cut, size_t cap)
{
    if (cut) {
        len = tt_adminbuf_whole_lines(text, len);
        if (metrics_truncated++ == 0)
            TT_LOG(TT_LOG_WARN,
                   "metrics part cut: it does not fit its buffer part=%s buffer=%zu "
                   "(counted in tether_metrics_truncated_total)",
                   part, cap);
    }
    tt_adminbuf_add(b, text, len);
}

/* Writes s as a Prometheus label value (backslash, double quote and newline escaped). */
static void prom_label(struct tt_adminbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            tt_adminbuf_str(b, "\\\\");
        else if (*s == '"')
            tt_adminbuf_str(b, "\\\"");
        else if (*s == '\n')
            tt_adminbuf_str(b, "\\n");
        else
            tt_adminbuf_add(b, s, 1);
    }
}

/* The abuse limits' block (limits.h): unauthenticated connections and what was shed, streams
 * refused per reason, timeouts per kind. */
static void limits_metrics(struct tt_adminbuf *b, const struct tt_limits *l)
{
    tt_adminbuf_fmt(
        b,
        "# HELP tether_pending_connections Connections without a whole request head or "
        "device HELLO yet (unauthenticated).\n"
        "# TYPE tether_pending_connections gauge\n"
        "tether_pending_connections %zu\n"
        "# HELP tether_pending_connections_max Cap on them (--max-pending).\n"
        "# TYPE tether_pending_connections_max gauge\n"
        "tether_pending_connections_max %zu\n"
        "# HELP tether_open_files_limit The descriptor limit; the last fd_reserve of it are "
        "kept from unauthenticated connections.\n"
        "# TYPE tether_open_files_limit gauge\n"
        "tether_open_files_limit %llu\n",
        l->npending, l->max_pending, (unsigned long long)l->fd_limit);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_connections_shed_total Unauthenticated connections closed to make "
        "room: the oldest over --max-pending (total) or near the descriptor limit (fds), a "
        "new one over --max-pending-per-addr (per_addr).\n"
        "# TYPE tether_connections_shed_total counter\n"
        "tether_connections_shed_total{reason=\"total\"} %llu\n"
        "tether_connections_shed_total{reason=\"per_addr\"} %llu\n"
        "tether_connections_shed_total{reason=\"fds\"} %llu\n"
        "# HELP tether_accept_errors_total Failed accepts (EMFILE: out of descriptors).\n"
        "# TYPE tether_accept_errors_total counter\n"
        "tether_accept_errors_total %llu\n",
        (unsigned long long)l->shed[TT_LIMITS_SHED_TOTAL],
        (unsigned long long)l->shed[TT_LIMITS_SHED_PER_ADDR],
        (unsigned long long)l->shed[TT_LIMITS_SHED_FDS], (unsigned long long)l->accept_errors);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_streams_refused_total Streams refused: the device's session full "
        "(device), its HTTP or TCP share used (kind), the client address's share used "
        "(client).\n"
        "# TYPE tether_streams_refused_total counter\n"
        "tether_streams_refused_total{reason=\"device\"} %llu\n"
        "tether_streams_refused_total{reason=\"kind\"} %llu\n"
        "tether_streams_refused_total{reason=\"client\"} %llu\n",
        (unsigned long long)l->refused[TT_LIMITS_REFUSED_DEVICE],
        (unsigned long long)l->refused[TT_LIMITS_REFUSED_KIND],
        (unsigned long long)l->refused[TT_LIMITS_REFUSED_CLIENT]);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_timeouts_total Connections closed for slowness: request head, request "
        "body, idle browser connection, idle TCP client, device without HELLO.\n"
        "# TYPE tether_timeouts_total counter\n"
        "tether_timeouts_total{kind=\"head\"} %llu\n"
        "tether_timeouts_total{kind=\"body\"} %llu\n"
        "tether_timeouts_total{kind=\"idle\"} %llu\n"
        "tether_timeouts_total{kind=\"tcp_idle\"} %llu\n"
        "tether_timeouts_total{kind=\"hello\"} %llu\n",
        (unsigned long long)l->timeouts[TT_LIMITS_TIMEOUT_HEAD],
        (unsigned long long)l->timeouts[TT_LIMITS_TIMEOUT_BODY],
        (unsigned long long)l->timeouts[TT_LIMITS_TIMEOUT_IDLE],
        (unsigned long long)l->timeouts[TT_LIMITS_TIMEOUT_TCP_IDLE],
        (unsigned long long)l->timeouts[TT_LIMITS_TIMEOUT_HELLO]);
}

/* The device connections' output queues and pings (common/wsconn.c): connections closed because
 * their peer did not read what it was sent, times reading stopped for it, pings answered and
 * pings left unanswered because a later one came first. */
static void metrics_wsconn(struct tt_adminbuf *b)
{
    struct tt_wsconn_stats w;
    tt_wsconn_get_stats(&w);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_ws_output_overflow_total Connections closed because the peer did not "
        "read: a frame did not fit under the output queue's cap (cap), or queued output did "
        "not move for 30 s (stall).\n"
        "# TYPE tether_ws_output_overflow_total counter\n"
        "tether_ws_output_overflow_total{reason=\"cap\"} %llu\n"
        "tether_ws_output_overflow_total{reason=\"stall\"} %llu\n",
        (unsigned long long)w.overflow_cap, (unsigned long long)w.overflow_stall);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_ws_read_paused_total Times a connection stopped being read because "
        "its output queue passed the stop mark (its peer provoked output it did not read).\n"
        "# TYPE tether_ws_read_paused_total counter\n"
        "tether_ws_read_paused_total %llu\n"
        "# HELP tether_ws_pings_answered_total WebSocket pings answered with a pong.\n"
        "# TYPE tether_ws_pings_answered_total counter\n"
        "tether_ws_pings_answered_total %llu\n"
        "# HELP tether_ws_pings_coalesced_total WebSocket pings left unanswered because a "
        "later ping came before their pong could be written (only the latest is answered).\n"
        "# TYPE tether_ws_pings_coalesced_total counter\n"
        "tether_ws_pings_coalesced_total %llu\n",
        (unsigned long long)w.read_paused, (unsigned long long)w.pings_answered,
        (unsigned long long)w.pings_coalesced);
    tt_adminbuf_fmt(b,
                    "# HELP tether_ws_run_capped_total Event loop turns in which %d "
                    "WebSocket connections were run (started, flushed or closed): the rest "
                    "waited for the next turn.\n"
                    "# TYPE tether_ws_run_capped_total counter\n"
                    "tether_ws_run_capped_total %llu\n",
                    TT_WSCONN_RUN_PER_TURN, (unsigned long long)w.run_capped);
}

/* Drain and admission control (drain.h). */
static void drain_metrics(struct tt_adminbuf *b, struct tt_relay *r)
{
    const struct tt_drain *d = &r->drain;
    tt_adminbuf_fmt(
        b,
        "# HELP tether_drain_state 1 while this node drains (POST /api/drain), else 0.\n"
        "# TYPE tether_drain_state gauge\n"
        "tether_drain_state %d\n"
        "# HELP tether_drain_moved_total Devices a drain sent to the other nodes (GOAWAY "
        "SHUTDOWN).\n"
        "# TYPE tether_drain_moved_total counter\n"
        "tether_drain_moved_total %llu\n"
        "# HELP tether_registering Device connections accepted whose registration is not "
        "answered yet.\n"
        "# TYPE tether_registering gauge\n"
        "tether_registering %zu\n"
        "# HELP tether_max_registering The cap on them (--max-registering; 0: none).\n"
        "# TYPE tether_max_registering gauge\n"
        "tether_max_registering %llu\n"
        "# HELP tether_registrations_refused_total Device handshakes answered 503 with "
        "Retry-After: --max-registering reached (busy), the node drains (draining).\n"
        "# TYPE tether_registrations_refused_total counter\n"
        "tether_registrations_refused_total{reason=\"busy\"} %llu\n"
        "tether_registrations_refused_total{reason=\"draining\"} %llu\n",
        d->on ? 1 : 0, (unsigned long long)d->moved, d->registering,
        (unsigned long long)r->cfg.max_registering, (unsigned long long)d->refused[TT_DRAIN_BUSY],
        (unsigned long long)d->refused[TT_DRAIN_DRAINING]);
}
static void http_metrics(struct tt_adminbuf *b)
{
    tt_adminbuf_str(b,
                    "# HELP tether_http_refused_total Requests the relay refused, by reason (400 "
                    "syntax, target, header, framing, host, other_host; 501 transfer_coding; 431 "
                    "too_large; 414 uri_too_long; none: the relay's own failure).\n"
                    "# TYPE tether_http_refused_total counter\n");
    for (int i = 0; i < TT_REFUSAL_COUNT; i++)
        tt_adminbuf_fmt(b, "tether_http_refused_total{reason=\"%s\"} %llu\n",
                        tt_headparse_refusal_name((enum tt_http_refusal)i),
                        (unsigned long long)tt_httpstats.refused[i]);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_http_upgrades_declined_total Upgrade and CONNECT requests the device "
        "answered with something else than 101 (2xx for CONNECT): the connection stayed "
        "HTTP.\n"
        "# TYPE tether_http_upgrades_declined_total counter\n"
        "tether_http_upgrades_declined_total %llu\n",
        (unsigned long long)tt_httpstats.upgrades_declined);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_http_tracking_lost_total Proxied connections on which the relay could "
        "not read a device's response: its bytes passed on, no further request taken.\n"
        "# TYPE tether_http_tracking_lost_total counter\n"
        "tether_http_tracking_lost_total %llu\n"
        "# HELP tether_http_pipeline_full_total Times a browser's pipelined requests waited "
        "because %d of them were unanswered.\n"
        "# TYPE tether_http_pipeline_full_total counter\n"
        "tether_http_pipeline_full_total %llu\n",
        (unsigned long long)tt_httpstats.tracking_lost, TT_HTTPPROXY_MAX_PENDING,
        (unsigned long long)tt_httpstats.pipeline_full);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_http_device_cookie_refused_total Device responses cut before their "
        "head ended because they set the relay's session cookie (the connection closed).\n"
        "# TYPE tether_http_device_cookie_refused_total counter\n"
        "tether_http_device_cookie_refused_total %llu\n",
        (unsigned long long)tt_httpstats.device_cookie);
}

/* --tcp-allow refusals and the audit log's lines (forward.h, audit.h). */
static void audit_metrics(struct tt_adminbuf *b, const struct tt_relay *r)
{
    tt_adminbuf_fmt(
        b,
        "# HELP tether_access_tcp_refused_total TCP clients closed at once on a public port "
        "because their address is in no --tcp-allow network.\n"
        "# TYPE tether_access_tcp_refused_total counter\n"
        "tether_access_tcp_refused_total %llu\n"
        "# HELP tether_audit_lines_total Lines written to the audit log (--audit-log).\n"
        "# TYPE tether_audit_lines_total counter\n"
        "tether_audit_lines_total %llu\n"
        "# HELP tether_audit_errors_total Audit lines that could not be written (dropped).\n"
        "# TYPE tether_audit_errors_total counter\n"
        "tether_audit_errors_total %llu\n",
        (unsigned long long)r->tcp_allow_refused, (unsigned long long)r->audit.lines,
        (unsigned long long)r->audit.errors);
}

/* --webhook deliveries (webhook.h). */
static void webhook_metrics(struct tt_adminbuf *b, const struct tt_relay *r)
{
    struct tt_webhook_stats s;
    tt_webhook_stats(r->webhooks, &s);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_webhook_events_total Device events for the --webhook URLs (one per "
        "URL): delivered (a 2xx answer), dropped (the queue was full), expired (retried "
        "for --webhook-max-age without success).\n"
        "# TYPE tether_webhook_events_total counter\n"
        "tether_webhook_events_total{result=\"delivered\"} %llu\n"
        "tether_webhook_events_total{result=\"dropped\"} %llu\n"
        "tether_webhook_events_total{result=\"expired\"} %llu\n"
        "# HELP tether_webhook_requests_total Webhook requests: ok (a 2xx answer), failed "
        "(refused, reset, timed out or another status; retried).\n"
        "# TYPE tether_webhook_requests_total counter\n"
        "tether_webhook_requests_total{result=\"ok\"} %llu\n"
        "tether_webhook_requests_total{result=\"failed\"} %llu\n"
        "# HELP tether_webhook_queue Events waiting for delivery, every URL together.\n"
        "# TYPE tether_webhook_queue gauge\n"
        "tether_webhook_queue %llu\n"
        "# HELP tether_webhook_queue_max The cap on tether_webhook_queue (--webhook-queue).\n"
        "# TYPE tether_webhook_queue_max gauge\n"
        "tether_webhook_queue_max %llu\n",
        (unsigned long long)s.delivered, (unsigned long long)s.dropped,
        (unsigned long long)s.expired, (unsigned long long)s.ok, (unsigned long long)s.failed,
        (unsigned long long)s.queued,
        (unsigned long long)(r->webhooks ? s.queue_max : r->cfg.webhook_queue));
}

/* The loop's own stall measure (looplag.h). */
static void looplag_metrics(struct tt_adminbuf *b)
{
    static const double bounds[TT_LOOPLAG_NBOUNDS] = TT_LOOPLAG_BOUNDS;
    struct tt_looplag_stats s;
    tt_looplag_read(&s);
    tt_adminbuf_fmt(b,
                    "# HELP tether_loop_lag_seconds How late the event loop ran a timer due "
                    "every %d ms: how long anything arriving then waited for the loop.\n"
                    "# TYPE tether_loop_lag_seconds histogram\n",
                    TT_LOOPLAG_PERIOD_MS);
    uint64_t cum = 0;
    for (int i = 0; i < TT_LOOPLAG_NBOUNDS; i++) {
        cum += s.bucket[i];
        tt_adminbuf_fmt(b, "tether_loop_lag_seconds_bucket{le=\"%g\"} %llu\n", bounds[i],
                        (unsigned long long)cum);
    }
    tt_adminbuf_fmt(b,
                    "tether_loop_lag_seconds_bucket{le=\"+Inf\"} %llu\n"
                    "tether_loop_lag_seconds_sum %.6f\n"
                    "tether_loop_lag_seconds_count %llu\n"
                    "# HELP tether_loop_lag_max_seconds The largest tether_loop_lag_seconds "
                    "since start.\n"
                    "# TYPE tether_loop_lag_max_seconds gauge\n"
                    "tether_loop_lag_max_seconds %.6f\n",
                    (unsigned long long)s.count, (double)s.sum_ns / 1e9,
                    (unsigned long long)s.count, (double)s.lag_max_ns / 1e9);
    tt_adminbuf_fmt(b,
                    "# HELP tether_loop_turn_max_seconds The longest event loop turn since "
                    "start: its work between two waits for I/O, during which nothing else on "
                    "the node was served.\n"
                    "# TYPE tether_loop_turn_max_seconds gauge\n"
                    "tether_loop_turn_max_seconds %.6f\n"
                    "# HELP tether_loop_turn_cpu_max_seconds The most CPU time one event loop "
                    "turn used since start (a longer turn waited for a core).\n"
                    "# TYPE tether_loop_turn_cpu_max_seconds gauge\n"
                    "tether_loop_turn_cpu_max_seconds %.6f\n",
                    (double)s.turn_max_ns / 1e9, (double)s.turn_cpu_max_ns / 1e9);
    tt_adminbuf_fmt(b,
                    "# HELP tether_loop_long_turns_total Event loop turns that worked longer "
                    "than %d ms.\n"
                    "# TYPE tether_loop_long_turns_total counter\n"
                    "tether_loop_long_turns_total %llu\n"
                    "# HELP tether_loop_busy_seconds_total Time the event loop worked (not "
                    "waiting for I/O).\n"
                    "# TYPE tether_loop_busy_seconds_total counter\n"
                    "tether_loop_busy_seconds_total %.6f\n",
                    TT_LOOPLAG_LONG_TURN_MS, (unsigned long long)s.long_turns,
                    (double)s.busy_ns / 1e9);
    struct tt_acceptcap_stats a;
    tt_acceptcap_read(&a);
    tt_adminbuf_fmt(b,
                    "# HELP tether_accept_paused_total Times a device and browser listener "
                    "accepted %d connections in one event loop turn: the next waited in the "
                    "kernel's accept queue for the next turn.\n"
                    "# TYPE tether_accept_paused_total counter\n"
                    "tether_accept_paused_total %llu\n",
                    TT_ACCEPTCAP_PER_TURN, (unsigned long long)a.paused);
    tt_adminbuf_fmt(b,
                    "# HELP tether_tls_accept_paused_total Times a --tls-listen listener stopped "
                    "accepting because %d connections waited for their handshake: the next "
                    "waited in the kernel's accept queue.\n"
                    "# TYPE tether_tls_accept_paused_total counter\n"
                    "tether_tls_accept_paused_total %llu\n",
                    TT_HEADCONN_WAITING_MAX, (unsigned long long)a.full_paused);
}

/* Request heads run in a later loop turn (headconn.h), both device-and-browser listeners. */
static void heads_metrics(struct tt_adminbuf *b, const struct tt_relay *r)
{
    tt_adminbuf_fmt(b,
                    "# HELP tether_heads_deferred_total Request heads on the device and "
                    "browser listeners whose handling waited for a later event loop turn: %d "
                    "were handled in a turn already.\n"
                    "# TYPE tether_heads_deferred_total counter\n"
                    "tether_heads_deferred_total %llu\n",
                    TT_HEADCONN_PER_TURN,
                    (unsigned long long)(r->web.heads_deferred + r->web_tls.heads_deferred));
    tt_adminbuf_fmt(b,
                    "# HELP tether_tls_handshakes_deferred_total Connections to a --tls-listen "
                    "port that waited, unread, for a later event loop turn before their "
                    "handshake: %d handshakes were started in a turn already.\n"
                    "# TYPE tether_tls_handshakes_deferred_total counter\n"
                    "tether_tls_handshakes_deferred_total %llu\n"
                    "# HELP tether_tls_handshakes_waiting Connections to a --tls-listen port "
                    "waiting now for their handshake's turn.\n"
                    "# TYPE tether_tls_handshakes_waiting gauge\n"
                    "tether_tls_handshakes_waiting %zu\n",
                    TT_HEADCONN_HANDSHAKES_PER_TURN,
                    (unsigned long long)r->web_tls.handshakes_deferred,
                    r->web_tls.handshakes_waiting);
    tt_adminbuf_fmt(
        b,
        "# HELP tether_tls_handshakes_abandoned_total Connections to a --tls-listen "
        "port dropped with no handshake: their client had closed or reset them "
        "while they waited (in the kernel's accept queue or for their turn).\n"
        "# TYPE tether_tls_handshakes_abandoned_total counter\n"
        "tether_tls_handshakes_abandoned_total %llu\n"
        "# HELP tether_tls_handshakes_gated_total Times waiting --tls-listen connections were "
        "held back because the node registers as many devices as --max-registering allows "
        "(counting the handshakes under way).\n"
        "# TYPE tether_tls_handshakes_gated_total counter\n"
        "tether_tls_handshakes_gated_total %llu\n",
        (unsigned long long)r->web_tls.handshakes_abandoned,
        (unsigned long long)r->web_tls.handshakes_gated);
}

void tt_admin_metrics(struct tt_headconn *hc, struct tt_relay *r)
{
    struct devlist l;
    struct tt_adminbuf b = {.ok = true};
    if (!tt_admin_collect(r, &l)) {
        free(l.v);
        tt_admin_answer_oom(hc);
        return;
    }
    uint64_t online = 0, in = r->gone_bytes_in, out = r->gone_bytes_out;
    uint64_t streams = r->gone_streams, connects = r->gone_connects;
    struct view *vs = l.n ? calloc(l.n, sizeof(*vs)) : NULL;
    if (l.n && !vs)
        b.ok = false;
    for (size_t i = 0; vs && i < l.n; i++) {
        tt_admin_view_of(l.v[i], l.now, &vs[i]);
        online += vs[i].online;
        in += vs[i].in;
        out += vs[i].out;
        streams += l.v[i]->streams;
        connects += l.v[i]->connects;
    }
    /* devices past their grace period but not yet swept still count in the totals */
    tt_adminbuf_fmt(
        &b,
        "# HELP tether_devices_online Devices connected now.\n"
        "# TYPE tether_devices_online gauge\n"
        "tether_devices_online %llu\n"
        "# HELP tether_devices_known Devices online or offline within the grace period.\n"
        "# TYPE tether_devices_known gauge\n"
        "tether_devices_known %zu\n",
        (unsigned long long)online, l.n);
    tt_adminbuf_fmt(
        &b,
        "# HELP tether_relay_bytes_total Bytes relayed from (in) and to (out) devices.\n"
        "# TYPE tether_relay_bytes_total counter\n"
        "tether_relay_bytes_total{direction=\"in\"} %llu\n"
        "tether_relay_bytes_total{direction=\"out\"} %llu\n",
        (unsigned long long)in, (unsigned long long)out);
    /* per-device series: two per device, left out of a large node's scrape (config.h) */
    uint8_t per = r->cfg.metrics_per_device;
    bool per_device = per == TT_METRICS_PER_DEVICE_ON || (per == TT_METRICS_PER_DEVICE_AUTO &&
                                                          l.n <= TT_CONFIG_METRICS_PER_DEVICE_MAX);
    tt_adminbuf_fmt(
        &b,
        "# HELP tether_metrics_per_device 1 when this answer has the per-device series "
        "(tether_device_bytes_total): --metrics-per-device on, or auto with at most %d known "
        "devices.\n"
        "# TYPE tether_metrics_per_device gauge\n"
        "tether_metrics_per_device %d\n",
        TT_CONFIG_METRICS_PER_DEVICE_MAX, per_device ? 1 : 0);
    if (per_device)
        tt_adminbuf_str(
            &b, "# HELP tether_device_bytes_total Bytes relayed from (in) and to (out) each "
                "known device.\n"
                "# TYPE tether_device_bytes_total counter\n");
    for (size_t i = 0; per_device && vs && i < l.n; i++) {
        for (int dir = 0; dir < 2; dir++) {
            tt_adminbuf_str(&b, "tether_device_bytes_total{device=\"");
            prom_label(&b, l.v[i]->name);
            tt_adminbuf_fmt(&b, "\",direction=\"%s\"} %llu\n", dir ? "out" : "in",
                            (unsigned long long)(dir ? vs[i].out : vs[i].in));
        }
    }
    tt_adminbuf_fmt(&b,
                    "# HELP tether_streams_total Streams opened to devices.\n"
                    "# TYPE tether_streams_total counter\n"
                    "tether_streams_total %llu\n"
                    "# HELP tether_device_connects_total Device registrations accepted.\n"
                    "# TYPE tether_device_connects_total counter\n"
                    "tether_device_connects_total %llu\n",
                    (unsigned long long)streams, (unsigned long long)connects);
    tt_adminbuf_fmt(
        &b,
        "# HELP tether_admin_refused_total Admin requests refused: a Host that is not the "
        "admin listener's own (421, DNS rebinding), a state-changing request from another "
        "site's Origin (403).\n"
        "# TYPE tether_admin_refused_total counter\n"
        "tether_admin_refused_total{reason=\"host\"} %llu\n"
        "tether_admin_refused_total{reason=\"origin\"} %llu\n",
        (unsigned long long)r->admin_refused_host, (unsigned long long)r->admin_refused_origin);
    tt_admin_session_metrics(&b, r);
    limits_metrics(&b, &r->limits);
    looplag_metrics(&b);
    heads_metrics(&b, r);
    drain_metrics(&b, r);
    metrics_wsconn(&b);
    http_metrics(&b);
    audit_metrics(&b, r);
    webhook_metrics(&b, r);
    tt_adminbuf_fmt(
        &b,
        "# HELP tether_tls_refused_total Connections to a --tls-listen port that got no TLS "
        "session: plain HTTP (answered 400), a failed or non-TLS handshake (headconn.h).\n"
        "# TYPE tether_tls_refused_total counter\n"
        "tether_tls_refused_total{reason=\"plain_http\"} %llu\n"
        "tether_tls_refused_total{reason=\"handshake\"} %llu\n",
        (unsigned long long)r->web_tls.plain_http, (unsigned long long)r->web_tls.tls_failed);
    /* The parts other modules write into fixed buffers here. Each buffer holds its part with
     * room to spare (sizes as of this writing: a part's text, plus at most 20 digits a number);
     * should one grow past its buffer, the part is cut at its last whole line, counted in
     * tether_metrics_truncated_total and logged once (add_part): never cut silently. */
    { /* handshakes full and resumed, ticket keys (tls.h): 1,019 bytes of text and 6 numbers,
       * at most 1,139 */
        char tlstext[2048];
        size_t n = tt_tls_metrics(tlstext, sizeof(tlstext));
        /* tls.h cuts at a whole line, so a cut one ends within a line of the buffer's end:
         * flagged when it does (no line of it is near METRICS_LINE_MAX bytes) */
        add_part(&b, "tls", tlstext, n, n + METRICS_LINE_MAX >= sizeof(tlstext), sizeof(tlstext));
    }
    { /* build info, the process (/proc/self), the TLS certificate's expiry: procmetrics.h;
       * 1,109 bytes of text, two labels of at most 1,023 bytes and one of 300, 6 numbers */
        struct tt_procmetrics pm;
        char pmtext[8192];
        tt_procmetrics_read("/proc", &pm);
        size_t n = tt_procmetrics_format(
            &pm, TT_RELAY_VERSION, &tt_buildinfo_commit ? tt_buildinfo_commit : NULL,
            r->tls ? r->cfg.tls_cert : NULL, tt_tls_ctx_not_after(r->tls), pmtext, sizeof(pmtext));
        bool cut = n >= sizeof(pmtext); /* outlen: too small, whole lines kept */
        add_part(&b, "process", pmtext, cut ? strlen(pmtext) : n, cut, sizeof(pmtext));
    }
    if (r->cluster)
        tt_cluster_metrics(&b, r->cluster); /* cluster_admin.c */
    /* the registry's asynchronous Redis connection (store/redisasync.h): about 2,100 bytes of
     * text (ten buckets) and 24 numbers */
    char store[4096];
    size_t storelen = 0;
    store[0] = '\0';
    int rc = tt_registry_async_metrics(r->reg, store, sizeof(store), &storelen);
    add_part(&b, "redis", store, storelen, rc != 0, sizeof(store));
    char auth[4096]; /* devauth.h: 1,729 bytes of text and 14 numbers */
    size_t alen = 0;
    auth[0] = '\0';
    rc = tt_devauth_metrics(&r->auth, r->reg, auth, sizeof(auth), &alen);
    add_part(&b, "auth", auth, alen, rc != 0, sizeof(auth));
    char acc[8192]; /* access.h: 3,137 bytes of text and 23 numbers */
    size_t aclen = 0;
    acc[0] = '\0';
    rc = tt_access_metrics(&r->access, acc, sizeof(acc), &aclen);
    add_part(&b, "access", acc, aclen, rc != 0, sizeof(acc));
    char signin[8192]; /* signin.h: 5,181 bytes of text and 39 numbers */
    size_t slen = 0;
    signin[0] = '\0';
    tt_signin_metrics(r, signin, sizeof(signin), &slen);
    /* signin.h stops at a part that did not fit, *len then at the buffer's last byte */
    add_part(&b, "signin", signin, slen, slen + 1 >= sizeof(signin), sizeof(signin));
    char vis[4096]; /* visitor.h: 1,526 bytes of text and 13 numbers */
    size_t vlen = tt_visitor_metrics(r, vis, sizeof(vis));
    add_part(&b, "connect", vis, vlen, vlen + 1 >= sizeof(vis), sizeof(vis));
    tt_adminbuf_fmt(&b,
                    "# HELP tether_metrics_truncated_total Parts of /metrics that did not fit "
                    "the buffer they are written into, and were cut at their last whole line "
                    "(logged once at warning).\n"
                    "# TYPE tether_metrics_truncated_total counter\n"
                    "tether_metrics_truncated_total %llu\n",
                    (unsigned long long)metrics_truncated);
    free(vs);
    free(l.v);
    tt_admin_answer_built(hc, true, "text/plain; version=0.0.4", &b);
}
