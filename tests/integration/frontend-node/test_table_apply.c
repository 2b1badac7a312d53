/* The consumer side of a table subscription (frontend-node/table_apply.c) against
 * a real MariaDB: the target table made from the provider's schema,
 * snapshot pages and change batches applied with the position in the same
 * transaction, retried and out-of-order batches refused without a trace, a
 * bad batch rolled back whole, unsafe names and types refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "error.h"
#include "harness.h"
#include "migrate.h"
#include "table_apply.h"

static uv_loop_t loop;
static gdx_db_pool *pool;
static char dbname[64];
static gdx_table_apply_target T;
static json_t *schema;

typedef struct {
  int (*fn)(gdx_db_conn *c, void *arg);
  int rc, done;
  const char *after;
  long long after_pos;
  json_t *batch;
  char err[300];
  gdx_table_apply_state st;
} job;

static int w_prepare(gdx_db_conn *c, void *arg) {
  job *j = arg;
  return gdx_table_apply_prepare(c, &T, schema, j->err, sizeof(j->err));
}
/* Pages and batches as the node gets them: JSON text, parsed by
 * gdx_page_parse. */
static int w_apply(gdx_db_conn *c, job *j, int changes) {
  char *text = json_dumps(j->batch, JSON_COMPACT);
  gdx_page pg;
  int rc = gdx_page_parse(&pg, text, strlen(text), j->err, sizeof(j->err));
  if (rc)
    return rc;
  rc = changes ? gdx_table_apply_changes(c, &T, j->after_pos, &pg, j->err, sizeof(j->err))
               : gdx_table_apply_page(c, &T, j->after, &pg, j->err, sizeof(j->err));
  gdx_page_free(&pg);
  return rc;
}
static int w_page(gdx_db_conn *c, void *arg) { return w_apply(c, arg, 0); }
static int w_changes(gdx_db_conn *c, void *arg) { return w_apply(c, arg, 1); }
static int w_load(gdx_db_conn *c, void *arg) {
  job *j = arg;
  return gdx_table_apply_load(c, T.sub, &j->st);
}
static int w_call(gdx_db_conn *c, void *arg) {
  job *j = arg;
  return j->fn(c, arg);
}
static void on_done(int status, void *arg) {
  job *j = arg;
  j->rc = status;
  j->done = 1;
}

static int run(job *j) {
  assert_int_equal(gdx_db_submit(pool, w_call, on_done, j), GDX_OK);
  while (!j->done)
    uv_run(&loop, UV_RUN_ONCE);
  return j->rc;
}

static int page(const char *after, const char *text, char *err) {
  job j = {.fn = w_page, .after = after, .batch = json_loads(text, 0, NULL)};
  assert_non_null(j.batch);
  int rc = run(&j);
  json_decref(j.batch);
  if (err)
    strcpy(err, j.err);
  return rc;
}

static int changes(long long after, const char *text) {
  job j = {.fn = w_changes, .after_pos = after, .batch = json_loads(text, 0, NULL)};
  assert_non_null(j.batch);
  int rc = run(&j);
  json_decref(j.batch);
  return rc;
}

static gdx_table_apply_state state(void) {
  job j = {.fn = w_load};
  assert_int_equal(run(&j), GDX_OK);
  return j.st;
}

static void contents(char *out, size_t n) {
  tdb_scalar(dbname,
             "SELECT GROUP_CONCAT(CONCAT_WS('|', uscc, name, IFNULL(legal_person, '-')) "
             "ORDER BY uscc SEPARATOR ' ') FROM ent_copy",
             out, n);
}

static void prepare_makes_the_target(void **s) {
  (void)s;
  job j = {.fn = w_prepare};
  assert_int_equal(run(&j), GDX_OK);
  job again = {.fn = w_prepare}; /* idempotent */
  assert_int_equal(run(&again), GDX_OK);
  char cell[300];
  tdb_scalar(dbname,
             "SELECT GROUP_CONCAT(CONCAT(COLUMN_NAME, ':', COLUMN_TYPE, ':', IS_NULLABLE) ORDER BY "
             "ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
             "AND TABLE_NAME = 'ent_copy'",
             cell, sizeof(cell));
  /* only the selected columns; the unselected secret_note is not there */
  assert_string_equal(cell, "uscc:char(18):NO,name:varchar(100):NO,legal_person:varchar(50):YES");
  gdx_table_apply_state st = state();
  assert_int_equal(st.snapshot_done, 0);
  assert_string_equal(st.snapshot_after, "");
}

