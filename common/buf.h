/* A growable byte buffer with a hard size cap (after curl's dynbuf).
 *
 * Every buffer that grows from network input has a named cap, so that a
 * hostile peer meets GDX_ETOOBIG and not the OOM killer. The contents are
 * always NUL-terminated (one extra byte past len) so text can be used as a C
 * string. The buffer owns its memory; gdx_buf_free() releases it.
 */
#ifndef GDX_BUF_H
#define GDX_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct gdx_buf {
  char *data;   /* NULL until the first append */
  size_t len;   /* bytes in use */
  size_t alloc; /* bytes allocated */
  size_t cap;   /* appends that would pass this many bytes fail */
} gdx_buf;

void gdx_buf_init(gdx_buf *b, size_t cap);
void gdx_buf_free(gdx_buf *b);
/* Keeps the allocation, forgets the contents. */
void gdx_buf_reset(gdx_buf *b);
/* Makes room for `extra` more bytes; GDX_ETOOBIG past the cap. */
int gdx_buf_reserve(gdx_buf *b, size_t extra);
int gdx_buf_append(gdx_buf *b, const void *p, size_t n);
int gdx_buf_appends(gdx_buf *b, const char *s);
int gdx_buf_appendf(gdx_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int gdx_buf_vappendf(gdx_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Appends `s` as the body of a JSON string (no quotes), escaping as needed. */
int gdx_buf_append_json_str(gdx_buf *b, const char *s, size_t n);
/* Hands the memory to the caller (free() it) and leaves the buffer empty. */
char *gdx_buf_detach(gdx_buf *b, size_t *len);

/* Copies src into dst (n bytes, n > 0), cut to fit, always NUL-terminated:
 * snprintf(dst, n, "%s", src) without the format machinery, for hot paths. */
void gdx_str_copy(char *dst, size_t n, const char *src);

/* Common caps. */
#define GDX_BUF_CAP_LOGLINE (16 * 1024)

#endif
