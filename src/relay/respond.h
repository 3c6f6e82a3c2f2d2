/* respond.h - answers a socket with a fixed HTTP response and closes it politely: write,
 * half-close, then discard input until the client closes (at most TT_RESPOND_LINGER_MS), so
 * that unread request bytes do not turn the close into a reset that loses the answer. */
#ifndef TT_RESPOND_H
#define TT_RESPOND_H

#include <stddef.h>
#include <uv.h>

#define TT_RESPOND_LINGER_MS 2000

/* Takes over tcp (a malloc'd, connected uv_tcp_t; reading is stopped; tcp->data is ours; it is
 * freed after uv_close), writes data[0..len) (copied) and closes it. Cannot fail: when out of
 * memory the socket is just closed. */
void tt_respond_close(uv_tcp_t *tcp, const void *data, size_t len);

/* Closes at once every socket still lingering (relay shutdown). */
void tt_respond_close_all(void);

/* Closes tcp (malloc'd) without a word and frees it after its close callback. */
void tt_respond_drop(uv_tcp_t *tcp);

#endif
