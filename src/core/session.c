/* session.c - the sans-I/O Tether session (session.h, docs/PROTOCOL.md): a streaming frame
 * decoder feeding the relay/device state machine, the caller's stream table (open addressing,
 * linear probing, backward-shift deletion) and per-stream flow control. No malloc, no clock, no
 * I/O, no globals: bytes in, callbacks and frames in caller buffers out. */
#include <string.h>

#include "session.h"

#define ID_MASK 0x7fffffffu
#define MAX_WINDOW 0x7fffffffu
#define GOLDEN 2654435761u /* Knuth's multiplicative hash constant, 2^32 / phi */

/* s->hs bits: how far the handshake went, and re-entrancy guards. */
#define HS_HELLO_SENT 0x01 /* device: tt_session_hello wrote our HELLO */
#define HS_HELLO_RECV 0x02 /* relay: a valid HELLO of a version it speaks arrived */
#define HS_ACCEPTED 0x04   /* relay: WELCOME written */
#define HS_REFUSED 0x08    /* relay: REFUSE written */
#define HS_CLOSING 0x10    /* close_all is calling on_stream_close */

static void trace(const struct tt_session *s, const char *msg)
{
    if (s->cb->log != NULL)
        s->cb->log(s->ud, msg);
}

/* Records the first fatal error; the session accepts nothing more until tt_session_init. */
static int fail(struct tt_session *s, int err, const char *why)
{
    if (s->err == 0) {
        s->err = err;
        trace(s, why);
    }
    s->state = TT_SESSION_CLOSED;
    return s->err;
}

/* Callbacks may return positive values; only negative ones are errors. */
static int cbret(int rv)
{
    return rv < 0 ? rv : 0;
}

/* A NUL-terminated C string as a view of at most max bytes, cut on a UTF-8 boundary. Reads at
 * most max + 1 bytes of s. */
static struct tt_str cstr(const char *s, size_t max)
{
    struct tt_str t;
    size_t n = 0;

    t.p = (const uint8_t *)s;
    if (s == NULL) {
        t.len = 0;
        return t;
    }
    while (n <= max && s[n] != '\0')
        n++;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0u) == 0x80u)
            n--;
    }
    t.len = n;
    return t;
}

/* ---- stream table ---- */

static uint32_t home(uint32_t id, uint8_t bits)
{
    return (uint32_t)(id * GOLDEN) >> (32u - bits);
}

static uint8_t log2u(uint32_t v)
{
    uint8_t b = 0;

    while (v > 1) {
        v >>= 1;
        b++;
    }
    return b;
}

/* The slot holding id, or NULL. Load <= 1/2 keeps an empty slot on every probe path; the
 * bound is there so a corrupted table cannot loop forever. */
static struct tt_stream *find(const struct tt_session *s, uint32_t id)
{
    uint32_t mask = s->cap - 1, i, n;

    if (id == 0)
        return NULL;
    for (i = home(id, s->capbits), n = 0; n < s->cap; i = (i + 1) & mask, n++) {
        if (s->streams[i].id == id)
            return &s->streams[i];
        if (s->streams[i].id == 0)
            return NULL;
    }
    return NULL;
}

/* Puts a copy of *src into table t (which has room and does not hold src->id). */
static struct tt_stream *place(struct tt_stream *t, uint32_t cap, uint8_t bits,
                               const struct tt_stream *src)
{
    uint32_t i = home(src->id, bits), mask = cap - 1;

    while (t[i].id != 0)
        i = (i + 1) & mask;
    t[i] = *src;
    return &t[i];
}

/* Makes room for one more stream, growing the table through alloc_table when the load would
 * exceed 1/2. Returns 0 or TETHER_ERR_STREAM_LIMIT (nothing changed). */
static int reserve(struct tt_session *s)
{
    struct tt_stream *nt, *old;
    uint32_t newcap, i;

    if ((uint64_t)s->nstreams + 1 <= s->cap / 2)
        return 0;
    if (s->cb->alloc_table == NULL || s->cap > 0x40000000u ||
        (size_t)s->cap * 2 > (size_t)-1 / sizeof(struct tt_stream))
        return TETHER_ERR_STREAM_LIMIT;
    newcap = s->cap * 2;
    nt = s->cb->alloc_table(s, newcap, s->ud);
    if (nt == NULL)
        return TETHER_ERR_STREAM_LIMIT;
    memset(nt, 0, (size_t)newcap * sizeof(struct tt_stream));
    for (i = 0; i < s->cap; i++) {
        if (s->streams[i].id != 0)
            place(nt, newcap, (uint8_t)(s->capbits + 1), &s->streams[i]);
    }
    old = s->streams;
    s->streams = nt;
    s->cap = newcap;
    s->capbits++;
    trace(s, "stream table grown");
    if (s->cb->release_table != NULL)
        s->cb->release_table(s, old, s->ud);
    return 0;
}

