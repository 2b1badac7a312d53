/* The audit part of the API: list the trail, verify its chain, purge what
 * is older than the retention period (audit_chain.h holds the chain). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_chain.h"
#include "error.h"
#include "parts.h"

static int work_verify(gdx_db_conn *c, rest_ctx *x) {
  long long count, bad;
  char why[200] = "";
  int rc = audit_verify(c, &count, &bad, why, sizeof(why));
  if (rc)
    return rc;
  x->out = json_pack("{s:b, s:I}", "ok", bad == 0, "records_checked", (json_int_t)count);
  if (bad) {
    json_object_set_new(x->out, "first_bad_id", json_integer(bad));
    json_object_set_new(x->out, "problem", json_string(why));
  }
  return GDX_OK;
}

static json_t *audit_json(const gdx_db_result *r, size_t i) {
  static const char *const names[] = {"id",     "ts",     "actor",  "unit_code",
                                      "action", "object", "purpose", "result",
                                      "source", "request_id", "detail", "hash"};
  json_t *o = json_object();
  for (size_t k = 0; k < 12; k++) {
    const char *v = gdx_db_get(r, i, k);
    json_t *d = k == 10 ? json_loads(v, 0, NULL) : NULL; /* detail is stored as JSON */
    if (k == 0)
      json_object_set_new(o, names[k], rest_json_int(r, i, 0));
    else
      json_object_set_new(o, names[k], d ? d : json_string(v ? v : ""));
  }
  return o;
}

static int work_list(gdx_db_conn *c, rest_ctx *x) {
  int bad = 0;
  long long after = rest_query_int(x, "after_id", 0, 0, (long long)1 << 62, &bad);
  long long limit = rest_query_int(x, "limit", 100, 1, 1000, &bad);
  if (bad)
    return rest_fail(x, 400, "invalid_query", "after_id must be >= 0 and limit from 1 to 1000");
  char action[GDX_NAME_SIZE], actor[GDX_NAME_SIZE];
  const char *fa = rest_query(x, "action", action, sizeof(action), "");
  const char *fb = rest_query(x, "actor", actor, sizeof(actor), "");
  if (x->status)
    return GDX_OK;
  /* unit admins see their own unit's records; ops and management see all */
  const char *unit = x->who.role == ROLE_UNIT_ADMIN ? x->who.unit_code : "";
  gdx_db_param p[] = {GDX_DB_P_INT(after), GDX_DB_P_STR(fa), GDX_DB_P_STR(fa),
                      GDX_DB_P_STR(fb),    GDX_DB_P_STR(fb), GDX_DB_P_STR(unit),
                      GDX_DB_P_STR(unit),  GDX_DB_P_INT(limit)};
  return rest_list(c, x,
                   "SELECT id, DATE_FORMAT(ts, '%Y-%m-%dT%H:%i:%s.%fZ'), actor, unit_code, "
                   "action, object, purpose, result, source, request_id, detail, hash "
                   "FROM audit_log WHERE id > ? AND (? = '' OR action = ?) "
                   "AND (? = '' OR actor = ?) AND (? = '' OR unit_code = ?) "
                   "ORDER BY id LIMIT ?",
                   p, 8, 1000, audit_json);
}

static int work_purge(gdx_db_conn *c, rest_ctx *x) {
  long long days = json_integer_value(json_object_get(x->in, "older_than_days"));
  x->audit_detail = json_pack("{s:I}", "older_than_days", (json_int_t)days);
  if (days < x->cfg->audit_retention_days)
    return rest_fail(x, 400, "retention", "audit records are kept at least %lld days",
                     x->cfg->audit_retention_days);
  gdx_db_param p[] = {GDX_DB_P_INT(days)};
  gdx_db_result r;
  /* The first record that stays, and the hash the chain must start from. */
  int rc = gdx_db_query(c,
                        "SELECT id, prev_hash FROM audit_log WHERE ts >= UTC_TIMESTAMP(6) - "
                        "INTERVAL ? DAY ORDER BY id LIMIT 1",
                        p, 1, 1, &r);
  if (rc)
    return rc;
  uint64_t removed = 0;
  gdx_db_row w = gdx_db_row_at(&r, 0); /* no row: nothing is old enough */
  long long first = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  if (r.nrows == 1 && w.rc)
    rc = gdx_db_row_fail(&w, "audit_log");
  if (!rc && r.nrows == 1) {
    gdx_db_param pk[] = {GDX_DB_P_INT(first)};
    gdx_db_param ph[] = {GDX_DB_P_INT(first), GDX_DB_P_STR(gdx_db_get(&r, 0, 1))};
    rc = gdx_db_exec(c, "DELETE FROM audit_log WHERE id < ?", pk, 1, &removed, NULL);
    if (!rc)
      rc = gdx_db_exec(c, "UPDATE audit_head SET first_id = ?, anchor_hash = ? WHERE one = 1",
                       ph, 2, NULL, NULL);
  }
  gdx_db_result_free(&r);
  if (!rc)
    x->out = json_pack("{s:I}", "removed", (json_int_t)removed);
  return rc;
}

static const rest_route routes[] = {
    {"GET", "/api/v1/audit", NULL, REST_SESSION, ROLE_OPS | ROLE_MGMT | ROLE_UNIT_ADMIN, NULL,
     work_list, "List audit records (unit admins: their unit's)"},
    {"GET", "/api/v1/audit/verify", NULL, REST_SESSION, ROLE_OPS | ROLE_MGMT, NULL, work_verify,
     "Check the hash chain; names the first bad record"},
    {"POST", "/api/v1/audit/purge", "audit.purge", REST_SESSION, ROLE_OPS, "audit_purge",
     work_purge, "Remove records older than N days (N >= audit.retention_days)"},
};
const rest_part audit_part = REST_PART("audit", routes);
