/* admincli.c - `tetherd admin` (admincli.h): arguments, one blocking HTTP request to the admin
 * listener (TLS through OpenSSL for https://), the answer read whole (capped) and parsed with
 * http-parser, then printed as a table or as the API's JSON. Text from the API (device names,
 * URLs) is printed with control characters replaced, so a device cannot write to the operator's
 * terminal. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <http_parser.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "common/util.h"
#include "core/frame.h"
#include "relay/admin/admincli.h"
#include "relay/access/grants.h"
#include "relay/lib/pattern.h"

#define EXIT_USAGE 2
#define EXIT_FAIL 1

void tt_admincli_usage(FILE *f)
{
    fputs("usage: tetherd admin [--admin-url URL] [--admin-token-file FILE] COMMAND...\n"
          "\n"
          "The admin API from the command line (the admin token comes from the environment\n"
          "variable TETHER_ADMIN_TOKEN or from --admin-token-file).\n"
          "\n"
          "  devices [--json]        the devices: a table, or the API's JSON\n"
          "  device NAME [--json]    one device\n"
          "  delete NAME             disconnect NAME, release its label and ports, free the name\n"
          "  grant USER PATTERN... --ttl DURATION [--json]\n"
          "                          a short-lived grant for USER to the DEVICE/SERVICE\n"
          "                          patterns; prints its token (shown only once)\n"
          "  grants [--json]         the live grants (never their tokens)\n"
          "  revoke ID               delete a grant: its connections close at once\n"
          "\n"
          "  --admin-url URL         the admin listener (default " TT_ADMINCLI_URL
          "; https:// for\n"
          "                          one behind a TLS proxy)\n"
          "  --admin-token-file FILE read the admin token from the first line of FILE\n"
          "\n"
          "Exit status: 0 done, 1 the API refused or could not be reached, 2 usage error.\n",
          f);
}

/* ---- printing what the API says ---- */

/* s with control characters replaced by '?', into out[outlen] (cut to fit). */
static const char *clean(const char *s, char *out, size_t outlen)
{
    size_t i = 0;
    for (; s && *s && i + 1 < outlen; s++, i++)
        out[i] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[i] = '\0';
    return out;
}

static const char *str(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && s[0] ? s : dflt;
}

/* The TCP services of a device object: "ssh:20001,db:private". */
static void tcp_list(json_t *dev, char *out, size_t outlen)
{
    size_t i;
    json_t *s;
    out[0] = '\0';
    json_array_foreach(json_object_get(dev, "services"), i, s)
    {
        if (strcmp(str(s, "kind", ""), "tcp") != 0)
            continue;
        char one[TT_MAX_NAME + 32];
        json_t *port = json_object_get(s, "port");
        if (json_is_integer(port))
            snprintf(one, sizeof(one), "%s:%lld", str(s, "name", "?"),
                     (long long)json_integer_value(port));
        else
            snprintf(one, sizeof(one), "%s:%s", str(s, "name", "?"),
                     json_is_true(json_object_get(s, "private")) ? "private" : "-");
        size_t used = strlen(out);
        snprintf(out + used, outlen - used, "%s%s", used ? "," : "", one);
    }
    if (!out[0])
        snprintf(out, outlen, "-");
}

#define NCOL 7
#define CELL 512

