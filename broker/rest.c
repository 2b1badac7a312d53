#include "rest.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit_chain.h"
#include "error.h"
#include "jsonschema.h"
#include "log.h"
#include "num.h"

#ifndef GDX_SCHEMA_DIR
#define GDX_SCHEMA_DIR "schemas"
#endif

#define MAX_ROUTES 256
#define TOKEN_MAX 128
#define SESSION_TOUCH_S 60

typedef struct {
  const rest_route *route;
  const void *part; /* the part's data */
  json_t *schema;   /* its body's, or NULL */
} route_slot;

struct rest {
  const gdx_broker_config *cfg;
  gdx_db_pool *db;
  route_slot routes[MAX_ROUTES];
  size_t nroutes;
  void (*poke)(void *, const char *, long long);
  void *poke_data;
};

typedef struct {
  rest_ctx x;
  rest *a;
  gdx_http_req *req; /* NULL once the client is gone */
  json_t *schema;
  gdx_buf body;
  int submitted; /* the job owns it from then on */
} call;

/* ------------------------------------------------------------------ */
/* helpers for work functions                                          */

int rest_fail(rest_ctx *x, int status, const char *code, const char *fmt, ...) {
  x->status = status;
  x->err_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->err_msg, sizeof(x->err_msg), fmt, ap);
  va_end(ap);
  return GDX_OK;
}

const char *rest_query(rest_ctx *x, const char *name, char *buf, size_t n, const char *def) {
  int rc = gdx_http_query_param(x->query, name, buf, n);
  if (rc == 1)
    return buf;
  if (rc < 0)
    rest_fail(x, 400, "invalid_query", "query parameter %s is malformed or longer than %zu bytes",
              name, n - 1);
  return def;
}

long long rest_query_int(rest_ctx *x, const char *name, long long def, long long min, long long max,
                         int *bad) {
  char buf[32];
  const char *v = rest_query(x, name, buf, sizeof(buf), NULL);
  long long n;
  if (v == NULL)
    return def;
  if (gdx_num_parse(v, min, max, &n) != GDX_OK) {
    *bad = 1;
    return def;
  }
  return n;
}

long long rest_param_id(const rest_ctx *x, int i) {
  long long id;
  return gdx_num_parse(x->params[i], 1, GDX_DB_ID_MAX, &id) == GDX_OK ? id : 0;
}

int rest_list(gdx_db_conn *c, rest_ctx *x, const char *sql, const gdx_db_param *params, size_t n,
              size_t max_rows, json_t *(*row)(const gdx_db_result *, size_t)) {
  gdx_db_result r;
  int rc = gdx_db_query(c, sql, params, n, max_rows, &r);
  if (rc)
    return rc;
  json_t *items = json_array();
  for (size_t i = 0; i < r.nrows; i++)
    json_array_append_new(items, row(&r, i));
  gdx_db_result_free(&r);
  x->out = json_pack("{s:o}", "items", items);
  return GDX_OK;
}

int rest_load_one(gdx_db_conn *c, rest_ctx *x, const char *sql, const gdx_db_param *params,
                  size_t n, gdx_db_result *r, const char *fmt, ...) {
  int rc = gdx_db_query(c, sql, params, n, 1, r);
  if (rc || r->nrows == 1)
    return rc;
  gdx_db_result_free(r);
  x->status = 404;
  x->err_code = "not_found";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->err_msg, sizeof(x->err_msg), fmt, ap);
  va_end(ap);
  return GDX_OK;
}

json_t *rest_json_int(const gdx_db_result *r, size_t row, size_t col) {
  gdx_db_row w = gdx_db_row_at(r, row);
  long long v = gdx_db_i64_or(&w, col, LLONG_MIN, LLONG_MAX, 0);
  if (w.rc) {
    gdx_db_row_fail(&w, "answer");
    return json_null();
  }
  return gdx_db_get(r, row, col) ? json_integer(v) : json_null();
}