/* Adds stream id (not present; reserve() succeeded) with fresh windows. */
static struct tt_stream *insert(struct tt_session *s, uint32_t id, uint8_t service, void *user)
{
    struct tt_stream st;

    memset(&st, 0, sizeof(st));
    st.id = id;
    st.service = service;
    st.send_window = s->peer_window;
    st.recv_window = s->cfg.window;
    st.window = s->cfg.window;
    st.user = user;
    s->nstreams++;
    return place(s->streams, s->cap, s->capbits, &st);
}

/* Frees st's slot with backward-shift deletion: later entries of the same probe run move up,
 * so no tombstones are needed (and slot pointers do not survive this call). */
static void remove_stream(struct tt_session *s, struct tt_stream *st)
{
    uint32_t mask = s->cap - 1;
    uint32_t i = (uint32_t)(st - s->streams), j = i, k;

    if (st->flags & TT_STREAM_WINDOW_DUE)
        s->ndue--;
    /* A DATA frame for this stream may still be arriving: drop the rest of it. */
    if (s->hdrlen == TT_FRAME_HEADER_LEN && s->cur.type == TT_FRAME_DATA && s->cur.stream == st->id)
        s->skip = 1;
    s->nstreams--;
    for (;;) {
        j = (j + 1) & mask;
        if (s->streams[j].id == 0)
            break;
        k = home(s->streams[j].id, s->capbits);
        /* The entry at j stays when its home lies cyclically in (i, j]. */
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        s->streams[i] = s->streams[j];
        i = j;
    }
    memset(&s->streams[i], 0, sizeof(s->streams[i]));
}

/* Frees every stream with on_stream_close (GOAWAY, shutdown). Lookups keep working during
 * the callbacks; the table is cleared afterwards. */
static void close_all(struct tt_session *s)
{
    uint32_t i;

    if (s->hs & HS_CLOSING)
        return;
    s->hs |= HS_CLOSING;
    s->state = TT_SESSION_CLOSED;
    s->pending_resets = 0;
    if (s->nstreams > 0) {
        for (i = 0; i < s->cap; i++) {
            if (s->streams[i].id != 0 && s->cb->on_stream_close != NULL)
                s->cb->on_stream_close(s, &s->streams[i], s->ud);
        }
        memset(s->streams, 0, (size_t)s->cap * sizeof(struct tt_stream));
    }
    s->nstreams = 0;
    s->ndue = 0;
    s->hs &= (uint8_t)~HS_CLOSING;
}

/* ---- session-generated RESETs ---- */

static int queue_reset(struct tt_session *s, uint32_t id, uint16_t code)
{
    if (s->pending_resets >= TT_PENDING_RESETS)
        return fail(s, TETHER_ERR_PROTO, "too many streams reset at once");
    s->resets[s->pending_resets].stream = id;
    s->resets[s->pending_resets].code = code;
    s->pending_resets++;
    return 0;
}

/* The peer broke a rule on st: queue a RESET, tell the application, free the slot. */
static int reset_by_session(struct tt_session *s, struct tt_stream *st, uint16_t code,
                            const char *why)
{
    uint32_t id = st->id;
    int rv;

    trace(s, why);
    rv = queue_reset(s, id, code);
    if (rv < 0)
        return rv;
    if (s->cb->on_stream_close != NULL)
        s->cb->on_stream_close(s, st, s->ud);
    st = find(s, id);
    if (st != NULL)
        remove_stream(s, st);
    return 0;
}

/* ---- incoming frames ---- */

static bool is_known(uint8_t type)
{
    return type >= TT_FRAME_HELLO && type <= TT_FRAME_GOAWAY;
}

static bool is_stream_frame(uint8_t type)
{
    return type == TT_FRAME_OPEN || type == TT_FRAME_DATA || type == TT_FRAME_WINDOW ||
           type == TT_FRAME_RESET;
}

