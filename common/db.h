/* MariaDB access that never blocks the event loop.
 *
 * A pool of worker threads, each owning one MariaDB connection, runs jobs
 * submitted from the loop thread and reports back on the loop through a
 * uv_async. A job is a function that runs on a worker with that worker's
 * connection (gdx_db_conn) and may run several statements, or a transaction;
 * its done callback runs on the loop thread. The queue is bounded: when it is
 * full gdx_db_submit() fails with GDX_EBUSY, which the HTTP edge turns into
 * 503, so a slow database makes clients wait or retry, not the server grow.
 *
 * SQL goes only through prepared statements with bound parameters
 * (gdx_db_exec, gdx_db_query); each connection caches its prepared
 * statements. A lost connection is re-established, and a statement that
 * failed because of it outside a transaction is retried once.
 */
#ifndef GDX_DB_H
#define GDX_DB_H

#include <mysql.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct gdx_db_pool gdx_db_pool;
typedef struct gdx_db_conn gdx_db_conn;

typedef struct {
  const char *host;     /* NULL or "" with socket */
  const char *socket;   /* unix socket path, preferred when set */
  unsigned port;
  const char *user;
  const char *password; /* never logged */
  const char *database;
  unsigned pool_size;   /* worker threads = connections */
  unsigned queue_max;   /* jobs waiting; more get GDX_EBUSY */
  unsigned connect_timeout_s;
  /* Optional: runs on the worker thread on every new connection of a pool
   * (at start, and after the database was lost) before any job uses it -
   * a component's migrations (migrate.h). A failure (err set) drops the
   * connection, and the job that wanted it fails with GDX_EDB, as when the
   * database is down; the next job tries again. */
  int (*on_connect)(MYSQL *my, void *arg, char *err, size_t errlen);
  void *on_connect_arg;
} gdx_db_options;

typedef struct {
  uint64_t jobs_total, jobs_failed, jobs_rejected, reconnects;
  unsigned queued, busy_workers, connected_workers, pool_size;
} gdx_db_stats;

/* --- on the loop thread --- */
/* Starts the workers; they connect in the background (a database that is
 * down at start-up is retried; jobs fail with GDX_EDB meanwhile). */
int gdx_db_pool_start(uv_loop_t *loop, const gdx_db_options *opts, gdx_db_pool **out);
/* Waits for queued jobs to finish, joins the workers and frees the pool. */
void gdx_db_pool_stop(gdx_db_pool *pool);

typedef int (*gdx_db_work_fn)(gdx_db_conn *conn, void *arg);
typedef void (*gdx_db_done_fn)(int status, void *arg);
/* Queues `work` (worker thread) then `done` (loop thread) with its return
 * value. GDX_EBUSY when the queue is full; then neither callback runs. */
int gdx_db_submit(gdx_db_pool *pool, gdx_db_work_fn work, gdx_db_done_fn done, void *arg);
void gdx_db_pool_stats(gdx_db_pool *pool, gdx_db_stats *out);

/* --- on a worker thread, with its connection --- */
typedef enum { GDX_DB_NULL, GDX_DB_INT, GDX_DB_TEXT } gdx_db_type;

typedef struct {
  gdx_db_type type;
  long long i;
  const char *s;
  size_t len;
} gdx_db_param;

#define GDX_DB_P_NULL ((gdx_db_param){GDX_DB_NULL, 0, NULL, 0})
#define GDX_DB_P_INT(v) ((gdx_db_param){GDX_DB_INT, (long long)(v), NULL, 0})
#define GDX_DB_P_STR(v) ((gdx_db_param){GDX_DB_TEXT, 0, (v), strlen(v)})
#define GDX_DB_P_BIN(v, n) ((gdx_db_param){GDX_DB_TEXT, 0, (v), (n)})

/* A result set with every value as text (NULL for SQL NULL). */
typedef struct {
  size_t nrows, ncols;
  char **cells;   /* nrows * ncols */
  size_t *lens;
  char **names;   /* column names */
} gdx_db_result;

