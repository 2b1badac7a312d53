/* Consumer access tokens, the bearer tokens of /svc calls:
 *   gdxa.<credential>.<authorization>.<generation>.<expiry unix>.<HMAC-SHA256 hex>
 * Self-contained and signed with the brokers' shared key (platform_pki.h),
 * so checking one costs no database round trip; whether its credential and
 * authorization still stand is the authorization cache's question.
 */
#ifndef GDX_BROKER_ACCESS_TOKEN_H
#define GDX_BROKER_ACCESS_TOKEN_H

#include <stddef.h>

#include "platform_pki.h"

typedef struct {
  long long credential_id, authorization_id, generation, expires;
} access_token;

#define ACCESS_TOKEN_MAX 200 /* a token's text and its NUL, at most */

/* The token's text into out (n bytes): GDX_ETOOBIG when it does not fit. */
int token_sign(const broker_pki *pki, const access_token *t, char *out, size_t n);
/* GDX_OK: good; GDX_EINVAL: malformed or forged; GDX_ETIMEDOUT: expired. */
int token_verify(const broker_pki *pki, const char *s, access_token *t);

#endif
