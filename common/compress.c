#include "compress.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zstd.h>

#include "error.h"

int gdx_accepts_zstd(const char *v) {
  if (v == NULL)
    return 0;
  for (const char *p = v; (p = strcasestr(p, "zstd")) != NULL; p += 4) {
    int starts = p == v || p[-1] == ',' || p[-1] == ' ';
    const char *e = p + 4;
    while (*e == ' ')
      e++;
    if (!starts || (*e != '\0' && *e != ',' && *e != ';'))
      continue;
    if (*e == ';') { /* a weight: q=0 refuses it */
      const char *q = strstr(e, "q=");
      if (q && atof(q + 2) <= 0.0 && (strchr(e, ',') == NULL || q < strchr(e, ',')))
        return 0;
    }
    return 1;
  }
  return 0;
}

int gdx_zstd_compress(const void *in, size_t n, char **out, size_t *outn) {
  size_t bound = ZSTD_compressBound(n);
  char *buf = malloc(bound ? bound : 1);
  if (buf == NULL)
    return GDX_ENOMEM;
  size_t z = ZSTD_compress(buf, bound, in, n, 1);
  if (ZSTD_isError(z)) {
    free(buf);
    return GDX_EIO;
  }
  *out = buf;
  *outn = z;
  return GDX_OK;
}

int gdx_zstd_decompress(const void *in, size_t n, size_t cap, char **out, size_t *outn) {
  unsigned long long size = ZSTD_getFrameContentSize(in, n);
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
    return GDX_EINVAL; /* gdx writes the size into every frame it makes */
  if (size > cap)
    return GDX_ETOOBIG;
  char *buf = malloc((size_t)size + 1);
  if (buf == NULL)
    return GDX_ENOMEM;
  size_t got = ZSTD_decompress(buf, (size_t)size, in, n);
  if (ZSTD_isError(got) || got != size) {
    free(buf);
    return GDX_EINVAL;
  }
  buf[got] = '\0';
  *out = buf;
  *outn = got;
  return GDX_OK;
}
