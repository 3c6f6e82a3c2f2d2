/* log.c - writes one stderr line per event: "<UTC timestamp> <program> <LEVEL> <message>", or
 * with tt_log_set_json (--log-format json) the same as one JSON object (jansson).
 * Each line goes out in one write so that lines from several threads do not interleave;
 * control characters in the message are replaced so that peer input cannot forge lines.
 * When stderr is systemd's journal (JOURNAL_STREAM names it, as systemd sets it for a unit's
 * output), each line starts with the syslog priority "<3>" (ERROR), "<4>", "<6>" or "<7>" (DEBUG),
 * which journald takes as the entry's PRIORITY and strips: `journalctl -p warning -u tetherd`.
 * The line itself, timestamp included, is unchanged. */
#include "common/log.h"
#include "tether_err.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

int tt_log_level = TT_LOG_INFO;

static const char *log_program = "tether";

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

static bool log_json; /* tt_log_set_json */

/* 1 when stderr is the journal stream named by JOURNAL_STREAM ("DEV:INODE"), 0 when not, -1
 * until the first line asks. */
static int log_journal = -1;

static bool to_journal(void)
{
    if (log_journal < 0) {
        log_journal = 0;
#ifndef _WIN32
        const char *v = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        if (v && sscanf(v, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
            (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
            log_journal = 1;
#endif
    }
    return log_journal == 1;
}

int tt_log_parse_level(const char *s, int *level)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (s == NULL)
        return TETHER_ERR_INVAL;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *level = i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *level = TT_LOG_WARN;
        return 0;
    }
    return TETHER_ERR_INVAL;
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

    char json[sizeof line];
    const char *p = line;
    if (log_json) { /* --log-format json: the same line as a JSON object, if it converts */
        size_t k = tt_log_json_line(json, sizeof json, line, start, n - 1, level);
        if (k > 0) {
            p = json;
            n = k;
        }
    }
    char prio[sizeof line + 4];
    if (to_journal() && n + 3 <= sizeof prio) { /* "<N>": the syslog priority for journald */
        static const char digits[] = {'3', '4', '6', '7'};
        prio[0] = '<';
        prio[1] = digits[level];
        prio[2] = '>';
        memcpy(prio + 3, p, n);
        p = prio;
        n += 3;
    }
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

void tt_log_set_json(bool on)
{
    log_json = on;
}

bool tt_log_is_json(void)
{
    return log_json;
}

/* A key of "key=value": [a-z0-9_.-]+ starting with a letter, n bytes. */
static bool is_key(const char *s, size_t n)
{
    if (n == 0 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* json_string of n bytes, or (not UTF-8) the same bytes with those above 0x7f made '?'. */
static json_t *text(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j != NULL)
        return j;
    char buf[2048];
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    return json_stringn(buf, n);
}

size_t tt_log_json_line(char *out, size_t outlen, const char *line, size_t start, size_t end,
                        int level)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    static const char *const reserved[] = {"time", "program", "level", "msg"};
    json_t *o = json_object(), *fields = json_object();
    char msg[2048];
    size_t mlen = 0, i = start;
    const char *sp = memchr(line, ' ', start);

    if (o == NULL || fields == NULL || sp == NULL || level < 0 || level > 3) {
        json_decref(o);
        json_decref(fields);
        return 0;
    }
    /* "msg words key=value key=\"quoted \\\" value\" ...": words go to msg, pairs to fields */
    while (i < end) {
        while (i < end && line[i] == ' ')
            i++;
        size_t w = i;
        while (i < end && line[i] != ' ' && line[i] != '=' && line[i] != '"')
            i++;
        if (i < end && line[i] == '=' && is_key(line + w, i - w)) {
            char key[72], val[TT_LOG_VALUE_MAX * 2];
            size_t klen = i - w < sizeof key - 8 ? i - w : sizeof key - 8, vlen = 0;
            memcpy(key, line + w, klen);
            key[klen] = '\0';
            for (size_t r = 0; r < sizeof reserved / sizeof reserved[0]; r++)
                if (strcmp(key, reserved[r]) == 0) {
                    memmove(key + 6, key, klen + 1); /* "field_time" */
                    memcpy(key, "field_", 6);
                }
            i++;
            if (i < end && line[i] == '"') {
                for (i++; i < end && line[i] != '"'; i++) {
                    if (line[i] == '\\' && i + 1 < end &&
                        (line[i + 1] == '"' || line[i + 1] == '\\'))
                        i++;
                    if (vlen < sizeof val)
                        val[vlen++] = line[i];
                }
                if (i < end)
                    i++; /* the closing quote */
            } else {
                for (; i < end && line[i] != ' '; i++)
                    if (vlen < sizeof val)
                        val[vlen++] = line[i];
            }
            json_object_set_new(fields, key, text(val, vlen));
            continue;
        }
        while (i < end && line[i] != ' ') /* a word of the message (or of a bad pair) */
            i++;
        if (mlen > 0 && mlen < sizeof msg)
            msg[mlen++] = ' ';
        size_t k = i - w < sizeof msg - mlen ? i - w : sizeof msg - mlen;
        memcpy(msg + mlen, line + w, k);
        mlen += k;
    }
    json_object_set_new(o, "time", text(line, (size_t)(sp - line)));
    json_object_set_new(o, "program", json_string(log_program));
    json_object_set_new(o, "level", json_string(levels[level]));
    json_object_set_new(o, "msg", text(msg, mlen));
    json_object_update(o, fields);
    json_decref(fields);
    char *dump = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    size_t n = dump ? strlen(dump) : 0;
    if (dump == NULL || n + 2 > outlen) {
        free(dump);
        return 0;
    }
    memcpy(out, dump, n);
    out[n++] = '\n';
    out[n] = '\0';
    free(dump);
    return n;
}
