/* Table exchange end to end: the ledger, the change log's purge,
 * long polls, reconciliation with repair and alarms, the daily report, a
 * consumer offline through many changes, a purged position, fetch, and the
 * fault test - kill -9 of the consumer's node, the provider's node and the
 * broker, and a restart of the front-end MariaDB, all during an initial
 * load with concurrent writes - after which reconciliation finds nothing.
 *
 * A real broker on the fixture's MariaDB; the units' front-end databases
 * on a second private MariaDB that the test can restart; real gdx-node
 * processes for the provider and the consumers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apiclient.h"
#include "compress.h"
#include "error.h"
#include "harness.h"
#include "nodes.h"


static tb_broker B;
static tn_people P;
static int nodes_port, prov_admin_port, cons_admin_port;
static char fdir[300], fsock[200]; /* the front-end MariaDB */
static pid_t prov_pid, cons_pid;
static char prov_conf[256], prov_state[256], cons_conf[256], cons_state[256];
static long long prov_row, cons_row, auth_ledger, auth_fault, auth_fetch;
static char code_ledger[48], code_fault[48], code_stamped[48];

#define PF "prov_front"
#define CF "cons_front"

static int fexec(const char *db, const char *sql) { return tdb_exec_at(fsock, db, sql); }

static void fscalar(const char *db, const char *sql, char *out, size_t n) {
  tdb_scalar_at(fsock, db, sql, out, n);
}

static void front_server(const char *verb) {
  char cmd[800];
  snprintf(cmd, sizeof(cmd), "%s/scripts/mariadb-private %s %s %s%d >>%s/frontdb.log 2>&1",
           getenv("GDX_SOURCE_DIR"), verb, fdir, strcmp(verb, "start") == 0 ? "--watch " : "",
           strcmp(verb, "start") == 0 ? (int)getpid() : 0, B.dir);
  if (strcmp(verb, "start") != 0) /* no pid after stop */
    snprintf(cmd, sizeof(cmd), "%s/scripts/mariadb-private %s %s >>%s/frontdb.log 2>&1",
             getenv("GDX_SOURCE_DIR"), verb, fdir, B.dir);
  assert_int_equal(system(cmd), 0);
}

/* A digest of a table's rows (columns in order) on the front server. */
static void digest(const char *db, const char *table, const char *cols, char *out, size_t n) {
  char sql[800];
  snprintf(sql, sizeof(sql),
           "SELECT CONCAT(COUNT(*), ':', IFNULL(MD5(GROUP_CONCAT(MD5(CONCAT_WS('|', %s)) "
           "ORDER BY id SEPARATOR '')), '')) FROM %s",
           cols, table);
  tdb_exec_at(fsock, db, "SET SESSION group_concat_max_len = 1073741824");
  char s2[900];
  snprintf(s2, sizeof(s2), "SET STATEMENT group_concat_max_len = 1073741824 FOR %s", sql);
  fscalar(db, s2, out, n);
}

/* 1 when the consumer's copy dst has the provider's rows of src; their
 * digests into a and b (100 bytes each). */
static int same_rows(const char *src, const char *dst, const char *cols, char *a, char *b) {
  digest(PF, src, cols, a, 100);
  digest(CF, dst, cols, b, 100);
  return strcmp(a, b) == 0 && a[0];
}

/* Waits until the consumer's copy has the provider's rows. */
static void wait_same(const char *src, const char *dst, const char *cols, double seconds) {
  char a[100] = "", b[100] = "";
  TH_WAIT_UNTIL(same_rows(src, dst, cols, a, b), (int)(seconds * 1000),
                "%s (%s) and %s (%s) to hold the same rows", src, a, dst, b);
}

static json_t *api_get(const char *token, const char *path) {
  json_t *j = NULL;
  long st = tb_call("GET", path, token, NULL, &j);
  if (st != 200)
    fail_msg("GET %s -> %ld %s", path, st, tb_err_code(j));
  return j;
}

/* Asks for a reconciliation run and waits for its record. */
static json_t *reconcile(long long auth, const char *token) {
  char path[128], sql[200], before[32], cell[32];
  snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM reconciliations WHERE authorization_id = %lld",
           auth);
  tdb_scalar(B.dbname, sql, before, sizeof(before));
  snprintf(path, sizeof(path), "/api/v1/subscriptions/%lld/reconcile", auth);
  tb_expect(202, "POST", path, token, NULL);
  char want[32];
  snprintf(want, sizeof(want), "%d", atoi(before) + 1);
  if (!tdb_wait_scalar(NULL, B.dbname, sql, want, 60, cell, sizeof(cell)))
    fail_msg("no reconciliation run of %lld within 60 s", auth);
  snprintf(path, sizeof(path), "/api/v1/reconciliations?authorization=%lld", auth);
  json_t *j = api_get(token, path);
  json_t *run = json_incref(json_array_get(json_object_get(j, "items"), 0));
  json_decref(j);
  return run;
}

static long long jint(json_t *o, const char *k) {
  return (long long)json_integer_value(json_object_get(o, k));
}

/* Starts node `id` of the second consumer unit with one subscription:
 * authorization auth into `table`, with more settings; its state folder
 * into st (256 bytes). */
static pid_t start_cons2(const char *id, long long auth, const char *table, const char *more,
                         char *st) {
  snprintf(tn_extra_conf, sizeof(tn_extra_conf),
           "frontdb = { socket = \"%s\"; user = \"root\"; name = \"" CF "\"; };\n"
           "subscriptions = ( { authorization = %lld; table = \"%s\"; %s } );",
           fsock, auth, table, more);
  char conf[256];
  long long row;
  pid_t pid = tn_start_node(P.cons2_admin, CONS2, id, "", conf, st, &row);
  tn_extra_conf[0] = '\0';
  return pid;
}

/* ------------------------------------------------------------------ */

