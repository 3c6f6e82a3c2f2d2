/* fuzz_mcuws.c - libFuzzer target for the microcontroller agent's WebSocket client
 * (mcu/agent/mcuws.c), over everything a relay, or whatever answers in its place, sends: the
 * first byte chooses the parser. Even: the upgrade answer (tt_mcuws_answer_check) on the rest,
 * whole and then on every prefix, as the agent calls it while the head arrives. Odd: the frame
 * reader (tt_mcuws_read) on the rest, in pieces whose sizes the first byte also sets, checking
 * that data and control payloads stay within their bounds. make mcu-fuzz runs it (clang);
 * make mcu-host builds a replay of the seeds in mcu/tests/corpus/fuzz_mcuws for make test. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcuws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    size_t bytes;
    size_t max;
};

static int on_data(void *ud, const uint8_t *p, size_t n)
{
    struct seen *s = ud;

    if (n > s->max || (n > 0 && p == NULL))
        abort();
    s->bytes += n;
    return 0;
}

static int on_control(void *ud, uint8_t opcode, const uint8_t *p, size_t n)
{
    (void)ud;
    if (n > TT_MCUWS_CTRL_MAX || (opcode & 0x8) == 0 || (n > 0 && p == NULL))
        abort();
    return opcode == TT_MCUWS_CLOSE ? -7 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct tt_mcuws_reader_callbacks cb = {on_data, on_control};
    /* The accept value of RFC 6455's example key. */
    static const char accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    struct tt_mcuws_answer ans;
    struct tt_mcuws_reader r;
    struct seen s;
    size_t off, piece, n;
    long rv;
    int hl;

    if (size < 1)
        return 0;
    if ((data[0] & 1) == 0) {
        /* As the agent holds it: at most its head buffer, as a char array. */
        char head[512];
        n = size - 1 < sizeof head ? size - 1 : sizeof head;
        memcpy(head, data + 1, n);
        hl = tt_mcuws_answer_check(head, n, accept, &ans);
        if (hl > (int)n)
            abort();
        for (off = 0; off < n; off++)
            if (tt_mcuws_answer_check(head, off, accept, &ans) > (int)off)
                abort();
        return 0;
    }
    piece = (size_t)(data[0] >> 1) + 1;
    data++;
    size--;
    tt_mcuws_reader_init(&r);
    memset(&s, 0, sizeof s);
    for (off = 0; off < size; off += n) {
        n = size - off < piece ? size - off : piece;
        s.max = n;
        rv = tt_mcuws_read(&r, data + off, n, &cb, &s);
        if (rv < 0)
            break;
        if ((size_t)rv != n)
            abort();
    }
    if (s.bytes > size)
        abort();
    return 0;
}
