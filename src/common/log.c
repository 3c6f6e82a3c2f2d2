/* log.c - writes one stderr line per event: "<UTC timestamp> <program> <LEVEL> <message>".
 * Each line goes out in one write so that lines from several threads do not interleave;
 * control characters in the message are replaced so that peer input cannot forge lines. */
#include "common/log.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

int tt_log_level = TT_LOG_INFO;

static const char *log_program = "tether";

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int tt_log_parse_level(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (s == NULL)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return TT_LOG_WARN;
    return -1;
}

void tt_log_set_program(const char *s)
{
    if (s != NULL)
        log_program = s;
}

/* The escape of byte ch in out (at most 4 bytes); returns its length (1 when ch stays as is). */
static size_t escape_byte(unsigned char ch, char out[4])
{
    static const char hex[] = "0123456789abcdef";
    if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
        out[0] = (char)ch;
        return 1;
    }
    out[0] = '\\';
    switch (ch) {
    case '"':
    case '\\':
        out[1] = (char)ch;
        return 2;
    case '\n':
        out[1] = 'n';
        return 2;
    case '\r':
        out[1] = 'r';
        return 2;
    case '\t':
        out[1] = 't';
        return 2;
    default:
        out[1] = 'x';
        out[2] = hex[ch >> 4];
        out[3] = hex[ch & 15];
        return 4;
    }
}

static const char *quote(char *out, size_t outlen, const char *s, size_t n, bool may_quote)
{
    char e[4];
    size_t need = 0, len = 0;
    bool q = false;

    if (outlen < 8) {
        if (outlen)
            out[0] = '\0';
        return out;
    }
    if (s == NULL)
        n = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        need += escape_byte(ch, e);
        q = q || ch == ' ' || ch == '=' || need > i + 1;
    }
    q = may_quote && (q || n == 0);
    /* the bytes that fit between the quotes; "..." marks a cut */
    size_t room = outlen - 1 - (q ? 2 : 0);
    bool cut = need > room;
    if (cut)
        room -= 3;
    if (q)
        out[len++] = '"';
    for (size_t i = 0; i < n; i++) {
        size_t k = escape_byte((unsigned char)s[i], e);
        if (len - (q ? 1 : 0) + k > room)
            break;
        memcpy(out + len, e, k);
        len += k;
    }
    if (cut) {
        memcpy(out + len, "...", 3);
        len += 3;
    }
    if (q)
        out[len++] = '"';
    out[len] = '\0';
    return out;
}

const char *tt_log_value(char *out, size_t outlen, const char *s)
{
    return quote(out, outlen, s, s ? strlen(s) : 0, true);
}

const char *tt_log_valuen(char *out, size_t outlen, const char *s, size_t n)
{
    return quote(out, outlen, s, n, true);
}

const char *tt_log_escape(char *out, size_t outlen, const char *s)
{
    return quote(out, outlen, s, s ? strlen(s) : 0, false);
}

void tt_log_write(int level, const char *fmt, ...)
{
    char line[2048];
    uv_timeval64_t tv; /* libuv's wall clock: clock_gettime() is not in Windows' C library */
    time_t secs;
    struct tm tm;
    size_t n;
    int r;

    if (level < TT_LOG_ERROR)
        level = TT_LOG_ERROR;
    if (level > TT_LOG_DEBUG)
        level = TT_LOG_DEBUG;
    if (uv_gettimeofday(&tv) != 0)
        tv.tv_sec = tv.tv_usec = 0;
    secs = (time_t)tv.tv_sec;
    if (tt_gmtime(&secs, &tm) == NULL)
        memset(&tm, 0, sizeof tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03dZ %s %s ", (int)(tv.tv_usec / 1000), log_program,
                 level_names[level]);
    if (r < 0 || (size_t)r >= sizeof(line) - n)
        return;
    n += (size_t)r;

    size_t start = n;
    va_list ap;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (r < 0)
        r = 0;
    if ((size_t)r >= sizeof(line) - n - 1) {
        n = sizeof(line) - 2;
        memcpy(line + n - 3, "...", 3);
    } else {
        n += (size_t)r;
    }
    /* One event, one line: no embedded newlines or escape sequences from peer input. */
    for (size_t i = start; i < n; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (ch < 0x20 || ch == 0x7f)
            line[i] = (ch == '\t') ? ' ' : '?';
    }
    line[n++] = '\n';

    const char *p = line;
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
}

size_t tt_log_stamp(char *out, size_t outlen)
{
    uv_timeval64_t tv;
    time_t secs;
    struct tm tm;
    char day[32];

    if (outlen == 0)
        return 0;
    if (uv_gettimeofday(&tv) != 0)
        tv.tv_sec = tv.tv_usec = 0;
    secs = (time_t)tv.tv_sec;
    if (tt_gmtime(&secs, &tm) == NULL)
        memset(&tm, 0, sizeof tm);
    if (strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        day[0] = '\0';
    int n = snprintf(out, outlen, "%s.%03dZ %s ", day, (int)(tv.tv_usec / 1000), log_program);
    if (n < 0 || (size_t)n >= outlen) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}
