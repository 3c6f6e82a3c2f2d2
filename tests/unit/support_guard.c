/* support_guard.c - the guard-page region of the parser unit tests (support_guard.h). No
 * main(): this file is linked into every unit test binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "support_guard.h"

const uint8_t *ut_guarded(const void *s, size_t n)
{
    static uint8_t *guard; /* the first byte of the PROT_NONE page */
    if (guard == NULL) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t span = (UT_GUARDED_MAX + page - 1) / page * page;
        uint8_t *m =
            mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(m != MAP_FAILED);
        assert_int_equal(mprotect(m + span, page, PROT_NONE), 0);
        guard = m + span;
    }
    assert_true(n <= UT_GUARDED_MAX);
    if (n > 0)
        memcpy(guard - n, s, n);
    return guard - n;
}
