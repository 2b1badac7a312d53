/* Authentication (R-ACC-2..7): login, logout, password change, who am I.
 *
 * Passwords are hashed with argon2id (libargon2; memory and time cost from
 * auth.argon2_*, a 16-byte random salt, a 32-byte hash, stored in the
 * encoded form "$argon2id$v=19$m=…,t=…,p=1$salt$hash"). Session tokens are
 * 32 random bytes shown once to the client as "gdx_<64 hex>"; the broker keeps
 * only their SHA-256. Neither passwords, hashes nor tokens are ever logged or
 * written to the audit trail.
 */
#include <argon2.h>
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "auth.h"
#include "error.h"

int auth_password_policy(const char *pw, const char *username, const char **code,
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

int auth_hash_password(const gdx_broker_config *cfg, const char *pw, char *out, size_t outlen) {
  unsigned char salt[16];
  if (RAND_bytes(salt, sizeof(salt)) != 1)
    return GDX_EIO;
  uint32_t t = (uint32_t)cfg->argon2_iterations, m = (uint32_t)cfg->argon2_memory_kib;
  if (argon2_encodedlen(t, m, 1, sizeof(salt), 32, Argon2_id) > outlen)
    return GDX_ETOOBIG;
  int rc = argon2id_hash_encoded(t, m, 1, pw, strlen(pw), salt, sizeof(salt), 32, out, outlen);
  return rc == ARGON2_OK ? GDX_OK : GDX_EIO;
}

int auth_verify_password(const char *encoded, const char *pw) {
  return argon2id_verify(encoded, pw, strlen(pw)) == ARGON2_OK;
}

/* Spends the time of one verification on a made-up hash, so that an unknown
 * user name answers no faster than a wrong password. */
static void burn_verify(const gdx_broker_config *cfg, const char *pw) {
  char dummy[256];
  if (auth_hash_password(cfg, "not-a-real-password-1!", dummy, sizeof(dummy)) == GDX_OK)
    auth_verify_password(dummy, pw);
}

/* ------------------------------------------------------------------ */

static int work_login(gdx_db_conn *c, api_ctx *x) {
  const char *user = json_string_value(json_object_get(x->in, "username"));
  const char *pw = json_string_value(json_object_get(x->in, "password"));
  snprintf(x->audit_actor, sizeof(x->audit_actor), "%s", user);
  gdx_db_param p[] = {GDX_DB_P_STR(user)};
  gdx_db_result r;
  int rc = gdx_db_query(
      c,
      "SELECT a.id, a.password_hash, a.status, u.status, a.failed_logins, "
      "a.locked_until IS NOT NULL AND a.locked_until > UTC_TIMESTAMP(6), "
      "DATE_FORMAT(a.locked_until, '%Y-%m-%d %H:%i:%s'), a.must_change_password, "
      "TIMESTAMPDIFF(SECOND, a.password_changed_at, UTC_TIMESTAMP(6)), u.code, a.role "
      "FROM accounts a JOIN units u ON u.id = a.unit_id WHERE a.username = ? FOR UPDATE",
      p, 1, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 0) {
    gdx_db_result_free(&r);
    burn_verify(x->cfg, pw);
    return api_fail(x, 401, "invalid_credentials", "wrong user name or password");
  }
  long long id = atoll(gdx_db_get(&r, 0, 0));
  int active = strcmp(gdx_db_get(&r, 0, 2), "active") == 0 &&
               strcmp(gdx_db_get(&r, 0, 3), "active") == 0;
  long long failed = atoll(gdx_db_get(&r, 0, 4));
  int locked = atoi(gdx_db_get(&r, 0, 5));
  char until[32], hash[256], role[32];
  snprintf(until, sizeof(until), "%s", gdx_db_get(&r, 0, 6) ? gdx_db_get(&r, 0, 6) : "");
  snprintf(hash, sizeof(hash), "%s", gdx_db_get(&r, 0, 1));
  int must_change = atoi(gdx_db_get(&r, 0, 7));
  long long age = atoll(gdx_db_get(&r, 0, 8));
  snprintf(x->audit_unit, sizeof(x->audit_unit), "%s", gdx_db_get(&r, 0, 9));
  snprintf(role, sizeof(role), "%s", gdx_db_get(&r, 0, 10));
  gdx_db_result_free(&r);

  if (locked)
    return api_fail(x, 403, "account_locked",
                    "too many failed logins: the account is locked until %s UTC", until);
  if (!active)
    return api_fail(x, 403, "account_disabled", "this account or its unit is disabled");
  gdx_db_param pid[] = {GDX_DB_P_INT(id)};
  if (!auth_verify_password(hash, pw)) {
    x->commit_on_error = 1; /* the failure count must stick */
    if (failed + 1 >= x->cfg->max_failed_logins) {
      gdx_db_param pl[] = {GDX_DB_P_INT(x->cfg->lockout_s), GDX_DB_P_INT(id)};
      rc = gdx_db_exec(c,
                       "UPDATE accounts SET failed_logins = 0, locked_until = "
                       "UTC_TIMESTAMP(6) + INTERVAL ? SECOND WHERE id = ?",
                       pl, 2, NULL, NULL);
      if (rc)
        return rc;
      x->audit_detail = json_pack("{s:b}", "locked", 1);
      return api_fail(x, 401, "invalid_credentials",
                      "wrong user name or password; the account is now locked for %lld minutes",
                      x->cfg->lockout_s / 60);
    }
    rc = gdx_db_exec(c, "UPDATE accounts SET failed_logins = failed_logins + 1 WHERE id = ?",
                     pid, 1, NULL, NULL);
    return rc ? rc : api_fail(x, 401, "invalid_credentials", "wrong user name or password");
  }
  rc = gdx_db_exec(c, "UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = ?",
                   pid, 1, NULL, NULL);
  if (rc)
    return rc;

  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    return GDX_EIO;
  char token[4 + 64 + 1] = "gdx_", th[65];
  for (int i = 0; i < 32; i++)
    snprintf(token + 4 + 2 * i, 3, "%02x", raw[i]);
  unsigned char md[32];
  unsigned mdlen;
  EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++)
    snprintf(th + 2 * i, 3, "%02x", md[i]);
  gdx_db_param ps[] = {GDX_DB_P_STR(th), GDX_DB_P_INT(id), GDX_DB_P_INT(x->cfg->session_max_s),
                       GDX_DB_P_STR(x->source)};
  rc = gdx_db_exec(c,
                   "INSERT INTO sessions (token_hash, account_id, created_at, last_seen, "
                   "expires_at, source) VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), "
                   "UTC_TIMESTAMP(6) + INTERVAL ? SECOND, ?)",
                   ps, 4, NULL, NULL);
  if (rc)
    return rc;
  int expired = age > x->cfg->password_max_age_days * 86400LL;
  x->out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:b}", "token", token, "username", user,
                     "role", role, "unit_code", x->audit_unit, "expires_in_s",
                     (json_int_t)x->cfg->session_max_s, "must_change_password", must_change,
                     "password_expired", expired);
  OPENSSL_cleanse(token, sizeof(token));
  return GDX_OK;
}

