/* fuzz_procmetrics.c - libFuzzer target for the /proc parsers of src/relay/admin/procmetrics.c (the
 * text of /proc/PID/stat, /proc/PID/limits and /proc/stat) and the Prometheus text made from
 * what they read. The input is one NUL-free string, given to each parser; the text written must
 * be NUL-terminated, whole lines only, within its buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/admin/procmetrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[8192], out[2048];
    struct tt_procmetrics m;
    uint64_t v;

    if (size >= sizeof(s))
        size = sizeof(s) - 1;
    memcpy(s, data, size);
    s[size] = '\0';
    memset(&m, 0, sizeof(m));
    (void)tt_procmetrics_parse_stat(s, 100, 4096, 1700000000, &m);
    if (tt_procmetrics_parse_limits(s, &v) == 0) {
        m.max_fds = v;
        m.has_max_fds = true;
    }
    if (tt_procmetrics_parse_btime(s, &v) == 0) {
        m.open_fds = v;
        m.has_fds = true;
    }
    /* the input as the version and file labels too: escaped, cut, never overflowed */
    size_t n = tt_procmetrics_format(&m, s, s, s, 1800000000, out, sizeof(out));
    if (n > sizeof(out) || memchr(out, '\0', sizeof(out)) == NULL)
        abort();
    size_t len = strlen(out);
    if (len > 0 && out[len - 1] != '\n')
        abort();
    if (n < sizeof(out) && n != len)
        abort();
    return 0;
}
