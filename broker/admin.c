/* Units and accounts (R-ACC-1, R-ACC-5): the operations admin registers
 * units and gives each its unit admin; a unit admin manages only its own
 * unit's staff. Disabling an account or a unit ends its sessions at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "error.h"
#include "ids.h"

static json_t *unit_json(const gdx_db_result *r, size_t i) {
  json_t *roles = json_array();
  char buf[64];
  snprintf(buf, sizeof(buf), "%s", gdx_db_get(r, i, 2));
  for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
    json_array_append_new(roles, json_string(t));
  return json_pack("{s:s, s:s, s:o, s:s, s:s}", "code", gdx_db_get(r, i, 0), "name",
                   gdx_db_get(r, i, 1), "roles", roles, "status", gdx_db_get(r, i, 3),
                   "created_at", gdx_db_get(r, i, 4));
}

#define UNIT_COLS "code, name, roles, status, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ')"

static int work_unit_create(gdx_db_conn *c, api_ctx *x) {
  const char *code = json_string_value(json_object_get(x->in, "code"));
  const char *name = json_string_value(json_object_get(x->in, "name"));
  snprintf(x->audit_object, sizeof(x->audit_object), "unit:%s", code);
  const char *why;
  if (gdx_uscc_check(code, &why))
    return api_fail(x, 400, "invalid_field", "code: %s", why);
  char roles[64] = "";
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(x->in, "roles"), i, v) {
    size_t used = strlen(roles);
    snprintf(roles + used, sizeof(roles) - used, "%s%s", used ? "," : "", json_string_value(v));
  }
  gdx_db_param p[] = {GDX_DB_P_STR(code), GDX_DB_P_STR(name), GDX_DB_P_STR(roles)};
  uint64_t n = 0;
  int rc = gdx_db_exec(c,
                       "INSERT IGNORE INTO units (code, name, roles, status, created_at, "
                       "updated_at) VALUES (?, ?, ?, 'active', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                       p, 3, &n, NULL);
  if (rc)
    return rc;
  if (n == 0)
    return api_fail(x, 409, "conflict", "a unit with code %s exists already", code);
  x->audit_detail = json_pack("{s:s, s:s}", "name", name, "roles", roles);
  x->status = 201;
  x->out = json_pack("{s:s, s:s, s:O, s:s}", "code", code, "name", name, "roles",
                     json_object_get(x->in, "roles"), "status", "active");
  return GDX_OK;
}

static int work_unit_list(gdx_db_conn *c, api_ctx *x) {
  return api_list(c, x, "SELECT " UNIT_COLS " FROM units ORDER BY code", NULL, 0, 100000,
                  unit_json);
}

static int work_unit_get(gdx_db_conn *c, api_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_STR(x->params[0])};
  gdx_db_result r;
  int rc = gdx_db_query(c, "SELECT " UNIT_COLS " FROM units WHERE code = ?", p, 1, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 0)
    api_fail(x, 404, "not_found", "no unit with code %s", x->params[0]);
  else
    x->out = unit_json(&r, 0);
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int set_unit_status(gdx_db_conn *c, api_ctx *x, const char *status) {
  snprintf(x->audit_object, sizeof(x->audit_object), "unit:%s", x->params[0]);
  if (strcmp(x->params[0], x->who.unit_code) == 0)
    return api_fail(x, 409, "conflict", "the operations admin cannot disable its own unit");
  gdx_db_param p[] = {GDX_DB_P_STR(status), GDX_DB_P_STR(x->params[0])};
  uint64_t n = 0;
  int rc = gdx_db_exec(c, "UPDATE units SET status = ?, updated_at = UTC_TIMESTAMP(6) WHERE code = ?",
                       p, 2, &n, NULL);
  if (rc)
    return rc;
  gdx_db_param pc[] = {GDX_DB_P_STR(x->params[0])};
  gdx_db_result r;
  rc = gdx_db_query(c, "SELECT 1 FROM units WHERE code = ?", pc, 1, 1, &r);
  if (rc)
    return rc;
  size_t found = r.nrows;
  gdx_db_result_free(&r);
  if (!found)
    return api_fail(x, 404, "not_found", "no unit with code %s", x->params[0]);
  if (strcmp(status, "disabled") == 0)
    rc = gdx_db_exec(c,
                     "DELETE s FROM sessions s JOIN accounts a ON a.id = s.account_id "
                     "JOIN units u ON u.id = a.unit_id WHERE u.code = ?",
                     pc, 1, NULL, NULL);
  if (!rc) /* either way: cached access decisions of the unit's credentials change */
    rc = api_invalidate(c, x, "unit", 0);
  if (!rc)
    x->out = json_pack("{s:s, s:s}", "code", x->params[0], "status", status);
  return rc;
}

