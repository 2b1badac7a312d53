#include "xcall.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "num.h"
#include "relay.h"
#include "response_filter.h"

static int64_t wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t now_ms(const exchange *x) { return uv_now(x->loop); }

static void record(exchange *x, const call_record *r) {
  if (r->status >= 100 && r->status < 600)
    x->calls_by_class[r->status / 100]++;
  call_record_add(x->records, r);
}

xcall *xcall_new(exchange *x, gdx_http_req *req) {
  xcall *k = calloc(1, sizeof(*k));
  if (k == NULL) {
    gdx_relay_error(req, 503, "broker", "busy", "out of memory");
    return NULL;
  }
  k->x = x;
  k->req = req;
  k->start_ms = now_ms(x);
  call_record *r = &k->r;
  r->ts_us = wall_us();
  r->units = 1;
  gdx_str_copy(r->request_id, sizeof(r->request_id), gdx_http_req_id(req));
  gdx_str_copy(r->method, sizeof(r->method), gdx_http_req_method(req));
  gdx_str_copy(r->path, sizeof(r->path), gdx_http_req_path(req));
  gdx_str_copy(r->source, sizeof(r->source), gdx_http_req_remote_addr(req));
  char *colon = strrchr(r->source, ':');
  if (colon)
    *colon = '\0'; /* the address, not the ephemeral port */
  return k;
}

void xcall_refuse(xcall *k, int status, const char *code, int reason, const char *fmt, ...) {
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (reason >= 0 && reason < XR_COUNT)
    k->x->refused[reason]++;
  const char *type = reason == XR_NODE ? "node" : status >= 500 ? "broker" : "client";
  if (status == 429 && reason == XR_RATE)
    gdx_http_add_header(k->req, "Retry-After", "1");
  gdx_http_req_set_data(k->req, NULL);
  gdx_http_req_on(k->req, NULL, NULL, NULL);
  gdx_relay_error(k->req, status, type, code, "%s", msg);
  if (k->paused)
    gdx_http_req_resume(k->req); /* the rest of the body is read and dropped */
  call_record *r = &k->r;
  r->status = status;
  r->units = 0; /* refused: nothing counted */
  gdx_str_copy(r->error_type, sizeof(r->error_type), type);
  gdx_str_copy(r->error_code, sizeof(r->error_code), code);
  r->ms_total = (int)(now_ms(k->x) - k->start_ms);
  r->ms_node = r->ms_upstream = -1;
  record(k->x, r);
  free(k);
}

/* ------------------------------------------------------------------ */
/* waiting for the authorization's entry                               */

static void waiter_abort(gdx_http_req *req) {
  xcall *k = gdx_http_req_get_data(req);
  if (k)
    k->req = NULL; /* freed when the entry is ready */
}

static void entry_ready(authz_waiter *w, authz_entry *e, int status) {
  xcall *k = (xcall *)((char *)w - offsetof(xcall, w));
  if (k->req == NULL) { /* the client went away meanwhile */
    free(k);
    return;
  }
  if (status == GDX_OK) {
    k->decide(k, e);
  } else if (status == GDX_EBUSY || status == GDX_ENOMEM) {
    gdx_http_add_header(k->req, "Retry-After", "1");
    xcall_refuse(k, 503, "busy", XR_NONE, "the broker is busy; try again shortly");
  } else {
    xcall_refuse(k, 503, "busy", XR_NONE,
                 "the broker cannot check the authorization now; try again shortly");
  }
}

void xcall_with_entry(xcall *k, long long auth_id, xcall_decide_fn decide) {
  authz_entry *e = authz_fresh(k->x->cache, auth_id);
  if (e) {
    decide(k, e);
    return;
  }
  /* paused before the load starts: one that fails at once answers through
   * entry_ready */
  k->decide = decide;
  k->w.ready = entry_ready;
  gdx_http_req *req = k->req;
  gdx_http_req_set_data(req, k);
  gdx_http_req_on(req, NULL, NULL, waiter_abort);
  gdx_http_req_pause(req); /* the body waits for the decision */
  k->paused = 1;
  authz_wait(k->x->cache, auth_id, &k->w);
}

