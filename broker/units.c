/* The units part of the API (R-ACC-1): the operations admin registers the
 * units (each with its roles: provider, consumer, management, operations),
 * disables and enables them. Disabling a unit ends its sessions at once and
 * drops the access decisions cached for its credentials. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ids.h"
#include "parts.h"

static json_t *unit_json(const gdx_db_result *r, size_t i) {
  json_t *roles = json_array();
  char buf[64], *save = NULL;
  snprintf(buf, sizeof(buf), "%s", gdx_db_get(r, i, 2));
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
    json_array_append_new(roles, json_string(t));
  return json_pack("{s:s, s:s, s:o, s:s, s:s}", "code", gdx_db_get(r, i, 0), "name",
                   gdx_db_get(r, i, 1), "roles", roles, "status", gdx_db_get(r, i, 3), "created_at",
                   gdx_db_get(r, i, 4));
}

#define UNIT_COLS "code, name, roles, status, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ')"

static int work_unit_create(gdx_db_conn *c, rest_ctx *x) {
  const char *code = json_string_value(json_object_get(x->in, "code"));
  const char *name = json_string_value(json_object_get(x->in, "name"));
  snprintf(x->audit_object, sizeof(x->audit_object), "unit:%s", code);
  const char *why;
  if (gdx_uscc_check(code, &why))
    return rest_fail(x, 400, "invalid_field", "code: %s", why);
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
    return rest_fail(x, 409, "conflict", "a unit with code %s exists already", code);
  x->audit_detail = json_pack("{s:s, s:s}", "name", name, "roles", roles);
  x->status = 201;
  x->out = json_pack("{s:s, s:s, s:O, s:s}", "code", code, "name", name, "roles",
                     json_object_get(x->in, "roles"), "status", "active");
  return GDX_OK;
}

static int work_unit_list(gdx_db_conn *c, rest_ctx *x) {
  return rest_list(c, x, "SELECT " UNIT_COLS " FROM units ORDER BY code", NULL, 0, 100000,
                   unit_json);
}

static int work_unit_get(gdx_db_conn *c, rest_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_STR(x->params[0])};
  gdx_db_result r;
  int rc = rest_load_one(c, x, "SELECT " UNIT_COLS " FROM units WHERE code = ?", p, 1, &r,
                         "no unit with code %s", x->params[0]);
  if (rc || x->status)
    return rc;
  x->out = unit_json(&r, 0);
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int set_unit_status(gdx_db_conn *c, rest_ctx *x, const char *status) {
  snprintf(x->audit_object, sizeof(x->audit_object), "unit:%s", x->params[0]);
  if (strcmp(x->params[0], x->who.unit_code) == 0)
    return rest_fail(x, 409, "conflict", "the operations admin cannot disable its own unit");
  gdx_db_param p[] = {GDX_DB_P_STR(status), GDX_DB_P_STR(x->params[0])};
  uint64_t n = 0;
  int rc =
      gdx_db_exec(c, "UPDATE units SET status = ?, updated_at = UTC_TIMESTAMP(6) WHERE code = ?", p,
                  2, &n, NULL);
  if (rc)
    return rc;
  gdx_db_param pc[] = {GDX_DB_P_STR(x->params[0])};
  gdx_db_result r;
  rc = rest_load_one(c, x, "SELECT 1 FROM units WHERE code = ?", pc, 1, &r, "no unit with code %s",
                     x->params[0]);
  if (rc || x->status)
    return rc;
  gdx_db_result_free(&r);
  if (strcmp(status, "disabled") == 0)
    rc = gdx_db_exec(c,
                     "DELETE s FROM sessions s JOIN accounts a ON a.id = s.account_id "
                     "JOIN units u ON u.id = a.unit_id WHERE u.code = ?",
                     pc, 1, NULL, NULL);
  if (!rc) /* either way: cached access decisions of the unit's credentials change */
    rc = rest_invalidate(c, x, "unit", 0);
  if (!rc)
    x->out = json_pack("{s:s, s:s}", "code", x->params[0], "status", status);
  return rc;
}

static int work_unit_disable(gdx_db_conn *c, rest_ctx *x) {
  return set_unit_status(c, x, "disabled");
}

static int work_unit_enable(gdx_db_conn *c, rest_ctx *x) { return set_unit_status(c, x, "active"); }

static const rest_route routes[] = {
    {"POST", "/api/v1/units", "unit.create", REST_SESSION, ROLE_OPS, "unit_create",
     work_unit_create, "Register a unit (operations admin)"},
    {"GET", "/api/v1/units", NULL, REST_SESSION, ROLE_ANY, NULL, work_unit_list, "List units"},
    {"GET", "/api/v1/units/{}", NULL, REST_SESSION, ROLE_ANY, NULL, work_unit_get, "One unit"},
    {"POST", "/api/v1/units/{}/disable", "unit.disable", REST_SESSION, ROLE_OPS, NULL,
     work_unit_disable, "Disable a unit and end its sessions"},
    {"POST", "/api/v1/units/{}/enable", "unit.enable", REST_SESSION, ROLE_OPS, NULL,
     work_unit_enable, "Enable a unit again"},
};

const rest_part units_part = REST_PART("units", routes);
