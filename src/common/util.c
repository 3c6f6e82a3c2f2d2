/* util.c - small parsers shared by relay, agent and CLI (durations, HOST:PORT, port ranges,
 * URLs via http-parser) and the OpenSSL-backed random helpers. Pure functions over caller
 * buffers: no allocation, no global state; each parser fills err[TT_ERRLEN] on failure. */
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/compat.h"
#include "tether_err.h"

void tt_verrf(char err[TT_ERRLEN], const char *fmt, va_list ap)
{
    vsnprintf(err, TT_ERRLEN, fmt, ap);
}

void tt_errf(char err[TT_ERRLEN], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tt_verrf(err, fmt, ap);
    va_end(ap);
}

static int fail(char err[TT_ERRLEN], const char *fmt, ...) TT_PRINTF(2, 3);

static int fail(char err[TT_ERRLEN], const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        tt_verrf(err, fmt, ap);
        va_end(ap);
    }
    return TETHER_ERR_INVAL;
}

/* Parses decimal digits s[0..len) into *out (no sign, no overflow past max). */
static bool parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int tt_parse_duration(const char *s, uint64_t *ms, char err[TT_ERRLEN])
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    size_t len, ndig = 0;
    uint64_t mult = 1000, v;

    if (s == NULL || *s == '\0')
        return fail(err, "empty duration (use e.g. 30s, 5m, 2h, 7d)");
    len = strlen(s);
    while (ndig < len && s[ndig] >= '0' && s[ndig] <= '9')
        ndig++;
    if (ndig == 0)
        return fail(err, "bad duration '%.64s' (use e.g. 30s, 5m, 2h, 7d)", s);
    if (ndig < len) {
        size_t i;
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strcmp(s + ndig, units[i].suffix) == 0)
                break;
        if (i == sizeof(units) / sizeof(units[0]))
            return fail(err, "bad duration unit in '%.64s' (use ms, s, m, h or d)", s);
        mult = units[i].ms;
    }
    if (!parse_uint(s, ndig, UINT64_MAX / mult, &v))
        return fail(err, "duration '%.64s' is too long", s);
    *ms = v * mult;
    return 0;
}

/* A host name or IPv4 address: letters, digits, '.', '-', '_'. */
static bool host_chars_ok(const char *h, size_t len, bool v6)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (v6) {
            if (!(isxdigit(ch) || ch == ':' || ch == '.' || ch == '%' || isalnum(ch)))
                return false;
        } else if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == '_')) {
            return false;
        }
    }
    return true;
}

int tt_parse_hostport(const char *s, char host[TT_HOSTLEN], uint16_t *port, bool allow_zero,
                      char err[TT_ERRLEN])
{
    const char *h, *p;
    size_t hlen;
    bool v6 = false;
    uint64_t v;

    if (s == NULL || *s == '\0')
        return fail(err, "empty address (want HOST:PORT)");
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return fail(err, "bad address '%.64s' (want [IPV6]:PORT)", s);
        h = s + 1;
        hlen = (size_t)(close - h);
        p = close + 2;
        v6 = true;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL)
            return fail(err, "bad address '%.64s' (want HOST:PORT)", s);
        if (memchr(s, ':', (size_t)(colon - s)) != NULL)
            return fail(err, "bad address '%.64s' (put IPv6 addresses in brackets: [::1]:80)", s);
        h = s;
        hlen = (size_t)(colon - s);
        p = colon + 1;
    }
    if (hlen == 0)
        return fail(err, "bad address '%.64s': empty host", s);
    if (hlen >= TT_HOSTLEN)
        return fail(err, "bad address '%.64s...': host too long", s);
    if (!host_chars_ok(h, hlen, v6))
        return fail(err, "bad address '%.64s': bad host", s);
    if (!parse_uint(p, strlen(p), 65535, &v))
        return fail(err, "bad address '%.64s': port must be a number 0-65535", s);
    if (v == 0 && !allow_zero)
        return fail(err, "bad address '%.64s': port 0 not allowed", s);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)v;
    return 0;
}

