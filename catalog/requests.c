/* Requests, demands and authorizations (R-AUTH-1..5).
 *
 * A consumer unit applies for a published resource, stating its purpose, the
 * data items, the exchange method, the validity and (for APIs and comparisons) a quota.
 * The provider's unit admin approves - possibly narrower than asked - or
 * rejects with an opinion; an unconditionally shared resource marked for
 * automatic approval is approved at once (and recorded the same way).
 * Approval creates an authorization; revoking it ends it. A demand for a
 * resource not in the catalog goes to the management unit first (R-AUTH-3).
 * Management sees and supervises everything (R-AUTH-4).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "error.h"

#define REQ_COLS                                                                               \
  "r.id, e.resource_code, e.name, pu.code, cu.code, r.applicant, r.purpose, r.data_items, "    \
  "r.method, DATE_FORMAT(r.valid_until, '%Y-%m-%d'), r.call_quota, r.status, r.decided_by, "   \
  "r.opinion, DATE_FORMAT(r.created_at, '%Y-%m-%dT%H:%i:%sZ'), a.id, e.provider_unit_id, "     \
  "r.consumer_unit_id"
#define REQ_FROM                                                                               \
  " FROM requests r JOIN catalog_entries e ON e.id = r.entry_id "                              \
  "JOIN units pu ON pu.id = e.provider_unit_id JOIN units cu ON cu.id = r.consumer_unit_id "   \
  "LEFT JOIN authorizations a ON a.request_id = r.id "

static json_t *request_json(const gdx_db_result *r, size_t i) {
  json_t *items = json_loads(gdx_db_get(r, i, 7), 0, NULL);
  return json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:o, s:s, s:s, s:s, "
                   "s:s, s:o}",
                   "id", rest_json_int(r, i, 0), "resource_code", gdx_db_get(r, i, 1),
                   "resource_name", gdx_db_get(r, i, 2), "provider_code", gdx_db_get(r, i, 3),
                   "consumer_code", gdx_db_get(r, i, 4), "applicant", gdx_db_get(r, i, 5),
                   "purpose", gdx_db_get(r, i, 6), "data_items", items ? items : json_array(),
                   "method", gdx_db_get(r, i, 8), "valid_until", gdx_db_get(r, i, 9), "call_quota",
                   rest_json_int(r, i, 10), "status", gdx_db_get(r, i, 11), "decided_by",
                   gdx_db_get(r, i, 12), "opinion", gdx_db_get(r, i, 13), "created_at",
                   gdx_db_get(r, i, 14), "authorization_id", rest_json_int(r, i, 15));
}

/* A real calendar date in the form YYYY-MM-DD? */
static int real_date(const char *d) {
  int y, m, day;
  char tail;
  if (sscanf(d, "%4d-%2d-%2d%c", &y, &m, &day, &tail) != 3 || m < 1 || m > 12 || day < 1)
    return 0;
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return day <= days[m - 1] + (m == 2 && leap);
}

