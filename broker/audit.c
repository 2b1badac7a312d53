/* The audit trail (R-OPS-4, R-ACC): every login, state change and approval,
 * hash-chained so that an edited, inserted or deleted record is found.
 *
 *   hash(n) = SHA-256(prev_hash | id | ts | actor | unit | action | object |
 *                     purpose | result | source | request_id | detail)
 * with '|' standing for the byte 0x1f. audit_head holds the last id and hash
 * (locked FOR UPDATE to append, which serialises writers across brokers) and,
 * after a purge, the first kept id and the prev_hash it must start from.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "error.h"

#define VERIFY_BATCH 1000

static void chain_hash(const char *fields[12], char out[65]) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  for (int i = 0; i < 12; i++) {
    if (i)
      EVP_DigestUpdate(md, "\x1f", 1);
    EVP_DigestUpdate(md, fields[i], strlen(fields[i]));
  }
  unsigned char h[32];
  unsigned n;
  EVP_DigestFinal_ex(md, h, &n);
  EVP_MD_CTX_free(md);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", h[i]);
}

int api_audit_append(gdx_db_conn *c, const char *actor, const char *unit, const char *action,
                     const char *object, const char *purpose, const char *result,
                     const char *source, const char *request_id, const char *detail) {
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT last_id, last_hash, DATE_FORMAT(UTC_TIMESTAMP(6), "
                        "'%Y-%m-%d %H:%i:%s.%f') FROM audit_head WHERE one = 1 FOR UPDATE",
                        NULL, 0, 1, &r);
  if (rc)
    return rc;
  if (r.nrows != 1) {
    gdx_db_result_free(&r);
    return GDX_EDB;
  }
  long long id = atoll(gdx_db_get(&r, 0, 0)) + 1;
  char prev[65], ts[32], ids[24], hash[65];
  snprintf(prev, sizeof(prev), "%s", gdx_db_get(&r, 0, 1));
  snprintf(ts, sizeof(ts), "%s", gdx_db_get(&r, 0, 2));
  gdx_db_result_free(&r);
  snprintf(ids, sizeof(ids), "%lld", id);
  const char *f[12] = {prev, ids, ts, actor, unit, action, object, purpose, result, source,
                       request_id, detail};
  chain_hash(f, hash);
  gdx_db_param p[] = {GDX_DB_P_INT(id),        GDX_DB_P_STR(ts),     GDX_DB_P_STR(actor),
                      GDX_DB_P_STR(unit),      GDX_DB_P_STR(action), GDX_DB_P_STR(object),
                      GDX_DB_P_STR(purpose),   GDX_DB_P_STR(result), GDX_DB_P_STR(source),
                      GDX_DB_P_STR(request_id), GDX_DB_P_STR(detail), GDX_DB_P_STR(prev),
                      GDX_DB_P_STR(hash)};
  rc = gdx_db_exec(c,
                   "INSERT INTO audit_log (id, ts, actor, unit_code, action, object, purpose, "
                   "result, source, request_id, detail, prev_hash, hash) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   p, 13, NULL, NULL);
  if (rc)
    return rc;
  gdx_db_param ph[] = {GDX_DB_P_INT(id), GDX_DB_P_STR(hash)};
  return gdx_db_exec(c, "UPDATE audit_head SET last_id = ?, last_hash = ? WHERE one = 1", ph, 2,
                     NULL, NULL);
}

/* Walks the chain; on the first problem sets bad_id and why. */
static int verify_chain(gdx_db_conn *c, long long *count, long long *bad_id, char *why,
                        size_t whylen) {
  gdx_db_result h;
  int rc = gdx_db_query(c, "SELECT last_id, last_hash, first_id, anchor_hash FROM audit_head",
                        NULL, 0, 1, &h);
  if (rc)
    return rc;
  long long last_id = atoll(gdx_db_get(&h, 0, 0)), next_id = atoll(gdx_db_get(&h, 0, 2));
  char last_hash[65], prev[65];
  snprintf(last_hash, sizeof(last_hash), "%s", gdx_db_get(&h, 0, 1));
  snprintf(prev, sizeof(prev), "%s", gdx_db_get(&h, 0, 3));
  gdx_db_result_free(&h);
  *count = 0;
  *bad_id = 0;
  for (;;) {
    gdx_db_result r;
    gdx_db_param p[] = {GDX_DB_P_INT(next_id - 1)};
    rc = gdx_db_query(c,
                      "SELECT id, ts, actor, unit_code, action, object, purpose, result, source, "
                      "request_id, detail, prev_hash, hash FROM audit_log WHERE id > ? "
                      "ORDER BY id LIMIT 1000",
                      p, 1, VERIFY_BATCH, &r);
    if (rc)
      return rc;
    for (size_t i = 0; i < r.nrows; i++) {
      long long id = atoll(gdx_db_get(&r, i, 0));
      const char *f[12] = {prev};
      for (int k = 1; k < 12; k++)
        f[k] = gdx_db_get(&r, i, (size_t)(k - 1));
      char hash[65];
      chain_hash(f, hash);
      const char *why_now = NULL;
      if (id != next_id)
        why_now = "a record is missing before this one (ids jump)";
      else if (strcmp(gdx_db_get(&r, i, 11), prev) != 0)
        why_now = "its prev_hash does not match the record before it (inserted or reordered)";
      else if (strcmp(gdx_db_get(&r, i, 12), hash) != 0)
        why_now = "its content does not match its hash (edited)";
      if (why_now) {
        *bad_id = id;
        snprintf(why, whylen, "%s", why_now);
        gdx_db_result_free(&r);
        return GDX_OK;
      }
      snprintf(prev, sizeof(prev), "%s", hash);
      next_id = id + 1;
      (*count)++;
    }
    size_t n = r.nrows;
    gdx_db_result_free(&r);
    if (n < VERIFY_BATCH)
      break;
  }
  if (next_id - 1 != last_id || (last_id > 0 && *count > 0 && strcmp(prev, last_hash) != 0)) {
    *bad_id = next_id;
    snprintf(why, whylen, "the chain ends at %lld but the head says %lld (records deleted at the end)",
             next_id - 1, last_id);
  }
  return GDX_OK;
}

