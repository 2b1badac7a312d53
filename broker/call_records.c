#include "call_records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "metrics.h"

#define RECORDS_MAX 200000 /* queued at most; beyond, records are dropped */
#define BATCH_MAX 2000     /* written in one job */

struct call_records {
  uv_loop_t *loop;
  const gdx_broker_config *cfg;
  gdx_db_pool *db;
  uv_timer_t timer;
  call_record *recs; /* the queue, oldest first */
  size_t nrecs, caprecs;
  call_record *inflight; /* the batch being written */
  size_t ninflight;
  int busy, stopping, timer_closed;
  void (*stop_cb)(void *);
  void *stop_data;
  uint64_t written, dropped;
};

void call_record_add(call_records *p, const call_record *r) {
  if (p->nrecs == p->caprecs) {
    if (p->caprecs >= RECORDS_MAX) {
      p->dropped++;
      return;
    }
    size_t cap = p->caprecs ? p->caprecs * 2 : 1024;
    call_record *n = realloc(p->recs, cap * sizeof(call_record));
    if (n == NULL) {
      p->dropped++;
      return;
    }
    p->recs = n;
    p->caprecs = cap;
  }
  p->recs[p->nrecs++] = *r;
}

long long call_records_pending(call_records *p, long long auth) {
  long long n = 0;
  for (size_t i = 0; i < p->nrecs; i++)
    n += p->recs[i].auth_id == auth && p->recs[i].forwarded ? p->recs[i].units : 0;
  for (size_t i = 0; i < p->ninflight; i++)
    n += p->inflight[i].auth_id == auth && p->inflight[i].forwarded ? p->inflight[i].units : 0;
  return n;
}

/* ------------------------------------------------------------------ */
/* writing                                                             */