static int setup(void **state) {
  (void)state;
  prov_admin_port = th_free_port();
  cons_admin_port = th_free_port();
  nodes_port = tn_start_exchange(&B, &P, "tables", GDX_BROKER_BIN, GDX_NODE_BIN,
                                 "proxy = { cache_poll_ms = 100; records_flush_ms = 100; "
                                 "head_timeout_ms = 15000; };\n");
  if (nodes_port < 0)
    return -1;

  /* the units' front-end databases, on a server of their own */
  snprintf(fdir, sizeof(fdir), "%s/frontdb", B.dir);
  front_server("start");
  char envf[400], line[400];
  snprintf(envf, sizeof(envf), "%s/env", fdir);
  FILE *f = fopen(envf, "r");
  assert_non_null(f);
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, "GDX_DB_SOCKET=", 14) == 0)
      snprintf(fsock, sizeof(fsock), "%.*s", (int)strcspn(line + 14, "\n"), line + 14);
  fclose(f);
  assert_int_equal(fexec(NULL, "CREATE DATABASE " PF), 0);
  assert_int_equal(fexec(NULL, "CREATE DATABASE " CF), 0);
  assert_int_equal(fexec(PF, "CREATE TABLE ledger_src (id INT PRIMARY KEY, name VARCHAR(60) "
                             "NOT NULL, amount DECIMAL(12,2), note VARCHAR(100) NULL, day DATE, "
                             "secret VARCHAR(20)) DEFAULT CHARSET=utf8mb4"),
                   0);
  assert_int_equal(fexec(PF, "INSERT INTO ledger_src SELECT seq, CONCAT('企业', seq), seq * 1.5, "
                             "IF(seq % 7 = 0, NULL, CONCAT('备注', seq)), '2026-01-01' + INTERVAL "
                             "seq % 300 DAY, 'x' FROM seq_1_to_2500"),
                   0);
  assert_int_equal(fexec(PF, "CREATE TABLE fault_src (id INT PRIMARY KEY, v INT NOT NULL, "
                             "payload VARCHAR(200) NOT NULL)"),
                   0);
  assert_int_equal(fexec(PF, "INSERT INTO fault_src SELECT seq, 0, REPEAT(CHAR(65 + seq % 26), "
                             "150) FROM seq_1_to_40000"),
                   0);
  assert_int_equal(fexec(PF, "CREATE TABLE ts_src (id INT PRIMARY KEY, name VARCHAR(60) NOT "
                             "NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
                             "ON UPDATE CURRENT_TIMESTAMP(6)) DEFAULT CHARSET=utf8mb4"),
                   0);
  assert_int_equal(fexec(PF, "INSERT INTO ts_src (id, name) SELECT seq, CONCAT('单位', seq) FROM "
                             "seq_1_to_3000"),
                   0);
  snprintf(tn_extra_conf, sizeof(tn_extra_conf),
           "frontdb = { socket = \"%s\"; user = \"root\"; name = \"" PF "\"; pool_size = 4; };\n"
           "admin = { port = %d; };",
           fsock, prov_admin_port);
  prov_pid = tn_start_node(P.prov_admin, PROV, "prov-tnode",
                           "{ name = \"ledger\"; kind = \"table\"; table = \"ledger_src\"; "
                           "items = [\"id\", \"name\", \"amount\", \"note\", \"day\"]; },"
                           "{ name = \"fault\"; kind = \"table\"; table = \"fault_src\"; },"
                           "{ name = \"stamped\"; kind = \"table\"; table = \"ts_src\"; "
                           "capture = \"timestamp\"; timestamp_column = \"updated_at\"; }",
                           prov_conf, prov_state, &prov_row);
  tn_wait_health(prov_row, "ledger", "up", "key (id)");
  tn_wait_health(prov_row, "fault", "up", "key (id)");
  tn_publish_table(P.prov_admin, "prov-tnode", "ledger",
                   "{\"name\":\"id\",\"type\":\"integer\",\"sharing_type\":\"unconditional\"},"
                   "{\"name\":\"name\",\"type\":\"string\",\"sharing_type\":\"unconditional\"},"
                   "{\"name\":\"amount\",\"type\":\"decimal\",\"sharing_type\":\"conditional\"},"
                   "{\"name\":\"note\",\"type\":\"string\",\"sharing_type\":\"conditional\"},"
                   "{\"name\":\"day\",\"type\":\"date\",\"sharing_type\":\"conditional\"}",
                   code_ledger, sizeof(code_ledger));
  tn_publish_table(P.prov_admin, "prov-tnode", "fault",
                   "{\"name\":\"id\",\"type\":\"integer\",\"sharing_type\":\"unconditional\"},"
                   "{\"name\":\"v\",\"type\":\"integer\",\"sharing_type\":\"unconditional\"},"
                   "{\"name\":\"payload\",\"type\":\"string\",\"sharing_type\":\"unconditional\"}",
                   code_fault, sizeof(code_fault));
  tn_wait_health(prov_row, "stamped", "up", "key (id)");
  tn_publish_table(P.prov_admin, "prov-tnode", "stamped",
                   "{\"name\":\"id\",\"type\":\"integer\",\"sharing_type\":\"unconditional\"},"
                   "{\"name\":\"name\",\"type\":\"string\",\"sharing_type\":\"unconditional\"},"
                   "{\"name\":\"updated_at\",\"type\":\"datetime\",\"sharing_type\":"
                   "\"unconditional\"}",
                   code_stamped, sizeof(code_stamped));
  auth_ledger = tn_authorize(P.cons_admin, code_ledger,
                             "\"id\",\"name\",\"amount\",\"note\",\"day\"", "subscribe", NULL, NULL);
  auth_fault = tn_authorize(P.cons_admin, code_fault, "\"id\",\"v\",\"payload\"", "subscribe", NULL,
                            NULL);
  auth_fetch = tn_authorize(P.cons2_admin, code_ledger, "\"id\",\"name\"", "fetch", NULL, NULL);
  snprintf(tn_extra_conf, sizeof(tn_extra_conf),
           "frontdb = { socket = \"%s\"; user = \"root\"; name = \"" CF "\"; };\n"
           "admin = { port = %d; };\n"
           "subscriptions = ( { authorization = %lld; table = \"ledger_copy\"; batch = 500; "
           "reconcile_every_s = 0; chunk = 300; } );",
           fsock, cons_admin_port, auth_ledger);
  cons_pid = tn_start_node(P.cons_admin, CONS, "cons-tnode", "", cons_conf, cons_state, &cons_row);
  tn_extra_conf[0] = '\0';
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tn_stop_all(); /* the nodes, before their database server goes */
  if (fdir[0])
    front_server("destroy");
  return tb_stop(&B) == 0 ? 0 : -1;
}

#define LEDGER_COLS "id, name, amount, note, day"

/* ------------------------------------------------------------------ */

/* The snapshot and changes arrive; every batch is in the broker's ledger
 * with matching rows and checksums; the broker knows the position; the
 * provider purges its change log below it; a caught-up consumer waits at
 * the provider (long poll). */
