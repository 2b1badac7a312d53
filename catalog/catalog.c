/* The resource catalog (R-CAT-1..6): entries with the national catalog
 * fields, their lifecycle draft -> submitted -> published (or returned with an
 * opinion) -> withdrawn, every published version kept, and search.
 *
 * Who may do what: a provider unit's admin and staff create, edit and submit
 * their unit's entries; a management reviewer publishes or returns them; the
 * provider's unit admin or a reviewer withdraws them. Published entries are
 * visible to every logged-in account; drafts only to their provider and to
 * management and operations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"

#include <limits.h>

#include "error.h"
#include "openapi.h"

typedef struct {
  long long id, provider_unit_id;
  int version;
  char status[16];
  char provider_code[GDX_UNIT_CODE_SIZE], provider_name[201];
} entry_row;

static int load_entry(gdx_db_conn *c, const char *code, entry_row *e, int *found, int lock) {
  gdx_db_param p[] = {GDX_DB_P_STR(code)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        lock ? "SELECT e.id, e.provider_unit_id, e.version, e.status, u.code, "
                               "u.name FROM catalog_entries e JOIN units u ON u.id = "
                               "e.provider_unit_id WHERE e.resource_code = ? FOR UPDATE"
                             : "SELECT e.id, e.provider_unit_id, e.version, e.status, u.code, "
                               "u.name FROM catalog_entries e JOIN units u ON u.id = "
                               "e.provider_unit_id WHERE e.resource_code = ?",
                        p, 1, 1, &r);
  if (rc)
    return rc;
  *found = r.nrows == 1;
  if (*found) {
    gdx_db_row w = gdx_db_row_at(&r, 0);
    e->id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
    e->provider_unit_id = gdx_db_i64(&w, 1, 1, GDX_DB_ID_MAX);
    e->version = (int)gdx_db_i64(&w, 2, 0, INT_MAX);
    if (w.rc) {
      gdx_db_result_free(&r);
      return gdx_db_row_fail(&w, "catalog_entries");
    }
    snprintf(e->status, sizeof(e->status), "%s", gdx_db_get(&r, 0, 3));
    snprintf(e->provider_code, sizeof(e->provider_code), "%s", gdx_db_get(&r, 0, 4));
    snprintf(e->provider_name, sizeof(e->provider_name), "%s", gdx_db_get(&r, 0, 5));
  }
  gdx_db_result_free(&r);
  return GDX_OK;
}

/* The entry named by the path's two segments ("101001/000001"): sets the
 * audit object, and a 404 result when there is none. */
static int path_entry(gdx_db_conn *c, rest_ctx *x, entry_row *e, char *code, size_t n, int lock) {
  snprintf(code, n, "%s/%s", x->params[0], x->params[1]);
  snprintf(x->audit_object, sizeof(x->audit_object), "catalog:%s", code);
  int found = 0, rc = load_entry(c, code, e, &found, lock);
  if (!rc && !found)
    rest_fail(x, 404, "not_found", "no catalog entry %s", code);
  return rc;
}

static int is_provider_of(const rest_ctx *x, const entry_row *e) {
  return (x->who.role == ROLE_UNIT_ADMIN || x->who.role == ROLE_STAFF) &&
         x->who.unit_id == e->provider_unit_id;
}

static int may_see_drafts(const rest_ctx *x, const entry_row *e) {
  return is_provider_of(x, e) || x->who.role == ROLE_MGMT || x->who.role == ROLE_OPS;
}

static int event(gdx_db_conn *c, rest_ctx *x, long long entry, const char *what, int version,
                 const char *opinion) {
  gdx_db_param p[] = {GDX_DB_P_INT(entry), GDX_DB_P_STR(x->who.username), GDX_DB_P_STR(what),
                      GDX_DB_P_INT(version), GDX_DB_P_STR(opinion ? opinion : "")};
  return gdx_db_exec(c,
                     "INSERT INTO catalog_events (entry_id, ts, actor, event, version, opinion) "
                     "VALUES (?, UTC_TIMESTAMP(6), ?, ?, ?, ?)",
                     p, 5, NULL, NULL);
}

#define GRAMS_MAX 4096
/* Counting matches stops here: "total" is exact below it, a lower bound
 * (total_is_exact false) above. Reading every match of a common term to count
 * it would cost more than the page itself. */
#define SEARCH_COUNT_CAP 100
#define GRAMS_PER_INSERT 64

