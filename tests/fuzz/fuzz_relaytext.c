/* fuzz_relaytext.c - libFuzzer target for the agent's check of a WELCOME's text and its cleaning
 * of the relay's free text (src/agent/relaytext.c). The input is a WELCOME payload as a relay
 * would send it; when it decodes and passes the check, every label, name and address must be
 * printable ASCII without spaces, every TCP service must have a port and an address or neither
 * (private), and a cleaned copy of any input must be printable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/relaytext.h"
#include "core/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void word(const struct tt_str *s)
{
    for (size_t i = 0; i < s->len; i++)
        if (s->p[i] <= 0x20 || s->p[i] >= 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tt_welcome m;
    char why[128], out[64];
    if (tt_frame_decode_welcome(&m, data, size) == 0 &&
        tt_relaytext_check_welcome(&m, why, sizeof(why)) == 0) {
        if (m.label.len == 0)
            abort();
        word(&m.label);
        for (size_t i = 0; i < m.nservices && i < TT_MAX_SERVICES; i++) {
            word(&m.services[i].name);
            word(&m.services[i].address);
            /* a TCP service is public (a port and an address) or private (neither) */
            if (m.services[i].kind == TT_SERVICE_TCP &&
                (m.services[i].port == 0) != (m.services[i].address.len == 0))
                abort();
        }
    }
    tt_relaytext_clean(out, sizeof(out), data, size);
    if (memchr(out, '\0', sizeof(out)) == NULL)
        abort();
    for (size_t i = 0; out[i]; i++)
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
            abort();
    return 0;
}
