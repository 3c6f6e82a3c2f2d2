/* limits.h - the relay's bounds against a stranger who would exhaust it or lock a device out
 * (docs/operators-guide.md, "Limits and abuse"):
 *   - unauthenticated connections (a request head not complete yet on a listener, headconn.h;
 *     a device connection whose HELLO has not been answered, device.c): counted in total and
 *     per client address (addrkey.h) on one list, oldest first. Over the per-address cap a new
 *     connection is refused; over the total cap, or when file descriptors run short (the
 *     accepted socket's descriptor number is within the reserve of RLIMIT_NOFILE: Linux hands
 *     out the lowest free one), the oldest is shed to make room;
 *   - each device's streams: at most a share of --max-streams per kind when the device has
 *     both HTTP and TCP services, and at most --max-streams-per-client per client address;
 *   - the counters /metrics shows for all of it (shed, refused, timed out).
 * One per relay, used on the loop's thread only. No I/O: shedding calls the owner's callback. */
#ifndef TT_LIMITS_H
#define TT_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "relay/lib/addrkey.h"
#include "relay/lib/strmap.h"
#include "core/frame.h"

/* Descriptors kept out of reach of unauthenticated connections: max(this, limit / 20). */
#define TT_LIMITS_FD_RESERVE_MIN 64
/* Default total cap on unauthenticated connections: half the descriptor limit, at most this
 * (each one may hold a read chunk with up to 16 KiB of request head while it arrives). */
#define TT_LIMITS_PENDING_MAX_DEFAULT 16384
/* Default cap per client address (--max-pending-per-addr). */
#define TT_LIMITS_PENDING_PER_ADDR_DEFAULT 128
/* Connections shed at once when accept() itself fails for want of descriptors. */
#define TT_LIMITS_SHED_ON_EMFILE 16
/* At most one "shedding" log line per this (the counters say the rest). */
#define TT_LIMITS_LOG_EVERY_MS 10000

/* Why a connection was shed (tt_limits.shed[]). */
enum tt_limits_shed_reason {
    TT_LIMITS_SHED_TOTAL = 0,    /* --max-pending reached: the oldest goes */
    TT_LIMITS_SHED_PER_ADDR = 1, /* --max-pending-per-addr reached: the new one goes */
    TT_LIMITS_SHED_FDS = 2,      /* descriptors short: the oldest goes (or the new one) */
    TT_LIMITS_SHED_N
};

/* Why a stream was refused (tt_limits.refused[]). */
enum tt_limits_refusal {
    TT_LIMITS_OK = 0,
    TT_LIMITS_REFUSED_DEVICE = 1, /* the device's session is full (--max-streams, or the
                                     device's own max_streams) */
    TT_LIMITS_REFUSED_KIND = 2,   /* its HTTP (or TCP) streams used their share */
    TT_LIMITS_REFUSED_CLIENT = 3, /* that client address used its share */
    TT_LIMITS_REFUSED_N
};

/* What timed out (tt_limits.timeouts[]). */
enum tt_limits_timeout {
    TT_LIMITS_TIMEOUT_HEAD = 0,     /* a request head (--head-timeout) */
    TT_LIMITS_TIMEOUT_BODY = 1,     /* a request body (--body-timeout, --body-min-rate) */
    TT_LIMITS_TIMEOUT_IDLE = 2,     /* a browser connection silent both ways (--idle-timeout) */
    TT_LIMITS_TIMEOUT_TCP_IDLE = 3, /* a raw TCP client silent both ways (--tcp-idle-timeout) */
    TT_LIMITS_TIMEOUT_HELLO = 4,    /* a device connection without HELLO */
    TT_LIMITS_TIMEOUT_N
};

struct tt_limits_conn;
/* Closes the connection of c (already taken off the list) at once, without a word. */
typedef void (*tt_limits_shed_cb)(struct tt_limits_conn *c);

/* An unauthenticated connection, embedded in its owner (headconn, devconn). Zeroed by the
 * owner before tt_limits_admit. */
struct tt_limits_conn {
    struct tt_limits_conn *prev, *next;
    tt_limits_shed_cb shed;
    char key[TT_ADDRKEY_LEN];
    bool linked; /* on the list and counted */
};

/* One stream counted against a device (embedded in the forwarder's client state). */
struct tt_limits_stream {
    char dev[TT_MAX_NAME + 1];
    char key[TT_ADDRKEY_LEN];
    uint8_t kind; /* TT_SERVICE_HTTP or TT_SERVICE_TCP */
    bool counted;
};

