/* support_guard.h - guard-page copies for the parser unit tests (the picohttpparser habit in
 * STYLE.md): an input copied so that it ends right before a PROT_NONE page, so that any read
 * past its end crashes the test. Linked into every unit test binary (see UNIT_SUPPORT in the
 * Makefile). */
#ifndef TT_TESTS_SUPPORT_GUARD_H
#define TT_TESTS_SUPPORT_GUARD_H

#include <stddef.h>
#include <stdint.h>

#define UT_GUARDED_MAX (256u * 1024) /* the longest input ut_guarded takes */

/* Copies s[0..n) to the end of one region that a PROT_NONE page follows, and returns the copy.
 * The region (UT_GUARDED_MAX bytes and the guard page) is mapped at the first call and kept for
 * the life of the test binary; each call overwrites what the previous one copied. Fails the
 * test when n > UT_GUARDED_MAX. n may be 0 (the result points at the guard page). */
const uint8_t *ut_guarded(const void *s, size_t n);

#endif
