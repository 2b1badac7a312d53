#include "db.h"

#include <errmsg.h>
#include <mysqld_error.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "num.h"

#define STMT_CACHE 64

typedef struct job {
  struct job *next;
  gdx_db_work_fn work;
  gdx_db_done_fn done;
  void *arg;
  int status;
} job;

typedef struct {
  char *sql;
  MYSQL_STMT *st;
} cached_stmt;

struct gdx_db_conn {
  gdx_db_pool *pool;
  MYSQL *my;
  int in_txn;
  cached_stmt cache[STMT_CACHE];
  unsigned ncache, next_evict;
  char err[512];
  unsigned errnum;
  int counted; /* counted in stats.connected_workers */
  pthread_t thread;
};

struct gdx_db_pool {
  uv_loop_t *loop;
  uv_async_t async;
  gdx_db_options opts;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job *qhead, *qtail;
  job *dhead, *dtail;
  int stopping;
  gdx_db_conn *conns;
  gdx_db_stats stats;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void) { mysql_library_init(0, NULL, NULL); }

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

MYSQL *gdx_db_connect(const gdx_db_options *o, int multi, char *err, size_t errlen) {
  pthread_once(&lib_once, lib_init);
  MYSQL *my = mysql_init(NULL);
  if (my == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  unsigned timeout = o->connect_timeout_s ? o->connect_timeout_s : 5;
  my_bool off = 0;
  mysql_optionsv(my, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_optionsv(my, MYSQL_OPT_RECONNECT, &off);
  mysql_optionsv(my, MYSQL_OPT_LOCAL_INFILE, &off);
  mysql_optionsv(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  mysql_optionsv(my, MYSQL_INIT_COMMAND,
                 "SET time_zone='+00:00', sql_mode='STRICT_ALL_TABLES,NO_ZERO_DATE,"
                 "NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'");
  const char *sock = o->socket && *o->socket ? o->socket : NULL;
  const char *host = sock ? "localhost" : (o->host && *o->host ? o->host : "127.0.0.1");
  if (!mysql_real_connect(my, host, o->user, o->password, o->database, o->port, sock,
                          multi ? CLIENT_MULTI_STATEMENTS : 0)) {
    snprintf(err, errlen, "cannot connect to MariaDB at %s as %s: %s", sock ? sock : host,
             o->user ? o->user : "(default user)", mysql_error(my));
    mysql_close(my);
    return NULL;
  }
  return my;
}

/* ------------------------------------------------------------------ */
/* statements on a worker                                              */

static void conn_set_error(gdx_db_conn *c, unsigned num, const char *msg) {
  c->errnum = num;
  snprintf(c->err, sizeof(c->err), "%s", msg);
}

static void conn_drop(gdx_db_conn *c) {
  for (unsigned i = 0; i < c->ncache; i++) {
    mysql_stmt_close(c->cache[i].st);
    free(c->cache[i].sql);
  }
  c->ncache = 0;
  if (c->my)
    mysql_close(c->my);
  c->my = NULL;
  c->in_txn = 0;
}

static int conn_ensure(gdx_db_conn *c) {
  if (c->my)
    return GDX_OK;
  char err[512];
  const gdx_db_options *o = &c->pool->opts;
  c->my = gdx_db_connect(o, 0, err, sizeof(err));
  if (c->my && o->on_connect && o->on_connect(c->my, o->on_connect_arg, err, sizeof(err))) {
    mysql_close(c->my);
    c->my = NULL;
  }
  if (c->my == NULL) {
    conn_set_error(c, CR_CONNECTION_ERROR, err);
    return GDX_EDB;
  }
  return GDX_OK;
}

static int is_gone(unsigned e) {
  return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == ER_CONNECTION_KILLED ||
         e == CR_CONNECTION_ERROR || e == ER_SERVER_SHUTDOWN;
}

static MYSQL_STMT *stmt_get(gdx_db_conn *c, const char *sql) {
  for (unsigned i = 0; i < c->ncache; i++)
    if (strcmp(c->cache[i].sql, sql) == 0)
      return c->cache[i].st;
  MYSQL_STMT *st = mysql_stmt_init(c->my);
  if (st == NULL) {
    conn_set_error(c, mysql_errno(c->my), mysql_error(c->my));
    return NULL;
  }
  if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0) {
    conn_set_error(c, mysql_stmt_errno(st), mysql_stmt_error(st));
    mysql_stmt_close(st);
    return NULL;
  }
  unsigned slot = c->ncache;
  if (slot == STMT_CACHE) {
    slot = c->next_evict++ % STMT_CACHE;
    mysql_stmt_close(c->cache[slot].st);
    free(c->cache[slot].sql);
  } else {
    c->ncache++;
  }
  c->cache[slot].sql = strdup(sql);
  c->cache[slot].st = st;
  return st;
}

static int stmt_run(gdx_db_conn *c, const char *sql, const gdx_db_param *params, size_t n,
                    MYSQL_STMT **out) {
  if (conn_ensure(c))
    return GDX_EDB;
  MYSQL_STMT *st = stmt_get(c, sql);
  if (st == NULL)
    return is_gone(c->errnum) ? GDX_EDBGONE : GDX_EDB;
  if (mysql_stmt_param_count(st) != n) {
    conn_set_error(c, 0, "parameter count does not match the statement");
    return GDX_EINVAL;
  }
  MYSQL_BIND bind[n ? n : 1];
  unsigned long lens[n ? n : 1];
  memset(bind, 0, sizeof(bind));
  for (size_t i = 0; i < n; i++) {
    switch (params[i].type) {
    case GDX_DB_NULL: bind[i].buffer_type = MYSQL_TYPE_NULL; break;
    case GDX_DB_INT:
      bind[i].buffer_type = MYSQL_TYPE_LONGLONG;
      bind[i].buffer = (void *)&params[i].i;
      break;
    case GDX_DB_TEXT:
      lens[i] = (unsigned long)params[i].len;
      bind[i].buffer_type = MYSQL_TYPE_STRING;
      bind[i].buffer = (void *)params[i].s;
      bind[i].buffer_length = lens[i];
      bind[i].length = &lens[i];
      break;
    }
  }
  if ((n && mysql_stmt_bind_param(st, bind)) || mysql_stmt_execute(st)) {
    conn_set_error(c, mysql_stmt_errno(st), mysql_stmt_error(st));
    return is_gone(c->errnum) ? GDX_EDBGONE : GDX_EDB;
  }
  *out = st;
  return GDX_OK;
}

/* Runs a statement, reconnecting and retrying once if the connection was lost
 * outside a transaction (inside one, the transaction is gone: report it). */
static int stmt_run_retry(gdx_db_conn *c, const char *sql, const gdx_db_param *p, size_t n,
                          MYSQL_STMT **out) {
  int rc = stmt_run(c, sql, p, n, out);
  if (rc != GDX_EDBGONE)
    return rc;
  int was_txn = c->in_txn;
  conn_drop(c);
  pthread_mutex_lock(&c->pool->mu);
  c->pool->stats.reconnects++;
  pthread_mutex_unlock(&c->pool->mu);
  if (was_txn)
    return GDX_EDBGONE;
  rc = stmt_run(c, sql, p, n, out);
  if (rc == GDX_EDBGONE)
    conn_drop(c);
  return rc == GDX_EDBGONE ? GDX_EDB : rc;
}

int gdx_db_exec(gdx_db_conn *c, const char *sql, const gdx_db_param *params, size_t n,
                uint64_t *affected, uint64_t *insert_id) {
  MYSQL_STMT *st;
  int rc = stmt_run_retry(c, sql, params, n, &st);
  if (rc)
    return rc;
  if (affected)
    *affected = mysql_stmt_affected_rows(st);
  if (insert_id)
    *insert_id = mysql_stmt_insert_id(st);
  mysql_stmt_free_result(st);
  return GDX_OK;
}

void gdx_db_result_free(gdx_db_result *r) {
  if (r->cells)
    for (size_t i = 0; i < r->nrows * r->ncols; i++)
      free(r->cells[i]);
  if (r->names)
    for (size_t i = 0; i < r->ncols; i++)
      free(r->names[i]);
  free(r->cells);
  free(r->lens);
  free(r->names);
  memset(r, 0, sizeof(*r));
}

const char *gdx_db_get(const gdx_db_result *r, size_t row, size_t col) {
  if (row >= r->nrows || col >= r->ncols)
    return NULL;
  return r->cells[row * r->ncols + col];
}

gdx_db_row gdx_db_row_at(const gdx_db_result *r, size_t row) {
  gdx_db_row w = {r, row, GDX_OK, -1};
  if (row >= r->nrows) {
    w.rc = GDX_EINVAL;
    w.bad_col = 0;
  }
  return w;
}

static void row_bad(gdx_db_row *w, size_t col) {
  if (w->rc == GDX_OK) {
    w->rc = GDX_EINVAL;
    w->bad_col = (int)col;
  }
}

long long gdx_db_i64_or(gdx_db_row *w, size_t col, long long min, long long max,
                        long long if_null) {
  if (w->rc != GDX_OK)
    return min;
  if (col >= w->res->ncols) {
    row_bad(w, col);
    return min;
  }
  const char *v = gdx_db_get(w->res, w->row, col);
  if (v == NULL)
    return if_null;
  long long n;
  if (gdx_num_parse_n(v, w->res->lens[w->row * w->res->ncols + col], min, max, &n) != GDX_OK) {
    row_bad(w, col);
    return min;
  }
  return n;
}

long long gdx_db_i64(gdx_db_row *w, size_t col, long long min, long long max) {
  if (w->rc == GDX_OK && gdx_db_get(w->res, w->row, col) == NULL) {
    row_bad(w, col);
    return min;
  }
  return gdx_db_i64_or(w, col, min, max, min);
}

int gdx_db_flag(gdx_db_row *w, size_t col) { return (int)gdx_db_i64(w, col, 0, 1); }

uint64_t gdx_db_u64(gdx_db_row *w, size_t col) {
  const char *v = w->rc == GDX_OK ? gdx_db_get(w->res, w->row, col) : NULL;
  uint64_t n = 0;
  if (w->rc == GDX_OK &&
      (v == NULL ||
       gdx_num_parse_u64(v, w->res->lens[w->row * w->res->ncols + col], &n) != GDX_OK))
    row_bad(w, col);
  return w->rc == GDX_OK ? n : 0;
}

int gdx_db_row_fail(const gdx_db_row *w, const char *what) {
  const char *name = w->bad_col >= 0 && (size_t)w->bad_col < w->res->ncols && w->res->names
                         ? w->res->names[w->bad_col]
                         : "?";
  gdx_log_error("db", "%s: row %zu, column %d (%s) is not the number it must be", what, w->row,
                w->bad_col, name ? name : "?");
  return GDX_EDB;
}

static int fetch_rows(gdx_db_conn *c, MYSQL_STMT *st, size_t max_rows, gdx_db_result *out) {
  MYSQL_RES *meta = mysql_stmt_result_metadata(st);
  if (meta == NULL) {
    conn_set_error(c, 0, "statement returns no result set");
    return GDX_EINVAL;
  }
  size_t ncols = mysql_num_fields(meta);
  MYSQL_FIELD *fields = mysql_fetch_fields(meta);
  my_bool on = 1;
  mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &on);
  int rc = GDX_OK;
  if (mysql_stmt_store_result(st)) {
    conn_set_error(c, mysql_stmt_errno(st), mysql_stmt_error(st));
    mysql_free_result(meta);
    return GDX_EDB;
  }
  size_t nrows = (size_t)mysql_stmt_num_rows(st);
  if (nrows > max_rows) {
    conn_set_error(c, 0, "result has more rows than allowed");
    mysql_stmt_free_result(st);
    mysql_free_result(meta);
    return GDX_ETOOBIG;
  }
  out->ncols = ncols;
  out->names = calloc(ncols ? ncols : 1, sizeof(char *));
  size_t ncells = nrows * ncols > 0 ? nrows * ncols : 1;
  out->cells = calloc(ncells, sizeof(char *));
  out->lens = calloc(ncells, sizeof(size_t));
  MYSQL_BIND *bind = calloc(ncols ? ncols : 1, sizeof(MYSQL_BIND));
  unsigned long *lens = calloc(ncols ? ncols : 1, sizeof(unsigned long));
  my_bool *nulls = calloc(ncols ? ncols : 1, sizeof(my_bool));
  char **bufs = calloc(ncols ? ncols : 1, sizeof(char *));
  if (!out->names || !out->cells || !out->lens || !bind || !lens || !nulls || !bufs) {
    rc = GDX_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < ncols; i++) {
    out->names[i] = strdup(fields[i].name);
    size_t sz = fields[i].max_length > 64 ? fields[i].max_length + 1 : 65;
    bufs[i] = malloc(sz);
    if (!bufs[i] || !out->names[i]) {
      rc = GDX_ENOMEM;
      goto done;
    }
    bind[i].buffer_type = MYSQL_TYPE_STRING;
    bind[i].buffer = bufs[i];
    bind[i].buffer_length = sz;
    bind[i].length = &lens[i];
    bind[i].is_null = &nulls[i];
  }
  if (ncols && mysql_stmt_bind_result(st, bind)) {
    conn_set_error(c, mysql_stmt_errno(st), mysql_stmt_error(st));
    rc = GDX_EDB;
    goto done;
  }
  for (size_t r = 0; r < nrows; r++) {
    int f = mysql_stmt_fetch(st);
    if (f == 1 || f == MYSQL_NO_DATA) {
      conn_set_error(c, mysql_stmt_errno(st), mysql_stmt_error(st));
      rc = GDX_EDB;
      goto done;
    }
    for (size_t i = 0; i < ncols; i++) {
      if (nulls[i])
        continue;
      char *v = malloc(lens[i] + 1);
      if (v == NULL) {
        rc = GDX_ENOMEM;
        goto done;
      }
      if (lens[i] < bind[i].buffer_length) {
        memcpy(v, bufs[i], lens[i]);
      } else { /* truncated: fetch the whole value */
        MYSQL_BIND one = {0};
        one.buffer_type = MYSQL_TYPE_STRING;
        one.buffer = v;
        one.buffer_length = lens[i] + 1;
        mysql_stmt_fetch_column(st, &one, (unsigned)i, 0);
      }
      v[lens[i]] = '\0';
      out->cells[r * ncols + i] = v;
      out->lens[r * ncols + i] = lens[i];
    }
    out->nrows = r + 1;
  }
done:
  for (size_t i = 0; bufs && i < ncols; i++)
    free(bufs[i]);
  free(bufs);
  free(bind);
  free(lens);
  free(nulls);
  mysql_stmt_free_result(st);
  mysql_free_result(meta);
  if (rc)
    gdx_db_result_free(out);
  return rc;
}

int gdx_db_query(gdx_db_conn *c, const char *sql, const gdx_db_param *params, size_t n,
                 size_t max_rows, gdx_db_result *out) {
  memset(out, 0, sizeof(*out));
  MYSQL_STMT *st;
  int rc = stmt_run_retry(c, sql, params, n, &st);
  if (rc)
    return rc;
  return fetch_rows(c, st, max_rows, out);
}

static int simple(gdx_db_conn *c, const char *what) {
  if (conn_ensure(c))
    return GDX_EDB;
  if (mysql_real_query(c->my, what, strlen(what)) != 0) {
    conn_set_error(c, mysql_errno(c->my), mysql_error(c->my));
    if (is_gone(c->errnum))
      conn_drop(c);
    return GDX_EDB;
  }
  return GDX_OK;
}

int gdx_db_begin(gdx_db_conn *c) {
  int rc = simple(c, "START TRANSACTION");
  if (rc == GDX_OK)
    c->in_txn = 1;
  return rc;
}

int gdx_db_commit(gdx_db_conn *c) {
  c->in_txn = 0;
  return simple(c, "COMMIT");
}

int gdx_db_rollback(gdx_db_conn *c) {
  c->in_txn = 0;
  return simple(c, "ROLLBACK");
}

int gdx_db_ident_ok(const char *s) {
  size_t n = strlen(s), digits = strspn(s, "0123456789");
  return n > 0 && n <= 64 && digits < n &&
         strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

int gdx_db_exec_ddl(gdx_db_conn *c, const char *sql) {
  if (conn_ensure(c))
    return GDX_EDB;
  if (mysql_real_query(c->my, sql, strlen(sql)) != 0) {
    conn_set_error(c, mysql_errno(c->my), mysql_error(c->my));
    return GDX_EDB;
  }
  MYSQL_RES *res = mysql_store_result(c->my);
  if (res)
    mysql_free_result(res);
  return GDX_OK;
}

int gdx_db_ping(gdx_db_conn *c) {
  if (conn_ensure(c))
    return GDX_EDB;
  if (mysql_ping(c->my) != 0) {
    conn_set_error(c, mysql_errno(c->my), mysql_error(c->my));
    conn_drop(c);
    return GDX_EDB;
  }
  return GDX_OK;
}

const char *gdx_db_error(gdx_db_conn *c) { return c->err; }
unsigned gdx_db_errno(gdx_db_conn *c) { return c->errnum; }

/* ------------------------------------------------------------------ */
/* pool                                                                */

static void *worker_main(void *arg) {
  gdx_db_conn *c = arg;
  gdx_db_pool *p = c->pool;
  mysql_thread_init();
  for (;;) {
    pthread_mutex_lock(&p->mu);
    while (p->qhead == NULL && !p->stopping)
      pthread_cond_wait(&p->cv, &p->mu);
    job *j = p->qhead;
    if (j == NULL) { /* stopping and drained */
      pthread_mutex_unlock(&p->mu);
      break;
    }
    p->qhead = j->next;
    if (p->qhead == NULL)
      p->qtail = NULL;
    p->stats.queued--;
    p->stats.busy_workers++;
    pthread_mutex_unlock(&p->mu);

    c->err[0] = '\0';
    c->errnum = 0;
    int was_connected = c->my != NULL;
    if (conn_ensure(c) == GDX_OK) {
      if (!was_connected)
        gdx_log_info("db", "worker connected to MariaDB");
      j->status = j->work(c, j->arg);
      if (c->in_txn) { /* a job must not leave a transaction open */
        gdx_db_rollback(c);
        if (j->status == GDX_OK)
          j->status = GDX_EINVAL;
      }
    } else {
      j->status = GDX_EDB;
      gdx_log_warn("db", "%s", c->err);
    }

    pthread_mutex_lock(&p->mu);
    p->stats.busy_workers--;
    p->stats.jobs_total++;
    if ((c->my != NULL) != c->counted) {
      c->counted = c->my != NULL;
      p->stats.connected_workers += c->counted ? 1u : (unsigned)-1;
    }
    if (j->status != GDX_OK)
      p->stats.jobs_failed++;
    j->next = NULL;
    if (p->dtail)
      p->dtail->next = j;
    else
      p->dhead = j;
    p->dtail = j;
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->async);
  }
  conn_drop(c);
  mysql_thread_end();
  return NULL;
}

static void run_done(gdx_db_pool *p) {
  pthread_mutex_lock(&p->mu);
  job *j = p->dhead;
  p->dhead = p->dtail = NULL;
  pthread_mutex_unlock(&p->mu);
  while (j) {
    job *next = j->next;
    if (j->done)
      j->done(j->status, j->arg);
    free(j);
    j = next;
  }
}

static void on_async(uv_async_t *a) { run_done(a->data); }

int gdx_db_pool_start(uv_loop_t *loop, const gdx_db_options *o, gdx_db_pool **out) {
  pthread_once(&lib_once, lib_init);
  gdx_db_pool *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return GDX_ENOMEM;
  p->loop = loop;
  p->opts = *o;
  p->opts.host = dup_or_null(o->host);
  p->opts.socket = dup_or_null(o->socket);
  p->opts.user = dup_or_null(o->user);
  p->opts.password = dup_or_null(o->password);
  p->opts.database = dup_or_null(o->database);
  if (p->opts.pool_size == 0)
    p->opts.pool_size = 4;
  if (p->opts.queue_max == 0)
    p->opts.queue_max = 1024;
  p->stats.pool_size = p->opts.pool_size;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  uv_async_init(loop, &p->async, on_async);
  p->async.data = p;
  p->conns = calloc(p->opts.pool_size, sizeof(gdx_db_conn));
  if (p->conns == NULL)
    return GDX_ENOMEM;
  for (unsigned i = 0; i < p->opts.pool_size; i++) {
    p->conns[i].pool = p;
    if (pthread_create(&p->conns[i].thread, NULL, worker_main, &p->conns[i]) != 0)
      return GDX_ENOMEM;
  }
  *out = p;
  return GDX_OK;
}

int gdx_db_submit(gdx_db_pool *p, gdx_db_work_fn work, gdx_db_done_fn done, void *arg) {
  job *j = malloc(sizeof(*j));
  if (j == NULL)
    return GDX_ENOMEM;
  *j = (job){NULL, work, done, arg, 0};
  pthread_mutex_lock(&p->mu);
  if (p->stopping || p->stats.queued >= p->opts.queue_max) {
    p->stats.jobs_rejected++;
    pthread_mutex_unlock(&p->mu);
    free(j);
    return GDX_EBUSY;
  }
  if (p->qtail)
    p->qtail->next = j;
  else
    p->qhead = j;
  p->qtail = j;
  p->stats.queued++;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return GDX_OK;
}

void gdx_db_pool_stats(gdx_db_pool *p, gdx_db_stats *out) {
  pthread_mutex_lock(&p->mu);
  *out = p->stats;
  pthread_mutex_unlock(&p->mu);
}

static void on_async_closed(uv_handle_t *h) {
  gdx_db_pool *p = h->data;
  free((char *)p->opts.host);
  free((char *)p->opts.socket);
  free((char *)p->opts.user);
  if (p->opts.password)
    explicit_bzero((char *)p->opts.password, strlen(p->opts.password));
  free((char *)p->opts.password);
  free((char *)p->opts.database);
  free(p->conns);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

void gdx_db_pool_stop(gdx_db_pool *p) {
  pthread_mutex_lock(&p->mu);
  p->stopping = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (unsigned i = 0; i < p->opts.pool_size; i++)
    pthread_join(p->conns[i].thread, NULL);
  run_done(p);
  uv_close((uv_handle_t *)&p->async, on_async_closed);
}
