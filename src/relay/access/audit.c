/* audit.c - the audit log (audit.h): JSON lines built with jansson, one write(2) each. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "common/compat.h"
#include "relay/access/audit.h"

int tt_audit_open(struct tt_audit *a, const char *path, char err[TT_ERRLEN])
{
    memset(a, 0, sizeof(*a));
    a->fd = -1;
    if (!path || !path[0])
        return 0;
    snprintf(a->path, sizeof(a->path), "%s", path);
    a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        snprintf(err, TT_ERRLEN, "--audit-log: cannot open %.150s: %s", a->path, strerror(errno));
        return -1;
    }
    return 0;
}

int tt_audit_reopen(struct tt_audit *a, char err[TT_ERRLEN])
{
    if (a->fd < 0)
        return 0;
    int fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, TT_ERRLEN, "cannot reopen %.150s: %s", a->path, strerror(errno));
        return -1;
    }
    close(a->fd);
    a->fd = fd;
    return 0;
}

void tt_audit_close(struct tt_audit *a)
{
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
}

bool tt_audit_on(const struct tt_audit *a)
{
    return a->fd >= 0;
}

static void stamp(json_t *o, int64_t now)
{
    char t[32];
    time_t s = (time_t)(now / 1000);
    struct tm tm;
    tt_gmtime(&s, &tm);
    strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(o, "time", json_string(t));
}

/* A string field from peer-influenced text: jansson refuses invalid UTF-8, so such text is
 * given with its bytes outside printable ASCII as '?'. */
static json_t *text(const char *s)
{
    if (s == NULL)
        return json_null();
    char buf[256];
    size_t i = 0;
    for (; s[i] && i < sizeof(buf) - 1; i++)
        buf[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    buf[i] = '\0';
    return json_string(buf);
}

static void write_line(struct tt_audit *a, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s) {
        a->errors++;
        return;
    }
    size_t n = strlen(s);
    if (n + 1 > TT_AUDIT_LINE_MAX) {
        free(s);
        a->errors++;
        return;
    }
    char line[TT_AUDIT_LINE_MAX];
    memcpy(line, s, n);
    line[n++] = '\n';
    free(s);
    ssize_t w = write(a->fd, line, n);
    if (w == (ssize_t)n)
        a->lines++;
    else
        a->errors++;
}

void tt_audit_connection(struct tt_audit *a, const struct tt_audit_conn *c, int64_t now)
{
    if (a->fd < 0)
        return;
    json_t *o = json_object();
    if (!o) {
        a->errors++;
        return;
    }
    stamp(o, now);
    json_object_set_new(o, "event", json_string("connection"));
    json_object_set_new(o, "device", text(c->device));
    json_object_set_new(o, "service", text(c->service));
    json_object_set_new(o, "kind", text(c->kind));
    json_object_set_new(o, "user", text(c->user));
    json_object_set_new(o, "client", text(c->client));
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)c->bytes_in));
    json_object_set_new(o, "bytes_out", json_integer((json_int_t)c->bytes_out));
    json_object_set_new(o, "duration_ms", json_integer(c->duration_ms < 0 ? 0 : c->duration_ms));
    json_object_set_new(o, "outcome", text(c->outcome));
    write_line(a, o);
}

void tt_audit_signin(struct tt_audit *a, const char *user, const char *client, bool ok, int64_t now)
{
    if (a->fd < 0)
        return;
    char u[64 + 1];
    snprintf(u, sizeof(u), "%s", user ? user : "");
    json_t *o = json_object();
    if (!o) {
        a->errors++;
        return;
    }
    stamp(o, now);
    json_object_set_new(o, "event", json_string("signin"));
    json_object_set_new(o, "user", text(u));
    json_object_set_new(o, "client", text(client));
    json_object_set_new(o, "outcome", json_string(ok ? "ok" : "refused"));
    write_line(a, o);
}
