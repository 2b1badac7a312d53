/* Streaming file digests for verified transfers: SHA-256, which
 * OpenSSL runs at about 1 GB/s here (the CPU has SHA instructions) and so
 * keeps up with the transfer, and SM3, the national standard digest, which
 * runs at about 240 MB/s and is therefore computed for the record off the
 * hot path. Both in one pass when asked: the caller decides. */
#ifndef GDX_DIGEST_H
#define GDX_DIGEST_H

#include <stddef.h>

#define GDX_SHA256_HEX_SIZE 65 /* a SHA-256 (or SM3) in lowercase hex, and its NUL */

typedef enum { GDX_DIGEST_SHA256 = 1, GDX_DIGEST_SM3 = 2 } gdx_digest_alg;

typedef struct gdx_digest gdx_digest;

/* algs: GDX_DIGEST_SHA256, GDX_DIGEST_SM3 or both (|). */
int gdx_digest_new(unsigned algs, gdx_digest **out);
int gdx_digest_update(gdx_digest *d, const void *data, size_t n);
/* The lowercase hex digests (65 bytes each; "" for one not asked for; a
 * NULL output is skipped); the digest can be updated no more. */
int gdx_digest_final(gdx_digest *d, char sha256[GDX_SHA256_HEX_SIZE], char sm3[GDX_SHA256_HEX_SIZE]);
void gdx_digest_free(gdx_digest *d);
/* A whole file: GDX_EIO when it cannot be read. */
int gdx_digest_file(const char *path, unsigned algs, char sha256[GDX_SHA256_HEX_SIZE], char sm3[GDX_SHA256_HEX_SIZE]);
/* n bytes as 2n lowercase hex digits and a NUL. */
void gdx_hex(const unsigned char *b, size_t n, char *out);
/* The SHA-256 of [d, d+n) in hex. */
void gdx_sha256_hex(const void *d, size_t n, char out[GDX_SHA256_HEX_SIZE]);

#endif
