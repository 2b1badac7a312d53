/* The accounts part of the API (R-ACC-1, R-ACC-5): the operations admin
 * gives each unit its unit admin (and the management unit its reviewers); a
 * unit admin manages only its own unit's staff. Disabling an account ends
 * its sessions at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "parts.h"
#include "passwords.h"

typedef struct {
  long long id, unit_id;
  char username[GDX_NAME_SIZE], unit_code[GDX_UNIT_CODE_SIZE], role[16], status[16];
} account_row;

/* The account of the path, FOR UPDATE; a 404 refusal when there is none. */
static int load_account(gdx_db_conn *c, rest_ctx *x, account_row *a) {
  gdx_db_param p[] = {GDX_DB_P_STR(x->params[0])};
  gdx_db_result r;
  int rc = rest_load_one(c, x,
                         "SELECT a.id, a.unit_id, a.username, u.code, a.role, a.status "
                         "FROM accounts a JOIN units u ON u.id = a.unit_id WHERE a.username = ? "
                         "FOR UPDATE",
                         p, 1, &r, "no account %s", x->params[0]);
  if (rc || x->status)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  a->id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  a->unit_id = gdx_db_i64(&w, 1, 1, GDX_DB_ID_MAX);
  snprintf(a->username, sizeof(a->username), "%s", gdx_db_get(&r, 0, 2));
  snprintf(a->unit_code, sizeof(a->unit_code), "%s", gdx_db_get(&r, 0, 3));
  snprintf(a->role, sizeof(a->role), "%s", gdx_db_get(&r, 0, 4));
  snprintf(a->status, sizeof(a->status), "%s", gdx_db_get(&r, 0, 5));
  rc = w.rc ? gdx_db_row_fail(&w, "accounts") : GDX_OK;
  gdx_db_result_free(&r);
  return rc;
}

/* May the caller manage (disable, reset) this account? */
static int may_manage(const rest_ctx *x, const account_row *a) {
  if (a->id == x->who.id)
    return 0; /* not oneself: that is what password change is for */
  if (x->who.role == ROLE_OPS)
    return 1;
  return x->who.role == ROLE_UNIT_ADMIN && strcmp(a->role, "staff") == 0 &&
         a->unit_id == x->who.unit_id;
}

static int work_account_create(gdx_db_conn *c, rest_ctx *x) {
  const char *user = json_string_value(json_object_get(x->in, "username"));
  const char *display = json_string_value(json_object_get(x->in, "display_name"));
  const char *role = json_string_value(json_object_get(x->in, "role"));
  const char *unit = json_string_value(json_object_get(x->in, "unit_code"));
  const char *pw = json_string_value(json_object_get(x->in, "initial_password"));
  if (unit == NULL)
    unit = x->who.unit_code;
  snprintf(x->audit_object, sizeof(x->audit_object), "account:%s", user);
  x->audit_detail = json_pack("{s:s, s:s}", "role", role, "unit_code", unit);

  /* who may create what */
  if (x->who.role == ROLE_UNIT_ADMIN) {
    if (strcmp(role, "staff") != 0)
      return rest_fail(x, 403, "forbidden", "a unit admin creates staff accounts only");
    if (strcmp(unit, x->who.unit_code) != 0)
      return rest_fail(x, 403, "forbidden", "a unit admin manages its own unit only");
  } else if (x->who.role == ROLE_OPS && strcmp(role, "staff") == 0) {
    return rest_fail(x, 403, "forbidden", "staff accounts are created by their unit admin");
  }
  gdx_db_param pu[] = {GDX_DB_P_STR(unit)};
  gdx_db_result r;
  int rc = rest_load_one(c, x,
                         "SELECT id, status = 'active', FIND_IN_SET('management', roles) > 0, "
                         "FIND_IN_SET('operations', roles) > 0 FROM units WHERE code = ? "
                         "FOR UPDATE",
                         pu, 1, &r, "no unit with code %s", unit);
  if (rc || x->status)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  long long unit_id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  int active = gdx_db_flag(&w, 1), management = gdx_db_flag(&w, 2), operations = gdx_db_flag(&w, 3);
  rc = w.rc ? gdx_db_row_fail(&w, "units") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;
  if (!active)
    return rest_fail(x, 409, "conflict", "unit %s is disabled", unit);
  if (strcmp(role, "mgmt_reviewer") == 0 && !management)
    return rest_fail(x, 409, "conflict", "management reviewers belong to a management unit");
  if (strcmp(role, "ops_admin") == 0 && !operations)
    return rest_fail(x, 409, "conflict", "operations admins belong to an operations unit");
  if (strcmp(role, "unit_admin") == 0) {
    gdx_db_param pa[] = {GDX_DB_P_INT(unit_id)};
    rc = gdx_db_query(c,
                      "SELECT username FROM accounts WHERE unit_id = ? AND role = 'unit_admin' "
                      "AND status = 'active'",
                      pa, 1, 10, &r);
    if (rc)
      return rc;
    size_t n = r.nrows;
    char existing[GDX_NAME_SIZE] = "";
    if (n)
      snprintf(existing, sizeof(existing), "%s", gdx_db_get(&r, 0, 0));
    gdx_db_result_free(&r);
    if (n) /* R-ACC-1: one unit admin per unit */
      return rest_fail(x, 409, "conflict", "unit %s already has its unit admin (%s)", unit,
                       existing);
  }
  const char *code, *msg;
  if (password_policy_check(pw, user, &code, &msg))
    return rest_fail(x, 400, code, "initial_password: %s", msg);
  char enc[256];
  if ((rc = password_hash(x->cfg, pw, enc, sizeof(enc))) != GDX_OK)
    return rc;
  gdx_db_param p[] = {GDX_DB_P_INT(unit_id), GDX_DB_P_STR(user), GDX_DB_P_STR(display),
                      GDX_DB_P_STR(role),    GDX_DB_P_STR(enc),  GDX_DB_P_INT(x->who.id)};
  uint64_t n = 0;
  rc = gdx_db_exec(c,
                   "INSERT IGNORE INTO accounts (unit_id, username, display_name, role, "
                   "password_hash, password_changed_at, must_change_password, created_at, "
                   "created_by) VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6), 1, UTC_TIMESTAMP(6), ?)",
                   p, 6, &n, NULL);
  if (rc)
    return rc;
  if (n == 0)
    return rest_fail(x, 409, "conflict", "the user name %s is taken", user);
  x->status = 201;
  x->out =
      json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "username", user, "display_name", display, "role",
                role, "unit_code", unit, "status", "active", "must_change_password", 1);
  return GDX_OK;
}

