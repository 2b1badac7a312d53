#include "table_sub.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "log.h"
#include "table_sub_int.h"

#define READ_MAX (64u << 20)  /* one batch's JSON */
#define READ_TIMEOUT_MS 120000
#define POST_TIMEOUT_MS 30000
#define LEDGER_BATCH 500      /* ledger entries per report */
#define BACKOFF_MAX_MS 30000

static void next_step(gdx_table_sub *s);
static int take_ahead(gdx_table_sub *s);
static void apply_async(gdx_table_sub *s, gdx__table_job *job);

static void page_free(gdx_page *p) {
  if (p)
    gdx_page_free(p);
  free(p);
}

/* A snapshot page or change batch out of the body just read (which it
 * takes), or NULL with why. */
static gdx_page *page_take(gdx_buf *body, char *why, size_t n) {
  size_t len = 0;
  char *text = gdx_buf_detach(body, &len);
  gdx_page *p = calloc(1, sizeof(*p));
  if (text == NULL || p == NULL) {
    snprintf(why, n, text ? "out of memory" : "an empty page");
    free(text);
    free(p);
    return NULL;
  }
  if (gdx_page_parse(p, text, len, why, n) != GDX_OK) {
    free(p);
    return NULL;
  }
  return p;
}

long long gdx__table_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void maybe_stopped(gdx_table_sub *s) {
  if (!s->stopping || s->busy || s->ahead_busy || s->outbox || !s->timer_closed)
    return;
  page_free(s->ahead);
  gdx_buf_free(&s->abody);
  gdx__table_reconcile_clear(s);
  void (*cb)(void *) = s->stop_cb;
  void *data = s->stop_data;
  json_decref(s->schema);
  gdx_buf_free(&s->body);
  free(s);
  if (cb)
    cb(data);
}

static void on_timer(uv_timer_t *t) { next_step(t->data); }

