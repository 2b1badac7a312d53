/* Checked numbers: decimal text from the network, a configuration value or
 * a database row turned into an integer, or refused.
 *
 * The atoi family reads "12abc" as 12, "" as 0 and an overflow as whatever
 * strtol clamps to; a quota or a status code read that way is a quiet
 * bug. gdx_num_parse() takes the whole text or nothing: an optional '-',
 * then decimal digits only (no spaces, no '+'; "007" is 7), and a value
 * within [min, max].
 */
#ifndef GDX_NUM_H
#define GDX_NUM_H

#include <stddef.h>
#include <stdint.h>

/* The text s (NUL-terminated) as an integer in [min, max]: GDX_OK, or
 * GDX_EINVAL when s is NULL, empty, not decimal or out of range (*out is
 * then left alone). */
int gdx_num_parse(const char *s, long long min, long long max, long long *out);
/* The same over n bytes that need not end with a NUL (a header value, a
 * path segment). */
int gdx_num_parse_n(const char *s, size_t n, long long min, long long max, long long *out);
/* n bytes of decimal digits (no sign) as an unsigned 64-bit integer - a
 * hash, all of whose values are valid: GDX_OK, or GDX_EINVAL when empty,
 * not digits or above 2^64 - 1. */
int gdx_num_parse_u64(const char *s, size_t n, uint64_t *out);

#endif