static void test_ledger_and_purge(void **state) {
  (void)state;
  char cell[200], sql[400];
  wait_same("ledger_src", "ledger_copy", LEDGER_COLS, 60);
  /* the secret column is not offered: the copy has the five items only */
  fscalar(CF, "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM "
              "information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = "
              "'ledger_copy'", cell, sizeof(cell));
  assert_string_equal(cell, "id,name,amount,note,day");
  /* changes: updates, deletes, inserts */
  assert_int_equal(fexec(PF, "UPDATE ledger_src SET name = CONCAT(name, '-改') WHERE id <= 10"), 0);
  assert_int_equal(fexec(PF, "DELETE FROM ledger_src WHERE id BETWEEN 100 AND 104"), 0);
  assert_int_equal(fexec(PF, "INSERT INTO ledger_src VALUES (3001, '新企业', 1.00, NULL, "
                             "'2026-11-25', 's'), (3002, '新企业二', 2.00, '注', NULL, 's'), "
                             "(3003, '新企业三', NULL, NULL, NULL, 's')"),
                   0);
  wait_same("ledger_src", "ledger_copy", LEDGER_COLS, 30);
  /* the ledger: every batch recorded once by the broker, both sides equal */
  snprintf(sql, sizeof(sql),
           "SELECT CONCAT(SUM(kind = 'page'), ' ', SUM(IF(kind = 'page', rows_applied, 0)), ' ', "
           "SUM(matched = 0)) FROM table_ledger WHERE authorization_id = %lld", auth_ledger);
  /* 2500 rows in pages of 500: five full pages and an empty last one */
  if (!tdb_wait_scalar(NULL, B.dbname, sql, "6 2500 0", 20, cell, sizeof(cell)))
    fail_msg("ledger pages: %s", cell);
  snprintf(sql, sizeof(sql),
           "SELECT SUM(rows_applied) FROM table_ledger WHERE authorization_id = %lld AND kind = "
           "'changes'", auth_ledger);
  if (!tdb_wait_scalar(NULL, B.dbname, sql, "18", 20, cell, sizeof(cell)))
    fail_msg("ledger changes: %s rows, wanted 10 updated + 5 deleted + 3 inserted", cell);
  /* the consumer's own ledger rows are gone once the broker has them */
  if (!tdb_wait_scalar(fsock, CF, "SELECT COUNT(*) FROM gdx_sync_ledger", "0", 20, cell,
                      sizeof(cell)))
    fail_msg("%s ledger rows not reported", cell);
  /* the broker's record of the position, the consumer's own */
  char pos[32];
  fscalar(CF, "SELECT position FROM gdx_sync_state", pos, sizeof(pos));
  snprintf(sql, sizeof(sql),
           "SELECT CONCAT(phase, ' ', position, ' ', target) FROM table_subscriptions WHERE "
           "authorization_id = %lld", auth_ledger);
  char want[100];
  snprintf(want, sizeof(want), "changes %s ledger_copy", pos);
  if (!tdb_wait_scalar(NULL, B.dbname, sql, want, 20, cell, sizeof(cell)))
    fail_msg("table_subscriptions: %s, wanted %s", cell, want);
  /* the provider purges its change log up to there (the heartbeat tells it) */
  snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM gdx_changelog WHERE tbl = 'ledger_src' AND "
                             "seq <= %s", pos);
  if (!tdb_wait_scalar(fsock, PF, sql, "0", 20, cell, sizeof(cell)))
    fail_msg("%s change-log entries not purged", cell);
  fscalar(PF, "SELECT upto FROM gdx_changelog_purged WHERE tbl = 'ledger_src'", cell,
          sizeof(cell));
  assert_string_equal(cell, pos);
  /* caught up: the consumer's read waits at the provider */
  double waiting = -1;
  TH_WAIT_UNTIL((waiting = tn_metric(prov_admin_port,
                                     "gdx_node_table_reads_waiting{resource=\"ledger\"}")) >= 1,
                30000, "a read waiting at the provider (%.0f)", waiting);
  assert_true(waiting >= 1);
  /* and a change reaches it without a poll interval: seen within the wait */
  assert_int_equal(fexec(PF, "UPDATE ledger_src SET amount = 99.99 WHERE id = 1"), 0);
  wait_same("ledger_src", "ledger_copy", LEDGER_COLS, 10);
  /* the subscription as the API shows it to both units, not to others */
  json_t *j = api_get(P.prov_admin, "/api/v1/subscriptions");
  json_t *s = json_array_get(json_object_get(j, "items"), 0);
  assert_int_equal(jint(s, "authorization_id"), auth_ledger);
  assert_string_equal(json_string_value(json_object_get(s, "phase")), "changes");
  assert_true(jint(s, "rows_applied") >= 2500 + 18);
  json_decref(j);
  j = api_get(P.cons2_admin, "/api/v1/subscriptions");
  assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
  json_decref(j);
  char path[128];
  snprintf(path, sizeof(path), "/api/v1/subscriptions/%lld/report", auth_ledger);
  tb_expect(404, "GET", path, P.cons2_admin, NULL);
}

/* Rows lost, changed and added behind gdx's back on the consumer's side
 * are found by reconciliation, repaired (only those rows), reported and
 * raise one alarm; the next run is clean; the daily report says so. */
