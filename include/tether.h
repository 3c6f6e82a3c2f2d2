/* tether.h - libtether, the Tether device agent as a C library: it dials out to a relay over
 * WebSocket, registers the device and its services, and forwards the streams the relay opens to
 * the local targets it was given (and to nothing else). One agent runs one event loop of its own
 * on the thread that calls tether_agent_run(). Opaque types only: no libuv or OpenSSL type leaks.
 *
 * Rules that hold for the whole API:
 * - Functions returning int return 0 (TETHER_OK) or a negative code from tether_err.h.
 * - A NULL pointer where an object is required is TETHER_ERR_INVAL (never a crash).
 * - Strings given to the library are copied; the caller keeps ownership of its own.
 * - Strings handed out in an event are valid only during the callback that receives them.
 * - tether_agent_run() ignores SIGPIPE if its disposition is the default (a peer closing a socket
 *   must not kill the process); it changes no other signal.
 *
 * Use (error checks left out):
 *
 *     static void on_event(tether_agent *a, const struct tether_event *ev, void *ud) {
 *         if (ev->kind == TETHER_EVENT_READY)
 *             printf("reachable at %s\n", ev->services[0].url);
 *     }
 *     tether_config *cfg;
 *     tether_agent *agent;
 *     struct tether_callbacks cb = {on_event};
 *     tether_config_new(&cfg);
 *     tether_config_add_server(cfg, "ws://relay.example.com");
 *     tether_config_set_name(cfg, "SN-0042");
 *     tether_config_set_token(cfg, token);
 *     tether_config_add_http(cfg, NULL, "127.0.0.1:8000");
 *     tether_agent_new(cfg, &cb, NULL, &agent);    // fails with tether_config_error(cfg)
 *     tether_config_free(cfg);
 *     tether_agent_run(agent);                     // until tether_agent_stop() from anywhere
 *     tether_agent_free(agent);
 */
#ifndef TETHER_H
#define TETHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tether_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TETHER_VERSION "0.1.0"

#define TETHER_MAX_SERVERS 16      /* --server URLs */
#define TETHER_MAX_SERVICES 8      /* services per device */
#define TETHER_MAX_SERVICE_NAME 32 /* service names: [a-z0-9-], 1..32 characters */
#define TETHER_MAX_DEVICE_NAME 64  /* device names: 1..64 printable bytes, no spaces */
#define TETHER_MAX_TOKEN 128       /* tokens: 1..128 printable bytes, no spaces */
#define TETHER_DEVICE_KEY_LEN 64   /* device keys: 64 lowercase hex digits */

/* Returns TETHER_VERSION (the library's, which may differ from the header's). Static string. */
TETHER_API const char *tether_version(void);

/* Log levels of the library's stderr log (process-wide; default TETHER_LOG_INFO). */
enum tether_log_level {
    TETHER_LOG_ERROR = 0,
    TETHER_LOG_WARN = 1,
    TETHER_LOG_INFO = 2,
    TETHER_LOG_DEBUG = 3,
};

/* Sets the level of the library's log lines on stderr. Values outside the enum are clamped.
 * Not thread-safe with a running agent's logging (set it before tether_agent_run). */
TETHER_API void tether_set_log_level(int level);

enum tether_service_kind {
    TETHER_SERVICE_HTTP = 1, /* exposed as http://LABEL.DOMAIN (or a sibling name) */
    TETHER_SERVICE_TCP = 2,  /* exposed on a public TCP port of the relay */
};

/* ---------------------------------------------------------------------------------------------
 * Configuration. Built with the functions below, then handed to tether_agent_new(), which copies
 * what it needs: the config may be changed or freed afterwards without affecting the agent.
 * A config is not thread-safe. When a function fails, the config is unchanged and
 * tether_config_error() tells why in one line. */
typedef struct tether_config tether_config;

/* Creates an empty config into *out (the caller frees it with tether_config_free()).
 * Returns 0, TETHER_ERR_INVAL (out is NULL) or TETHER_ERR_NOMEM. */
TETHER_API int tether_config_new(tether_config **out);

/* Frees cfg and every string it holds. NULL is ignored. */
TETHER_API void tether_config_free(tether_config *cfg);

/* Adds a relay URL, "ws://HOST[:PORT][/PATH]" (default port 80, path "/") or
 * "wss://HOST[:PORT][/PATH]" (TLS, default port 443). The agent tries the servers in the order
 * added, rotating on each failure. Returns 0, or TETHER_ERR_CONFIG (not a ws:// or wss:// URL,
 * credentials in it, more than TETHER_MAX_SERVERS), TETHER_ERR_INVAL, TETHER_ERR_NOMEM. */