/* ------------------------------------------------------------------ */
/* the relay to the provider's node                                    */

static int want_buffer(const char *ctype, void *data) {
  (void)ctype;
  xcall *k = data;
  authz_entry *e = authz_find(k->x->cache, k->r.auth_id);
  return e != NULL && e->ndeny > 0;
}

static int transform(gdx_buf *body, const char *ctype, void *data, char *why, size_t n) {
  xcall *k = data;
  authz_entry *e = authz_find(k->x->cache, k->r.auth_id);
  if (e == NULL && body->len > 0) {
    snprintf(why, n, "the authorization changed during the call");
    return -1;
  }
  return response_filter_json(body, ctype, e ? e->deny : NULL, e ? e->ndeny : 0, why, n);
}

/* Server-Timing: where the time went (the node's own part, the upstream's). */
static void on_head(gdx_http_req *req, int status, const gdx_relay_result *res, void *data) {
  (void)status;
  (void)data;
  char st[160];
  if (res->peer_upstream_ms >= 0)
    snprintf(st, sizeof(st), "node;dur=%llu, upstream;dur=%ld",
             (unsigned long long)(res->ms_head > (uint64_t)res->peer_upstream_ms
                                      ? res->ms_head - (uint64_t)res->peer_upstream_ms
                                      : 0),
             res->peer_upstream_ms);
  else
    snprintf(st, sizeof(st), "node;dur=%llu", (unsigned long long)res->ms_head);
  gdx_http_add_header(req, "Server-Timing", st);
}

static void on_finish(const gdx_relay_result *res, void *data) {
  xcall *k = data;
  call_record *r = &k->r;
  r->forwarded = 1;
  r->status = res->status;
  gdx_str_copy(r->error_type, sizeof(r->error_type), res->error_type);
  gdx_str_copy(r->error_code, sizeof(r->error_code), res->error_code);
  r->bytes_in = res->bytes_in;
  r->bytes_out = res->bytes_out;
  r->ms_total = (int)(now_ms(k->x) - k->start_ms);
  r->ms_upstream = (int)res->peer_upstream_ms;
  r->ms_node = res->ms_head && res->peer_upstream_ms >= 0
                   ? (int)(res->ms_head - (uint64_t)res->peer_upstream_ms)
                   : (res->ms_head ? (int)res->ms_head : -1);
  if (k->compare) { /* the records compared, as the provider's node counted them */
    r->units = res->status == 200 && res->peer_records > 0 ? (int)res->peer_records : 0;
    authz_entry *e = authz_find(k->x->cache, r->auth_id);
    if (e)
      e->used += r->units;
  }
  record(k->x, r);
  free(k);
}

int xcall_relay(xcall *k, authz_entry *e, const char *url, int filter, const char *extra) {
  exchange *x = k->x;
  if (e->fwd[0][0] == '\0') {
    snprintf(e->fwd[0], sizeof(e->fwd[0]), "X-Gdx-Consumer-Unit: %s", e->consumer);
    snprintf(e->fwd[1], sizeof(e->fwd[1]), "X-Gdx-Authorization: %lld", e->id);
    snprintf(e->fwd[2], sizeof(e->fwd[2]), "X-Gdx-Resource: %s", e->code);
  }
  const char *headers[] = {e->fwd[0], e->fwd[1], e->fwd[2], extra, NULL};
  static const char *const drop[] = {"Authorization", "X-Gdx-*", NULL};
  gdx_relay_opts o = {
      .client = x->httpc,
      .url = url,
      .headers = headers,
      .drop_headers = drop,
      .ca_file = x->pki->ca_file,
      .cert_file = x->pki->cert_file,
      .key_file = x->pki->key_file,
      .pinned_key = e->node_pin,
      .connect_timeout_ms = (long)x->cfg->proxy_connect_timeout_ms,
      .head_timeout_ms = (long)x->cfg->proxy_head_timeout_ms,
      .idle_timeout_s = (long)x->cfg->proxy_idle_timeout_s,
      .next_hop = "node",
      .native = 1, /* gdx's own keep-alive engine: the hop is gdx to gdx */
      .buffer_max = filter ? (size_t)x->cfg->proxy_filter_max_bytes : 0,
      .want_buffer = filter ? want_buffer : NULL,
      .transform = filter ? transform : NULL,
      .on_head = on_head,
      .on_finish = on_finish,
      .data = k,
  };
  gdx_http_req *req = k->req;
  int paused = k->paused;
  int rc = gdx_relay_start(req, &o);
  if (rc == GDX_OK && paused)
    gdx_http_req_resume(req); /* k may be gone after this */
  return rc;
}