/* Is d a real date after today and at most three years ahead? */
static int check_valid_until(gdx_db_conn *c, rest_ctx *x, const char *d, int *ok) {
  *ok = 0;
  if (!real_date(d))
    return rest_fail(x, 400, "invalid_field", "valid_until: %s is not a calendar date", d);
  gdx_db_param p[] = {GDX_DB_P_STR(d), GDX_DB_P_STR(d)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT IFNULL(STR_TO_DATE(?, '%Y-%m-%d') > UTC_DATE() AND "
                        "STR_TO_DATE(?, '%Y-%m-%d') <= UTC_DATE() + INTERVAL 3 YEAR, 0)",
                        p, 2, 1, &r);
  if (rc)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  *ok = gdx_db_flag(&w, 0);
  rc = w.rc ? gdx_db_row_fail(&w, "valid_until") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;
  if (!*ok)
    rest_fail(x, 400, "invalid_field",
              "valid_until: must be a real date after today and at most three years ahead");
  return GDX_OK;
}

typedef struct {
  long long id, provider_unit_id;
  int visible;
  json_t *pub; /* the published version */
} pub_entry;

static int load_published(gdx_db_conn *c, rest_ctx *x, const char *code, pub_entry *e) {
  gdx_db_param p[] = {GDX_DB_P_STR(code)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT id, provider_unit_id, version > 0 AND status <> 'withdrawn', "
                        "published_body FROM catalog_entries WHERE resource_code = ?",
                        p, 1, 1, &r);
  if (rc)
    return rc;
  memset(e, 0, sizeof(*e));
  if (r.nrows == 0) {
    gdx_db_result_free(&r);
    return rest_fail(x, 404, "not_found",
                     "no catalog entry %s; for a resource not in the catalog, file a demand "
                     "(POST /api/v1/demands)",
                     code);
  }
  gdx_db_row w = gdx_db_row_at(&r, 0);
  e->id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  e->provider_unit_id = gdx_db_i64(&w, 1, 1, GDX_DB_ID_MAX);
  e->visible = gdx_db_flag(&w, 2);
  if (w.rc) {
    gdx_db_result_free(&r);
    return gdx_db_row_fail(&w, "catalog_entries");
  }
  e->pub = gdx_db_get(&r, 0, 3) ? json_loads(gdx_db_get(&r, 0, 3), 0, NULL) : NULL;
  gdx_db_result_free(&r);
  if (!e->visible || e->pub == NULL)
    return rest_fail(x, 409, "not_published",
                     "%s is not published; for an unpublished resource, file a demand "
                     "(POST /api/v1/demands)",
                     code);
  return GDX_OK;
}

/* The request's items, method and quota against the published entry. */
static int check_against_entry(rest_ctx *x, json_t *pub, json_t *items, const char *method,
                               json_t *quota) {
  const char *share = json_string_value(json_object_get(pub, "sharing_type"));
  if (strcmp(share, "none") == 0)
    return rest_fail(x, 403, "not_shared", "this resource is not shared (不予共享)");
  json_t *defs = json_object_get(pub, "data_items"), *it, *d;
  size_t i, k;
  json_array_foreach(items, i, it) {
    const char *name = json_string_value(it);
    int found = 0;
    json_array_foreach(defs, k, d) {
      if (strcmp(json_string_value(json_object_get(d, "name")), name) != 0)
        continue;
      found = 1;
      const char *ist = json_string_value(json_object_get(d, "sharing_type"));
      if (ist && strcmp(ist, "none") == 0)
        return rest_fail(x, 400, "item_not_shared", "data_items[%zu]: %s is not shared", i, name);
    }
    if (!found)
      return rest_fail(x, 400, "invalid_field", "data_items[%zu]: the resource has no item %s", i,
                       name);
  }
  const char *kind = json_string_value(json_object_get(json_object_get(pub, "attachment"), "kind"));
  int fits = (strcmp(kind, "api") == 0 && strcmp(method, "call") == 0) ||
             (strcmp(kind, "table") == 0 &&
              (strcmp(method, "fetch") == 0 || strcmp(method, "subscribe") == 0 ||
               strcmp(method, "compare") == 0)) ||
             (strcmp(kind, "file") == 0 &&
              (strcmp(method, "fetch") == 0 || strcmp(method, "subscribe") == 0));
  if (!fits)
    return rest_fail(x, 400, "invalid_field", "method: %s does not apply to a %s resource", method,
                     kind);
  int counted = strcmp(method, "call") == 0 || strcmp(method, "compare") == 0;
  if (counted && quota == NULL)
    return rest_fail(x, 400, "invalid_field",
                     "call_quota: API access and comparisons state a quota (calls, or records "
                     "compared)");
  if (!counted && quota != NULL)
    return rest_fail(x, 400, "invalid_field", "call_quota: only for API calls and comparisons");
  return GDX_OK;
}

static int create_authorization(gdx_db_conn *c, long long request_id, int automatic) {
  gdx_db_param p[] = {GDX_DB_P_INT(automatic), GDX_DB_P_INT(request_id)};
  return gdx_db_exec(c,
                     "INSERT INTO authorizations (request_id, entry_id, consumer_unit_id, purpose, "
                     "data_items, method, valid_from, valid_until, call_quota, status, "
                     "auto_approved, created_at) SELECT id, entry_id, consumer_unit_id, purpose, "
                     "data_items, method, UTC_DATE(), valid_until, call_quota, 'active', ?, "
                     "UTC_TIMESTAMP(6) FROM requests WHERE id = ?",
                     p, 2, NULL, NULL);
}

static int load_request_json(gdx_db_conn *c, long long id, json_t **out) {
  gdx_db_param p[] = {GDX_DB_P_INT(id)};
  gdx_db_result r;
  int rc = gdx_db_query(c, "SELECT " REQ_COLS REQ_FROM "WHERE r.id = ?", p, 1, 1, &r);
  if (rc)
    return rc;
  *out = r.nrows ? request_json(&r, 0) : json_object();
  gdx_db_result_free(&r);
  return GDX_OK;
}

/* Files a request (used by apply and by a fulfilled demand). */
static int file_request(gdx_db_conn *c, rest_ctx *x, const pub_entry *e, long long consumer_unit,
                        const char *applicant, const char *purpose, json_t *items,
                        const char *method, const char *valid_until, json_t *quota,
                        long long demand_id, long long *id_out) {
  char *items_text = json_dumps(items, JSON_COMPACT);
  gdx_db_param p[] = {GDX_DB_P_INT(e->id),
                      GDX_DB_P_INT(consumer_unit),
                      GDX_DB_P_STR(applicant),
                      GDX_DB_P_STR(purpose),
                      GDX_DB_P_STR(items_text),
                      GDX_DB_P_STR(method),
                      GDX_DB_P_STR(valid_until),
                      quota ? GDX_DB_P_INT(json_integer_value(quota)) : GDX_DB_P_NULL,
                      demand_id ? GDX_DB_P_INT(demand_id) : GDX_DB_P_NULL};
  uint64_t id = 0;
  int rc = gdx_db_exec(c,
                       "INSERT INTO requests (entry_id, consumer_unit_id, applicant, purpose, "
                       "data_items, method, valid_until, call_quota, status, demand_id, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, "
                       "UTC_TIMESTAMP(6))",
                       p, 9, NULL, &id);
  free(items_text);
  if (rc)
    return rc;
  *id_out = (long long)id;
  snprintf(x->audit_object, sizeof(x->audit_object), "request:%lld", (long long)id);
  int automatic = json_is_true(json_object_get(e->pub, "auto_approve")) &&
                  strcmp(json_string_value(json_object_get(e->pub, "sharing_type")),
                         "unconditional") == 0;
  if (!automatic)
    return GDX_OK;
  gdx_db_param pa[] = {GDX_DB_P_INT((long long)id)};
  rc = gdx_db_exec(c,
                   "UPDATE requests SET status = 'approved', decided_by = 'auto', decided_at = "
                   "UTC_TIMESTAMP(6), opinion = 'approved automatically: unconditional sharing' "
                   "WHERE id = ?",
                   pa, 1, NULL, NULL);
  if (!rc)
    rc = create_authorization(c, (long long)id, 1);
  x->audit_detail = json_pack("{s:b}", "auto_approved", 1);
  return rc;
}

static int work_request_create(gdx_db_conn *c, rest_ctx *x) {
  if (!rest_unit_has_role(x, "consumer"))
    return rest_fail(x, 403, "forbidden", "only consumer units apply for resources");
  json_t *in = x->in;
  const char *code = json_string_value(json_object_get(in, "resource_code"));
  snprintf(x->audit_object, sizeof(x->audit_object), "catalog:%s", code);
  const char *until = json_string_value(json_object_get(in, "valid_until"));
  const char *method = json_string_value(json_object_get(in, "method"));
  json_t *items = json_object_get(in, "data_items"), *quota = json_object_get(in, "call_quota");
  pub_entry e;
  int ok = 0, rc = load_published(c, x, code, &e);
  if (!rc && !x->status)
    check_against_entry(x, e.pub, items, method, quota);
  if (!rc && !x->status)
    rc = check_valid_until(c, x, until, &ok);
  if (!rc && !x->status && e.provider_unit_id == x->who.unit_id)
    rest_fail(x, 409, "own_resource", "a unit does not apply for its own resource");
  long long id = 0;
  if (!rc && !x->status)
    rc = file_request(c, x, &e, x->who.unit_id, x->who.username,
                      json_string_value(json_object_get(in, "purpose")), items, method, until,
                      quota, 0, &id);
  json_decref(e.pub);
  if (rc || x->status)
    return rc;
  x->status = 201;
  return load_request_json(c, id, &x->out);
}

typedef struct {
  long long id, provider_unit_id, consumer_unit_id;
  char status[16], until[16];
  json_t *items;
  long long quota; /* -1: none */
} req_row;

static int load_request(gdx_db_conn *c, rest_ctx *x, req_row *q) {
  long long id = rest_param_id(x, 0);
  snprintf(x->audit_object, sizeof(x->audit_object), "request:%lld", id);
  gdx_db_param p[] = {GDX_DB_P_INT(id)};
  gdx_db_result r;
  int rc = rest_load_one(c, x,
                         "SELECT r.id, e.provider_unit_id, r.consumer_unit_id, r.status, "
                         "DATE_FORMAT(r.valid_until, '%Y-%m-%d'), r.data_items, r.call_quota "
                         "FROM requests r JOIN catalog_entries e ON e.id = r.entry_id "
                         "WHERE r.id = ? FOR UPDATE",
                         p, 1, &r, "no request %s", x->params[0]);
  if (rc || x->status)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  q->id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  q->provider_unit_id = gdx_db_i64(&w, 1, 1, GDX_DB_ID_MAX);
  q->consumer_unit_id = gdx_db_i64(&w, 2, 1, GDX_DB_ID_MAX);
  q->quota = gdx_db_i64_or(&w, 6, 0, LLONG_MAX, -1);
  if (w.rc) {
    gdx_db_result_free(&r);
    return gdx_db_row_fail(&w, "requests");
  }
  snprintf(q->status, sizeof(q->status), "%s", gdx_db_get(&r, 0, 3));
  snprintf(q->until, sizeof(q->until), "%s", gdx_db_get(&r, 0, 4));
  q->items = json_loads(gdx_db_get(&r, 0, 5), 0, NULL);
  gdx_db_result_free(&r);
  return GDX_OK;
}

/* Who sees a request, authorization or demand: its two units, management
 * and operations. */
static int may_see(const rest_ctx *x, long long provider, long long consumer) {
  return rest_sees_all(x) || x->who.unit_id == provider || x->who.unit_id == consumer;
}

static int decide(gdx_db_conn *c, rest_ctx *x, int approve) {
  req_row q = {0};
  int rc = load_request(c, x, &q);
  if (rc || x->status)
    goto done;
  if (!may_see(x, q.provider_unit_id, q.consumer_unit_id)) {
    rest_fail(x, 404, "not_found", "no request %s", x->params[0]);
    goto done;
  }
  if (x->who.role != ROLE_UNIT_ADMIN || x->who.unit_id != q.provider_unit_id) {
    rest_fail(x, 403, "forbidden", "requests are decided by the provider's unit admin");
    goto done;
  }
  if (strcmp(q.status, "pending") != 0) {
    rest_fail(x, 409, "wrong_state", "the request is %s already", q.status);
    goto done;
  }
  const char *opinion = json_string_value(json_object_get(x->in, "opinion"));
  if (!approve) {
    gdx_db_param p[] = {GDX_DB_P_STR(x->who.username), GDX_DB_P_STR(opinion), GDX_DB_P_INT(q.id)};
    rc = gdx_db_exec(c,
                     "UPDATE requests SET status = 'rejected', decided_by = ?, decided_at = "
                     "UTC_TIMESTAMP(6), opinion = ? WHERE id = ?",
                     p, 3, NULL, NULL);
    goto out;
  }
  /* approval may narrow, never widen */
  json_t *items = json_object_get(x->in, "data_items"), *it;
  size_t i, k;
  json_t *r_it;
  json_array_foreach(items, i, it) {
    int found = 0;
    json_array_foreach(q.items, k, r_it) found |= json_equal(it, r_it);
    if (!found) {
      rest_fail(x, 400, "wider_than_requested", "data_items[%zu]: %s was not requested", i,
                json_string_value(it));
      goto done;
    }
  }
  const char *until = json_string_value(json_object_get(x->in, "valid_until"));
  if (until) {
    int ok = 0;
    if ((rc = check_valid_until(c, x, until, &ok)) != GDX_OK || !ok)
      goto done;
    if (strcmp(until, q.until) > 0) {
      rest_fail(x, 400, "wider_than_requested", "valid_until: later than requested (%s)", q.until);
      goto done;
    }
  }
  json_t *quota = json_object_get(x->in, "call_quota");
  if (quota && (q.quota < 0 || json_integer_value(quota) > q.quota)) {
    rest_fail(x, 400, "wider_than_requested", "call_quota: more than requested");
    goto done;
  }
  char *items_text = items ? json_dumps(items, JSON_COMPACT) : NULL;
  gdx_db_param p[] = {GDX_DB_P_STR(x->who.username),
                      GDX_DB_P_STR(opinion ? opinion : ""),
                      items_text ? GDX_DB_P_STR(items_text) : GDX_DB_P_NULL,
                      until ? GDX_DB_P_STR(until) : GDX_DB_P_NULL,
                      quota ? GDX_DB_P_INT(json_integer_value(quota)) : GDX_DB_P_NULL,
                      GDX_DB_P_INT(q.id)};
  rc = gdx_db_exec(c,
                   "UPDATE requests SET status = 'approved', decided_by = ?, decided_at = "
                   "UTC_TIMESTAMP(6), opinion = ?, data_items = IFNULL(?, data_items), "
                   "valid_until = IFNULL(?, valid_until), call_quota = IFNULL(?, call_quota) "
                   "WHERE id = ?",
                   p, 6, NULL, NULL);
  free(items_text);
  if (!rc)
    rc = create_authorization(c, q.id, 0);
out:
  if (!rc)
    rc = load_request_json(c, q.id, &x->out);
done:
  json_decref(q.items);
  return rc;
}

static int work_request_approve(gdx_db_conn *c, rest_ctx *x) { return decide(c, x, 1); }
static int work_request_reject(gdx_db_conn *c, rest_ctx *x) { return decide(c, x, 0); }

static int work_request_cancel(gdx_db_conn *c, rest_ctx *x) {
  req_row q = {0};
  int rc = load_request(c, x, &q);
  if (!rc && !x->status && x->who.unit_id != q.consumer_unit_id)
    rest_fail(x, 403, "forbidden", "only the applying unit cancels its request");
  else if (!rc && !x->status && strcmp(q.status, "pending") != 0)
    rest_fail(x, 409, "wrong_state", "the request is %s already", q.status);
  gdx_db_param p[] = {GDX_DB_P_INT(q.id)};
  if (!rc && !x->status)
    rc = gdx_db_exec(c, "UPDATE requests SET status = 'cancelled' WHERE id = ?", p, 1, NULL, NULL);
  if (!rc && !x->status)
    rc = load_request_json(c, q.id, &x->out);
  json_decref(q.items);
  return rc;
}

static int work_request_get(gdx_db_conn *c, rest_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_INT(rest_param_id(x, 0)), GDX_DB_P_INT(rest_sees_all(x)),
                      GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_INT(x->who.unit_id)};
  gdx_db_result r;
  int rc = rest_load_one(c, x,
                         "SELECT " REQ_COLS REQ_FROM "WHERE r.id = ? AND (? = 1 OR "
                         "e.provider_unit_id = ? OR r.consumer_unit_id = ?)",
                         p, 4, &r, "no request %s that you may see", x->params[0]);
  if (rc || x->status)
    return rc;
  x->out = request_json(&r, 0);
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int work_request_list(gdx_db_conn *c, rest_ctx *x) {
  char status[16], side[16];
  const char *st = rest_query(x, "status", status, sizeof(status), "");
  const char *sd = rest_query(x, "side", side, sizeof(side), "");
  int bad = 0;
  long long limit = rest_query_int(x, "limit", 100, 1, 1000, &bad);
  long long offset = rest_query_int(x, "offset", 0, 0, 1000000, &bad);
  if (x->status)
    return GDX_OK;
  if (bad || (strcmp(sd, "") && strcmp(sd, "consumer") && strcmp(sd, "provider")))
    return rest_fail(x, 400, "invalid_query",
                     "side is consumer or provider; limit 1 to 1000; offset from 0");
  /* management and operations see all requests (R-AUTH-4); units their own */
  int all = x->who.role == ROLE_MGMT || x->who.role == ROLE_OPS;
  gdx_db_param p[] = {GDX_DB_P_INT(all),       GDX_DB_P_STR(sd),    GDX_DB_P_INT(x->who.unit_id),
                      GDX_DB_P_STR(sd),        GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_STR(st),
                      GDX_DB_P_STR(st),        GDX_DB_P_INT(limit), GDX_DB_P_INT(offset)};
  return rest_list(c, x,
                   "SELECT " REQ_COLS REQ_FROM
                   "WHERE (? = 1 OR ((? <> 'provider' AND r.consumer_unit_id = ?) OR "
                   "(? <> 'consumer' AND e.provider_unit_id = ?))) "
                   "AND (? = '' OR r.status = ?) ORDER BY r.id DESC LIMIT ? OFFSET ?",
                   p, 9, 1000, request_json);
}

/* ------------------------------------------------------------------ */
/* authorizations                                                      */

#define AUTH_COLS                                                                              \
  "a.id, a.request_id, e.resource_code, pu.code, cu.code, a.purpose, a.data_items, a.method, " \
  "DATE_FORMAT(a.valid_from, '%Y-%m-%d'), DATE_FORMAT(a.valid_until, '%Y-%m-%d'), "            \
  "a.call_quota, IF(a.status = 'active' AND a.valid_until < UTC_DATE(), 'expired', a.status), " \
  "a.auto_approved, a.revoked_by, a.revoke_reason, e.provider_unit_id, a.consumer_unit_id"
#define AUTH_FROM                                                                              \
  " FROM authorizations a JOIN catalog_entries e ON e.id = a.entry_id "                        \
  "JOIN units pu ON pu.id = e.provider_unit_id JOIN units cu ON cu.id = a.consumer_unit_id "

static json_t *auth_json(const gdx_db_result *r, size_t i) {
  json_t *items = json_loads(gdx_db_get(r, i, 6), 0, NULL);
  gdx_db_row w = gdx_db_row_at(r, i);
  int automatic = gdx_db_flag(&w, 12);
  if (w.rc)
    gdx_db_row_fail(&w, "authorizations"); /* shown as false */
  return json_pack("{s:o, s:o, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:o, s:s, s:b, s:s, s:s}",
                   "id", rest_json_int(r, i, 0), "request_id", rest_json_int(r, i, 1),
                   "resource_code", gdx_db_get(r, i, 2), "provider_code", gdx_db_get(r, i, 3),
                   "consumer_code", gdx_db_get(r, i, 4), "purpose", gdx_db_get(r, i, 5),
                   "data_items", items ? items : json_array(), "method", gdx_db_get(r, i, 7),
                   "valid_from", gdx_db_get(r, i, 8), "valid_until", gdx_db_get(r, i, 9),
                   "call_quota", rest_json_int(r, i, 10), "status", gdx_db_get(r, i, 11),
                   "auto_approved", automatic, "revoked_by", gdx_db_get(r, i, 13), "revoke_reason",
                   gdx_db_get(r, i, 14));
}

static int work_auth_list(gdx_db_conn *c, rest_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_INT(rest_sees_all(x)), GDX_DB_P_INT(x->who.unit_id),
                      GDX_DB_P_INT(x->who.unit_id)};
  return rest_list(c, x,
                   "SELECT " AUTH_COLS AUTH_FROM
                   "WHERE ? = 1 OR a.consumer_unit_id = ? OR e.provider_unit_id = ? "
                   "ORDER BY a.id DESC LIMIT 1000",
                   p, 3, 1000, auth_json);
}

