/* The exchange's door for consumer nodes: the node-to-node hop of table
 * and folder subscriptions, on the node listener (mutual TLS):
 *   GET /node/v1/tables/<authorization>/<read>?…
 * read: schema, snapshot, changes, checksums, rowsums (a table); files,
 * chunks, data (a folder).
 *
 * The calling node is known by its certificate, checked as the REST core
 * checks every node (node_auth.h) and the verdict kept on the connection
 * for two seconds. The authorization must be the node's unit's, active,
 * valid now and for subscribe (fetch: schema, snapshot, files, chunks,
 * data). The read goes to the provider's node with items= set to the
 * granted items, whatever the consumer asked, so other columns never leave
 * the provider; each read is a call record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "log.h"
#include "num.h"
#include "xcall.h"

static int table_op(const char *op) {
  return strcmp(op, "changes") == 0 || strcmp(op, "checksums") == 0 || strcmp(op, "rowsums") == 0;
}

static void decide_read(xcall *k, authz_entry *e) {
  long long now = (long long)time(NULL);
  k->r.auth_id = e->id;
  snprintf(k->r.consumer, sizeof(k->r.consumer), "%s", e->consumer);
  snprintf(k->r.code, sizeof(k->r.code), "%s", e->code);
  if (!e->exists)
    return xcall_refuse(k, 404, "unknown_authorization", XR_AUTHZ, "no authorization %lld", e->id);
  if (strcmp(e->consumer, k->node.unit) != 0)
    return xcall_refuse(k, 403, "not_your_authorization", XR_AUTHZ,
                        "authorization %lld is not of unit %s", e->id, k->node.unit);
  if (!e->unit_active)
    return xcall_refuse(k, 403, "account_disabled", XR_UNIT, "the consumer unit is disabled");
  if (!e->active)
    return xcall_refuse(k, 403, "authorization_revoked", XR_AUTHZ, "the authorization is revoked");
  if (strcmp(e->method, "subscribe") != 0 && strcmp(e->method, "fetch") != 0)
    return xcall_refuse(k, 403, "wrong_method", XR_AUTHZ,
                        "the authorization is for %s, not for reading a table", e->method);
  if (strcmp(e->method, "fetch") == 0 && !xcall_fetch_op(k->op))
    return xcall_refuse(k, 403, "wrong_method", XR_AUTHZ,
                        "authorization %lld is for fetch: a snapshot of the table or the "
                        "folder's files, not its %s",
                        e->id, k->op);
  if (now < e->valid_from || now >= e->valid_end)
    return xcall_refuse(k, 403, "authorization_expired", XR_EXPIRED,
                        "the authorization is not valid now");
  if (!e->node_ok)
    return xcall_refuse(k, 503, "node_unavailable", XR_NODE,
                        "the provider's node %s/%s is not enrolled, revoked or has not "
                        "reported its address",
                        e->provider, e->node_name);
  xcall_read(k, e);
}

static void read_with_entry(xcall *k) {
  long long auth = 0;
  gdx_num_parse_n(k->rest, strcspn(k->rest, "/"), 1, GDX_DB_ID_MAX, &auth); /* checked */
  k->r.auth_id = auth;
  xcall_with_entry(k, auth, decide_read);
}

/* ---- the node's certificate, checked on a database worker ---- */

typedef struct {
  xcall *k;
  node_check nc;
} check_job;

static int check_work(gdx_db_conn *c, void *arg) {
  check_job *j = arg;
  return node_check_cert(c, &j->k->node, &j->nc);
}

static void check_done(int status, void *arg) {
  check_job *j = arg;
  xcall *k = j->k;
  node_check nc = j->nc;
  free(j);
  exchange_job_done(k->x);
  if (k->req == NULL) { /* the node went away meanwhile */
    free(k);
    return;
  }
  gdx_http_req_on(k->req, NULL, NULL, NULL);
  gdx_http_req_set_data(k->req, NULL);
  if (status != GDX_OK)
    return xcall_refuse(k, 503, "database_unavailable", XR_NONE, "the node could not be checked");
  node_verdict_keep(k->req, nc.status == 0, uv_now(k->x->loop));
  if (nc.status) {
    gdx_log_warn("proxy", "table read refused to node %s/%s: %s", k->node.unit, k->node.node,
                 nc.message);
    return xcall_refuse(k, nc.status, nc.code, XR_NONE, "%s", nc.message);
  }
  read_with_entry(k);
}

static void check_abort(gdx_http_req *req) {
  xcall *k = gdx_http_req_get_data(req);
  k->req = NULL;
}

void node_hop_handle(gdx_http_req *req, void *data) {
  exchange *x = data;
  xcall *k = xcall_new(x, req);
  if (k == NULL)
    return;
  /* /node/v1/tables/<authorization>/<read> */
  const char *s = gdx_http_req_path(req) + strlen("/node/v1/tables/");
  const char *slash = strchr(s, '/');
  long long auth;
  if (slash == NULL || gdx_num_parse_n(s, (size_t)(slash - s), 1, GDX_DB_ID_MAX, &auth) ||
      (!xcall_fetch_op(slash + 1) && !table_op(slash + 1)))
    return xcall_refuse(k, 404, "not_found", XR_NONE,
                        "read /node/v1/tables/<authorization>/schema, snapshot, changes, "
                        "checksums or rowsums (a table), files, chunks or data (a folder)");
  snprintf(k->op, sizeof(k->op), "%s", slash + 1);
  k->rest = s;
  if (strcmp(gdx_http_req_method(req), "GET") != 0)
    return xcall_refuse(k, 405, "method_not_allowed", XR_NONE, "table reads are GET");
  if (node_identity_of(req, &k->node) != GDX_OK)
    return xcall_refuse(k, 401, "certificate_required", XR_NONE,
                        "table reads are for front-end nodes with a platform certificate");
  int verdict = node_verdict(req, uv_now(x->loop));
  if (verdict < 0)
    return xcall_refuse(k, 403, "node_refused", XR_NONE, "this connection's node was refused");
  if (verdict > 0) {
    read_with_entry(k);
    return;
  }
  check_job *j = calloc(1, sizeof(*j));
  if (j == NULL)
    return xcall_refuse(k, 503, "busy", XR_NONE, "out of memory");
  j->k = k;
  gdx_http_req_set_data(req, k);
  gdx_http_req_on(req, NULL, NULL, check_abort);
  if (gdx_db_submit(x->db, check_work, check_done, j) != GDX_OK) {
    gdx_http_req_on(req, NULL, NULL, NULL);
    gdx_http_req_set_data(req, NULL);
    free(j);
    return xcall_refuse(k, 503, "busy", XR_NONE, "the database queue is full");
  }
  x->node_checks++;
}