TETHER_API int tether_config_add_server(tether_config *cfg, const char *url);

/* Sets the device's name (its stable identity: a serial number, say) and its token. Replaces a
 * previous value. Returns 0, TETHER_ERR_CONFIG (empty, too long, space or control character),
 * TETHER_ERR_INVAL or TETHER_ERR_NOMEM. */
TETHER_API int tether_config_set_name(tether_config *cfg, const char *name);
TETHER_API int tether_config_set_token(tether_config *cfg, const char *token);

/* Adds a service. name: [a-z0-9-], 1..TETHER_MAX_SERVICE_NAME characters, unique among the
 * device's services; for tether_config_add_http() NULL picks the first free name of "http",
 * "http-2", "http-3"... target: "HOST:PORT" ("[V6]:PORT" for an IPv6 literal), the only address
 * the agent ever connects to for this service; it is reported back verbatim in events. The first
 * HTTP service (or the one named "http") gets the device's main URL. Returns 0, or
 * TETHER_ERR_CONFIG (bad or duplicate name, bad target, more than TETHER_MAX_SERVICES),
 * TETHER_ERR_INVAL, TETHER_ERR_NOMEM. */
TETHER_API int tether_config_add_http(tether_config *cfg, const char *name, const char *target);
TETHER_API int tether_config_add_tcp(tether_config *cfg, const char *name, const char *target);

/* Reaching the relay through an HTTP proxy (CONNECT). By default the agent reads the proxy
 * variables as curl does, once, in tether_agent_new(): for ws:// servers ws_proxy, WS_PROXY,
 * http_proxy, HTTP_PROXY, then all_proxy, ALL_PROXY; for wss:// servers wss_proxy,
 * WSS_PROXY, https_proxy, HTTPS_PROXY, then all_proxy, ALL_PROXY; and skips the proxy for hosts
 * in no_proxy (or NO_PROXY): comma-separated host names matching themselves and their
 * subdomains, IP addresses or CIDR ranges, or "*" for every host.
 * tether_config_set_proxy(): "http://[USER[:PASS]@]HOST[:PORT]" (no scheme means http://; the
 * default port is 1080; USER and PASS are percent-decoded and sent as Basic credentials) is used
 * instead of the variables; "" means no proxy at all. TETHER_ERR_CONFIG for https:// and socks
 * proxies, another scheme or a bad URL (the message never shows the password).
 * tether_config_set_no_proxy(): the no-proxy list to use instead of no_proxy/NO_PROXY (same
 * syntax; "" proxies every host). It applies to a proxy set here too, as curl's does.
 * Return 0, TETHER_ERR_CONFIG, _INVAL, _NOMEM. */
TETHER_API int tether_config_set_proxy(tether_config *cfg, const char *url);
TETHER_API int tether_config_set_no_proxy(tether_config *cfg, const char *list);

/* Name lookups (the relay's host, the proxy's, a service's target). "localhost" and names
 * ending in ".localhost" always mean the loopback address (127.0.0.1, then ::1) and IP
 * literals themselves: neither is ever looked up. By default other names go to the system's
 * resolver; on a system without /etc/resolv.conf (Android), only /etc/hosts is read and a name
 * not there fails with a message saying to give a DNS server.
 * tether_config_set_dns(): "ADDR[:PORT]", the DNS server to ask instead, and only it, without
 * the hosts file or search domains (c-ares): an IPv4 address, or an IPv6 one (in brackets when
 * a port follows); the port defaults to 53. NULL: back to the default. Returns 0,
 * TETHER_ERR_CONFIG (not an IP address, bad port), _INVAL, _NOMEM. */
TETHER_API int tether_config_set_dns(tether_config *cfg, const char *server);

/* TLS options for wss:// (TLS 1.2 at least). By default the relay's certificate is verified
 * against the system's CAs (or, on a system without OpenSSL's CA file and directory, Android's
 * store: /apex/com.android.conscrypt/cacerts, else /system/etc/security/cacerts) and its name
 * against the URL's host (SNI is sent for names); a
 * failed verification is an ERROR event whose message names the reason ("TLS handshake with
 * wss://... failed: certificate verify failed: unable to get local issuer certificate"), and
 * the agent retries with back-off. set_ca_file: a PEM file of CAs trusted in addition to the
 * system's (a private CA); tether_agent_new() fails with TETHER_ERR_CONFIG if it cannot be
 * read or holds no certificate. set_insecure(true): no verification at all (testing only; the
 * agent logs a warning when it starts). Return 0, TETHER_ERR_CONFIG, _INVAL, _NOMEM. */
