/* fuzz_wshs.c - libFuzzer target for tt_wshs_parse_response (src/common/wshs.c): any input must
 * parse, ask for more or fail without reading past its end, and a complete head must lie inside
 * the input. Accepted answers must carry status 101. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/wshs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tt_wshs_response r;
    int rc = tt_wshs_parse_response(data, size, "dGhlIHNhbXBsZSBub25jZQ==", &r);
    if (rc == 1) {
        if (r.head_len == 0 || r.head_len > size)
            abort();
        if (r.accepted && r.status != 101)
            abort();
        if (memchr(r.location, '\0', sizeof(r.location)) == NULL)
            abort();
    } else if (rc != 0 && rc != -1) {
        abort();
    }
    return 0;
}
