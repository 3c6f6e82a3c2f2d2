/* admin.c - the admin listener's dispatch (admin.h): the checks every request passes (Host and
 * Origin, adminhost.h; the Bearer token or the dashboard's session) and the routing of each path
 * to the file that answers it (adminint.h). Every answer closes the connection. */
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "common/log.h"
#include "relay/admin/admin.h"
#include "relay/admin/adminint.h"
#include "relay/cluster/drain.h"
#include "relay/core.h"
#include "relay/admin/adminhost.h"

/* ---- routing ---- */

/* True when the request carries "Authorization: Bearer TOKEN" with the --admin-token (compared
 * in constant time), or when there is no admin token. */
static bool authorized(struct tt_headconn *hc, const char *token)
{
    if (!token[0])
        return true;
    const uint8_t *val;
    size_t vlen;
    if (tt_headparse_find(&hc->hp, "authorization", &val, &vlen) != 1)
        return false;
    while (vlen && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
        vlen--;
    if (vlen < 7 || strncasecmp((const char *)val, "Bearer ", 7) != 0)
        return false;
    val += 7;
    vlen -= 7;
    while (vlen && *val == ' ') {
        val++;
        vlen--;
    }
    size_t tlen = strlen(token);
    /* compare as many bytes as the token has whatever the length given */
    bool same_len = vlen == tlen;
    int diff = CRYPTO_memcmp(same_len ? val : (const uint8_t *)token, token, tlen);
    return same_len && diff == 0;
}

static const char allow_get[] = "Allow: GET, HEAD\r\n";

/* The address hc arrived at, as an IP literal, into out ("" when unknown). */
static void local_ip(struct tt_headconn *hc, char out[64])
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    out[0] = '\0';
    if (!hc->conn || uv_tcp_getsockname(&hc->conn->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)&ss, out, 64);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)&ss, out, 64);
}

/* DNS rebinding and cross-site requests (adminhost.h): answers 400 (HTTP/1.1 without Host, or
 * several Host headers), 421 (a Host that does not name this listener) or 403 (a request that
 * changes something, from another site's Origin) and returns false; true when hc may go on. */
static bool request_allowed(struct tt_headconn *hc, struct tt_relay *r)
{
    char ip[64];
    const uint8_t *host = NULL, *origin;
    size_t hlen = 0, olen;
    unsigned nhost = tt_headparse_find(&hc->hp, "host", &host, &hlen);
    bool http11 = hc->hp.p.http_major > 1 || (hc->hp.p.http_major == 1 && hc->hp.p.http_minor >= 1);
    if (nhost > 1 || (nhost == 0 && http11)) {
        tt_admin_answer_error(hc, "400 Bad Request", NULL,
                              nhost ? "more than one Host header"
                                    : "an HTTP/1.1 request needs a Host header");
        return false;
    }
    local_ip(hc, ip);
    struct tt_adminhost a = {.listen_ip = r->cfg.admin.host, .local_ip = ip};
    if (nhost == 1 && !tt_adminhost_host_ok(&a, (const char *)host, hlen)) {
        r->admin_refused_host++;
        TT_LOG(TT_LOG_DEBUG, "admin request refused peer=%s:%u reason=host host=%s", hc->peer_ip,
               (unsigned)hc->peer_port, TT_LOG_VN((const char *)host, hlen));
        tt_admin_answer_error(
            hc, "421 Misdirected Request", NULL,
            "this is the admin listener: the Host header must be its own address or "
            "localhost (DNS rebinding protection)");
        return false;
    }
    enum http_method m = hc->hp.p.method;
    if (m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS)
        return true;
    unsigned norigin = tt_headparse_find(&hc->hp, "origin", &origin, &olen);
    if (norigin == 0)
        return true;
    if (norigin > 1 || !host ||
        !tt_adminhost_origin_ok(&a, (const char *)origin, olen, (const char *)host, hlen)) {
        r->admin_refused_origin++;
        TT_LOG(TT_LOG_DEBUG, "admin request refused peer=%s:%u reason=origin origin=%s",
               hc->peer_ip, (unsigned)hc->peer_port,
               TT_LOG_VN((const char *)origin, norigin ? olen : 0));
        tt_admin_answer_error(hc, "403 Forbidden", NULL,
                              "cross-site request refused: the Origin is not this admin listener");
        return false;
    }
    return true;
}