static void test_reconcile_repair_alarm(void **state) {
  (void)state;
  wait_same("ledger_src", "ledger_copy", LEDGER_COLS, 30);
  json_t *run = reconcile(auth_ledger, P.cons_admin);
  assert_string_equal(json_string_value(json_object_get(run, "status")), "clean");
  json_decref(run);
  assert_int_equal(fexec(CF, "DELETE FROM ledger_copy WHERE id = 500"), 0);
  assert_int_equal(fexec(CF, "UPDATE ledger_copy SET name = '篡改' WHERE id = 1500"), 0);
  assert_int_equal(fexec(CF, "INSERT INTO ledger_copy VALUES (9999, '多余', NULL, NULL, NULL)"),
                   0);
  char pos_before[32], pos_after[32];
  fscalar(CF, "SELECT position FROM gdx_sync_state", pos_before, sizeof(pos_before));
  run = reconcile(auth_ledger, P.prov_admin); /* either side may ask */
  char *t = tn_dump(run);
  assert_string_equal(json_string_value(json_object_get(run, "status")), "repaired");
  assert_int_equal(jint(run, "rows_missing"), 1);
  assert_int_equal(jint(run, "rows_extra"), 1);
  assert_int_equal(jint(run, "rows_different"), 1);
  assert_int_equal(jint(run, "rows_repaired"), 3);
  assert_int_equal(jint(run, "rows_in_flight"), 0);
  assert_int_equal(jint(run, "rows_source"), 2498);
  assert_int_equal(jint(run, "rows_target"), 2498);
  /* 2498 rows in chunks of 300: 9 chunks; each tampered row in its own */
  assert_int_equal(jint(run, "chunks"), 9);
  assert_int_equal(jint(run, "chunks_differing"), 3);
  assert_non_null(strstr(t, "{\"key\":[\"500\"],\"what\":\"missing\"}"));
  assert_non_null(strstr(t, "{\"key\":[\"1500\"],\"what\":\"different\"}"));
  assert_non_null(strstr(t, "{\"key\":[\"9999\"],\"what\":\"extra\"}"));
  free(t);
  json_decref(run);
  wait_same("ledger_src", "ledger_copy", LEDGER_COLS, 5);
  /* a repair does not move the subscription */
  fscalar(CF, "SELECT position FROM gdx_sync_state", pos_after, sizeof(pos_after));
  assert_string_equal(pos_before, pos_after);
  /* the repair is in the ledger: two ranges of one row re-sent, one delete */
  char sql[300], cell[64];
  snprintf(sql, sizeof(sql), "SELECT CONCAT(COUNT(*), ' ', SUM(rows_applied)) FROM table_ledger "
                             "WHERE authorization_id = %lld AND kind = 'repair'", auth_ledger);
  if (!tdb_wait_scalar(NULL, B.dbname, sql, "3 2", 20, cell, sizeof(cell)))
    fail_msg("repair ledger: %s", cell);
  /* one alarm, seen by both units, not by another */
  json_t *j = api_get(P.cons_admin, "/api/v1/alarms");
  json_t *items = json_object_get(j, "items");
  assert_int_equal(json_array_size(items), 1);
  json_t *al = json_array_get(items, 0);
  assert_string_equal(json_string_value(json_object_get(al, "kind")),
                      "reconciliation_differences");
  assert_int_equal(jint(al, "authorization_id"), auth_ledger);
  assert_non_null(strstr(json_string_value(json_object_get(al, "message")),
                         "1 missing, 1 extra and 1 different rows; 3 repaired"));
  long long alarm_id = jint(al, "id");
  json_decref(j);
  j = api_get(P.cons2_admin, "/api/v1/alarms");
  assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
  json_decref(j);
  /* in the broker's metrics (refreshed every 2 s) */
  double open_alarms = -1;
  TH_WAIT_UNTIL((open_alarms = tn_metric(
                     B.port, "gdx_alarms_open{kind=\"reconciliation_differences\"}")) == 1,
                30000, "one open alarm in the broker's metrics (%.0f)", open_alarms);
  assert_true(open_alarms == 1);
  /* acknowledged by the consumer's admin: audited, no longer open */
  char path[128];
  snprintf(path, sizeof(path), "/api/v1/alarms/%lld/ack", alarm_id);
  tb_expect(404, "POST", path, P.cons2_admin, NULL);
  tb_expect(200, "POST", path, P.cons_admin, NULL);
  tb_expect(409, "POST", path, P.cons_admin, NULL);
  /* audited, the refusals too */
  snprintf(sql, sizeof(sql), "SELECT GROUP_CONCAT(CONCAT(actor, ':', result) ORDER BY id) FROM "
                             "audit_log WHERE action = 'alarm.ack' AND object = 'alarm:%lld'",
           alarm_id);
  tdb_scalar(B.dbname, sql, cell, sizeof(cell));
  assert_string_equal(cell, "cons2.admin:failure,cons.admin:success,cons.admin:failure");
  snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM audit_log WHERE action = 'table.reconcile'");
  tdb_scalar(B.dbname, sql, cell, sizeof(cell));
  assert_true(atoi(cell) >= 2);
  j = api_get(P.cons_admin, "/api/v1/alarms");
  assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
  json_decref(j);
  /* the next run is clean and raises nothing */
  run = reconcile(auth_ledger, P.cons_admin);
  assert_string_equal(json_string_value(json_object_get(run, "status")), "clean");
  json_decref(run);
  j = api_get(P.cons_admin, "/api/v1/alarms?state=all");
  assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
  json_decref(j);
  /* the daily report */
  snprintf(path, sizeof(path), "/api/v1/subscriptions/%lld/report", auth_ledger);
  j = api_get(P.prov_admin, path);
  assert_string_equal(json_string_value(json_object_get(j, "verdict")), "consistent");
  json_t *ledger = json_object_get(j, "ledger");
  assert_int_equal(jint(ledger, "mismatched_batches"), 0);
  assert_true(jint(ledger, "rows_applied") >= 2500 + 18);
  assert_int_equal(jint(ledger, "snapshot_pages"), 6);
  assert_true(json_array_size(json_object_get(j, "reconciliations")) >= 3);
  assert_int_equal(json_array_size(json_object_get(j, "alarms")), 1);
  json_decref(j);
  snprintf(path, sizeof(path), "/api/v1/subscriptions/%lld/report?date=2020-01-01",
           auth_ledger);
  j = api_get(P.cons_admin, path);
  assert_string_equal(json_string_value(json_object_get(j, "verdict")), "not_reconciled");
  assert_int_equal(jint(json_object_get(j, "ledger"), "batches"), 0);
  json_decref(j);
  snprintf(path, sizeof(path), "/api/v1/subscriptions/%lld/report?date=yesterday", auth_ledger);
  tb_expect(400, "GET", path, P.cons_admin, NULL);
}

/* A consumer offline while many changes happen: the provider keeps its
 * change log for it, and it catches up completely when it returns. */
