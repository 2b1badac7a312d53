/* Password policy and hashing shared by the auth and admin endpoints and by
 * gdx-broker --init-admin. */
#ifndef GDX_BROKER_AUTH_H
#define GDX_BROKER_AUTH_H

#include <stddef.h>

#include "broker.h"

/* R-ACC-3: at least 8 characters with a letter, a digit and a special
 * character, not containing the user name. GDX_EINVAL with a stable code
 * ("password_too_short", …) and a human message for each broken rule. */
int auth_password_policy(const char *pw, const char *username, const char **code,
                         const char **msg);
/* argon2id encoded hash of pw into out (256 bytes is plenty). */
int auth_hash_password(const gdx_broker_config *cfg, const char *pw, char *out, size_t outlen);
/* 1 when pw matches the encoded hash. */
int auth_verify_password(const char *encoded, const char *pw);

#endif
