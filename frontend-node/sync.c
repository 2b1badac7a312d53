#include "sync.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "http.h"
#include "log.h"
#include "tsync.h"

#define READ_MAX (64u << 20) /* one batch's JSON */

typedef enum { S_SCHEMA, S_READ } phase; /* the schema, then pages and batches */

struct gdx_sync {
  const gdx_sync_env *env;
  gdx_sync_opts o;
  uv_timer_t timer;
  phase ph;
  int busy;               /* a read or a database job in flight */
  int stopping, timer_closed;
  void (*stop_cb)(void *);
  void *stop_data;
  json_t *schema;
  int prepared;           /* the target table exists (this run) */
  gdx_tsync_target t;
  gdx_tsync_state st;
  int have_state;
  gdx_buf body;
  /* the next snapshot page, read while the last one is applied */
  gdx_buf abody;
  json_t *ahead;
  char ahead_after[2048];
  int ahead_busy, want_ahead;
  uint64_t backoff_ms;
  char last_error[300];
  /* for /metrics */
  uint64_t batches, errors;
};

typedef struct sync_job_ {
  gdx_sync *s;
  json_t *batch;
  int kind;               /* 0 load, 1 page, 2 changes */
  int prepare;
  char after[2048];
  long long after_pos;
  gdx_tsync_state st;
  int found;
  char err[300];
} sync_job;

static void next_step(gdx_sync *s);
static void submit(gdx_sync *s, struct sync_job_ *j);
static int take_ahead(gdx_sync *s);
static void apply_async(gdx_sync *s, struct sync_job_ *job);

static void maybe_stopped(gdx_sync *s) {
  if (!s->stopping || s->busy || s->ahead_busy || !s->timer_closed)
    return;
  json_decref(s->ahead);
  gdx_buf_free(&s->abody);
  void (*cb)(void *) = s->stop_cb;
  void *data = s->stop_data;
  json_decref(s->schema);
  gdx_buf_free(&s->body);
  free(s);
  if (cb)
    cb(data);
}

static void on_timer(uv_timer_t *t) { next_step(t->data); }