static void test_offline_catch_up(void **state) {
  (void)state;
  wait_same("ledger_src", "ledger_copy", LEDGER_COLS, 30);
  tn_stop(cons_pid);
  /* 2500 rows x 8 updates = 20000 changes (100,000 in bench/table) */
  for (int i = 0; i < 8; i++)
    assert_int_equal(fexec(PF, "UPDATE ledger_src SET amount = amount + 1"), 0);
  assert_int_equal(fexec(PF, "DELETE FROM ledger_src WHERE id % 97 = 0"), 0);
  /* two heartbeats of the provider after the changes, each answered with
   * the position to purge below: nothing may be purged that the consumer
   * lacks */
  const char *hb = "gdx_node_heartbeats_total{result=\"ok\"}";
  double h0 = tn_metric(prov_admin_port, hb), h = h0;
  assert_true(h0 >= 0);
  TH_WAIT_UNTIL((h = tn_metric(prov_admin_port, hb)) >= h0 + 2, 30000,
                "two heartbeats of the provider's node (%.0f, then %.0f)", h0, h);
  char cell[64];
  fscalar(PF, "SELECT COUNT(*) >= 20000 FROM gdx_changelog WHERE tbl = 'ledger_src'", cell,
          sizeof(cell));
  assert_string_equal(cell, "1");
  cons_pid = tn_restart_node(cons_conf, "cons-tnode");
  wait_same("ledger_src", "ledger_copy", LEDGER_COLS, 60);
  json_t *run = reconcile(auth_ledger, P.cons_admin);
  assert_string_equal(json_string_value(json_object_get(run, "status")), "clean");
  json_decref(run);
  /* and then the log shrinks again */
  if (!tdb_wait_scalar(fsock, PF, "SELECT COUNT(*) < 100 FROM gdx_changelog WHERE tbl = "
                                 "'ledger_src'", "1", 20, cell, sizeof(cell)))
    fail_msg("change log not purged after the catch-up");
}

/* A consumer whose position the provider has purged (it was gone longer
 * than anyone waited) loads the table again instead of skipping changes. */
static void test_purged_position_reloads(void **state) {
  (void)state;
  wait_same("ledger_src", "ledger_copy", LEDGER_COLS, 30);
  tn_stop(cons_pid);
  assert_int_equal(fexec(PF, "UPDATE ledger_src SET note = '变更' WHERE id < 50"), 0);
  assert_int_equal(fexec(PF, "DELETE FROM ledger_src WHERE id BETWEEN 50 AND 60"), 0);
  /* as if purged past it: the floor moves and the entries go */
  assert_int_equal(fexec(PF, "UPDATE gdx_changelog_purged SET upto = (SELECT MAX(seq) FROM "
                             "gdx_changelog) WHERE tbl = 'ledger_src'"),
                   0);
  assert_int_equal(fexec(PF, "DELETE FROM gdx_changelog WHERE tbl = 'ledger_src'"), 0);
  cons_pid = tn_restart_node(cons_conf, "cons-tnode");
  wait_same("ledger_src", "ledger_copy", LEDGER_COLS, 60);
  char metric[128];
  snprintf(metric, sizeof(metric),
           "gdx_node_subscription_restarts_total{authorization=\"%lld\"}", auth_ledger);
  assert_true(tn_metric(cons_admin_port, metric) == 1);
  char log[256], cmd[600];
  tn_node_log("cons-tnode", log);
  snprintf(cmd, sizeof(cmd), "grep -q 'purged its change log past' %s", log);
  assert_int_equal(system(cmd), 0);
}

/* Fetch (获取): a one-shot snapshot of the authorized items into a table;
 * a fetch authorization cannot read changes. */
static void test_fetch_once(void **state) {
  (void)state;
  char st[256];
  pid_t pid = start_cons2("cons2-tnode", auth_fetch, "ledger_fetched", "once = true; batch = 700;",
                          st);
  char cell[100] = "", want[100];
  digest(PF, "ledger_src", "id, name", want, sizeof(want));
  TH_WAIT_UNTIL((digest(CF, "ledger_fetched", "id, name", cell, sizeof(cell)),
                 strcmp(cell, want) == 0),
                30000, "the fetched copy to be %s (it is %s)", want, cell);
  assert_string_equal(cell, want);
  fscalar(PF, "SELECT CONCAT('1 ', COUNT(*)) FROM ledger_src", want, sizeof(want));
  fscalar(CF, "SELECT CONCAT(snapshot_done, ' ', rows_applied) FROM gdx_sync_state WHERE "
              "target = 'ledger_fetched'", cell, sizeof(cell));
  assert_string_equal(cell, want);
  /* later changes do not come: it was a fetch (a "nothing happens" check:
   * a second in which a subscription would have applied it) */
  assert_int_equal(fexec(PF, "UPDATE ledger_src SET name = '之后' WHERE id = 2"), 0);
  TH_STAYS((fscalar(CF, "SELECT name FROM ledger_fetched WHERE id = 2", cell, sizeof(cell)),
            strcmp(cell, "之后") != 0),
           1000, "the fetched copy not taking a later change");
  assert_string_not_equal(cell, "之后");
  char path[128];
  long code = 0;
  snprintf(path, sizeof(path), "/node/v1/tables/%lld/changes?after=0", auth_fetch);
  json_t *j = tn_broker_get_as(st, path, &code);
  assert_int_equal(code, 403);
  assert_string_equal(tb_err_code(j), "wrong_method");
  json_decref(j);
  /* pages travel compressed for a reader that accepts zstd, and hold the
   * same as for one that does not */
  snprintf(path, sizeof(path), "/node/v1/tables/%lld/snapshot?limit=1000", auth_fetch);
  json_t *plain = tn_broker_get_as(st, path, &code);
  assert_int_equal(code, 200);
  char cmd[1500], zfile[300];
  snprintf(zfile, sizeof(zfile), "%s/page.zst", B.dir);
  snprintf(cmd, sizeof(cmd),
           "curl -gsk --cert %s/node.crt --key %s/node.key -H 'Accept-Encoding: zstd' "
           "-D %s.head -o %s 'https://127.0.0.1:%d%s' && grep -qi '^content-encoding: zstd' "
           "%s.head",
           st, st, zfile, zfile, nodes_port, path, zfile);
  assert_int_equal(system(cmd), 0);
  FILE *f = fopen(zfile, "rb");
  assert_non_null(f);
  static char zbuf[1 << 20];
  size_t zn = fread(zbuf, 1, sizeof(zbuf), f);
  fclose(f);
  char *text;
  size_t tn;
  assert_int_equal(gdx_zstd_decompress(zbuf, zn, 64 << 20, &text, &tn), GDX_OK);
  assert_true(zn < tn / 2);
  json_t *unz = json_loadb(text, tn, 0, NULL);
  free(text);
  assert_non_null(unz);
  assert_true(json_equal(plain, unz));
  json_decref(plain);
  json_decref(unz);
  tn_stop(pid);
}

/* A call through /svc that must be refused with status and code. */
static void refused(const char *method, const char *path, const char *tok, const char *body,
                    long status, const char *code) {
  json_t *j = NULL;
  long st = tb_call(method, path, tok, body, &j);
  if (st != status || tb_err_code(j) == NULL || strcmp(tb_err_code(j), code) != 0)
    fail_msg("%s %s -> %ld %s, expected %ld %s", method, path, st,
             tb_err_code(j) ? tb_err_code(j) : "", status, code);
  json_decref(j);
}

