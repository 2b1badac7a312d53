/* Compressed bodies between gdx hops. Table reads (snapshot pages, change
 * batches) are JSON that zstd at level 1 shrinks several times over at
 * about half a gigabyte a second, so a provider's node compresses them for
 * any reader that sends "Accept-Encoding: zstd" (consumer nodes do; the
 * broker passes bytes and headers through) and answers with
 * "Content-Encoding: zstd". */
#ifndef GDX_COMPRESS_H
#define GDX_COMPRESS_H

#include <stddef.h>

/* 1 when an Accept-Encoding value lists zstd (without q=0). */
int gdx_accepts_zstd(const char *accept_encoding);
/* One zstd frame of in (its size recorded) into *out (malloc'd). */
int gdx_zstd_compress(const void *in, size_t n, char **out, size_t *outn);
/* The frame in `in` into *out (malloc'd, NUL-terminated): GDX_ETOOBIG when
 * it would be larger than cap, GDX_EINVAL when it is not one zstd frame. */
int gdx_zstd_decompress(const void *in, size_t n, size_t cap, char **out, size_t *outn);

#endif