TETHER_API int tether_config_set_ca_file(tether_config *cfg, const char *path);
TETHER_API int tether_config_set_insecure(tether_config *cfg, bool insecure);

/* The device key (docs/PROTOCOL.md 6.4). The first time a relay registers a name with the fleet
 * token it issues a device key; from then on the name belongs to whoever presents that key, and
 * an agent without it is refused. The agent keeps the key in its state directory, one file per
 * device name (DIR/NAME.key, mode 0600, written atomically before the READY event; characters
 * of NAME other than letters, digits, '-', '_' and '.' are written %XX), and presents it in
 * every registration.
 * tether_config_set_state_dir(): the directory (created, mode 0700, when missing). NULL (the
 * default) means $XDG_STATE_HOME/tether or ~/.local/state/tether, or /var/lib/tether for root
 * (%LOCALAPPDATA%\tether on Windows); "" means no files at all: for firmware without a file
 * system, which keeps the key itself. A key file that cannot be read or written is reported
 * with an ERROR event; the agent goes on (with the key in memory for as long as it runs).
 * tether_config_set_device_key(): the key to present, instead of the state directory's (for
 * an application that keeps it itself): 64 lowercase hex digits, or NULL for none.
 * TETHER_EVENT_READY's device_key is the key a relay issued at that registration (NULL at every
 * other): an application without a state directory stores it and gives it back on its next
 * start. Keys are secrets: never log or print them.
 * Return 0, TETHER_ERR_CONFIG (a malformed key), _INVAL, _NOMEM. */
TETHER_API int tether_config_set_state_dir(tether_config *cfg, const char *dir);
TETHER_API int tether_config_set_device_key(tether_config *cfg, const char *key);

/* Checks that cfg is complete: at least one server, a name, a token and a service. Returns 0 or
 * TETHER_ERR_CONFIG (with tether_config_error() naming what is missing) or TETHER_ERR_INVAL. */
TETHER_API int tether_config_check(tether_config *cfg);

/* The one-line message of the last failed call on cfg, "" if none. Valid until the next call on
 * cfg. Never NULL (a NULL cfg gives ""). */
TETHER_API const char *tether_config_error(const tether_config *cfg);

/* ---------------------------------------------------------------------------------------------
 * Events. */
enum tether_event_kind {
    TETHER_EVENT_READY = 1,        /* registered (first time and after each reconnect) */
    TETHER_EVENT_DISCONNECTED = 2, /* a registered connection ended; the agent reconnects */
    TETHER_EVENT_ERROR = 3,        /* an attempt failed or was refused; the agent retries */
};

/* One service as the relay published it. */
struct tether_service_info {
    const char *name; /* as configured */
    enum tether_service_kind kind;
    const char *url;    /* HTTP: the public URL ("http://k3j9x2mq.localhost:8080");
                           TCP: NULL */
    const char *host;   /* TCP: the host name clients connect to (NULL when private); HTTP:
                           NULL */
    uint16_t port;      /* TCP: the public port (0 when private); HTTP: 0 */
    const char *target; /* the configured "HOST:PORT", verbatim */
    /* The relay keeps the service private (its --access, not the device, decides): a private
     * TCP service has no public port (host NULL, port 0) and is reached with `tether connect`;
     * a private HTTP service keeps its URL, where the relay asks visitors to sign in. */
    bool is_private;
};

struct tether_event {
    enum tether_event_kind kind;
    const char *server; /* the relay URL the event is about (a redirect's target, maybe);
                           never NULL */
    /* READY */
    const char *label; /* the device's DNS label */
    const struct tether_service_info *services;
    size_t nservices; /* same order as configured */
    /* DISCONNECTED: why, in words ("relay is shutting down", "ping timeout"...). */
    const char *reason;
    /* ERROR: what failed, in one line ("relay refused registration: invalid token (...)"). */
    const char *message;
    int err;           /* DISCONNECTED and ERROR: the tether_err code; 0 for READY */
    uint32_t retry_ms; /* DISCONNECTED and ERROR: the next attempt starts in about this long */
    /* READY: the device key the relay issued at this registration (TETHER_DEVICE_KEY_LEN hex
     * digits), already saved in the state directory if there is one; NULL when none was issued
     * (every registration but a name's first). A secret (tether_config_set_device_key). */
    const char *device_key;
};