/* Replaces the search grams of an entry (no grams: just removes them). */
static int index_grams(gdx_db_conn *c, long long entry, const char *name, const char *summary) {
  gdx_db_param pd[] = {GDX_DB_P_INT(entry)};
  int rc = gdx_db_exec(c, "DELETE FROM catalog_grams WHERE entry_id = ?", pd, 1, NULL, NULL);
  if (rc || name == NULL)
    return rc;
  size_t tl = strlen(name) + strlen(summary) + 4;
  char *text = malloc(tl);
  char(*grams)[GDX_GRAM_MAX] = malloc(sizeof(*grams) * GRAMS_MAX);
  if (!text || !grams) {
    free(text);
    free(grams);
    return GDX_ENOMEM;
  }
  snprintf(text, tl, "%s | %s", name, summary);
  size_t n = gdx_catalog_grams(text, grams, GRAMS_MAX);
  for (size_t off = 0; off < n && !rc; off += GRAMS_PER_INSERT) {
    size_t k = n - off < GRAMS_PER_INSERT ? n - off : GRAMS_PER_INSERT;
    char sql[64 + GRAMS_PER_INSERT * 8];
    size_t used = (size_t)snprintf(sql, sizeof(sql),
                                   "INSERT IGNORE INTO catalog_grams (gram, entry_id) VALUES ");
    gdx_db_param p[GRAMS_PER_INSERT * 2];
    for (size_t i = 0; i < k; i++) {
      used += (size_t)snprintf(sql + used, sizeof(sql) - used, i ? ",(?,?)" : "(?,?)");
      p[2 * i] = GDX_DB_P_STR(grams[off + i]);
      p[2 * i + 1] = GDX_DB_P_INT(entry);
    }
    rc = gdx_db_exec(c, sql, p, 2 * k, NULL, NULL);
  }
  free(text);
  free(grams);
  return rc;
}

/* The operations of an API entry's OpenAPI text (attachment.openapi), read
 * by a real parser: a text that is missing or does not read is refused
 * (400, with the line and the reason), since the exchange lets through only
 * the operations it declares. */
static int openapi_ops(rest_ctx *x, const json_t *att, gdx_openapi **out) {
  const json_t *t = json_object_get(att, "openapi");
  if (!json_is_string(t) || json_string_length(t) == 0)
    return rest_fail(x, 400, "invalid_field",
                     "attachment.openapi: an API resource carries its OpenAPI text (3.x, JSON "
                     "or YAML), which says the operations consumers may call");
  char why[300];
  int rc = gdx_openapi_parse(json_string_value(t), json_string_length(t), out, why, sizeof(why));
  if (rc == GDX_ENOMEM)
    return rc;
  if (rc)
    return rest_fail(x, 400, "invalid_field", "attachment.openapi: %s", why);
  return GDX_OK;
}

/* Rules that tie fields together (the schema checks each field alone). */
static int check_entry(rest_ctx *x) {
  json_t *in = x->in, *att = json_object_get(in, "attachment");
  const char *share = json_string_value(json_object_get(in, "sharing_type"));
  const char *cond = json_string_value(json_object_get(in, "sharing_condition"));
  const char *type = json_string_value(json_object_get(in, "resource_type"));
  const char *method = json_string_value(json_object_get(in, "sharing_method"));
  const char *kind = json_string_value(json_object_get(att, "kind"));
  int open = json_is_true(json_object_get(in, "open_to_public"));
  if (strcmp(share, "conditional") == 0 && (cond == NULL || *cond == '\0'))
    return rest_fail(x, 400, "invalid_field",
                     "sharing_condition: conditional sharing must state its condition");
  if (json_is_true(json_object_get(in, "auto_approve")) && strcmp(share, "unconditional") != 0)
    return rest_fail(x, 400, "invalid_field",
                     "auto_approve: only unconditionally shared resources can be approved "
                     "automatically");
  if (open && strcmp(share, "none") == 0)
    return rest_fail(x, 400, "invalid_field",
                     "open_to_public: a resource that is not shared cannot be open to the public");
  /* R-CAT-1/2: the kind of resource decides how its data is attached */
  int fits = (strcmp(type, "service") == 0 && strcmp(kind, "api") == 0) ||
             (strcmp(type, "structured") == 0 && (strcmp(kind, "table") == 0 || strcmp(kind, "file") == 0)) ||
             (strcmp(type, "unstructured") == 0 && strcmp(kind, "file") == 0);
  if (!fits)
    return rest_fail(x, 400, "invalid_field",
                     "attachment.kind: a %s resource cannot be attached as %s", type, kind);
  if (strcmp(method, kind) != 0)
    return rest_fail(x, 400, "invalid_field", "sharing_method: must be \"%s\" for a %s attachment",
                     kind, kind);
  json_t *formats = json_object_get(att, "formats");
  if (strcmp(kind, "file") == 0 && formats == NULL)
    return rest_fail(x, 400, "invalid_field",
                     "attachment.formats: a file resource lists its formats (R-CAT-6)");
  if (strcmp(kind, "file") != 0 && formats != NULL)
    return rest_fail(x, 400, "invalid_field", "attachment.formats: only for file resources");
  if (json_object_get(att, "openapi") && strcmp(kind, "api") != 0)
    return rest_fail(x, 400, "invalid_field", "attachment.openapi: only for API resources");
  if (strcmp(kind, "api") == 0) {
    gdx_openapi *ops = NULL;
    int rc = openapi_ops(x, att, &ops);
    gdx_openapi_free(ops);
    if (rc || x->status)
      return rc;
  }
  json_t *items = json_object_get(in, "data_items"), *it;
  size_t i;
  json_array_foreach(items, i, it) {
    const char *name = json_string_value(json_object_get(it, "name"));
    for (size_t k = 0; k < i; k++)
      if (strcmp(name, json_string_value(json_object_get(json_array_get(items, k), "name"))) == 0)
        return rest_fail(x, 400, "invalid_field", "data_items[%zu].name: %s appears twice", i,
                         name);
  }
  return GDX_OK;
}

