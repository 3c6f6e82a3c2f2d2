/* adminbuf.c - the admin listener's answer buffer (adminbuf.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "relay/admin/adminbuf.h"

void tt_adminbuf_add(struct tt_adminbuf *b, const char *s, size_t n)
{
    if (!b->ok)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = cap <= TT_ADMINBUF_MAX ? realloc(b->p, cap) : NULL;
        if (!p) {
            b->ok = false;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void tt_adminbuf_str(struct tt_adminbuf *b, const char *s)
{
    tt_adminbuf_add(b, s, strlen(s));
}

void tt_adminbuf_fmt(struct tt_adminbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        b->ok = false;
    else
        tt_adminbuf_add(b, tmp, (size_t)n);
}

void tt_adminbuf_html(struct tt_adminbuf *b, const char *s)
{
    while (*s) {
        size_t run = strcspn(s, "&<>\"'");
        tt_adminbuf_add(b, s, run);
        s += run;
        if (!*s)
            break;
        switch (*s) {
        case '&':
            tt_adminbuf_str(b, "&amp;");
            break;
        case '<':
            tt_adminbuf_str(b, "&lt;");
            break;
        case '>':
            tt_adminbuf_str(b, "&gt;");
            break;
        case '"':
            tt_adminbuf_str(b, "&quot;");
            break;
        default:
            tt_adminbuf_str(b, "&#39;");
        }
        s++;
    }
}

size_t tt_adminbuf_whole_lines(const char *s, size_t len)
{
    while (len > 0 && s[len - 1] != '\n')
        len--;
    return len;
}