typedef struct tether_agent tether_agent;

struct tether_callbacks {
    /* Called on the agent's thread, from inside tether_agent_run(). Every pointer in ev is
     * valid during the call only. The callback may call tether_agent_stop(), nothing else on a.
     * May be NULL (events are then only logged). */
    void (*on_event)(tether_agent *a, const struct tether_event *ev, void *user_data);
};

/* ---------------------------------------------------------------------------------------------
 * The agent. */

/* Creates an agent from cfg (checked as by tether_config_check() and copied: cfg may be freed
 * at once), with callbacks cb (copied; may be NULL) and user_data (handed to each callback,
 * never touched). Returns 0 and *out (freed with tether_agent_free()), or TETHER_ERR_CONFIG
 * (see tether_config_error(cfg)), TETHER_ERR_INVAL, TETHER_ERR_NOMEM, TETHER_ERR_IO (the event
 * loop could not be created). */
TETHER_API int tether_agent_new(tether_config *cfg, const struct tether_callbacks *cb,
                                void *user_data, tether_agent **out);

/* Runs the agent on the calling thread until tether_agent_stop(): connects, registers, forwards
 * streams, reconnects forever with exponential back-off. Call it once per agent. Returns 0 after
 * a stop, TETHER_ERR_INVAL (NULL, or called a second time) or TETHER_ERR_IO (event loop
 * failure). */
TETHER_API int tether_agent_run(tether_agent *a);

/* Asks the agent to stop: it says GOAWAY to the relay, closes every connection, and
 * tether_agent_run() returns. Thread-safe and async-signal-safe (it may be called from a signal
 * handler); may be called before tether_agent_run() (which then returns at once) and more than
 * once. */
TETHER_API void tether_agent_stop(tether_agent *a);

/* Frees a. Must not be called while tether_agent_run() is running on another thread. NULL is
 * ignored. */
TETHER_API void tether_agent_free(tether_agent *a);

/* ---------------------------------------------------------------------------------------------
 * tether connect: the visitor's side (docs/PROTOCOL.md, "The visitor's side: tether connect").
 * A visitor reaches one service of one device, named by the device's name and the service's
 * name, through the relay: over the same WebSocket dial as the agent (servers tried in turn,
 * TLS, HTTP proxies, redirects between cluster nodes), each local connection becomes one
 * connection to the service, both ways, half-close carried. A private service needs a user's
 * secret (tether_config_set_user) or a grant token (tether_config_set_grant); a public one
 * needs nothing. The relay checks everything before the connection is made and says why when
 * it refuses (an ERROR event with its HTTP status and reason).
 *
 * Use (error checks left out):
 *
 *     tether_config_new(&cfg);
 *     tether_config_add_server(cfg, "wss://relay.example.com");
 *     tether_config_set_user(cfg, "alice", secret);
 *     tether_connect_new(cfg, "plant-7-gw", "ssh", &cb, NULL, &c);
 *     tether_config_free(cfg);
 *     tether_connect_listen(c, "127.0.0.1:2222");   // or tether_connect_fds(c, 0, 1)
 *     tether_connect_run(c);                        // until tether_connect_stop()
 *     tether_connect_free(c);
 */

/* The visitor's credentials, sent to the relay only (never to the device), in the upgrade
 * request: a user of the relay's --users-file and the user's secret, or a grant token from the
 * relay's admin API. Setting one clears the other. user: 1..TETHER_MAX_DEVICE_NAME printable
 * bytes, no space or ':'; secret and token: 1..256 printable bytes, no space. Both are secrets
 * kept in cfg until it is freed (then wiped): never logged. Return 0, TETHER_ERR_CONFIG, _INVAL,
 * _NOMEM. */
TETHER_API int tether_config_set_user(tether_config *cfg, const char *user, const char *secret);
TETHER_API int tether_config_set_grant(tether_config *cfg, const char *token);

typedef struct tether_connect tether_connect;

enum tether_connect_event_kind {
    TETHER_CONNECT_LISTENING = 1, /* the local listener accepts connections (address) */
    TETHER_CONNECT_ERROR = 2,     /* a connection was refused, could not be made, or broke */
    TETHER_CONNECT_OPEN = 3,      /* a local connection is joined to the service */
    TETHER_CONNECT_CLOSED = 4,    /* that connection is over (bytes) */
};

