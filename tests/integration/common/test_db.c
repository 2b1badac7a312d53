/* The MariaDB pool against a real mariadbd: bound parameters keep SQL
 * metacharacters as data, NULLs and Chinese text round-trip, the loop keeps
 * running while queries run, a full queue refuses, a killed connection is
 * re-established, and a job cannot leave a transaction open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "harness.h"

static uv_loop_t loop;
static gdx_db_pool *pool;
static char dbname[64];

typedef struct {
  int done, status;
  char text[256];
  long long n;
  gdx_db_result res;
} job;

static void on_done(int status, void *arg) {
  job *j = arg;
  j->done = 1;
  j->status = status;
}

static void wait_for(job *j) {
  uint64_t end = th_now_ms() + 20000;
  while (!j->done && th_now_ms() < end)
    uv_run(&loop, UV_RUN_ONCE);
  assert_true(j->done);
}

static int w_setup(gdx_db_conn *c, void *arg) {
  return gdx_db_exec(c,
                     "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200), "
                     "note TEXT NULL, n BIGINT)",
                     NULL, 0, NULL, NULL);
}

static const char *const evil[] = {
    "'; DROP TABLE t; --", "Robert'); DELETE FROM t WHERE ('1'='1", "\\' OR 1=1 #",
    "张三 — 北京市朝阳区", "NULL", "%_%", "\"double\" and `back`",
};
#define NEVIL (sizeof(evil) / sizeof(evil[0]))

static int w_insert(gdx_db_conn *c, void *arg) {
  job *j = arg;
  for (size_t i = 0; i < NEVIL; i++) {
    gdx_db_param p[] = {GDX_DB_P_STR(evil[i]), i % 2 ? GDX_DB_P_NULL : GDX_DB_P_STR(evil[i]),
                        GDX_DB_P_INT((long long)i - 3)};
    uint64_t id = 0, aff = 0;
    int rc = gdx_db_exec(c, "INSERT INTO t (name, note, n) VALUES (?, ?, ?)", p, 3, &aff, &id);
    if (rc)
      return rc;
    if (aff != 1 || id != i + 1)
      return GDX_EINVAL;
  }
  gdx_db_param p[] = {GDX_DB_P_INT(-100)};
  return gdx_db_query(c, "SELECT id, name, note, n FROM t WHERE n > ? ORDER BY id", p, 1, 1000,
                      &j->res);
}

static void metacharacters_are_data(void **state) {
  job j = {0};
  assert_int_equal(gdx_db_submit(pool, w_setup, on_done, &j), GDX_OK);
  wait_for(&j);
  assert_int_equal(j.status, GDX_OK);
  job k = {0};
  assert_int_equal(gdx_db_submit(pool, w_insert, on_done, &k), GDX_OK);
  wait_for(&k);
  assert_int_equal(k.status, GDX_OK);
  assert_int_equal(k.res.nrows, NEVIL);
  assert_int_equal(k.res.ncols, 4);
  assert_string_equal(k.res.names[1], "name");
  for (size_t i = 0; i < NEVIL; i++) {
    assert_string_equal(gdx_db_get(&k.res, i, 1), evil[i]);
    if (i % 2)
      assert_null(gdx_db_get(&k.res, i, 2));
    else
      assert_string_equal(gdx_db_get(&k.res, i, 2), evil[i]);
    char n[16];
    snprintf(n, sizeof(n), "%d", (int)i - 3);
    assert_string_equal(gdx_db_get(&k.res, i, 3), n);
  }
  gdx_db_result_free(&k.res);
  char count[32];
  tdb_scalar(dbname, "SELECT COUNT(*) FROM t", count, sizeof(count));
  assert_string_equal(count, "7");
}

static int w_many(gdx_db_conn *c, void *arg) {
  job *j = arg;
  return gdx_db_query(c, "SELECT id FROM t", NULL, 0, 3, &j->res);
}

static void result_row_cap(void **state) {
  job j = {0};
  gdx_db_submit(pool, w_many, on_done, &j);
  wait_for(&j);
  assert_int_equal(j.status, GDX_ETOOBIG);
  assert_int_equal(j.res.nrows, 0);
}

/* A query that takes 0.6 s: the slow work the pool must run beside the
 * loop (the behaviour under test, not a wait). */
static int w_slow_query(gdx_db_conn *c, void *arg) {
  job *j = arg;
  int rc = gdx_db_query(c, "SELECT SLEEP(0.6)", NULL, 0, 1, &j->res);
  gdx_db_result_free(&j->res);
  return rc;
}

static int ticks;
static unsigned max_busy;
static void on_tick(uv_timer_t *t) {
  gdx_db_stats st;
  gdx_db_pool_stats(pool, &st);
  if (st.busy_workers > max_busy)
    max_busy = st.busy_workers;
  ticks++;
}

static void loop_runs_while_queries_run(void **state) {
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  ticks = 0;
  max_busy = 0;
  uv_timer_start(&t, on_tick, 20, 20);
  job a = {0}, b = {0};
  uint64_t t0 = th_now_ms();
  gdx_db_submit(pool, w_slow_query, on_done, &a);
  gdx_db_submit(pool, w_slow_query, on_done, &b);
  wait_for(&a);
  wait_for(&b);
  uint64_t took = th_now_ms() - t0;
  uv_timer_stop(&t);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(a.status, GDX_OK);
  printf("two 0.6 s queries on 2 workers took %llu ms; the loop ticked %d times\n",
         (unsigned long long)took, ticks);
  assert_int_equal(max_busy, 2); /* both ran at once, on two workers */
  assert_true(ticks >= 1);       /* and the loop kept running meanwhile */
}

