/* Passwords (R-ACC-3): the policy, and argon2id hashing (libargon2;
 * memory and time cost from auth.argon2_*, a 16-byte random salt, a
 * 32-byte hash, stored in the encoded form "$argon2id$v=19$m=…,t=…,p=1$salt$hash").
 * Shared by the sessions and accounts parts and gdx-broker --init-admin. */
#ifndef GDX_BROKER_PASSWORDS_H
#define GDX_BROKER_PASSWORDS_H

#include <stddef.h>

#include "broker.h"

/* R-ACC-3: at least 8 characters with a letter, a digit and a special
 * character, not containing the user name. GDX_EINVAL with a stable code
 * ("password_too_short", …) and a human message for each broken rule. */
int password_policy_check(const char *pw, const char *username, const char **code,
                          const char **msg);
/* argon2id encoded hash of pw into out (256 bytes is plenty). */
int password_hash(const gdx_broker_config *cfg, const char *pw, char *out, size_t outlen);
/* 1 when pw matches the encoded hash. */
int password_verify(const char *encoded, const char *pw);

#endif