static int provider_unit_ok(rest_ctx *x) {
  if (!rest_unit_has_role(x, "provider"))
    return rest_fail(x, 403, "forbidden", "only provider units catalog resources");
  return GDX_OK;
}

static int work_create(gdx_db_conn *c, rest_ctx *x) {
  int rc = provider_unit_ok(x);
  if (!rc && !x->status)
    rc = check_entry(x);
  if (rc || x->status)
    return rc;
  const char *cat = json_string_value(json_object_get(x->in, "category"));
  gdx_db_param pc[] = {GDX_DB_P_STR(cat)};
  rc = gdx_db_exec(c, "INSERT IGNORE INTO catalog_sequences (category, next) VALUES (?, 1)", pc, 1,
                   NULL, NULL);
  gdx_db_result r;
  if (!rc)
    rc = gdx_db_query(c, "SELECT next FROM catalog_sequences WHERE category = ? FOR UPDATE", pc,
                      1, 1, &r);
  if (rc)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  long long seq = gdx_db_i64(&w, 0, 1, LLONG_MAX);
  rc = w.rc ? gdx_db_row_fail(&w, "catalog_sequences") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;
  if (seq > 999999)
    return rest_fail(x, 409, "conflict", "category %s has no resource codes left", cat);
  rc = gdx_db_exec(c, "UPDATE catalog_sequences SET next = next + 1 WHERE category = ?", pc, 1,
                   NULL, NULL);
  if (rc)
    return rc;
  char code[40];
  snprintf(code, sizeof(code), "%s/%06lld", cat, seq);
  char *body = json_dumps(x->in, JSON_COMPACT | JSON_SORT_KEYS);
  gdx_db_param p[] = {GDX_DB_P_STR(code), GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_STR(body),
                      GDX_DB_P_INT(x->who.id)};
  uint64_t id = 0;
  rc = gdx_db_exec(c,
                   "INSERT INTO catalog_entries (resource_code, provider_unit_id, status, body, "
                   "summary, created_by, created_at, updated_at) VALUES (?, ?, 'draft', ?, '', ?, "
                   "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                   p, 4, NULL, &id);
  free(body);
  if (!rc)
    rc = event(c, x, (long long)id, "created", 0, NULL);
  if (rc)
    return rc;
  snprintf(x->audit_object, sizeof(x->audit_object), "catalog:%s", code);
  x->status = 201;
  x->out = json_pack("{s:s, s:s, s:i}", "resource_code", code, "status", "draft", "version", 0);
  return GDX_OK;
}

/* The entry named in the path, checked for existence and for the caller
 * being its provider. */
static int provider_target(gdx_db_conn *c, rest_ctx *x, entry_row *e) {
  char code[64];
  int rc = path_entry(c, x, e, code, sizeof(code), 1);
  if (rc || x->status)
    return rc;
  if (!is_provider_of(x, e))
    return rest_fail(x, 403, "forbidden", "only the provider unit edits entry %s", code);
  return GDX_OK;
}

static int work_update(gdx_db_conn *c, rest_ctx *x) {
  entry_row e;
  int rc = provider_target(c, x, &e);
  if (!rc && !x->status)
    rc = check_entry(x);
  if (rc || x->status)
    return rc;
  if (strcmp(e.status, "submitted") == 0)
    return rest_fail(x, 409, "under_review", "the entry is being reviewed; wait for the decision");
  if (strcmp(e.status, "withdrawn") == 0)
    return rest_fail(x, 409, "withdrawn", "a withdrawn entry cannot be edited");
  if (strcmp(json_string_value(json_object_get(x->in, "category")), x->params[0]) != 0)
    return rest_fail(x, 400, "invalid_field", "category: cannot change (it is part of the code)");
  char *body = json_dumps(x->in, JSON_COMPACT | JSON_SORT_KEYS);
  gdx_db_param p[] = {GDX_DB_P_STR(body), GDX_DB_P_INT(e.id)};
  rc = gdx_db_exec(c,
                   "UPDATE catalog_entries SET body = ?, status = 'draft', "
                   "updated_at = UTC_TIMESTAMP(6) WHERE id = ?",
                   p, 2, NULL, NULL);
  free(body);
  if (!rc)
    rc = event(c, x, e.id, "updated", e.version, NULL);
  if (!rc)
    x->out = json_pack("{s:s, s:s, s:i}", "resource_code", x->audit_object + 8, "status", "draft",
                       "version", e.version);
  return rc;
}

static int work_submit(gdx_db_conn *c, rest_ctx *x) {
  entry_row e;
  int rc = provider_target(c, x, &e);
  if (rc || x->status)
    return rc;
  if (strcmp(e.status, "draft") != 0)
    return rest_fail(x, 409, "wrong_state", "only a draft can be submitted (this one is %s)",
                     e.status);
  gdx_db_param p[] = {GDX_DB_P_INT(e.id)};
  rc = gdx_db_exec(c,
                   "UPDATE catalog_entries SET status = 'submitted', updated_at = "
                   "UTC_TIMESTAMP(6) WHERE id = ?",
                   p, 1, NULL, NULL);
  if (!rc)
    rc = event(c, x, e.id, "submitted", e.version, NULL);
  if (!rc)
    x->out = json_pack("{s:s, s:s}", "resource_code", x->audit_object + 8, "status", "submitted");
  return rc;
}

static int work_review(gdx_db_conn *c, rest_ctx *x) {
  const char *decision = json_string_value(json_object_get(x->in, "decision"));
  const char *opinion = json_string_value(json_object_get(x->in, "opinion"));
  x->audit_detail = json_pack("{s:s}", "decision", decision);
  char code[64];
  entry_row e;
  int rc = path_entry(c, x, &e, code, sizeof(code), 1);
  if (rc || x->status)
    return rc;
  if (strcmp(e.status, "submitted") != 0)
    return rest_fail(x, 409, "wrong_state", "only a submitted entry is reviewed (this one is %s)",
                     e.status);
  gdx_db_param pid[] = {GDX_DB_P_INT(e.id)};
  if (strcmp(decision, "return") == 0) {
    if (opinion == NULL || *opinion == '\0')
      return rest_fail(x, 400, "invalid_field", "opinion: say why the entry is returned");
    gdx_db_param p[] = {GDX_DB_P_STR(opinion), GDX_DB_P_INT(e.id)};
    rc = gdx_db_exec(c,
                     "UPDATE catalog_entries SET status = 'draft', review_opinion = ?, "
                     "updated_at = UTC_TIMESTAMP(6) WHERE id = ?",
                     p, 2, NULL, NULL);
    if (!rc)
      rc = event(c, x, e.id, "returned", e.version, opinion);
    if (!rc)
      x->out = json_pack("{s:s, s:s, s:s}", "resource_code", code, "status", "draft", "opinion",
                         opinion);
    return rc;
  }
  /* publish: the working copy becomes version n+1 */
  gdx_db_result r;
  rc = gdx_db_query(c, "SELECT body FROM catalog_entries WHERE id = ?", pid, 1, 1, &r);
  if (rc)
    return rc;
  json_t *body = json_loads(gdx_db_get(&r, 0, 0), 0, NULL);
  char *text = strdup(gdx_db_get(&r, 0, 0));
  gdx_db_result_free(&r);
  /* an API's operations, stored parsed with the version they belong to */
  json_t *att = json_object_get(body, "attachment");
  char *ops_text = NULL;
  if (strcmp(json_string_value(json_object_get(att, "kind")), "api") == 0) {
    gdx_openapi *ops = NULL;
    rc = openapi_ops(x, att, &ops);
    if (!rc && ops && gdx_openapi_store(ops, &ops_text, NULL) != GDX_OK)
      rc = GDX_ENOMEM;
    gdx_openapi_free(ops);
    if (rc || x->status) {
      json_decref(body);
      free(text);
      return rc;
    }
  }
  int version = e.version + 1;
  const char *summary = json_string_value(json_object_get(body, "summary"));
  gdx_db_param p[] = {GDX_DB_P_INT(version),
                      GDX_DB_P_STR(opinion ? opinion : ""),
                      GDX_DB_P_STR(json_string_value(json_object_get(body, "name"))),
                      GDX_DB_P_STR(summary),
                      GDX_DB_P_STR(json_string_value(json_object_get(body, "category"))),
                      GDX_DB_P_STR(json_string_value(json_object_get(body, "resource_type"))),
                      GDX_DB_P_STR(json_string_value(json_object_get(body, "format"))),
                      GDX_DB_P_STR(json_string_value(json_object_get(body, "sharing_type"))),
                      ops_text ? GDX_DB_P_STR(ops_text) : GDX_DB_P_NULL,
                      GDX_DB_P_INT(e.id)};
  rc = gdx_db_exec(c,
                   "UPDATE catalog_entries SET status = 'published', version = ?, "
                   "published_body = body, review_opinion = ?, name = ?, summary = ?, "
                   "category = ?, resource_type = ?, format = ?, sharing_type = ?, "
                   "publish_date = UTC_DATE(), openapi_ops = ?, updated_at = UTC_TIMESTAMP(6) "
                   "WHERE id = ?",
                   p, 10, NULL, NULL);
  free(ops_text);
  gdx_db_param pv[] = {GDX_DB_P_INT(e.id), GDX_DB_P_INT(version), GDX_DB_P_STR(text),
                       GDX_DB_P_STR(x->who.username)};
  if (!rc)
    rc = gdx_db_exec(c,
                     "INSERT INTO catalog_versions (entry_id, version, body, published_at, "
                     "published_by) VALUES (?, ?, ?, UTC_TIMESTAMP(6), ?)",
                     pv, 4, NULL, NULL);
  free(text);
  if (!rc)
    rc = index_grams(c, e.id, json_string_value(json_object_get(body, "name")), summary);
  json_decref(body);
  if (!rc)
    rc = event(c, x, e.id, "published", version, opinion);
  if (!rc)
    x->out = json_pack("{s:s, s:s, s:i}", "resource_code", code, "status", "published",
                       "version", version);
  return rc;
}

static int work_withdraw(gdx_db_conn *c, rest_ctx *x) {
  const char *opinion = json_string_value(json_object_get(x->in, "opinion"));
  char code[64];
  entry_row e;
  int rc = path_entry(c, x, &e, code, sizeof(code), 1);
  if (rc || x->status)
    return rc;
  if (!(x->who.role == ROLE_MGMT ||
        (x->who.role == ROLE_UNIT_ADMIN && x->who.unit_id == e.provider_unit_id)))
    return rest_fail(x, 403, "forbidden",
                     "entries are withdrawn by their provider's unit admin or a reviewer");
  if (e.version == 0 || strcmp(e.status, "withdrawn") == 0)
    return rest_fail(x, 409, "wrong_state", "only a published entry can be withdrawn");
  gdx_db_param p[] = {GDX_DB_P_STR(opinion), GDX_DB_P_INT(e.id)};
  rc = gdx_db_exec(c,
                   "UPDATE catalog_entries SET status = 'withdrawn', review_opinion = ?, "
                   "updated_at = UTC_TIMESTAMP(6) WHERE id = ?",
                   p, 2, NULL, NULL);
  if (!rc)
    rc = index_grams(c, e.id, NULL, NULL);
  if (!rc)
    rc = event(c, x, e.id, "withdrawn", e.version, opinion);
  if (!rc)
    x->out = json_pack("{s:s, s:s}", "resource_code", code, "status", "withdrawn");
  return rc;
}

static int work_get(gdx_db_conn *c, rest_ctx *x) {
  char code[64];
  entry_row e;
  int rc = path_entry(c, x, &e, code, sizeof(code), 0);
  if (rc || x->status)
    return rc;
  int drafts = may_see_drafts(x, &e);
  if (!drafts && (e.version == 0 || strcmp(e.status, "withdrawn") == 0))
    return rest_fail(x, 404, "not_found", "no catalog entry %s", code);
  gdx_db_param p[] = {GDX_DB_P_INT(e.id)};
  gdx_db_result r;
  rc = gdx_db_query(c,
                    "SELECT body, published_body, review_opinion, "
                    "DATE_FORMAT(publish_date, '%Y-%m-%d') FROM catalog_entries WHERE id = ?",
                    p, 1, 1, &r);
  if (rc)
    return rc;
  json_t *pub = gdx_db_get(&r, 0, 1) ? json_loads(gdx_db_get(&r, 0, 1), 0, NULL) : json_null();
  x->out = json_pack("{s:s, s:{s:s, s:s}, s:s, s:i, s:o, s:s?}", "resource_code", code,
                     "provider", "code", e.provider_code, "name", e.provider_name, "status",
                     e.status, "version", e.version, "published", pub ? pub : json_null(),
                     "publish_date", gdx_db_get(&r, 0, 3));
  if (drafts) {
    json_object_set_new(x->out, "working_copy", json_loads(gdx_db_get(&r, 0, 0), 0, NULL));
    json_object_set_new(x->out, "review_opinion", json_string(gdx_db_get(&r, 0, 2)));
  }
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int work_history(gdx_db_conn *c, rest_ctx *x) {
  char code[64];
  entry_row e;
  int rc = path_entry(c, x, &e, code, sizeof(code), 0);
  if (rc || x->status)
    return rc;
  if (!may_see_drafts(x, &e) && e.version == 0)
    return rest_fail(x, 404, "not_found", "no catalog entry %s", code);
  gdx_db_param p[] = {GDX_DB_P_INT(e.id)};
  gdx_db_result v, ev;
  rc = gdx_db_query(c,
                    "SELECT version, body, DATE_FORMAT(published_at, '%Y-%m-%dT%H:%i:%sZ'), "
                    "published_by FROM catalog_versions WHERE entry_id = ? ORDER BY version",
                    p, 1, 10000, &v);
  if (rc)
    return rc;
  rc = gdx_db_query(c,
                    "SELECT DATE_FORMAT(ts, '%Y-%m-%dT%H:%i:%s.%fZ'), actor, event, version, "
                    "opinion FROM catalog_events WHERE entry_id = ? ORDER BY id",
                    p, 1, 10000, &ev);
  if (rc) {
    gdx_db_result_free(&v);
    return rc;
  }
  json_t *versions = json_array(), *events = json_array();
  for (size_t i = 0; i < v.nrows; i++)
    json_array_append_new(
        versions, json_pack("{s:o, s:o, s:s, s:s}", "version", rest_json_int(&v, i, 0), "entry",
                            json_loads(gdx_db_get(&v, i, 1), 0, NULL), "published_at",
                            gdx_db_get(&v, i, 2), "published_by", gdx_db_get(&v, i, 3)));
  for (size_t i = 0; i < ev.nrows; i++)
    json_array_append_new(
        events, json_pack("{s:s, s:s, s:s, s:o, s:s}", "ts", gdx_db_get(&ev, i, 0), "actor",
                          gdx_db_get(&ev, i, 1), "event", gdx_db_get(&ev, i, 2), "version",
                          rest_json_int(&ev, i, 3), "opinion", gdx_db_get(&ev, i, 4)));
  gdx_db_result_free(&v);
  gdx_db_result_free(&ev);
  x->out = json_pack("{s:s, s:o, s:o}", "resource_code", code, "versions", versions, "events",
                     events);
  return GDX_OK;
}

/* One search result row: id, code, name, summary, provider code and name,
 * category, type, format, sharing, version, status, publish date. */
static json_t *search_item(const gdx_db_result *r, size_t i) {
  const char *name = gdx_db_get(r, i, 2), *summary = gdx_db_get(r, i, 3);
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "resource_code",
                   gdx_db_get(r, i, 1), "name", name ? name : "", "summary", summary ? summary : "",
                   "provider_code", gdx_db_get(r, i, 4), "provider_name", gdx_db_get(r, i, 5),
                   "category", gdx_db_get(r, i, 6), "resource_type", gdx_db_get(r, i, 7), "format",
                   gdx_db_get(r, i, 8), "sharing_type", gdx_db_get(r, i, 9), "version",
                   rest_json_int(r, i, 10), "status", gdx_db_get(r, i, 11), "publish_date",
                   gdx_db_get(r, i, 12));
}

/* Escapes LIKE wildcards so the text is matched literally. */
static void like_pattern(const char *q, char *out, size_t n) {
  size_t o = 0;
  if (n < 3)
    return;
  out[o++] = '%';
  for (; *q && o + 3 < n; q++) {
    if (*q == '%' || *q == '_' || *q == '\\')
      out[o++] = '\\';
    out[o++] = *q;
  }
  out[o++] = '%';
  out[o] = '\0';
}

static int work_search(gdx_db_conn *c, rest_ctx *x) {
  int bad = 0;
  long long limit = rest_query_int(x, "limit", 20, 1, 100, &bad);
  long long offset = rest_query_int(x, "offset", 0, 0, 100000, &bad);
  if (bad)
    return rest_fail(x, 400, "invalid_query", "limit must be 1 to 100 and offset 0 to 100000");
  char q[256], provider[32], category[32], type[32], sharing[32], format[32], sort[16], order[8],
      mine[8];
  const char *fq = rest_query(x, "q", q, sizeof(q), "");
  const char *fp = rest_query(x, "provider", provider, sizeof(provider), "");
  const char *fc = rest_query(x, "category", category, sizeof(category), "");
  const char *ft = rest_query(x, "type", type, sizeof(type), "");
  const char *fs = rest_query(x, "sharing", sharing, sizeof(sharing), "");
  const char *ff = rest_query(x, "format", format, sizeof(format), "");
  const char *so = rest_query(x, "sort", sort, sizeof(sort), "newest");
  const char * or = rest_query(x, "order", order, sizeof(order), "asc");
  const char *mi = rest_query(x, "mine", mine, sizeof(mine), "0");
  if (x->status)
    return GDX_OK;
  /* ORDER BY cannot be bound: pick from fixed strings only */
  const char *order_by;
  int desc = strcmp(or, "desc") == 0;
  if (strcmp(or, "asc") != 0 && !desc)
    return rest_fail(x, 400, "invalid_query", "order must be asc or desc");
  if (strcmp(so, "newest") == 0)
    order_by = NULL; /* below: follows the index, so a page stops early */
  else if (strcmp(so, "name") == 0)
    order_by = desc ? "e.name DESC, e.resource_code" : "e.name, e.resource_code";
  else if (strcmp(so, "code") == 0)
    order_by = desc ? "e.resource_code DESC" : "e.resource_code";
  else if (strcmp(so, "publish_date") == 0)
    order_by = desc ? "e.publish_date DESC, e.resource_code" : "e.publish_date, e.resource_code";
  else
    return rest_fail(x, 400, "invalid_query", "sort must be newest, name, code or publish_date");
  int own = strcmp(mi, "1") == 0;
  if (strlen(fq) > 100)
    return rest_fail(x, 400, "invalid_query", "q is at most 100 characters");
  char like[256], cat_like[40];
  like_pattern(fq, like, sizeof(like));
  snprintf(cat_like, sizeof(cat_like), "%s%%", fc);
  for (const char *p = fc; *p; p++)
    if (*p < '0' || *p > '9')
      return rest_fail(x, 400, "invalid_query", "category is a classification code (digits)");
  /* A provider's own entries are searched in their working copies; everyone
   * else searches published versions (the columns repeat them). Fixed
   * strings only: nothing from the request goes into the SQL text. */
  const char *c_name = own ? "JSON_VALUE(e.body, '$.name')" : "e.name";
  const char *c_sum = own ? "JSON_VALUE(e.body, '$.summary')" : "e.summary";
  const char *c_cat = own ? "JSON_VALUE(e.body, '$.category')" : "e.category";
  const char *c_type = own ? "JSON_VALUE(e.body, '$.resource_type')" : "e.resource_type";
  const char *c_share = own ? "JSON_VALUE(e.body, '$.sharing_type')" : "e.sharing_type";
  const char *c_fmt = own ? "JSON_VALUE(e.body, '$.format')" : "e.format";
  /* Published entries are found through the query's grams: the first drives
   * (an index range in entry order), up to two more must also be there
   * (point lookups), and LIKE confirms the whole text. */
  char grams[32][GDX_GRAM_MAX];
  size_t ng = own || *fq == '\0' ? 0 : gdx_catalog_grams(fq, grams, 32);
  if (ng > 3)
    ng = 3;
  char gram_from[512] = "catalog_entries e", gram_where[512] = "1 = 1";
  if (ng) {
    snprintf(gram_from, sizeof(gram_from),
             "catalog_grams g1 JOIN catalog_entries e ON e.id = g1.entry_id");
    size_t used = (size_t)snprintf(gram_where, sizeof(gram_where), "g1.gram = ?");
    for (size_t i = 1; i < ng; i++)
      used += (size_t)snprintf(gram_where + used, sizeof(gram_where) - used,
                               " AND EXISTS (SELECT 1 FROM catalog_grams gx WHERE gx.gram = ? "
                               "AND gx.entry_id = e.id)");
  }
  if (order_by == NULL)
    order_by = ng ? (desc ? "g1.entry_id" : "g1.entry_id DESC") : (desc ? "e.id" : "e.id DESC");
  char where[2560];
  snprintf(where, sizeof(where),
           "FROM %s JOIN units u ON u.id = e.provider_unit_id WHERE %s AND "
           "((? = 1 AND e.provider_unit_id = ?) OR "
           " (? = 0 AND e.version > 0 AND e.status <> 'withdrawn')) "
           "AND (? = '' OR %s LIKE ? OR %s LIKE ?) AND (? = '' OR u.code = ?) "
           "AND %s LIKE ? AND (? = '' OR %s = ?) AND (? = '' OR %s = ?) AND (? = '' OR %s = ?)",
           gram_from, gram_where, c_name, c_sum, c_cat, c_type, c_share, c_fmt);
  gdx_db_param pq[] = {
      GDX_DB_P_INT(own), GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_INT(own),
      GDX_DB_P_STR(fq), GDX_DB_P_STR(like), GDX_DB_P_STR(like), GDX_DB_P_STR(fp),
      GDX_DB_P_STR(fp), GDX_DB_P_STR(cat_like), GDX_DB_P_STR(ft), GDX_DB_P_STR(ft),
      GDX_DB_P_STR(fs), GDX_DB_P_STR(fs), GDX_DB_P_STR(ff), GDX_DB_P_STR(ff),
      GDX_DB_P_INT(limit), GDX_DB_P_INT(offset)};
  /* parameters: the grams first, then the filters */
  gdx_db_param pp[5 + 17];
  size_t np = 0;
  for (size_t i = 0; i < ng; i++)
    pp[np++] = GDX_DB_P_STR(grams[i]);
  memcpy(pp + np, pq, sizeof(pq));
  np += 15;
  char sql[4096], cols[1024];
  snprintf(cols, sizeof(cols),
           "e.id, e.resource_code, %s, LEFT(%s, 200), u.code, u.name, %s, %s, %s, %s, "
           "e.version, e.status, IFNULL(DATE_FORMAT(e.publish_date, '%%Y-%%m-%%d'), '')",
           c_name, c_sum, c_cat, c_type, c_fmt, c_share);
  gdx_db_result r;
  long long total;
  json_t *items = json_array();
  int rc;
  if (offset + limit <= SEARCH_COUNT_CAP + 1) {
    /* One scan finds the first CAP+1 matches in order (that is the count),
     * then the page's rows are read by primary key. */
    snprintf(sql, sizeof(sql), "SELECT e.id %s ORDER BY %s LIMIT %d", where, order_by,
             SEARCH_COUNT_CAP + 1);
    rc = gdx_db_query(c, sql, pp, np, SEARCH_COUNT_CAP + 1, &r);
    if (rc)
      goto fail;
    total = (long long)r.nrows;
    size_t first = (size_t)offset, last = (size_t)(offset + limit);
    if (last > r.nrows)
      last = r.nrows;
    gdx_db_param ids[100];
    size_t nids = 0;
    size_t used = (size_t)snprintf(sql, sizeof(sql),
                                   "SELECT %s FROM catalog_entries e JOIN units u ON "
                                   "u.id = e.provider_unit_id WHERE e.id IN (", cols);
    for (size_t i = first; i < last; i++, nids++) {
      gdx_db_row w = gdx_db_row_at(&r, i);
      ids[nids] = GDX_DB_P_INT(gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX));
      if (w.rc) {
        rc = gdx_db_row_fail(&w, "catalog search");
        gdx_db_result_free(&r);
        goto fail;
      }
      used += (size_t)snprintf(sql + used, sizeof(sql) - used, nids ? ",?" : "?");
    }
    snprintf(sql + used, sizeof(sql) - used, ")");
    long long page_ids[100];
    for (size_t i = 0; i < nids; i++)
      page_ids[i] = ids[i].i;
    gdx_db_result_free(&r);
    if (nids) {
      rc = gdx_db_query(c, sql, ids, nids, 100, &r);
      if (rc)
        goto fail;
      long long row_ids[100];
      for (size_t i = 0; i < r.nrows; i++) {
        gdx_db_row w = gdx_db_row_at(&r, i);
        row_ids[i] = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX); /* 0 if it fails: matches no id */
      }
      for (size_t k = 0; k < nids; k++) /* in the scan's order */
        for (size_t i = 0; i < r.nrows; i++)
          if (row_ids[i] == page_ids[k])
            json_array_append_new(items, search_item(&r, i));
      gdx_db_result_free(&r);
    }
  } else {
    /* Deep pages: count (capped) and page separately. */
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM (SELECT 1 %s LIMIT %d) t", where,
             SEARCH_COUNT_CAP + 1);
    rc = gdx_db_query(c, sql, pp, np, 1, &r);
    if (rc)
      goto fail;
    gdx_db_row w = gdx_db_row_at(&r, 0);
    total = gdx_db_i64(&w, 0, 0, LLONG_MAX);
    rc = w.rc ? gdx_db_row_fail(&w, "catalog search") : GDX_OK;
    gdx_db_result_free(&r);
    if (rc)
      goto fail;
    snprintf(sql, sizeof(sql), "SELECT %s %s ORDER BY %s LIMIT ? OFFSET ?", cols, where,
             order_by);
    rc = gdx_db_query(c, sql, pp, np + 2, 100, &r);
    if (rc)
      goto fail;
    for (size_t i = 0; i < r.nrows; i++)
      json_array_append_new(items, search_item(&r, i));
    gdx_db_result_free(&r);
  }
  int exact = total <= SEARCH_COUNT_CAP;
  x->out = json_pack("{s:I, s:b, s:I, s:I, s:o}", "total",
                     (json_int_t)(exact ? total : SEARCH_COUNT_CAP), "total_is_exact", exact,
                     "limit", (json_int_t)limit, "offset", (json_int_t)offset, "items", items);
  return GDX_OK;