int gdx_db_exec(gdx_db_conn *c, const char *sql, const gdx_db_param *params, size_t n,
                uint64_t *affected, uint64_t *insert_id);
/* At most max_rows rows are kept (GDX_ETOOBIG beyond). */
int gdx_db_query(gdx_db_conn *c, const char *sql, const gdx_db_param *params, size_t n,
                 size_t max_rows, gdx_db_result *out);
/* The text of (row, col), NULL for SQL NULL or outside the result. */
const char *gdx_db_get(const gdx_db_result *r, size_t row, size_t col);
void gdx_db_result_free(gdx_db_result *r);

/* Typed reading of one row. Every value arrives as text; a getter converts
 * one column (common/num.h: the whole text, within [min, max]). The first
 * failure - SQL NULL where a value is needed, text that is not a number, a
 * value out of range - sticks in `rc` (GDX_EINVAL) with the column in
 * `bad_col`, so a caller reads every column it needs and checks once:
 *
 *   gdx_db_row w = gdx_db_row_at(&r, 0);
 *   long long id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
 *   int must_change = gdx_db_flag(&w, 8);
 *   if (w.rc) return gdx_db_row_fail(&w, "accounts");
 *
 * A schema typed column that does not convert is a bug or a damaged row,
 * never user input, so callers fail the job (a logged 500). */
typedef struct {
  const gdx_db_result *res;
  size_t row;
  int rc;       /* GDX_OK, or GDX_EINVAL since the first bad column */
  int bad_col;  /* that column, -1 while rc is GDX_OK */
} gdx_db_row;

#define GDX_DB_ID_MAX 9223372036854775807LL /* BIGINT ids */
#define GDX_DB_INT_MAX 2147483647LL          /* INT columns */

gdx_db_row gdx_db_row_at(const gdx_db_result *r, size_t row);
/* The column as an integer in [min, max]; min after a failure. */
long long gdx_db_i64(gdx_db_row *w, size_t col, long long min, long long max);
/* An unsigned 64-bit column (BIGINT UNSIGNED: a row hash, a BIT_XOR of
 * them); 0 after a failure. */
uint64_t gdx_db_u64(gdx_db_row *w, size_t col);
/* The same, with SQL NULL read as if_null (which need not be in range). */
long long gdx_db_i64_or(gdx_db_row *w, size_t col, long long min, long long max,
                        long long if_null);
/* A 0/1 column (TINYINT, a comparison): 0 or 1. */
int gdx_db_flag(gdx_db_row *w, size_t col);
/* Logs which column of `what` did not convert and returns GDX_EDB, for a
 * job to return. */
int gdx_db_row_fail(const gdx_db_row *w, const char *what);
/* A statement without any value in it - DDL such as CREATE TRIGGER, which
 * MariaDB will not prepare - whose identifiers the caller has checked
 * (gdx_db_ident_ok) and quoted. Never for data: that goes through
 * gdx_db_exec with bound parameters. */
int gdx_db_exec_ddl(gdx_db_conn *c, const char *sql);
/* 1 when s is a plain identifier: 1-64 of [A-Za-z0-9_], not all digits. */
int gdx_db_ident_ok(const char *s);
int gdx_db_begin(gdx_db_conn *c);
int gdx_db_commit(gdx_db_conn *c);
int gdx_db_rollback(gdx_db_conn *c);
int gdx_db_ping(gdx_db_conn *c);
/* The last error text of this connection (no parameters, no secrets). */
const char *gdx_db_error(gdx_db_conn *c);
unsigned gdx_db_errno(gdx_db_conn *c);

/* --- blocking helpers for start-up code and tools (not on the loop) --- */
/* Connects one MYSQL handle with the options; err gets a message. */
MYSQL *gdx_db_connect(const gdx_db_options *opts, int multi_statements, char *err,
                      size_t errlen);

#endif
