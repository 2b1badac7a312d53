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
#include <unistd.h>

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
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
