/* respond.h - answers a socket with a fixed HTTP response and closes it politely: write,
 * half-close, then discard input until the client closes (at most TT_RESPOND_LINGER_MS), so
 * that unread request bytes do not turn the close into a reset that loses the answer.
 * Bounds: each answer holds one copy of its bytes (a rendered page, at most TT_PAGE_MAX; an
 * admin answer, as large as its listing) and no other buffer (input is read into one static
 * sink and dropped), for at most TT_RESPOND_LINGER_MS counted from the start, the write
 * included: a client that does not read its answer loses it then, and the socket is closed. */
#ifndef TT_RESPOND_H
#define TT_RESPOND_H

#include <stddef.h>
#include <uv.h>
#include "common/conn.h"

#define TT_RESPOND_LINGER_MS 2000

/* Takes over conn (connected; reading is stopped; conn->tcp.data is ours), writes data[0..len)
 * (copied) and closes it (over TLS: with close_notify). Cannot fail: when out of memory the
 * socket is just closed. */
void tt_respond_close(struct tt_conn *conn, const void *data, size_t len);

/* Closes at once every socket still lingering (relay shutdown). */
void tt_respond_close_all(void);

/* Closes conn without a word. */
void tt_respond_drop(struct tt_conn *conn);

#endif