int tt_admincli_print_devices(FILE *f, const char *body, size_t len)
{
    static const char *const head[NCOL] = {"NAME", "STATE",    "NODE",     "URL",
                                           "TCP",  "BYTES IN", "LAST SEEN"};
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *devs = json_object_get(j, "devices");
    if (!json_is_array(devs)) {
        json_decref(j);
        return -1;
    }
    size_t n = json_array_size(devs);
    bool cluster = false;
    for (size_t i = 0; i < n; i++)
        cluster = cluster || json_object_get(json_array_get(devs, i), "node") != NULL;
    char(*cells)[NCOL][CELL] = calloc(n + 1, sizeof(*cells));
    if (!cells) {
        json_decref(j);
        return -1;
    }
    size_t width[NCOL];
    for (int c = 0; c < NCOL; c++) {
        snprintf(cells[0][c], CELL, "%s", head[c]);
        width[c] = strlen(head[c]);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(devs, i);
        char tmp[CELL], (*row)[CELL] = cells[i + 1];
        clean(str(d, "name", "?"), row[0], CELL);
        snprintf(row[1], CELL, "%s",
                 json_is_true(json_object_get(d, "online")) ? "online" : "offline");
        clean(str(d, "node", "-"), row[2], CELL);
        clean(str(d, "url", "-"), row[3], CELL);
        tcp_list(d, tmp, sizeof(tmp));
        clean(tmp, row[4], CELL);
        json_t *in = json_object_get(d, "bytes_in");
        snprintf(row[5], CELL, "%lld", json_is_integer(in) ? (long long)json_integer_value(in) : 0);
        clean(str(d, "last_seen", "-"), row[6], CELL);
        for (int c = 0; c < NCOL; c++)
            if (strlen(row[c]) > width[c])
                width[c] = strlen(row[c]);
    }
    for (size_t i = 0; i <= n; i++) {
        for (int c = 0; c < NCOL; c++) {
            if (c == 2 && !cluster)
                continue;
            if (c == NCOL - 1)
                fprintf(f, "%s\n", cells[i][c]);
            else
                fprintf(f, "%-*s  ", (int)width[c], cells[i][c]);
        }
    }
    free(cells);
    json_decref(j);
    return 0;
}

int tt_admincli_print_device(FILE *f, const char *body, size_t len)
{
    char a[CELL], b[CELL];
    json_t *d = json_loadb(body, len, 0, NULL);
    if (!json_is_object(d) || !json_string_value(json_object_get(d, "name"))) {
        json_decref(d);
        return -1;
    }
    fprintf(f, "name:            %s\n", clean(str(d, "name", "?"), a, sizeof(a)));
    fprintf(f, "state:           %s\n",
            json_is_true(json_object_get(d, "online")) ? "online" : "offline");
    if (json_object_get(d, "node"))
        fprintf(f, "node:            %s\n", clean(str(d, "node", "-"), a, sizeof(a)));
    fprintf(f, "label:           %s\n", clean(str(d, "label", "-"), a, sizeof(a)));
    fprintf(f, "url:             %s\n", clean(str(d, "url", "-"), a, sizeof(a)));
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(d, "services"), i, s)
    {
        const char *kind = str(s, "kind", "?");
        json_t *port = json_object_get(s, "port");
        if (strcmp(kind, "http") == 0)
            snprintf(b, sizeof(b), "%s", str(s, "url", "-"));
        else if (json_is_integer(port))
            snprintf(b, sizeof(b), "%s:%lld", str(s, "host", "-"),
                     (long long)json_integer_value(port));
        else
            snprintf(b, sizeof(b), "%s",
                     json_is_true(json_object_get(s, "private")) ? "private" : "-");
        char nm[CELL], where[CELL];
        fprintf(f, "service:         %s %s %s\n", clean(kind, a, sizeof(a)),
                clean(str(s, "name", "?"), nm, sizeof(nm)), clean(b, where, sizeof(where)));
    }
    fprintf(f, "connected since: %s\n", clean(str(d, "connected_since", "-"), a, sizeof(a)));
    fprintf(f, "last seen:       %s\n", clean(str(d, "last_seen", "-"), a, sizeof(a)));
    fprintf(f, "remote address:  %s\n", clean(str(d, "remote_addr", "-"), a, sizeof(a)));
    const char *nums[] = {"bytes_in", "bytes_out", "streams"};
    const char *labels[] = {"bytes in:        ", "bytes out:       ", "streams:         "};
    for (int k = 0; k < 3; k++) {
        json_t *v = json_object_get(d, nums[k]);
        fprintf(f, "%s%lld\n", labels[k],
                json_is_integer(v) ? (long long)json_integer_value(v) : 0);
    }
    json_decref(d);
    return 0;
}

