/* The exchange's door for applications (R-EX-1, R-AUTH-5):
 *   https://<broker>/svc/<resource code>/<path>?<query>
 * with an access token from POST /api/v1/token. All on the loop thread,
 * without a database round trip:
 *   1. the token's HMAC and expiry (authz_token);
 *   2. the authorization's cached entry: the token's credential and its
 *      generation, the consumer unit, the authorization's status and
 *      validity, the resource code;
 *   3. by the authorization's method, one of three decisions:
 *      decide_call    (call)    method and path against the operations of
 *                               the entry's OpenAPI text (openapi.h, parsed
 *                               when the entry was published); the answer is
 *                               cut to the granted data items;
 *      decide_compare (compare) POST compare: the records are compared at
 *                               the provider's node, each counted;
 *      decide_fetch   (fetch)   a table's schema and snapshot, a folder's
 *                               files, chunks and data;
 *      each then within the quota and the token bucket, to a node that is
 *      enrolled and has reported its address;
 *   4. the relay to the provider's node (xcall.h), and the call record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "error.h"
#include "xcall.h"

/* What every call must pass, whatever its method: the credential, the
 * unit, the authorization and its validity, the resource. 1: passed. */
static int admitted(xcall *k, authz_entry *e) {
  long long now = (long long)time(NULL);
  int cred_ok = 0, cred_known = 0;
  for (int i = 0; i < e->ncreds; i++)
    if (e->creds[i].id == k->tok.credential_id) {
      cred_known = 1;
      cred_ok = e->creds[i].ok && e->creds[i].generation == k->tok.generation;
    }
  if (!e->exists || !cred_known || !cred_ok)
    return xcall_refuse(k, 401, "invalid_token", XR_CREDENTIAL,
                        "the credential behind this token is revoked, rotated or unknown"),
           0;
  if (!e->unit_active)
    return xcall_refuse(k, 403, "account_disabled", XR_UNIT, "the consumer unit is disabled"), 0;
  if (!e->active)
    return xcall_refuse(k, 403, "authorization_revoked", XR_AUTHZ, "the authorization is revoked"),
           0;
  if (!e->is_call && strcmp(e->method, "compare") != 0 && strcmp(e->method, "fetch") != 0)
    return xcall_refuse(k, 403, "wrong_method", XR_AUTHZ,
                        "the authorization is for %s; API calls need method call, comparisons "
                        "method compare, snapshots method fetch",
                        e->method),
           0;
  if (now < e->valid_from)
    return xcall_refuse(k, 403, "authorization_not_yet_valid", XR_EXPIRED,
                        "the authorization is not valid yet"),
           0;
  if (now >= e->valid_end)
    return xcall_refuse(k, 403, "authorization_expired", XR_EXPIRED,
                        "the authorization has expired"),
           0;
  if (strcmp(e->code, k->code) != 0)
    return xcall_refuse(k, 403, "wrong_resource", XR_WRONG_RESOURCE,
                        "this token is for resource %s, not %s", e->code, k->code),
           0;
  return 1;
}

/* The operation's verdict (0, 404 or 405) answered; 1: allowed. */
static int operation_ok(xcall *k, authz_entry *e, int verdict) {
  const char *method = gdx_http_req_method(k->req);
  if (verdict == 404)
    return xcall_refuse(k, 404, "path_not_allowed", XR_OPERATION,
                        "/%s is not an operation of resource %s", k->rest, e->code),
           0;
  if (verdict == 405)
    return xcall_refuse(k, 405, "method_not_allowed", XR_OPERATION,
                        "%s /%s is not an operation of resource %s", method, k->rest, e->code),
           0;
  return 1;
}

/* The quota, the token bucket and the provider's node: 1 when the call
 * may go (it then takes a token). */
static int within_budget(xcall *k, authz_entry *e) {
  const gdx_broker_config *cfg = k->x->cfg;
  if (e->quota >= 0 && e->used >= e->quota)
    return xcall_refuse(k, 429, "quota_exhausted", XR_QUOTA,
                        "the authorization's %lld calls are used up", e->quota),
           0;
  if (cfg->proxy_rate_limit_rps > 0) {
    double burst = cfg->proxy_rate_burst > 0 ? (double)cfg->proxy_rate_burst
                                             : (double)cfg->proxy_rate_limit_rps;
    uint64_t t = uv_now(k->x->loop);
    e->tokens += (double)(t - e->tokens_ms) * (double)cfg->proxy_rate_limit_rps / 1000.0;
    if (e->tokens > burst)
      e->tokens = burst;
    e->tokens_ms = t;
    if (e->tokens < 1.0)
      return xcall_refuse(k, 429, "rate_limited", XR_RATE,
                          "more than %lld calls per second for this authorization",
                          cfg->proxy_rate_limit_rps),
             0;
    e->tokens -= 1.0;
  }
  if (!e->node_ok)
    return xcall_refuse(k, 503, "node_unavailable", XR_NODE,
                        "the provider's node %s/%s is not enrolled, revoked or has not "
                        "reported its address",
                        e->provider, e->node_name),
           0;
  return 1;
}

/* An API call: the method and path must be an operation of the entry's
 * OpenAPI text; the answer is filtered to the granted data items. */
