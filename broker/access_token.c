#include "access_token.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "error.h"
#include "num.h"

static void hmac_hex(const broker_pki *pki, const char *msg, size_t n,
                     char out[GDX_SHA256_HEX_SIZE]) {
  unsigned char md[32];
  unsigned mdlen = 0;
  HMAC(EVP_sha256(), pki->token_key, sizeof(pki->token_key), (const unsigned char *)msg, n, md,
       &mdlen);
  gdx_hex(md, sizeof(md), out);
}

int token_sign(const broker_pki *pki, const access_token *t, char *out, size_t n) {
  int len = snprintf(out, n, "gdxa.%lld.%lld.%lld.%lld", t->credential_id, t->authorization_id,
                     t->generation, t->expires);
  if (len < 0 || (size_t)len + 66 > n)
    return GDX_ETOOBIG;
  char mac[GDX_SHA256_HEX_SIZE];
  hmac_hex(pki, out, (size_t)len, mac);
  snprintf(out + len, n - (size_t)len, ".%s", mac);
  return GDX_OK;
}

int token_verify(const broker_pki *pki, const char *s, access_token *t) {
  size_t n = strlen(s);
  if (n < 70 || n >= ACCESS_TOKEN_MAX || strncmp(s, "gdxa.", 5) != 0)
    return GDX_EINVAL;
  const char *dot = strrchr(s, '.');
  if (dot == NULL || strlen(dot + 1) != 64)
    return GDX_EINVAL;
  char mac[GDX_SHA256_HEX_SIZE];
  hmac_hex(pki, s, (size_t)(dot - s), mac);
  if (CRYPTO_memcmp(mac, dot + 1, 64) != 0)
    return GDX_EINVAL;
  /* four numbers between "gdxa." and the MAC, each between two dots */
  long long *fields[] = {&t->credential_id, &t->authorization_id, &t->generation, &t->expires};
  const char *p = s + 5;
  for (int i = 0; i < 4; i++) {
    const char *end = memchr(p, '.', (size_t)(dot - p) + 1);
    if (end == NULL || (i < 3 && end == dot) || (i == 3 && end != dot) ||
        gdx_num_parse_n(p, (size_t)(end - p), 0, LLONG_MAX, fields[i]) != GDX_OK)
      return GDX_EINVAL;
    p = end + 1;
  }
  if (t->expires <= (long long)time(NULL))
    return GDX_ETIMEDOUT;
  return GDX_OK;
}