static int work_verify(gdx_db_conn *c, api_ctx *x) {
  long long count, bad;
  char why[200] = "";
  int rc = verify_chain(c, &count, &bad, why, sizeof(why));
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
      json_object_set_new(o, names[k], json_integer(atoll(v)));
    else
      json_object_set_new(o, names[k], d ? d : json_string(v ? v : ""));
  }
  return o;
}

static int work_list(gdx_db_conn *c, api_ctx *x) {
  int bad = 0;
  long long after = api_query_int(x, "after_id", 0, 0, (long long)1 << 62, &bad);
  long long limit = api_query_int(x, "limit", 100, 1, 1000, &bad);
  if (bad)
    return api_fail(x, 400, "invalid_query", "after_id must be >= 0 and limit from 1 to 1000");
  char action[65], actor[65];
  const char *fa = api_query(x, "action", action, sizeof(action), "");
  const char *fb = api_query(x, "actor", actor, sizeof(actor), "");
  if (x->status)
    return GDX_OK;
  /* unit admins see their own unit's records; ops and management see all */
  const char *unit = x->who.role == ROLE_UNIT_ADMIN ? x->who.unit_code : "";
  gdx_db_param p[] = {GDX_DB_P_INT(after), GDX_DB_P_STR(fa), GDX_DB_P_STR(fa),
                      GDX_DB_P_STR(fb),    GDX_DB_P_STR(fb), GDX_DB_P_STR(unit),
                      GDX_DB_P_STR(unit),  GDX_DB_P_INT(limit)};
  return api_list(c, x,
                  "SELECT id, DATE_FORMAT(ts, '%Y-%m-%dT%H:%i:%s.%fZ'), actor, unit_code, "
                  "action, object, purpose, result, source, request_id, detail, hash "
                  "FROM audit_log WHERE id > ? AND (? = '' OR action = ?) "
                  "AND (? = '' OR actor = ?) AND (? = '' OR unit_code = ?) "
                  "ORDER BY id LIMIT ?",
                  p, 8, 1000, audit_json);
}

static int work_purge(gdx_db_conn *c, api_ctx *x) {
  long long days = json_integer_value(json_object_get(x->in, "older_than_days"));
  x->audit_detail = json_pack("{s:I}", "older_than_days", (json_int_t)days);
  if (days < x->cfg->audit_retention_days)
    return api_fail(x, 400, "retention", "audit records are kept at least %lld days",
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
  if (r.nrows == 1) {
    gdx_db_param pk[] = {GDX_DB_P_INT(atoll(gdx_db_get(&r, 0, 0)))};
    gdx_db_param ph[] = {GDX_DB_P_INT(atoll(gdx_db_get(&r, 0, 0))),
                         GDX_DB_P_STR(gdx_db_get(&r, 0, 1))};
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

const api_route api_audit_routes[] = {
    {"GET", "/api/v1/audit", NULL, API_SESSION, ROLE_OPS | ROLE_MGMT | ROLE_UNIT_ADMIN, NULL,
     work_list, "List audit records (unit admins: their unit's)"},
    {"GET", "/api/v1/audit/verify", NULL, API_SESSION, ROLE_OPS | ROLE_MGMT, NULL, work_verify,
     "Check the hash chain; names the first bad record"},
    {"POST", "/api/v1/audit/purge", "audit.purge", API_SESSION, ROLE_OPS, "audit_purge",
     work_purge, "Remove records older than N days (N >= audit.retention_days)"},
};
const size_t api_audit_nroutes = sizeof(api_audit_routes) / sizeof(api_audit_routes[0]);