static int work_unit_disable(gdx_db_conn *c, api_ctx *x) { return set_unit_status(c, x, "disabled"); }
static int work_unit_enable(gdx_db_conn *c, api_ctx *x) { return set_unit_status(c, x, "active"); }

/* ------------------------------------------------------------------ */
/* accounts                                                            */

typedef struct {
  long long id, unit_id;
  char username[65], unit_code[19], role[16], status[16];
} account_row;

/* Loads an account; 0 rows -> found = 0. */
static int load_account(gdx_db_conn *c, const char *username, account_row *a, int *found) {
  gdx_db_param p[] = {GDX_DB_P_STR(username)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT a.id, a.unit_id, a.username, u.code, a.role, a.status "
                        "FROM accounts a JOIN units u ON u.id = a.unit_id WHERE a.username = ? "
                        "FOR UPDATE",
                        p, 1, 1, &r);
  if (rc)
    return rc;
  *found = r.nrows == 1;
  if (*found) {
    a->id = atoll(gdx_db_get(&r, 0, 0));
    a->unit_id = atoll(gdx_db_get(&r, 0, 1));
    snprintf(a->username, sizeof(a->username), "%s", gdx_db_get(&r, 0, 2));
    snprintf(a->unit_code, sizeof(a->unit_code), "%s", gdx_db_get(&r, 0, 3));
    snprintf(a->role, sizeof(a->role), "%s", gdx_db_get(&r, 0, 4));
    snprintf(a->status, sizeof(a->status), "%s", gdx_db_get(&r, 0, 5));
  }
  gdx_db_result_free(&r);
  return GDX_OK;
}

/* May the caller manage (disable, reset) this account? */
static int may_manage(const api_ctx *x, const account_row *a) {
  if (a->id == x->who.id)
    return 0; /* not oneself: that is what password change is for */
  if (x->who.role == ROLE_OPS)
    return 1;
  return x->who.role == ROLE_UNIT_ADMIN && strcmp(a->role, "staff") == 0 &&
         a->unit_id == x->who.unit_id;
}