#define ACCOUNT_COLS                                                                               \
  "a.username, a.display_name, a.role, u.code, a.status, a.must_change_password, "                 \
  "a.locked_until IS NOT NULL AND a.locked_until > UTC_TIMESTAMP(6), "                             \
  "DATE_FORMAT(a.created_at, '%Y-%m-%dT%H:%i:%sZ')"

static json_t *account_json(const gdx_db_result *r, size_t i) {
  gdx_db_row w = gdx_db_row_at(r, i);
  int must_change = gdx_db_flag(&w, 5), locked = gdx_db_flag(&w, 6);
  if (w.rc)
    gdx_db_row_fail(&w, "accounts"); /* shown as false */
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:s}", "username", gdx_db_get(r, i, 0),
                   "display_name", gdx_db_get(r, i, 1), "role", gdx_db_get(r, i, 2), "unit_code",
                   gdx_db_get(r, i, 3), "status", gdx_db_get(r, i, 4), "must_change_password",
                   must_change, "locked", locked, "created_at", gdx_db_get(r, i, 7));
}

static int work_account_list(gdx_db_conn *c, rest_ctx *x) {
  char ubuf[32];
  const char *unit = rest_query(x, "unit", ubuf, sizeof(ubuf), "");
  if (x->status)
    return GDX_OK;
  if (x->who.role == ROLE_UNIT_ADMIN)
    unit = x->who.unit_code; /* its own unit, whatever it asked */
  gdx_db_param p[] = {GDX_DB_P_STR(unit), GDX_DB_P_STR(unit)};
  return rest_list(c, x,
                   "SELECT " ACCOUNT_COLS " FROM accounts a JOIN units u ON u.id = a.unit_id "
                   "WHERE ? = '' OR u.code = ? ORDER BY u.code, a.username",
                   p, 2, 100000, account_json);
}

