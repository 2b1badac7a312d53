/* The table adapter's internals, shared by its files:
 *   table.c            the adapter: settings, requests, identical reads coalesced,
 *                      change batches kept a moment, long polls parked and woken,
 *                      metrics
 *   table_capture.c    what the adapter knows of the table: columns and key from
 *                      information_schema, the change-log triggers, the health check
 *                      that notices a changed schema or a lost trigger, the purge
 *   table_read.c       a read's body, made by a database worker: snapshot pages,
 *                      change batches (triggers or timestamp), zstd; the SQL pieces
 *                      every read uses
 *   table_gaps.c       whether a gap in the change log may still fill: a change
 *                      batch ends before the first one that may
 *   table_checksums.c  checksums and rowsums, for reconciliation
 *   table_compare.c    compare (比对): the submitted records, checked, and their verdicts
 * A read is a read_job: made, coalesced and answered on the loop (table.c), its
 * body written on a worker of the front-end pool (gdx__table_read_work).
 */
#ifndef GDX_ADAPTER_TABLE_INT_H
#define GDX_ADAPTER_TABLE_INT_H

#include <jansson.h>
#include <stdint.h>

#include "adapter.h"
#include "digest.h"

#define MAX_COLS 256

typedef struct {
  char name[65];
  char type[128];
  int nullable;
} tcol;

typedef struct {
  int ncols, npk;
  tcol cols[MAX_COLS];
  int pk[16];           /* indexes into cols */
  char fingerprint[GDX_SHA256_HEX_SIZE];
  int triggers;         /* gdx triggers present on the table */
  long long position;   /* highest seq of the change log for this table */
  long long backlog;    /* change-log rows kept for this table */
  char error[300];      /* why the table cannot be served, "" when it can */
} tschema;

/* A change-log seq seen committed by `at` (uv_hrtime), for table_gaps.c. */
typedef struct {
  long long seq;
  uint64_t at;
} seen_mark;

#define SEEN_MAX 32

typedef struct {
  gdx_adapter *self;
  char table[65];
  int triggers;          /* capture = "triggers" */
  char ts_col[65];
  char *items[MAX_COLS];
  int nitems;
  int ready;             /* first inspection done and good */
  char baseline[GDX_SHA256_HEX_SIZE]; /* the fingerprint the node started with */
  tschema s;             /* the last inspection */
  int busy;
  void (*done)(gdx_adapter *);
  struct read_job *jobs; /* reads in flight or parked (long polls) */
  uv_timer_t *wake;      /* parked reads look for news */
  int waking, closing, purging;
  long long purged;      /* the change log is purged up to here */
  unsigned long long coalesced, cache_hits;
  struct read_job *cache; /* answers just given, newest first (READ_CACHE_MS) */
  int ncache;
  uv_mutex_t seen_mu;     /* the marks below, from the workers' reads */
  seen_mark seen[SEEN_MAX];
  int nseen;
} table_res;

#define READ_MAX_ROWS 10000
#define KEY_MAX 16
/* How long a writer may take from the moment its change is numbered (a
 * seq handed out, a statement's time taken) to the row it writes, while
 * nothing shows the change: a reader waits that long before it passes. */
#define GRACE_MS 1000

enum { OP_SNAPSHOT, OP_CHANGES, OP_CHECKSUMS, OP_ROWSUMS, OP_COMPARE };

/* One read of the front-end database. Identical reads (same path and
 * query) that arrive while one is in flight or parked share it: with many
 * subscribers at the same position one query serves them all. */