#define REC_COLS 19
static const char *insert_sql(size_t rows, char *buf, size_t n) {
  size_t len = (size_t)snprintf(buf, n,
                                "INSERT INTO api_calls (ts, request_id, authorization_id, "
                                "credential_id, consumer_unit, resource_code, method, path, "
                                "status, error_type, error_code, bytes_in, bytes_out, ms_total, "
                                "ms_node, ms_upstream, source, id, units) VALUES ");
  for (size_t i = 0; i < rows && len + 80 < n; i++)
    len += (size_t)snprintf(buf + len, n - len,
                            "%s(FROM_UNIXTIME(?/1000000),?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            i ? "," : "");
  return buf;
}

static void rec_params(const call_record *r, gdx_db_param *p) {
  p[0] = GDX_DB_P_INT(r->ts_us);
  p[1] = GDX_DB_P_STR(r->request_id);
  p[2] = r->auth_id ? GDX_DB_P_INT(r->auth_id) : GDX_DB_P_NULL;
  p[3] = r->cred_id ? GDX_DB_P_INT(r->cred_id) : GDX_DB_P_NULL;
  p[4] = GDX_DB_P_STR(r->consumer);
  p[5] = GDX_DB_P_STR(r->code);
  p[6] = GDX_DB_P_STR(r->method);
  p[7] = GDX_DB_P_STR(r->path);
  p[8] = GDX_DB_P_INT(r->status);
  p[9] = GDX_DB_P_STR(r->error_type);
  p[10] = GDX_DB_P_STR(r->error_code);
  p[11] = GDX_DB_P_INT(r->bytes_in);
  p[12] = GDX_DB_P_INT(r->bytes_out);
  p[13] = GDX_DB_P_INT(r->ms_total);
  p[14] = r->ms_node >= 0 ? GDX_DB_P_INT(r->ms_node) : GDX_DB_P_NULL;
  p[15] = r->ms_upstream >= 0 ? GDX_DB_P_INT(r->ms_upstream) : GDX_DB_P_NULL;
  p[16] = GDX_DB_P_STR(r->source);
  p[17] = GDX_DB_P_NULL; /* id: AUTO_INCREMENT */
  p[18] = GDX_DB_P_INT(r->units);
}

static int flush_work(gdx_db_conn *c, void *arg) {
  call_records *p = arg; /* its inflight batch is the worker's until flush_done */
  int rc = gdx_db_begin(c);
  /* few, large statements: the server's cost is mostly per statement */
  static const size_t sizes[] = {250, 50, 10, 1};
  gdx_db_param *params = calloc(250 * REC_COLS, sizeof(gdx_db_param));
  size_t sqlmax = 400 + 250 * 72;
  char *sql = malloc(sqlmax);
  if (params == NULL || sql == NULL)
    rc = GDX_ENOMEM;
  size_t i = 0;
  for (int s = 0; !rc && s < 4; s++) {
    while (!rc && p->ninflight - i >= sizes[s]) {
      for (size_t k = 0; k < sizes[s]; k++)
        rec_params(&p->inflight[i + k], params + k * REC_COLS);
      rc = gdx_db_exec(c, insert_sql(sizes[s], sql, sqlmax), params, sizes[s] * REC_COLS, NULL,
                       NULL);
      i += sizes[s];
    }
  }
  free(params);
  free(sql);
  /* usage: one upsert per authorization in the batch */
  for (size_t a = 0; !rc && a < p->ninflight; a++) {
    long long id = p->inflight[a].auth_id;
    int seen = id == 0 || !p->inflight[a].forwarded;
    for (size_t b = 0; b < a && !seen; b++)
      seen = p->inflight[b].auth_id == id && p->inflight[b].forwarded;
    if (seen)
      continue;
    long long calls = 0, bin = 0, bout = 0;
    for (size_t b = a; b < p->ninflight; b++)
      if (p->inflight[b].auth_id == id && p->inflight[b].forwarded) {
        calls += p->inflight[b].units;
        bin += (long long)p->inflight[b].bytes_in;
        bout += (long long)p->inflight[b].bytes_out;
      }
    gdx_db_param up[] = {GDX_DB_P_INT(id), GDX_DB_P_INT(calls), GDX_DB_P_INT(bin),
                         GDX_DB_P_INT(bout)};
    rc = gdx_db_exec(c,
                     "INSERT INTO authorization_usage (authorization_id, calls, bytes_in, "
                     "bytes_out, last_call_at) VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6)) "
                     "ON DUPLICATE KEY UPDATE calls = calls + VALUES(calls), bytes_in = "
                     "bytes_in + VALUES(bytes_in), bytes_out = bytes_out + VALUES(bytes_out), "
                     "last_call_at = VALUES(last_call_at)",
                     up, 4, NULL, NULL);
  }
  if (rc) {
    gdx_log_warn("records", "writing %zu call records failed (kept for the next try): %s",
                 p->ninflight, gdx_db_error(c));
    gdx_db_rollback(c);
    return rc;
  }
  return gdx_db_commit(c);
}

static void maybe_stopped(call_records *p);
static void flush_now(call_records *p);

/* The batch in flight back in front of the queue, oldest first. */
static void requeue(call_records *p) {
  size_t n = p->ninflight + p->nrecs;
  call_record *all = malloc((n ? n : 1) * sizeof(call_record));
  if (all) {
    memcpy(all, p->inflight, p->ninflight * sizeof(call_record));
    memcpy(all + p->ninflight, p->recs, p->nrecs * sizeof(call_record));
    free(p->recs);
    p->recs = all;
    p->nrecs = p->caprecs = n;
  } else {
    p->dropped += p->ninflight;
  }
  free(p->inflight);
  p->inflight = NULL;
  p->ninflight = 0;
}

static void flush_done(int status, void *arg) {
  call_records *p = arg;
  p->busy = 0;
  if (status == GDX_OK) {
    p->written += p->ninflight;
    free(p->inflight);
    p->inflight = NULL;
    p->ninflight = 0;
  } else {
    requeue(p);
  }
  if (!p->stopping)
    return;
  if (status == GDX_OK && p->nrecs > 0) {
    flush_now(p);
    return;
  }
  if (p->nrecs > 0) { /* the database is gone: stopping must not hang on it */
    gdx_log_error("records", "%zu call records could not be written before stopping: %s", p->nrecs,
                  gdx_strerror(status));
    p->dropped += p->nrecs;
    p->nrecs = 0;
  }
  maybe_stopped(p);
}

static void flush_now(call_records *p) {
  if (p->inflight || p->nrecs == 0)
    return;
  size_t n = p->nrecs < BATCH_MAX ? p->nrecs : BATCH_MAX;
  p->inflight = malloc(n * sizeof(call_record));
  if (p->inflight == NULL)
    return;
  memcpy(p->inflight, p->recs, n * sizeof(call_record));
  memmove(p->recs, p->recs + n, (p->nrecs - n) * sizeof(call_record));
  p->nrecs -= n;
  p->ninflight = n;
  if (gdx_db_submit(p->db, flush_work, flush_done, p) == GDX_OK) {
    p->busy = 1;
    return;
  }
  requeue(p); /* the database queue is full: on the next tick */
}

static void on_flush_timer(uv_timer_t *t) { flush_now(t->data); }

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

int call_records_new(uv_loop_t *loop, const gdx_broker_config *cfg, gdx_db_pool *db,
                     call_records **out) {
  call_records *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return GDX_ENOMEM;
  p->loop = loop;
  p->cfg = cfg;
  p->db = db;
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  uv_timer_start(&p->timer, on_flush_timer, (uint64_t)cfg->proxy_records_flush_ms,
                 (uint64_t)cfg->proxy_records_flush_ms);
  *out = p;
  return GDX_OK;
}

static void on_timer_closed(uv_handle_t *h) {
  call_records *p = h->data;
  p->timer_closed = 1;
  maybe_stopped(p);
}

static void maybe_stopped(call_records *p) {
  if (!p->stopping || p->busy || p->nrecs > 0 || !p->timer_closed)
    return;
  void (*cb)(void *) = p->stop_cb;
  void *data = p->stop_data;
  free(p->recs);
  free(p);
  if (cb)
    cb(data);
}

void call_records_stop(call_records *p, void (*cb)(void *), void *data) {
  p->stopping = 1;
  p->stop_cb = cb;
  p->stop_data = data;
  uv_timer_stop(&p->timer);
  if (p->nrecs > 0) {
    gdx_log_info("records", "writing %zu queued call records before stopping", p->nrecs);
    flush_now(p);
  }
  if (p->nrecs > 0 && !p->busy) { /* could not even queue the job: give up on them */
    gdx_log_error("records", "%zu call records could not be written before stopping", p->nrecs);
    p->dropped += p->nrecs;
    p->nrecs = 0;
  }
  uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

void call_records_metrics(call_records *p, gdx_buf *out) {
  gdx_metrics_header(out, "gdx_proxy_records_total", "counter",
                     "Call records written to the database, or dropped (queue full).");
  gdx_buf_appendf(out, "gdx_proxy_records_total{result=\"written\"} %llu\n",
                  (unsigned long long)p->written);
  gdx_buf_appendf(out, "gdx_proxy_records_total{result=\"dropped\"} %llu\n",
                  (unsigned long long)p->dropped);
  gdx_metrics_header(out, "gdx_proxy_records_queued", "gauge", "Call records not yet written.");
  gdx_buf_appendf(out, "gdx_proxy_records_queued %zu\n", p->nrecs + p->ninflight);
}