static void pages_then_changes_exactly_once(void **s) {
  (void)s;
  char err[300], cell[600];
  const char *p1 = "{\"rows\":[[\"A1\",\"甲\",null],[\"B2\",\"乙\",\"张\"]],\"last\":[\"B2\"],"
                   "\"done\":false,\"position\":8}";
  assert_int_equal(page("", p1, err), GDX_OK);
  /* the same page again (a retry after a lost answer): refused, no duplicate */
  assert_int_equal(page("", p1, err), GDX_ECONFLICT);
  assert_non_null(strstr(err, "not the next one"));
  contents(cell, sizeof(cell));
  assert_string_equal(cell, "A1|甲|- B2|乙|张");
  gdx_table_apply_state st = state();
  assert_string_equal(st.snapshot_after, "[\"B2\"]");
  assert_int_equal(st.position, 8);
  /* a page out of order */
  assert_int_equal(page("[\"C3\"]", "{\"rows\":[],\"last\":null,\"done\":true}", err),
                   GDX_ECONFLICT);
  assert_int_equal(page("[\"B2\"]", "{\"rows\":[[\"C3\",\"丙\",\"李\"]],\"last\":[\"C3\"],"
                                    "\"done\":true}", err),
                   GDX_OK);
  st = state();
  assert_int_equal(st.snapshot_done, 1);
  assert_int_equal(st.position, 8); /* the first page's position stays */
  assert_int_equal(st.rows_applied, 3);
  /* changes: only from the stored position */
  const char *b1 = "{\"changes\":[{\"seq\":9,\"op\":\"U\",\"row\":[\"A1\",\"甲二\",\"王\"]},"
                   "{\"seq\":10,\"op\":\"D\",\"key\":[\"B2\"]},"
                   "{\"seq\":11,\"op\":\"U\",\"row\":[\"D4\",\"丁\",null]}],\"position\":11}";
  assert_int_equal(changes(7, b1), GDX_ECONFLICT);
  assert_int_equal(changes(8, b1), GDX_OK);
  assert_int_equal(changes(8, b1), GDX_ECONFLICT); /* replayed: nothing happens twice */
  contents(cell, sizeof(cell));
  assert_string_equal(cell, "A1|甲二|王 C3|丙|李 D4|丁|-");
  assert_int_equal(state().position, 11);
  /* a batch that breaks half-way leaves nothing behind */
  const char *bad = "{\"changes\":[{\"op\":\"D\",\"key\":[\"A1\"]},"
                    "{\"op\":\"U\",\"row\":[\"E5\",\"戊\"]}],\"position\":13}";
  assert_int_equal(changes(11, bad), GDX_EINVAL);
  contents(cell, sizeof(cell));
  assert_string_equal(cell, "A1|甲二|王 C3|丙|李 D4|丁|-");
  assert_int_equal(state().position, 11);
  /* values that are SQL are data */
  assert_int_equal(changes(11, "{\"changes\":[{\"op\":\"U\",\"row\":[\"F6\",\"x'); DROP TABLE "
                               "ent_copy; --\",\"`\"]}],\"position\":12}"),
                   GDX_OK);
  tdb_scalar(dbname, "SELECT name FROM ent_copy WHERE uscc = 'F6'", cell, sizeof(cell));
  assert_string_equal(cell, "x'); DROP TABLE ent_copy; --");
}

static void unsafe_names_and_types_refused(void **s) {
  (void)s;
  gdx_table_apply_target keep = T;
  snprintf(T.table, sizeof(T.table), "ent`; DROP TABLE x; --");
  job j = {.fn = w_prepare};
  assert_int_equal(run(&j), GDX_EINVAL);
  T = keep;
  json_t *saved = schema;
  schema = json_loads("{\"columns\":[{\"name\":\"uscc\",\"type\":\"char(18)\",\"nullable\":false},"
                      "{\"name\":\"name\",\"type\":\"enum('a','b')\",\"nullable\":false},"
                      "{\"name\":\"legal_person\",\"type\":\"varchar(50) , x int\"}]}",
                      0, NULL);
  snprintf(T.table, sizeof(T.table), "ent_other");
  job k = {.fn = w_prepare};
  assert_int_equal(run(&k), GDX_EINVAL);
  assert_non_null(strstr(k.err, "column name"));
  json_decref(schema);
  schema = saved;
  T = keep;
  char cell[32];
  tdb_scalar(dbname, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                     "DATABASE() AND TABLE_NAME = 'ent_other'", cell, sizeof(cell));
  assert_string_equal(cell, "0");
}

static int setup(void **s) {
  (void)s;
  gdx_db_options o;
  tdb_options(&o, "gdx_tsync", dbname, sizeof(dbname));
  /* the node's tables, as its pool makes them (frontend-node/frontdb.c) */
  char dir[1024], err[300];
  snprintf(dir, sizeof(dir), "%s/schemas/sql/node", getenv("GDX_SOURCE_DIR"));
  if (gdx_migrate(&o, "node", dir, NULL, err, sizeof(err)) != GDX_OK) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  uv_loop_init(&loop);
  if (gdx_db_pool_start(&loop, &o, &pool) != GDX_OK)
    return -1;
  snprintf(T.sub, sizeof(T.sub), "sub_42");
  snprintf(T.table, sizeof(T.table), "ent_copy");
  T.nkey = 1;
  T.ncols = 3;
  strcpy(T.cols[0], "uscc");
  strcpy(T.cols[1], "name");
  strcpy(T.cols[2], "legal_person");
  schema = json_loads(
      "{\"columns\":[{\"name\":\"uscc\",\"type\":\"char(18)\",\"nullable\":false},"
      "{\"name\":\"name\",\"type\":\"varchar(100)\",\"nullable\":false},"
      "{\"name\":\"legal_person\",\"type\":\"varchar(50)\",\"nullable\":true},"
      "{\"name\":\"secret_note\",\"type\":\"varchar(50)\",\"nullable\":true}],"
      "\"primary_key\":[\"uscc\"]}",
      0, NULL);
  return schema ? 0 : -1;
}

static int teardown(void **s) {
  (void)s;
  gdx_db_pool_stop(pool);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  json_decref(schema);
  char sql[128];
  snprintf(sql, sizeof(sql), "DROP DATABASE %s", dbname);
  return tdb_exec(NULL, sql);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(prepare_makes_the_target),
      cmocka_unit_test(pages_then_changes_exactly_once),
      cmocka_unit_test(unsafe_names_and_types_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