void gdx__table_sub_later(gdx_table_sub *s, uint64_t ms) {
  if (!s->stopping)
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

void gdx__table_sub_fail(gdx_table_sub *s, const char *fmt, ...) {
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (strcmp(msg, s->last_error) != 0)
    gdx_log_warn("sync", "subscription %lld: %s", s->o.authorization, msg);
  snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
  s->errors++;
  s->backoff_ms = s->backoff_ms ? (s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                                      : s->backoff_ms * 2)
                                : 1000;
  gdx__table_reconcile_abort(s);
  s->ph = S_SCHEMA; /* the schema may have changed too */
  gdx__table_sub_later(s, s->backoff_ms);
}

/* ------------------------------------------------------------------ */
/* database jobs                                                       */

gdx__table_job *gdx__table_job_new(gdx__table_job_kind kind) {
  gdx__table_job *j = calloc(1, sizeof(*j));
  if (j)
    j->kind = kind;
  return j;
}

void gdx__table_job_free(gdx__table_job *j) {
  json_decref(j->diff.repair_keys);
  json_decref(j->diff.extra_keys);
  json_decref(j->diff.samples);
  json_decref(j->diff.ranges);
  json_decref(j->batch);
  page_free(j->page);
  json_decref(j->chunk);
  json_decref(j->differing);
  free(j);
}

static int job_work(gdx_db_conn *c, void *arg) {
  gdx__table_job *j = arg;
  gdx_table_sub *s = j->s;
  char *err = j->err;
  size_t errlen = sizeof(j->err);
  int rc = GDX_OK;
  if (j->prepare)
    rc = gdx_table_apply_prepare(c, &s->t, s->schema, err, errlen);
  if (j->kind >= J_CHUNKS)
    return rc ? rc : gdx__table_reconcile_work(c, j);
  if (!rc && j->kind == J_PAGE)
    rc = gdx_table_apply_page(c, &s->t, j->after, j->page, err, errlen);
  if (!rc && j->kind == J_CHANGES)
    rc = gdx_table_apply_changes(c, &s->t, j->after_pos, j->page, err, errlen);
  if (!rc && j->kind == J_RESET)
    rc = gdx_table_apply_reset(c, &s->t, err, errlen);
  if (rc && rc != GDX_ECONFLICT)
    return rc;
  /* where the subscription stands now (also after a conflict: someone
   * else's batch moved it) */
  int lr = gdx_table_apply_load(c, s->t.sub, &j->st);
  j->found = lr == GDX_OK;
  if (lr && lr != GDX_ENOTFOUND) {
    snprintf(err, errlen, "reading the subscription's state: %s", gdx_db_error(c));
    return lr;
  }
  return rc;
}

static void job_done(int status, void *arg) {
  gdx__table_job *j = arg;
  gdx_table_sub *s = j->s;
  s->busy = 0;
  if (s->stopping) {
    gdx__table_job_free(j);
    maybe_stopped(s);
    return;
  }
  if (j->prepare && status == GDX_OK)
    s->prepared = 1;
  if (j->kind >= J_CHUNKS) {
    gdx__table_reconcile_job_done(s, j, status);
    return;
  }
  size_t applied = j->page ? j->page->nrows + j->page->nchanges : 0;
  int more = j->kind == J_PAGE ||
             (j->page && json_is_true(json_object_get(j->page->meta, "more")));
  gdx__table_job_kind kind = j->kind;
  if (j->found) {
    s->st = j->st;
    s->have_state = 1;
  }
  if (status == GDX_ECONFLICT) { /* someone else moved it: start from what is stored */
    gdx_log_info("sync", "subscription %lld: %s; continuing from the stored state",
                 s->o.authorization, j->err);
    s->ph = S_READ;
    gdx__table_job_free(j);
    gdx__table_sub_later(s, 0);
    return;
  }
  if (status != GDX_OK) {
    gdx__table_sub_fail(s, "applying failed: %s", j->err[0] ? j->err : gdx_strerror(status));
    gdx__table_job_free(j);
    return;
  }
  if (kind == J_PAGE || kind == J_CHANGES) {
    s->batches++;
    gdx_ledger_outbox_kick(s->outbox);
  }
  s->backoff_ms = 0;
  s->last_error[0] = '\0';
  s->ph = S_READ;
  gdx__table_job_free(j);
  if (kind == J_RESET) {
    s->resets++;
    gdx_log_warn("sync", "subscription %lld: the provider purged its change log past this "
                 "subscription's position; the table was emptied and is loaded again",
                 s->o.authorization);
  }
  if (s->o.once && s->have_state && s->st.snapshot_done) {
    s->ph = S_DONE;
    gdx_log_info("sync", "subscription %lld: fetched %lld rows into %s (once)",
                 s->o.authorization, s->st.rows_applied, s->t.table);
    return;
  }
  if (kind == J_PAGE && s->have_state && !s->st.snapshot_done) {
    if (s->ahead_busy) { /* the next page is on its way: apply it when it comes */
      s->want_ahead = 1;
      return;
    }
    if (take_ahead(s))
      return;
  }
  s->caught_up = kind == J_CHANGES && applied == 0 && !more;
  /* nothing new: a long poll waits at the provider; without one, pause */
  uint64_t waited = uv_now(s->env->loop) - s->read_started;
  gdx__table_sub_later(s, s->caught_up && (s->o.wait_ms == 0 || waited < 100)
                              ? (uint64_t)s->o.poll_ms
                              : 0);
}

void gdx__table_sub_submit(gdx_table_sub *s, gdx__table_job *j) {
  j->s = s;
  s->busy = 1;
  if (gdx_db_submit(s->env->frontdb, job_work, job_done, j) != GDX_OK) {
    s->busy = 0;
    gdx__table_job_free(j);
    gdx__table_sub_fail(s, "the front-end database queue is full");
  }
}

/* ------------------------------------------------------------------ */
/* reads                                                               */

/* A read into body (zstd welcome: pages and batches shrink several
 * times). */
static int read_into(gdx_table_sub *s, const char *what, const char *const *params,
                     gdx_buf *body, gdx_broker_done_fn done) {
  char path[160];
  snprintf(path, sizeof(path), "/node/v1/tables/%lld/%s", s->o.authorization, what);
  gdx_broker_req r = {.path = path, .query = params, .timeout_ms = READ_TIMEOUT_MS};
  return gdx_broker_call(s->env->broker, &r, body, 1, done, s, NULL);
}

static void on_posted(int status, long http, const char *why, void *data) {
  gdx_table_sub *s = data;
  s->busy = 0;
  if (s->stopping)
    maybe_stopped(s);
  else
    gdx__table_reconcile_posted(s, status, http, why);
}

int gdx__table_sub_post(gdx_table_sub *s, const char *path, const json_t *body) {
  gdx_broker_req r = {.method = "POST", .path = path, .json = body,
                      .timeout_ms = POST_TIMEOUT_MS};
  int rc = gdx_broker_call(s->env->broker, &r, &s->body, 0, on_posted, s, NULL);
  if (rc == GDX_OK)
    s->busy = 1;
  return rc;
}

/* The schema: the stored state is loaded next. */
static void take_schema(gdx_table_sub *s, json_t *j) {
  json_decref(s->schema);
  s->schema = j;
  s->t.nkey = (int)json_array_size(json_object_get(j, "primary_key"));
  s->ph = S_READ; /* once the stored state is loaded */
  gdx__table_job *job = gdx__table_job_new(J_LOAD);
  if (job == NULL) {
    gdx__table_sub_fail(s, "out of memory");
    return;
  }
  gdx__table_sub_submit(s, job);
}

/* A page or a change batch, applied after the stored state. */
static void take_batch(gdx_table_sub *s) {
  char why[300];
  gdx__table_job *job = gdx__table_job_new(J_PAGE);
  gdx_page *pg = job ? page_take(&s->body, why, sizeof(why)) : NULL;
  if (pg == NULL) {
    free(job);
    gdx__table_sub_fail(s, "reading from the broker failed: %s", job ? why : "out of memory");
    return;
  }
  job->page = pg;
  if (!s->have_state || !s->st.snapshot_done) {
    snprintf(job->after, sizeof(job->after), "%s", s->have_state ? s->st.snapshot_after : "");
  } else {
    job->kind = J_CHANGES;
    job->after_pos = s->st.position;
  }
  apply_async(s, job);
}

static void on_read(int status, long http, const char *why, void *data) {
  gdx_table_sub *s = data;
  s->busy = 0;
  if (s->stopping) {
    maybe_stopped(s);
    return;
  }
  if (status != GDX_OK) {
    gdx__table_sub_fail(s, "reading from the broker failed: %s", why);
    return;
  }
  if (http == 200 && s->ph == S_READ) {
    take_batch(s);
    return;
  }
  json_t *j = json_loadb(s->body.data ? s->body.data : "", s->body.len, 0, NULL);
  const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
  if (http == 410 && code && strcmp(code, "position_purged") == 0 && s->ph == S_READ) {
    json_decref(j);
    gdx__table_job *job = gdx__table_job_new(J_RESET); /* the changes it needs are gone */
    if (job == NULL)
      gdx__table_sub_fail(s, "out of memory");
    else
      gdx__table_sub_submit(s, job);
    return;
  }
  if (http != 200 || j == NULL) {
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    gdx__table_sub_fail(s, "reading from the broker failed: HTTP %ld%s%s", http,
                        msg ? ": " : "", msg ? msg : "");
    json_decref(j);
    return;
  }
  if (s->ph >= S_RC_CHUNKS) {
    gdx__table_reconcile_read(s, j);
    return;
  }
  if (s->ph == S_SCHEMA) {
    take_schema(s, j);
    return;
  }
  json_decref(j); /* S_READ answers are pages and batches, taken above */
  gdx__table_sub_fail(s, "an answer arrived in no phase that reads");
}

int gdx__table_sub_read(gdx_table_sub *s, const char *what, const char *const *params) {
  int rc = read_into(s, what, params, &s->body, on_read);
  if (rc == GDX_OK)
    s->busy = 1;
  return rc;
}

static void start_ahead(gdx_table_sub *s, const json_t *meta);

/* Applies a read batch; a snapshot page that is not the last has the next
 * one read meanwhile. */
static void apply_async(gdx_table_sub *s, gdx__table_job *job) {
  json_t *j = job->page ? job->page->meta : job->batch;
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
  int page = job->kind == J_PAGE;
  json_incref(j);
  gdx__table_sub_submit(s, job); /* job may be gone from here on */
  if (page && s->busy && !json_is_true(json_object_get(j, "done")) && !s->ahead_busy &&
      s->ahead == NULL && !s->stopping)
    start_ahead(s, j);
  json_decref(j);
}

static void on_ahead(int status, long http, const char *why, void *data) {
  (void)why;
  gdx_table_sub *s = data;
  s->ahead_busy = 0;
  if (s->stopping) {
    maybe_stopped(s);
    return;
  }
  char err[300];
  /* NULL: read again the ordinary way */
  s->ahead = status == GDX_OK && http == 200 ? page_take(&s->abody, err, sizeof(err)) : NULL;
  if (s->want_ahead) {
    s->want_ahead = 0;
    if (!take_ahead(s))
      gdx__table_sub_later(s, 0);
  }
}

static void start_ahead(gdx_table_sub *s, const json_t *meta) {
  json_t *last = json_object_get(meta, "last");
  char *after = json_is_array(last) ? json_dumps(last, JSON_COMPACT) : NULL;
  if (after == NULL || strlen(after) >= sizeof(s->ahead_after)) {
    free(after);
    return;
  }
  snprintf(s->ahead_after, sizeof(s->ahead_after), "%s", after);
  char what[64];
  snprintf(what, sizeof(what), "snapshot?limit=%lld", s->o.batch);
  const char *params[] = {"after", after, NULL};
  if (read_into(s, what, params, &s->abody, on_ahead) == GDX_OK)
    s->ahead_busy = 1;
  free(after);
}

/* The page read ahead, when it is the one after the stored state. */
static int take_ahead(gdx_table_sub *s) {
  gdx_page *page = s->ahead;
  s->ahead = NULL;
  if (page == NULL || s->busy || !s->have_state || s->st.snapshot_done ||
      strcmp(s->ahead_after, s->st.snapshot_after) != 0) {
    page_free(page);
    return 0;
  }
  gdx__table_job *job = gdx__table_job_new(J_PAGE);
  if (job == NULL) {
    page_free(page);
    return 0;
  }
  job->page = page;
  snprintf(job->after, sizeof(job->after), "%s", s->st.snapshot_after);
  apply_async(s, job);
  return 1;
}

/* ------------------------------------------------------------------ */
/* the ledger: gdx_sync_ledger is the outbox's source                  */

typedef struct {
  gdx_table_sub *s;
  size_t max;
  long long mark;          /* read: the highest id; forget: up to it */
  json_t *entries;
} ledger_job;

static int ledger_read_work(gdx_db_conn *c, void *arg) {
  ledger_job *a = arg;
  return gdx_table_apply_ledger_read(c, a->s->t.sub, a->max, &a->entries, &a->mark);
}

static void ledger_read_done(int status, void *arg) {
  ledger_job *a = arg;
  gdx_ledger_outbox_read_done(a->s->outbox, status, a->entries, json_array_size(a->entries),
                              a->mark);
  free(a);
}

static int ledger_forget_work(gdx_db_conn *c, void *arg) {
  ledger_job *a = arg;
  return gdx_table_apply_ledger_forget(c, a->s->t.sub, a->mark);
}

static void ledger_forget_done(int status, void *arg) {
  ledger_job *a = arg;
  gdx_ledger_outbox_forget_done(a->s->outbox, status);
  free(a);
}

static void ledger_submit(gdx_table_sub *s, size_t max, long long mark, gdx_db_work_fn work,
                          gdx_db_done_fn done) {
  ledger_job *a = calloc(1, sizeof(*a));
  if (a) {
    *a = (ledger_job){.s = s, .max = max, .mark = mark};
    if (gdx_db_submit(s->env->frontdb, work, done, a) == GDX_OK)
      return;
    free(a);
  }
  if (work == ledger_read_work)
    gdx_ledger_outbox_read_done(s->outbox, GDX_EBUSY, NULL, 0, 0);
  else
    gdx_ledger_outbox_forget_done(s->outbox, GDX_EBUSY);
}

static void ledger_read(gdx_ledger_outbox *o, size_t max, void *data) {
  (void)o;
  ledger_submit(data, max, 0, ledger_read_work, ledger_read_done);
}

static void ledger_forget(gdx_ledger_outbox *o, long long mark, void *data) {
  (void)o;
  ledger_submit(data, 0, mark, ledger_forget_work, ledger_forget_done);
}

/* where the subscription stands, with the entries */
static json_t *ledger_body(json_t *entries, void *data) {
  gdx_table_sub *s = data;
  int changes = s->have_state && s->st.snapshot_done;
  return json_pack("{s:s, s:s, s:o, s:o}", "target", s->t.table, "phase",
                   changes ? "changes" : "snapshot", "position",
                   s->have_state ? json_integer(s->st.position) : json_null(), "entries",
                   entries);
}

/* the broker's answer may ask for a reconciliation */
static void ledger_accepted(const json_t *answer, void *data) {
  gdx_table_sub *s = data;
  if (json_is_true(json_object_get(answer, "reconcile")) && !s->rc.active)
    s->rc.wanted = 1;
}

static void ledger_failed(int status, long http, const char *answer, size_t len,
                          const char *why, void *data) {
  gdx_table_sub *s = data;
  if (http == 400 || http == 404 || http == 409)
    gdx_log_warn("sync", "subscription %lld: the broker refused the ledger (%ld): %.*s",
                 s->o.authorization, http, (int)(len > 300 ? 300 : len), answer);
  else
    gdx_log_debug("sync", "subscription %lld: ledger not reported: %s", s->o.authorization,
                  status != GDX_OK ? why : "refused");
}

static const gdx_ledger_source ledger_source = {
    .read = ledger_read, .forget = ledger_forget, .body = ledger_body,
    .accepted = ledger_accepted, .failed = ledger_failed};

/* ------------------------------------------------------------------ */

static void next_step(gdx_table_sub *s) {
  if (s->stopping || s->busy || s->ph == S_DONE)
    return;
  uint64_t now = uv_now(s->env->loop);
  if (s->ph == S_READ && s->have_state && s->st.snapshot_done && s->caught_up)
    gdx__table_reconcile_maybe_start(s, now);
  if (s->rc.active) {
    if (gdx__table_reconcile_step(s) != GDX_OK)
      gdx__table_sub_fail(s, "cannot start a reconciliation read");
    return;
  }
  char what[96];
  const char *params[] = {"after", NULL, NULL};
  if (s->ph == S_SCHEMA) {
    snprintf(what, sizeof(what), "schema");
  } else if (!s->have_state || !s->st.snapshot_done) {
    snprintf(what, sizeof(what), "snapshot?limit=%lld", s->o.batch);
    params[1] = s->have_state ? s->st.snapshot_after : NULL;
  } else {
    snprintf(what, sizeof(what), "changes?limit=%lld&after=%lld", s->o.batch, s->st.position);
    /* caught up: wait at the provider for the next change (a long poll) */
    if (s->caught_up && s->o.wait_ms > 0)
      snprintf(what + strlen(what), sizeof(what) - strlen(what), "&wait_ms=%lld", s->o.wait_ms);
  }
  s->read_started = now;
  int rc = gdx__table_sub_read(s, what, params);
  if (rc != GDX_OK)
    gdx__table_sub_fail(s, "cannot start a read: %s", gdx_strerror(rc));
}

/* ------------------------------------------------------------------ */

int gdx_table_sub_start(const gdx_table_sub_env *env, const gdx_table_sub_opts *o,
                        gdx_table_sub **out) {
  gdx_table_sub *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return GDX_ENOMEM;
  s->env = env;
  s->o = *o;
  if (s->o.chunk <= 0)
    s->o.chunk = 1000;
  snprintf(s->t.sub, sizeof(s->t.sub), "sub_%lld", o->authorization);
  snprintf(s->t.table, sizeof(s->t.table), "%s", o->table);
  char path[64];
  snprintf(path, sizeof(path), "/node/v1/ledger/%lld", o->authorization);
  gdx_ledger_outbox_opts lo = {.broker = env->broker, .path = path, .batch = LEDGER_BATCH,
                               .source = &ledger_source, .data = s};
  if (gdx_ledger_outbox_start(env->loop, &lo, &s->outbox) != GDX_OK) {
    free(s);
    return GDX_ENOMEM;
  }
  gdx_buf_init(&s->body, READ_MAX);
  gdx_buf_init(&s->abody, READ_MAX);
  uv_timer_init(env->loop, &s->timer);
  s->timer.data = s;
  s->ph = S_SCHEMA;
  gdx__table_sub_later(s, 0);
  gdx_ledger_outbox_kick(s->outbox); /* what an earlier run applied but did not report */
  *out = s;
  return GDX_OK;
}

static void on_timer_closed(uv_handle_t *h) {
  gdx_table_sub *s = h->data;
  s->timer_closed = 1;
  maybe_stopped(s);
}

static void on_outbox_stopped(void *data) {
  gdx_table_sub *s = data;
  s->outbox = NULL;
  maybe_stopped(s);
}

void gdx_table_sub_stop(gdx_table_sub *s, void (*cb)(void *), void *data) {
  s->stopping = 1;
  s->stop_cb = cb;
  s->stop_data = data;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
  gdx_ledger_outbox_stop(s->outbox, on_outbox_stopped, s);
}

long long gdx_table_sub_authorization(const gdx_table_sub *s) { return s->o.authorization; }

void gdx_table_sub_reconcile(gdx_table_sub *s) {
  if (s->rc.active || s->o.once)
    return;
  s->rc.wanted = 1;
  if (!s->busy && s->caught_up && !s->stopping)
    gdx__table_sub_later(s, 0);
}

void gdx_table_sub_metrics(gdx_table_sub *s, gdx_buf *out) {
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
  gdx_buf_appendf(out, "gdx_node_subscription_restarts_total{authorization=\"%lld\"} %llu\n", a,
                  (unsigned long long)s->resets);
  gdx__table_reconcile_metrics(s, out);
}