static int work_auth_revoke(gdx_db_conn *c, rest_ctx *x) {
  long long id = rest_param_id(x, 0);
  snprintf(x->audit_object, sizeof(x->audit_object), "authorization:%lld", id);
  gdx_db_param p[] = {GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_INT(id),
                      GDX_DB_P_INT(rest_sees_all(x)), GDX_DB_P_INT(x->who.unit_id),
                      GDX_DB_P_INT(x->who.unit_id)};
  gdx_db_result r;
  int rc = rest_load_one(c, x,
                         "SELECT a.status = 'active', e.provider_unit_id = ? FROM "
                         "authorizations a JOIN catalog_entries e ON e.id = a.entry_id "
                         "WHERE a.id = ? AND (? = 1 OR e.provider_unit_id = ? OR "
                         "a.consumer_unit_id = ?) FOR UPDATE",
                         p, 5, &r, "no authorization %lld", id);
  if (rc || x->status)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  int active = gdx_db_flag(&w, 0);
  int provider_admin = x->who.role == ROLE_UNIT_ADMIN && gdx_db_flag(&w, 1);
  rc = w.rc ? gdx_db_row_fail(&w, "authorizations") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;
  if (!provider_admin && x->who.role != ROLE_MGMT)
    return rest_fail(x, 403, "forbidden",
                     "authorizations are revoked by the provider's unit admin or management");
  if (!active)
    return rest_fail(x, 409, "wrong_state", "the authorization is revoked already");
  gdx_db_param pu[] = {GDX_DB_P_STR(x->who.username),
                       GDX_DB_P_STR(json_string_value(json_object_get(x->in, "opinion"))),
                       GDX_DB_P_INT(id)};
  rc = gdx_db_exec(c,
                   "UPDATE authorizations SET status = 'revoked', revoked_at = UTC_TIMESTAMP(6), "
                   "revoked_by = ?, revoke_reason = ? WHERE id = ?",
                   pu, 3, NULL, NULL);
  if (!rc)
    rc = rest_invalidate(c, x, "authorization", id);
  if (!rc)
    x->out = json_pack("{s:I, s:s}", "id", (json_int_t)id, "status", "revoked");
  return rc;
}