static int print_grants(FILE *f, const char *body, size_t len)
{
    char a[CELL], b[CELL];
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *gs = json_object_get(j, "grants");
    if (!json_is_array(gs)) {
        json_decref(j);
        return -1;
    }
    fprintf(f, "%-32s  %-20s  %-20s  %s\n", "ID", "EXPIRES", "USER", "GRANTS");
    size_t i, k;
    json_t *g, *p;
    json_array_foreach(gs, i, g)
    {
        char u[CELL];
        fprintf(f, "%-32s  %-20s  %-20s  ", clean(str(g, "id", "?"), a, sizeof(a)),
                clean(str(g, "expires", "-"), b, sizeof(b)),
                clean(str(g, "user", "?"), u, sizeof(u)));
        json_array_foreach(json_object_get(g, "grants"), k, p)
            fprintf(f, "%s%s", k ? " " : "", clean(json_string_value(p), b, sizeof(b)));
        fputc('\n', f);
    }
    json_decref(j);
    return 0;
}

/* ---- one HTTP request ---- */

struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

static void conn_close(struct conn *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* Connects to host:port within the timeout. Returns the socket or -1 with err. */
static int dial(const char *host, uint16_t port, char err[TT_ERRLEN])
{
    struct addrinfo hints, *res = NULL, *ai;
    char ports[8];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(ports, sizeof(ports), "%u", (unsigned)port);
    int rc = getaddrinfo(host, ports, &hints, &res);
    if (rc != 0) {
        snprintf(err, TT_ERRLEN, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = 0;
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int soerr = ETIMEDOUT;
            socklen_t sl = sizeof(soerr);
            if (poll(&pfd, 1, TT_ADMINCLI_TIMEOUT_S * 1000) == 1)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            errno = soerr;
        } else if (errno == 0 || errno == EINPROGRESS) {
            errno = 0;
        }
        if (errno != 0) {
            last = errno;
            close(fd);
            fd = -1;
            continue;
        }
        fcntl(fd, F_SETFL, fl);
        struct timeval tv = {.tv_sec = TT_ADMINCLI_TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, TT_ERRLEN, "cannot connect to %s:%u: %s", host, (unsigned)port,
                 strerror(last ? last : ECONNREFUSED));
    return fd;
}

static int tls_start(struct conn *c, const char *host, char err[TT_ERRLEN])
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx || SSL_CTX_set_default_verify_paths(c->ctx) != 1 || !(c->ssl = SSL_new(c->ctx))) {
        snprintf(err, TT_ERRLEN, "cannot set up TLS");
        return -1;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
        SSL_set_tlsext_host_name(c->ssl, host);
        X509_VERIFY_PARAM_set1_host(vp, host, 0);
    }
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_connect(c->ssl) != 1) {
        long v = SSL_get_verify_result(c->ssl);
        snprintf(err, TT_ERRLEN, "TLS handshake with %s failed: %s", host,
                 v != X509_V_OK ? X509_verify_cert_error_string(v)
                 : ERR_reason_error_string(ERR_peek_last_error())
                     ? ERR_reason_error_string(ERR_peek_last_error())
                     : "error");
        return -1;
    }
    return 0;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = c->ssl ? SSL_write(c->ssl, p, n > 1 << 20 ? 1 << 20 : (int)n)
                           : send(c->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (!c->ssl && w < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

struct answer {
    int status;
    char *body; /* malloc'd, NUL-terminated */
    size_t len, cap;
    bool done;
};

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct answer *a = p->data;
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4096;
        while (cap < a->len + n + 1)
            cap *= 2;
        char *b = cap <= TT_ADMINCLI_MAX_ANSWER ? realloc(a->body, cap) : NULL;
        if (!b)
            return -1;
        a->body = b;
        a->cap = cap;
    }
    memcpy(a->body + a->len, at, n);
    a->len += n;
    a->body[a->len] = '\0';
    return 0;
}

static int on_complete(http_parser *p)
{
    ((struct answer *)p->data)->done = true;
    return 0;
}

struct target {
    struct tt_url u;
    char base[1024]; /* the URL's path without its trailing '/' */
    char token[TT_MAX_TOKEN + 1];
};

