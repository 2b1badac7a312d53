#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void gdx_buf_init(gdx_buf *b, size_t cap) {
  b->data = NULL;
  b->len = 0;
  b->alloc = 0;
  b->cap = cap;
}

void gdx_buf_free(gdx_buf *b) {
  free(b->data);
  gdx_buf_init(b, b->cap);
}

void gdx_buf_reset(gdx_buf *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

int gdx_buf_reserve(gdx_buf *b, size_t extra) {
  if (extra > b->cap || b->len > b->cap - extra)
    return GDX_ETOOBIG;
  size_t need = b->len + extra + 1; /* + NUL */
  if (need <= b->alloc)
    return GDX_OK;
  size_t n = b->alloc ? b->alloc : 256;
  while (n < need)
    n *= 2;
  if (n > b->cap + 1)
    n = b->cap + 1;
  char *p = realloc(b->data, n);
  if (p == NULL)
    return GDX_ENOMEM;
  b->data = p;
  b->alloc = n;
  return GDX_OK;
}

int gdx_buf_append(gdx_buf *b, const void *p, size_t n) {
  int err = gdx_buf_reserve(b, n);
  if (err)
    return err;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return GDX_OK;
}

int gdx_buf_appends(gdx_buf *b, const char *s) {
  return gdx_buf_append(b, s, strlen(s));
}

int gdx_buf_vappendf(gdx_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return GDX_EINVAL;
  if ((size_t)n < sizeof(tmp))
    return gdx_buf_append(b, tmp, (size_t)n);
  int err = gdx_buf_reserve(b, (size_t)n);
  if (err)
    return err;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return GDX_OK;
}

int gdx_buf_appendf(gdx_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int err = gdx_buf_vappendf(b, fmt, ap);
  va_end(ap);
  return err;
}

int gdx_buf_append_json_str(gdx_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0; /* start of the current run of bytes that need no escape */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
      continue;
    int err = gdx_buf_append(b, s + run, i - run);
    if (err)
      return err;
    char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
    switch (c) {
    case '"': err = gdx_buf_append(b, "\\\"", 2); break;
    case '\\': err = gdx_buf_append(b, "\\\\", 2); break;
    case '\n': err = gdx_buf_append(b, "\\n", 2); break;
    case '\r': err = gdx_buf_append(b, "\\r", 2); break;
    case '\t': err = gdx_buf_append(b, "\\t", 2); break;
    default: err = gdx_buf_append(b, esc, 6); break;
    }
    if (err)
      return err;
    run = i + 1;
  }
  return gdx_buf_append(b, s + run, n - run);
}

char *gdx_buf_detach(gdx_buf *b, size_t *len) {
  char *p = b->data;
  if (len)
    *len = b->len;
  gdx_buf_init(b, b->cap);
  return p;
}

void gdx_str_copy(char *dst, size_t n, const char *src) {
  size_t l = strnlen(src, n - 1);
  memcpy(dst, src, l);
  dst[l] = '\0';
}
