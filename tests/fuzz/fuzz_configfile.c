/* fuzz_configfile.c - libFuzzer target for the --config FILE reader of tetherd and tether
 * (src/common/configfile.c): any bytes either parse into settings whose names start with "--"
 * and whose values are NUL-terminated strings inside the text, or fail with a message that
 * names the file; nothing is read or written outside the buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/configfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tt_configfile *f = calloc(1, sizeof *f);
    char err[TT_ERRLEN];

    if (f == NULL || size > TT_CONFIGFILE_MAX_BYTES) {
        free(f);
        return 0;
    }
    f->text = malloc(size + 1);
    if (f->text == NULL) {
        free(f);
        return 0;
    }
    memcpy(f->text, data, size);
    if (tt_configfile_parse(f, size, "fuzz.conf", err) == 0) {
        if (f->n > TT_CONFIGFILE_MAX_ITEMS)
            abort();
        for (size_t i = 0; i < f->n; i++) {
            const struct tt_configfile_item *it = &f->items[i];
            if (strncmp(it->flag, "--", 2) != 0 || it->flag[2] == '\0' || it->line == 0)
                abort();
            if (it->value < f->text || it->value > f->text + size)
                abort();
            if (strlen(it->value) > size)
                abort();
        }
        tt_configfile_free(f);
    } else if (memchr(err, '\0', sizeof err) == NULL || strstr(err, "fuzz.conf") == NULL) {
        abort();
    }
    free(f);
    return 0;
}