static void full_queue_refuses(void **state) {
  gdx_db_options o;
  char name[64];
  tdb_options(&o, "gdx_test_queue", name, sizeof(name));
  o.pool_size = 1;
  o.queue_max = 2;
  gdx_db_pool *small;
  assert_int_equal(gdx_db_pool_start(&loop, &o, &small), GDX_OK);
  job j[5] = {{0}};
  int accepted = 0, busy = 0;
  for (int i = 0; i < 5; i++) {
    int rc = gdx_db_submit(small, w_slow_query, on_done, &j[i]);
    if (rc == GDX_OK)
      accepted++;
    else if (rc == GDX_EBUSY)
      busy++, j[i].done = 1;
  }
  /* one running (maybe not yet picked up) + two queued */
  assert_true(accepted >= 2 && accepted <= 3);
  assert_int_equal(accepted + busy, 5);
  for (int i = 0; i < 5; i++)
    wait_for(&j[i]);
  gdx_db_stats st;
  gdx_db_pool_stats(small, &st);
  assert_int_equal(st.jobs_rejected, (uint64_t)busy);
  gdx_db_pool_stop(small);
  uv_run(&loop, UV_RUN_NOWAIT);
}

static int w_conn_id(gdx_db_conn *c, void *arg) {
  job *j = arg;
  gdx_db_result r;
  int rc = gdx_db_query(c, "SELECT CONNECTION_ID()", NULL, 0, 1, &r);
  if (rc == GDX_OK) {
    snprintf(j->text, sizeof(j->text), "%s", gdx_db_get(&r, 0, 0));
    gdx_db_result_free(&r);
  }
  return rc;
}

static void killed_connection_is_reestablished(void **state) {
  gdx_db_options o;
  char name[64];
  tdb_options(&o, "gdx_test_kill", name, sizeof(name));
  o.pool_size = 1;
  gdx_db_pool *one;
  assert_int_equal(gdx_db_pool_start(&loop, &o, &one), GDX_OK);
  job a = {0};
  gdx_db_submit(one, w_conn_id, on_done, &a);
  wait_for(&a);
  assert_int_equal(a.status, GDX_OK);
  char kill[64];
  snprintf(kill, sizeof(kill), "KILL %s", a.text);
  assert_int_equal(tdb_exec(NULL, kill), 0);
  job b = {0};
  gdx_db_submit(one, w_conn_id, on_done, &b);
  wait_for(&b);
  assert_int_equal(b.status, GDX_OK);
  assert_string_not_equal(a.text, b.text);
  gdx_db_stats st;
  gdx_db_pool_stats(one, &st);
  assert_int_equal(st.reconnects, 1);
  gdx_db_pool_stop(one);
  uv_run(&loop, UV_RUN_NOWAIT);
}

static int w_forgets_commit(gdx_db_conn *c, void *arg) {
  gdx_db_begin(c);
  gdx_db_param p[] = {GDX_DB_P_STR("uncommitted")};
  return gdx_db_exec(c, "INSERT INTO t (name) VALUES (?)", p, 1, NULL, NULL);
}

static int w_txn_commit(gdx_db_conn *c, void *arg) {
  int rc = gdx_db_begin(c);
  gdx_db_param p[] = {GDX_DB_P_STR("committed")};
  if (!rc)
    rc = gdx_db_exec(c, "INSERT INTO t (name) VALUES (?)", p, 1, NULL, NULL);
  return rc ? (gdx_db_rollback(c), rc) : gdx_db_commit(c);
}

static void open_transactions_are_rolled_back(void **state) {
  job a = {0}, b = {0};
  gdx_db_submit(pool, w_forgets_commit, on_done, &a);
  wait_for(&a);
  assert_int_equal(a.status, GDX_EINVAL);
  gdx_db_submit(pool, w_txn_commit, on_done, &b);
  wait_for(&b);
  assert_int_equal(b.status, GDX_OK);
  char n[32];
  tdb_scalar(dbname, "SELECT COUNT(*) FROM t WHERE name='uncommitted'", n, sizeof(n));
  assert_string_equal(n, "0");
  tdb_scalar(dbname, "SELECT COUNT(*) FROM t WHERE name='committed'", n, sizeof(n));
  assert_string_equal(n, "1");
}

static int w_bad_sql(gdx_db_conn *c, void *arg) {
  job *j = arg;
  int rc = gdx_db_exec(c, "INSERT INTO no_such_table VALUES (?)",
                       (gdx_db_param[]){GDX_DB_P_INT(1)}, 1, NULL, NULL);
  snprintf(j->text, sizeof(j->text), "%s", gdx_db_error(c));
  return rc;
}

static void errors_are_reported(void **state) {
  job j = {0};
  gdx_db_submit(pool, w_bad_sql, on_done, &j);
  wait_for(&j);
  assert_int_equal(j.status, GDX_EDB);
  assert_non_null(strstr(j.text, "no_such_table"));
}

static int setup(void **state) {
  gdx_db_options o;
  tdb_options(&o, "gdx_test_db", dbname, sizeof(dbname));
  uv_loop_init(&loop);
  return gdx_db_pool_start(&loop, &o, &pool);
}

static int teardown(void **state) {
  gdx_db_pool_stop(pool);
  uv_run(&loop, UV_RUN_DEFAULT);
  char sql[128];
  snprintf(sql, sizeof(sql), "DROP DATABASE %s", dbname);
  tdb_exec(NULL, sql);
  return uv_loop_close(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(metacharacters_are_data),
      cmocka_unit_test(result_row_cap),
      cmocka_unit_test(loop_runs_while_queries_run),
      cmocka_unit_test(full_queue_refuses),
      cmocka_unit_test(killed_connection_is_reestablished),
      cmocka_unit_test(open_transactions_are_rolled_back),
      cmocka_unit_test(errors_are_reported),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