int rest_sees_all(const rest_ctx *x) { return x->who.role == ROLE_OPS || x->who.role == ROLE_MGMT; }

int rest_unit_has_role(const rest_ctx *x, const char *role) {
  size_t n = strlen(role);
  for (const char *p = x->who.unit_roles; *p;) { /* a SET column: "provider,consumer" */
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, role, n) == 0)
      return 1;
    if (end == NULL)
      break;
    p = end + 1;
  }
  return 0;
}

static const struct {
  rest_role role;
  const char *name;
} role_names[] = {{ROLE_OPS, "ops_admin"},
                  {ROLE_MGMT, "mgmt_reviewer"},
                  {ROLE_UNIT_ADMIN, "unit_admin"},
                  {ROLE_STAFF, "staff"}};

const char *rest_role_name(rest_role r) {
  for (size_t i = 0; i < 4; i++)
    if (role_names[i].role == r)
      return role_names[i].name;
  return "?";
}

int rest_role_parse(const char *s, rest_role *out) {
  for (size_t i = 0; i < 4; i++)
    if (s && strcmp(role_names[i].name, s) == 0) {
      *out = role_names[i].role;
      return GDX_OK;
    }
  return GDX_EINVAL;
}

/* ------------------------------------------------------------------ */
/* authentication (worker thread)                                      */

static int authenticate(gdx_db_conn *c, rest_ctx *x) {
  if (x->token_hash[0] == '\0')
    return rest_fail(x, 401, "unauthenticated", "log in first: no bearer token was sent");
  gdx_db_param p[] = {GDX_DB_P_STR(x->token_hash)};
  gdx_db_result r;
  int rc = gdx_db_query(
      c,
      "SELECT a.id, a.username, a.role, a.unit_id, u.code, u.roles, a.status, u.status, "
      "a.must_change_password, TIMESTAMPDIFF(SECOND, s.last_seen, UTC_TIMESTAMP(6)), "
      "s.expires_at < UTC_TIMESTAMP(6), "
      "TIMESTAMPDIFF(SECOND, a.password_changed_at, UTC_TIMESTAMP(6)) "
      "FROM sessions s JOIN accounts a ON a.id = s.account_id JOIN units u ON u.id = a.unit_id "
      "WHERE s.token_hash = ?",
      p, 1, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 0) {
    gdx_db_result_free(&r);
    return rest_fail(x, 401, "invalid_token", "the session token is not valid (logged out?)");
  }
  gdx_db_row w = gdx_db_row_at(&r, 0);
  x->who.id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  x->who.unit_id = gdx_db_i64(&w, 3, 1, GDX_DB_ID_MAX);
  int must_change = gdx_db_flag(&w, 8);
  long long idle = gdx_db_i64(&w, 9, LLONG_MIN, LLONG_MAX);
  int expired = gdx_db_flag(&w, 10);
  long long pw_age = gdx_db_i64(&w, 11, LLONG_MIN, LLONG_MAX);
  snprintf(x->who.username, sizeof(x->who.username), "%s", gdx_db_get(&r, 0, 1));
  rest_role_parse(gdx_db_get(&r, 0, 2), &x->who.role);
  snprintf(x->who.unit_code, sizeof(x->who.unit_code), "%s", gdx_db_get(&r, 0, 4));
  snprintf(x->who.unit_roles, sizeof(x->who.unit_roles), "%s", gdx_db_get(&r, 0, 5));
  int disabled =
      strcmp(gdx_db_get(&r, 0, 6), "active") != 0 || strcmp(gdx_db_get(&r, 0, 7), "active") != 0;
  rc = w.rc ? gdx_db_row_fail(&w, "session") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;

  if (disabled || expired || idle > x->cfg->session_idle_s) {
    gdx_db_exec(c, "DELETE FROM sessions WHERE token_hash = ?", p, 1, NULL, NULL);
    x->commit_on_error = 1;
    if (disabled)
      return rest_fail(x, 401, "account_disabled", "this account or its unit is disabled");
    return rest_fail(x, 401, "session_expired",
                     expired ? "the session reached its maximum age: log in again"
                             : "the session was idle too long: log in again");
  }
  /* last_seen is refreshed at most once a minute: a write per request would
   * cost more than most requests (idle expiry is exact to that minute). */
  if (idle >= SESSION_TOUCH_S) {
    rc = gdx_db_exec(c, "UPDATE sessions SET last_seen = UTC_TIMESTAMP(6) WHERE token_hash = ?", p,
                     1, NULL, NULL);
    if (rc)
      return rc;
  }
  if (x->route->auth == REST_SESSION) {
    if (must_change)
      return rest_fail(x, 403, "password_change_required",
                       "change the initial password first (POST /api/v1/auth/password)");
    if (pw_age > x->cfg->password_max_age_days * 86400LL)
      return rest_fail(
          x, 403, "password_expired",
          "the password is older than %lld days: change it (POST /api/v1/auth/password)",
          x->cfg->password_max_age_days);
  }
  return GDX_OK;
}