static int work_logout(gdx_db_conn *c, api_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_STR(x->token_hash)};
  int rc = gdx_db_exec(c, "DELETE FROM sessions WHERE token_hash = ?", p, 1, NULL, NULL);
  if (!rc)
    x->out = json_pack("{s:b}", "logged_out", 1);
  return rc;
}

static int work_password(gdx_db_conn *c, api_ctx *x) {
  const char *old = json_string_value(json_object_get(x->in, "old_password"));
  const char *nw = json_string_value(json_object_get(x->in, "new_password"));
  snprintf(x->audit_object, sizeof(x->audit_object), "account:%s", x->who.username);
  gdx_db_param pid[] = {GDX_DB_P_INT(x->who.id)};
  gdx_db_result r;
  int rc = gdx_db_query(c, "SELECT password_hash FROM accounts WHERE id = ? FOR UPDATE", pid, 1,
                        1, &r);
  if (rc)
    return rc;
  char hash[256];
  snprintf(hash, sizeof(hash), "%s", r.nrows ? gdx_db_get(&r, 0, 0) : "");
  gdx_db_result_free(&r);
  if (!auth_verify_password(hash, old))
    return api_fail(x, 403, "wrong_password", "the old password is not right");
  const char *code, *msg;
  if (auth_password_policy(nw, x->who.username, &code, &msg))
    return api_fail(x, 400, code, "%s", msg);
  if (strcmp(old, nw) == 0)
    return api_fail(x, 400, "password_unchanged", "the new password must differ from the old one");
  char enc[256];
  if ((rc = auth_hash_password(x->cfg, nw, enc, sizeof(enc))) != GDX_OK)
    return rc;
  gdx_db_param pu[] = {GDX_DB_P_STR(enc), GDX_DB_P_INT(x->who.id)};
  rc = gdx_db_exec(c,
                   "UPDATE accounts SET password_hash = ?, password_changed_at = UTC_TIMESTAMP(6), "
                   "must_change_password = 0 WHERE id = ?",
                   pu, 2, NULL, NULL);
  /* Other sessions of this account end: whoever knew the old password is out. */
  gdx_db_param ps[] = {GDX_DB_P_INT(x->who.id), GDX_DB_P_STR(x->token_hash)};
  if (!rc)
    rc = gdx_db_exec(c, "DELETE FROM sessions WHERE account_id = ? AND token_hash <> ?", ps, 2,
                     NULL, NULL);
  if (!rc)
    x->out = json_pack("{s:b}", "changed", 1);
  return rc;
}

static int work_me(gdx_db_conn *c, api_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_INT(x->who.id)};
  gdx_db_result r;
  int rc = gdx_db_query(
      c,
      "SELECT a.display_name, u.name, a.must_change_password, "
      "DATE_FORMAT(a.password_changed_at, '%Y-%m-%dT%H:%i:%sZ') "
      "FROM accounts a JOIN units u ON u.id = a.unit_id WHERE a.id = ?",
      p, 1, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 1)
    x->out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "username", x->who.username,
                       "display_name", gdx_db_get(&r, 0, 0), "role", api_role_name(x->who.role),
                       "unit_code", x->who.unit_code, "unit_name", gdx_db_get(&r, 0, 1),
                       "unit_roles", x->who.unit_roles, "must_change_password",
                       atoi(gdx_db_get(&r, 0, 2)), "password_changed_at", gdx_db_get(&r, 0, 3));
  gdx_db_result_free(&r);
  return GDX_OK;
}

const api_route api_auth_routes[] = {
    {"POST", "/api/v1/auth/login", "auth.login", API_PUBLIC, 0, "login", work_login,
     "Log in with user name and password; returns a session token"},
    {"POST", "/api/v1/auth/logout", "auth.logout", API_SESSION_ANY, ROLE_ANY, NULL, work_logout,
     "End this session"},
    {"POST", "/api/v1/auth/password", "auth.password_change", API_SESSION_ANY, ROLE_ANY,
     "password_change", work_password, "Change one's own password"},
    {"GET", "/api/v1/me", NULL, API_SESSION_ANY, ROLE_ANY, NULL, work_me,
     "The caller's account and unit"},
};
const size_t api_auth_nroutes = sizeof(api_auth_routes) / sizeof(api_auth_routes[0]);
