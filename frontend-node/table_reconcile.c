/* Reconciliation (对账) of a table subscription, on the consumer's node: one
 * run compares the target with the provider's table and repairs it.
 *
 *   S_RC_CHUNKS  the provider's chunk checksums (count and XOR of row
 *                hashes per `chunk` keys), page by page, against the same
 *                sums over the target (gdx_table_apply_chunks);
 *   S_RC_ROWS    for each differing chunk (at most DIFF_CHUNKS_MAX), the
 *                provider's row hashes and the keys it changed after the
 *                subscription's position (in flight, not differences),
 *                against the target's rows (gdx_table_apply_rowdiff);
 *   S_RC_FETCH   the provider's rows of each run of missing or different
 *                keys (snapshot?after=&upto=), applied with the deletes of
 *                extra keys and a ledger entry of kind "repair"
 *                (gdx_table_apply_repair);
 *   S_RC_REPORT  the counts and up to 20 samples to the broker
 *                (POST /node/v1/reconciliations/<authorization>).
 *
 * A run starts when the broker asks (heartbeat or ledger answer,
 * gdx_table_sub_reconcile) or every reconcile_every_s, and only while the
 * subscription is caught up; a failure anywhere ends it and another is
 * wanted once the loop is back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "table_sub_int.h"

#define DIFF_CHUNKS_MAX 1000 /* differing chunks drilled into per run */
#define SAMPLES_MAX 20

static void diff_free(gdx_table_apply_diff *d) {
  json_decref(d->repair_keys);
  json_decref(d->extra_keys);
  json_decref(d->samples);
  json_decref(d->ranges);
  memset(d, 0, sizeof(*d));
}

void gdx__table_reconcile_clear(gdx_table_sub *s) {
  gdx__table_reconcile *rc = &s->rc;
  json_decref(rc->diff);
  json_decref(rc->samples);
  diff_free(&rc->d);
  rc->diff = rc->samples = NULL;
  rc->active = 0;
}

void gdx__table_reconcile_abort(gdx_table_sub *s) {
  if (!s->rc.active)
    return;
  gdx__table_reconcile_clear(s);
  s->rc.wanted = 1;
}

static void start(gdx_table_sub *s) {
  gdx__table_reconcile *rc = &s->rc;
  gdx__table_reconcile_clear(s);
  rc->wanted = 0;
  rc->active = 1;
  rc->after[0] = '\0';
  rc->diff = json_array();
  rc->samples = json_array();
  rc->idx = 0;
  rc->chunks = rc->chunks_diff = rc->src = rc->dst = rc->missing = rc->extra = rc->different =
      rc->in_flight = rc->repaired = 0;
  rc->pos = s->st.position;
  rc->started = gdx__table_wall_ms();
  s->ph = S_RC_CHUNKS;
  gdx_log_info("sync", "subscription %lld: reconciliation of %s started at position %lld",
               s->o.authorization, s->t.table, rc->pos);
}

void gdx__table_reconcile_maybe_start(gdx_table_sub *s, uint64_t now) {
  gdx__table_reconcile *rc = &s->rc;
  if (rc->active)
    return;
  int due = s->o.reconcile_every_s > 0 && now - rc->last >= (uint64_t)s->o.reconcile_every_s * 1000;
  if (rc->wanted || (due && rc->last > 0)) /* the first timed run a period after start */
    start(s);
  if (rc->last == 0)
    rc->last = now;
}

static char *json_text(const json_t *v) {
  return json_is_array(v) ? json_dumps(v, JSON_COMPACT) : NULL;
}

/* A repair job: the provider's rows of one range (page), or with page
 * NULL the deletes of the rows the provider does not have. */
static void repair_submit(gdx_table_sub *s, json_t *page) {
  gdx__table_reconcile *rc = &s->rc;
  gdx__table_job *job = gdx__table_job_new(J_REPAIR);
  if (job == NULL) {
    json_decref(page);
    gdx__table_sub_fail(s, "out of memory");
    return;
  }
  job->batch = page ? page : json_pack("{s:[]}", "rows");
  if (page) {
    job->chunk = json_incref(json_array_get(rc->d.ranges, rc->range));
    job->diff.repair_keys = json_incref(rc->d.repair_keys);
    job->diff.extra_keys = json_array();
  } else {
    job->chunk = json_incref(json_array_get(rc->diff, rc->idx));
    job->diff.repair_keys = json_array();
    job->diff.extra_keys = json_incref(rc->d.extra_keys);
  }
  gdx__table_sub_submit(s, job);
}

