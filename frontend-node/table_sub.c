#include "table_sub.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "compress.h"
#include "error.h"
#include "http.h"
#include "log.h"
#include "table_apply.h"

#define READ_MAX (64u << 20) /* one batch's JSON */
#define ACK_MAX 500          /* ledger entries per report */
#define DIFF_CHUNKS_MAX 1000 /* differing chunks drilled into per run */

typedef enum {
  S_SCHEMA,    /* the schema, then */
  S_READ,      /* snapshot pages, then change batches */
  S_RC_CHUNKS, /* reconciliation: chunk checksums of the whole table */
  S_RC_ROWS,   /* row checksums of a differing chunk */
  S_RC_FETCH,  /* the provider's rows of a chunk to repair */
  S_RC_REPORT, /* the run's report to the broker */
  S_DONE       /* once = true: the snapshot is in */
} phase;

struct gdx_table_sub {
  const gdx_table_sub_env *env;
  gdx_table_sub_opts o;
  uv_timer_t timer;
  phase ph;
  int busy;               /* a read or a database job in flight */
  int stopping, timer_closed;
  void (*stop_cb)(void *);
  void *stop_data;
  json_t *schema;
  int prepared;           /* the target table exists (this run) */
  gdx_table_apply_target t;
  gdx_table_apply_state st;
  int have_state;
  int caught_up;          /* the last change batch was empty */
  int waited;             /* the read in flight is a long poll */
  uint64_t read_started;
  gdx_buf body;
  gdx_buf abody;          /* the next snapshot page, read while the last one is applied */
  gdx_page *ahead;        /* … and parsed */
  int body_zstd, abody_zstd; /* the read's answer came with Content-Encoding: zstd */
  char ahead_after[2048];
  int ahead_busy, want_ahead;
  uint64_t backoff_ms;
  char last_error[300];
  /* the ledger's report to the broker */
  int ack_busy, ack_more;
  char *ack_body;
  gdx_buf ack_resp;
  long long ack_maxid;
  uint64_t ack_retry_at;
  /* reconciliation */
  int rc_wanted, rc_active;
  uint64_t rc_last;       /* loop time of the last run's end */
  char rc_after[2048];    /* checksums paging */
  json_t *rc_diff;        /* differing chunks */
  size_t rc_idx;
  gdx_table_apply_diff rc_d;    /* of the chunk being drilled */
  size_t rc_range;        /* next of rc_d.ranges to read and repair */
  long long rc_chunks, rc_chunks_diff, rc_src, rc_dst, rc_missing, rc_extra, rc_different,
      rc_in_flight, rc_repaired, rc_pos;
  long long rc_started;   /* unix ms */
  json_t *rc_samples;
  char *rc_body;
  /* for /metrics */
  uint64_t batches, errors, resets, runs;
  long long last_run_differences;
};

typedef struct sync_job_ {
  gdx_table_sub *s;
  json_t *batch;          /* reconciliation reads */
  gdx_page *page;         /* a snapshot page (kind 1) or a change batch (kind 2) */
  int kind;               /* 0 load, 1 page, 2 changes, 3 reset, 4 chunks, 5 rows, 6 repair */
  int prepare;
  char after[2048];
  long long after_pos;
  gdx_table_apply_state st;
  int found;
  json_t *chunk, *differing;
  long long target_rows, repaired;
  gdx_table_apply_diff diff;
  char err[300];
} sync_job;

static void next_step(gdx_table_sub *s);
static void submit(gdx_table_sub *s, struct sync_job_ *j);
static int take_ahead(gdx_table_sub *s);
static void apply_async(gdx_table_sub *s, struct sync_job_ *job);
static void ack_start(gdx_table_sub *s);
static int unzstd(gdx_buf *body, int zstd, char *why, size_t n);

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

static long long wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void diff_free(gdx_table_apply_diff *d) {
  json_decref(d->repair_keys);
  json_decref(d->extra_keys);
  json_decref(d->samples);
  json_decref(d->ranges);
  memset(d, 0, sizeof(*d));
}

static void rc_clear(gdx_table_sub *s) {
  json_decref(s->rc_diff);
  json_decref(s->rc_samples);
  diff_free(&s->rc_d);
  s->rc_diff = s->rc_samples = NULL;
  free(s->rc_body);
  s->rc_body = NULL;
  s->rc_active = 0;
}

static void maybe_stopped(gdx_table_sub *s) {
  if (!s->stopping || s->busy || s->ahead_busy || s->ack_busy || !s->timer_closed)
    return;
  page_free(s->ahead);
  gdx_buf_free(&s->abody);
  gdx_buf_free(&s->ack_resp);
  free(s->ack_body);
  rc_clear(s);
  void (*cb)(void *) = s->stop_cb;
  void *data = s->stop_data;
  json_decref(s->schema);
  gdx_buf_free(&s->body);
  free(s);
  if (cb)
    cb(data);
}

