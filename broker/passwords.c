#include "passwords.h"

#include <argon2.h>
#include <ctype.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "error.h"

int password_policy_check(const char *pw, const char *username, const char **code,
                          const char **msg) {
  size_t n = strlen(pw);
  int letter = 0, digit = 0, special = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)pw[i];
    if (isalpha(ch))
      letter = 1;
    else if (isdigit(ch))
      digit = 1;
    else if (ch > ' ' && ch < 0x7f)
      special = 1;
  }
  if (n < 8) {
    *code = "password_too_short";
    *msg = "the password must have at least 8 characters";
  } else if (!letter) {
    *code = "password_needs_letter";
    *msg = "the password must contain a letter";
  } else if (!digit) {
    *code = "password_needs_digit";
    *msg = "the password must contain a digit";
  } else if (!special) {
    *code = "password_needs_special";
    *msg = "the password must contain a special character (such as !@#$%-_)";
  } else if (username && *username && strcasestr(pw, username) != NULL) {
    *code = "password_contains_username";
    *msg = "the password must not be or contain the user name";
  } else {
    return GDX_OK;
  }
  return GDX_EINVAL;
}

int password_hash(const gdx_broker_config *cfg, const char *pw, char *out, size_t outlen) {
  unsigned char salt[16];
  if (RAND_bytes(salt, sizeof(salt)) != 1)
    return GDX_EIO;
  uint32_t t = (uint32_t)cfg->argon2_iterations, m = (uint32_t)cfg->argon2_memory_kib;
  if (argon2_encodedlen(t, m, 1, sizeof(salt), 32, Argon2_id) > outlen)
    return GDX_ETOOBIG;
  int rc = argon2id_hash_encoded(t, m, 1, pw, strlen(pw), salt, sizeof(salt), 32, out, outlen);
  return rc == ARGON2_OK ? GDX_OK : GDX_EIO;
}

int password_verify(const char *encoded, const char *pw) {
  return argon2id_verify(encoded, pw, strlen(pw)) == ARGON2_OK;
}