/* DATA header: flow control and stream checks happen before any byte is delivered. */
static int data_begin(struct tt_session *s)
{
    struct tt_stream *st = find(s, s->cur.stream);

    if (st == NULL) {
        s->skip = 1; /* in flight after a reset: skipped silently */
        return 0;
    }
    if (st->flags & TT_STREAM_REMOTE_FIN) {
        s->skip = 1;
        return reset_by_session(s, st, TT_RESET_PROTOCOL, "DATA after FIN");
    }
    if (s->cur.length > st->recv_window) {
        s->skip = 1;
        return reset_by_session(s, st, TT_RESET_FLOW, "DATA beyond the receive window");
    }
    st->recv_window -= s->cur.length;
    return 0;
}

/* A complete header: is this frame allowed here? */
static int on_header(struct tt_session *s)
{
    const struct tt_frame_header *h = &s->cur;
    bool relay = s->cfg.role == TT_ROLE_RELAY;
    bool device = s->cfg.role == TT_ROLE_DEVICE;
    bool ok;

    if (!is_known(h->type)) {
        /* Forward compatibility once registered; before that the peer is not speaking our
         * protocol (a HELLO or WELCOME must come first). */
        if (s->state != TT_SESSION_OPEN)
            return fail(s, TETHER_ERR_PROTO, "unknown frame type during the handshake");
        return 0;
    }
    if (is_stream_frame(h->type) != (h->stream != 0))
        return fail(s, TETHER_ERR_PROTO, "stream id not allowed for this frame type");
    if (h->type != TT_FRAME_DATA && h->length > TT_CTRL_MAX)
        return fail(s, TETHER_ERR_FRAME_SIZE, "control frame too large");
    switch (h->type) {
    case TT_FRAME_HELLO:
        ok = relay && s->state == TT_SESSION_HANDSHAKE && !(s->hs & HS_HELLO_RECV);
        break;
    case TT_FRAME_WELCOME:
    case TT_FRAME_REFUSE:
        ok = device && s->state == TT_SESSION_HANDSHAKE && (s->hs & HS_HELLO_SENT);
        break;
    case TT_FRAME_OPEN:
        ok = device && s->state == TT_SESSION_OPEN;
        break;
    case TT_FRAME_GOAWAY:
        ok = relay ? (s->hs & HS_HELLO_RECV) != 0 : device ? (s->hs & HS_HELLO_SENT) != 0 : true;
        break;
    default: /* DATA, WINDOW, RESET */
        ok = s->state == TT_SESSION_OPEN;
        /* A visitor connection carries one stream: another id is not a late frame of an
         * ended stream, it is a peer that does not speak this role. */
        if (!relay && !device && h->stream != TT_VISITOR_STREAM)
            return fail(s, TETHER_ERR_PROTO, "visitor connection: stream frame not on stream 1");
        break;
    }
    if (!ok)
        return fail(s, TETHER_ERR_PROTO, "frame type not allowed in this state or role");
    if (h->type == TT_FRAME_DATA)
        return data_begin(s);
    return 0;
}

/* Some payload bytes: DATA goes straight to the application, control payloads are kept in
 * ctrl[] (their size was checked in on_header), unknown types are dropped. */
static int on_payload(struct tt_session *s, const uint8_t *p, size_t n)
{
    struct tt_stream *st;

    if (s->cur.type == TT_FRAME_DATA) {
        if (s->skip)
            return 0;
        st = find(s, s->cur.stream);
        if (st == NULL || s->cb->on_data == NULL)
            return 0;
        return cbret(s->cb->on_data(s, st, p, n, s->ud));
    }
    if (is_known(s->cur.type))
        memcpy(s->ctrl + s->got, p, n);
    return 0;
}

static int got_hello(struct tt_session *s)
{
    struct tt_hello m;

    /* Only the version byte is read first: another version may lay the rest out otherwise. */
    if (s->cur.length >= 1 && (s->ctrl[0] < TT_PROTO_VERSION_MIN || s->ctrl[0] > s->version))
        return fail(s, TETHER_ERR_VERSION, "HELLO with an unsupported version");
    if (tt_frame_decode_hello(&m, s->ctrl, s->cur.length) != 0)
        return fail(s, TETHER_ERR_PROTO, "malformed HELLO");
    s->version = m.version; /* the WELCOME answers in it */
    s->peer_window = m.window;
    s->peer_max_streams = m.max_streams;
    s->nservices = m.nservices;
    s->hs |= HS_HELLO_RECV;
    return s->cb->on_hello != NULL ? cbret(s->cb->on_hello(s, &m, s->ud)) : 0;
}