/* One request: method path (under the URL's base) with an optional JSON body. Fills a (status
 * and body). Returns 0, or -1 with err (no connection, a broken or oversized answer). */
static int request(const struct target *t, const char *method, const char *path, const char *body,
                   struct answer *a, char err[TT_ERRLEN])
{
    struct conn c = {.fd = -1};
    char head[4096 + TT_MAX_TOKEN], hostport[TT_HOSTLEN + 16];
    bool v6 = strchr(t->u.host, ':') != NULL;
    memset(a, 0, sizeof(*a));
    snprintf(hostport, sizeof(hostport), "%s%s%s:%u", v6 ? "[" : "", t->u.host, v6 ? "]" : "",
             (unsigned)t->u.port);
    int n = snprintf(head, sizeof(head),
                     "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tetherd-admin\r\n"
                     "Accept: application/json\r\nConnection: close\r\n%s%s%s",
                     method, t->base, path, hostport, t->token[0] ? "Authorization: Bearer " : "",
                     t->token, t->token[0] ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head) - 128) {
        snprintf(err, TT_ERRLEN, "request too long");
        return -1;
    }
    if (body)
        n += snprintf(head + n, sizeof(head) - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    c.fd = dial(t->u.host, t->u.port, err);
    int rc = c.fd < 0 ? -1 : 0;
    if (rc == 0 && strcmp(t->u.scheme, "https") == 0)
        rc = tls_start(&c, t->u.host, err);
    if (rc == 0 &&
        (send_all(&c, head, (size_t)n) != 0 || (body && send_all(&c, body, strlen(body)) != 0))) {
        snprintf(err, TT_ERRLEN, "cannot send the request to %s", hostport);
        rc = -1;
    }
    tt_secret_wipe(head, sizeof(head));
    if (rc != 0) {
        conn_close(&c);
        return -1;
    }
    http_parser p;
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_body = on_body;
    s.on_message_complete = on_complete;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = a;
    char buf[16384];
    size_t total = 0;
    while (!a->done) {
        ssize_t r = c.ssl ? SSL_read(c.ssl, buf, sizeof(buf)) : recv(c.fd, buf, sizeof(buf), 0);
        if (r < 0 && !c.ssl && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, TT_ERRLEN, "no answer from %s: %s", hostport,
                     c.ssl ? "TLS error" : strerror(errno));
            rc = -1;
            break;
        }
        total += (size_t)(r > 0 ? r : 0);
        size_t used = http_parser_execute(&p, &s, buf, (size_t)r);
        if (p.http_errno != HPE_OK || used != (size_t)r || total > TT_ADMINCLI_MAX_ANSWER) {
            snprintf(err, TT_ERRLEN, "a broken or oversized answer from %s", hostport);
            rc = -1;
            break;
        }
        if (r == 0)
            break; /* end of file: complete or not, http_parser saw it */
    }
    if (rc == 0 && !a->done) {
        snprintf(err, TT_ERRLEN, "the answer from %s ended early", hostport);
        rc = -1;
    }
    a->status = p.status_code;
    conn_close(&c);
    if (rc != 0) {
        free(a->body);
        a->body = NULL;
    }
    return rc;
}

/* A refusal: the API's {"error"} (or the status alone) on stderr. Returns EXIT_FAIL. */
static int refused(const struct answer *a)
{
    char e[CELL];
    json_t *j = a->body ? json_loadb(a->body, a->len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "error"));
    fprintf(stderr, "tetherd admin: %d %s%s\n", a->status, msg ? clean(msg, e, sizeof(e)) : "",
            a->status == 401 ? " (give the admin token in TETHER_ADMIN_TOKEN or "
                               "--admin-token-file)"
                             : "");
    json_decref(j);
    return EXIT_FAIL;
}

/* ---- the commands ---- */

/* Percent-encodes s (a device name) for a path into out. */
static void pct(const char *s, char *out, size_t outlen)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hexd[c >> 4];
            out[o++] = hexd[c & 15];
        }
    }
    out[o] = '\0';
}

