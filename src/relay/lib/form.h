/* form.h - reading an application/x-www-form-urlencoded body (the relay's sign-in form) as the
 * WHATWG URL standard's parser does: pairs separated by '&', a name up to the first '=', '+'
 * decoded as a space and %XX as the byte XX. Stricter where it matters: a '%' not followed by
 * two hex digits, or a decoded NUL or other control byte, makes the field malformed rather than
 * passing odd bytes on. Pure; no allocation; never reads past the input. */
#ifndef TT_FORM_H
#define TT_FORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Finds the field called name (compared after decoding; names over 64 bytes never match) in
 * body[0..len) and decodes its value into out[0..outcap) (NUL-terminated) with its length in
 * *outlen. Returns 0; TETHER_ERR_NOT_FOUND (no such field); TETHER_ERR_INVAL (the field is there
 * more than once, or its value is malformed: a bad escape or a decoded control byte); or
 * TETHER_ERR_TOO_LARGE (the value needs outcap bytes or more). out is "" unless 0 is returned. */
int tt_form_get(const uint8_t *body, size_t len, const char *name, char *out, size_t outcap,
                size_t *outlen);

/* How many fields called name body[0..len) holds (names decoded leniently: a bad escape is
 * kept as it is). */
unsigned tt_form_count(const uint8_t *body, size_t len, const char *name);

/* True when the Content-Type value v[0..len) is application/x-www-form-urlencoded (any letter
 * case; parameters after ';' allowed). */
bool tt_form_content_type(const uint8_t *v, size_t len);

#endif