fail:
  json_decref(items);
  return rc;
}

#define PROVIDERS (ROLE_UNIT_ADMIN | ROLE_STAFF)

static const rest_route routes[] = {
    {"POST", "/api/v1/catalog", "catalog.create", REST_SESSION, PROVIDERS, "catalog_entry",
     work_create, "Create a catalog entry (draft) for the caller's provider unit"},
    {"GET", "/api/v1/catalog", NULL, REST_SESSION, ROLE_ANY, NULL, work_search,
     "Search published entries (mine=1: the caller unit's entries in any state)"},
    {"GET", "/api/v1/catalog/{}/{}", NULL, REST_SESSION, ROLE_ANY, NULL, work_get,
     "One entry: its published version, and for its provider and management the working copy"},
    {"PUT", "/api/v1/catalog/{}/{}", "catalog.update", REST_SESSION, PROVIDERS, "catalog_entry",
     work_update, "Replace the working copy (the published version stays until republished)"},
    {"POST", "/api/v1/catalog/{}/{}/submit", "catalog.submit", REST_SESSION, PROVIDERS, NULL,
     work_submit, "Submit the working copy for review"},
    {"POST", "/api/v1/catalog/{}/{}/review", "catalog.review", REST_SESSION, ROLE_MGMT,
     "catalog_review", work_review, "Publish a submitted entry, or return it with an opinion"},
    {"POST", "/api/v1/catalog/{}/{}/withdraw", "catalog.withdraw", REST_SESSION,
     ROLE_UNIT_ADMIN | ROLE_MGMT, "catalog_withdraw", work_withdraw, "Withdraw a published entry"},
    {"GET", "/api/v1/catalog/{}/{}/history", NULL, REST_SESSION, ROLE_ANY, NULL, work_history,
     "Every published version and every lifecycle event"},
};
const rest_part catalog_part = REST_PART("catalog", routes);
