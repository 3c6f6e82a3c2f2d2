/* output.c - formats tether's stdout (output.h): the "ready" lines and the --json event objects
 * (jansson, compact, keys in insertion order). Pure: returns strings, writes nothing. */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "cli/output.h"

int tt_output_ready_text(const struct tether_event *ev, char *out, size_t outlen)
{
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
            n = snprintf(out + len, outlen - len, "ready http %s -> %s\n", s->url ? s->url : "",
                         s->target);
        else
            n = snprintf(out + len, outlen - len, "ready tcp %s %s%s%s:%u -> %s\n", s->name,
                         v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)s->port, s->target);
        if (n < 0 || (size_t)n >= outlen - len)
            return -1;
        len += (size_t)n;
    }
    return (int)len;
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
        json_object_set_new(o, "host", str(s->host));
        json_object_set_new(o, "port", json_integer(s->port));
    }
    json_object_set_new(o, "target", str(s->target));
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