static int got_welcome(struct tt_session *s)
{
    struct tt_welcome m;

    /* The relay answers in the version of our HELLO. */
    if (s->cur.length >= 1 && s->ctrl[0] != s->version)
        return fail(s, TETHER_ERR_VERSION, "WELCOME of another version than our HELLO");
    if (tt_frame_decode_welcome(&m, s->ctrl, s->cur.length) != 0)
        return fail(s, TETHER_ERR_PROTO, "malformed WELCOME");
    s->peer_window = m.window;
    s->peer_max_streams = m.max_streams;
    s->state = TT_SESSION_OPEN;
    return s->cb->on_welcome != NULL ? cbret(s->cb->on_welcome(s, &m, s->ud)) : 0;
}

static int got_refuse(struct tt_session *s)
{
    struct tt_coded m;

    if (tt_frame_decode_coded(&m, s->ctrl, s->cur.length) != 0)
        return fail(s, TETHER_ERR_PROTO, "malformed REFUSE");
    s->state = TT_SESSION_CLOSED;
    return s->cb->on_refuse != NULL ? cbret(s->cb->on_refuse(s, &m, s->ud)) : 0;
}

static int got_open(struct tt_session *s)
{
    uint32_t id = s->cur.stream;
    struct tt_stream *st;
    struct tt_open m;
    int rv;

    if (tt_frame_decode_open(&m, s->ctrl, s->cur.length) != 0)
        return fail(s, TETHER_ERR_PROTO, "malformed OPEN");
    if (find(s, id) != NULL)
        return fail(s, TETHER_ERR_PROTO, "OPEN for a stream already open");
    if (m.service >= s->nservices) {
        trace(s, "OPEN for an unknown service");
        return queue_reset(s, id, TT_RESET_NO_SERVICE);
    }
    if (s->nstreams >= s->cfg.max_streams || reserve(s) != 0) {
        trace(s, "OPEN over the stream limit");
        return queue_reset(s, id, TT_RESET_LIMIT);
    }
    st = insert(s, id, m.service, NULL);
    rv = s->cb->on_open != NULL ? s->cb->on_open(s, st, &m, s->ud) : TT_RESET_REFUSED;
    if (rv <= 0)
        return rv;
    /* Refused by the application: no on_stream_close, it knows. */
    st = find(s, id);
    if (st == NULL)
        return 0; /* it reset the stream itself meanwhile */
    remove_stream(s, st);
    return queue_reset(s, id, rv <= 0xffff ? (uint16_t)rv : (uint16_t)TT_RESET_REFUSED);
}

static int got_fin(struct tt_session *s)
{
    uint32_t id = s->cur.stream;
    struct tt_stream *st = find(s, id);
    int rv = 0;

    if (st == NULL)
        return 0;
    st->flags |= TT_STREAM_REMOTE_FIN;
    if (st->flags & TT_STREAM_WINDOW_DUE) {
        /* The peer sends nothing more: credit would be wasted. */
        st->flags &= (uint8_t)~TT_STREAM_WINDOW_DUE;
        s->ndue--;
    }
    if (s->cb->on_fin != NULL)
        rv = cbret(s->cb->on_fin(s, st, s->ud));
    if (rv < 0)
        return rv;
    st = find(s, id);
    if (st != NULL && (st->flags & TT_STREAM_LOCAL_FIN)) {
        if (s->cb->on_stream_close != NULL)
            s->cb->on_stream_close(s, st, s->ud);
        st = find(s, id);
        if (st != NULL)
            remove_stream(s, st);
    }
    return 0;
}

static int got_window(struct tt_session *s)
{
    struct tt_stream *st;
    uint32_t inc;

    if (tt_frame_decode_window(&inc, s->ctrl, s->cur.length) != 0)
        return fail(s, TETHER_ERR_PROTO, "malformed WINDOW");
    st = find(s, s->cur.stream);
    if (st == NULL)
        return 0;
    if ((uint64_t)st->send_window + inc > MAX_WINDOW)
        return reset_by_session(s, st, TT_RESET_FLOW, "WINDOW overflows the send window");
    st->send_window += inc;
    if ((st->flags & TT_STREAM_LOCAL_FIN) || s->cb->on_window == NULL)
        return 0;
    return cbret(s->cb->on_window(s, st, s->ud));
}