/* Compare (比对): per record match, mismatch (which fields) or not_found,
 * never the provider's values; only authorized items; every record counts
 * against the quota, and a batch larger than what is left is refused
 * whole; each batch is a call record with its record count. */
static void test_compare(void **state) {
  (void)state;
  assert_int_equal(fexec(PF, "INSERT INTO ledger_src VALUES (900001, '张三', 12.50, '备注', "
                             "'2026-03-01', 's1'), (900002, '李四', 7.00, NULL, NULL, 's2')"),
                   0);
  long long auth = tn_authorize(P.cons_admin, code_ledger, "\"id\",\"name\",\"amount\"", "compare",
                                "6", NULL);
  char client[40], secret[64], tok[512], path[128];
  tn_credential(P.cons_admin, auth, client, secret);
  tn_token(client, secret, tok, sizeof(tok));
  snprintf(path, sizeof(path), "/svc/%s/compare", code_ledger);
  json_t *j = NULL;
  long st = tb_call("POST", path, tok,
                    "{\"records\":[{\"id\":900001,\"name\":\"张三\",\"amount\":\"12.5\"},"
                    "{\"id\":\"900002\",\"name\":\"王五\",\"amount\":7},"
                    "{\"id\":999999,\"name\":\"张三\"},{\"id\":900001}]}",
                    &j);
  char *text = tn_dump(j);
  if (st != 200)
    fail_msg("compare -> %ld %s", st, text);
  json_t *res = json_object_get(j, "results");
  assert_int_equal(json_array_size(res), 4);
  assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "result")),
                      "match");
  json_t *r1 = json_array_get(res, 1);
  assert_string_equal(json_string_value(json_object_get(r1, "result")), "mismatch");
  assert_int_equal(json_array_size(json_object_get(r1, "fields")), 1);
  assert_string_equal(json_string_value(json_array_get(json_object_get(r1, "fields"), 0)), "name");
  assert_string_equal(json_string_value(json_object_get(json_array_get(res, 2), "result")),
                      "not_found");
  assert_string_equal(json_string_value(json_object_get(json_array_get(res, 3), "result")),
                      "match");
  json_t *counts = json_object_get(j, "counts");
  assert_int_equal(jint(counts, "match"), 2);
  assert_int_equal(jint(counts, "mismatch"), 1);
  assert_int_equal(jint(counts, "not_found"), 1);
  /* nothing of the provider's data: not the real name behind the mismatch */
  assert_null(strstr(text, "李四"));
  assert_null(strstr(text, "s2"));
  free(text);
  json_decref(j);
  /* only authorized items; the key is required; malformed bodies */
  refused("POST", path, tok, "{\"records\":[{\"id\":900001,\"note\":\"备注\"}]}", 403,
          "item_not_offered");
  refused("POST", path, tok, "{\"records\":[{\"id\":900001,\"secret\":\"s1\"}]}", 403,
          "item_not_offered");
  refused("POST", path, tok, "{\"records\":[{\"name\":\"张三\"}]}", 400, "invalid_body");
  refused("POST", path, tok, "[1,2", 400, "invalid_body");
  /* a compare authorization is for compare only */
  snprintf(path, sizeof(path), "/svc/%s/snapshot", code_ledger);
  refused("GET", path, tok, NULL, 404, "path_not_allowed");
  snprintf(path, sizeof(path), "/svc/%s/compare", code_ledger);
  refused("GET", path, tok, NULL, 405, "method_not_allowed");
  /* quota 6, 4 used: 3 records are refused whole, 2 pass, then nothing */
  refused("POST", path, tok, "{\"records\":[{\"id\":1},{\"id\":2},{\"id\":3}]}", 429,
          "quota_exhausted");
  st = tb_call("POST", path, tok, "{\"records\":[{\"id\":1},{\"id\":900002,\"amount\":7.001}]}",
               &j);
  assert_int_equal(st, 200);
  assert_int_equal(jint(json_object_get(j, "counts"), "mismatch"), 1);
  json_decref(j);
  refused("POST", path, tok, "{\"records\":[{\"id\":1}]}", 429, "quota_exhausted");
  /* the record of each batch, with its record count; usage is 6 */
  char sql[300], cell[100];
  snprintf(sql, sizeof(sql),
           "SELECT GROUP_CONCAT(CONCAT(status, ':', units) ORDER BY id) FROM api_calls WHERE "
           "authorization_id = %lld AND path LIKE '%%/compare'",
           auth);
  if (!tdb_wait_scalar(NULL, B.dbname, sql, "200:4,403:0,403:0,400:0,400:0,405:0,429:0,200:2,429:0",
                      10, cell, sizeof(cell)))
    fail_msg("call records: %s", cell);
  snprintf(sql, sizeof(sql), "SELECT calls FROM authorization_usage WHERE authorization_id = %lld",
           auth);
  if (!tdb_wait_scalar(NULL, B.dbname, sql, "6", 10, cell, sizeof(cell)))
    fail_msg("usage: %s", cell);
  /* a subscription cannot be used to compare */
  snprintf(sql, sizeof(sql), "{\"authorization_id\":%lld}", auth_ledger);
  tb_expect(409, "POST", "/api/v1/credentials", P.cons_admin, sql);
}

static int cli(const char *token, const char *env, const char *args, char *out, size_t n) {
  return tn_cli(GDX_CLI_BIN, token, env, args, out, n);
}

/* The CLI of table exchange: subscriptions, the daily report as a table
 * and as JSON, reconciliation runs, alarms; and fetch (获取) to CSV and
 * JSON Lines with the authorized columns only, the same rows as the
 * provider's table. */