void gdx__table_reconcile_read(gdx_table_sub *s, json_t *answer) {
  gdx__table_reconcile *rc = &s->rc;
  if (s->ph == S_RC_FETCH) {
    repair_submit(s, answer);
    return;
  }
  gdx__table_job *job = gdx__table_job_new(s->ph == S_RC_CHUNKS ? J_CHUNKS : J_ROWS);
  if (job == NULL) {
    json_decref(answer);
    gdx__table_sub_fail(s, "out of memory");
    return;
  }
  job->batch = answer;
  if (job->kind == J_CHUNKS) {
    job->differing = json_array();
  } else {
    job->chunk = json_incref(json_array_get(rc->diff, rc->idx));
    job->diff.repair_keys = json_array();
    job->diff.extra_keys = json_array();
    job->diff.samples = json_array();
    job->diff.ranges = json_array();
  }
  gdx__table_sub_submit(s, job);
}

int gdx__table_reconcile_work(gdx_db_conn *c, gdx__table_job *j) {
  const gdx_table_apply_target *t = &j->s->t;
  char *err = j->err;
  size_t errlen = sizeof(j->err);
  if (j->kind == J_CHUNKS)
    return gdx_table_apply_chunks(c, t, json_object_get(j->batch, "chunks"), &j->target_rows,
                                  j->differing, err, errlen);
  if (j->kind == J_ROWS)
    return gdx_table_apply_rowdiff(c, t, j->chunk, j->batch, &j->diff, err, errlen);
  return gdx_table_apply_repair(c, t, j->chunk, j->batch, j->diff.repair_keys, j->diff.extra_keys,
                                &j->repaired, err, errlen);
}

/* The differing chunk is done: on to the next, or to the report. */
static void next_chunk(gdx_table_sub *s) {
  diff_free(&s->rc.d);
  s->rc.idx++;
  s->ph = s->rc.idx >= json_array_size(s->rc.diff) ? S_RC_REPORT : S_RC_ROWS;
}

/* A page of chunk checksums compared: the differing ones kept, the next
 * page, or on to their rows. */
static void chunks_done(gdx_table_sub *s, gdx__table_job *j) {
  gdx__table_reconcile *rc = &s->rc;
  json_t *chunks = json_object_get(j->batch, "chunks");
  size_t i;
  json_t *c;
  rc->chunks += (long long)json_array_size(chunks);
  json_array_foreach(chunks, i, c) rc->src += json_integer_value(json_object_get(c, "rows"));
  rc->dst += j->target_rows;
  json_array_foreach(j->differing, i, c) {
    rc->chunks_diff++;
    if (json_array_size(rc->diff) < DIFF_CHUNKS_MAX)
      json_array_append(rc->diff, c);
  }
  json_t *last = json_object_get(json_array_get(chunks, json_array_size(chunks) - 1), "last");
  char *after = json_text(last);
  if (json_is_true(json_object_get(j->batch, "done")) || after == NULL ||
      strlen(after) >= sizeof(rc->after)) {
    rc->idx = 0;
    s->ph = json_array_size(rc->diff) ? S_RC_ROWS : S_RC_REPORT;
  } else {
    snprintf(rc->after, sizeof(rc->after), "%s", after);
  }
  free(after);
}

/* A chunk compared row by row: its ranges to read again and its rows to
 * delete, or the next chunk. */
static void rows_done(gdx_table_sub *s, gdx__table_job *j) {
  gdx__table_reconcile *rc = &s->rc;
  rc->missing += j->diff.missing;
  rc->extra += j->diff.extra;
  rc->different += j->diff.different;
  rc->in_flight += j->diff.in_flight;
  size_t i;
  json_t *x;
  json_array_foreach(j->diff.samples, i, x) if (json_array_size(rc->samples) < SAMPLES_MAX)
      json_array_append(rc->samples, x);
  diff_free(&rc->d);
  rc->d = j->diff; /* the ranges to read again, the rows to delete */
  memset(&j->diff, 0, sizeof(j->diff));
  rc->range = 0;
  if (json_array_size(rc->d.ranges) + json_array_size(rc->d.extra_keys) > 0)
    s->ph = S_RC_FETCH;
  else
    next_chunk(s);
}

/* A range repaired (or the deletes done): the next, or the next chunk. */
static void repair_done(gdx_table_sub *s, gdx__table_job *j) {
  gdx__table_reconcile *rc = &s->rc;
  rc->repaired += j->repaired;
  gdx_ledger_outbox_kick(s->outbox); /* the repair's ledger entry */
  if (rc->range < json_array_size(rc->d.ranges)) {
    rc->range++;
  } else {
    json_decref(rc->d.extra_keys);
    rc->d.extra_keys = NULL;
  }
  if (rc->range >= json_array_size(rc->d.ranges) && json_array_size(rc->d.extra_keys) == 0)
    next_chunk(s);
}

