/* A table subscription's state, shared by its loop (table_sub.c) and its
 * reconciliation runs (table_reconcile.c). Internal to gdx-node.
 *
 * The loop owns the timer, the reads through the broker and the jobs on
 * the front-end database; a reconciliation run is a stretch of the loop's
 * phases (S_RC_*) that uses them: the loop asks it for its next read
 * (gdx__table_reconcile_step) and hands it the answers and the jobs' ends.
 */
#ifndef GDX_TABLE_SUB_INT_H
#define GDX_TABLE_SUB_INT_H

#include <jansson.h>
#include <stdint.h>

#include "ledger_outbox.h"
#include "page.h"
#include "table_apply.h"
#include "table_sub.h"

#define GDX__TABLE_KEY_TEXT 2048 /* a key as JSON: where a snapshot or checksums read stands */

typedef enum {
  S_SCHEMA,    /* the schema, then */
  S_READ,      /* snapshot pages, then change batches */
  S_RC_CHUNKS, /* reconciliation: chunk checksums of the whole table */
  S_RC_ROWS,   /* row checksums of a differing chunk */
  S_RC_FETCH,  /* the provider's rows of a chunk to repair */
  S_RC_REPORT, /* the run's report to the broker */
  S_DONE       /* once = true: the snapshot is in */
} gdx__table_sub_phase;

/* A reconciliation run (table_reconcile.c) and what the runs so far
 * showed. */
typedef struct {
  int wanted, active;
  uint64_t last;                   /* loop time of the last run's end */
  char after[GDX__TABLE_KEY_TEXT]; /* checksums paging */
  json_t *diff;                    /* differing chunks */
  size_t idx;
  gdx_table_apply_diff d; /* of the chunk being drilled */
  size_t range;           /* next of d.ranges to read and repair */
  long long chunks, chunks_diff, src, dst, missing, extra, different, in_flight, repaired, pos;
  long long started; /* unix ms */
  json_t *samples;
  /* for /metrics */
  uint64_t runs;
  long long last_differences;
} gdx__table_reconcile;

struct gdx_table_sub {
  const gdx_table_sub_env *env;
  gdx_table_sub_opts o;
  uv_timer_t timer;
  gdx__table_sub_phase ph;
  int busy; /* a read or a database job in flight */
  int stopping, timer_closed;
  void (*stop_cb)(void *);
  void *stop_data;
  json_t *schema;
  int prepared; /* the target table exists (this run) */
  gdx_table_apply_target t;
  gdx_table_apply_state st;
  int have_state;
  int caught_up; /* the last change batch was empty */
  uint64_t read_started;
  gdx_buf body;    /* the answer of the read in flight */
  gdx_buf abody;   /* the next snapshot page, read while the last one is applied */
  gdx_page *ahead; /* … and parsed */
  char ahead_after[GDX__TABLE_KEY_TEXT];
  int ahead_busy, want_ahead;
  uint64_t backoff_ms;
  char last_error[300];
  gdx_ledger_outbox *outbox; /* the ledger's way to the broker; NULL once stopped */
  gdx__table_reconcile rc;
  /* for /metrics */
  uint64_t batches, errors, resets;
};

/* A job on the front-end database. */
typedef enum { J_LOAD, J_PAGE, J_CHANGES, J_RESET, J_CHUNKS, J_ROWS, J_REPAIR } gdx__table_job_kind;

typedef struct {
  gdx_table_sub *s;
  gdx__table_job_kind kind;
  json_t *batch;  /* reconciliation reads */
  gdx_page *page; /* a snapshot page (J_PAGE) or a change batch (J_CHANGES) */
  int prepare;    /* the target table is made first */
  char after[GDX__TABLE_KEY_TEXT];
  long long after_pos;
  gdx_table_apply_state st;
  int found;
  json_t *chunk, *differing;
  long long target_rows, repaired;
  gdx_table_apply_diff diff;
  char err[300];
} gdx__table_job;

/* table_sub.c, for the reconciliation */
void gdx__table_sub_fail(gdx_table_sub *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void gdx__table_sub_later(gdx_table_sub *s, uint64_t ms);
/* A new job (NULL: out of memory) and its submission (it is freed when it
 * cannot be queued). */
gdx__table_job *gdx__table_job_new(gdx__table_job_kind kind);
void gdx__table_job_free(gdx__table_job *j);
void gdx__table_sub_submit(gdx_table_sub *s, gdx__table_job *j);
/* GET /node/v1/tables/<authorization>/<what>[?&name=value…] into s->body;
 * the answer comes back to the loop (and to gdx__table_reconcile_read in
 * the S_RC_* phases). */
int gdx__table_sub_read(gdx_table_sub *s, const char *what, const char *const *params);
/* POST <path> with body; the answer goes to gdx__table_reconcile_posted. */
int gdx__table_sub_post(gdx_table_sub *s, const char *path, const json_t *body);
long long gdx__table_wall_ms(void);

/* table_reconcile.c */
/* Starts a run when one is wanted or due (the loop is caught up). */
void gdx__table_reconcile_maybe_start(gdx_table_sub *s, uint64_t now);
/* The run's next read, or its report. */
int gdx__table_reconcile_step(gdx_table_sub *s);
/* A read's answer (taken) in an S_RC_* phase. */
void gdx__table_reconcile_read(gdx_table_sub *s, json_t *answer);
/* The broker's answer to the run's report (status, http and why as
 * gdx_broker_call reports them). */
void gdx__table_reconcile_posted(gdx_table_sub *s, int status, long http, const char *why);
/* The database's part of a J_CHUNKS, J_ROWS or J_REPAIR job (a worker). */
int gdx__table_reconcile_work(gdx_db_conn *c, gdx__table_job *j);
/* Its end, on the loop (the job is freed). */
void gdx__table_reconcile_job_done(gdx_table_sub *s, gdx__table_job *j, int status);
/* A failure: the run starts over later. */
void gdx__table_reconcile_abort(gdx_table_sub *s);
/* Frees what a run holds. */
void gdx__table_reconcile_clear(gdx_table_sub *s);
void gdx__table_reconcile_metrics(gdx_table_sub *s, gdx_buf *out);

#endif
