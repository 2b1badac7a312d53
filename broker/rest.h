/* The broker's REST core: what every part of the API shares, and nothing
 * about any part.
 *
 * A part (units, accounts, sessions, audit, nodes, credentials, catalog,
 * requests, ledger, reports, and later licenses, workflows, seals,
 * operations) is one table of rest_route; broker.c registers each part with
 * rest_add_part(), together with the data its work functions need
 * (rest_ctx.part). A request under /api/v1 or /node/v1 is matched against
 * the routes (method + path pattern, {} for one segment). A body, when the
 * route takes one, is collected (capped by http.max_body_bytes); then one
 * job on the database pool does everything in one transaction: identify the
 * caller (a session token, or a node by its certificate: node_auth.h), check
 * the route's roles, parse the body strictly and check it against the
 * route's JSON Schema (schemas/json/), run the work function (SQL with bound
 * parameters only) and, for an action, append its audit record
 * (audit_chain.h). The loop thread only renders the answer: the result, or
 * the one error shape of gdx_http_respond_error() with a stable code.
 */
#ifndef GDX_BROKER_REST_H
#define GDX_BROKER_REST_H

#include <jansson.h>

#include "broker.h"
#include "db.h"
#include "digest.h"
#include "ids.h"
#include "node_auth.h"
#include "router.h"

typedef enum {
  REST_PUBLIC = 0,  /* no caller identity (login, enrollment) */
  REST_SESSION_ANY, /* a session, even one that must change its password */
  REST_SESSION,     /* a session in good standing */
  REST_NODE,        /* a front-end node: its platform certificate (mutual TLS) */
} rest_auth;

typedef enum { ROLE_OPS = 1, ROLE_MGMT = 2, ROLE_UNIT_ADMIN = 4, ROLE_STAFF = 8 } rest_role;
#define ROLE_ANY (ROLE_OPS | ROLE_MGMT | ROLE_UNIT_ADMIN | ROLE_STAFF)

/* The person behind a session (or, for REST_NODE, "node:<id>" of its unit). */
typedef struct {
  long long id;
  char username[GDX_NAME_SIZE];
  rest_role role;
  long long unit_id;
  char unit_code[GDX_UNIT_CODE_SIZE];
  char unit_roles[64];
} rest_who;

typedef struct rest_ctx rest_ctx;
/* Runs on a database worker. Returns GDX_OK with the result (or a refusal
 * set by rest_fail) in x, or a database error: the transaction is rolled
 * back and the caller gets a logged 500. */
typedef int (*rest_work_fn)(gdx_db_conn *c, rest_ctx *x);

typedef struct {
  const char *method;
  const char *pattern; /* "/api/v1/accounts/{}/disable" */
  const char *action;  /* audit action ("account.disable"); NULL: a read, not audited */
  rest_auth auth;
  unsigned roles;     /* rest_role bits that may call (sessions only) */
  const char *schema; /* schemas/json/<name>.json of the body; NULL: no body */
  rest_work_fn work;
  const char *summary; /* one line, for the docs and the route listing */
} rest_route;

/* One part of the API: its name (logs, the route listing) and its routes. */
typedef struct rest_part {
  const char *name;
  const rest_route *routes;
  size_t nroutes;
} rest_part;

#define REST_PART(n, table)                                                                        \
  { (n), (table), sizeof(table) / sizeof((table)[0]) }