static int fail(const char *err)
{
    fprintf(stderr, "tetherd admin: %s\n", err);
    return EXIT_FAIL;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "tetherd admin: %s (see tetherd admin --help)\n", msg);
    return EXIT_USAGE;
}

/* GET path; on 200 prints the body as is (json) or through print. */
static int show(const struct target *t, const char *path, bool json,
                int (*print)(FILE *, const char *, size_t))
{
    char err[TT_ERRLEN];
    struct answer a;
    if (request(t, "GET", path, NULL, &a, err) != 0)
        return fail(err);
    int rc = 0;
    if (a.status != 200) {
        rc = refused(&a);
    } else if (json) {
        fwrite(a.body ? a.body : "", 1, a.len, stdout);
        if (a.len == 0 || a.body[a.len - 1] != '\n')
            fputc('\n', stdout);
    } else if (print(stdout, a.body ? a.body : "", a.len) != 0) {
        rc = fail("the admin API's answer is not what this version of tetherd expects");
    }
    free(a.body);
    return rc;
}

static void pct(const char *s, char *out, size_t outlen);

/* Every device: the API's answer as it is when it fits one page; when the API pages its answer
 * ("next"), the pages are read in turn and printed as one {"devices":[...]}. */
static int show_devices(const struct target *t, bool json)
{
    char err[TT_ERRLEN], path[64 + 3 * TT_MAX_NAME], enc[3 * TT_MAX_NAME + 1], next[256] = "";
    json_t *all = json_array();
    struct answer a = {0};
    int rc = 0, pages = 0;
    for (;;) {
        pct(next, enc, sizeof(enc));
        snprintf(path, sizeof(path), "/api/devices%s%s", next[0] ? "?after=" : "", enc);
        if (request(t, "GET", path, NULL, &a, err) != 0) {
            rc = fail(err);
            break;
        }
        if (a.status != 200) {
            rc = refused(&a);
            break;
        }
        json_t *j = json_loadb(a.body ? a.body : "", a.len, 0, NULL);
        json_t *devs = json_object_get(j, "devices");
        const char *nx = json_string_value(json_object_get(j, "next"));
        if (!json_is_array(devs) || !all || json_array_extend(all, devs) != 0) {
            json_decref(j);
            rc = fail("the admin API's answer is not what this version of tetherd expects");
            break;
        }
        pages++;
        bool more = nx && nx[0] && strlen(nx) < sizeof(next) && strcmp(nx, next) != 0 &&
                    json_array_size(devs) > 0;
        if (more)
            snprintf(next, sizeof(next), "%s", nx);
        json_decref(j);
        if (!more)
            break;
        free(a.body);
        a.body = NULL;
    }
    if (rc == 0) {
        /* one page: the API's own bytes; several: one document made of them */
        char *doc = NULL;
        if (pages > 1) {
            json_t *o = json_pack("{s:O}", "devices", all);
            doc = o ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
        }
        const char *body = pages > 1 ? doc : a.body;
        size_t len = pages > 1 ? (doc ? strlen(doc) : 0) : a.len;
        if (!body && pages > 1)
            rc = fail("out of memory");
        else if (json)
            printf("%.*s%s", (int)len, body ? body : "",
                   len == 0 || body[len - 1] != '\n' ? "\n" : "");
        else if (tt_admincli_print_devices(stdout, body ? body : "", len) != 0)
            rc = fail("the admin API's answer is not what this version of tetherd expects");
        free(doc);
    }
    free(a.body);
    json_decref(all);
    return rc;
}

static int do_delete(const struct target *t, const char *path, const char *what, const char *name)
{
    char err[TT_ERRLEN], c[CELL];
    struct answer a;
    if (request(t, "DELETE", path, NULL, &a, err) != 0)
        return fail(err);
    int rc = a.status == 200 || a.status == 204 ? 0 : refused(&a);
    if (rc == 0)
        printf("%s %s\n", what, clean(name, c, sizeof(c)));
    free(a.body);
    return rc;
}