void gdx__table_reconcile_job_done(gdx_table_sub *s, gdx__table_job *j, int status) {
  if (status != GDX_OK) {
    char err[300];
    snprintf(err, sizeof(err), "%s", j->err[0] ? j->err : gdx_strerror(status));
    gdx__table_job_free(j);
    gdx__table_sub_fail(s, "reconciliation failed: %s", err);
    return;
  }
  s->backoff_ms = 0;
  if (j->kind == J_CHUNKS)
    chunks_done(s, j);
  else if (j->kind == J_ROWS)
    rows_done(s, j);
  else
    repair_done(s, j);
  gdx__table_job_free(j);
  gdx__table_sub_later(s, 0);
}

void gdx__table_reconcile_posted(gdx_table_sub *s, int status, long http, const char *why) {
  gdx__table_reconcile *rc = &s->rc;
  if (status != GDX_OK || http != 201) {
    gdx__table_sub_fail(s, "reporting the reconciliation failed: %s",
                        status != GDX_OK ? why : "refused by the broker");
    return;
  }
  long long diff = rc->missing + rc->extra + rc->different;
  gdx_log(diff ? GDX_LOG_WARN : GDX_LOG_INFO, "sync", NULL,
          "subscription %lld: reconciliation: %lld chunks, %lld rows at the provider, %lld "
          "here; %lld missing, %lld extra, %lld different, %lld in flight; %lld repaired",
          s->o.authorization, rc->chunks, rc->src, rc->dst, rc->missing, rc->extra, rc->different,
          rc->in_flight, rc->repaired);
  rc->runs++;
  rc->last_differences = diff;
  rc->last = uv_now(s->env->loop);
  gdx__table_reconcile_clear(s);
  s->ph = S_READ;
  gdx__table_sub_later(s, 0);
}

static void report(gdx_table_sub *s) {
  gdx__table_reconcile *rc = &s->rc;
  long long diff = rc->missing + rc->extra + rc->different;
  const char *status = diff == 0 ? "clean" : rc->repaired > 0 ? "repaired" : "differences";
  json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:O}",
                        "status", status, "chunks", (json_int_t)rc->chunks, "chunks_differing",
                        (json_int_t)rc->chunks_diff, "rows_source", (json_int_t)rc->src,
                        "rows_target", (json_int_t)rc->dst, "rows_missing", (json_int_t)rc->missing,
                        "rows_extra", (json_int_t)rc->extra, "rows_different",
                        (json_int_t)rc->different, "rows_in_flight", (json_int_t)rc->in_flight,
                        "rows_repaired", (json_int_t)rc->repaired, "position", (json_int_t)rc->pos,
                        "started_at", (json_int_t)rc->started, "finished_at",
                        (json_int_t)gdx__table_wall_ms(), "differences", rc->samples);
  char path[64];
  snprintf(path, sizeof(path), "/node/v1/reconciliations/%lld", s->o.authorization);
  int ok = o && gdx__table_sub_post(s, path, o) == GDX_OK;
  json_decref(o);
  if (!ok)
    gdx__table_sub_fail(s, "cannot send the reconciliation report");
}

int gdx__table_reconcile_step(gdx_table_sub *s) {
  gdx__table_reconcile *rc = &s->rc;
  if (s->ph == S_RC_REPORT) {
    report(s);
    return GDX_OK;
  }
  if (s->ph == S_RC_CHUNKS) {
    char what[96];
    snprintf(what, sizeof(what), "checksums?chunk=%lld&limit=100", s->o.chunk);
    const char *params[] = {"after", rc->after, NULL};
    return gdx__table_sub_read(s, what, params);
  }
  if (s->ph == S_RC_FETCH && rc->range >= json_array_size(rc->d.ranges)) {
    repair_submit(s, NULL); /* only deletes are left: nothing to read */
    return GDX_OK;
  }
  json_t *ch = s->ph == S_RC_FETCH ? json_array_get(rc->d.ranges, rc->range)
                                   : json_array_get(rc->diff, rc->idx);
  char *a = json_text(json_object_get(ch, "after"));
  char *u = json_text(json_object_get(ch, "last"));
  char pos[24];
  snprintf(pos, sizeof(pos), "%lld", rc->pos);
  const char *params[] = {"after", a, "upto", u, "position", s->ph == S_RC_ROWS ? pos : NULL, NULL};
  int r = gdx__table_sub_read(s, s->ph == S_RC_ROWS ? "rowsums" : "snapshot?limit=10000", params);
  free(a);
  free(u);
  return r;
}

void gdx__table_reconcile_metrics(gdx_table_sub *s, gdx_buf *out) {
  long long a = s->o.authorization;
  gdx_buf_appendf(out, "gdx_node_subscription_reconciliations_total{authorization=\"%lld\"} %llu\n",
                  a, (unsigned long long)s->rc.runs);
  gdx_buf_appendf(out,
                  "gdx_node_subscription_reconciliation_differences{authorization=\"%lld\"} "
                  "%lld\n",
                  a, s->rc.last_differences);
}