static int work_account_create(gdx_db_conn *c, api_ctx *x) {
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
      return api_fail(x, 403, "forbidden", "a unit admin creates staff accounts only");
    if (strcmp(unit, x->who.unit_code) != 0)
      return api_fail(x, 403, "forbidden", "a unit admin manages its own unit only");
  } else if (x->who.role == ROLE_OPS && strcmp(role, "staff") == 0) {
    return api_fail(x, 403, "forbidden", "staff accounts are created by their unit admin");
  }
  gdx_db_param pu[] = {GDX_DB_P_STR(unit)};
  gdx_db_result r;
  int rc = gdx_db_query(c, "SELECT id, roles, status FROM units WHERE code = ? FOR UPDATE", pu,
                        1, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 0) {
    gdx_db_result_free(&r);
    return api_fail(x, 404, "not_found", "no unit with code %s", unit);
  }
  long long unit_id = atoll(gdx_db_get(&r, 0, 0));
  char uroles[64], ustatus[16];
  snprintf(uroles, sizeof(uroles), "%s", gdx_db_get(&r, 0, 1));
  snprintf(ustatus, sizeof(ustatus), "%s", gdx_db_get(&r, 0, 2));
  gdx_db_result_free(&r);
  if (strcmp(ustatus, "active") != 0)
    return api_fail(x, 409, "conflict", "unit %s is disabled", unit);
  if (strcmp(role, "mgmt_reviewer") == 0 && strstr(uroles, "management") == NULL)
    return api_fail(x, 409, "conflict", "management reviewers belong to a management unit");
  if (strcmp(role, "ops_admin") == 0 && strstr(uroles, "operations") == NULL)
    return api_fail(x, 409, "conflict", "operations admins belong to an operations unit");
  if (strcmp(role, "unit_admin") == 0) {
    gdx_db_param pa[] = {GDX_DB_P_INT(unit_id)};
    rc = gdx_db_query(c,
                      "SELECT username FROM accounts WHERE unit_id = ? AND role = 'unit_admin' "
                      "AND status = 'active'",
                      pa, 1, 10, &r);
    if (rc)
      return rc;
    size_t n = r.nrows;
    char existing[65] = "";
    if (n)
      snprintf(existing, sizeof(existing), "%s", gdx_db_get(&r, 0, 0));
    gdx_db_result_free(&r);
    if (n) /* R-ACC-1: one unit admin per unit */
      return api_fail(x, 409, "conflict", "unit %s already has its unit admin (%s)", unit, existing);
  }
  const char *code, *msg;
  if (auth_password_policy(pw, user, &code, &msg))
    return api_fail(x, 400, code, "initial_password: %s", msg);
  char enc[256];
  if ((rc = auth_hash_password(x->cfg, pw, enc, sizeof(enc))) != GDX_OK)
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
    return api_fail(x, 409, "conflict", "the user name %s is taken", user);
  x->status = 201;
  x->out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "username", user, "display_name", display,
                     "role", role, "unit_code", unit, "status", "active", "must_change_password", 1);
  return GDX_OK;
}

#define ACCOUNT_COLS                                                                             \
  "a.username, a.display_name, a.role, u.code, a.status, a.must_change_password, "              \
  "a.locked_until IS NOT NULL AND a.locked_until > UTC_TIMESTAMP(6), "                          \
  "DATE_FORMAT(a.created_at, '%Y-%m-%dT%H:%i:%sZ')"

static json_t *account_json(const gdx_db_result *r, size_t i) {
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:s}", "username", gdx_db_get(r, i, 0),
                   "display_name", gdx_db_get(r, i, 1), "role", gdx_db_get(r, i, 2), "unit_code",
                   gdx_db_get(r, i, 3), "status", gdx_db_get(r, i, 4), "must_change_password",
                   atoi(gdx_db_get(r, i, 5)), "locked", atoi(gdx_db_get(r, i, 6)), "created_at",
                   gdx_db_get(r, i, 7));
}

static int work_account_list(gdx_db_conn *c, api_ctx *x) {
  char ubuf[32];
  const char *unit = api_query(x, "unit", ubuf, sizeof(ubuf), "");
  if (x->status)
    return GDX_OK;
  if (x->who.role == ROLE_UNIT_ADMIN)
    unit = x->who.unit_code; /* its own unit, whatever it asked */
  gdx_db_param p[] = {GDX_DB_P_STR(unit), GDX_DB_P_STR(unit)};
  return api_list(c, x,
                  "SELECT " ACCOUNT_COLS " FROM accounts a JOIN units u ON u.id = a.unit_id "
                  "WHERE ? = '' OR u.code = ? ORDER BY u.code, a.username",
                  p, 2, 100000, account_json);
}

static int work_account_get(gdx_db_conn *c, api_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_STR(x->params[0])};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT " ACCOUNT_COLS ", a.unit_id FROM accounts a JOIN units u ON "
                        "u.id = a.unit_id WHERE a.username = ?",
                        p, 1, 1, &r);
  if (rc)
    return rc;
  int visible = r.nrows == 1 &&
                (x->who.role == ROLE_OPS || x->who.role == ROLE_MGMT ||
                 strcmp(x->params[0], x->who.username) == 0 ||
                 (x->who.role == ROLE_UNIT_ADMIN && atoll(gdx_db_get(&r, 0, 8)) == x->who.unit_id));
  if (visible)
    x->out = account_json(&r, 0);
  else /* another unit's accounts are not even confirmed to exist */
    api_fail(x, 404, "not_found", "no account %s that you may see", x->params[0]);
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int manage_target(gdx_db_conn *c, api_ctx *x, account_row *a) {
  snprintf(x->audit_object, sizeof(x->audit_object), "account:%s", x->params[0]);
  int found = 0;
  int rc = load_account(c, x->params[0], a, &found);
  if (rc)
    return rc;
  if (!found)
    return api_fail(x, 404, "not_found", "no account %s", x->params[0]);
  if (!may_manage(x, a))
    return api_fail(x, 403, "forbidden", "you may not manage account %s", x->params[0]);
  return GDX_OK;
}