typedef struct read_job {
  table_res *r;
  struct read_job *next;    /* in r->jobs */
  char *key;                /* "<rest>?<query>" */
  gdx_http_req **reqs;      /* who waits for the answer; NULL once gone */
  int nreqs, cap;
  int op;
  tschema s;                /* the schema the request was checked against */
  int sel[MAX_COLS], nsel;  /* selected columns: the key first, then the items */
  char *after_key[KEY_MAX]; /* the last key before the range */
  int has_after;
  char *upto_key[KEY_MAX];  /* the last key of the range (inclusive) */
  int has_upto;
  long long after_seq;      /* changes: the position; rowsums: for "pending" */
  int has_seq;
  long long limit, chunk;
  long long wait_ms;
  uint64_t deadline;        /* loop time when a parked read answers empty */
  int in_db, parked;
  uint64_t cached_at;       /* in r->cache since (loop time) */
  int empty;                /* changes: nothing after the position yet */
  gdx_buf in;               /* compare: the request body */
  json_t *records;          /* compare: the records, checked */
  long long quota_left;     /* compare: -1 when the broker set no limit */
  size_t nrecords;
  char *body;
  size_t blen;
  char *zbody;              /* body compressed with zstd, for readers that accept it */
  size_t zlen;
  int want_zstd;            /* the first reader accepts zstd: compress in the worker */
  int status;
  char code[40], msg[300];
} read_job;

/* "`col` >= <moment ?>" with the microseconds bound as two integers (a
 * division would round them). */
#define TS_AT "FROM_UNIXTIME(? DIV 1000000) + INTERVAL (? MOD 1000000) MICROSECOND"

/* table.c: a job's life on the loop */
void gdx__table_read_job_free(read_job *j);
/* Queues the job's read on the front-end pool: GDX_EBUSY when it is full. */
int gdx__table_submit_read(read_job *j);
/* Answers everyone waiting for the job and frees (or keeps) it. */
void gdx__table_answer(read_job *j, int db_status);
/* A reader gone before its answer (gdx_http_req_on's on_abort). */
void gdx__table_read_abort(gdx_http_req *req);

/* table_capture.c */
void gdx__table_health(gdx_adapter *a, void (*done)(gdx_adapter *a));
void gdx__table_hint(gdx_adapter *a, const json_t *hb);
/* The index of column name in s, or -1. */
int gdx__table_col_index(const tschema *s, const char *name);

/* table_read.c: the read on a worker (gdx_db_submit's work) */
int gdx__table_read_work(gdx_db_conn *c, void *arg);
/* Pages and change batches of some size travel compressed; the body is
 * compressed once (left as it is when that fails). */
int gdx__table_compressible(const read_job *j);
void gdx__table_compress_body(read_job *j);
/* A 503 table_unavailable naming what failed; GDX_OK (the answer is set). */
int gdx__table_read_fail(read_job *j, gdx_db_conn *c, const char *what);
/* SQL pieces: the selected columns; "<key> IN (?, …)" for n keys; the
 * key range (its parameters into p, their count back); ORDER BY the key. */
void gdx__table_sel_sql(const read_job *j, gdx_buf *b);
void gdx__table_keys_in_sql(const tschema *s, size_t n, gdx_buf *b);
size_t gdx__table_range_sql(const read_job *j, gdx_buf *b, gdx_db_param *p);
void gdx__table_order_sql(const tschema *s, gdx_buf *b);
json_t *gdx__table_text_key(const json_t *key);

/* table_gaps.c */
/* Records that seq was committed by `at` (uv_hrtime taken after the read
 * that saw it); any worker. */
void gdx__table_seen(table_res *r, long long seq, uint64_t at);
/* How many of a batch's entries may be served: seqs[0..n) (ascending, read
 * after `after`; the read ended at read_at) up to the first gap that may
 * still fill, n when none may. GDX_OK, or the error of a check that failed. */
int gdx__table_gaps_upto(table_res *r, gdx_db_conn *c, long long after, const long long *seqs,
                         size_t n, uint64_t read_at, size_t *upto);

/* table_checksums.c */
int gdx__table_checksums_work(read_job *j, gdx_db_conn *c, json_t *out);
int gdx__table_rowsums_work(read_job *j, gdx_db_conn *c, json_t *out);

/* table_compare.c */
int gdx__table_compare_work(read_job *j, gdx_db_conn *c, json_t *out);
/* POST /r/<name>/compare: collects and checks the body, then reads. */
void gdx__table_serve_compare(table_res *r, gdx_http_req *req, read_job *j);

#endif