static void decide_call(xcall *k, authz_entry *e) {
  if (e->ops == NULL)
    return xcall_refuse(k, 502, "openapi_unreadable", XR_NONE,
                        "the OpenAPI text of resource %s does not read (%s); its provider must "
                        "publish it again",
                        e->code, e->ops_err);
  char path[1024];
  snprintf(path, sizeof(path), "/%s", k->rest);
  if (!operation_ok(k, e, gdx_openapi_match(e->ops, gdx_http_req_method(k->req), path, NULL)) ||
      !within_budget(k, e))
    return;
  e->used++;
  const char *q = gdx_http_req_query(k->req);
  size_t ulen = strlen(e->node_addr) + strlen(e->target) + strlen(k->rest) + strlen(q) + 8;
  char *url = malloc(ulen);
  if (url == NULL)
    return xcall_refuse(k, 503, "busy", XR_NONE, "out of memory");
  snprintf(url, ulen, "%s/r/%s/%s%s%s", e->node_addr, e->target, k->rest, *q ? "?" : "", q);
  int rc = xcall_relay(k, e, url, 1, NULL);
  free(url);
  if (rc != GDX_OK) {
    e->used--;
    xcall_refuse(k, 502, "relay_failed", XR_NONE, "the call could not be started: %s",
                 gdx_strerror(rc));
  }
}

/* A comparison (比对): POST compare, relayed with items= set to the
 * granted items, so only they can be compared, and X-Gdx-Quota-Left, so
 * that a batch larger than what the quota has left is refused there. Each
 * record compared counts as one call (the node reports X-Gdx-Records). */
static void decide_compare(xcall *k, authz_entry *e) {
  int verdict = strcmp(k->rest, "compare") != 0                    ? 404
                : strcmp(gdx_http_req_method(k->req), "POST") != 0 ? 405
                                                                   : 0;
  if (!operation_ok(k, e, verdict) || !within_budget(k, e))
    return;
  k->compare = 1;
  gdx_buf u;
  gdx_buf_init(&u, 16384);
  int rc = gdx_buf_appendf(&u, "%s/r/%s/compare?items=%s", e->node_addr, e->target,
                           e->items_query ? e->items_query : "");
  char left[64] = "";
  if (e->quota >= 0)
    snprintf(left, sizeof(left), "X-Gdx-Quota-Left: %lld", e->quota - e->used);
  if (!rc)
    rc = xcall_relay(k, e, u.data, 0, left[0] ? left : NULL);
  gdx_buf_free(&u);
  if (rc != GDX_OK)
    xcall_refuse(k, 502, "relay_failed", XR_NONE, "the comparison could not be started");
}

/* A fetch (获取): GET schema, snapshot?after=&limit=, files, chunks or data -
 * a provider read, each counted as a call. */
static void decide_fetch(xcall *k, authz_entry *e) {
  int verdict = !xcall_fetch_op(k->rest)                          ? 404
                : strcmp(gdx_http_req_method(k->req), "GET") != 0 ? 405
                                                                  : 0;
  if (!operation_ok(k, e, verdict) || !within_budget(k, e))
    return;
  e->used++;
  snprintf(k->op, sizeof(k->op), "%s", k->rest);
  xcall_read(k, e);
}

static void decide(xcall *k, authz_entry *e) {
  k->r.auth_id = e->id;
  snprintf(k->r.consumer, sizeof(k->r.consumer), "%s", e->consumer);
  if (!admitted(k, e))
    return;
  if (strcmp(e->method, "compare") == 0)
    decide_compare(k, e);
  else if (strcmp(e->method, "fetch") == 0)
    decide_fetch(k, e);
  else
    decide_call(k, e);
}

void svc_handle(gdx_http_req *req, void *data) {
  exchange *x = data;
  xcall *k = xcall_new(x, req);
  if (k == NULL)
    return;
  /* /svc/<category>/<sequence>/<rest> */
  const char *s = gdx_http_req_path(req) + 5;
  const char *slash1 = strchr(s, '/');
  const char *slash2 = slash1 ? strchr(slash1 + 1, '/') : NULL;
  size_t clen = slash2 ? (size_t)(slash2 - s) : strlen(s);
  if (slash1 == NULL || clen >= sizeof(k->code) || clen < 3)
    return xcall_refuse(k, 404, "unknown_resource", XR_NONE,
                        "call /svc/<resource code>/<path>, e.g. /svc/101/000001/persons");
  memcpy(k->code, s, clen);
  k->code[clen] = '\0';
  snprintf(k->r.code, sizeof(k->r.code), "%s", k->code);
  k->rest = slash2 ? slash2 + 1 : "";
  const char *auth = gdx_http_req_header(req, "Authorization");
  if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
    return xcall_refuse(k, 401, "unauthenticated", XR_TOKEN,
                        "send an access token: Authorization: Bearer <token from POST "
                        "/api/v1/token>");
  int vr = authz_token(x->cache, auth + 7, &k->tok);
  if (vr == GDX_ETIMEDOUT)
    return xcall_refuse(k, 401, "token_expired", XR_TOKEN,
                        "the access token has expired; get a new one from POST /api/v1/token");
  if (vr != GDX_OK)
    return xcall_refuse(k, 401, "invalid_token", XR_TOKEN, "the access token is not valid");
  k->r.auth_id = k->tok.authorization_id;
  k->r.cred_id = k->tok.credential_id;
  xcall_with_entry(k, k->tok.authorization_id, decide);
}