static int got_reset(struct tt_session *s)
{
    uint32_t id = s->cur.stream;
    struct tt_stream *st;
    struct tt_coded m;
    int rv = 0;

    if (tt_frame_decode_coded(&m, s->ctrl, s->cur.length) != 0)
        return fail(s, TETHER_ERR_PROTO, "malformed RESET");
    st = find(s, id);
    if (st == NULL)
        return 0;
    if (s->cb->on_reset != NULL)
        rv = cbret(s->cb->on_reset(s, st, &m, s->ud));
    if (rv < 0)
        return rv;
    st = find(s, id);
    if (st != NULL) {
        if (s->cb->on_stream_close != NULL)
            s->cb->on_stream_close(s, st, s->ud);
        st = find(s, id);
        if (st != NULL)
            remove_stream(s, st);
    }
    return 0;
}

static int got_goaway(struct tt_session *s)
{
    struct tt_coded m;
    int rv = 0;

    if (tt_frame_decode_coded(&m, s->ctrl, s->cur.length) != 0)
        return fail(s, TETHER_ERR_PROTO, "malformed GOAWAY");
    s->state = TT_SESSION_CLOSED;
    if (s->cb->on_goaway != NULL)
        rv = cbret(s->cb->on_goaway(s, &m, s->ud));
    close_all(s);
    return rv;
}

/* The current frame is complete. */
static int on_frame_end(struct tt_session *s)
{
    switch (s->cur.type) {
    case TT_FRAME_HELLO:
        return got_hello(s);
    case TT_FRAME_WELCOME:
        return got_welcome(s);
    case TT_FRAME_REFUSE:
        return got_refuse(s);
    case TT_FRAME_OPEN:
        return got_open(s);
    case TT_FRAME_DATA:
        return !s->skip && (s->cur.flags & TT_FLAG_FIN) ? got_fin(s) : 0;
    case TT_FRAME_WINDOW:
        return got_window(s);
    case TT_FRAME_RESET:
        return got_reset(s);
    case TT_FRAME_GOAWAY:
        return got_goaway(s);
    default:
        return 0;
    }
}

tt_ssize tt_session_recv(struct tt_session *s, const uint8_t *in, size_t inlen)
{
    size_t pos = 0, n;
    int rv;

    if (s->err != 0)
        return s->err;
    if (in == NULL && inlen > 0)
        return TETHER_ERR_INVAL;
    while (pos < inlen) {
        if (s->state == TT_SESSION_CLOSED)
            break; /* GOAWAY/REFUSE seen or sent (maybe by a callback): ignore the rest */
        if (s->hdrlen < TT_FRAME_HEADER_LEN) {
            n = TT_FRAME_HEADER_LEN - s->hdrlen;
            if (n > inlen - pos)
                n = inlen - pos;
            memcpy(s->hdrbuf + s->hdrlen, in + pos, n);
            s->hdrlen = (uint8_t)(s->hdrlen + n);
            pos += n;
            if (s->hdrlen < TT_FRAME_HEADER_LEN)
                break;
            tt_frame_header_decode(&s->cur, s->hdrbuf);
            s->got = 0;
            s->skip = 0;
            rv = on_header(s);
            if (rv == 0 && s->cur.length == 0 && s->state != TT_SESSION_CLOSED) {
                s->hdrlen = 0;
                rv = on_frame_end(s);
            }
        } else {
            n = (size_t)(s->cur.length - s->got);
            if (n > inlen - pos)
                n = inlen - pos;
            rv = on_payload(s, in + pos, n);
            pos += n;
            s->got += (uint32_t)n;
            if (rv == 0 && s->got == s->cur.length && s->state != TT_SESSION_CLOSED) {
                s->hdrlen = 0;
                rv = on_frame_end(s);
            }
        }
        if (rv < 0)
            return fail(s, rv, "callback failed");
        if (s->err != 0)
            return s->err;
    }
    return (tt_ssize)inlen;
}

/* ---- outgoing frames and the application's calls ---- */

/* A visitor session: no registration, so it starts OPEN with stream 1 open both ways and the
 * fixed windows of the visitor protocol (the peer announced nothing: the protocol did). */
static int init_visitor(struct tt_session *s, const struct tt_session_config *cfg,
                        const struct tt_session_callbacks *cb, void *ud, struct tt_stream *table,
                        uint32_t cap)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->cfg.window = TT_VISITOR_WINDOW;
    s->cfg.max_streams = 1;
    s->version = TT_PROTO_VERSION;
    s->cb = cb;
    s->ud = ud;
    s->state = TT_SESSION_OPEN;
    s->streams = table;
    s->cap = cap;
    s->capbits = log2u(cap);
    s->next_id = TT_VISITOR_STREAM + 1;
    s->peer_window = TT_VISITOR_WINDOW;
    s->peer_max_streams = 1;
    memset(table, 0, (size_t)cap * sizeof(struct tt_stream));
    insert(s, TT_VISITOR_STREAM, 0, NULL);
    return 0;
}