struct rest_ctx {
  const gdx_broker_config *cfg;
  const rest_route *route;
  const void *part;    /* what the route's part was registered with */
  char params[2][256]; /* the {} segments, URL-decoded */
  char query[1024];
  json_t *in;                           /* the body, parsed and valid against the schema */
  char token_hash[GDX_SHA256_HEX_SIZE]; /* of the bearer token, "" if none */
  char source[64];                      /* the client's address */
  char request_id[40];
  rest_who who;       /* set by authentication */
  node_identity node; /* REST_NODE: from the certificate; row and unit once checked */
  /* cache invalidation (rest_invalidate): the last one of this call */
  int poke;
  char inval_kind[16];
  long long inval_ref;
  /* the result */
  int status;
  json_t *out;
  const char *err_code;
  char err_msg[256];
  int commit_on_error; /* keep the transaction's changes even with a 4xx */
  /* the audit record of this call (audit_action NULL: none) */
  const char *audit_action;
  char audit_object[256];
  char audit_actor[GDX_NAME_SIZE];     /* defaults to who.username */
  char audit_unit[GDX_UNIT_CODE_SIZE]; /* defaults to who.unit_code */
  json_t *audit_detail;
};

/* ---- for work functions (worker thread) ---- */

/* Sets a refusal: the status, a stable code and a human message. Returns
 * GDX_OK, so that `return rest_fail(...)` lets the core audit and answer. */
int rest_fail(rest_ctx *x, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The query parameter `name` (URL-decoded) in buf, or def when absent. A
 * value that is malformed or does not fit in n bytes sets a 400
 * invalid_query refusal (check x->status). */
const char *rest_query(rest_ctx *x, const char *name, char *buf, size_t n, const char *def);
/* The query parameter `name` as an integer in [min, max], def when absent;
 * *bad = 1 when present but not such a number. */
long long rest_query_int(rest_ctx *x, const char *name, long long def, long long min, long long max,
                         int *bad);
/* The path segment params[i] as a row id (1 and up), or 0 when it is not
 * one - which matches no row, so the caller's lookup answers 404. */
long long rest_param_id(const rest_ctx *x, int i);
/* Runs a query and answers {"items": [row(r, i) for each row]}. */
int rest_list(gdx_db_conn *c, rest_ctx *x, const char *sql, const gdx_db_param *params, size_t n,
              size_t max_rows, json_t *(*row)(const gdx_db_result *, size_t));
/* A column as a JSON integer for an answer: SQL NULL as null (and a value
 * that is no number, which would be a bug, as null with a log line). */
json_t *rest_json_int(const gdx_db_result *r, size_t row, size_t col);
/* Runs a query for one row into r. No row: a 404 not_found refusal with the
 * message (r is then empty). Returns GDX_OK or the database error; so
 *   if ((rc = rest_load_one(...)) != GDX_OK || x->status) return rc; */
int rest_load_one(gdx_db_conn *c, rest_ctx *x, const char *sql, const gdx_db_param *params,
                  size_t n, gdx_db_result *r, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* 1 when the caller sees every unit's records (operations, the management
 * unit's reviewers); unit admins and staff see their own unit's. */
int rest_sees_all(const rest_ctx *x);
/* 1 when the caller's unit has the unit role (provider, consumer, …). */
int rest_unit_has_role(const rest_ctx *x, const char *role);
const char *rest_role_name(rest_role r);
int rest_role_parse(const char *s, rest_role *out);
/* Records a change that makes cached access decisions stale (kind:
 * authorization, credential, node, unit, account) in cache_invalidations,
 * in the caller's transaction; every broker drops what it names within its
 * poll interval, this one before the answer leaves (rest_on_invalidate). */
int rest_invalidate(gdx_db_conn *c, rest_ctx *x, const char *kind, long long ref);

/* ---- the core (loop thread) ---- */

typedef struct rest rest;
/* Serves /api/v1/... and /node/v1/... on router, with no part yet. */
int rest_new(const gdx_broker_config *cfg, gdx_db_pool *db, gdx_router *router, rest **out);
/* Adds a part's routes, loading their schemas; `data` reaches its work
 * functions as rest_ctx.part. GDX_ECONFIG with err naming the schema file
 * that does not load. */
int rest_add_part(rest *r, const rest_part *part, const void *data, char *err, size_t errlen);
/* Called on the loop with each invalidation a call made, once it has
 * committed and before its answer is sent. */
void rest_on_invalidate(rest *r, void (*fn)(void *, const char *kind, long long ref), void *data);
void rest_free(rest *r);

#endif
