#include "digest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"

struct gdx_digest {
  EVP_MD_CTX *sha256, *sm3;
  int done;
};

int gdx_digest_new(unsigned algs, gdx_digest **out) {
  if (algs == 0 || (algs & ~3u) != 0)
    return GDX_EINVAL;
  gdx_digest *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return GDX_ENOMEM;
  int ok = 1;
  if (algs & GDX_DIGEST_SHA256)
    ok &= (d->sha256 = EVP_MD_CTX_new()) != NULL &&
          EVP_DigestInit_ex(d->sha256, EVP_sha256(), NULL) == 1;
  if (algs & GDX_DIGEST_SM3)
    ok &= (d->sm3 = EVP_MD_CTX_new()) != NULL &&
          EVP_DigestInit_ex(d->sm3, EVP_sm3(), NULL) == 1;
  if (!ok) {
    gdx_digest_free(d);
    return GDX_EIO;
  }
  *out = d;
  return GDX_OK;
}

int gdx_digest_update(gdx_digest *d, const void *data, size_t n) {
  if (d->done)
    return GDX_EINVAL;
  if (d->sha256 && EVP_DigestUpdate(d->sha256, data, n) != 1)
    return GDX_EIO;
  if (d->sm3 && EVP_DigestUpdate(d->sm3, data, n) != 1)
    return GDX_EIO;
  return GDX_OK;
}

static int finish(EVP_MD_CTX *ctx, char hex[GDX_SHA256_HEX_SIZE]) {
  char scratch[GDX_SHA256_HEX_SIZE];
  if (hex == NULL) /* not wanted */
    hex = scratch;
  hex[0] = '\0';
  if (ctx == NULL)
    return GDX_OK;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_DigestFinal_ex(ctx, md, &len) != 1 || len != 32)
    return GDX_EIO;
  gdx_hex(md, len, hex);
  return GDX_OK;
}

void gdx_hex(const unsigned char *b, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
}

void gdx_sha256_hex(const void *d, size_t n, char out[GDX_SHA256_HEX_SIZE]) {
  unsigned char md[32];
  unsigned len = 0;
  EVP_Digest(d, n, md, &len, EVP_sha256(), NULL);
  gdx_hex(md, 32, out);
}

int gdx_digest_final(gdx_digest *d, char sha256[GDX_SHA256_HEX_SIZE],
                     char sm3[GDX_SHA256_HEX_SIZE]) {
  if (d->done)
    return GDX_EINVAL;
  d->done = 1;
  int rc = finish(d->sha256, sha256);
  return rc ? rc : finish(d->sm3, sm3);
}

void gdx_digest_free(gdx_digest *d) {
  if (d == NULL)
    return;
  EVP_MD_CTX_free(d->sha256);
  EVP_MD_CTX_free(d->sm3);
  free(d);
}

int gdx_digest_file(const char *path, unsigned algs, char sha256[GDX_SHA256_HEX_SIZE],
                    char sm3[GDX_SHA256_HEX_SIZE]) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return GDX_EIO;
  gdx_digest *d = NULL;
  int rc = gdx_digest_new(algs, &d);
  static _Thread_local unsigned char buf[1 << 16];
  size_t n;
  while (rc == GDX_OK && (n = fread(buf, 1, sizeof(buf), f)) > 0)
    rc = gdx_digest_update(d, buf, n);
  if (rc == GDX_OK && ferror(f))
    rc = GDX_EIO;
  fclose(f);
  if (rc == GDX_OK)
    rc = gdx_digest_final(d, sha256, sm3);
  gdx_digest_free(d);
  return rc;
}