/* A front-end node, known by its certificate (node_auth.h). */
static int authenticate_node(gdx_db_conn *c, rest_ctx *x) {
  if (x->node.serial[0] == '\0')
    return rest_fail(x, 401, "certificate_required",
                     "this endpoint is for front-end nodes with a platform certificate");
  snprintf(x->who.username, sizeof(x->who.username), "node:%s", x->node.node);
  snprintf(x->who.unit_code, sizeof(x->who.unit_code), "%s", x->node.unit);
  node_check nc;
  int rc = node_check_cert(c, &x->node, &nc);
  if (rc)
    return rc;
  x->who.unit_id = x->node.unit_id;
  if (nc.status)
    return rest_fail(x, nc.status, nc.code, "%s", nc.message);
  return GDX_OK;
}

int rest_invalidate(gdx_db_conn *c, rest_ctx *x, const char *kind, long long ref) {
  gdx_db_param p[] = {GDX_DB_P_STR(kind), GDX_DB_P_INT(ref)};
  x->poke = 1;
  snprintf(x->inval_kind, sizeof(x->inval_kind), "%s", kind);
  x->inval_ref = ref;
  return gdx_db_exec(c,
                     "INSERT INTO cache_invalidations (ts, kind, ref_id) "
                     "VALUES (UTC_TIMESTAMP(6), ?, ?)",
                     p, 2, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* the job                                                             */

static void audit_defaults(rest_ctx *x, const char **actor, const char **unit) {
  *actor = x->audit_actor[0] ? x->audit_actor : (x->who.username[0] ? x->who.username : "-");
  *unit = x->audit_unit[0] ? x->audit_unit : (x->who.unit_code[0] ? x->who.unit_code : "-");
}

static int write_audit(gdx_db_conn *c, rest_ctx *x) {
  const char *actor, *unit;
  audit_defaults(x, &actor, &unit);
  char result[32];
  if (x->status < 400)
    snprintf(result, sizeof(result), "success");
  else
    snprintf(result, sizeof(result), "%s", x->status == 403 ? "denied" : "failure");
  char *detail = NULL;
  json_t *d = x->audit_detail ? json_incref(x->audit_detail) : json_object();
  if (x->status >= 400) {
    json_object_set_new(d, "error", json_string(x->err_code ? x->err_code : ""));
    json_object_set_new(d, "status", json_integer(x->status));
  }
  detail = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(d);
  const char *purpose = json_string_value(json_object_get(x->in, "purpose"));
  int rc = audit_append(c, actor, unit, x->audit_action, x->audit_object[0] ? x->audit_object : "-",
                        purpose ? purpose : "", result, x->source, x->request_id,
                        detail ? detail : "{}");
  free(detail);
  return rc;
}

/* Parses and checks the body (on the worker, after the caller's identity and
 * role: who may not act learns nothing about the payload's rules). */
static void parse_body(call *k) {
  rest_ctx *x = &k->x;
  json_error_t je;
  x->in = json_loadb(k->body.data ? k->body.data : "", k->body.len, JSON_REJECT_DUPLICATES, &je);
  if (x->in == NULL) {
    rest_fail(x, 400, "invalid_json", "the body is not valid JSON: %s (at byte %d)", je.text,
              je.position);
    return;
  }
  if (!json_is_object(x->in)) {
    rest_fail(x, 400, "invalid_json", "the body must be a JSON object");
    return;
  }
  char field[256], why[256];
  if (gdx_schema_validate(k->schema, x->in, field, sizeof(field), why, sizeof(why)))
    rest_fail(x, 400, "invalid_field", "%s%s%s", field, field[0] ? ": " : "", why);
}

static int rest_job(gdx_db_conn *c, void *arg) {
  call *k = arg;
  rest_ctx *x = &k->x;
  const rest_route *rt = x->route;
  /* Reads run in autocommit: a transaction would add two round trips to
   * every search. Actions run in one transaction with their audit record. */
  int txn = rt->action != NULL;
  int rc = txn ? gdx_db_begin(c) : GDX_OK;
  if (!rc && rt->auth == REST_NODE)
    rc = authenticate_node(c, x);
  else if (!rc && rt->auth != REST_PUBLIC)
    rc = authenticate(c, x);
  if (!rc && x->status == 0 && rt->auth != REST_PUBLIC && rt->auth != REST_NODE &&
      !(rt->roles & x->who.role))
    rest_fail(x, 403, "forbidden", "the role %s may not do this", rest_role_name(x->who.role));
  if (!rc && x->status == 0 && k->schema)
    parse_body(k);
  if (!rc && x->status == 0)
    rc = rt->work(c, x);
  if (rc) {
    gdx_log(GDX_LOG_ERROR, "api", x->request_id, "%s %s: database error: %s", rt->method,
            rt->pattern, gdx_db_error(c));
    if (txn)
      gdx_db_rollback(c);
    x->commit_on_error = 0;
    rest_fail(x, 500, "internal", "the request failed inside the broker; it has been logged");
  }
  if (!txn && rt->auth == REST_NODE && x->status >= 400 && x->status < 500 && !rc) {
    /* a refused node (unknown, revoked, expired) is audited; its routine
     * heartbeats are not */
    x->audit_action = "node.refused";
    if (x->audit_object[0] == '\0')
      snprintf(x->audit_object, sizeof(x->audit_object), "node:%s/%s", x->node.unit, x->node.node);
    rc = gdx_db_begin(c);
    if (!rc)
      rc = write_audit(c, x);
    return rc ? (gdx_db_rollback(c), rc) : gdx_db_commit(c);
  }
  if (!txn)
    return GDX_OK;
  /* Reads of an anonymous caller (401) are not audited; every action is. */
  int audit = x->audit_action != NULL || (rt->action && x->status != 401) ||
              (rt->action && (rt->auth == REST_PUBLIC || rt->auth == REST_NODE));
  if (rt->action && x->audit_action == NULL)
    x->audit_action = rt->action;
  if (x->status < 400 || x->commit_on_error) {
    if (audit && x->audit_action && (rc = write_audit(c, x)) != GDX_OK) {
      gdx_db_rollback(c);
      return rc;
    }
    return gdx_db_commit(c);
  }
  gdx_db_rollback(c);
  if (!audit || x->audit_action == NULL || x->status >= 500)
    return GDX_OK;
  rc = gdx_db_begin(c);
  if (!rc)
    rc = write_audit(c, x);
  return rc ? (gdx_db_rollback(c), rc) : gdx_db_commit(c);
}

static void call_free(call *k) {
  json_decref(k->x.in);
  json_decref(k->x.out);
  json_decref(k->x.audit_detail);
  gdx_buf_free(&k->body);
  free(k);
}

static void respond_json(gdx_http_req *req, int status, json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  if (s == NULL) {
    gdx_http_respond_error(req, 503, "busy", "out of memory");
    return;
  }
  size_t n = strlen(s);
  char *nl = realloc(s, n + 2);
  if (nl) { /* the newline is for people reading with curl */
    s = nl;
    s[n++] = '\n';
  }
  gdx_http_respond(req, status, "application/json", s, n);
  free(s);
}

static void rest_done(int status, void *arg) {
  call *k = arg;
  rest_ctx *x = &k->x;
  if (x->poke && status == GDX_OK && x->status < 400 && k->a->poke)
    k->a->poke(k->a->poke_data, x->inval_kind, x->inval_ref); /* before the answer leaves */
  if (k->req) {
    gdx_http_req_set_data(k->req, NULL);
    if (status != GDX_OK && x->status < 400)
      gdx_http_respond_error(k->req, 500, "internal",
                             "the request failed inside the broker; it has been logged");
    else if (x->status >= 400)
      gdx_http_respond_error(k->req, x->status, x->err_code, x->err_msg);
    else
      respond_json(k->req, x->status ? x->status : 200, x->out ? x->out : json_object());
  }
  call_free(k);
}

static void call_submit(call *k) {
  k->submitted = 1;
  int rc = gdx_db_submit(k->a->db, rest_job, rest_done, k);
  if (rc == GDX_OK)
    return;
  gdx_http_req_set_data(k->req, NULL);
  gdx_http_add_header(k->req, "Retry-After", "1");
  gdx_http_respond_error(k->req, 503, "busy", "the broker is busy; try again shortly");
  call_free(k);
}

/* ------------------------------------------------------------------ */
/* HTTP side                                                           */

static void on_abort(gdx_http_req *req) {
  call *k = gdx_http_req_get_data(req);
  if (k == NULL)
    return;
  if (k->submitted)
    k->req = NULL; /* the job still runs; rest_done frees */
  else
    call_free(k);
}

static void on_body(gdx_http_req *req, const char *data, size_t len) {
  call *k = gdx_http_req_get_data(req);
  gdx_buf_append(&k->body, data, len); /* capped by max_body_bytes at the edge */
}

static void fail_now(call *k, int status, const char *code, const char *msg) {
  gdx_http_req *req = k->req;
  gdx_http_req_set_data(req, NULL);
  gdx_http_respond_error(req, status, code, msg);
  call_free(k);
}

static void on_complete(gdx_http_req *req) { call_submit(gdx_http_req_get_data(req)); }

/* Matches "/api/v1/units/{}" against a path; fills params. */
static int match(const char *pattern, const char *path, char params[2][256]) {
  int np = 0;
  while (*pattern && *path) {
    if (pattern[0] == '{' && pattern[1] == '}') {
      const char *end = strchr(path, '/');
      size_t len = end ? (size_t)(end - path) : strlen(path);
      if (len == 0 || np == 2 || gdx_url_decode(path, len, params[np], 256) != 0)
        return 0;
      np++;
      path += len;
      pattern += 2;
      continue;
    }
    if (*pattern != *path)
      return 0;
    pattern++;
    path++;
  }
  return *pattern == '\0' && *path == '\0';
}

static void token_hash(const char *auth, char out[GDX_SHA256_HEX_SIZE]) {
  out[0] = '\0';
  if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
    return;
  const char *t = auth + 7;
  size_t n = strlen(t);
  if (n == 0 || n > TOKEN_MAX)
    return;
  gdx_sha256_hex(t, n, out);
}

static void rest_dispatch(gdx_http_req *req, void *data) {
  rest *a = data;
  const char *path = gdx_http_req_path(req), *method = gdx_http_req_method(req);
  char params[2][256];
  const route_slot *slot = NULL;
  int path_known = 0;
  for (size_t i = 0; i < a->nroutes && slot == NULL; i++) {
    if (!match(a->routes[i].route->pattern, path, params))
      continue;
    path_known = 1;
    if (strcmp(a->routes[i].route->method, method) == 0)
      slot = &a->routes[i];
  }
  const rest_route *rt = slot ? slot->route : NULL;
  if (rt == NULL) {
    if (path_known)
      gdx_http_respond_error(req, 405, "method_not_allowed",
                             "this path does not accept that method");
    else
      gdx_http_respond_error(req, 404, "not_found", "no such API path");
    return;
  }
  const char *q = gdx_http_req_query(req);
  if (strlen(q) >= sizeof(((rest_ctx *)0)->query)) {
    gdx_http_respond_error(req, 414, "uri_too_long", "the query string is too long");
    return;
  }
  call *k = calloc(1, sizeof(*k));
  if (k == NULL) {
    gdx_http_respond_error(req, 503, "busy", "out of memory");
    return;
  }
  k->a = a;
  k->req = req;
  k->schema = slot->schema;
  k->x.cfg = a->cfg;
  k->x.route = rt;
  k->x.part = slot->part;
  memcpy(k->x.params, params, sizeof(params));
  snprintf(k->x.query, sizeof(k->x.query), "%s", q);
  snprintf(k->x.request_id, sizeof(k->x.request_id), "%s", gdx_http_req_id(req));
  snprintf(k->x.source, sizeof(k->x.source), "%s", gdx_http_req_remote_addr(req));
  char *colon = strrchr(k->x.source, ':');
  if (colon)
    *colon = '\0'; /* the address, not the ephemeral port */
  token_hash(gdx_http_req_header(req, "Authorization"), k->x.token_hash);
  if (rt->auth == REST_NODE)
    node_identity_of(req, &k->x.node); /* none: refused in the job, and audited */
  gdx_http_req_set_data(req, k);
  int64_t clen = gdx_http_req_content_length(req);
  if (rt->schema == NULL) {
    if (clen != 0) {
      fail_now(k, 400, "unexpected_body", "this endpoint takes no request body");
      return;
    }
    gdx_http_req_on(req, NULL, NULL, on_abort);
    call_submit(k);
    return;
  }
  const char *ct = gdx_http_req_header(req, "Content-Type");
  if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
    fail_now(k, 415, "unsupported_media_type", "send the body as Content-Type: application/json");
    return;
  }
  gdx_buf_init(&k->body, (size_t)a->cfg->max_body_bytes);
  gdx_http_req_on(req, on_body, on_complete, on_abort);
}

int rest_new(const gdx_broker_config *cfg, gdx_db_pool *db, gdx_router *router, rest **out) {
  rest *a = calloc(1, sizeof(*a));
  if (a == NULL)
    return GDX_ENOMEM;
  a->cfg = cfg;
  a->db = db;
  gdx_router_add(router, "*", "/api/v1/*", rest_dispatch, a);
  gdx_router_add(router, "*", "/node/v1/*", rest_dispatch, a);
  *out = a;
  return GDX_OK;
}

int rest_add_part(rest *a, const rest_part *part, const void *data, char *err, size_t errlen) {
  if (a->nroutes + part->nroutes > MAX_ROUTES) {
    snprintf(err, errlen, "part %s: more than %d routes in all", part->name, MAX_ROUTES);
    return GDX_ECONFIG;
  }
  for (size_t i = 0; i < part->nroutes; i++) {
    route_slot *s = &a->routes[a->nroutes];
    *s = (route_slot){&part->routes[i], data, NULL};
    if (s->route->schema) {
      char path[4096];
      snprintf(path, sizeof(path), "%s/json/%s.json",
               a->cfg->schema_dir ? a->cfg->schema_dir : GDX_SCHEMA_DIR, s->route->schema);
      if (gdx_schema_load(path, &s->schema, err, errlen) != GDX_OK)
        return GDX_ECONFIG;
    }
    a->nroutes++;
  }
  return GDX_OK;
}

void rest_on_invalidate(rest *a, void (*fn)(void *, const char *, long long), void *data) {
  a->poke = fn;
  a->poke_data = data;
}

void rest_free(rest *a) {
  if (a == NULL)
    return;
  for (size_t i = 0; i < a->nroutes; i++)
    json_decref(a->routes[i].schema);
  free(a);
}