/* ------------------------------------------------------------------ */
/* demands (R-AUTH-3)                                                  */

#define DEMAND_COLS                                                                            \
  "d.id, cu.code, pu.code, d.applicant, d.description, d.purpose, d.status, d.decided_by, "    \
  "d.opinion, IFNULL(e.resource_code, ''), d.provider_unit_id, d.consumer_unit_id"
#define DEMAND_FROM                                                                            \
  " FROM demands d JOIN units cu ON cu.id = d.consumer_unit_id JOIN units pu ON pu.id = "      \
  "d.provider_unit_id LEFT JOIN catalog_entries e ON e.id = d.entry_id "

static json_t *demand_json(const gdx_db_result *r, size_t i) {
  return json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id",
                   rest_json_int(r, i, 0), "consumer_code", gdx_db_get(r, i, 1), "provider_code",
                   gdx_db_get(r, i, 2), "applicant", gdx_db_get(r, i, 3), "description",
                   gdx_db_get(r, i, 4), "purpose", gdx_db_get(r, i, 5), "status",
                   gdx_db_get(r, i, 6), "decided_by", gdx_db_get(r, i, 7), "opinion",
                   gdx_db_get(r, i, 8), "resource_code", gdx_db_get(r, i, 9));
}

static int load_demand_json(gdx_db_conn *c, long long id, json_t **out) {
  gdx_db_param p[] = {GDX_DB_P_INT(id)};
  gdx_db_result r;
  int rc = gdx_db_query(c, "SELECT " DEMAND_COLS DEMAND_FROM "WHERE d.id = ?", p, 1, 1, &r);
  if (rc)
    return rc;
  *out = r.nrows ? demand_json(&r, 0) : json_object();
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int work_demand_create(gdx_db_conn *c, rest_ctx *x) {
  if (!rest_unit_has_role(x, "consumer"))
    return rest_fail(x, 403, "forbidden", "only consumer units file demands");
  const char *prov = json_string_value(json_object_get(x->in, "provider_unit_code"));
  gdx_db_param pu[] = {GDX_DB_P_STR(prov)};
  gdx_db_result r;
  int rc =
      rest_load_one(c, x, "SELECT id, FIND_IN_SET('provider', roles) > 0 FROM units WHERE code = ?",
                    pu, 1, &r, "no unit %s", prov);
  if (rc || x->status)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  long long pid = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  int is_provider = gdx_db_flag(&w, 1);
  rc = w.rc ? gdx_db_row_fail(&w, "units") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;
  if (!is_provider)
    return rest_fail(x, 400, "invalid_field", "provider_unit_code: %s is not a provider unit",
                     prov);
  gdx_db_param p[] = {GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_INT(pid),
                      GDX_DB_P_STR(x->who.username),
                      GDX_DB_P_STR(json_string_value(json_object_get(x->in, "description"))),
                      GDX_DB_P_STR(json_string_value(json_object_get(x->in, "purpose")))};
  uint64_t id = 0;
  rc = gdx_db_exec(c,
                   "INSERT INTO demands (consumer_unit_id, provider_unit_id, applicant, "
                   "description, purpose, status, created_at) VALUES (?, ?, ?, ?, ?, 'pending', "
                   "UTC_TIMESTAMP(6))",
                   p, 5, NULL, &id);
  if (rc)
    return rc;
  snprintf(x->audit_object, sizeof(x->audit_object), "demand:%llu", (unsigned long long)id);
  x->status = 201;
  return load_demand_json(c, (long long)id, &x->out);
}

/* The demand of the path, FOR UPDATE, if the caller may see it. */
static int load_demand(gdx_db_conn *c, rest_ctx *x, long long *provider, long long *consumer,
                       char *status, size_t n, char *applicant, char *purpose) {
  long long id = rest_param_id(x, 0);
  snprintf(x->audit_object, sizeof(x->audit_object), "demand:%lld", id);
  gdx_db_param p[] = {GDX_DB_P_INT(id), GDX_DB_P_INT(rest_sees_all(x)),
                      GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_INT(x->who.unit_id)};
  gdx_db_result r;
  int rc = rest_load_one(c, x,
                         "SELECT provider_unit_id, consumer_unit_id, status, applicant, purpose "
                         "FROM demands WHERE id = ? AND (? = 1 OR provider_unit_id = ? OR "
                         "consumer_unit_id = ?) FOR UPDATE",
                         p, 4, &r, "no demand %lld", id);
  if (rc || x->status)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  *provider = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  *consumer = gdx_db_i64(&w, 1, 1, GDX_DB_ID_MAX);
  if (w.rc) {
    gdx_db_result_free(&r);
    return gdx_db_row_fail(&w, "demands");
  }
  snprintf(status, n, "%s", gdx_db_get(&r, 0, 2));
  if (applicant)
    snprintf(applicant, GDX_NAME_SIZE, "%s", gdx_db_get(&r, 0, 3));
  if (purpose)
    snprintf(purpose, 1001, "%s", gdx_db_get(&r, 0, 4));
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int work_demand_decide(gdx_db_conn *c, rest_ctx *x) {
  long long prov, cons;
  char status[16];
  int rc = load_demand(c, x, &prov, &cons, status, sizeof(status), NULL, NULL);
  if (rc || x->status)
    return rc;
  if (strcmp(status, "pending") != 0)
    return rest_fail(x, 409, "wrong_state", "the demand is %s already", status);
  const char *decision = json_string_value(json_object_get(x->in, "decision"));
  const char *opinion = json_string_value(json_object_get(x->in, "opinion"));
  int approve = strcmp(decision, "approve") == 0;
  if (!approve && (opinion == NULL || *opinion == '\0'))
    return rest_fail(x, 400, "invalid_field", "opinion: say why the demand is rejected");
  gdx_db_param p[] = {GDX_DB_P_STR(approve ? "approved" : "rejected"),
                      GDX_DB_P_STR(x->who.username), GDX_DB_P_STR(opinion ? opinion : ""),
                      GDX_DB_P_INT(rest_param_id(x, 0))};
  rc = gdx_db_exec(c, "UPDATE demands SET status = ?, decided_by = ?, opinion = ? WHERE id = ?",
                   p, 4, NULL, NULL);
  x->audit_detail = json_pack("{s:s}", "decision", decision);
  return rc ? rc : load_demand_json(c, rest_param_id(x, 0), &x->out);
}

static int work_demand_fulfil(gdx_db_conn *c, rest_ctx *x) {
  long long prov, cons, id = rest_param_id(x, 0);
  char status[16], applicant[GDX_NAME_SIZE], purpose[1001];
  int rc = load_demand(c, x, &prov, &cons, status, sizeof(status), applicant, purpose);
  if (rc || x->status)
    return rc;
  if (x->who.role != ROLE_UNIT_ADMIN || x->who.unit_id != prov)
    return rest_fail(x, 403, "forbidden", "the demand is fulfilled by the provider's unit admin");
  if (strcmp(status, "approved") != 0)
    return rest_fail(x, 409, "wrong_state", "only an approved demand is fulfilled (it is %s)",
                     status);
  const char *code = json_string_value(json_object_get(x->in, "resource_code"));
  pub_entry e;
  rc = load_published(c, x, code, &e);
  if (!rc && !x->status && e.provider_unit_id != prov)
    rest_fail(x, 403, "forbidden", "%s is not this unit's resource", code);
  json_t *items = json_object_get(x->in, "data_items");
  const char *method = json_string_value(json_object_get(x->in, "method"));
  const char *until = json_string_value(json_object_get(x->in, "valid_until"));
  int ok = 0;
  if (!rc && !x->status)
    check_against_entry(x, e.pub, items, method, NULL);
  if (!rc && !x->status)
    rc = check_valid_until(c, x, until, &ok);
  long long rid = 0;
  if (!rc && !x->status) {
    /* the consumer's request is filed for it; the provider then decides it */
    json_t *saved_pub = e.pub;
    json_t *no_auto = json_deep_copy(saved_pub);
    json_object_set_new(no_auto, "auto_approve", json_false());
    e.pub = no_auto;
    rc = file_request(c, x, &e, cons, applicant, purpose, items, method, until, NULL, id, &rid);
    json_decref(no_auto);
    e.pub = saved_pub;
  }
  gdx_db_param p[] = {GDX_DB_P_STR(code), GDX_DB_P_INT(id)};
  if (!rc && !x->status)
    rc = gdx_db_exec(c,
                     "UPDATE demands SET status = 'fulfilled', entry_id = (SELECT id FROM "
                     "catalog_entries WHERE resource_code = ?) WHERE id = ?",
                     p, 2, NULL, NULL);
  json_decref(e.pub);
  snprintf(x->audit_object, sizeof(x->audit_object), "demand:%lld", id);
  if (rc || x->status)
    return rc;
  x->out = json_pack("{s:I, s:s, s:I}", "id", (json_int_t)id, "status", "fulfilled",
                     "request_id", (json_int_t)rid);
  return GDX_OK;
}

static int work_demand_list(gdx_db_conn *c, rest_ctx *x) {
  int all = x->who.role == ROLE_MGMT || x->who.role == ROLE_OPS;
  /* a provider sees demands addressed to it once management approved them */
  gdx_db_param p[] = {GDX_DB_P_INT(all), GDX_DB_P_INT(x->who.unit_id),
                      GDX_DB_P_INT(x->who.unit_id)};
  return rest_list(c, x,
                   "SELECT " DEMAND_COLS DEMAND_FROM
                   "WHERE ? = 1 OR d.consumer_unit_id = ? OR (d.provider_unit_id = ? AND "
                   "d.status IN ('approved', 'fulfilled')) ORDER BY d.id DESC LIMIT 1000",
                   p, 3, 1000, demand_json);
}

#define MEMBERS (ROLE_UNIT_ADMIN | ROLE_STAFF)

static const rest_route routes[] = {
    {"POST", "/api/v1/requests", "request.create", REST_SESSION, MEMBERS, "request_create",
     work_request_create, "Apply for a published resource, stating the purpose"},
    {"GET", "/api/v1/requests", NULL, REST_SESSION, ROLE_ANY, NULL, work_request_list,
     "Requests: the caller unit's (as consumer or provider); management sees all"},
    {"GET", "/api/v1/requests/{}", NULL, REST_SESSION, ROLE_ANY, NULL, work_request_get,
     "One request"},
    {"POST", "/api/v1/requests/{}/approve", "request.approve", REST_SESSION, ROLE_UNIT_ADMIN,
     "request_approve", work_request_approve,
     "Approve (possibly narrower than asked); creates the authorization"},
    {"POST", "/api/v1/requests/{}/reject", "request.reject", REST_SESSION, ROLE_UNIT_ADMIN,
     "opinion", work_request_reject, "Reject with an opinion"},
    {"POST", "/api/v1/requests/{}/cancel", "request.cancel", REST_SESSION, MEMBERS, NULL,
     work_request_cancel, "Withdraw one's own pending request"},
    {"GET", "/api/v1/authorizations", NULL, REST_SESSION, ROLE_ANY, NULL, work_auth_list,
     "Authorizations of the caller's unit (as consumer or provider); management sees all"},
    {"POST", "/api/v1/authorizations/{}/revoke", "authorization.revoke", REST_SESSION,
     ROLE_UNIT_ADMIN | ROLE_MGMT, "opinion", work_auth_revoke, "Revoke an authorization at once"},
    {"POST", "/api/v1/demands", "demand.create", REST_SESSION, MEMBERS, "demand_create",
     work_demand_create, "Ask for a resource that is not in the catalog (to management)"},
    {"GET", "/api/v1/demands", NULL, REST_SESSION, ROLE_ANY, NULL, work_demand_list,
     "Demands: one's own, those addressed to one's unit once approved; management all"},
    {"POST", "/api/v1/demands/{}/decide", "demand.decide", REST_SESSION, ROLE_MGMT, "demand_decide",
     work_demand_decide, "Approve or reject a demand (management)"},
    {"POST", "/api/v1/demands/{}/fulfil", "demand.fulfil", REST_SESSION, ROLE_UNIT_ADMIN,
     "demand_fulfil", work_demand_fulfil,
     "Name the published resource that meets the demand; files the consumer's request"},
};
const rest_part requests_part = REST_PART("requests", routes);