int tt_parse_port_range(const char *s, uint16_t *low, uint16_t *high, char err[TT_ERRLEN])
{
    const char *dash;
    uint64_t lo, hi;

    if (s == NULL || *s == '\0')
        return fail(err, "empty port range (want LOW-HIGH)");
    dash = strchr(s, '-');
    if (dash == NULL) {
        /* A single port is a range of one. */
        if (!parse_uint(s, strlen(s), 65535, &lo) || lo == 0)
            return fail(err, "bad port range '%.64s' (want LOW-HIGH, 1-65535)", s);
        hi = lo;
    } else if (!parse_uint(s, (size_t)(dash - s), 65535, &lo) ||
               !parse_uint(dash + 1, strlen(dash + 1), 65535, &hi) || lo == 0 || hi == 0) {
        return fail(err, "bad port range '%.64s' (want LOW-HIGH, 1-65535)", s);
    }
    if (lo > hi)
        return fail(err, "bad port range '%.64s': LOW is above HIGH", s);
    *low = (uint16_t)lo;
    *high = (uint16_t)hi;
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tt_pct_decode(const char *in, size_t len, char *out, size_t outsize)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)in[i];
        if (ch == '%') {
            int a, b;
            if (i + 2 >= len)
                return TETHER_ERR_INVAL;
            a = hexval((unsigned char)in[i + 1]);
            b = hexval((unsigned char)in[i + 2]);
            if (a < 0 || b < 0)
                return TETHER_ERR_INVAL;
            ch = a * 16 + b;
            if (ch == 0)
                return TETHER_ERR_INVAL;
            i += 2;
        }
        if (o + 1 >= outsize)
            return TETHER_ERR_INVAL;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

int tt_parse_url(const char *s, const char *const *allowed, struct tt_url *u, char err[TT_ERRLEN])
{
    struct http_parser_url pu;
    size_t len;
    const char *f;
    size_t flen;

    if (s == NULL || *s == '\0')
        return fail(err, "empty URL");
    len = strlen(s);
    memset(u, 0, sizeof(*u));
    http_parser_url_init(&pu);
    if (http_parser_parse_url(s, len, 0, &pu) != 0)
        return fail(err, "bad URL '%.128s'", s);
    if (!(pu.field_set & (1 << UF_SCHEMA)) || !(pu.field_set & (1 << UF_HOST)))
        return fail(err, "bad URL '%.128s': want SCHEME://HOST[:PORT][/PATH]", s);

    f = s + pu.field_data[UF_SCHEMA].off;
    flen = pu.field_data[UF_SCHEMA].len;
    if (flen >= sizeof(u->scheme))
        return fail(err, "bad URL '%.128s': unsupported scheme", s);
    for (size_t i = 0; i < flen; i++)
        u->scheme[i] = (char)tolower((unsigned char)f[i]);
    u->scheme[flen] = '\0';
    if (allowed != NULL) {
        bool ok = false;
        for (const char *const *a = allowed; *a != NULL; a++)
            if (strcmp(*a, u->scheme) == 0)
                ok = true;
        if (!ok)
            return fail(err, "bad URL '%.128s': scheme '%s' not allowed here", s, u->scheme);
    }

    f = s + pu.field_data[UF_HOST].off;
    flen = pu.field_data[UF_HOST].len;
    if (flen == 0 || flen >= sizeof(u->host))
        return fail(err, "bad URL '%.128s': bad host", s);
    memcpy(u->host, f, flen);
    u->host[flen] = '\0';

    if (pu.field_set & (1 << UF_PORT)) {
        if (pu.port == 0)
            return fail(err, "bad URL '%.128s': port 0", s);
        u->port = pu.port;
        u->port_explicit = true;
    } else if (strcmp(u->scheme, "wss") == 0 || strcmp(u->scheme, "https") == 0) {
        u->port = 443;
    } else if (strcmp(u->scheme, "ws") == 0 || strcmp(u->scheme, "http") == 0) {
        u->port = 80;
    } else if (strcmp(u->scheme, "redis") == 0) {
        u->port = 6379;
    } else {
        return fail(err, "bad URL '%.128s': no port", s);
    }

    if (pu.field_set & (1 << UF_USERINFO)) {
        const char *ui = s + pu.field_data[UF_USERINFO].off;
        size_t uilen = pu.field_data[UF_USERINFO].len;
        const char *colon = memchr(ui, ':', uilen);
        size_t ulen = colon ? (size_t)(colon - ui) : uilen;
        if (tt_pct_decode(ui, ulen, u->user, sizeof(u->user)) != 0)
            return fail(err, "bad URL: bad user name");
        if (colon != NULL &&
            tt_pct_decode(colon + 1, uilen - ulen - 1, u->pass, sizeof(u->pass)) != 0)
            return fail(err, "bad URL: bad password");
    }

    size_t plen = 0;
    if (pu.field_set & (1 << UF_PATH)) {
        plen = pu.field_data[UF_PATH].len;
        if (plen >= sizeof(u->path))
            return fail(err, "bad URL '%.128s': path too long", s);
        memcpy(u->path, s + pu.field_data[UF_PATH].off, plen);
    }
    if (plen == 0)
        u->path[plen++] = '/';
    if (pu.field_set & (1 << UF_QUERY)) {
        size_t qlen = pu.field_data[UF_QUERY].len;
        if (plen + 1 + qlen >= sizeof(u->path))
            return fail(err, "bad URL '%.128s': path too long", s);
        u->path[plen++] = '?';
        memcpy(u->path + plen, s + pu.field_data[UF_QUERY].off, qlen);
        plen += qlen;
    }
    u->path[plen] = '\0';
    return 0;
}

