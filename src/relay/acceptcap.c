/* acceptcap.c - a cap on accepts per loop turn (acceptcap.h). */
#include <string.h>
#include "relay/acceptcap.h"

static struct {
    uv_check_t check;
    uint64_t turn; /* loop turns seen by the check */
    struct tt_acceptcap_listener *held;
    int open;    /* the check handle is initialised and not closed */
    int closing; /* its close callback is still to come */
    struct tt_acceptcap_stats s;
} cap;

static bool is_full(struct tt_acceptcap_listener *l)
{
    return l->full != NULL && l->full(l->ud);
}

static void hold(struct tt_acceptcap_listener *l)
{
    l->held = true;
    l->next_held = cap.held;
    cap.held = l;
}

/* After the poll: a new turn's count begins, and each held listener takes its waiting
 * connection (uv_accept watches the listener again), unless its owner's queue is still full
 * (then it stays held for the next check). */
static void on_check(uv_check_t *c)
{
    (void)c;
    cap.turn++;
    struct tt_acceptcap_listener *l = cap.held;
    cap.held = NULL;
    while (l) {
        struct tt_acceptcap_listener *next = l->next_held;
        l->next_held = NULL;
        l->held = false;
        if (is_full(l)) {
            hold(l);
        } else {
            l->turn = cap.turn;
            l->count = 1;
            l->accept(l);
        }
        l = next;
    }
}

bool tt_acceptcap_take(struct tt_acceptcap_listener *l)
{
    if (!l->capped || !cap.open)
        return true;
    if (l->turn != cap.turn) {
        l->turn = cap.turn;
        l->count = 0;
    }
    if (l->held)
        return false;
    if (is_full(l)) {
        hold(l);
        cap.s.full_paused++;
        return false;
    }
    if (l->count < TT_ACCEPTCAP_PER_TURN) {
        l->count++;
        return true;
    }
    hold(l);
    cap.s.paused++;
    return false;
}

void tt_acceptcap_forget(struct tt_acceptcap_listener *l)
{
    for (struct tt_acceptcap_listener **p = &cap.held; *p; p = &(*p)->next_held)
        if (*p == l) {
            *p = l->next_held;
            break;
        }
    l->next_held = NULL;
    l->held = false;
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
    cap.closing = 0;
}

int tt_acceptcap_start(uv_loop_t *loop)
{
    if (cap.open)
        return 0;
    if (cap.closing)
        return UV_EBUSY;
    memset(&cap, 0, sizeof(cap));
    int rc = uv_check_init(loop, &cap.check);
    if (rc != 0)
        return rc;
    cap.open = 1;
    uv_unref((uv_handle_t *)&cap.check);
    return uv_check_start(&cap.check, on_check);
}

void tt_acceptcap_stop(void)
{
    if (!cap.open)
        return;
    while (cap.held)
        tt_acceptcap_forget(cap.held);
    cap.open = 0;
    cap.closing = 1;
    uv_close((uv_handle_t *)&cap.check, on_closed);
}

uint64_t tt_acceptcap_turn(void)
{
    return cap.open ? cap.turn : 0;
}

void tt_acceptcap_read(struct tt_acceptcap_stats *out)
{
    *out = cap.s;
}
