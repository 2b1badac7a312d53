/* Migrations against a real mariadbd: applied in order and recorded once; a
 * changed applied file, a badly named file, a duplicate number, a failing
 * file and a database newer than the build all stop start-up with a message
 * naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "error.h"
#include "harness.h"
#include "migrate.h"

static gdx_db_options opts;
static char dbname[64], dir[128];

static void write_file(const char *name, const char *text) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  fputs(text, f);
  fclose(f);
}

static void remove_file(const char *name) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", dir, name);
  unlink(p);
}

static void applies_in_order_once(void **state) {
  write_file("002_add_column.sql", "ALTER TABLE a ADD COLUMN b INT NOT NULL DEFAULT 7;\n"
                                   "INSERT INTO a (id) VALUES (1);");
  write_file("001_create.sql", "CREATE TABLE a (id INT PRIMARY KEY);");
  char err[512] = "";
  int applied = -1;
  assert_int_equal(gdx_migrate(&opts, "unit", dir, &applied, err, sizeof(err)), GDX_OK);
  assert_int_equal(applied, 2);
  char v[64];
  tdb_scalar(dbname, "SELECT b FROM a WHERE id=1", v, sizeof(v));
  assert_string_equal(v, "7");
  tdb_scalar(dbname, "SELECT GROUP_CONCAT(name ORDER BY version) FROM gdx_schema_migrations "
                     "WHERE component='unit'", v, sizeof(v));
  assert_string_equal(v, "001_create.sql,002_add_column.sql");
  assert_int_equal(gdx_migrate(&opts, "unit", dir, &applied, err, sizeof(err)), GDX_OK);
  assert_int_equal(applied, 0);
}

static void changed_file_refused(void **state) {
  write_file("001_create.sql", "CREATE TABLE a (id INT PRIMARY KEY); -- edited");
  char err[512] = "";
  assert_int_equal(gdx_migrate(&opts, "unit", dir, NULL, err, sizeof(err)), GDX_ECONFIG);
  assert_non_null(strstr(err, "001_create.sql was changed after it was applied"));
  write_file("001_create.sql", "CREATE TABLE a (id INT PRIMARY KEY);");
  assert_int_equal(gdx_migrate(&opts, "unit", dir, NULL, err, sizeof(err)), GDX_OK);
}

static void bad_names_refused(void **state) {
  char err[512] = "";
  write_file("3_oops.sql", "SELECT 1;");
  assert_int_equal(gdx_migrate(&opts, "unit", dir, NULL, err, sizeof(err)), GDX_ECONFIG);
  assert_non_null(strstr(err, "3_oops.sql: migration files must be named NNN_name.sql"));
  remove_file("3_oops.sql");
  write_file("002_other.sql", "SELECT 1;");
  assert_int_equal(gdx_migrate(&opts, "unit", dir, NULL, err, sizeof(err)), GDX_ECONFIG);
  assert_non_null(strstr(err, "two migrations with number 002"));
  remove_file("002_other.sql");
}

static void failing_file_named_and_not_recorded(void **state) {
  char err[512] = "";
  write_file("003_broken.sql", "CREATE TABLE c (id INT PRIMARY KEY);\nCREAT TABLE oops;");
  assert_int_equal(gdx_migrate(&opts, "unit", dir, NULL, err, sizeof(err)), GDX_EDB);
  assert_non_null(strstr(err, "003_broken.sql"));
  assert_non_null(strstr(err, "SQL syntax"));
  char v[16];
  tdb_scalar(dbname, "SELECT COUNT(*) FROM gdx_schema_migrations WHERE version=3", v, sizeof(v));
  assert_string_equal(v, "0");
  write_file("003_broken.sql", "CREATE TABLE IF NOT EXISTS c (id INT PRIMARY KEY);");
  assert_int_equal(gdx_migrate(&opts, "unit", dir, NULL, err, sizeof(err)), GDX_OK);
}

static void database_newer_than_build(void **state) {
  char err[512] = "";
  remove_file("003_broken.sql");
  assert_int_equal(gdx_migrate(&opts, "unit", dir, NULL, err, sizeof(err)), GDX_ECONFIG);
  assert_non_null(strstr(err, "unit/003_broken.sql, which this build does not have"));
}

/* A pool's connections get the migrations before any job (a front-end
 * node's database, which may be down when the node starts): a hook that
 * fails leaves the job failing as with the database down, the next job
 * connects, migrates - several statements in one file on a connection
 * without them - and runs; a connection is migrated once. */