void tt_secret_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

int tt_check_secret(const char *s, size_t maxlen, const char *what, char err[TT_ERRLEN])
{
    size_t n = strlen(s);
    if (n == 0)
        return fail(err, "%s is empty", what);
    if (n > maxlen)
        return fail(err, "%s is too long (at most %zu bytes)", what, maxlen);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return fail(err, "%s may not hold spaces or control characters", what);
    return 0;
}

int tt_read_secret_file(const char *path, char *out, size_t outlen, char err[TT_ERRLEN])
{
    char what[64 + 16];
    size_t n = 0, len = 0; /* bytes kept, bytes in the line */
    bool nul = false;
    int c = EOF, last = EOF, rc;
    FILE *f;
    if (outlen == 0)
        return fail(err, "no room for a secret");
    out[0] = '\0';
    if ((f = fopen(path, "rb")) == NULL) {
        snprintf(err, TT_ERRLEN, "cannot read %.200s: %s", path, strerror(errno));
        return TT_SECRET_IO;
    }
    /* byte by byte, so that no stdio buffer holds more than the first line */
    setvbuf(f, NULL, _IONBF, 0);
    while ((c = getc(f)) != EOF && c != '\n') {
        nul = nul || c == 0;
        if (n + 1 < outlen)
            out[n++] = (char)c;
        len++;
        last = c;
    }
    if (c == EOF && ferror(f)) {
        snprintf(err, TT_ERRLEN, "cannot read %.200s: %s", path, strerror(errno));
        fclose(f);
        OPENSSL_cleanse(out, outlen);
        return TT_SECRET_IO;
    }
    fclose(f);
    if (last == '\r') {
        len--;
        if (n > len)
            n = len;
    }
    out[n] = '\0';
    snprintf(what, sizeof(what), "the first line of %.60s", path);
    if (len > outlen - 1)
        rc = fail(err, "%s is too long (at most %zu bytes)", what, outlen - 1);
    else if (nul)
        rc = fail(err, "%s may not hold spaces or control characters", what);
    else
        rc = tt_check_secret(out, outlen - 1, what, err);
    if (rc != 0)
        OPENSSL_cleanse(out, outlen);
    return rc;
}

int tt_random_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        int k = n > (1u << 20) ? (1 << 20) : (int)n;
        if (RAND_bytes(p, k) != 1)
            return TETHER_ERR_IO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int tt_random_label(char *out, size_t len)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t rnd[64];
    size_t have = 0, used = 0, i = 0;

    while (i < len) {
        if (used == have) {
            int rc = tt_random_bytes(rnd, sizeof(rnd));
            if (rc != 0)
                return rc;
            have = sizeof(rnd);
            used = 0;
        }
        unsigned b = rnd[used++];
        /* Rejection sampling keeps every character equally likely: 26 letters for the first
         * (accept b < 234 = 9 * 26), 36 symbols after (accept b < 252 = 7 * 36). */
        if (i == 0) {
            if (b >= 234)
                continue;
            out[i++] = alphabet[b % 26];
        } else {
            if (b >= 252)
                continue;
            out[i++] = alphabet[b % 36];
        }
    }
    out[len] = '\0';
    return 0;
}

bool tt_consttime_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) {
        /* Same amount of work as a real comparison, then a fixed answer. */
        if (alen > 0)
            (void)CRYPTO_memcmp(a, a, alen);
        return false;
    }
    if (alen == 0)
        return true;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

int tt_read_small_file(const char *path, size_t max, char **out, size_t *len, char err[TT_ERRLEN])
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, TT_ERRLEN, "cannot read %.150s: %s", path, strerror(errno));
        return TETHER_ERR_IO;
    }
    char *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, TT_ERRLEN, "cannot read %.150s: out of memory", path);
        return TETHER_ERR_NOMEM;
    }
    size_t n = fread(buf, 1, max + 1, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad || n > max) {
        free(buf);
        snprintf(err, TT_ERRLEN, "cannot read %.150s: %s", path,
                 bad ? "read error" : "file too large");
        return bad ? TETHER_ERR_IO : TETHER_ERR_TOO_LARGE;
    }
    buf[n] = '\0';
    *len = n;
    *out = buf;
    return 0;
}