static void on_timer(uv_timer_t *t) { next_step(t->data); }

static void later(gdx_table_sub *s, uint64_t ms) {
  if (!s->stopping)
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

static void fail(gdx_table_sub *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(gdx_table_sub *s, const char *fmt, ...) {
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
  if (s->rc_active) { /* a reconciliation starts over later */
    rc_clear(s);
    s->rc_wanted = 1;
  }
  s->ph = S_SCHEMA; /* the schema may have changed too */
  later(s, s->backoff_ms);
}

/* ------------------------------------------------------------------ */
/* database jobs                                                       */

static int job_work(gdx_db_conn *c, void *arg) {
  sync_job *j = arg;
  gdx_table_sub *s = j->s;
  int rc = GDX_OK;
  if (j->prepare)
    rc = gdx_table_apply_prepare(c, &s->t, s->schema, j->err, sizeof(j->err));
  if (!rc && j->kind == 1)
    rc = gdx_table_apply_page(c, &s->t, j->after, j->page, j->err, sizeof(j->err));
  if (!rc && j->kind == 2)
    rc = gdx_table_apply_changes(c, &s->t, j->after_pos, j->page, j->err, sizeof(j->err));
  if (!rc && j->kind == 3)
    rc = gdx_table_apply_reset(c, &s->t, j->err, sizeof(j->err));
  if (j->kind == 4)
    return gdx_table_apply_chunks(c, &s->t, json_object_get(j->batch, "chunks"), &j->target_rows,
                            j->differing, j->err, sizeof(j->err));
  if (j->kind == 5)
    return gdx_table_apply_rowdiff(c, &s->t, j->chunk, j->batch, &j->diff, j->err, sizeof(j->err));
  if (j->kind == 6)
    return gdx_table_apply_repair(c, &s->t, j->chunk, j->batch, j->diff.repair_keys,
                            j->diff.extra_keys, &j->repaired, j->err, sizeof(j->err));
  if (rc && rc != GDX_ECONFLICT)
    return rc;
  int lr = gdx_table_apply_load(c, s->t.sub, &j->st);
  j->found = lr == GDX_OK;
  if (lr && lr != GDX_ENOTFOUND) {
    snprintf(j->err, sizeof(j->err), "reading the subscription's state: %s", gdx_db_error(c));
    return lr;
  }
  return rc;
}

static void recon_job_done(gdx_table_sub *s, sync_job *j, int status);

static void job_free(sync_job *j) {
  diff_free(&j->diff);
  json_decref(j->batch);
  page_free(j->page);
  json_decref(j->chunk);
  json_decref(j->differing);
  free(j);
}

static void job_done(int status, void *arg) {
  sync_job *j = arg;
  gdx_table_sub *s = j->s;
  s->busy = 0;
  if (s->stopping) {
    job_free(j);
    maybe_stopped(s);
    return;
  }
  if (j->kind >= 4) {
    recon_job_done(s, j, status);
    return;
  }
  size_t applied = j->page ? j->page->nrows + j->page->nchanges : 0;
  int more = j->kind == 1 ||
             (j->page && json_is_true(json_object_get(j->page->meta, "more")));
  int kind = j->kind;
  if (j->found) {
    s->st = j->st;
    s->have_state = 1;
  }
  if (status == GDX_ECONFLICT) { /* someone else moved it: start from what is stored */
    gdx_log_info("sync", "subscription %lld: %s; continuing from the stored state",
                 s->o.authorization, j->err);
    s->ph = S_READ;
    job_free(j);
    later(s, 0);
    return;
  }
  if (status != GDX_OK) {
    fail(s, "applying failed: %s", j->err[0] ? j->err : gdx_strerror(status));
    job_free(j);
    return;
  }
  if (j->prepare)
    s->prepared = 1;
  if (kind == 1 || kind == 2) {
    s->batches++;
    ack_start(s);
  }
  s->backoff_ms = 0;
  s->last_error[0] = '\0';
  s->ph = S_READ;
  job_free(j);
  if (kind == 3) {
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
  if (kind == 1 && s->have_state && !s->st.snapshot_done) {
    if (s->ahead_busy) { /* the next page is on its way: apply it when it comes */
      s->want_ahead = 1;
      return;
    }
    if (take_ahead(s))
      return;
  }
  s->caught_up = kind == 2 && applied == 0 && !more;
  /* nothing new: a long poll waits at the provider; without one, pause */
  uint64_t waited = uv_now(s->env->loop) - s->read_started;
  later(s, s->caught_up && (s->o.wait_ms == 0 || waited < 100) ? (uint64_t)s->o.poll_ms : 0);
}

static void submit(gdx_table_sub *s, struct sync_job_ *j) {
  j->s = s;
  s->busy = 1;
  if (gdx_db_submit(s->env->frontdb, job_work, job_done, j) != GDX_OK) {
    s->busy = 0;
    job_free(j);
    fail(s, "the front-end database queue is full");
  }
}

/* ------------------------------------------------------------------ */
/* reads                                                               */

static int on_data(gdx_httpc_req *r, const char *d, size_t n, void *ud) {
  (void)r;
  gdx_table_sub *s = ud;
  return gdx_buf_append(&s->body, d, n) == GDX_OK ? 0 : -1;
}

static void recon_read(gdx_table_sub *s, json_t *j);

static void on_read(gdx_httpc_req *r, int status, long http, void *ud) {
  gdx_table_sub *s = ud;
  s->busy = 0;
  if (s->stopping) {
    maybe_stopped(s);
    return;
  }
  char zwhy[100];
  if (status == GDX_OK && unzstd(&s->body, s->body_zstd, zwhy, sizeof(zwhy)) != GDX_OK) {
    fail(s, "reading from the broker failed: %s", zwhy);
    return;
  }
  if (status == GDX_OK && http == 200 && s->ph == S_READ) { /* a page or a change batch */
    char why[300];
    sync_job *job = calloc(1, sizeof(*job));
    gdx_page *pg = job ? page_take(&s->body, why, sizeof(why)) : NULL;
    if (pg == NULL) {
      free(job);
      fail(s, "reading from the broker failed: %s", job ? why : "out of memory");
      return;
    }
    job->page = pg;
    if (!s->have_state || !s->st.snapshot_done) {
      job->kind = 1;
      snprintf(job->after, sizeof(job->after), "%s", s->have_state ? s->st.snapshot_after : "");
    } else {
      job->kind = 2;
      job->after_pos = s->st.position;
    }
    apply_async(s, job);
    return;
  }
  json_t *j = status == GDX_OK ? json_loadb(s->body.data ? s->body.data : "", s->body.len, 0,
                                            NULL)
                               : NULL;
  const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
  if (http == 410 && code && strcmp(code, "position_purged") == 0 && s->ph == S_READ) {
    json_decref(j);
    sync_job *job = calloc(1, sizeof(*job));
    if (job == NULL) {
      fail(s, "out of memory");
      return;
    }
    job->kind = 3; /* start over: the changes it needs are gone */
    submit(s, job);
    return;
  }
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
  if (s->ph >= S_RC_CHUNKS) {
    recon_read(s, j);
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
  json_decref(j); /* S_READ answers are pages and batches, taken above */
  fail(s, "an answer arrived in no phase that reads");
}

/* GET <broker>/node/v1/tables/<authorization>/<what>[&<name>=<value>]…
 * into body, as this node (its platform certificate). */
static int zstd_header(const char *line, size_t len) {
  static const char h[] = "content-encoding:";
  if (len < sizeof(h) - 1 || strncasecmp(line, h, sizeof(h) - 1) != 0)
    return 0;
  const char *v = line + sizeof(h) - 1;
  while (*v == ' ')
    v++;
  return (size_t)(v - line) + 4 <= len && strncasecmp(v, "zstd", 4) == 0;
}

static void on_read_header(gdx_httpc_req *r, const char *line, size_t len, void *ud) {
  (void)r;
  gdx_table_sub *s = ud;
  s->body_zstd |= zstd_header(line, len);
}

static void on_ahead_header(gdx_httpc_req *r, const char *line, size_t len, void *ud) {
  (void)r;
  gdx_table_sub *s = ud;
  s->abody_zstd |= zstd_header(line, len);
}

/* A compressed answer replaced by what it holds (at most the buffer's cap). */
static int unzstd(gdx_buf *body, int zstd, char *why, size_t n) {
  if (!zstd)
    return GDX_OK;
  char *out;
  size_t len;
  int rc = gdx_zstd_decompress(body->data ? body->data : "", body->len, body->cap, &out, &len);
  if (rc) {
    snprintf(why, n, "the compressed answer %s", rc == GDX_ETOOBIG ? "is too large"
                                                  : rc == GDX_ENOMEM ? "does not fit in memory"
                                                                     : "is corrupt");
    return rc;
  }
  size_t cap = body->cap;
  gdx_buf_free(body);
  body->data = out;
  body->len = len;
  body->alloc = len + 1;
  body->cap = cap;
  return GDX_OK;
}

static int start_read(gdx_table_sub *s, const char *what, const char *const *params, gdx_buf *body,
                      int (*on_data_cb)(gdx_httpc_req *, const char *, size_t, void *),
                      void (*on_done_cb)(gdx_httpc_req *, int, long, void *)) {
  gdx_buf url;
  gdx_buf_init(&url, 16384);
  int rc = gdx_buf_appendf(&url, "%s/node/v1/tables/%lld/%s", s->env->nodes_url,
                           s->o.authorization, what);
  for (int i = 0; !rc && params && params[i]; i += 2) {
    if (params[i + 1] == NULL || params[i + 1][0] == '\0')
      continue;
    rc = gdx_buf_appendf(&url, "%c%s=", strchr(url.data, '?') ? '&' : '?', params[i]);
    if (!rc)
      rc = gdx_url_encode(&url, params[i + 1]);
  }
  gdx_buf_reset(body);
  int ahead = body == &s->abody;
  *(ahead ? &s->abody_zstd : &s->body_zstd) = 0;
  static const char *const accept[] = {"Accept-Encoding: zstd", NULL};
  gdx_httpc_opts ho = {.url = url.data, .headers = accept, .on_data = on_data_cb,
                       .on_header = ahead ? on_ahead_header : on_read_header,
                       .on_done = on_done_cb, .data = s, .timeout_ms = 120000,
                       .ca_file = s->env->ca_file, .cert_file = s->env->cert_file,
                       .key_file = s->env->key_file, .native = 1};
  if (!rc)
    rc = gdx_httpc_request(s->env->client, &ho, NULL);
  gdx_buf_free(&url);
  return rc;
}

static void start_ahead(gdx_table_sub *s, const json_t *meta);

/* Applies a read batch; a snapshot page that is not the last has the next
 * one read meanwhile. */
static void apply_async(gdx_table_sub *s, sync_job *job) {
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
  gdx_table_sub *s = ud;
  return gdx_buf_append(&s->abody, d, n) == GDX_OK ? 0 : -1;
}

static void on_ahead(gdx_httpc_req *r, int status, long http, void *ud) {
  (void)r;
  gdx_table_sub *s = ud;
  s->ahead_busy = 0;
  if (s->stopping) {
    maybe_stopped(s);
    return;
  }
  char why[300];
  /* NULL: read again the ordinary way */
  s->ahead = status == GDX_OK && http == 200 &&
                     unzstd(&s->abody, s->abody_zstd, why, sizeof(why)) == GDX_OK
                 ? page_take(&s->abody, why, sizeof(why))
                 : NULL;
  if (s->want_ahead) {
    s->want_ahead = 0;
    if (!take_ahead(s))
      later(s, 0);
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
  if (start_read(s, what, params, &s->abody, on_ahead_data, on_ahead) == GDX_OK)
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
  sync_job *job = calloc(1, sizeof(*job));
  if (job == NULL) {
    page_free(page);
    return 0;
  }
  job->page = page;
  job->kind = 1;
  snprintf(job->after, sizeof(job->after), "%s", s->st.snapshot_after);
  apply_async(s, job);
  return 1;
}

/* ------------------------------------------------------------------ */
/* reconciliation (对账): chunk checksums, then rows of the differing
 * chunks, then the provider's rows for what differs                   */

static void recon_start(gdx_table_sub *s) {
  rc_clear(s);
  s->rc_wanted = 0;
  s->rc_active = 1;
  s->rc_after[0] = '\0';
  s->rc_diff = json_array();
  s->rc_samples = json_array();
  s->rc_idx = 0;
  s->rc_chunks = s->rc_chunks_diff = s->rc_src = s->rc_dst = s->rc_missing = s->rc_extra =
      s->rc_different = s->rc_in_flight = s->rc_repaired = 0;
  s->rc_pos = s->st.position;
  s->rc_started = wall_ms();
  s->ph = S_RC_CHUNKS;
  gdx_log_info("sync", "subscription %lld: reconciliation of %s started at position %lld",
               s->o.authorization, s->t.table, s->rc_pos);
}

static char *json_text(const json_t *v) {
  return json_is_array(v) ? json_dumps(v, JSON_COMPACT) : NULL;
}

/* A repair job: the provider's rows of one range (page), or with page
 * NULL the deletes of the rows the provider does not have. */
static void repair_submit(gdx_table_sub *s, json_t *page) {
  sync_job *job = calloc(1, sizeof(*job));
  if (job == NULL) {
    json_decref(page);
    fail(s, "out of memory");
    return;
  }
  job->kind = 6;
  job->batch = page ? page : json_pack("{s:[]}", "rows");
  if (page) {
    job->chunk = json_incref(json_array_get(s->rc_d.ranges, s->rc_range));
    job->diff.repair_keys = json_incref(s->rc_d.repair_keys);
    job->diff.extra_keys = json_array();
  } else {
    job->chunk = json_incref(json_array_get(s->rc_diff, s->rc_idx));
    job->diff.repair_keys = json_array();
    job->diff.extra_keys = json_incref(s->rc_d.extra_keys);
  }
  submit(s, job);
}

static void recon_read(gdx_table_sub *s, json_t *j) {
  if (s->ph == S_RC_FETCH) {
    repair_submit(s, j);
    return;
  }
  sync_job *job = calloc(1, sizeof(*job));
  if (job == NULL) {
    json_decref(j);
    fail(s, "out of memory");
    return;
  }
  job->batch = j;
  if (s->ph == S_RC_CHUNKS) {
    job->kind = 4;
    job->differing = json_array();
  } else {
    job->kind = 5;
    job->chunk = json_incref(json_array_get(s->rc_diff, s->rc_idx));
    job->diff.repair_keys = json_array();
    job->diff.extra_keys = json_array();
    job->diff.samples = json_array();
    job->diff.ranges = json_array();
  }
  submit(s, job);
}

/* The differing chunk is done: on to the next, or to the report. */
static void next_chunk(gdx_table_sub *s) {
  diff_free(&s->rc_d);
  s->rc_idx++;
  s->ph = s->rc_idx >= json_array_size(s->rc_diff) ? S_RC_REPORT : S_RC_ROWS;
}

static void recon_job_done(gdx_table_sub *s, sync_job *j, int status) {
  if (status != GDX_OK) {
    char err[300];
    snprintf(err, sizeof(err), "%s", j->err[0] ? j->err : gdx_strerror(status));
    job_free(j);
    fail(s, "reconciliation failed: %s", err);
    return;
  }
  s->backoff_ms = 0;
  if (j->kind == 4) {
    json_t *chunks = json_object_get(j->batch, "chunks");
    size_t i;
    json_t *c;
    s->rc_chunks += (long long)json_array_size(chunks);
    json_array_foreach(chunks, i, c) s->rc_src += json_integer_value(json_object_get(c, "rows"));
    s->rc_dst += j->target_rows;
    json_array_foreach(j->differing, i, c) {
      s->rc_chunks_diff++;
      if (json_array_size(s->rc_diff) < DIFF_CHUNKS_MAX)
        json_array_append(s->rc_diff, c);
    }
    json_t *last = json_object_get(json_array_get(chunks, json_array_size(chunks) - 1), "last");
    char *after = json_text(last);
    if (json_is_true(json_object_get(j->batch, "done")) || after == NULL ||
        strlen(after) >= sizeof(s->rc_after)) {
      s->rc_idx = 0;
      s->ph = json_array_size(s->rc_diff) ? S_RC_ROWS : S_RC_REPORT;
    } else {
      snprintf(s->rc_after, sizeof(s->rc_after), "%s", after);
    }
    free(after);
  } else if (j->kind == 5) {
    s->rc_missing += j->diff.missing;
    s->rc_extra += j->diff.extra;
    s->rc_different += j->diff.different;
    s->rc_in_flight += j->diff.in_flight;
    size_t i;
    json_t *x;
    json_array_foreach(j->diff.samples, i, x) if (json_array_size(s->rc_samples) < 20)
        json_array_append(s->rc_samples, x);
    diff_free(&s->rc_d);
    s->rc_d = j->diff; /* the ranges to read again, the rows to delete */
    memset(&j->diff, 0, sizeof(j->diff));
    s->rc_range = 0;
    if (json_array_size(s->rc_d.ranges) + json_array_size(s->rc_d.extra_keys) > 0)
      s->ph = S_RC_FETCH;
    else
      next_chunk(s);
  } else {
    s->rc_repaired += j->repaired;
    ack_start(s); /* the repair's ledger entry */
    if (s->rc_range < json_array_size(s->rc_d.ranges)) {
      s->rc_range++; /* a range was repaired; the next, or the deletes */
    } else {
      json_decref(s->rc_d.extra_keys);
      s->rc_d.extra_keys = NULL;
    }
    if (s->rc_range >= json_array_size(s->rc_d.ranges) &&
        json_array_size(s->rc_d.extra_keys) == 0)
      next_chunk(s);
  }
  job_free(j);
  later(s, 0);
}

static int rc_resp_data(gdx_httpc_req *r, const char *d, size_t n, void *ud) {
  (void)r;
  gdx_table_sub *s = ud;
  return gdx_buf_append(&s->body, d, n) == GDX_OK ? 0 : -1;
}

static void rc_reported(gdx_httpc_req *r, int status, long http, void *ud) {
  gdx_table_sub *s = ud;
  s->busy = 0;
  if (s->stopping) {
    maybe_stopped(s);
    return;
  }
  if (status != GDX_OK || http != 201) {
    fail(s, "reporting the reconciliation failed: %s",
         status != GDX_OK ? gdx_httpc_error(r) : "refused by the broker");
    return;
  }
  long long diff = s->rc_missing + s->rc_extra + s->rc_different;
  gdx_log(diff ? GDX_LOG_WARN : GDX_LOG_INFO, "sync", NULL,
          "subscription %lld: reconciliation: %lld chunks, %lld rows at the provider, %lld "
          "here; %lld missing, %lld extra, %lld different, %lld in flight; %lld repaired",
          s->o.authorization, s->rc_chunks, s->rc_src, s->rc_dst, s->rc_missing, s->rc_extra,
          s->rc_different, s->rc_in_flight, s->rc_repaired);
  s->runs++;
  s->last_run_differences = diff;
  s->rc_last = uv_now(s->env->loop);
  rc_clear(s);
  s->ph = S_READ;
  later(s, 0);
}

static void recon_report(gdx_table_sub *s) {
  long long diff = s->rc_missing + s->rc_extra + s->rc_different;
  const char *status = diff == 0 ? "clean" : s->rc_repaired > 0 ? "repaired" : "differences";
  json_t *o = json_pack(
      "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:O}", "status",
      status, "chunks", (json_int_t)s->rc_chunks, "chunks_differing",
      (json_int_t)s->rc_chunks_diff, "rows_source", (json_int_t)s->rc_src, "rows_target",
      (json_int_t)s->rc_dst, "rows_missing", (json_int_t)s->rc_missing, "rows_extra",
      (json_int_t)s->rc_extra, "rows_different", (json_int_t)s->rc_different, "rows_in_flight",
      (json_int_t)s->rc_in_flight, "rows_repaired", (json_int_t)s->rc_repaired, "position",
      (json_int_t)s->rc_pos, "started_at", (json_int_t)s->rc_started, "finished_at",
      (json_int_t)wall_ms(), "differences", s->rc_samples);
  free(s->rc_body);
  s->rc_body = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  char url[600];
  snprintf(url, sizeof(url), "%s/node/v1/reconciliations/%lld", s->env->nodes_url,
           s->o.authorization);
  static const char *const hv[] = {"Content-Type: application/json", NULL};
  gdx_buf_reset(&s->body);
  gdx_httpc_opts ho = {.method = "POST", .url = url, .headers = hv, .body = s->rc_body,
                       .body_len = s->rc_body ? strlen(s->rc_body) : 0, .on_data = rc_resp_data,
                       .on_done = rc_reported, .data = s, .timeout_ms = 30000,
                       .ca_file = s->env->ca_file, .cert_file = s->env->cert_file,
                       .key_file = s->env->key_file, .native = 1};
  if (s->rc_body == NULL || gdx_httpc_request(s->env->client, &ho, NULL) != GDX_OK) {
    fail(s, "cannot send the reconciliation report");
    return;
  }
  s->busy = 1;
}

static int recon_step(gdx_table_sub *s) {
  char what[96];
  const char *params[8] = {NULL};
  char *a = NULL, *u = NULL, pos[24];
  int rc;
  if (s->ph == S_RC_REPORT) {
    recon_report(s);
    return GDX_OK;
  }
  if (s->ph == S_RC_CHUNKS) {
    snprintf(what, sizeof(what), "checksums?chunk=%lld&limit=100", s->o.chunk);
    params[0] = "after";
    params[1] = s->rc_after;
  } else {
    if (s->ph == S_RC_FETCH && s->rc_range >= json_array_size(s->rc_d.ranges)) {
      repair_submit(s, NULL); /* only deletes are left: nothing to read */
      return GDX_OK;
    }
    json_t *ch = s->ph == S_RC_FETCH ? json_array_get(s->rc_d.ranges, s->rc_range)
                                     : json_array_get(s->rc_diff, s->rc_idx);
    a = json_text(json_object_get(ch, "after"));
    u = json_text(json_object_get(ch, "last"));
    snprintf(pos, sizeof(pos), "%lld", s->rc_pos);
    if (s->ph == S_RC_ROWS)
      snprintf(what, sizeof(what), "rowsums");
    else
      snprintf(what, sizeof(what), "snapshot?limit=10000");
    const char *p[] = {"after", a, "upto", u, "position", s->ph == S_RC_ROWS ? pos : NULL, NULL};
    memcpy(params, p, sizeof(p));
  }
  rc = start_read(s, what, params, &s->body, on_data, on_read);
  free(a);
  free(u);
  if (rc == GDX_OK)
    s->busy = 1;
  return rc;
}

/* ------------------------------------------------------------------ */
/* the ledger's report: applied batches to the broker                  */

typedef struct {
  gdx_table_sub *s;
  int done;               /* 0 read the ledger, 1 forget what was recorded */
  long long maxid;
  json_t *entries;
} ack_job;

static int ack_work(gdx_db_conn *c, void *arg) {
  ack_job *a = arg;
  if (a->done)
    return gdx_table_apply_ledger_forget(c, a->s->t.sub, a->maxid);
  return gdx_table_apply_ledger_read(c, a->s->t.sub, ACK_MAX, &a->entries, &a->maxid);
}

static int ack_data(gdx_httpc_req *r, const char *d, size_t n, void *ud) {
  (void)r;
  gdx_table_sub *s = ud;
  return gdx_buf_append(&s->ack_resp, d, n) == GDX_OK ? 0 : -1;
}

static void ack_job_done(int status, void *arg);

static void ack_submit(gdx_table_sub *s, int done, long long maxid) {
  ack_job *a = calloc(1, sizeof(*a));
  if (a == NULL) {
    s->ack_busy = 0;
    return;
  }
  a->s = s;
  a->done = done;
  a->maxid = maxid;
  if (gdx_db_submit(s->env->frontdb, ack_work, ack_job_done, a) != GDX_OK) {
    free(a);
    s->ack_busy = 0;
    s->ack_retry_at = uv_now(s->env->loop) + 1000;
  }
}

static void ack_sent(gdx_httpc_req *r, int status, long http, void *ud) {
  gdx_table_sub *s = ud;
  free(s->ack_body);
  s->ack_body = NULL;
  if (s->stopping) {
    s->ack_busy = 0;
    maybe_stopped(s);
    return;
  }
  if (status != GDX_OK || http != 200) {
    s->ack_busy = 0;
    s->ack_retry_at = uv_now(s->env->loop) + 5000;
    if (http == 400 || http == 404 || http == 409)
      gdx_log_warn("sync", "subscription %lld: the broker refused the ledger (%ld): %.*s",
                   s->o.authorization, http, (int)(s->ack_resp.len > 300 ? 300 : s->ack_resp.len),
                   s->ack_resp.data ? s->ack_resp.data : "");
    else
      gdx_log_debug("sync", "subscription %lld: ledger not reported: %s", s->o.authorization,
                    status != GDX_OK ? gdx_httpc_error(r) : "refused");
    return;
  }
  json_t *j = json_loadb(s->ack_resp.data ? s->ack_resp.data : "", s->ack_resp.len, 0, NULL);
  if (json_is_true(json_object_get(j, "reconcile")) && !s->rc_active)
    s->rc_wanted = 1;
  json_decref(j);
  ack_submit(s, 1, s->ack_maxid);
}

static void ack_job_done(int status, void *arg) {
  ack_job *a = arg;
  gdx_table_sub *s = a->s;
  int done = a->done;
  json_t *entries = a->entries;
  long long maxid = a->maxid;
  free(a);
  if (s->stopping || status != GDX_OK) {
    json_decref(entries);
    s->ack_busy = 0;
    if (status != GDX_OK)
      s->ack_retry_at = uv_now(s->env->loop) + 5000;
    maybe_stopped(s);
    return;
  }
  if (done) {
    s->ack_busy = 0;
    if (s->ack_more) {
      s->ack_more = 0;
      ack_start(s);
    }
    return;
  }
  if (json_array_size(entries) == 0) {
    json_decref(entries);
    s->ack_busy = 0;
    return;
  }
  s->ack_more = json_array_size(entries) == ACK_MAX;
  s->ack_maxid = maxid;
  int changes = s->have_state && s->st.snapshot_done;
  json_t *o = json_pack("{s:s, s:s, s:o, s:o}", "target", s->t.table, "phase",
                        changes ? "changes" : "snapshot", "position",
                        s->have_state ? json_integer(s->st.position) : json_null(), "entries",
                        entries);
  s->ack_body = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  char url[600];
  snprintf(url, sizeof(url), "%s/node/v1/ledger/%lld", s->env->nodes_url, s->o.authorization);
  static const char *const hv[] = {"Content-Type: application/json", NULL};
  gdx_buf_reset(&s->ack_resp);
  gdx_httpc_opts ho = {.method = "POST", .url = url, .headers = hv, .body = s->ack_body,
                       .body_len = s->ack_body ? strlen(s->ack_body) : 0, .on_data = ack_data,
                       .on_done = ack_sent, .data = s, .timeout_ms = 30000,
                       .ca_file = s->env->ca_file, .cert_file = s->env->cert_file,
                       .key_file = s->env->key_file, .native = 1};
  if (s->ack_body == NULL || gdx_httpc_request(s->env->client, &ho, NULL) != GDX_OK) {
    free(s->ack_body);
    s->ack_body = NULL;
    s->ack_busy = 0;
    s->ack_retry_at = uv_now(s->env->loop) + 5000;
  }
}

/* Reports the ledger entries not yet recorded by the broker (one report
 * at a time; more follow while there are). */
static void ack_start(gdx_table_sub *s) {
  if (s->stopping)
    return;
  if (s->ack_busy) {
    s->ack_more = 1;
    return;
  }
  s->ack_busy = 1;
  s->ack_retry_at = 0;
  ack_submit(s, 0, 0);
}

/* ------------------------------------------------------------------ */

static void next_step(gdx_table_sub *s) {
  if (s->stopping || s->busy || s->ph == S_DONE)
    return;
  uint64_t now = uv_now(s->env->loop);
  if (!s->ack_busy && s->ack_retry_at && now >= s->ack_retry_at)
    ack_start(s);
  if (s->ph == S_READ && s->have_state && s->st.snapshot_done && s->caught_up &&
      !s->rc_active) {
    int due = s->o.reconcile_every_s > 0 &&
              now - s->rc_last >= (uint64_t)s->o.reconcile_every_s * 1000;
    if (s->rc_wanted || (due && s->rc_last > 0)) /* the first timed run a period after start */
      recon_start(s);
    if (s->rc_last == 0)
      s->rc_last = now;
  }
  if (s->rc_active) {
    if (recon_step(s) != GDX_OK)
      fail(s, "cannot start a reconciliation read");
    return;
  }
  char what[96];
  const char *params[] = {"after", NULL, NULL};
  s->waited = 0;
  if (s->ph == S_SCHEMA) {
    snprintf(what, sizeof(what), "schema");
  } else if (!s->have_state || !s->st.snapshot_done) {
    snprintf(what, sizeof(what), "snapshot?limit=%lld", s->o.batch);
    params[1] = s->have_state ? s->st.snapshot_after : NULL;
  } else {
    /* caught up: wait at the provider for the next change (a long poll) */
    s->waited = s->caught_up && s->o.wait_ms > 0;
    snprintf(what, sizeof(what), "changes?limit=%lld&after=%lld", s->o.batch, s->st.position);
    if (s->waited)
      snprintf(what + strlen(what), sizeof(what) - strlen(what), "&wait_ms=%lld", s->o.wait_ms);
  }
  s->read_started = now;
  int rc = start_read(s, what, params, &s->body, on_data, on_read);
  if (rc != GDX_OK) {
    fail(s, "cannot start a read: %s", gdx_strerror(rc));
    return;
  }
  s->busy = 1;
}

/* ------------------------------------------------------------------ */

int gdx_table_sub_start(const gdx_table_sub_env *env, const gdx_table_sub_opts *o, gdx_table_sub **out) {
  gdx_table_sub *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return GDX_ENOMEM;
  s->env = env;
  s->o = *o;
  if (s->o.chunk <= 0)
    s->o.chunk = 1000;
  snprintf(s->t.sub, sizeof(s->t.sub), "sub_%lld", o->authorization);
  snprintf(s->t.table, sizeof(s->t.table), "%s", o->table);
  gdx_buf_init(&s->body, READ_MAX);
  gdx_buf_init(&s->abody, READ_MAX);
  gdx_buf_init(&s->ack_resp, 64 * 1024);
  uv_timer_init(env->loop, &s->timer);
  s->timer.data = s;
  s->ph = S_SCHEMA;
  later(s, 0);
  ack_start(s); /* what an earlier run applied but did not report */
  *out = s;
  return GDX_OK;
}

static void on_timer_closed(uv_handle_t *h) {
  gdx_table_sub *s = h->data;
  s->timer_closed = 1;
  maybe_stopped(s);
}

void gdx_table_sub_stop(gdx_table_sub *s, void (*cb)(void *), void *data) {
  s->stopping = 1;
  s->stop_cb = cb;
  s->stop_data = data;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

long long gdx_table_sub_authorization(const gdx_table_sub *s) { return s->o.authorization; }

void gdx_table_sub_reconcile(gdx_table_sub *s) {
  if (s->rc_active || s->o.once)
    return;
  s->rc_wanted = 1;
  if (!s->busy && s->caught_up && !s->stopping)
    later(s, 0);
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
  gdx_buf_appendf(out,
                  "gdx_node_subscription_reconciliations_total{authorization=\"%lld\"} %llu\n", a,
                  (unsigned long long)s->runs);
  gdx_buf_appendf(out,
                  "gdx_node_subscription_reconciliation_differences{authorization=\"%lld\"} "
                  "%lld\n",
                  a, s->last_run_differences);
}