static void later(gdx_sync *s, uint64_t ms) {
  if (!s->stopping)
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

static void fail(gdx_sync *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(gdx_sync *s, const char *fmt, ...) {
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (strcmp(msg, s->last_error) != 0)
    gdx_log_warn("sync", "subscription %lld: %s", s->o.authorization, msg);
  snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
  s->errors++;
  s->backoff_ms = s->backoff_ms ? (s->backoff_ms * 2 > 30000 ? 30000 : s->backoff_ms * 2) : 1000;
  s->ph = S_SCHEMA; /* the schema may have changed too */
  later(s, s->backoff_ms);
}

/* ------------------------------------------------------------------ */
/* database jobs                                                       */

static int job_work(gdx_db_conn *c, void *arg) {
  sync_job *j = arg;
  gdx_sync *s = j->s;
  int rc = GDX_OK;
  if (j->prepare)
    rc = gdx_tsync_prepare(c, &s->t, s->schema, j->err, sizeof(j->err));
  if (!rc && j->kind == 1)
    rc = gdx_tsync_apply_page(c, &s->t, j->after, j->batch, j->err, sizeof(j->err));
  if (!rc && j->kind == 2)
    rc = gdx_tsync_apply_changes(c, &s->t, j->after_pos, j->batch, j->err, sizeof(j->err));
  if (rc && rc != GDX_ECONFLICT)
    return rc;
  int lr = gdx_tsync_load(c, s->t.sub, &j->st);
  j->found = lr == GDX_OK;
  if (lr && lr != GDX_ENOTFOUND) {
    snprintf(j->err, sizeof(j->err), "reading the subscription's state: %s", gdx_db_error(c));
    return lr;
  }
  return rc;
}

static void job_done(int status, void *arg) {
  sync_job *j = arg;
  gdx_sync *s = j->s;
  s->busy = 0;
  size_t applied = j->batch ? json_array_size(json_object_get(j->batch, j->kind == 1 ? "rows"
                                                                                   : "changes"))
                            : 0;
  int more = j->batch && (j->kind == 1 || json_is_true(json_object_get(j->batch, "more")));
  int kind = j->kind;
  json_decref(j->batch);
  if (s->stopping) {
    free(j);
    maybe_stopped(s);
    return;
  }
  if (j->found) {
    s->st = j->st;
    s->have_state = 1;
  }
  if (status == GDX_ECONFLICT) { /* someone else moved it: start from what is stored */
    gdx_log_info("sync", "subscription %lld: %s; continuing from the stored state",
                 s->o.authorization, j->err);
    s->ph = S_READ;
    free(j);
    later(s, 0);
    return;
  }
  if (status != GDX_OK) {
    fail(s, "applying failed: %s", j->err[0] ? j->err : gdx_strerror(status));
    free(j);
    return;
  }
  if (j->prepare)
    s->prepared = 1;
  if (j->kind)
    s->batches++;
  s->backoff_ms = 0;
  s->last_error[0] = '\0';
  s->ph = S_READ;
  free(j);
  if (kind == 1 && s->have_state && !s->st.snapshot_done) {
    if (s->ahead_busy) { /* the next page is on its way: apply it when it comes */
      s->want_ahead = 1;
      return;
    }
    if (take_ahead(s))
      return;
  }
  /* nothing new: wait; otherwise on at once */
  later(s, kind == 2 && applied == 0 && !more ? (uint64_t)s->o.poll_ms : 0);
}

static void submit(gdx_sync *s, struct sync_job_ *j) {
  j->s = s;
  s->busy = 1;
  if (gdx_db_submit(s->env->frontdb, job_work, job_done, j) != GDX_OK) {
    s->busy = 0;
    json_decref(j->batch);
    free(j);
    fail(s, "the front-end database queue is full");
  }
}

/* ------------------------------------------------------------------ */
/* reads                                                               */

static int on_data(gdx_httpc_req *r, const char *d, size_t n, void *ud) {
  (void)r;
  gdx_sync *s = ud;
  return gdx_buf_append(&s->body, d, n) == GDX_OK ? 0 : -1;
}

static void on_read(gdx_httpc_req *r, int status, long http, void *ud) {
  gdx_sync *s = ud;
  s->busy = 0;
  if (s->stopping) {
    maybe_stopped(s);
    return;
  }
  json_t *j = status == GDX_OK ? json_loadb(s->body.data ? s->body.data : "", s->body.len, 0,
                                            NULL)
                               : NULL;
  if (status != GDX_OK || http != 200 || j == NULL) {
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    char why[300];
    if (status != GDX_OK)
      snprintf(why, sizeof(why), "%s", gdx_httpc_error(r));
    else
      snprintf(why, sizeof(why), "HTTP %ld%s%s", http, msg ? ": " : "", msg ? msg : "");
    fail(s, "reading from the broker failed: %s", why);
    json_decref(j);
    return;
  }
  if (s->ph == S_SCHEMA) {
    json_decref(s->schema);
    s->schema = j;
    s->t.nkey = (int)json_array_size(json_object_get(j, "primary_key"));
    s->ph = S_READ; /* once the stored state is loaded */
    sync_job *job = calloc(1, sizeof(*job));
    if (job == NULL) {
      fail(s, "out of memory");
      return;
    }
    submit(s, job); /* kind 0: load the state */
    return;
  }
  sync_job *job = calloc(1, sizeof(*job));
  if (job == NULL) {
    json_decref(j);
    fail(s, "out of memory");
    return;
  }
  job->batch = j;
  if (!s->have_state || !s->st.snapshot_done) {
    job->kind = 1;
    snprintf(job->after, sizeof(job->after), "%s", s->have_state ? s->st.snapshot_after : "");
  } else {
    job->kind = 2;
    job->after_pos = s->st.position;
  }
  apply_async(s, job);
}

/* GET <broker>/node/v1/tables/<authorization>/<what> into body, as this
 * node (its platform certificate). */
static int start_read(gdx_sync *s, const char *what, const char *after, gdx_buf *body,
                      int (*on_data_cb)(gdx_httpc_req *, const char *, size_t, void *),
                      void (*on_done_cb)(gdx_httpc_req *, int, long, void *)) {
  gdx_buf url;
  gdx_buf_init(&url, 8192);
  int rc = gdx_buf_appendf(&url, "%s/node/v1/tables/%lld/%s", s->env->nodes_url,
                           s->o.authorization, what);
  if (!rc && after && after[0]) {
    rc = gdx_buf_appends(&url, "&after=");
    if (!rc)
      rc = gdx_url_encode(&url, after);
  }
  gdx_buf_reset(body);
  gdx_httpc_opts ho = {.url = url.data, .on_data = on_data_cb, .on_done = on_done_cb,
                       .data = s, .timeout_ms = 120000, .ca_file = s->env->ca_file,
                       .cert_file = s->env->cert_file, .key_file = s->env->key_file,
                       .native = 1};
  if (!rc)
    rc = gdx_httpc_request(s->env->client, &ho, NULL);
  gdx_buf_free(&url);
  return rc;
}

static void start_ahead(gdx_sync *s, const json_t *page);

/* Applies a read batch; a snapshot page that is not the last has the next
 * one read meanwhile. */
static void apply_async(gdx_sync *s, sync_job *job) {
  json_t *j = job->batch;
  if (!s->prepared) {
    /* the target's columns are those the broker lets through */
    json_t *cols = json_object_get(j, "columns");
    s->t.ncols = 0;
    for (size_t i = 0; i < json_array_size(cols) && i < 256; i++) {
      const char *name = json_string_value(json_array_get(cols, i));
      snprintf(s->t.cols[s->t.ncols++], sizeof(s->t.cols[0]), "%s", name ? name : "");
    }
    job->prepare = 1;
  }
  int page = job->kind == 1;
  json_incref(j);
  submit(s, job); /* job may be gone from here on */
  if (page && s->busy && !json_is_true(json_object_get(j, "done")) && !s->ahead_busy &&
      s->ahead == NULL && !s->stopping)
    start_ahead(s, j);
  json_decref(j);
}

static int on_ahead_data(gdx_httpc_req *r, const char *d, size_t n, void *ud) {
  (void)r;
  gdx_sync *s = ud;
  return gdx_buf_append(&s->abody, d, n) == GDX_OK ? 0 : -1;
}

static void on_ahead(gdx_httpc_req *r, int status, long http, void *ud) {
  (void)r;
  gdx_sync *s = ud;
  s->ahead_busy = 0;
  if (s->stopping) {
    maybe_stopped(s);
    return;
  }
  json_t *j = status == GDX_OK && http == 200
                  ? json_loadb(s->abody.data ? s->abody.data : "", s->abody.len, 0, NULL)
                  : NULL;
  s->ahead = j; /* NULL: read again the ordinary way */
  if (s->want_ahead) {
    s->want_ahead = 0;
    if (!take_ahead(s))
      later(s, 0);
  }
}

static void start_ahead(gdx_sync *s, const json_t *page) {
  json_t *last = json_object_get(page, "last");
  char *after = json_is_array(last) ? json_dumps(last, JSON_COMPACT) : NULL;
  if (after == NULL || strlen(after) >= sizeof(s->ahead_after)) {
    free(after);
    return;
  }
  snprintf(s->ahead_after, sizeof(s->ahead_after), "%s", after);
  char what[64];
  snprintf(what, sizeof(what), "snapshot?limit=%lld", s->o.batch);
  if (start_read(s, what, after, &s->abody, on_ahead_data, on_ahead) == GDX_OK)
    s->ahead_busy = 1;
  free(after);
}

/* The page read ahead, when it is the one after the stored state. */
static int take_ahead(gdx_sync *s) {
  json_t *page = s->ahead;
  s->ahead = NULL;
  if (page == NULL || s->busy || !s->have_state || s->st.snapshot_done ||
      strcmp(s->ahead_after, s->st.snapshot_after) != 0) {
    json_decref(page);
    return 0;
  }
  sync_job *job = calloc(1, sizeof(*job));
  if (job == NULL) {
    json_decref(page);
    return 0;
  }
  job->batch = page;
  job->kind = 1;
  snprintf(job->after, sizeof(job->after), "%s", s->st.snapshot_after);
  apply_async(s, job);
  return 1;
}

static void next_step(gdx_sync *s) {
  if (s->stopping || s->busy)
    return;
  char what[64];
  const char *after = NULL;
  if (s->ph == S_SCHEMA) {
    snprintf(what, sizeof(what), "schema");
  } else if (!s->have_state || !s->st.snapshot_done) {
    snprintf(what, sizeof(what), "snapshot?limit=%lld", s->o.batch);
    after = s->have_state ? s->st.snapshot_after : NULL;
  } else {
    snprintf(what, sizeof(what), "changes?limit=%lld&after=%lld", s->o.batch, s->st.position);
  }
  int rc = start_read(s, what, after, &s->body, on_data, on_read);
  if (rc != GDX_OK) {
    fail(s, "cannot start a read: %s", gdx_strerror(rc));
    return;
  }
  s->busy = 1;
}

/* ------------------------------------------------------------------ */

int gdx_sync_start(const gdx_sync_env *env, const gdx_sync_opts *o, gdx_sync **out) {
  gdx_sync *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return GDX_ENOMEM;
  s->env = env;
  s->o = *o;
  snprintf(s->t.sub, sizeof(s->t.sub), "sub_%lld", o->authorization);
  snprintf(s->t.table, sizeof(s->t.table), "%s", o->table);
  gdx_buf_init(&s->body, READ_MAX);
  gdx_buf_init(&s->abody, READ_MAX);
  uv_timer_init(env->loop, &s->timer);
  s->timer.data = s;
  s->ph = S_SCHEMA;
  later(s, 0);
  *out = s;
  return GDX_OK;
}

static void on_timer_closed(uv_handle_t *h) {
  gdx_sync *s = h->data;
  s->timer_closed = 1;
  maybe_stopped(s);
}

void gdx_sync_stop(gdx_sync *s, void (*cb)(void *), void *data) {
  s->stopping = 1;
  s->stop_cb = cb;
  s->stop_data = data;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

void gdx_sync_metrics(gdx_sync *s, gdx_buf *out) {
  long long a = s->o.authorization;
  gdx_buf_appendf(out, "gdx_node_subscription_position{authorization=\"%lld\"} %lld\n", a,
                  s->have_state ? s->st.position : 0);
  gdx_buf_appendf(out, "gdx_node_subscription_rows_applied_total{authorization=\"%lld\"} %lld\n",
                  a, s->have_state ? s->st.rows_applied : 0);
  gdx_buf_appendf(out, "gdx_node_subscription_snapshot_done{authorization=\"%lld\"} %d\n", a,
                  s->have_state && s->st.snapshot_done);
  gdx_buf_appendf(out, "gdx_node_subscription_errors_total{authorization=\"%lld\"} %llu\n", a,
                  (unsigned long long)s->errors);
  gdx_buf_appendf(out, "gdx_node_subscription_ok{authorization=\"%lld\"} %d\n", a,
                  s->last_error[0] == '\0');
}