int tt_session_init(struct tt_session *s, const struct tt_session_config *cfg,
                    const struct tt_session_callbacks *cb, void *ud, struct tt_stream *table,
                    uint32_t cap)
{
    if (s == NULL || cfg == NULL || cb == NULL || table == NULL || cap < 2 ||
        (cap & (cap - 1)) != 0)
        return TETHER_ERR_INVAL;
    if (cfg->role == TT_ROLE_VISITOR)
        return init_visitor(s, cfg, cb, ud, table, cap);
    if ((cfg->role != TT_ROLE_RELAY && cfg->role != TT_ROLE_DEVICE) || cfg->window == 0 ||
        cfg->window > MAX_WINDOW || cfg->max_streams == 0 ||
        (cfg->version != 0 &&
         (cfg->version < TT_PROTO_VERSION_MIN || cfg->version > TT_PROTO_VERSION)))
        return TETHER_ERR_INVAL;
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->version = cfg->version != 0 ? cfg->version : TT_PROTO_VERSION;
    s->cb = cb;
    s->ud = ud;
    s->state = TT_SESSION_HANDSHAKE;
    s->streams = table;
    s->cap = cap;
    s->capbits = log2u(cap);
    s->next_id = 1;
    memset(table, 0, (size_t)cap * sizeof(struct tt_stream));
    return 0;
}

bool tt_session_want_write(const struct tt_session *s)
{
    return s->state != TT_SESSION_CLOSED && (s->pending_resets > 0 || s->ndue > 0);
}

tt_ssize tt_session_send(struct tt_session *s, uint8_t *out, size_t outlen)
{
    size_t n = 0;
    tt_ssize rv;
    uint32_t i;

    if (s->state == TT_SESSION_CLOSED || out == NULL)
        return 0;
    while (s->pending_resets > 0) {
        struct tt_coded c;
        c.code = s->resets[0].code;
        c.reason.p = NULL;
        c.reason.len = 0;
        rv = tt_frame_encode_reset(out + n, outlen - n, s->resets[0].stream, &c);
        if (rv < 0)
            return (tt_ssize)n; /* no room: the rest waits for the next call */
        n += (size_t)rv;
        s->pending_resets--;
        memmove(&s->resets[0], &s->resets[1], s->pending_resets * sizeof(s->resets[0]));
    }
    for (i = 0; i < s->cap && s->ndue > 0; i++) {
        struct tt_stream *st = &s->streams[i];
        if (st->id == 0 || !(st->flags & TT_STREAM_WINDOW_DUE))
            continue;
        rv = tt_frame_encode_window(out + n, outlen - n, st->id, st->recv_unacked);
        if (rv == TETHER_ERR_AGAIN)
            break;
        st->flags &= (uint8_t)~TT_STREAM_WINDOW_DUE;
        s->ndue--;
        if (rv < 0)
            continue; /* cannot happen: recv_unacked is 1..window when due */
        n += (size_t)rv;
        st->recv_window += st->recv_unacked;
        st->recv_unacked = 0;
    }
    return (tt_ssize)n;
}

tt_ssize tt_session_hello(struct tt_session *s, const struct tt_hello *m, uint8_t *out,
                          size_t outlen)
{
    struct tt_hello h;
    tt_ssize rv;

    if (s->cfg.role != TT_ROLE_DEVICE || s->state != TT_SESSION_HANDSHAKE ||
        (s->hs & HS_HELLO_SENT) || s->err != 0)
        return TETHER_ERR_STATE;
    if (m == NULL)
        return TETHER_ERR_INVAL;
    h = *m;
    h.version = s->version;
    h.window = s->cfg.window;
    h.max_streams = s->cfg.max_streams;
    rv = tt_frame_encode_hello(out, outlen, &h);
    if (rv < 0)
        return rv;
    s->nservices = m->nservices;
    s->hs |= HS_HELLO_SENT;
    return rv;
}