struct tether_connect_event {
    enum tether_connect_event_kind kind;
    const char *device, *service; /* the target, as given */
    const char *server;           /* the relay URL of the attempt ("" for LISTENING) */
    /* LISTENING: "127.0.0.1:2222" ("[::1]:2222"), the port the system gave for port 0 */
    const char *address;
    /* ERROR: one line naming the target and why ("plant-7-gw/ssh: refused by the relay (HTTP
     * 403): access denied: ..."); text from the relay is cleaned of control bytes */
    const char *message;
    int err;    /* ERROR: a tether_err (TETHER_ERR_HANDSHAKE for a refusal); 0 otherwise */
    int status; /* ERROR: the relay's HTTP status when it refused the upgrade (401, 403, 404,
                   429, 503...), 0 otherwise */
    uint64_t bytes_in, bytes_out; /* CLOSED: local side -> service, and back */
    /* ERROR: 0 when the refusal is final; otherwise the relay answered 503 with Retry-After and
     * this connection dials the same relay again in about this many ms (the Retry-After plus 0
     * to 50 %; one connection waits at most 60 s in all, at most 64 connections wait at once,
     * beyond which the refusal is final); the local side is held, not read, meanwhile */
    uint32_t retry_ms;
};

struct tether_connect_callbacks {
    /* On the run's thread, from inside tether_connect_run(); pointers in ev are valid during the
     * call only. It may call tether_connect_stop(), nothing else on c. May be NULL. */
    void (*on_event)(tether_connect *c, const struct tether_connect_event *ev, void *user_data);
};

/* Creates a visitor for service of device (each 1..TETHER_MAX_DEVICE_NAME printable bytes, no
 * space) from cfg's servers, proxy, TLS options and credentials (copied: cfg may be freed at
 * once; a name, token or service in cfg is not used). Then give it one mode:
 * tether_connect_listen() or tether_connect_fds(). Returns 0 and *out (tether_connect_free),
 * or TETHER_ERR_CONFIG (no server, a bad name, a CA file that cannot be read: see
 * tether_config_error(cfg)), _INVAL, _NOMEM, _IO (no event loop). */
TETHER_API int tether_connect_new(tether_config *cfg, const char *device, const char *service,
                                  const struct tether_connect_callbacks *cb, void *user_data,
                                  tether_connect **out);

/* Listen mode: accept local TCP connections on addr, "[ADDR:]PORT" (ADDR defaults to 127.0.0.1;
 * "[V6]:PORT" for IPv6; port 0 lets the system pick). The listener is opened by
 * tether_connect_run(), which emits LISTENING once it accepts connections and runs until
 * tether_connect_stop(); each connection is dialed on its own: one the relay refuses is closed
 * and an ERROR event says why. Returns 0, TETHER_ERR_CONFIG (bad addr), _INVAL, _STATE (a mode
 * was given already). */
TETHER_API int tether_connect_listen(tether_connect *c, const char *addr);

/* One connection on two file descriptors: bytes read from in_fd go to the service, the
 * service's bytes are written to out_fd (a pipe, a terminal, a socket or a file: for ssh's
 * ProxyCommand, 0 and 1). When in_fd reaches its end the service sees a half-close; when the
 * service's side ends, out_fd is closed. tether_connect_run() returns once both directions have
 * ended. Returns 0, TETHER_ERR_INVAL, _STATE. */
TETHER_API int tether_connect_fds(tether_connect *c, int in_fd, int out_fd);

/* Runs c on the calling thread. Listen mode: until tether_connect_stop() (0), or
 * TETHER_ERR_IO when the listener cannot be opened (an ERROR event says why). Descriptor mode:
 * 0 once both directions ended normally; the ERROR event's code when the relay refused, the
 * dial failed or the connection broke (reset, revoked, lost); 0 after tether_connect_stop().
 * Call it once. TETHER_ERR_INVAL (NULL, no mode, second call). */
TETHER_API int tether_connect_run(tether_connect *c);

/* Asks c to stop: the listener and every connection close (GOAWAY to the relay) and
 * tether_connect_run() returns. Thread-safe and async-signal-safe; may be called more than
 * once. */
TETHER_API void tether_connect_stop(tether_connect *c);

/* Frees c (not while tether_connect_run() runs on another thread). NULL is ignored. */
TETHER_API void tether_connect_free(tether_connect *c);

#ifdef __cplusplus
}
#endif
#endif