/* ------------------------------------------------------------------ */
/* provider reads                                                      */

int xcall_fetch_op(const char *op) {
  static const char *const ops[] = {"schema", "snapshot", "files", "chunks", "data", NULL};
  for (int i = 0; ops[i]; i++)
    if (strcmp(op, ops[i]) == 0)
      return 1;
  return 0;
}

/* The read's parameters: numbers (checked, whole) and texts (table keys, a
 * file's path, version and listing point), passed on URL-encoded. */
static const char *const num_params[] = {"limit", "chunk", "position", "wait_ms", "offset"};
static const char *const text_params[] = {"after", "upto", "path", "sha256", "since"};
#define NPARAMS 5
#define WAIT_MS 3 /* num_params[WAIT_MS] */

void xcall_read(xcall *k, authz_entry *e) {
  const char *q = gdx_http_req_query(k->req);
  char num[NPARAMS][24], text[NPARAMS][2048];
  long long wait = -1;
  int bad = 0;
  for (int i = 0; i < NPARAMS; i++) {
    text[i][0] = num[i][0] = '\0';
    bad |= gdx_http_query_param(q, text_params[i], text[i], sizeof(text[i])) < 0;
    long long v = 0;
    int got = gdx_http_query_param(q, num_params[i], num[i], sizeof(num[i]));
    if (got < 0 || (num[i][0] && gdx_num_parse(num[i], 0, 999999999999999999LL, &v) != GDX_OK))
      bad = 1;
    if (i == WAIT_MS && num[i][0])
      wait = v;
  }
  if (bad)
    return xcall_refuse(k, 400, "invalid_query", XR_NONE,
                        "after=, upto=, path=, sha256=, since=, limit=, chunk=, position=, "
                        "wait_ms= or offset= is malformed");
  long long wait_max = k->x->cfg->proxy_head_timeout_ms - 5000;
  if (wait > wait_max) /* a long poll ends before the broker gives up on the head */
    snprintf(num[WAIT_MS], sizeof(num[WAIT_MS]), "%lld", wait_max > 0 ? wait_max : 0);
  gdx_buf u;
  gdx_buf_init(&u, 16384);
  int rc = gdx_buf_appendf(&u, "%s/r/%s/%s?items=%s", e->node_addr, e->target, k->op,
                           e->items_query ? e->items_query : "");
  for (int i = 0; i < NPARAMS; i++)
    if (!rc && num[i][0])
      rc = gdx_buf_appendf(&u, "&%s=%s", num_params[i], num[i]);
  for (int i = 0; i < NPARAMS; i++)
    if (!rc && text[i][0]) {
      rc = gdx_buf_appendf(&u, "&%s=", text_params[i]);
      if (!rc)
        rc = gdx_url_encode(&u, text[i]);
    }
  if (rc) {
    gdx_buf_free(&u);
    return xcall_refuse(k, 400, "invalid_query", XR_NONE, "the read is too long");
  }
  rc = xcall_relay(k, e, u.data, 0, NULL);
  gdx_buf_free(&u);
  if (rc != GDX_OK)
    xcall_refuse(k, 502, "relay_failed", XR_NODE, "the read could not be started");
}