static int do_grant(const struct target *t, const char *user, const char *const *p, size_t n,
                    const char *ttl, bool json)
{
    char err[TT_ERRLEN];
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, json_string(p[i]));
    json_t *o = arr ? json_pack("{s:s, s:o, s:s}", "user", user, "grants", arr, "ttl", ttl) : NULL;
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!body)
        return fail("out of memory");
    struct answer a;
    int rc = request(t, "POST", "/api/grants", body, &a, err);
    free(body);
    if (rc != 0)
        return fail(err);
    if (a.status != 201) {
        rc = refused(&a);
    } else {
        json_t *j = json_loadb(a.body ? a.body : "", a.len, 0, NULL);
        const char *tok = json_string_value(json_object_get(j, "token"));
        if (!tok || !tt_grants_is_token((const uint8_t *)tok, strlen(tok))) {
            rc = fail("the admin API's answer holds no token");
        } else if (json) {
            fwrite(a.body, 1, a.len, stdout);
        } else {
            char c1[CELL], c2[CELL];
            printf("%s\n", tok);
            fprintf(stderr, "tetherd admin: grant %s expires %s (the token is shown only once)\n",
                    clean(str(j, "id", "?"), c1, sizeof(c1)),
                    clean(str(j, "expires", "?"), c2, sizeof(c2)));
        }
        json_decref(j);
        if (a.body)
            tt_secret_wipe(a.body, a.len);
    }
    free(a.body);
    return rc;
}

/* The target: URL and token. Returns 0, or an exit status. */
static int setup(struct target *t, const char *url, const char *token_file)
{
    static const char *const schemes[] = {"http", "https", NULL};
    char err[TT_ERRLEN];
    memset(t, 0, sizeof(*t));
    if (tt_parse_url(url, schemes, &t->u, err) != 0) {
        fprintf(stderr, "tetherd admin: --admin-url: %s\n", err);
        return EXIT_USAGE;
    }
    if (t->u.user[0] || strchr(t->u.path, '?')) {
        fprintf(stderr, "tetherd admin: --admin-url: no user, password or query in the URL\n");
        return EXIT_USAGE;
    }
    snprintf(t->base, sizeof(t->base), "%s", t->u.path);
    size_t bl = strlen(t->base);
    while (bl > 0 && t->base[bl - 1] == '/')
        t->base[--bl] = '\0';
    if (token_file) {
        int rc = tt_read_secret_file(token_file, t->token, sizeof(t->token), err);
        if (rc != 0) {
            fprintf(stderr, "tetherd admin: %s\n", err);
            return rc == TT_SECRET_IO ? EXIT_FAIL : EXIT_USAGE;
        }
    } else {
        const char *env = getenv("TETHER_ADMIN_TOKEN");
        if (env && env[0]) {
            if (tt_check_secret(env, TT_MAX_TOKEN, "TETHER_ADMIN_TOKEN", err) != 0) {
                fprintf(stderr, "tetherd admin: %s\n", err);
                return EXIT_USAGE;
            }
            snprintf(t->token, sizeof(t->token), "%s", env);
        }
    }
    return 0;
}

