/* The REST API under /api/v1: plumbing shared by every endpoint.
 *
 * A request is matched against a table of api_route (method + path pattern
 * with {} for one segment). The body, if any, is collected (capped by
 * http.max_body_bytes), parsed strictly (valid UTF-8, no duplicate keys, an
 * object) and checked against the route's JSON Schema from schemas/json/.
 * Then one job on the database pool does everything in one transaction:
 * authenticate the session, check the caller's rights, act, and append the
 * audit record; the loop thread only renders the answer. Errors are the one
 * JSON shape of gdx_http_respond_error(), with a stable code.
 */
#ifndef GDX_BROKER_API_H
#define GDX_BROKER_API_H

#include <jansson.h>

#include "broker.h"
#include "db.h"

typedef enum {
  API_PUBLIC = 0,     /* no session (login) */
  API_SESSION_ANY,    /* a session, even one that must change its password */
  API_SESSION,        /* a session in good standing */
  API_NODE,           /* a front-end node: its certificate (mutual TLS) */
} api_auth;

/* What the exchange part of the broker shares with API work functions
 * (read-only after start-up; see nodes.c). */
typedef struct broker_pki {
  char *ca_pem, *ca_key_pem;
  char ca_fingerprint[65];
  unsigned char token_key[32];   /* HMAC key of consumer access tokens */
  char ca_file[1024], cert_file[1024], key_file[1024]; /* the broker's own */
  char nodes_url[300];           /* where nodes reach the broker */
} broker_pki;

typedef enum { ROLE_OPS = 1, ROLE_MGMT = 2, ROLE_UNIT_ADMIN = 4, ROLE_STAFF = 8 } api_role;
#define ROLE_ANY (ROLE_OPS | ROLE_MGMT | ROLE_UNIT_ADMIN | ROLE_STAFF)

typedef struct {
  long long id;
  char username[65];
  api_role role;
  long long unit_id;
  char unit_code[19];
  char unit_roles[64];
} api_who;

typedef struct api_ctx api_ctx;
typedef int (*api_work_fn)(gdx_db_conn *c, api_ctx *x);

typedef struct {
  const char *method;
  const char *pattern; /* "/api/v1/accounts/{}/disable" */
  const char *action;  /* audit action name ("account.disable"), NULL: reads */
  api_auth auth;
  unsigned roles;      /* who may call (checked before work) */
  const char *schema;  /* schemas/json/<name>.json, or NULL for no body */
  api_work_fn work;
  const char *summary; /* one line, for docs and the route listing test */
} api_route;

struct api_ctx {
  const gdx_broker_config *cfg;
  const api_route *route;
  char params[2][256];    /* {} segments, URL-decoded */
  char query[1024];
  json_t *in;             /* the body, validated */
  char token_hash[65];    /* SHA-256 of the bearer token, "" if none */
  char source[64];        /* client address */
  char request_id[40];
  api_who who;            /* set by authentication */
  const broker_pki *pki;
  /* API_NODE: the client certificate's identity */
  char node_unit[19], node_name[65], node_serial[33];
  long long node_row;
  int poke;               /* set by api_invalidate: drop cached decisions now */
  char inval_kind[16];    /* the last invalidation of this call */
  long long inval_ref;
  /* result */
  int status;
  json_t *out;
  const char *err_code;
  char err_msg[256];
  int commit_on_error;    /* keep the transaction's changes even on a 4xx */
  /* audit record for this call (action NULL: none) */
  const char *audit_action;
  char audit_object[256];
  char audit_actor[65];   /* defaults to who.username */
  char audit_unit[19];    /* defaults to who.unit_code */
  json_t *audit_detail;
};

/* For work functions: set an error result; returns GDX_OK so the wrapper
 * goes on to audit and answer. */
int api_fail(api_ctx *x, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The `name` query parameter as a string (URL-decoded) or def. A value that
 * is malformed or does not fit in n bytes sets a 400 invalid_query result
 * (check x->status). */
const char *api_query(api_ctx *x, const char *name, char *buf, size_t n, const char *def);
long long api_query_int(api_ctx *x, const char *name, long long def, long long min, long long max,
                        int *bad);
/* Runs a query and answers {"items": [row(r, i) for each row]}. */
int api_list(gdx_db_conn *c, api_ctx *x, const char *sql, const gdx_db_param *params, size_t n,
             size_t max_rows, json_t *(*row)(const gdx_db_result *, size_t));
const char *api_role_name(api_role r);
int api_role_parse(const char *s, api_role *out);
/* Appends a hash-chained audit record in the caller's transaction. */
int api_audit_append(gdx_db_conn *c, const char *actor, const char *unit, const char *action,
                     const char *object, const char *purpose, const char *result,
                     const char *source, const char *request_id, const char *detail);

/* Records a change that makes cached access decisions stale (kind:
 * authorization, credential, node, unit, account); every broker drops what
 * it names within its poll interval, this one at once. */
int api_invalidate(gdx_db_conn *c, api_ctx *x, const char *kind, long long ref);

typedef struct api api;
int api_new(gdx_broker *b, const gdx_broker_config *cfg, gdx_db_pool *db, gdx_router *router,
            api **out, char *err, size_t errlen);
void api_free(api *a);
void api_set_exchange(api *a, const broker_pki *pki,
                      void (*poke)(void *, const char *kind, long long ref), void *poke_data);

/* Route tables of the API's parts. */
extern const api_route api_auth_routes[];
extern const size_t api_auth_nroutes;
extern const api_route api_admin_routes[];
extern const size_t api_admin_nroutes;
extern const api_route api_audit_routes[];
extern const size_t api_audit_nroutes;
extern const api_route api_catalog_routes[]; /* catalog/catalog.c */
extern const size_t api_catalog_nroutes;
extern const api_route api_request_routes[]; /* catalog/requests.c */
extern const size_t api_request_nroutes;
extern const api_route api_node_routes[]; /* nodes.c */
extern const size_t api_node_nroutes;
extern const api_route api_credential_routes[]; /* credentials.c */
extern const size_t api_credential_nroutes;
extern const api_route api_ledger_routes[]; /* ledger.c */
extern const size_t api_ledger_nroutes;

/* ledger.c: adds "purge" (resource -> lowest applied position of its
 * subscribers) and "reconcile" (authorizations asked for a run) to a
 * node's heartbeat answer. */
int ledger_heartbeat(gdx_db_conn *c, long long node_row, const char *node_name, json_t *out);
/* The events of a node's heartbeat (a refused file): audit records and alarms. */
int ledger_node_events(gdx_db_conn *c, api_ctx *x, const json_t *events);

#endif
