/* output.c - formats tether's stdout (output.h): the "ready" lines and the --json event objects
 * (jansson, compact, keys in insertion order), and the event lines on stderr. Text from the relay
 * (URLs, hosts, reasons) never brings a control byte along: libtether checks and cleans it, and
 * this file masks whatever would still break a line (jansson escapes the JSON). Pure: returns
 * strings, writes nothing. */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "cli/output.h"

const char *tt_output_field(const char *s, bool word, char *buf, size_t len)
{
    size_t i;
    if (s == NULL)
        s = "";
    for (i = 0; s[i] && i < len - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c >= 0x7f || (word && c == ' ')) ? '?' : (char)c;
    }
    buf[i] = '\0';
    return buf;
}

int tt_output_ready_text(const struct tether_event *ev, char *out, size_t outlen)
{
    char a[1024], b[256];

    size_t len = 0;

    if (ev->kind != TETHER_EVENT_READY) {
        if (outlen)
            out[0] = '\0';
        return 0;
    }
    for (size_t i = 0; i < ev->nservices; i++) {
        const struct tether_service_info *s = &ev->services[i];
        const char *host = s->host ? s->host : "";
        bool v6 = strchr(host, ':') != NULL;
        int n;

        if (s->kind == TETHER_SERVICE_HTTP)
            n = snprintf(out + len, outlen - len, "ready http %s -> %s\n",
                         tt_output_field(s->url, true, a, sizeof a),
                         tt_output_field(s->target, true, b, sizeof b));
        else if (s->is_private) /* no public port: reached with tether connect */
            n = snprintf(out + len, outlen - len, "ready tcp %s private -> %s\n",
                         tt_output_field(s->name, true, b, sizeof b), s->target);
        else
            n = snprintf(out + len, outlen - len, "ready tcp %s %s%s%s:%u -> %s\n",
                         tt_output_field(s->name, true, b, sizeof b), v6 ? "[" : "",
                         tt_output_field(host, true, a, sizeof a), v6 ? "]" : "", (unsigned)s->port,
                         s->target);
        if (n < 0 || (size_t)n >= outlen - len)
            return -1;
        len += (size_t)n;
    }
    return (int)len;
}

int tt_output_event_text(const struct tether_event *ev, char *out, size_t outlen)
{
    char text[1024];
    int n;
    if (ev->kind == TETHER_EVENT_DISCONNECTED)
        n = snprintf(out, outlen, "disconnected: %s (reconnecting in %.1f s)\n",
                     tt_output_field(ev->reason, false, text, sizeof text), ev->retry_ms / 1000.0);
    else if (ev->kind == TETHER_EVENT_ERROR)
        n = snprintf(out, outlen, "error: %s (retrying in %.1f s)\n",
                     tt_output_field(ev->message, false, text, sizeof text), ev->retry_ms / 1000.0);
    else
        n = snprintf(out, outlen, "%s", "");
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

/* json_string() refuses invalid UTF-8 (a relay's reason, a host name): keep the line, mask the
 * bytes. */
static json_t *str(const char *s)
{
    json_t *j;
    char buf[1024];
    size_t i;

    if (s == NULL)
        s = "";
    j = json_string(s);
    if (j)
        return j;
    for (i = 0; s[i] && i < sizeof buf - 1; i++)
        buf[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    buf[i] = '\0';
    return json_string(buf);
}

static json_t *service_json(const struct tether_service_info *s)
{
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    json_object_set_new(o, "name", str(s->name));
    if (s->kind == TETHER_SERVICE_HTTP) {
        json_object_set_new(o, "kind", json_string("http"));
        json_object_set_new(o, "url", str(s->url));
    } else {
        json_object_set_new(o, "kind", json_string("tcp"));
        if (!s->is_private) {
            json_object_set_new(o, "host", str(s->host));
            json_object_set_new(o, "port", json_integer(s->port));
        }
    }
    json_object_set_new(o, "target", str(s->target));
    /* only when private: a public service's object stays exactly as SPEC shows it */
    if (s->is_private)
        json_object_set_new(o, "private", json_true());
    return o;
}

char *tt_output_json(const struct tether_event *ev)
{
    json_t *o = json_object();
    char *out;

    if (o == NULL)
        return NULL;
    switch (ev->kind) {
    case TETHER_EVENT_READY: {
        json_t *arr = json_array();
        json_object_set_new(o, "event", json_string("ready"));
        for (size_t i = 0; arr && i < ev->nservices; i++)
            json_array_append_new(arr, service_json(&ev->services[i]));
        json_object_set_new(o, "services", arr);
        break;
    }
    case TETHER_EVENT_DISCONNECTED:
        json_object_set_new(o, "event", json_string("disconnected"));
        json_object_set_new(o, "reason", str(ev->reason));
        break;
    case TETHER_EVENT_ERROR:
        json_object_set_new(o, "event", json_string("error"));
        json_object_set_new(o, "message", str(ev->message));
        break;
    }
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return out;
}