static int hook_calls, hook_fails;

static int hook(MYSQL *my, void *arg, char *err, size_t errlen) {
  hook_calls++;
  if (hook_fails-- > 0) {
    snprintf(err, errlen, "not yet");
    return GDX_EDB;
  }
  return gdx_migrate_on(my, "pool", arg, NULL, err, errlen);
}

typedef struct {
  int done, rc;
  char v[32];
} count_job;

static int count_work(gdx_db_conn *c, void *arg) {
  count_job *j = arg;
  gdx_db_result r = {0};
  int rc = gdx_db_query(c, "SELECT COUNT(*) FROM p WHERE id > ?", (gdx_db_param[]){GDX_DB_P_INT(0)},
                        1, 1, &r);
  if (rc == GDX_OK)
    snprintf(j->v, sizeof(j->v), "%s", gdx_db_get(&r, 0, 0));
  gdx_db_result_free(&r);
  return rc;
}

static void count_done(int status, void *arg) {
  count_job *j = arg;
  j->rc = status;
  j->done = 1;
}

static int count_rows(uv_loop_t *loop, gdx_db_pool *pool, char *v) {
  count_job j = {0};
  assert_int_equal(gdx_db_submit(pool, count_work, count_done, &j), GDX_OK);
  while (!j.done)
    uv_run(loop, UV_RUN_ONCE);
  strcpy(v, j.v);
  return j.rc;
}

static void pool_migrates_each_connection(void **state) {
  char pdir[160];
  snprintf(pdir, sizeof(pdir), "%s/pool", dir);
  assert_int_equal(mkdir(pdir, 0700), 0);
  char p[256];
  snprintf(p, sizeof(p), "%s/001_p.sql", pdir);
  FILE *f = fopen(p, "w");
  fputs("CREATE TABLE IF NOT EXISTS p (id INT PRIMARY KEY);\nINSERT IGNORE INTO p VALUES (1), (2);",
        f);
  fclose(f);
  uv_loop_t loop;
  uv_loop_init(&loop);
  gdx_db_options o = opts;
  o.pool_size = 1;
  o.on_connect = hook;
  o.on_connect_arg = pdir;
  gdx_db_pool *pool;
  assert_int_equal(gdx_db_pool_start(&loop, &o, &pool), GDX_OK);
  hook_fails = 1;
  char v[32] = "";
  assert_int_equal(count_rows(&loop, pool, v), GDX_EDB);
  assert_int_equal(count_rows(&loop, pool, v), GDX_OK);
  assert_string_equal(v, "2");
  assert_int_equal(count_rows(&loop, pool, v), GDX_OK);
  assert_int_equal(hook_calls, 2);
  gdx_db_pool_stop(pool);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  tdb_scalar(dbname, "SELECT COUNT(*) FROM gdx_schema_migrations WHERE component='pool'", v,
             sizeof(v));
  assert_string_equal(v, "1");
}

static int setup(void **state) {
  tdb_options(&opts, "gdx_test_migrate", dbname, sizeof(dbname));
  snprintf(dir, sizeof(dir), "/tmp/gdx-test-migrate-%d", (int)getpid());
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", dir, dir);
  return system(cmd);
}

static int teardown(void **state) {
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  snprintf(cmd + 128, 128, "DROP DATABASE %s", dbname);
  tdb_exec(NULL, cmd + 128);
  return system(cmd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(applies_in_order_once),
      cmocka_unit_test(changed_file_refused),
      cmocka_unit_test(bad_names_refused),
      cmocka_unit_test(failing_file_named_and_not_recorded),
      cmocka_unit_test(database_newer_than_build),
      cmocka_unit_test(pool_migrates_each_connection),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
