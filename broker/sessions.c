/* The sessions part of the API (R-ACC-2..7): login, logout, password
 * change, who am I.
 *
 * Session tokens are 32 random bytes shown once to the client as
 * "gdx_<64 hex>"; the broker keeps only their SHA-256 (the REST core looks
 * sessions up by it). Passwords are checked and hashed by passwords.h.
 * Neither passwords, hashes nor tokens are ever logged or written to the
 * audit trail.
 */
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "error.h"
#include "parts.h"
#include "passwords.h"

/* Spends the time of one verification on a made-up hash, so that an unknown
 * user name answers no faster than a wrong password. */
static void burn_verify(const gdx_broker_config *cfg, const char *pw) {
  char dummy[256];
  if (password_hash(cfg, "not-a-real-password-1!", dummy, sizeof(dummy)) == GDX_OK)
    password_verify(dummy, pw);
}

/* ------------------------------------------------------------------ */

static int work_login(gdx_db_conn *c, rest_ctx *x) {
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
    return rest_fail(x, 401, "invalid_credentials", "wrong user name or password");
  }
  gdx_db_row w = gdx_db_row_at(&r, 0);
  long long id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  long long failed = gdx_db_i64(&w, 4, 0, LLONG_MAX);
  int locked = gdx_db_flag(&w, 5);
  int must_change = gdx_db_flag(&w, 7);
  long long age = gdx_db_i64(&w, 8, LLONG_MIN, LLONG_MAX);
  int active =
      strcmp(gdx_db_get(&r, 0, 2), "active") == 0 && strcmp(gdx_db_get(&r, 0, 3), "active") == 0;
  char until[32], hash[256], role[32];
  snprintf(until, sizeof(until), "%s", gdx_db_get(&r, 0, 6) ? gdx_db_get(&r, 0, 6) : "");
  snprintf(hash, sizeof(hash), "%s", gdx_db_get(&r, 0, 1));
  snprintf(x->audit_unit, sizeof(x->audit_unit), "%s", gdx_db_get(&r, 0, 9));
  snprintf(role, sizeof(role), "%s", gdx_db_get(&r, 0, 10));
  rc = w.rc ? gdx_db_row_fail(&w, "accounts") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;

  if (locked)
    return rest_fail(x, 403, "account_locked",
                     "too many failed logins: the account is locked until %s UTC", until);
  if (!active)
    return rest_fail(x, 403, "account_disabled", "this account or its unit is disabled");
  gdx_db_param pid[] = {GDX_DB_P_INT(id)};
  if (!password_verify(hash, pw)) {
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
      return rest_fail(x, 401, "invalid_credentials",
                       "wrong user name or password; the account is now locked for %lld minutes",
                       x->cfg->lockout_s / 60);
    }
    rc = gdx_db_exec(c, "UPDATE accounts SET failed_logins = failed_logins + 1 WHERE id = ?", pid,
                     1, NULL, NULL);
    return rc ? rc : rest_fail(x, 401, "invalid_credentials", "wrong user name or password");
  }
  rc = gdx_db_exec(c, "UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = ?",
                   pid, 1, NULL, NULL);
  if (rc)
    return rc;

  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    return GDX_EIO;
  char token[4 + GDX_SHA256_HEX_SIZE] = "gdx_", th[GDX_SHA256_HEX_SIZE];
  gdx_hex(raw, sizeof(raw), token + 4);
  OPENSSL_cleanse(raw, sizeof(raw));
  gdx_sha256_hex(token, strlen(token), th);
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
  x->out =
      json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:b}", "token", token, "username", user, "role",
                role, "unit_code", x->audit_unit, "expires_in_s", (json_int_t)x->cfg->session_max_s,
                "must_change_password", must_change, "password_expired", expired);
  OPENSSL_cleanse(token, sizeof(token));
  return GDX_OK;
}

static int work_logout(gdx_db_conn *c, rest_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_STR(x->token_hash)};
  int rc = gdx_db_exec(c, "DELETE FROM sessions WHERE token_hash = ?", p, 1, NULL, NULL);
  if (!rc)
    x->out = json_pack("{s:b}", "logged_out", 1);
  return rc;
}

static int work_password(gdx_db_conn *c, rest_ctx *x) {
  const char *old = json_string_value(json_object_get(x->in, "old_password"));
  const char *nw = json_string_value(json_object_get(x->in, "new_password"));
  snprintf(x->audit_object, sizeof(x->audit_object), "account:%s", x->who.username);
  gdx_db_param pid[] = {GDX_DB_P_INT(x->who.id)};
  gdx_db_result r;
  int rc =
      gdx_db_query(c, "SELECT password_hash FROM accounts WHERE id = ? FOR UPDATE", pid, 1, 1, &r);
  if (rc)
    return rc;
  char hash[256];
  snprintf(hash, sizeof(hash), "%s", r.nrows ? gdx_db_get(&r, 0, 0) : "");
  gdx_db_result_free(&r);
  if (!password_verify(hash, old))
    return rest_fail(x, 403, "wrong_password", "the old password is not right");
  const char *code, *msg;
  if (password_policy_check(nw, x->who.username, &code, &msg))
    return rest_fail(x, 400, code, "%s", msg);
  if (strcmp(old, nw) == 0)
    return rest_fail(x, 400, "password_unchanged", "the new password must differ from the old one");
  char enc[256];
  if ((rc = password_hash(x->cfg, nw, enc, sizeof(enc))) != GDX_OK)
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

static int work_me(gdx_db_conn *c, rest_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_INT(x->who.id)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT a.display_name, u.name, a.must_change_password, "
                        "DATE_FORMAT(a.password_changed_at, '%Y-%m-%dT%H:%i:%sZ') "
                        "FROM accounts a JOIN units u ON u.id = a.unit_id WHERE a.id = ?",
                        p, 1, 1, &r);
  if (rc)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  int must_change = gdx_db_flag(&w, 2);
  if (w.rc == GDX_OK)
    x->out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "username", x->who.username,
                       "display_name", gdx_db_get(&r, 0, 0), "role", rest_role_name(x->who.role),
                       "unit_code", x->who.unit_code, "unit_name", gdx_db_get(&r, 0, 1),
                       "unit_roles", x->who.unit_roles, "must_change_password", must_change,
                       "password_changed_at", gdx_db_get(&r, 0, 3));
  rc = w.rc ? gdx_db_row_fail(&w, "accounts") : GDX_OK;
  gdx_db_result_free(&r);
  return rc;
}

static const rest_route routes[] = {
    {"POST", "/api/v1/auth/login", "auth.login", REST_PUBLIC, 0, "login", work_login,
     "Log in with user name and password; returns a session token"},
    {"POST", "/api/v1/auth/logout", "auth.logout", REST_SESSION_ANY, ROLE_ANY, NULL, work_logout,
     "End this session"},
    {"POST", "/api/v1/auth/password", "auth.password_change", REST_SESSION_ANY, ROLE_ANY,
     "password_change", work_password, "Change one's own password"},
    {"GET", "/api/v1/me", NULL, REST_SESSION_ANY, ROLE_ANY, NULL, work_me,
     "The caller's account and unit"},
};
const rest_part sessions_part = REST_PART("sessions", routes);