static int work_account_get(gdx_db_conn *c, rest_ctx *x) {
  /* operations and management see every account, a unit admin its unit's,
   * anyone their own; another unit's accounts are not even confirmed to
   * exist */
  gdx_db_param p[] = {GDX_DB_P_STR(x->params[0]), GDX_DB_P_INT(rest_sees_all(x)),
                      GDX_DB_P_STR(x->who.username),
                      GDX_DB_P_INT(x->who.role == ROLE_UNIT_ADMIN ? x->who.unit_id : 0)};
  gdx_db_result r;
  int rc = rest_load_one(c, x,
                         "SELECT " ACCOUNT_COLS " FROM accounts a JOIN units u ON "
                         "u.id = a.unit_id WHERE a.username = ? AND (? = 1 OR a.username = ? "
                         "OR a.unit_id = ?)",
                         p, 4, &r, "no account %s that you may see", x->params[0]);
  if (rc || x->status)
    return rc;
  x->out = account_json(&r, 0);
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int manage_target(gdx_db_conn *c, rest_ctx *x, account_row *a) {
  snprintf(x->audit_object, sizeof(x->audit_object), "account:%s", x->params[0]);
  int rc = load_account(c, x, a);
  if (rc || x->status)
    return rc;
  if (!may_manage(x, a))
    return rest_fail(x, 403, "forbidden", "you may not manage account %s", x->params[0]);
  return GDX_OK;
}

static int set_account_status(gdx_db_conn *c, rest_ctx *x, const char *status) {
  account_row a;
  int rc = manage_target(c, x, &a);
  if (rc || x->status)
    return rc;
  gdx_db_param p[] = {GDX_DB_P_STR(status), GDX_DB_P_INT(a.id)};
  rc = gdx_db_exec(c, "UPDATE accounts SET status = ? WHERE id = ?", p, 2, NULL, NULL);
  gdx_db_param pid[] = {GDX_DB_P_INT(a.id)};
  if (!rc && strcmp(status, "disabled") == 0) /* R-ACC-5: out at once */
    rc = gdx_db_exec(c, "DELETE FROM sessions WHERE account_id = ?", pid, 1, NULL, NULL);
  if (!rc) /* credentials owned by the account stop or start working */
    rc = rest_invalidate(c, x, "account", a.id);
  if (!rc)
    x->out = json_pack("{s:s, s:s}", "username", a.username, "status", status);
  return rc;
}

static int work_account_disable(gdx_db_conn *c, rest_ctx *x) {
  return set_account_status(c, x, "disabled");
}

static int work_account_enable(gdx_db_conn *c, rest_ctx *x) {
  return set_account_status(c, x, "active");
}

static int work_account_reset(gdx_db_conn *c, rest_ctx *x) {
  account_row a;
  int rc = manage_target(c, x, &a);
  if (rc || x->status)
    return rc;
  const char *pw = json_string_value(json_object_get(x->in, "new_password"));
  const char *code, *msg;
  if (password_policy_check(pw, a.username, &code, &msg))
    return rest_fail(x, 400, code, "new_password: %s", msg);
  char enc[256];
  if ((rc = password_hash(x->cfg, pw, enc, sizeof(enc))) != GDX_OK)
    return rc;
  gdx_db_param p[] = {GDX_DB_P_STR(enc), GDX_DB_P_INT(a.id)};
  rc = gdx_db_exec(c,
                   "UPDATE accounts SET password_hash = ?, password_changed_at = UTC_TIMESTAMP(6), "
                   "must_change_password = 1, failed_logins = 0, locked_until = NULL WHERE id = ?",
                   p, 2, NULL, NULL);
  gdx_db_param pid[] = {GDX_DB_P_INT(a.id)};
  if (!rc)
    rc = gdx_db_exec(c, "DELETE FROM sessions WHERE account_id = ?", pid, 1, NULL, NULL);
  if (!rc) /* credentials owned by the account stop or start working */
    rc = rest_invalidate(c, x, "account", a.id);
  if (!rc)
    x->out = json_pack("{s:s, s:b}", "username", a.username, "must_change_password", 1);
  return rc;
}

static const rest_route routes[] = {
    {"POST", "/api/v1/accounts", "account.create", REST_SESSION, ROLE_OPS | ROLE_UNIT_ADMIN,
     "account_create", work_account_create,
     "Create an account (ops: unit admins and reviewers; unit admin: its staff)"},
    {"GET", "/api/v1/accounts", NULL, REST_SESSION, ROLE_OPS | ROLE_MGMT | ROLE_UNIT_ADMIN, NULL,
     work_account_list, "List accounts (unit admins: their unit's)"},
    {"GET", "/api/v1/accounts/{}", NULL, REST_SESSION, ROLE_ANY, NULL, work_account_get,
     "One account"},
    {"POST", "/api/v1/accounts/{}/disable", "account.disable", REST_SESSION,
     ROLE_OPS | ROLE_UNIT_ADMIN, NULL, work_account_disable,
     "Disable an account; its sessions end at once"},
    {"POST", "/api/v1/accounts/{}/enable", "account.enable", REST_SESSION,
     ROLE_OPS | ROLE_UNIT_ADMIN, NULL, work_account_enable, "Enable an account again"},
    {"POST", "/api/v1/accounts/{}/reset-password", "account.reset_password", REST_SESSION,
     ROLE_OPS | ROLE_UNIT_ADMIN, "password_reset", work_account_reset,
     "Set a new initial password (must be changed at next login)"},
};
const rest_part accounts_part = REST_PART("accounts", routes);
