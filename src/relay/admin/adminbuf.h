/* adminbuf.h - a growable text buffer for the admin listener's answers (admin.c, adminpage.c),
 * capped at TT_ADMINBUF_MAX: past the cap, or when memory runs out, ok turns false and further
 * writes are dropped (the caller answers 500). Also HTML escaping. Start one as
 * {.ok = true}; the caller frees p. */
#ifndef TT_ADMINBUF_H
#define TT_ADMINBUF_H

#include <stdbool.h>
#include <stddef.h>

#define TT_ADMINBUF_MAX (64u * 1024 * 1024)

struct tt_adminbuf {
    char *p; /* NUL-terminated once anything was written (malloc'd) */
    size_t len, cap;
    bool ok;
};

void tt_adminbuf_add(struct tt_adminbuf *b, const char *s, size_t n);
void tt_adminbuf_str(struct tt_adminbuf *b, const char *s);
/* printf into b; one call writes at most 1023 bytes (more: ok turns false). */
__attribute__((format(printf, 2, 3))) void tt_adminbuf_fmt(struct tt_adminbuf *b, const char *fmt,
                                                           ...);
/* s as HTML text or attribute value: & < > " ' escaped. */
void tt_adminbuf_html(struct tt_adminbuf *b, const char *s);
/* The length of s[0..len) up to the end of its last whole line ('\n'), 0 when it has none: what
 * of a text cut at a byte count can be kept without half a line (/metrics, adminmetrics.c). */
size_t tt_adminbuf_whole_lines(const char *s, size_t len);

#endif