struct tt_limits {
    /* settings */
    uint64_t fd_limit;    /* RLIMIT_NOFILE when started (0: unknown, no descriptor check) */
    uint64_t fd_reserve;  /* descriptors kept out of reach */
    size_t max_pending;   /* 0: no total cap */
    size_t max_per_addr;  /* 0: no per-address cap */
    unsigned max_streams; /* --max-streams */
    unsigned per_client;  /* --max-streams-per-client (0: none) */
    /* Exempt from the per-address cap (cluster nodes); NULL: nobody. */
    bool (*exempt)(const char *key, void *ud);
    void *exempt_ud;
    /* unauthenticated connections, oldest first */
    struct tt_limits_conn *head, *tail;
    size_t npending;
    struct tt_strmap per_addr; /* key -> count, as a uintptr_t */
    /* device streams: "h\x1fNAME", "t\x1fNAME", "a\x1fKEY\x1fNAME" -> count (uintptr_t) */
    struct tt_strmap streams;
    /* counters (/metrics) */
    uint64_t shed[TT_LIMITS_SHED_N];
    uint64_t refused[TT_LIMITS_REFUSED_N];
    uint64_t timeouts[TT_LIMITS_TIMEOUT_N];
    uint64_t accept_errors;
    uint64_t logged_at;        /* uv_now of the last "shedding" log line (0: none yet) */
    uint64_t accept_logged_at; /* ... and of the last "accept failed" one */
    uv_loop_t *loop;
};

/* Prepares l. fd_limit: the process's RLIMIT_NOFILE (0: unknown); max_pending 0 picks the
 * default (half of fd_limit, at most TT_LIMITS_PENDING_MAX_DEFAULT); max_per_addr and
 * per_client 0 mean no cap. Cannot fail. */
void tt_limits_init(struct tt_limits *l, uv_loop_t *loop, uint64_t fd_limit, size_t max_pending,
                    size_t max_per_addr, unsigned max_streams, unsigned per_client);
/* Frees l's tables. Every connection must have left and every stream been given back (or the
 * relay is exiting). */
void tt_limits_reset(struct tt_limits *l);

/* The process's descriptor limit (RLIMIT_NOFILE's soft value; 0 if unknown). */
uint64_t tt_limits_nofile(void);

/* Counts the new unauthenticated connection c (zeroed, with c->shed set) whose socket is tcp.
 * Over the per-address cap (unless exempt) it is refused. Otherwise, over the total cap, and
 * when check_fd and tcp's descriptor is within the reserve, the oldest connections are shed
 * first (their callbacks run from here); when descriptors are short and nothing is left to
 * shed, c is refused. Returns 0 (c is on the list) or TETHER_ERR_CAPACITY (not counted: the
 * caller closes the connection at once). */
int tt_limits_admit(struct tt_limits *l, struct tt_limits_conn *c, uv_tcp_t *tcp, bool check_fd);

/* c is authenticated or closed: it leaves the list. Nothing if it is not on it. */
void tt_limits_leave(struct tt_limits *l, struct tt_limits_conn *c);

/* For another accepted socket (a TCP client of a device port): when its descriptor is within
 * the reserve, sheds the oldest unauthenticated connection. Returns false when descriptors are
 * short and nothing could be shed (close the socket). */
bool tt_limits_fd_room(struct tt_limits *l, uv_tcp_t *tcp);

/* accept() failed with status (a libuv error): counted; for EMFILE/ENFILE up to
 * TT_LIMITS_SHED_ON_EMFILE of the oldest unauthenticated connections are shed so that the
 * listeners serve again. */
void tt_limits_accept_failed(struct tt_limits *l, int status);

/* Takes a stream slot of device dev for a client: kind is TT_SERVICE_HTTP or _TCP, both says
 * whether the device has services of both kinds (each kind then gets at most 3/4 of
 * --max-streams), client is its address ("IP", "IP:PORT" or "[IPv6]:PORT"). Returns
 * TT_LIMITS_OK with s counted, or the refusal (counted in l->refused; s untouched). */
int tt_limits_stream_take(struct tt_limits *l, struct tt_limits_stream *s, const char *dev,
                          uint8_t kind, bool both, const char *client);
/* Gives s's slot back (nothing if it was not counted). */
void tt_limits_stream_give(struct tt_limits *l, struct tt_limits_stream *s);

/* Most streams of one kind a device may hold (both: it has services of both kinds). */
unsigned tt_limits_kind_cap(const struct tt_limits *l, bool both);

/* The key (addrkey.h) of a client address written as "IP", "IP:PORT" or "[IPv6]:PORT".
 * Writes "" when it is none of these. */
void tt_limits_key_of(const char *client, char key[TT_ADDRKEY_LEN]);

#endif
