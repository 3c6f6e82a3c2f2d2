/* adminquery.c - the device list's query, filter and page (adminquery.h). */
#include <stdio.h>
#include <string.h>
#include "relay/admin/adminquery.h"
#include "relay/lib/form.h"

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* One parameter into out[0..cap): 1 when given (and not empty), 0 when absent, -1 when
 * refused (err says why). */
static int param(const char *s, size_t len, const char *name, char *out, size_t cap,
                 char err[TT_ERRLEN])
{
    size_t n;
    int rc = tt_form_get((const uint8_t *)s, len, name, out, cap, &n);
    if (rc == TETHER_ERR_NOT_FOUND)
        return 0;
    if (rc == TETHER_ERR_TOO_LARGE) {
        snprintf(err, TT_ERRLEN, "%s: at most %zu bytes", name, cap - 1);
        return -1;
    }
    if (rc != 0) {
        snprintf(err, TT_ERRLEN, "%s: given twice, or a bad %%-escape or control byte", name);
        return -1;
    }
    return n > 0;
}

int tt_adminquery_parse(const char *s, size_t len, struct tt_adminquery *out, char err[TT_ERRLEN])
{
    char v[TT_MAX_NAME + 1];
    memset(out, 0, sizeof(*out));
    out->limit = TT_ADMINQUERY_LIMIT_MAX;
    err[0] = '\0';
    int rc = param(s, len, "limit", v, sizeof(v), err);
    if (rc < 0)
        return TETHER_ERR_INVAL;
    if (rc > 0) {
        size_t n = 0;
        for (const char *p = v; *p; p++) {
            if (*p < '0' || *p > '9') {
                snprintf(err, TT_ERRLEN, "limit: not a number from 1 to %u",
                         TT_ADMINQUERY_LIMIT_MAX);
                return TETHER_ERR_INVAL;
            }
            n = n * 10 + (size_t)(*p - '0');
            if (n > TT_ADMINQUERY_LIMIT_MAX)
                n = TT_ADMINQUERY_LIMIT_MAX + 1; /* no overflow: more is the maximum */
        }
        if (n == 0) {
            snprintf(err, TT_ERRLEN, "limit: not a number from 1 to %u", TT_ADMINQUERY_LIMIT_MAX);
            return TETHER_ERR_INVAL;
        }
        out->limit = n > TT_ADMINQUERY_LIMIT_MAX ? TT_ADMINQUERY_LIMIT_MAX : n;
        out->limit_given = true;
    }
    if (param(s, len, "after", out->after, sizeof(out->after), err) < 0)
        return TETHER_ERR_INVAL;
    rc = param(s, len, "online", v, sizeof(v), err);
    if (rc < 0)
        return TETHER_ERR_INVAL;
    if (rc > 0) {
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
            out->state = TT_ADMINQUERY_ONLINE;
        } else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
            out->state = TT_ADMINQUERY_OFFLINE;
        } else {
            snprintf(err, TT_ERRLEN, "online: true or false");
            return TETHER_ERR_INVAL;
        }
    }
    if (param(s, len, "q", out->q, sizeof(out->q), err) < 0)
        return TETHER_ERR_INVAL;
    out->qlen = strlen(out->q);
    for (size_t i = 0; i < out->qlen; i++)
        out->q[i] = lower(out->q[i]);
    return 0;
}

/* True when hay (NUL-terminated) contains q->q, ASCII case ignored. */
static bool contains(const struct tt_adminquery *q, const char *hay)
{
    size_t n = strlen(hay);
    if (q->qlen > n)
        return false;
    for (size_t i = 0; i + q->qlen <= n; i++) {
        size_t k = 0;
        while (k < q->qlen && lower(hay[i + k]) == q->q[k])
            k++;
        if (k == q->qlen)
            return true;
    }
    return false;
}

bool tt_adminquery_match(const struct tt_adminquery *q, const char *name, const char *label,
                         bool online)
{
    if (q->state == TT_ADMINQUERY_ONLINE && !online)
        return false;
    if (q->state == TT_ADMINQUERY_OFFLINE && online)
        return false;
    if (!q->qlen)
        return true;
    return contains(q, name) || (label && contains(q, label));
}

bool tt_adminquery_after(const struct tt_adminquery *q, const char *name)
{
    return !q->after[0] || strcmp(name, q->after) > 0;
}

/* Appends name=value (value percent-encoded but for unreserved bytes) to out at *n. */
static bool put(char *out, size_t cap, size_t *n, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    int w = snprintf(out + *n, cap - *n, "%c%s=", *n ? '&' : '?', name);
    if (w < 0 || (size_t)w >= cap - *n)
        return false;
    *n += (size_t)w;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (*n + (plain ? 1 : 3) >= cap)
            return false;
        if (plain) {
            out[(*n)++] = (char)*p;
        } else {
            out[(*n)++] = '%';
            out[(*n)++] = hex[*p >> 4];
            out[(*n)++] = hex[*p & 15];
        }
    }
    out[*n] = '\0';
    return true;
}

int tt_adminquery_format(const struct tt_adminquery *q, const char *after, char *out, size_t cap)
{
    size_t n = 0;
    char lim[16];
    if (!cap)
        return -1;
    out[0] = '\0';
    snprintf(lim, sizeof(lim), "%zu", q->limit);
    bool ok = true;
    if (q->limit_given)
        ok = put(out, cap, &n, "limit", lim);
    if (ok && q->state != TT_ADMINQUERY_ANY)
        ok = put(out, cap, &n, "online", q->state == TT_ADMINQUERY_ONLINE ? "true" : "false");
    if (ok && q->qlen)
        ok = put(out, cap, &n, "q", q->q);
    if (ok && after && after[0])
        ok = put(out, cap, &n, "after", after);
    if (!ok) {
        out[0] = '\0';
        return -1;
    }
    return (int)n;
}
