#include "exchange.h"

#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "metrics.h"
#include "xcall.h"

static const char *const reason_names[XR_COUNT] = {
    "token", "credential", "authorization", "expired", "wrong_resource",
    "quota", "rate",       "operation",     "node",    "unit"};

static long long pending_units(void *data, long long auth) {
  return call_records_pending(data, auth);
}

int exchange_new(uv_loop_t *loop, const gdx_broker_config *cfg, const broker_pki *pki,
                 gdx_db_pool *db, gdx_router *router, exchange **out, char *err, size_t errlen) {
  exchange *x = calloc(1, sizeof(*x));
  if (x == NULL)
    return GDX_ENOMEM;
  x->loop = loop;
  x->cfg = cfg;
  x->pki = pki;
  x->db = db;
  int rc = gdx_httpc_new(loop, &x->httpc);
  if (!rc)
    rc = call_records_new(loop, cfg, db, &x->records);
  authz_cache_opts co = {.loop = loop,
                         .cfg = cfg,
                         .pki = pki,
                         .db = db,
                         .pending_units = pending_units,
                         .pending_data = x->records};
  if (!rc)
    rc = authz_cache_new(&co, &x->cache);
  if (!rc)
    rc = gauges_new(loop, cfg, db, &x->gauges);
  if (rc) {
    snprintf(err, errlen, "cannot start the exchange: %s", gdx_strerror(rc));
    *out = x; /* exchange_stop() frees what was made */
    return rc;
  }
  gdx_router_add(router, "*", "/svc/*", svc_handle, x);
  gdx_router_add(router, "*", "/node/v1/tables/*", node_hop_handle, x);
  *out = x;
  return GDX_OK;
}

void exchange_poke(void *x, const char *kind, long long ref) {
  authz_invalidate(((exchange *)x)->cache, kind, ref);
}

/* Stopping goes in order, so that nothing records into what is gone: the
 * cache (whose loads may still answer waiting calls) and the node checks
 * first, then the call records are written, then the gauges stop. Each
 * part stays reachable until it has stopped. */
static void stop_next(exchange *x);

static void part_stopped(void *data) {
  exchange *x = data;
  if (x->cache_stopping)
    x->cache = NULL, x->cache_stopping = 0;
  else if (x->records)
    x->records = NULL;
  else
    x->gauges = NULL;
  x->pending_stops--;
  stop_next(x);
}

static void stop_next(exchange *x) {
  if (x->pending_stops > 0 || x->node_checks > 0)
    return;
  x->pending_stops++;
  if (x->cache) {
    x->cache_stopping = 1;
    authz_cache_stop(x->cache, part_stopped, x);
  } else if (x->records) {
    call_records_stop(x->records, part_stopped, x);
  } else if (x->gauges) {
    gauges_stop(x->gauges, part_stopped, x);
  } else {
    if (x->httpc)
      gdx_httpc_close(x->httpc);
    void (*cb)(void *) = x->stop_cb;
    void *data = x->stop_data;
    free(x);
    if (cb)
      cb(data);
  }
}

void exchange_job_done(exchange *x) {
  x->node_checks--;
  if (x->stopping)
    stop_next(x);
}

void exchange_stop(exchange *x, void (*cb)(void *), void *data) {
  x->stop_cb = cb;
  x->stop_data = data;
  x->stopping = 1;
  stop_next(x);
}

void exchange_metrics(exchange *x, gdx_buf *out) {
  gdx_metrics_header(out, "gdx_proxy_calls_total", "counter",
                     "API calls through the broker by status class.");
  for (int i = 1; i < 6; i++)
    gdx_buf_appendf(out, "gdx_proxy_calls_total{class=\"%dxx\"} %llu\n", i,
                    (unsigned long long)x->calls_by_class[i]);
  gdx_metrics_header(out, "gdx_proxy_refused_total", "counter",
                     "Calls the broker refused, by reason.");
  for (int i = 0; i < XR_COUNT; i++)
    gdx_buf_appendf(out, "gdx_proxy_refused_total{reason=\"%s\"} %llu\n", reason_names[i],
                    (unsigned long long)x->refused[i]);
  authz_cache_metrics(x->cache, out);
  call_records_metrics(x->records, out);
  gdx_metrics_header(out, "gdx_proxy_node_connections_total", "counter",
                     "Connections opened to nodes (the rest of the calls reused one).");
  gdx_buf_appendf(out, "gdx_proxy_node_connections_total %ld\n",
                  x->httpc ? gdx_httpc_connects(x->httpc) : 0L);
  gauges_metrics(x->gauges, out);
}