static void test_cli_tables(void **state) {
  (void)state;
  static char out[1 << 20];
  char args[600], want[100], got[100];
  assert_int_equal(cli(P.cons_admin, "", "subscriptions", out, sizeof(out)), 0);
  assert_non_null(strstr(out, "ledger_copy"));
  assert_non_null(strstr(out, "ROWS APPLIED"));
  snprintf(args, sizeof(args), "subscriptions report %lld", auth_ledger);
  assert_int_equal(cli(P.cons_admin, "", args, out, sizeof(out)), 0);
  assert_non_null(strstr(out, "Verdict"));
  assert_non_null(strstr(out, "Reconciliation runs"));
  snprintf(args, sizeof(args), "--json subscriptions report %lld", auth_ledger);
  assert_int_equal(cli(P.cons_admin, "", args, out, sizeof(out)), 0);
  json_t *j = json_loads(out, 0, NULL);
  assert_non_null(j);
  assert_int_equal(jint(j, "authorization_id"), auth_ledger);
  assert_non_null(json_string_value(json_object_get(j, "verdict")));
  json_decref(j);
  assert_int_equal(cli(P.cons_admin, "", "alarms --all", out, sizeof(out)), 0);
  assert_non_null(strstr(out, "reconciliation_differences"));
  snprintf(args, sizeof(args), "reconciliations --authorization %lld", auth_ledger);
  assert_int_equal(cli(P.cons_admin, "", args, out, sizeof(out)), 0);
  assert_non_null(strstr(out, "repaired"));
  /* another unit's subscription report is not shown */
  snprintf(args, sizeof(args), "subscriptions report %lld", auth_ledger);
  assert_int_not_equal(cli(P.cons2_admin, "", args, out, sizeof(out)), 0);

  /* fetch under the fetch authorization (items id, name) */
  char client[40], secret[64], env[200];
  tn_credential(P.cons2_admin, auth_fetch, client, secret);
  snprintf(env, sizeof(env), "GDX_CLIENT_SECRET=%s", secret);
  char csv[300], jsonl[300];
  snprintf(csv, sizeof(csv), "%s/fetched.csv", B.dir);
  snprintf(jsonl, sizeof(jsonl), "%s/fetched.jsonl", B.dir);
  snprintf(args, sizeof(args), "fetch --client-id %s --page 700 -o %s %s", client, csv,
           code_ledger);
  assert_int_equal(cli(P.cons2_admin, env, args, out, sizeof(out)), 0);
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "md5sum < %s | cut -c1-32 > %s/csv.md5", csv, B.dir);
  assert_int_equal(system(cmd), 0);
  fscalar(PF, "SET STATEMENT group_concat_max_len = 1073741824 FOR SELECT MD5(CONCAT('id,name\\n',"
              " GROUP_CONCAT(CONCAT(id, ',', name, '\\n') ORDER BY id SEPARATOR ''))) FROM "
              "ledger_src", want, sizeof(want));
  snprintf(cmd, sizeof(cmd), "%s/csv.md5", B.dir);
  FILE *f = fopen(cmd, "r");
  assert_non_null(f);
  assert_non_null(fgets(got, sizeof(got), f));
  fclose(f);
  got[strcspn(got, "\n")] = '\0';
  assert_string_equal(got, want);
  snprintf(args, sizeof(args), "fetch --client-id %s --format jsonl -o %s %s", client, jsonl,
           code_ledger);
  assert_int_equal(cli(P.cons2_admin, env, args, out, sizeof(out)), 0);
  f = fopen(jsonl, "r");
  assert_non_null(f);
  long lines = 0;
  char line[400];
  while (fgets(line, sizeof(line), f)) {
    json_t *row = json_loads(line, 0, NULL);
    assert_non_null(row);
    assert_int_equal(json_object_size(row), 2); /* id and name: nothing unauthorized */
    assert_non_null(json_object_get(row, "name"));
    json_decref(row);
    lines++;
  }
  fclose(f);
  fscalar(PF, "SELECT COUNT(*) FROM ledger_src", want, sizeof(want));
  assert_int_equal(lines, atol(want));
  /* a wrong secret: refused, and no file left behind */
  snprintf(args, sizeof(args), "fetch --client-id %s -o %s.bad %s", client, csv, code_ledger);
  assert_int_equal(cli(P.cons2_admin, "GDX_CLIENT_SECRET=wrong", args, out, sizeof(out)), 4);
  snprintf(cmd, sizeof(cmd), "test ! -e %s.bad && test ! -e %s.bad.part", csv, csv);
  assert_int_equal(system(cmd), 0);
}

/* capture = "timestamp": the snapshot, then updates and inserts found by
 * the change-time column; a row deleted outright is not seen (documented)
 * until a reconciliation run finds it as an extra row and removes it. */
static void test_timestamp_capture(void **state) {
  (void)state;
  long long auth = tn_authorize(P.cons2_admin, code_stamped, "\"id\",\"name\",\"updated_at\"",
                                "subscribe", NULL, NULL);
  char st[256];
  pid_t pid = start_cons2("cons2-ts", auth, "stamped_copy",
                          "batch = 700; poll_ms = 100; reconcile_every_s = 0; chunk = 500;", st);
  wait_same("ts_src", "stamped_copy", "id, name, updated_at", 30);
  /* many rows in one instant (one statement), more than a batch */
  assert_int_equal(fexec(PF, "UPDATE ts_src SET name = CONCAT(name, '-改') WHERE id <= 1500"), 0);
  assert_int_equal(fexec(PF, "INSERT INTO ts_src (id, name) VALUES (5001, '新单位')"), 0);
  wait_same("ts_src", "stamped_copy", "id, name, updated_at", 30);
  /* a hard delete is not seen by timestamp capture ... */
  assert_int_equal(fexec(PF, "DELETE FROM ts_src WHERE id = 7"), 0);
  assert_int_equal(fexec(PF, "UPDATE ts_src SET name = '之后' WHERE id = 8"), 0);
  char cell[100];
  if (!tdb_wait_scalar(fsock, CF, "SELECT name FROM stamped_copy WHERE id = 8", "之后", 30, cell,
                      sizeof(cell)))
    fail_msg("the update after the delete did not arrive: %s", cell);
  fscalar(CF, "SELECT COUNT(*) FROM stamped_copy WHERE id = 7", cell, sizeof(cell));
  assert_string_equal(cell, "1");
  /* ... until reconciliation removes it */
  json_t *run = reconcile(auth, P.cons2_admin);
  assert_string_equal(json_string_value(json_object_get(run, "status")), "repaired");
  assert_int_equal(jint(run, "rows_extra"), 1);
  json_decref(run);
  wait_same("ts_src", "stamped_copy", "id, name, updated_at", 30);
  tn_stop(pid);
}

/* The fault table's rows applied by the consumer so far. */
static long long progress(void) {
  char cell[32];
  fscalar(CF, "SELECT IFNULL(MAX(rows_applied), 0) FROM gdx_sync_state WHERE target = "
              "'fault_copy'", cell, sizeof(cell));
  return atoll(cell);
}

static void wait_progress(long long rows) {
  long long now = 0;
  TH_WAIT_UNTIL((now = progress()) >= rows, 120000,
                "the consumer to apply %lld rows of fault_src (at %lld)", rows, now);
}