tt_ssize tt_session_accept(struct tt_session *s, const struct tt_welcome *m, uint8_t *out,
                           size_t outlen)
{
    struct tt_welcome w;
    tt_ssize rv;

    if (s->cfg.role != TT_ROLE_RELAY || s->state != TT_SESSION_HANDSHAKE ||
        !(s->hs & HS_HELLO_RECV) || s->err != 0)
        return TETHER_ERR_STATE;
    if (m == NULL)
        return TETHER_ERR_INVAL;
    w = *m;
    w.version = s->version;
    w.window = s->cfg.window;
    w.max_streams = s->cfg.max_streams;
    rv = tt_frame_encode_welcome(out, outlen, &w);
    if (rv < 0)
        return rv;
    s->hs |= HS_ACCEPTED;
    s->state = TT_SESSION_OPEN;
    return rv;
}

tt_ssize tt_session_refuse(struct tt_session *s, uint16_t code, const char *reason, uint8_t *out,
                           size_t outlen)
{
    struct tt_coded c;
    tt_ssize rv;

    /* Allowed once, before any WELCOME: after a valid HELLO, or after the handshake failed
     * (VERSION, a malformed HELLO) so that the device learns why. */
    if (s->cfg.role != TT_ROLE_RELAY || (s->hs & (HS_ACCEPTED | HS_REFUSED)) ||
        !((s->state == TT_SESSION_HANDSHAKE && (s->hs & HS_HELLO_RECV)) || s->err != 0))
        return TETHER_ERR_STATE;
    c.code = code;
    c.reason = cstr(reason, TT_MAX_REASON);
    rv = tt_frame_encode_refuse(out, outlen, &c);
    if (rv < 0)
        return rv;
    s->hs |= HS_REFUSED;
    s->state = TT_SESSION_CLOSED;
    return rv;
}

/* Relay: the next free stream id (31 bits, nonzero, not open). nstreams < 2^31 - 1 guarantees
 * one exists. */
static uint32_t next_stream_id(struct tt_session *s)
{
    uint32_t id;

    for (;;) {
        id = s->next_id & ID_MASK;
        s->next_id = (id + 1) & ID_MASK;
        if (id != 0 && find(s, id) == NULL)
            return id;
    }
}

tt_ssize tt_session_open(struct tt_session *s, uint8_t service, const char *origin, void *user,
                         uint32_t *id, uint8_t *out, size_t outlen)
{
    struct tt_open m;
    uint32_t limit, nid;
    tt_ssize rv;

    if (s->cfg.role != TT_ROLE_RELAY || s->state != TT_SESSION_OPEN || s->err != 0)
        return TETHER_ERR_STATE;
    if (service >= s->nservices)
        return TETHER_ERR_NO_SERVICE;
    limit = s->cfg.max_streams < s->peer_max_streams ? s->cfg.max_streams : s->peer_max_streams;
    if (s->nstreams >= limit)
        return TETHER_ERR_STREAM_LIMIT;
    m.service = service;
    m.origin = cstr(origin, TT_MAX_ADDR);
    if (out == NULL || outlen < TT_FRAME_HEADER_LEN + 1 + m.origin.len)
        return TETHER_ERR_AGAIN;
    if (reserve(s) != 0)
        return TETHER_ERR_STREAM_LIMIT;
    nid = next_stream_id(s);
    rv = tt_frame_encode_open(out, outlen, nid, &m);
    if (rv < 0)
        return rv; /* cannot happen: sizes checked above */
    insert(s, nid, service, user);
    if (id != NULL)
        *id = nid;
    return rv;
}

uint32_t tt_session_send_window(const struct tt_session *s, uint32_t id)
{
    const struct tt_stream *st;

    if (s->state != TT_SESSION_OPEN)
        return 0;
    st = find(s, id);
    if (st == NULL || (st->flags & TT_STREAM_LOCAL_FIN))
        return 0;
    return st->send_window;
}

tt_ssize tt_session_data_header(struct tt_session *s, uint32_t id, size_t len, bool fin,
                                uint8_t out[TT_FRAME_HEADER_LEN])
{
    struct tt_stream *st;
    tt_ssize rv;

    if (out == NULL || len > TT_FRAME_MAX_PAYLOAD)
        return TETHER_ERR_INVAL;
    if (s->state == TT_SESSION_CLOSED)
        return s->err != 0 ? TETHER_ERR_STATE : TETHER_ERR_NO_STREAM;
    st = find(s, id);
    if (st == NULL)
        return TETHER_ERR_NO_STREAM;
    if (st->flags & TT_STREAM_LOCAL_FIN)
        return TETHER_ERR_STATE;
    if (len > st->send_window)
        return TETHER_ERR_FLOW;
    rv = tt_frame_encode_data_header(out, id, len, fin);
    if (rv < 0)
        return rv;
    st->send_window -= (uint32_t)len;
    if (fin) {
        st->flags |= TT_STREAM_LOCAL_FIN;
        if (st->flags & TT_STREAM_REMOTE_FIN)
            remove_stream(s, st); /* our FIN completes it: no on_stream_close */
    }
    return rv;
}