static int set_account_status(gdx_db_conn *c, api_ctx *x, const char *status) {
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
    rc = api_invalidate(c, x, "account", a.id);
  if (!rc)
    x->out = json_pack("{s:s, s:s}", "username", a.username, "status", status);
  return rc;
}

static int work_account_disable(gdx_db_conn *c, api_ctx *x) { return set_account_status(c, x, "disabled"); }
static int work_account_enable(gdx_db_conn *c, api_ctx *x) { return set_account_status(c, x, "active"); }

static int work_account_reset(gdx_db_conn *c, api_ctx *x) {
  account_row a;
  int rc = manage_target(c, x, &a);
  if (rc || x->status)
    return rc;
  const char *pw = json_string_value(json_object_get(x->in, "new_password"));
  const char *code, *msg;
  if (auth_password_policy(pw, a.username, &code, &msg))
    return api_fail(x, 400, code, "new_password: %s", msg);
  char enc[256];
  if ((rc = auth_hash_password(x->cfg, pw, enc, sizeof(enc))) != GDX_OK)
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
    rc = api_invalidate(c, x, "account", a.id);
  if (!rc)
    x->out = json_pack("{s:s, s:b}", "username", a.username, "must_change_password", 1);
  return rc;
}

const api_route api_admin_routes[] = {
    {"POST", "/api/v1/units", "unit.create", API_SESSION, ROLE_OPS, "unit_create",
     work_unit_create, "Register a unit (operations admin)"},
    {"GET", "/api/v1/units", NULL, API_SESSION, ROLE_ANY, NULL, work_unit_list, "List units"},
    {"GET", "/api/v1/units/{}", NULL, API_SESSION, ROLE_ANY, NULL, work_unit_get, "One unit"},
    {"POST", "/api/v1/units/{}/disable", "unit.disable", API_SESSION, ROLE_OPS, NULL,
     work_unit_disable, "Disable a unit and end its sessions"},
    {"POST", "/api/v1/units/{}/enable", "unit.enable", API_SESSION, ROLE_OPS, NULL,
     work_unit_enable, "Enable a unit again"},
    {"POST", "/api/v1/accounts", "account.create", API_SESSION, ROLE_OPS | ROLE_UNIT_ADMIN,
     "account_create", work_account_create,
     "Create an account (ops: unit admins and reviewers; unit admin: its staff)"},
    {"GET", "/api/v1/accounts", NULL, API_SESSION, ROLE_OPS | ROLE_MGMT | ROLE_UNIT_ADMIN, NULL,
     work_account_list, "List accounts (unit admins: their unit's)"},
    {"GET", "/api/v1/accounts/{}", NULL, API_SESSION, ROLE_ANY, NULL, work_account_get,
     "One account"},
    {"POST", "/api/v1/accounts/{}/disable", "account.disable", API_SESSION,
     ROLE_OPS | ROLE_UNIT_ADMIN, NULL, work_account_disable,
     "Disable an account; its sessions end at once"},
    {"POST", "/api/v1/accounts/{}/enable", "account.enable", API_SESSION,
     ROLE_OPS | ROLE_UNIT_ADMIN, NULL, work_account_enable, "Enable an account again"},
    {"POST", "/api/v1/accounts/{}/reset-password", "account.reset_password", API_SESSION,
     ROLE_OPS | ROLE_UNIT_ADMIN, "password_reset", work_account_reset,
     "Set a new initial password (must be changed at next login)"},
};
const size_t api_admin_nroutes = sizeof(api_admin_routes) / sizeof(api_admin_routes[0]);