void tt_admin_on_head(struct tt_headconn *hc, void *ud)
{
    struct tt_relay *r = ud;
    const char *path = (const char *)hc->data + hc->hp.url_off;
    size_t plen = hc->hp.url_len;
    const char *q = memchr(path, '?', plen);
    if (q)
        plen = (size_t)(q - path);
    enum http_method m = hc->hp.p.method;
    bool get = m == HTTP_GET || m == HTTP_HEAD;
    if (!request_allowed(hc, r))
        return;
    if (plen == 8 && memcmp(path, "/healthz", 8) == 0 && !r->stopping) {
        if (!get)
            tt_admin_answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8", allow_get,
                            "method not allowed\n", 19);
        else if (tt_drain_on(r))
            tt_admin_answer(hc, "503 Service Unavailable", "text/plain; charset=utf-8", NULL,
                            "draining\n", 9);
        else
            tt_admin_answer(hc, "200 OK", "text/plain; charset=utf-8", NULL, "ok\n", 3);
        return;
    }
    bool root = plen == 1 && path[0] == '/';
    if (root && m == HTTP_POST) {
        tt_admin_signin_post(hc, r); /* the sign-in form */
        return;
    }
    const uint8_t *cookie = NULL;
    size_t clen = 0;
    bool bearer = authorized(hc, r->cfg.admin_token);
    bool session = !bearer && tt_admin_session_of(hc, r, &cookie, &clen) >= 0;
    if (plen == 8 && memcmp(path, "/signout", 8) == 0) {
        if (m != HTTP_POST)
            tt_admin_answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8",
                            "Allow: POST\r\n", "method not allowed\n", 19);
        else
            tt_admin_signout(hc, r, session ? cookie : NULL, clen);
        return;
    }
    if (!bearer && !session) {
        if (root && get)
            tt_admin_signin_page(hc, false, false);
        else
            tt_admin_answer_error(
                hc, "401 Unauthorized", "WWW-Authenticate: Bearer realm=\"tetherd\"\r\n",
                "a valid Authorization: Bearer token or the dashboard's session is "
                "required");
        return;
    }
    /* a browser's session changes nothing without its Origin (checked by request_allowed) */
    if (session && !get && m != HTTP_OPTIONS &&
        tt_headparse_find(&hc->hp, "origin", &cookie, &clen) == 0) {
        r->admin_refused_origin++;
        tt_admin_answer_error(
            hc, "403 Forbidden", NULL,
            "a request with the dashboard's session that changes something needs its "
            "Origin header");
        return;
    }
    if (tt_admin_route_grants(hc, r, path, plen))
        return;
    if (tt_admin_route_console(hc, r, path, plen))
        return;
    if (plen == 10 && memcmp(path, "/api/drain", 10) == 0) {
        tt_admin_api_drain(hc, r);
        return;
    }
    static const char dev_prefix[] = "/api/devices/";
    size_t dplen = sizeof(dev_prefix) - 1;
    if (plen > dplen && memcmp(path, dev_prefix, dplen) == 0) {
        char name[TT_MAX_NAME * 3 + 1];
        if (tt_pct_decode(path + dplen, plen - dplen, name, sizeof(name)) != 0) {
            tt_admin_answer_error(hc, "404 Not Found", NULL, "no such device");
            return;
        }
        if (get)
            tt_admin_api_device(hc, r, name);
        else if (m == HTTP_DELETE)
            tt_admin_api_delete(hc, r, name);
        else
            tt_admin_answer_error(hc, "405 Method Not Allowed", "Allow: GET, HEAD, DELETE\r\n",
                                  "method not allowed");
        return;
    }
    enum { NONE, ROOT, DEVICES, METRICS } which = NONE;
    if (plen == 1 && path[0] == '/')
        which = ROOT;
    else if ((plen == 12 && memcmp(path, "/api/devices", 12) == 0) ||
             (plen == 13 && memcmp(path, "/api/devices/", 13) == 0))
        which = DEVICES;
    else if (plen == 8 && memcmp(path, "/metrics", 8) == 0)
        which = METRICS;
    if (which == NONE) {
        bool api = plen >= 4 && memcmp(path, "/api", 4) == 0;
        if (api)
            tt_admin_answer_error(hc, "404 Not Found", NULL, "not found");
        else
            tt_admin_answer(hc, "404 Not Found", "text/plain; charset=utf-8", NULL, "not found\n",
                            10);
        return;
    }
    if (!get) {
        if (which == DEVICES)
            tt_admin_answer_error(hc, "405 Method Not Allowed", allow_get, "method not allowed");
        else
            tt_admin_answer(hc, "405 Method Not Allowed", "text/plain; charset=utf-8", allow_get,
                            "method not allowed\n", 19);
        return;
    }
    if (which == ROOT)
        tt_admin_dashboard(hc, r, session);
    else if (which == DEVICES)
        tt_admin_api_devices(hc, r);
    else
        tt_admin_metrics(hc, r);
}