void tt_session_consume(struct tt_session *s, uint32_t id, size_t n)
{
    struct tt_stream *st = find(s, id);
    uint32_t half, held;

    if (st == NULL || n == 0)
        return;
    half = st->window / 2;
    /* Never credit more than the peer has sent and we have not yet credited back. */
    held = st->window - st->recv_window - st->recv_unacked;
    if (n > held)
        n = held;
    st->recv_unacked += (uint32_t)n;
    if (st->flags & (TT_STREAM_WINDOW_DUE | TT_STREAM_REMOTE_FIN))
        return;
    if (st->recv_unacked > 0 && (st->recv_unacked >= half || st->recv_window < half)) {
        st->flags |= TT_STREAM_WINDOW_DUE;
        s->ndue++;
    }
}

uint32_t tt_session_grow_window(struct tt_session *s, uint32_t id, uint32_t extra)
{
    struct tt_stream *st;

    if (s->state != TT_SESSION_OPEN)
        return 0;
    st = find(s, id);
    if (st == NULL || (st->flags & TT_STREAM_REMOTE_FIN) || st->recv_window >= st->window / 4)
        return 0;
    if (extra > st->window)
        extra = st->window;
    if ((uint64_t)st->window + extra > MAX_WINDOW ||
        (uint64_t)st->recv_window + st->recv_unacked + extra > MAX_WINDOW)
        return 0;
    st->window += extra;
    st->recv_unacked += extra;
    if (extra > 0 && !(st->flags & TT_STREAM_WINDOW_DUE)) {
        st->flags |= TT_STREAM_WINDOW_DUE;
        s->ndue++;
    }
    return extra;
}

tt_ssize tt_session_reset(struct tt_session *s, uint32_t id, uint16_t code, uint8_t *out,
                          size_t outlen)
{
    struct tt_stream *st;
    struct tt_coded c;
    tt_ssize rv;

    if (s->state == TT_SESSION_CLOSED)
        return TETHER_ERR_NO_STREAM;
    st = find(s, id);
    if (st == NULL)
        return TETHER_ERR_NO_STREAM;
    c.code = code;
    c.reason.p = NULL;
    c.reason.len = 0;
    rv = tt_frame_encode_reset(out, outlen, id, &c);
    if (rv < 0)
        return rv;
    remove_stream(s, st);
    return rv;
}

tt_ssize tt_session_goaway(struct tt_session *s, uint16_t code, const char *reason, uint8_t *out,
                           size_t outlen)
{
    struct tt_coded c;
    tt_ssize rv;

    c.code = code;
    c.reason = cstr(reason, TT_MAX_REASON);
    rv = tt_frame_encode_goaway(out, outlen, &c);
    if (rv < 0)
        return rv;
    close_all(s);
    return rv;
}

void tt_session_shutdown(struct tt_session *s)
{
    close_all(s);
}

enum tt_session_state tt_session_state(const struct tt_session *s)
{
    return (enum tt_session_state)s->state;
}

int tt_session_error(const struct tt_session *s)
{
    return s->err;
}

uint32_t tt_session_nstreams(const struct tt_session *s)
{
    return s->nstreams;
}

uint8_t tt_session_version(const struct tt_session *s)
{
    return s->version;
}

enum tt_role tt_session_role(const struct tt_session *s)
{
    return s->cfg.role;
}

uint32_t tt_session_peer_window(const struct tt_session *s)
{
    return s->peer_window;
}

uint16_t tt_session_peer_max_streams(const struct tt_session *s)
{
    return s->peer_max_streams;
}

void *tt_session_stream_user(const struct tt_session *s, uint32_t id)
{
    const struct tt_stream *st = find(s, id);

    return st != NULL ? st->user : NULL;
}

int tt_session_set_user(struct tt_session *s, uint32_t id, void *user)
{
    struct tt_stream *st = find(s, id);

    if (st == NULL)
        return TETHER_ERR_NO_STREAM;
    st->user = user;
    return 0;
}
