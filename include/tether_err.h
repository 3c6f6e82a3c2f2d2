/* tether_err.h - the one list of Tether error codes (X-macro), shared by the protocol core, the
 * relay, the agent and the public SDK. libc only: safe to include from src/core/ and tether.h.
 * Success is 0, errors are negative. TETHER_ERR_AGAIN is the only "try later" code. */
#ifndef TETHER_ERR_H
#define TETHER_ERR_H

#include <stdbool.h>
#include <stddef.h>

/* TETHER_API marks the library's public functions: the only symbols libtether.so exports (every
 * object is compiled with -fvisibility=hidden). A Windows DLL of libtether is built with
 * TETHER_BUILD_DLL (dllexport) and used with TETHER_DLL (dllimport); the static library, the
 * only Windows build today, needs neither. */
#ifndef TETHER_API
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(TETHER_BUILD_DLL)
#define TETHER_API __declspec(dllexport)
#elif defined(TETHER_DLL)
#define TETHER_API __declspec(dllimport)
#else
#define TETHER_API
#endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#define TETHER_API __attribute__((visibility("default")))
#else
#define TETHER_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, "one-line description") */
#define TETHER_ERR_MAP(X)                                                                          \
    X(AGAIN, -1, "resource temporarily unavailable (need more input or more output space)")        \
    X(NOMEM, -2, "out of memory")                                                                  \
    X(INVAL, -3, "invalid argument")                                                               \
    X(PROTO, -4, "protocol error")                                                                 \
    X(FRAME_SIZE, -5, "frame too large")                                                           \
    X(FLOW, -6, "flow-control window exceeded")                                                    \
    X(STREAM_LIMIT, -7, "too many concurrent streams")                                             \
    X(NO_STREAM, -8, "no such stream")                                                             \
    X(STATE, -9, "operation not allowed in this state")                                            \
    X(VERSION, -10, "unsupported protocol version")                                                \
    X(AUTH, -11, "authentication failed")                                                          \
    X(REFUSED, -12, "connection refused")                                                          \
    X(CLOSED, -13, "connection closed")                                                            \
    X(TIMEOUT, -14, "timed out")                                                                   \
    X(IO, -15, "input/output error")                                                               \
    X(TLS, -16, "TLS error")                                                                       \
    X(HTTP, -17, "bad HTTP message")                                                               \
    X(HANDSHAKE, -18, "WebSocket handshake failed")                                                \
    X(NOT_FOUND, -19, "not found")                                                                 \
    X(ADDRINUSE, -20, "address already in use")                                                    \
    X(CONFIG, -21, "invalid configuration")                                                        \
    X(NO_SERVICE, -22, "no such service")                                                          \
    X(TOO_LARGE, -23, "message or head too large")                                                 \
    X(CAPACITY, -24, "no capacity left (ports, labels or devices)")                                \
    X(GOAWAY, -25, "peer is going away")                                                           \
    X(THROTTLED, -26, "too many failed attempts: retry later")

enum tether_err {
    TETHER_OK = 0,
#define TETHER_ERR_ENUM_(name, value, text) TETHER_ERR_##name = value,
    TETHER_ERR_MAP(TETHER_ERR_ENUM_)
#undef TETHER_ERR_ENUM_
};

/* Returns the symbolic name of err ("TETHER_ERR_PROTO"), or "TETHER_ERR_UNKNOWN" for a code that
 * is not in the list. The string is static; never NULL. */
TETHER_API const char *tether_err_name(int err);

/* Returns a one-line English description of err; "success" for 0, "unknown error" for a code
 * that is not in the list. The string is static; never NULL. */
TETHER_API const char *tether_strerror(int err);

/* Returns true when err ends the session or connection it came from (everything but 0 and
 * TETHER_ERR_AGAIN). */
TETHER_API bool tether_err_is_fatal(int err);

#ifdef __cplusplus
}
#endif
#endif