/* The errors of the fault subscription, from its node's /metrics. */
static double subscription_errors(int admin_port) {
  char m[128];
  snprintf(m, sizeof(m), "gdx_node_subscription_errors_total{authorization=\"%lld\"}",
           auth_fault);
  return tn_metric(admin_port, m);
}

/* Waits until the consumer's subscription has met the outage just made: an
 * error after the `before` it had. */
static void wait_outage_met(int admin_port, double before, const char *outage) {
  double now = before;
  assert_true(before >= 0);
  TH_WAIT_UNTIL((now = subscription_errors(admin_port)) > before, 60000,
                "the consumer to meet the outage (%s): %.0f errors, as before", outage, now);
}

/* The fault test: during the initial load of 40,000 rows with concurrent
 * inserts, updates and deletes at the provider, kill -9 the consumer's
 * node, the provider's node and the broker, and restart the front-end
 * MariaDB; after recovery the copy is the source and reconciliation finds
 * no difference. */
static void test_faults_during_load(void **state) {
  (void)state;
  /* a second consumer node for the fault table */
  int admin_port = th_free_port();
  snprintf(tn_extra_conf, sizeof(tn_extra_conf),
           "frontdb = { socket = \"%s\"; user = \"root\"; name = \"" CF "\"; };\n"
           "admin = { port = %d; };\n"
           "subscriptions = ( { authorization = %lld; table = \"fault_copy\"; batch = 100; "
           "reconcile_every_s = 0; chunk = 1000; } );",
           fsock, admin_port, auth_fault);
  char conf[256], st[256], cell[100];
  long long row;
  /* the writer: a steady stream of inserts, updates and deletes */
  char wsql[300], wlog[300], cmd[1200];
  snprintf(wsql, sizeof(wsql), "%s/writer.sql", B.dir);
  snprintf(wlog, sizeof(wlog), "%s/writer.log", B.dir);
  FILE *f = fopen(wsql, "w");
  assert_non_null(f);
  for (int i = 0; i < 4000; i++) {
    int id = 1 + (i * 7919) % 40000;
    fprintf(f, "UPDATE fault_src SET v = v + 1 WHERE id = %d;\n", id);
    if (i % 5 == 0)
      fprintf(f, "DELETE FROM fault_src WHERE id = %d;\n", 1 + (i * 104729) % 40000);
    if (i % 4 == 0)
      fprintf(f, "INSERT INTO fault_src VALUES (%d, %d, 'new') ON DUPLICATE KEY UPDATE v = 0;\n",
              40000 + i, i);
    if (i % 10 == 0) /* the writer's pace, to spread its changes over the load */
      fprintf(f, "DO SLEEP(0.02);\n");
  }
  fclose(f);
  snprintf(cmd, sizeof(cmd),
           "(for round in 1 2 3; do mariadb --no-defaults --force -S %s -uroot " PF
           " < %s; done) >>%s 2>&1 & echo $! > %s.pid",
           fsock, wsql, wlog, wlog);
  assert_int_equal(system(cmd), 0);
  pid_t pid = tn_start_node(P.cons_admin, CONS, "cons-fault", "", conf, st, &row);
  tn_extra_conf[0] = '\0';
  /* 1. kill -9 the consumer's node in the middle of the load */
  wait_progress(3000);
  fscalar(CF, "SELECT snapshot_done FROM gdx_sync_state WHERE target = 'fault_copy'", cell,
          sizeof(cell));
  assert_string_equal(cell, "0"); /* still loading */
  tn_kill9(pid);
  pid = tn_restart_node(conf, "cons-fault");
  /* 2. kill -9 the provider's node; started again once the consumer has
   * met it gone */
  wait_progress(progress() + 3000);
  double errors = subscription_errors(admin_port);
  tn_kill9(prov_pid);
  wait_outage_met(admin_port, errors, "the provider's node killed");
  prov_pid = tn_restart_node(prov_conf, "prov-tnode");
  /* 3. kill -9 the broker, likewise */
  wait_progress(progress() + 3000);
  errors = subscription_errors(admin_port);
  tb_kill9(&B);
  wait_outage_met(admin_port, errors, "the broker killed");
  assert_int_equal(tb_restart(&B, GDX_BROKER_BIN), 0);
  /* 4. restart the front-end MariaDB under both nodes, likewise */
  wait_progress(progress() + 3000);
  errors = subscription_errors(admin_port);
  front_server("stop");
  wait_outage_met(admin_port, errors, "the front-end MariaDB stopped");
  front_server("start");
  /* the writer's rounds end; then everything converges */
  char wpid[32] = "";
  snprintf(cmd, sizeof(cmd), "%s.pid", wlog);
  f = fopen(cmd, "r");
  assert_non_null(f);
  assert_non_null(fgets(wpid, sizeof(wpid), f));
  fclose(f);
  TH_WAIT_UNTIL(kill((pid_t)atol(wpid), 0) != 0, 300000, "the writer (pid %ld) to finish",
                atol(wpid));
  wait_same("fault_src", "fault_copy", "id, v, payload", 120);
  json_t *run = reconcile(auth_fault, P.cons_admin);
  char *t = tn_dump(run);
  if (strcmp(json_string_value(json_object_get(run, "status")), "clean") != 0)
    fail_msg("reconciliation after the faults: %s", t);
  free(t);
  assert_int_equal(jint(run, "rows_missing") + jint(run, "rows_extra") +
                       jint(run, "rows_different"),
                   0);
  fscalar(PF, "SELECT COUNT(*) FROM fault_src", cell, sizeof(cell));
  assert_int_equal(jint(run, "rows_source"), atoll(cell));
  json_decref(run);
  /* no batch was ever applied twice or differently than sent */
  char sql[300];
  snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM table_ledger WHERE authorization_id = %lld "
                             "AND matched = 0", auth_fault);
  tdb_scalar(B.dbname, sql, cell, sizeof(cell));
  assert_string_equal(cell, "0");
  tn_stop(pid);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ledger_and_purge),
      cmocka_unit_test(test_reconcile_repair_alarm),
      cmocka_unit_test(test_offline_catch_up),
      cmocka_unit_test(test_purged_position_reloads),
      cmocka_unit_test(test_fetch_once),
      cmocka_unit_test(test_compare),
      cmocka_unit_test(test_cli_tables),
      cmocka_unit_test(test_timestamp_capture),
      cmocka_unit_test(test_faults_during_load),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