int tt_admincli_main(int argc, char **argv)
{
    const char *url = TT_ADMINCLI_URL, *token_file = NULL, *ttl = NULL;
    const char *words[TT_GRANTS_MAX_PATTERNS + 4];
    size_t nwords = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            tt_admincli_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--admin-url") == 0 || strcmp(a, "--admin-token-file") == 0 ||
                   strcmp(a, "--ttl") == 0) {
            if (i + 1 >= argc) {
                char m[96];
                snprintf(m, sizeof(m), "%s needs a value", a);
                return usage_error(m);
            }
            if (strcmp(a, "--admin-url") == 0)
                url = argv[++i];
            else if (strcmp(a, "--admin-token-file") == 0)
                token_file = argv[++i];
            else
                ttl = argv[++i];
        } else if (strncmp(a, "--admin-url=", 12) == 0) {
            url = a + 12;
        } else if (strncmp(a, "--admin-token-file=", 19) == 0) {
            token_file = a + 19;
        } else if (strncmp(a, "--ttl=", 6) == 0) {
            ttl = a + 6;
        } else if (a[0] == '-' && a[1] == '-') {
            char m[160];
            char c[96];
            snprintf(m, sizeof(m), "unknown option '%s'", clean(a, c, sizeof(c)));
            return usage_error(m);
        } else if (nwords >= sizeof(words) / sizeof(words[0])) {
            return usage_error("too many arguments");
        } else {
            words[nwords++] = a;
        }
    }
    if (nwords == 0)
        return usage_error("a command is needed: devices, device, delete, grant, grants, revoke");
    const char *cmd = words[0];
    bool is_grant = strcmp(cmd, "grant") == 0;
    if (ttl && !is_grant)
        return usage_error("--ttl goes with grant only");
    struct {
        const char *name;
        size_t min, max; /* words after the command */
        bool json;
    } const cmds[] = {
        {"devices", 0, 0, true}, {"device", 1, 1, true},
        {"delete", 1, 1, false}, {"grant", 2, 1 + TT_GRANTS_MAX_PATTERNS, true},
        {"grants", 0, 0, true},  {"revoke", 1, 1, false},
    };
    size_t k = 0;
    while (k < sizeof(cmds) / sizeof(cmds[0]) && strcmp(cmds[k].name, cmd) != 0)
        k++;
    if (k == sizeof(cmds) / sizeof(cmds[0])) {
        char m[160], c[96];
        snprintf(m, sizeof(m), "unknown command %s", clean(cmd, c, sizeof(c)));
        return usage_error(m);
    }
    if (nwords - 1 < cmds[k].min || nwords - 1 > cmds[k].max) {
        char m[160];
        snprintf(m, sizeof(m), "%s: %s", cmd,
                 k == 0 || k == 4 ? "takes no argument"
                 : is_grant       ? "USER and at least one DEVICE/SERVICE pattern are needed"
                                  : "takes one argument");
        return usage_error(m);
    }
    if (json && !cmds[k].json) {
        char m[96];
        snprintf(m, sizeof(m), "%s has no --json", cmd);
        return usage_error(m);
    }
    char err[TT_ERRLEN];
    if (is_grant) {
        uint64_t ms;
        if (!ttl)
            return usage_error("grant: --ttl DURATION is needed (30s, 15m, 2h, 7d)");
        if (tt_grants_check_user(words[1], err) != 0)
            return usage_error(err);
        for (size_t i = 2; i < nwords; i++)
            if (tt_pattern_check(words[i], err) != 0)
                return usage_error(err);
        if (tt_parse_duration(ttl, &ms, err) != 0 || tt_grants_check_ttl(ms, err) != 0) {
            char m[TT_ERRLEN + 8];
            snprintf(m, sizeof(m), "--ttl: %s", err);
            return usage_error(m);
        }
    }
    struct target t;
    int rc = setup(&t, url, token_file);
    if (rc != 0)
        return rc;
    char path[TT_MAX_NAME * 3 + 64], enc[TT_MAX_NAME * 3 + 1];
    if (k == 0) {
        rc = show_devices(&t, json);
    } else if (k == 1 || k == 2) {
        if (strlen(words[1]) > TT_MAX_NAME)
            return usage_error("a device name is at most 64 bytes");
        pct(words[1], enc, sizeof(enc));
        snprintf(path, sizeof(path), "/api/devices/%s", enc);
        rc = k == 1 ? show(&t, path, json, tt_admincli_print_device)
                    : do_delete(&t, path, "deleted", words[1]);
    } else if (k == 3) {
        rc = do_grant(&t, words[1], words + 2, nwords - 2, ttl, json);
    } else if (k == 4) {
        rc = show(&t, "/api/grants", json, print_grants);
    } else {
        pct(words[1], enc, sizeof(enc));
        snprintf(path, sizeof(path), "/api/grants/%.100s", enc);
        rc = do_delete(&t, path, "revoked", words[1]);
    }
    tt_secret_wipe(t.token, sizeof(t.token));
    fflush(stdout);
    return rc;
}
