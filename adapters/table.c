/* The table adapter: a table in the unit's front-end database (前置库).
 *
 *   frontdb = { socket = "/run/mysqld/mysqld.sock"; user = "gdx_node";
 *               password_file = "/etc/gdx/frontdb.pw"; name = "qianzhi"; };
 *   resources = (
 *     { name = "enterprises"; kind = "table"; table = "enterprise_info";
 *       items = ["uscc", "name", "legal_person"]; # the columns offered (default: all)
 *       capture = "triggers"; }                   # or "timestamp" + timestamp_column
 *   );
 *
 * Change capture. With capture = "triggers" (the default) the adapter keeps
 * three triggers on the table (gdx_<table>_ai/_au/_ad) that write every
 * insert, update and delete - with the primary key, as a JSON array - into
 * gdx_changelog in the same database and the same transaction as the change
 * itself; an update that changes the key is logged as a delete of the old
 * key and an upsert of the new. The log's seq orders the changes; a
 * provider keeps a row until every subscriber has passed it. With capture =
 * "timestamp" nothing is installed: changes are the rows whose change-time
 * column (a timestamp or datetime the database sets, ON UPDATE
 * CURRENT_TIMESTAMP(6)) is at or after the position, a moment in
 * microseconds, and before the oldest open transaction; rows deleted
 * outright are not seen - a reconciliation run finds them as extra rows
 * and removes them - and there is no long poll (the consumer polls). Use it
 * only where triggers are not allowed.
 *
 * Schema. At start the adapter reads the table's columns and primary key
 * from information_schema, checks that the configured items are columns and
 * include the key, and remembers a fingerprint of the columns. Every health
 * check (before each heartbeat) reads them again: a table that changed
 * under the node, or lost a trigger, is reported down with what changed,
 * and nothing is served from it until the node is restarted on purpose -
 * never silently mis-applied.
 *
 * Served to the broker (JSON; the key columns first in every row):
 *   GET /r/<name>/schema    columns, key, items, capture, fingerprint, position
 *   GET /r/<name>/snapshot?[after=<JSON key>][&upto=<JSON key>][&limit=N][&items=a,b]
 *       one page in key order; the first page also gives the change-log
 *       position to replay from after the last page
 *   GET /r/<name>/changes?after=<position>[&limit=N][&wait_ms=N][&items=a,b]
 *       the log entries after the position, up to the first gap a still
 *       open transaction may fill; per key the last change, with the row as
 *       it is now ("U") or its key when it is gone ("D"); the new position.
 *       With wait_ms the read is parked while there is nothing new (a long
 *       poll: the log is looked at every 50 ms). 410 when the position is
 *       below what was purged.
 *   GET /r/<name>/checksums?[after=<JSON key>][&chunk=N][&limit=C]
 *       reconciliation: C chunks of N rows, each its key range, row count
 *       and XOR of row hashes (common/rowsum.h)
 *   GET /r/<name>/rowsums?[after=…][&upto=…][&position=P]
 *       a chunk row by row (key, hash), and the keys changed after P
 *   POST /r/<name>/compare?items=a,b   {"records": [{key…, item: value…}, …]}
 *       comparison (比对): per record match, mismatch (the fields that
 *       differ) or not_found, and none of the provider's values; at most
 *       1000 records and 1 MiB; X-Gdx-Records in the answer is the count
 *       the broker charges to the quota, X-Gdx-Quota-Left from the broker
 *       refuses a batch larger than what is left
 * Pages and batches carry "count" and "checksum" for the ledger. Identical
 * reads in flight share one query. The broker's heartbeat answer says how
 * far every subscriber has applied; the log is purged below that.
 * Only items the resource offers can be asked for; the broker asks for the
 * authorized ones, so other columns never leave the node.
 *
 * Identifiers (table and column names) cannot be bound parameters; they are
 * checked against [A-Za-z0-9_]{1,64} and backquoted. Every value goes
 * through bound parameters.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "compress.h"
#include "digest.h"
#include "error.h"
#include "log.h"
#include "num.h"
#include "relay.h"
#include "rowsum.h"

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
} table_res;

typedef struct {
  table_res *r;
  tschema s;
  int install;
} inspect_job;

/* ------------------------------------------------------------------ */
/* settings                                                            */

static int table_open(gdx_adapter *a, const config_setting_t *s, char *err, size_t errlen) {
  table_res *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return GDX_ENOMEM;
  a->impl = r;
  r->self = a;
  const char *n = a->name;
  char capture[16];
  int rc = gdx_adapter_str(s, "table", r->table, sizeof(r->table), NULL, n, err, errlen);
  if (!rc && !gdx_db_ident_ok(r->table)) {
    snprintf(err, errlen, "resources.%s.table: \"%s\" is not a plain table name "
                          "(letters, digits, _; at most 64)", n, r->table);
    rc = GDX_ECONFIG;
  }
  if (!rc)
    rc = gdx_adapter_str(s, "capture", capture, sizeof(capture), "triggers", n, err, errlen);
  if (!rc && strcmp(capture, "triggers") != 0 && strcmp(capture, "timestamp") != 0) {
    snprintf(err, errlen, "resources.%s.capture: \"triggers\" or \"timestamp\", not \"%s\"", n,
             capture);
    rc = GDX_ECONFIG;
  }
  r->triggers = !rc && strcmp(capture, "triggers") == 0;
  if (!rc && r->triggers && strlen(r->table) > 57) {
    snprintf(err, errlen, "resources.%s.table: at most 57 characters with capture = "
                          "\"triggers\" (the trigger names add 7)", n);
    rc = GDX_ECONFIG;
  }
  if (!rc && !r->triggers) {
    rc = gdx_adapter_str(s, "timestamp_column", r->ts_col, sizeof(r->ts_col), NULL, n, err, errlen);
    if (!rc && !gdx_db_ident_ok(r->ts_col)) {
      snprintf(err, errlen, "resources.%s.timestamp_column: not a plain column name", n);
      rc = GDX_ECONFIG;
    }
  }
  config_setting_t *items = rc ? NULL : config_setting_get_member(s, "items");
  if (items) {
    int count = config_setting_length(items);
    if (!config_setting_is_array(items) || count == 0 || count > MAX_COLS) {
      snprintf(err, errlen, "line %d: resources.%s.items: a list of 1 to %d column names",
               config_setting_source_line(items), n, MAX_COLS);
      rc = GDX_ECONFIG;
    }
    for (int i = 0; !rc && i < count; i++) {
      const char *c = config_setting_get_string_elem(items, i);
      if (c == NULL || !gdx_db_ident_ok(c)) {
        snprintf(err, errlen, "resources.%s.items[%d]: not a plain column name", n, i);
        rc = GDX_ECONFIG;
        break;
      }
      r->items[r->nitems++] = strdup(c);
    }
  }
  if (!rc && a->env && a->env->loop && a->env->frontdb == NULL) {
    snprintf(err, errlen, "resources.%s: a table resource needs frontdb.name (the unit's "
                          "front-end database)", n);
    rc = GDX_ECONFIG;
  }
  snprintf(a->health, sizeof(a->health), "unknown");
  snprintf(a->detail, sizeof(a->detail), "not inspected yet");
  return rc;
}

/* ------------------------------------------------------------------ */
/* inspection (worker thread)                                          */

/* JSON_ARRAY(<p>.`k1`, <p>.`k2`) of the key columns. */
static void key_array(const tschema *s, const char *p, gdx_buf *b) {
  gdx_buf_appends(b, "JSON_ARRAY(");
  for (int i = 0; i < s->npk; i++)
    gdx_buf_appendf(b, "%s%s.`%s`", i ? ", " : "", p, s->cols[s->pk[i]].name);
  gdx_buf_appends(b, ")");
}

/* The triggers that write the table's changes into gdx_changelog (made
 * with the node's other tables by its migrations, schemas/sql/node, before
 * a connection of the pool is used). */
static int install_triggers(gdx_db_conn *c, const char *t, const tschema *s) {
  gdx_buf b;
  gdx_buf_init(&b, 64 * 1024);
  gdx_buf_appendf(&b, "CREATE OR REPLACE TRIGGER `gdx_%s_ai` AFTER INSERT ON `%s` FOR EACH ROW "
                      "INSERT INTO gdx_changelog (tbl, op, pk) VALUES ('%s', 'I', ", t, t, t);
  key_array(s, "NEW", &b);
  gdx_buf_appends(&b, ")");
  int rc = gdx_db_exec_ddl(c, b.data);
  if (!rc) {
    gdx_buf_reset(&b);
    gdx_buf_appendf(&b, "CREATE OR REPLACE TRIGGER `gdx_%s_au` AFTER UPDATE ON `%s` FOR EACH ROW "
                        "BEGIN IF NOT (", t, t);
    for (int i = 0; i < s->npk; i++)
      gdx_buf_appendf(&b, "%sOLD.`%s` <=> NEW.`%s`", i ? " AND " : "", s->cols[s->pk[i]].name,
                      s->cols[s->pk[i]].name);
    gdx_buf_appendf(&b, ") THEN INSERT INTO gdx_changelog (tbl, op, pk) VALUES ('%s', 'D', ", t);
    key_array(s, "OLD", &b);
    gdx_buf_appendf(&b, "); END IF; INSERT INTO gdx_changelog (tbl, op, pk) VALUES ('%s', 'U', ",
                    t);
    key_array(s, "NEW", &b);
    gdx_buf_appends(&b, "); END");
    rc = gdx_db_exec_ddl(c, b.data);
  }
  if (!rc) {
    gdx_buf_reset(&b);
    gdx_buf_appendf(&b, "CREATE OR REPLACE TRIGGER `gdx_%s_ad` AFTER DELETE ON `%s` FOR EACH ROW "
                        "INSERT INTO gdx_changelog (tbl, op, pk) VALUES ('%s', 'D', ", t, t, t);
    key_array(s, "OLD", &b);
    gdx_buf_appends(&b, ")");
    rc = gdx_db_exec_ddl(c, b.data);
  }
  gdx_buf_free(&b);
  return rc;
}

static int inspect_work(gdx_db_conn *c, void *arg) {
  inspect_job *j = arg;
  table_res *r = j->r;
  tschema *s = &j->s;
  gdx_db_param p[] = {GDX_DB_P_STR(r->table)};
  gdx_db_result res = {0};
  int rc = gdx_db_query(c,
                        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE "
                        "FROM information_schema.COLUMNS "
                        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? "
                        "ORDER BY ORDINAL_POSITION",
                        p, 1, MAX_COLS, &res);
  if (rc) {
    snprintf(s->error, sizeof(s->error), "reading the table's columns failed: %s",
             gdx_db_error(c));
    return GDX_OK;
  }
  for (size_t i = 0; i < res.nrows; i++) {
    tcol *col = &s->cols[s->ncols++];
    snprintf(col->name, sizeof(col->name), "%s", gdx_db_get(&res, i, 0));
    snprintf(col->type, sizeof(col->type), "%s", gdx_db_get(&res, i, 1));
    col->nullable = strcmp(gdx_db_get(&res, i, 2), "YES") == 0;
  }
  gdx_db_result_free(&res);
  if (s->ncols == 0) {
    snprintf(s->error, sizeof(s->error), "table %s does not exist in the front-end database",
             r->table);
    return GDX_OK;
  }
  rc = gdx_db_query(c,
                    "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CONSTRAINT_NAME = "
                    "'PRIMARY' ORDER BY ORDINAL_POSITION",
                    p, 1, 16, &res);
  for (size_t i = 0; !rc && i < res.nrows; i++)
    for (int k = 0; k < s->ncols; k++)
      if (strcmp(s->cols[k].name, gdx_db_get(&res, i, 0)) == 0)
        s->pk[s->npk++] = k;
  gdx_db_result_free(&res);
  if (rc || s->npk == 0) {
    snprintf(s->error, sizeof(s->error), "%s", rc ? "reading the primary key failed"
                                                  : "the table has no primary key: gdx needs "
                                                    "one to apply changes exactly once");
    return GDX_OK;
  }
  /* the fingerprint: every column's name, type and nullability, and the key */
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  for (int i = 0; i < s->ncols; i++) {
    char line[220];
    int n = snprintf(line, sizeof(line), "%s %s %s\n", s->cols[i].name, s->cols[i].type,
                     s->cols[i].nullable ? "null" : "not null");
    EVP_DigestUpdate(md, line, (size_t)n);
  }
  for (int i = 0; i < s->npk; i++)
    EVP_DigestUpdate(md, s->cols[s->pk[i]].name, strlen(s->cols[s->pk[i]].name));
  unsigned char d[32];
  unsigned dl = 0;
  EVP_DigestFinal_ex(md, d, &dl);
  EVP_MD_CTX_free(md);
  for (int i = 0; i < 32; i++)
    snprintf(s->fingerprint + 2 * i, 3, "%02x", d[i]);
  if (r->triggers && j->install && install_triggers(c, r->table, s) != GDX_OK) {
    snprintf(s->error, sizeof(s->error), "installing the change-log triggers failed: %s "
             "(the node's user needs TRIGGER and CREATE)", gdx_db_error(c));
    return GDX_OK;
  }
  if (r->triggers) {
    rc = gdx_db_query(c,
                      "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = "
                      "DATABASE() AND EVENT_OBJECT_TABLE = ? AND TRIGGER_NAME IN "
                      "(CONCAT('gdx_', ?, '_ai'), CONCAT('gdx_', ?, '_au'), "
                      "CONCAT('gdx_', ?, '_ad'))",
                      (gdx_db_param[]){GDX_DB_P_STR(r->table), GDX_DB_P_STR(r->table),
                                       GDX_DB_P_STR(r->table), GDX_DB_P_STR(r->table)},
                      4, 1, &res);
    gdx_db_row w = gdx_db_row_at(&res, 0);
    s->triggers = rc ? 0 : (int)gdx_db_i64(&w, 0, 0, GDX_DB_INT_MAX);
    gdx_db_result_free(&res);
    rc = gdx_db_query(c, "SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM gdx_changelog WHERE tbl = ?",
                      p, 1, 1, &res);
    if (!rc) {
      w = gdx_db_row_at(&res, 0);
      s->position = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX);
      s->backlog = gdx_db_i64(&w, 1, 0, GDX_DB_ID_MAX);
    }
    gdx_db_result_free(&res);
  }
  return GDX_OK;
}

/* ------------------------------------------------------------------ */
/* health (loop thread)                                                */

static int col_index(const tschema *s, const char *name) {
  for (int i = 0; i < s->ncols; i++)
    if (strcmp(s->cols[i].name, name) == 0)
      return i;
  return -1;
}

static int k_is_key(const tschema *s, int col) {
  for (int k = 0; k < s->npk; k++)
    if (s->pk[k] == col)
      return 1;
  return 0;
}

/* The configured items against the table: "" when they fit. */
static void check_items(table_res *r, tschema *s) {
  for (int i = 0; i < r->nitems && !s->error[0]; i++)
    if (col_index(s, r->items[i]) < 0)
      snprintf(s->error, sizeof(s->error), "item %s is not a column of table %s", r->items[i],
               r->table);
  for (int k = 0; k < s->npk && r->nitems && !s->error[0]; k++) {
    int found = 0;
    for (int i = 0; i < r->nitems; i++)
      found |= strcmp(r->items[i], s->cols[s->pk[k]].name) == 0;
    if (!found)
      snprintf(s->error, sizeof(s->error), "items must include the primary key column %s",
               s->cols[s->pk[k]].name);
  }
  for (int i = 0; i < s->ncols && !s->error[0]; i++) {
    int offered = r->nitems == 0;
    for (int k = 0; k < r->nitems; k++)
      offered |= strcmp(r->items[k], s->cols[i].name) == 0;
    for (int k = 0; k < s->npk; k++)
      offered |= s->pk[k] == i;
    if (!offered)
      continue;
    if (!gdx_db_ident_ok(s->cols[i].name))
      snprintf(s->error, sizeof(s->error), "column %s: only plain names (letters, digits, _) "
               "can be offered", s->cols[i].name);
    else if (k_is_key(s, i) && (strstr(s->cols[i].type, "float") ||
                                strstr(s->cols[i].type, "double") ||
                                strstr(s->cols[i].type, "decimal")))
      snprintf(s->error, sizeof(s->error), "key column %s is %s: a key must be an integer, "
               "text or date column", s->cols[i].name, s->cols[i].type);
    else if (strstr(s->cols[i].type, "blob") || strstr(s->cols[i].type, "binary") ||
             strstr(s->cols[i].type, "bit("))
      snprintf(s->error, sizeof(s->error), "column %s is %s: binary columns are not supported "
               "yet", s->cols[i].name, s->cols[i].type);
  }
  int tc = r->triggers ? -1 : col_index(s, r->ts_col);
  if (!r->triggers && !s->error[0] && tc < 0)
    snprintf(s->error, sizeof(s->error), "timestamp_column %s is not a column of table %s",
             r->ts_col, r->table);
  else if (!r->triggers && !s->error[0] && strncmp(s->cols[tc].type, "timestamp", 9) != 0 &&
           strncmp(s->cols[tc].type, "datetime", 8) != 0)
    snprintf(s->error, sizeof(s->error), "timestamp_column %s is %s: capture = \"timestamp\" "
             "needs a timestamp or datetime column", r->ts_col, s->cols[tc].type);
}

static void inspect_done(int status, void *arg) {
  inspect_job *j = arg;
  table_res *r = j->r;
  gdx_adapter *a = r->self;
  tschema *s = &j->s;
  r->busy = 0;
  if (status != GDX_OK && !s->error[0])
    snprintf(s->error, sizeof(s->error), "the front-end database is unreachable");
  if (!s->error[0])
    check_items(r, s);
  if (!s->error[0] && r->ready && strcmp(s->fingerprint, r->baseline) != 0)
    snprintf(s->error, sizeof(s->error), "table %s changed since the node started (columns, "
             "types or key): not served until the node is restarted after the catalog entry is "
             "checked", r->table);
  if (!s->error[0] && r->triggers && s->triggers != 3)
    snprintf(s->error, sizeof(s->error), "%d of the 3 change-log triggers on %s are missing: "
             "changes are not being captured; restart the node to reinstall them",
             3 - s->triggers, r->table);
  if (!s->error[0] && !r->ready) {
    r->ready = 1;
    snprintf(r->baseline, sizeof(r->baseline), "%s", s->fingerprint);
  }
  if (s->error[0] && strcmp(r->s.error, s->error) != 0)
    gdx_log_warn("table", "resource %s: %s", a->name, s->error);
  r->s = *s;
  if (s->error[0]) {
    snprintf(a->health, sizeof(a->health), "down");
    snprintf(a->detail, sizeof(a->detail), "%s", s->error);
  } else {
    snprintf(a->health, sizeof(a->health), "up");
    char key[200] = "";
    for (int i = 0; i < s->npk; i++)
      snprintf(key + strlen(key), sizeof(key) - strlen(key), "%s%s", i ? ", " : "",
               s->cols[s->pk[i]].name);
    if (r->triggers)
      snprintf(a->detail, sizeof(a->detail),
               "%d columns, key (%s); change log at %lld, %lld kept; schema %.12s", s->ncols,
               key, s->position, s->backlog, s->fingerprint);
    else
      snprintf(a->detail, sizeof(a->detail),
               "%d columns, key (%s); changes by %s (hard deletes are not seen); schema %.12s",
               s->ncols, key, r->ts_col, s->fingerprint);
  }
  free(j);
  void (*done)(gdx_adapter *) = r->done;
  r->done = NULL;
  if (done)
    done(a);
}

static void table_health(gdx_adapter *a, void (*done)(gdx_adapter *a)) {
  table_res *r = a->impl;
  inspect_job *j = r->busy ? NULL : calloc(1, sizeof(*j));
  if (j == NULL) {
    done(a);
    return;
  }
  j->r = r;
  j->install = !r->ready; /* (re)installs until the first good inspection */
  r->busy = 1;
  r->done = done;
  if (gdx_db_submit(a->env->frontdb, inspect_work, inspect_done, j) != GDX_OK) {
    r->busy = 0;
    r->done = NULL;
    free(j);
    snprintf(a->health, sizeof(a->health), "down");
    snprintf(a->detail, sizeof(a->detail), "the front-end database queue is full");
    done(a);
  }
}

/* ------------------------------------------------------------------ */
/* reading rows: snapshot pages, change batches, checksums             */

#define READ_MAX_ROWS 10000
#define KEY_MAX 16
#define CHECKSUM_MAX_ROWS 200000 /* rows behind one checksums answer */
#define WAIT_MAX_MS 30000
#define WAKE_MS 50               /* how often parked change reads look for news */
#define READ_CACHE_MS 2000       /* answers kept for readers a little behind */
#define READ_CACHE_MAX 8

#define COMPARE_MAX_RECORDS 1000
#define COMPARE_MAX_BYTES (1 << 20)

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

static void read_job_free(read_job *j) {
  for (int i = 0; i < KEY_MAX; i++) {
    free(j->after_key[i]);
    free(j->upto_key[i]);
  }
  free(j->reqs);
  free(j->key);
  free(j->body);
  free(j->zbody);
  gdx_buf_free(&j->in);
  json_decref(j->records);
  free(j);
}

static void sel_sql(const read_job *j, gdx_buf *b) {
  for (int i = 0; i < j->nsel; i++)
    gdx_buf_appendf(b, "%s`%s`", i ? ", " : "", j->s.cols[j->sel[i]].name);
}

static void key_sql(const tschema *s, gdx_buf *b) {
  gdx_buf_appends(b, "(");
  for (int k = 0; k < s->npk; k++)
    gdx_buf_appendf(b, "%s`%s`", k ? ", " : "", s->cols[s->pk[k]].name);
  gdx_buf_appends(b, ")");
}

/* "<key> IN (?, …)" for n keys (npk parameters each); a composite key as
 * "(a = ? AND b = ?) OR …", which the range optimizer handles as well. */
static void keys_in_sql(const tschema *s, size_t n, gdx_buf *b) {
  for (size_t i = 0; i < n; i++) {
    if (s->npk == 1) {
      gdx_buf_appendf(b, i ? ", ?" : "`%s` IN (?", s->cols[s->pk[0]].name);
      continue;
    }
    gdx_buf_appends(b, i ? " OR (" : "(");
    for (int k = 0; k < s->npk; k++)
      gdx_buf_appendf(b, "%s`%s` = ?", k ? " AND " : "", s->cols[s->pk[k]].name);
    gdx_buf_appends(b, ")");
  }
  if (s->npk == 1)
    gdx_buf_appends(b, ")");
}

/* WHERE (key) > (after) AND (key) <= (upto), either part when given. */
static size_t range_sql(const read_job *j, gdx_buf *b, gdx_db_param *p) {
  const tschema *s = &j->s;
  size_t np = 0;
  for (int part = 0; part < 2; part++) {
    char *const *v = part ? j->upto_key : j->after_key;
    if (!(part ? j->has_upto : j->has_after))
      continue;
    gdx_buf_appends(b, np ? " AND " : " WHERE ");
    key_sql(s, b);
    gdx_buf_appends(b, part ? " <= (" : " > (");
    for (int k = 0; k < s->npk; k++) {
      gdx_buf_appends(b, k ? ", ?" : "?");
      p[np++] = GDX_DB_P_STR(v[k]);
    }
    gdx_buf_appends(b, ")");
  }
  return np;
}

static void order_sql(const tschema *s, gdx_buf *b) {
  gdx_buf_appends(b, " ORDER BY ");
  for (int k = 0; k < s->npk; k++)
    gdx_buf_appendf(b, "%s`%s`", k ? ", " : "", s->cols[s->pk[k]].name);
}

static void rowhash_sql(const read_job *j, gdx_buf *b) {
  const char *names[MAX_COLS];
  for (int i = 0; i < j->nsel; i++)
    names[i] = j->s.cols[j->sel[i]].name;
  gdx_rowsum_sql(b, names, j->nsel);
}

static json_t *row_json(const gdx_db_result *res, size_t row, int ncols) {
  json_t *a = json_array();
  for (int c = 0; c < ncols; c++) {
    const char *v = gdx_db_get(res, row, (size_t)c);
    json_array_append_new(a, v ? json_stringn(v, res->lens[row * res->ncols + (size_t)c])
                               : json_null());
  }
  return a;
}

static int read_fail(read_job *j, gdx_db_conn *c, const char *what) {
  j->status = 503;
  snprintf(j->code, sizeof(j->code), "table_unavailable");
  snprintf(j->msg, sizeof(j->msg), "%s: %s", what, gdx_db_error(c));
  return GDX_OK;
}

/* ---- capture = "timestamp" ---- */

/* The moment before which every change to the table is committed, in
 * microseconds since the epoch: now, or the start of the oldest open
 * transaction (it may still commit rows stamped after it), cut down to the
 * column's fractional digits so that no row stamped later in the same unit
 * of time is passed. Positions are such moments: a read after P serves the
 * rows stamped at or after P and before the bound. */
static int ts_bound(read_job *j, gdx_db_conn *c, long long *bound) {
  gdx_db_result t = {0};
  int rc = gdx_db_query(c,
                        "SELECT CAST(UNIX_TIMESTAMP(LEAST(NOW(6), IFNULL((SELECT "
                        "MIN(trx_started) FROM information_schema.INNODB_TRX WHERE "
                        "trx_mysql_thread_id <> CONNECTION_ID()), NOW(6)))) * 1000000 AS SIGNED)",
                        NULL, 0, 1, &t);
  if (rc)
    return rc;
  gdx_db_row w = gdx_db_row_at(&t, 0);
  long long b = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX);
  gdx_db_result_free(&t);
  if (w.rc)
    return GDX_EDB;
  /* "timestamp(3)": the column keeps 3 fractional digits ("timestamp": none) */
  const char *type = j->s.cols[col_index(&j->s, j->r->ts_col)].type;
  const char *paren = strchr(type, '(');
  long long digits = 0;
  if (paren && gdx_num_parse_n(paren + 1, strcspn(paren + 1, ")"), 0, 6, &digits) != GDX_OK)
    return GDX_EINVAL;
  long long unit = 1;
  for (int i = (int)digits; i < 6; i++)
    unit *= 10;
  *bound = b / unit * unit;
  return GDX_OK;
}

/* "`col` >= <moment ?>" with the microseconds bound as two integers (a
 * division would round them). */
#define TS_AT "FROM_UNIXTIME(? DIV 1000000) + INTERVAL (? MOD 1000000) MICROSECOND"

/* Changes by timestamp: the rows stamped in [after, bound), oldest first,
 * each as it is now ("U"). Rows deleted outright are not seen (a
 * reconciliation run finds them as extra rows and removes them). A batch
 * that fills up within one instant reads that whole instant (at most
 * 100,000 rows), so a position always moves on. */
static int ts_changes_work(read_job *j, gdx_db_conn *c, json_t *out) {
  long long bound, after = j->after_seq;
  if (ts_bound(j, c, &bound) != GDX_OK)
    return read_fail(j, c, "reading the time failed (the node's user needs PROCESS)");
  json_t *changes = json_array();
  long long pos = after > bound ? after : bound;
  int more = 0;
  if (after < bound) {
    gdx_buf sql;
    gdx_buf_init(&sql, 64 * 1024);
    gdx_buf_appends(&sql, "SELECT ");
    sel_sql(j, &sql);
    gdx_buf_appendf(&sql, ", CAST(UNIX_TIMESTAMP(`%s`) * 1000000 AS SIGNED) FROM `%s` WHERE "
                    "`%s` >= " TS_AT " AND `%s` < " TS_AT " ORDER BY `%s` LIMIT ?",
                    j->r->ts_col, j->r->table, j->r->ts_col, j->r->ts_col, j->r->ts_col);
    gdx_db_param p[] = {GDX_DB_P_INT(after), GDX_DB_P_INT(after), GDX_DB_P_INT(bound),
                        GDX_DB_P_INT(bound), GDX_DB_P_INT(j->limit)};
    gdx_db_result res = {0};
    int rc = gdx_db_query(c, sql.data, p, 5, (size_t)j->limit, &res);
    size_t ts = (size_t)j->nsel;
    if (!rc && res.nrows == (size_t)j->limit &&
        strcmp(gdx_db_get(&res, 0, ts), gdx_db_get(&res, res.nrows - 1, ts)) == 0) {
      /* one instant fills the batch: all of that instant, then past it */
      gdx_db_row w = gdx_db_row_at(&res, 0);
      long long at = gdx_db_i64(&w, ts, 0, GDX_DB_ID_MAX - 1);
      gdx_db_result_free(&res);
      gdx_buf_reset(&sql);
      gdx_buf_appends(&sql, "SELECT ");
      sel_sql(j, &sql);
      gdx_buf_appendf(&sql, ", CAST(UNIX_TIMESTAMP(`%s`) * 1000000 AS SIGNED) FROM `%s` WHERE "
                      "`%s` = " TS_AT, j->r->ts_col, j->r->table, j->r->ts_col);
      gdx_db_param pa[] = {GDX_DB_P_INT(at), GDX_DB_P_INT(at)};
      rc = w.rc ? w.rc : gdx_db_query(c, sql.data, pa, 2, 100000, &res);
      pos = at + 1;
      more = 1;
    } else if (!rc && res.nrows == (size_t)j->limit) {
      gdx_db_row w = gdx_db_row_at(&res, res.nrows - 1);
      pos = gdx_db_i64(&w, ts, 0, GDX_DB_ID_MAX); /* that instant again next time */
      more = 1;
      if (w.rc) {
        gdx_db_result_free(&res);
        rc = w.rc;
      }
    }
    gdx_buf_free(&sql);
    if (rc) {
      json_decref(changes);
      return read_fail(j, c, rc == GDX_ETOOBIG ? "more than 100000 rows share one timestamp"
                                               : "reading the changed rows failed");
    }
    for (size_t i = 0; i < res.nrows && !rc; i++) {
      gdx_db_row w = gdx_db_row_at(&res, i);
      long long at = gdx_db_i64(&w, ts, 0, GDX_DB_ID_MAX);
      rc = w.rc;
      if (!rc)
        json_array_append_new(changes, json_pack("{s:I, s:s, s:o}", "seq", (json_int_t)at, "op",
                                                 "U", "row", row_json(&res, i, j->nsel)));
    }
    gdx_db_result_free(&res);
    if (rc) {
      json_decref(changes);
      return read_fail(j, c, "a change time is not a number");
    }
  }
  j->empty = json_array_size(changes) == 0;
  json_object_set_new(out, "changes", changes);
  json_object_set_new(out, "position", json_integer(pos));
  json_object_set_new(out, "more", json_boolean(more));
  return GDX_OK;
}

/* A snapshot page, written straight as JSON text into j->body (a page is
 * up to 10,000 rows: no tree of JSON values is built for it), with its
 * count and checksum for the ledger. */
static int snapshot_work(read_job *j, gdx_db_conn *c) {
  const tschema *s = &j->s;
  long long position = -1;
  if (!j->has_after && j->r->triggers) {
    /* where the change log stands before the first page: replayed after
     * the last one, so nothing committed meanwhile is missed */
    gdx_db_result pos = {0};
    /* never below a purge: when every entry was purged, MAX(seq) is not
     * where the log stands (new entries come after the purged ones) */
    if (gdx_db_query(c, "SELECT GREATEST((SELECT COALESCE(MAX(seq), 0) FROM gdx_changelog), "
                        "(SELECT COALESCE(MAX(upto), 0) FROM gdx_changelog_purged))",
                     NULL, 0, 1, &pos))
      return read_fail(j, c, "reading the change-log position failed");
    gdx_db_row w = gdx_db_row_at(&pos, 0);
    position = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX);
    gdx_db_result_free(&pos);
    if (w.rc)
      return read_fail(j, c, "the change-log position is not a number");
  } else if (!j->has_after) { /* timestamp capture: replayed from the moment before */
    if (ts_bound(j, c, &position) != GDX_OK)
      return read_fail(j, c, "reading the time failed (the node's user needs PROCESS)");
  }
  gdx_buf sql;
  gdx_buf_init(&sql, 64 * 1024);
  gdx_db_param params[2 * KEY_MAX + 1];
  gdx_buf_appends(&sql, "SELECT ");
  sel_sql(j, &sql);
  gdx_buf_appendf(&sql, " FROM `%s`", j->r->table);
  size_t np = range_sql(j, &sql, params);
  order_sql(s, &sql);
  gdx_buf_appends(&sql, " LIMIT ?");
  params[np++] = GDX_DB_P_INT(j->limit);
  gdx_db_result res = {0};
  int rc = gdx_db_query(c, sql.data, params, np, (size_t)j->limit, &res);
  gdx_buf_free(&sql);
  if (rc)
    return read_fail(j, c, "reading the table failed");
  gdx_buf b;
  gdx_buf_init(&b, (size_t)1 << 30);
  gdx_buf_appends(&b, "{\"columns\":[");
  for (int i = 0; i < j->nsel; i++) {
    gdx_buf_appends(&b, i ? ",\"" : "\"");
    gdx_buf_appends(&b, s->cols[j->sel[i]].name); /* checked identifiers */
    gdx_buf_appends(&b, "\"");
  }
  gdx_buf_appendf(&b, "],\"key_columns\":%d,\"fingerprint\":\"%s\"", s->npk, s->fingerprint);
  if (position >= 0)
    gdx_buf_appendf(&b, ",\"position\":%lld", position);
  gdx_buf_appends(&b, ",\"rows\":[");
  uint64_t h = GDX_ROWSUM_INIT;
  for (size_t r = 0; r < res.nrows; r++) {
    gdx_buf_appends(&b, r ? ",[" : "[");
    for (int col = 0; col < j->nsel; col++) {
      const char *v = gdx_db_get(&res, r, (size_t)col);
      size_t n = v ? res.lens[r * res.ncols + (size_t)col] : 0;
      if (col)
        gdx_buf_append(&b, ",", 1);
      if (v) {
        gdx_buf_append(&b, "\"", 1);
        gdx_buf_append_json_str(&b, v, n);
        gdx_buf_append(&b, "\"", 1);
      } else {
        gdx_buf_append(&b, "null", 4);
      }
      h = gdx_rowsum_value(h, v, n);
    }
    h = gdx_rowsum_end_row(h);
    gdx_buf_append(&b, "]", 1);
  }
  gdx_buf_appends(&b, "],\"last\":");
  if (res.nrows > 0) {
    gdx_buf_appends(&b, "[");
    for (int k = 0; k < s->npk; k++) {
      const char *v = gdx_db_get(&res, res.nrows - 1, (size_t)k);
      gdx_buf_appends(&b, k ? ",\"" : "\"");
      gdx_buf_append_json_str(&b, v ? v : "", v ? res.lens[(res.nrows - 1) * res.ncols + (size_t)k] : 0);
      gdx_buf_appends(&b, "\"");
    }
    gdx_buf_appends(&b, "]");
  } else {
    gdx_buf_appends(&b, "null");
  }
  char hex[17];
  gdx_rowsum_hex(h, hex);
  rc = gdx_buf_appendf(&b, ",\"done\":%s,\"count\":%zu,\"checksum\":\"%s\"}",
                       res.nrows < (size_t)j->limit ? "true" : "false", res.nrows, hex);
  gdx_db_result_free(&res);
  if (rc) {
    gdx_buf_free(&b);
    return read_fail(j, c, "the page is too large");
  }
  j->body = gdx_buf_detach(&b, &j->blen);
  return GDX_OK;
}

/* A change-log key (JSON numbers or strings) as text values, like rows. */
static json_t *text_key(const json_t *key) {
  json_t *tk = json_array();
  for (size_t k = 0; k < json_array_size(key); k++) {
    json_t *v = json_array_get(key, k);
    char num[40];
    if (json_is_string(v)) {
      json_array_append(tk, v);
    } else {
      snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
      json_array_append_new(tk, json_string(num));
    }
  }
  return tk;
}

/* The position below which this table's change log was purged. */
static int purged_floor(gdx_db_conn *c, const char *table, long long *floor) {
  gdx_db_param p[] = {GDX_DB_P_STR(table)};
  gdx_db_result res = {0};
  *floor = 0;
  int rc = gdx_db_query(c, "SELECT upto FROM gdx_changelog_purged WHERE tbl = ?", p, 1, 1, &res);
  if (rc == GDX_OK && res.nrows == 1) {
    gdx_db_row w = gdx_db_row_at(&res, 0);
    *floor = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX);
    rc = w.rc;
  }
  gdx_db_result_free(&res);
  return rc;
}

/* The row of one key (text values) as it is now, or *row NULL. */
static int row_by_key(read_job *j, gdx_db_conn *c, json_t *tk, json_t **row) {
  const tschema *s = &j->s;
  gdx_buf sql;
  gdx_buf_init(&sql, 64 * 1024);
  gdx_buf_appends(&sql, "SELECT ");
  sel_sql(j, &sql);
  gdx_buf_appendf(&sql, " FROM `%s` WHERE ", j->r->table);
  gdx_db_param kp[KEY_MAX];
  for (int k = 0; k < s->npk; k++) {
    gdx_buf_appendf(&sql, "%s`%s` = ?", k ? " AND " : "", s->cols[s->pk[k]].name);
    kp[k] = GDX_DB_P_STR(json_string_value(json_array_get(tk, (size_t)k)));
  }
  gdx_db_result res = {0};
  int rc = gdx_db_query(c, sql.data, kp, (size_t)s->npk, 1, &res);
  gdx_buf_free(&sql);
  *row = NULL;
  if (rc)
    return rc;
  if (res.nrows == 1)
    *row = row_json(&res, 0, j->nsel);
  gdx_db_result_free(&res);
  return GDX_OK;
}

/* The seq of change-log row i, or -1 when it is not one. */
static long long log_seq(const gdx_db_result *log, size_t i) {
  gdx_db_row w = gdx_db_row_at(log, i);
  long long seq = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  return w.rc ? -1 : seq;
}

static int changes_work(read_job *j, gdx_db_conn *c, json_t *out) {
  const tschema *s = &j->s;
  long long floor = 0;
  if (purged_floor(c, j->r->table, &floor) != GDX_OK)
    return read_fail(j, c, "reading the change log's purge position failed");
  if (j->after_seq < floor) {
    j->status = 410;
    snprintf(j->code, sizeof(j->code), "position_purged");
    snprintf(j->msg, sizeof(j->msg), "the change log before %lld is purged (asked after %lld): "
             "load a new snapshot", floor, j->after_seq);
    return GDX_OK;
  }
  gdx_db_param p[] = {GDX_DB_P_INT(j->after_seq), GDX_DB_P_INT(j->limit)};
  gdx_db_result log = {0};
  if (gdx_db_query(c, "SELECT seq, tbl, op, pk, changed_at FROM gdx_changelog WHERE seq > ? "
                      "ORDER BY seq LIMIT ?",
                   p, 2, (size_t)j->limit, &log))
    return read_fail(j, c, "reading the change log failed");
  /* The entries up to the first gap that may still fill: a gap is held
   * while a transaction that began before the entry after it is open (it
   * may own the missing seq). Open transactions are read once per batch. */
  long long pos = j->after_seq;
  size_t upto = 0;
  int trx_read = 0;
  char oldest[40] = "";
  for (; upto < log.nrows; upto++) {
    long long seq = log_seq(&log, upto);
    if (seq < 0) {
      gdx_db_result_free(&log);
      return read_fail(j, c, "a change-log seq is not a number");
    }
    if (seq != pos + 1) {
      if (!trx_read) {
        gdx_db_result t = {0};
        if (gdx_db_query(c,
                         "SELECT IFNULL(MIN(trx_started), '') FROM information_schema.INNODB_TRX "
                         "WHERE trx_mysql_thread_id <> CONNECTION_ID()",
                         NULL, 0, 1, &t) != GDX_OK) {
          gdx_db_result_free(&log);
          return read_fail(j, c, "checking open transactions failed (the node's user needs "
                                 "PROCESS)");
        }
        snprintf(oldest, sizeof(oldest), "%s", gdx_db_get(&t, 0, 0));
        gdx_db_result_free(&t);
        trx_read = 1;
      }
      if (oldest[0] && strcmp(oldest, gdx_db_get(&log, upto, 4)) <= 0)
        break;
    }
    pos = seq;
  }
  /* this table's entries, the last per key (the row is read as it is now) */
  json_t *changes = json_array(), *seen = json_object();
  size_t *pick = malloc((upto ? upto : 1) * sizeof(size_t)), npick = 0;
  json_t **keys = calloc(upto ? upto : 1, sizeof(json_t *));
  if (pick == NULL || keys == NULL) {
    free(pick);
    free(keys);
    json_decref(changes);
    json_decref(seen);
    gdx_db_result_free(&log);
    return read_fail(j, c, "out of memory");
  }
  for (size_t i = upto; i-- > 0;) {
    if (strcmp(gdx_db_get(&log, i, 1), j->r->table) != 0)
      continue;
    const char *pk = gdx_db_get(&log, i, 3);
    if (json_object_get(seen, pk))
      continue;
    json_object_set_new(seen, pk, json_true());
    json_t *key = json_loads(pk, 0, NULL);
    if (json_is_array(key) && json_array_size(key) == (size_t)s->npk) {
      keys[npick] = text_key(key);
      pick[npick++] = i;
    } /* else written before a key change: reconciliation covers it */
    json_decref(key);
  }
  json_decref(seen);
  /* the rows of the keys not deleted, a few queries for the whole batch */
  json_t *found = json_object(); /* text key -> row */
  int rc = GDX_OK;
  for (size_t from = 0; rc == GDX_OK && from < npick;) {
    enum { CHUNK = 1000 };
    size_t idx[CHUNK], n = 0;
    for (; from < npick && n < CHUNK; from++)
      if (strcmp(gdx_db_get(&log, pick[from], 2), "D") != 0)
        idx[n++] = from;
    if (n == 0)
      break;
    size_t padded = 16;
    while (padded < n)
      padded = padded * 4 > CHUNK ? CHUNK : padded * 4;
    gdx_db_param *kp = calloc(padded * (size_t)s->npk, sizeof(*kp));
    if (kp == NULL) {
      rc = GDX_ENOMEM;
      break;
    }
    for (size_t x = 0; x < padded; x++) /* padded with the last key again */
      for (int k = 0; k < s->npk; k++)
        kp[x * (size_t)s->npk + (size_t)k] = GDX_DB_P_STR(
            json_string_value(json_array_get(keys[idx[x < n ? x : n - 1]], (size_t)k)));
    gdx_buf sql;
    gdx_buf_init(&sql, 1 << 20);
    gdx_buf_appends(&sql, "SELECT ");
    sel_sql(j, &sql);
    gdx_buf_appendf(&sql, " FROM `%s` WHERE ", j->r->table);
    keys_in_sql(s, padded, &sql);
    gdx_db_result res = {0};
    rc = gdx_db_query(c, sql.data, kp, padded * (size_t)s->npk, padded, &res);
    gdx_buf_free(&sql);
    free(kp);
    for (size_t r = 0; rc == GDX_OK && r < res.nrows; r++) {
      json_t *row = row_json(&res, r, j->nsel), *tk = json_array();
      for (int k = 0; k < s->npk; k++)
        json_array_append(tk, json_array_get(row, (size_t)k));
      char *t = json_dumps(tk, JSON_COMPACT);
      if (t)
        json_object_set_new(found, t, row);
      else
        json_decref(row);
      free(t);
      json_decref(tk);
    }
    if (rc == GDX_OK)
      gdx_db_result_free(&res);
  }
  for (size_t x = npick; rc == GDX_OK && x-- > 0;) { /* in log order */
    size_t i = pick[x];
    json_t *ch = json_pack("{s:I}", "seq", (json_int_t)log_seq(&log, i)); /* checked above */
    char *t = json_dumps(keys[x], JSON_COMPACT);
    int del = strcmp(gdx_db_get(&log, i, 2), "D") == 0;
    json_t *row = t && !del ? json_incref(json_object_get(found, t)) : NULL;
    free(t);
    if (row == NULL && !del) /* not matched as text (a collation's equal): look it up */
      rc = row_by_key(j, c, keys[x], &row);
    if (rc) {
      json_decref(ch);
      break;
    }
    if (row) {
      json_object_set_new(ch, "op", json_string("U"));
      json_object_set_new(ch, "row", row);
    } else { /* deleted, or gone again since: the key as text, like row values */
      json_object_set_new(ch, "op", json_string("D"));
      json_object_set(ch, "key", keys[x]);
    }
    json_array_append_new(changes, ch);
  }
  for (size_t x = 0; x < npick; x++)
    json_decref(keys[x]);
  free(keys);
  free(pick);
  json_decref(found);
  if (rc != GDX_OK) {
    json_decref(changes);
    gdx_db_result_free(&log);
    return read_fail(j, c, "reading the changed rows failed");
  }
  j->empty = pos == j->after_seq;
  json_object_set_new(out, "changes", changes);
  json_object_set_new(out, "position", json_integer(pos));
  json_object_set_new(out, "more", json_boolean(upto == (size_t)j->limit));
  gdx_db_result_free(&log);
  return GDX_OK;
}

static json_t *key_of(const gdx_db_result *res, size_t row, int npk) {
  json_t *k = json_array();
  for (int i = 0; i < npk; i++) {
    const char *v = gdx_db_get(res, row, (size_t)i);
    json_array_append_new(k, json_string(v ? v : ""));
  }
  return k;
}

/* SELECT <key>, <row hash> FROM t <range> ORDER BY <key>: the rows'
 * hashes of reconciliation; the parameters' count back. */
static size_t hashes_sql(const read_job *j, gdx_buf *sql, gdx_db_param *params) {
  const tschema *s = &j->s;
  gdx_buf_appends(sql, "SELECT ");
  for (int k = 0; k < s->npk; k++)
    gdx_buf_appendf(sql, "`%s`, ", s->cols[s->pk[k]].name);
  rowhash_sql(j, sql);
  gdx_buf_appendf(sql, " FROM `%s`", j->r->table);
  size_t np = range_sql(j, sql, params);
  order_sql(s, sql);
  return np;
}

/* Chunks of `chunk` rows in key order after `after`: each with the key
 * range (after, last], its row count and the XOR of its row hashes. The
 * last chunk of the table has no upper bound ("last": null), so rows a
 * consumer has beyond the provider's last key fall into it. */
static int checksums_work(read_job *j, gdx_db_conn *c, json_t *out) {
  const tschema *s = &j->s;
  gdx_buf sql;
  gdx_buf_init(&sql, 64 * 1024);
  gdx_db_param params[2 * KEY_MAX + 1];
  size_t np = hashes_sql(j, &sql, params);
  long long want = j->chunk * j->limit;
  gdx_buf_appends(&sql, " LIMIT ?");
  params[np++] = GDX_DB_P_INT(want);
  gdx_db_result res = {0};
  int rc = gdx_db_query(c, sql.data, params, np, (size_t)want, &res);
  gdx_buf_free(&sql);
  if (rc)
    return read_fail(j, c, "reading the table's checksums failed");
  json_t *chunks = json_array();
  json_t *prev = json_null();
  if (j->has_after) {
    prev = json_array();
    for (int k = 0; k < s->npk; k++)
      json_array_append_new(prev, json_string(j->after_key[k]));
  }
  int done = res.nrows < (size_t)want;
  size_t i = 0;
  do {
    size_t end = i + (size_t)j->chunk < res.nrows ? i + (size_t)j->chunk : res.nrows;
    uint64_t x = 0;
    for (size_t r = i; r < end && !rc; r++) {
      gdx_db_row w = gdx_db_row_at(&res, r);
      x ^= gdx_db_u64(&w, (size_t)s->npk);
      rc = w.rc;
    }
    char hex[17];
    gdx_rowsum_hex(x, hex);
    int final = done && end == res.nrows;
    json_t *last = final ? json_null() : key_of(&res, end - 1, s->npk);
    json_array_append_new(chunks, json_pack("{s:O, s:O, s:I, s:s}", "after", prev, "last", last,
                                            "rows", (json_int_t)(end - i), "sum", hex));
    json_decref(prev);
    prev = last;
    i = end;
  } while (i < res.nrows && !rc);
  json_decref(prev);
  if (rc) {
    json_decref(chunks);
    gdx_db_result_free(&res);
    return read_fail(j, c, "a row hash is not a number");
  }
  json_object_set_new(out, "chunks", chunks);
  json_object_set_new(out, "done", json_boolean(done));
  gdx_db_result_free(&res);
  return GDX_OK;
}

/* Per row of a range: its key and hash; and, given position=P, the keys
 * changed after P (their difference is in flight, not a discrepancy). */
static int rowsums_work(read_job *j, gdx_db_conn *c, json_t *out) {
  const tschema *s = &j->s;
  gdx_buf sql;
  gdx_buf_init(&sql, 64 * 1024);
  gdx_db_param params[2 * KEY_MAX + 1];
  size_t np = hashes_sql(j, &sql, params);
  gdx_buf_appendf(&sql, " LIMIT %d", READ_MAX_ROWS + 1);
  gdx_db_result res = {0};
  int rc = gdx_db_query(c, sql.data, params, np, READ_MAX_ROWS + 1, &res);
  gdx_buf_free(&sql);
  if (rc)
    return read_fail(j, c, "reading the rows' checksums failed");
  if (res.nrows > READ_MAX_ROWS) {
    gdx_db_result_free(&res);
    j->status = 413;
    snprintf(j->code, sizeof(j->code), "range_too_large");
    snprintf(j->msg, sizeof(j->msg), "more than %d rows in the range", READ_MAX_ROWS);
    return GDX_OK;
  }
  json_t *rows = json_array();
  for (size_t i = 0; i < res.nrows; i++) {
    gdx_db_row w = gdx_db_row_at(&res, i);
    char hex[17];
    gdx_rowsum_hex(gdx_db_u64(&w, (size_t)s->npk), hex);
    if (w.rc) {
      gdx_db_result_free(&res);
      json_decref(rows);
      return read_fail(j, c, "a row hash is not a number");
    }
    json_t *k = key_of(&res, i, s->npk);
    json_array_append_new(k, json_string(hex));
    json_array_append_new(rows, k);
  }
  gdx_db_result_free(&res);
  json_object_set_new(out, "rows", rows);
  if (j->has_seq && j->r->triggers) {
    gdx_db_param p[] = {GDX_DB_P_STR(j->r->table), GDX_DB_P_INT(j->after_seq)};
    if (gdx_db_query(c, "SELECT DISTINCT pk FROM gdx_changelog WHERE tbl = ? AND seq > ? "
                        "LIMIT 10001", p, 2, 10001, &res))
      return read_fail(j, c, "reading the change log failed");
    json_t *pending = json_array();
    for (size_t i = 0; i < res.nrows && i < 10000; i++) {
      json_t *key = json_loads(gdx_db_get(&res, i, 0), 0, NULL);
      if (json_is_array(key))
        json_array_append_new(pending, text_key(key));
      json_decref(key);
    }
    json_object_set_new(out, "pending", pending);
    json_object_set_new(out, "pending_overflow", json_boolean(res.nrows > 10000));
    gdx_db_result_free(&res);
  } else if (j->has_seq) { /* timestamp capture: the rows stamped since */
    gdx_buf_init(&sql, 64 * 1024);
    gdx_buf_appends(&sql, "SELECT ");
    for (int k = 0; k < s->npk; k++)
      gdx_buf_appendf(&sql, "%s`%s`", k ? ", " : "", s->cols[s->pk[k]].name);
    gdx_buf_appendf(&sql, " FROM `%s` WHERE `%s` >= " TS_AT " LIMIT 10001", j->r->table,
                    j->r->ts_col);
    gdx_db_param p[] = {GDX_DB_P_INT(j->after_seq), GDX_DB_P_INT(j->after_seq)};
    rc = gdx_db_query(c, sql.data, p, 2, 10001, &res);
    gdx_buf_free(&sql);
    if (rc)
      return read_fail(j, c, "reading the changed keys failed");
    json_t *pending = json_array();
    for (size_t i = 0; i < res.nrows && i < 10000; i++)
      json_array_append_new(pending, key_of(&res, i, s->npk));
    json_object_set_new(out, "pending", pending);
    json_object_set_new(out, "pending_overflow", json_boolean(res.nrows > 10000));
    gdx_db_result_free(&res);
  }
  return GDX_OK;
}

/* ---- compare (比对) ---- */

static int numeric_type(const char *t) {
  static const char *const num[] = {"tinyint", "smallint", "mediumint", "int", "bigint",
                                    "decimal", "float", "double"};
  for (size_t i = 0; i < sizeof(num) / sizeof(num[0]); i++)
    if (strncmp(t, num[i], strlen(num[i])) == 0)
      return 1;
  return 0;
}

/* A submitted scalar as text: 0, or 1 for null. Checked to be a scalar
 * before the job was queued. */
static int value_text(const json_t *v, char *out, size_t n) {
  if (json_is_null(v))
    return 1;
  if (json_is_string(v))
    snprintf(out, n, "%s", json_string_value(v));
  else if (json_is_integer(v))
    snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else if (json_is_real(v))
    snprintf(out, n, "%.17g", json_real_value(v));
  else
    snprintf(out, n, "%d", json_is_true(v));
  return 0;
}

/* The provider's value against the submitted one: text exactly as stored;
 * numeric columns by value (12.50 equals 12.5). */
static int same_value(const char *have, const json_t *want, const char *type) {
  char w[4096];
  if (value_text(want, w, sizeof(w)) == 1)
    return have == NULL;
  if (have == NULL)
    return 0;
  if (numeric_type(type)) {
    char *e1, *e2;
    long double a = strtold(have, &e1), b = strtold(w, &e2);
    if (*have && *w && *e1 == '\0' && *e2 == '\0')
      return a == b;
  }
  return strcmp(have, w) == 0;
}

/* One query for the whole batch: the rows of the submitted keys, padded to
 * a few statement sizes so the connection's prepared statements are few.
 * Each record is answered match, mismatch (with the fields that differ) or
 * not_found - and nothing of the provider's values. */
static int compare_work(read_job *j, gdx_db_conn *c, json_t *out) {
  const tschema *s = &j->s;
  size_t n = j->nrecords, padded = 16;
  while (padded < n)
    padded = padded * 4 > COMPARE_MAX_RECORDS ? COMPARE_MAX_RECORDS : padded * 4;
  gdx_db_param *p = calloc(padded * (size_t)s->npk, sizeof(*p));
  char (*texts)[256] = calloc(n * (size_t)s->npk, 256);
  gdx_buf b;
  gdx_buf_init(&b, 1 << 20);
  if (p == NULL || texts == NULL) {
    free(p);
    free(texts);
    return read_fail(j, c, "compare");
  }
  for (size_t i = 0; i < n; i++) {
    json_t *rec = json_array_get(j->records, i);
    for (int k = 0; k < s->npk; k++) {
      value_text(json_object_get(rec, s->cols[s->pk[k]].name), texts[i * (size_t)s->npk + (size_t)k],
                 256);
      p[i * (size_t)s->npk + (size_t)k] = GDX_DB_P_STR(texts[i * (size_t)s->npk + (size_t)k]);
    }
  }
  for (size_t i = n; i < padded; i++) /* the last key again */
    for (int k = 0; k < s->npk; k++)
      p[i * (size_t)s->npk + (size_t)k] = p[(n - 1) * (size_t)s->npk + (size_t)k];
  gdx_buf_appends(&b, "SELECT ");
  sel_sql(j, &b);
  gdx_buf_appendf(&b, " FROM `%s` WHERE ", j->r->table);
  keys_in_sql(s, padded, &b);
  gdx_db_result res;
  int rc = gdx_db_query(c, b.data, p, padded * (size_t)s->npk, padded, &res);
  gdx_buf_free(&b);
  free(p);
  if (rc) {
    free(texts);
    return read_fail(j, c, "compare");
  }
  json_t *results = json_array();
  long long counts[3] = {0, 0, 0};
  for (size_t i = 0; i < n; i++) {
    json_t *rec = json_array_get(j->records, i);
    size_t row = res.nrows;
    for (size_t r = 0; r < res.nrows && row == res.nrows; r++) {
      int eq = 1;
      for (int k = 0; eq && k < s->npk; k++) {
        const char *v = gdx_db_get(&res, r, (size_t)k);
        eq = v && strcmp(v, texts[i * (size_t)s->npk + (size_t)k]) == 0;
      }
      if (eq)
        row = r;
    }
    if (row == res.nrows) {
      counts[2]++;
      json_array_append_new(results, json_pack("{s:s}", "result", "not_found"));
      continue;
    }
    json_t *diff = json_array();
    for (int x = s->npk; x < j->nsel; x++) {
      const tcol *col = &s->cols[j->sel[x]];
      json_t *want = json_object_get(rec, col->name);
      if (want && !same_value(gdx_db_get(&res, row, (size_t)x), want, col->type))
        json_array_append_new(diff, json_string(col->name));
    }
    int match = json_array_size(diff) == 0;
    counts[match ? 0 : 1]++;
    if (match) {
      json_decref(diff);
      json_array_append_new(results, json_pack("{s:s}", "result", "match"));
    } else {
      json_array_append_new(results, json_pack("{s:s, s:o}", "result", "mismatch", "fields", diff));
    }
  }
  gdx_db_result_free(&res);
  free(texts);
  json_object_set_new(out, "compared", json_integer((json_int_t)n));
  json_object_set_new(out, "counts", json_pack("{s:I, s:I, s:I}", "match", (json_int_t)counts[0],
                                               "mismatch", (json_int_t)counts[1], "not_found",
                                               (json_int_t)counts[2]));
  json_object_set_new(out, "results", results);
  return GDX_OK;
}

#define ZSTD_MIN 4096 /* smaller bodies go as they are */

/* Pages and change batches of some size travel compressed. */
static int compressible(const read_job *j) {
  return j->body && j->blen >= ZSTD_MIN && (j->op == OP_SNAPSHOT || j->op == OP_CHANGES);
}

/* The body once, compressed (or left as it is when that fails). */
static void compress_body(read_job *j) {
  if (j->zbody == NULL && gdx_zstd_compress(j->body, j->blen, &j->zbody, &j->zlen) != GDX_OK)
    j->zbody = NULL;
}

static void read_body(gdx_db_conn *c, read_job *j);

static int read_work(gdx_db_conn *c, void *arg) {
  read_job *j = arg;
  j->status = 200;
  read_body(c, j);
  if (j->status == 200 && j->want_zstd && compressible(j))
    compress_body(j); /* here in the worker, not on the loop */
  return GDX_OK;
}

static void read_body(gdx_db_conn *c, read_job *j) {
  if (j->op == OP_SNAPSHOT) {
    snapshot_work(j, c);
    return;
  }
  json_t *out = json_object(), *cols = json_array();
  for (int i = 0; i < j->nsel; i++)
    json_array_append_new(cols, json_string(j->s.cols[j->sel[i]].name));
  json_object_set_new(out, "columns", cols);
  json_object_set_new(out, "key_columns", json_integer(j->s.npk));
  json_object_set_new(out, "fingerprint", json_string(j->s.fingerprint));
  j->empty = 0;
  if (j->op == OP_CHANGES && j->r->triggers)
    changes_work(j, c, out);
  else if (j->op == OP_CHANGES)
    ts_changes_work(j, c, out);
  else if (j->op == OP_CHECKSUMS)
    checksums_work(j, c, out);
  else if (j->op == OP_ROWSUMS)
    rowsums_work(j, c, out);
  else
    compare_work(j, c, out);
  if (j->status == 200 && j->op == OP_CHANGES) {
    /* for the ledger: what was sent, to compare with what is applied */
    size_t n = 0;
    char hex[17];
    gdx_rowsum_hex(gdx_rowsum_batch(out, &n), hex);
    json_object_set_new(out, "count", json_integer((json_int_t)n));
    json_object_set_new(out, "checksum", json_string(hex));
  }
  if (j->status == 200 && (j->body = json_dumps(out, JSON_COMPACT)) != NULL)
    j->blen = strlen(j->body);
  json_decref(out);
}

/* ---- answering, coalescing, long polls ---- */

static void unlink_job(read_job *j) {
  for (read_job **p = &j->r->jobs; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      return;
    }
}

static void read_abort(gdx_http_req *req) {
  read_job *j = gdx_http_req_get_data(req);
  for (int i = 0; i < j->nreqs; i++)
    if (j->reqs[i] == req)
      j->reqs[i] = NULL;
  if (j->op == OP_COMPARE && !j->in_db) { /* still reading its body */
    unlink_job(j);
    read_job_free(j);
  }
}

static int live_reqs(const read_job *j) {
  int n = 0;
  for (int i = 0; i < j->nreqs; i++)
    n += j->reqs[i] != NULL;
  return n;
}

/* A successful answer to one reader: compressed when it accepts zstd. */
static void respond_ok(read_job *j, gdx_http_req *req) {
  if (j->op == OP_COMPARE) { /* the broker counts them against the quota */
    char n[24];
    snprintf(n, sizeof(n), "%zu", j->nrecords);
    gdx_http_add_header(req, "X-Gdx-Records", n);
  }
  int z = compressible(j) && gdx_accepts_zstd(gdx_http_req_header(req, "Accept-Encoding"));
  if (z)
    compress_body(j); /* a reader that joined late: compressed here, once */
  if (z && j->zbody) {
    gdx_http_add_header(req, "Content-Encoding", "zstd");
    gdx_http_respond(req, 200, "application/json", j->zbody, j->zlen);
  } else {
    gdx_http_respond(req, 200, "application/json", j->body, j->blen);
  }
}

/* Drops cached answers older than READ_CACHE_MS (all of them with all). */
static void cache_expire(table_res *r, int all) {
  uint64_t now = all ? 0 : uv_now(r->self->env->loop);
  for (read_job **p = &r->cache; *p;) {
    read_job *j = *p;
    if (all || now - j->cached_at > READ_CACHE_MS) {
      *p = j->next;
      r->ncache--;
      read_job_free(j);
    } else {
      p = &j->next;
    }
  }
}

/* Keeps a non-empty change batch for READ_CACHE_MS: subscribers a little
 * behind one another get it without another query. A kept batch is never
 * wrong, only older - a prefix of what a fresh read would give, the rest
 * follows from its position. Snapshot pages are not kept: a fetch must
 * see what was committed before it began. */
static int cache_keep(read_job *j) {
  table_res *r = j->r;
  if (r->closing || j->body == NULL || j->key == NULL || j->empty || j->op != OP_CHANGES)
    return 0;
  cache_expire(r, 0);
  if (r->ncache >= READ_CACHE_MAX) { /* the oldest goes */
    read_job **p = &r->cache;
    while ((*p)->next)
      p = &(*p)->next;
    read_job_free(*p);
    *p = NULL;
    r->ncache--;
  }
  j->nreqs = 0;
  j->cached_at = uv_now(r->self->env->loop);
  j->next = r->cache;
  r->cache = j;
  r->ncache++;
  return 1;
}

/* Answers everyone waiting and frees (or keeps) the job. */
static void answer(read_job *j, int db_status) {
  unlink_job(j);
  for (int i = 0; i < j->nreqs; i++) {
    gdx_http_req *req = j->reqs[i];
    if (req == NULL)
      continue;
    gdx_http_req_on(req, NULL, NULL, NULL);
    gdx_http_req_set_data(req, NULL);
    if (db_status != GDX_OK || (j->status == 200 && j->body == NULL))
      gdx_relay_error(req, 503, "node", "table_unavailable", "the front-end database failed");
    else if (j->status != 200)
      gdx_relay_error(req, j->status, j->status == 503 ? "node" : "client", j->code, "%s",
                      j->msg);
    else
      respond_ok(j, req);
  }
  if (db_status != GDX_OK || j->status != 200 || !cache_keep(j))
    read_job_free(j);
}

static void read_done(int status, void *arg);
static void wake_start(table_res *r);

static int submit_read(read_job *j) {
  if (gdx_db_submit(j->r->self->env->frontdb, read_work, read_done, j) != GDX_OK)
    return GDX_EBUSY;
  j->in_db = 1;
  j->parked = 0;
  return GDX_OK;
}

static void read_done(int status, void *arg) {
  read_job *j = arg;
  j->in_db = 0;
  if (status == GDX_OK && j->status == 200 && j->op == OP_CHANGES && j->empty &&
      j->wait_ms > 0 && j->r->triggers && uv_now(j->r->self->env->loop) < j->deadline && live_reqs(j) > 0 &&
      j->r->wake) {
    j->parked = 1; /* nothing new yet: answer when there is, or at the deadline */
    wake_start(j->r);
    return;
  }
  answer(j, status);
}

typedef struct {
  table_res *r;
  long long max;
} wake_job;

static int wake_work(gdx_db_conn *c, void *arg) {
  wake_job *w = arg;
  gdx_db_result res = {0};
  int rc = gdx_db_query(c, "SELECT COALESCE(MAX(seq), 0) FROM gdx_changelog", NULL, 0, 1, &res);
  if (rc == GDX_OK) {
    gdx_db_row row = gdx_db_row_at(&res, 0);
    w->max = gdx_db_i64(&row, 0, 0, GDX_DB_ID_MAX);
    rc = row.rc;
  }
  gdx_db_result_free(&res);
  return rc;
}

/* Parked reads: gone ones are dropped, due ones answered empty, the rest
 * read again when the change log has grown past their position. */
static void wake_scan(table_res *r, long long max) {
  uint64_t now = uv_now(r->self->env->loop);
  read_job *next;
  for (read_job *j = r->jobs; j; j = next) {
    next = j->next;
    if (!j->parked)
      continue;
    if (live_reqs(j) == 0) {
      unlink_job(j);
      read_job_free(j);
    } else if (now >= j->deadline) {
      answer(j, GDX_OK);
    } else if (max > j->after_seq) {
      free(j->body);
      free(j->zbody);
      j->body = j->zbody = NULL;
      if (submit_read(j) != GDX_OK)
        answer(j, GDX_OK); /* the empty answer it has: the consumer asks again */
    }
  }
}

static void wake_done(int status, void *arg) {
  wake_job *w = arg;
  table_res *r = w->r;
  r->waking = 0;
  long long max = status == GDX_OK ? w->max : -1;
  free(w);
  if (r->closing)
    return;
  wake_scan(r, max < 0 ? 0 : max);
}

static void on_wake(uv_timer_t *t) {
  table_res *r = t->data;
  int parked = 0;
  for (read_job *j = r->jobs; j; j = j->next)
    parked += j->parked;
  if (parked == 0) {
    uv_timer_stop(t);
    return;
  }
  if (r->waking)
    return;
  wake_job *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return;
  w->r = r;
  r->waking = 1;
  if (gdx_db_submit(r->self->env->frontdb, wake_work, wake_done, w) != GDX_OK) {
    r->waking = 0;
    free(w);
    wake_scan(r, 0); /* at least the deadlines */
  }
}

static void wake_start(table_res *r) {
  if (!uv_is_active((uv_handle_t *)r->wake))
    uv_timer_start(r->wake, on_wake, WAKE_MS, WAKE_MS);
}

/* ---- the change log's purge, below the slowest subscriber ---- */

typedef struct {
  table_res *r;
  long long upto;
  uint64_t deleted;
  char err[200];
} purge_job;

static int purge_work(gdx_db_conn *c, void *arg) {
  purge_job *p = arg;
  /* the floor first: a reader after it learns its position is gone */
  gdx_db_param pf[] = {GDX_DB_P_STR(p->r->table), GDX_DB_P_INT(p->upto)};
  int rc = gdx_db_exec(c,
                       "INSERT INTO gdx_changelog_purged (tbl, upto) VALUES (?, ?) "
                       "ON DUPLICATE KEY UPDATE upto = GREATEST(upto, VALUES(upto))",
                       pf, 2, NULL, NULL);
  for (int round = 0; !rc && round < 200; round++) {
    uint64_t n = 0;
    rc = gdx_db_exec(c, "DELETE FROM gdx_changelog WHERE tbl = ? AND seq <= ? ORDER BY seq "
                        "LIMIT 5000", pf, 2, &n, NULL);
    p->deleted += n;
    if (n < 5000)
      break;
  }
  if (rc)
    snprintf(p->err, sizeof(p->err), "%s", gdx_db_error(c));
  return rc;
}

static void purge_done(int status, void *arg) {
  purge_job *p = arg;
  table_res *r = p->r;
  r->purging = 0;
  if (status != GDX_OK)
    gdx_log_warn("table", "resource %s: purging the change log up to %lld failed: %s",
                 r->self->name, p->upto, p->err[0] ? p->err : gdx_strerror(status));
  else {
    r->purged = p->upto;
    if (p->deleted)
      gdx_log_debug("table", "resource %s: %llu change-log entries up to %lld purged "
                    "(every subscriber has them)", r->self->name,
                    (unsigned long long)p->deleted, p->upto);
  }
  free(p);
}

/* The broker's heartbeat answer: "purge": {"<resource>": position}. */
static void table_hint(gdx_adapter *a, const json_t *hb) {
  table_res *r = a->impl;
  json_t *pos = json_object_get(json_object_get(hb, "purge"), a->name);
  if (!r->triggers || !r->ready || r->purging || !json_is_integer(pos) ||
      json_integer_value(pos) <= r->purged)
    return;
  purge_job *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return;
  p->r = r;
  p->upto = json_integer_value(pos);
  r->purging = 1;
  if (gdx_db_submit(a->env->frontdb, purge_work, purge_done, p) != GDX_OK) {
    r->purging = 0;
    free(p);
  }
}

/* ---- requests ---- */

/* items=a,b,c: the columns asked for; each must be offered. The key comes
 * first whether asked for or not (a consumer cannot apply without it). */
static int select_items(table_res *r, read_job *j, const char *items, char *why, size_t n) {
  const tschema *s = &j->s;
  for (int k = 0; k < s->npk; k++)
    j->sel[j->nsel++] = s->pk[k];
  char copy[4096];
  snprintf(copy, sizeof(copy), "%s", items);
  int all = items[0] == '\0';
  for (int i = 0; all && i < (r->nitems ? r->nitems : s->ncols); i++) {
    int c = r->nitems ? col_index(s, r->items[i]) : i;
    int dup = 0;
    for (int k = 0; k < j->nsel; k++)
      dup |= j->sel[k] == c;
    if (!dup)
      j->sel[j->nsel++] = c;
  }
  for (char *save = NULL, *t = all ? NULL : strtok_r(copy, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    int offered = r->nitems == 0 && col_index(s, t) >= 0;
    for (int i = 0; i < r->nitems; i++)
      offered |= strcmp(r->items[i], t) == 0;
    if (!offered) {
      snprintf(why, n, "%s is not an item of resource %s", t, r->self->name);
      return -1;
    }
    int c = col_index(s, t), dup = 0;
    for (int k = 0; k < j->nsel; k++)
      dup |= j->sel[k] == c;
    if (!dup && j->nsel < MAX_COLS)
      j->sel[j->nsel++] = c;
  }
  return 0;
}

static void serve_schema(table_res *r, gdx_http_req *req, read_job *j) {
  const tschema *s = &r->s;
  /* of the selected columns only: the others stay unknown */
  json_t *cols = json_array(), *key = json_array(), *sel = json_array();
  for (int k = 0; k < j->nsel; k++) {
    const tcol *c = &s->cols[j->sel[k]];
    json_array_append_new(cols, json_pack("{s:s, s:s, s:b}", "name", c->name, "type", c->type,
                                          "nullable", c->nullable));
    json_array_append_new(sel, json_string(c->name));
  }
  for (int i = 0; i < s->npk; i++)
    json_array_append_new(key, json_string(s->cols[s->pk[i]].name));
  json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:I}", "table", r->table, "capture",
                        r->triggers ? "triggers" : "timestamp", "columns", cols, "primary_key",
                        key, "items", sel, "fingerprint", s->fingerprint, "position",
                        (json_int_t)s->position);
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (text == NULL) {
    gdx_relay_error(req, 500, "node", "internal", "out of memory");
    return;
  }
  gdx_http_respond(req, 200, "application/json", text, strlen(text));
  free(text);
}

/* A JSON array of npk key values (text or integers) into out[]. */
static int parse_key(const char *v, int npk, char **out) {
  json_t *key = json_loads(v, 0, NULL);
  int bad = !json_is_array(key) || json_array_size(key) != (size_t)npk;
  for (int k = 0; !bad && k < npk; k++) {
    json_t *e = json_array_get(key, (size_t)k);
    char num[32];
    if (json_is_integer(e))
      snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(e));
    bad |= !json_is_string(e) && !json_is_integer(e);
    if (!bad)
      out[k] = strdup(json_is_string(e) ? json_string_value(e) : num);
  }
  json_decref(key);
  return bad ? -1 : 0;
}

/* An integer query parameter in [min, max]; 0 absent, 1 set, -1 malformed. */
static int query_int(const char *q, const char *name, long long min, long long max,
                     long long *out) {
  char v[32];
  int got = gdx_http_query_param(q, name, v, sizeof(v));
  if (got != 1)
    return got;
  return gdx_num_parse(v, min, max, out) == GDX_OK ? 1 : -1;
}

static void compare_fail(read_job *j, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Refuses a compare before it reaches the database; the job is freed. */
static void compare_fail(read_job *j, int status, const char *code, const char *fmt, ...) {
  j->status = status;
  snprintf(j->code, sizeof(j->code), "%s", code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
  va_end(ap);
  answer(j, GDX_OK);
}

static void compare_body(gdx_http_req *req, const char *data, size_t len) {
  read_job *j = gdx_http_req_get_data(req);
  if (j->in.len + len > COMPARE_MAX_BYTES) {
    j->status = 413; /* noted; answered when the body is complete */
    return;
  }
  if (j->status == 0 && gdx_buf_append(&j->in, data, len) != GDX_OK)
    j->status = 503;
}

/* The body is in: every record is an object of scalars naming the key
 * columns and any of the authorized items; then one query answers all. */
static void compare_complete(gdx_http_req *req) {
  read_job *j = gdx_http_req_get_data(req);
  const tschema *s = &j->s;
  if (j->status == 413)
    return compare_fail(j, 413, "too_large", "a compare batch is at most %d bytes",
                        COMPARE_MAX_BYTES);
  if (j->status)
    return compare_fail(j, 503, "busy", "out of memory");
  json_error_t jerr;
  json_t *body = json_loadb(j->in.data ? j->in.data : "", j->in.len, 0, &jerr);
  json_t *recs = json_object_get(body, "records");
  if (!json_is_array(recs)) {
    json_decref(body);
    return compare_fail(j, 400, "invalid_body",
                        "send {\"records\": [{<key columns>, <items to verify>}, …]}");
  }
  j->records = json_incref(recs);
  json_decref(body);
  j->nrecords = json_array_size(recs);
  if (j->nrecords == 0 || j->nrecords > COMPARE_MAX_RECORDS)
    return compare_fail(j, 400, "invalid_body", "a compare batch has 1 to %d records, not %zu",
                        COMPARE_MAX_RECORDS, j->nrecords);
  if (j->quota_left >= 0 && (long long)j->nrecords > j->quota_left)
    return compare_fail(j, 429, "quota_exhausted",
                        "the batch has %zu records and the authorization's quota has %lld left",
                        j->nrecords, j->quota_left);
  size_t i;
  json_t *rec;
  json_array_foreach(recs, i, rec) {
    if (!json_is_object(rec))
      return compare_fail(j, 400, "invalid_body", "records[%zu] is not an object", i);
    const char *name;
    json_t *v;
    json_object_foreach(rec, name, v) {
      int c = col_index(s, name), ok = 0;
      for (int k = 0; k < j->nsel; k++)
        ok |= c >= 0 && j->sel[k] == c;
      if (!ok)
        return compare_fail(j, 403, "item_not_offered",
                            "records[%zu].%.64s is not an item of this authorization", i, name);
      if (json_is_object(v) || json_is_array(v) ||
          (json_is_string(v) && json_string_length(v) > 4000))
        return compare_fail(j, 400, "invalid_body",
                            "records[%zu].%.64s must be a string, number, boolean or null "
                            "(at most 4000 bytes)", i, name);
    }
    for (int k = 0; k < s->npk; k++) {
      json_t *kv = json_object_get(rec, s->cols[s->pk[k]].name);
      if (kv == NULL || json_is_null(kv) || json_is_boolean(kv) ||
          (json_is_string(kv) && json_string_length(kv) > 250))
        return compare_fail(j, 400, "invalid_body",
                            "records[%zu] needs key column %s (a string or number)", i,
                            s->cols[s->pk[k]].name);
    }
  }
  if (submit_read(j) != GDX_OK)
    return compare_fail(j, 503, "busy", "the front-end database queue is full");
}

/* POST /r/<name>/compare?items=…: the broker sets items to the
 * authorization's and X-Gdx-Quota-Left to what its quota has left. */
static void serve_compare(table_res *r, gdx_http_req *req, read_job *j) {
  const char *left = gdx_http_req_header(req, "X-Gdx-Quota-Left");
  /* from the broker; a value that is not a count leaves no quota */
  if (left && gdx_num_parse(left, 0, GDX_DB_ID_MAX, &j->quota_left) != GDX_OK)
    j->quota_left = 0;
  else if (left == NULL)
    j->quota_left = -1;
  int64_t clen = gdx_http_req_content_length(req);
  j->reqs = malloc(sizeof(*j->reqs));
  if (j->reqs == NULL) {
    gdx_relay_error(req, 503, "node", "busy", "out of memory");
    read_job_free(j);
    return;
  }
  j->cap = 1;
  j->reqs[j->nreqs++] = req;
  gdx_buf_init(&j->in, COMPARE_MAX_BYTES);
  j->next = r->jobs;
  r->jobs = j;
  if (clen > COMPARE_MAX_BYTES)
    return compare_fail(j, 413, "too_large", "a compare batch is at most %d bytes",
                        COMPARE_MAX_BYTES);
  gdx_http_req_set_data(req, j);
  gdx_http_req_on(req, compare_body, compare_complete, read_abort);
}

static const char *const usage[] = {
    "snapshot?[after=<JSON key>][&upto=<JSON key>][&limit=1..10000][&items=a,b]",
    "changes?after=<position>[&limit=1..10000][&wait_ms=0..30000][&items=a,b]",
    "checksums?[after=<JSON key>][&chunk=1..10000][&limit=<chunks>][&items=a,b]",
    "rowsums?[after=<JSON key>][&upto=<JSON key>][&position=<n>][&items=a,b]",
};

static void table_serve(gdx_adapter *a, gdx_http_req *req, const char *rest) {
  table_res *r = a->impl;
  static const char *const ops[] = {"snapshot", "changes", "checksums", "rowsums", "compare"};
  int op = -1, is_schema = strcmp(rest, "schema") == 0;
  for (int i = 0; i < 5; i++)
    if (strcmp(rest, ops[i]) == 0)
      op = i;
  if (!is_schema && op < 0) {
    gdx_relay_error(req, 404, "node", "not_found", "table resource %s has no %s", a->name, rest);
    return;
  }
  if (strcmp(gdx_http_req_method(req), op == OP_COMPARE ? "POST" : "GET") != 0) {
    gdx_relay_error(req, 405, "node", "method_not_allowed", "%s is %s", rest,
                    op == OP_COMPARE ? "POSTed" : "read with GET");
    return;
  }
  if (!r->ready || r->s.error[0]) {
    gdx_relay_error(req, 503, "node", "table_unavailable", "%s",
                    r->s.error[0] ? r->s.error : "the table has not been inspected yet");
    return;
  }
  const char *q = gdx_http_req_query(req);
  /* the same read in flight or parked: wait for its answer */
  char key[8192];
  int kn = snprintf(key, sizeof(key), "%s?%s", rest, q ? q : "");
  if (!is_schema && op != OP_COMPARE && kn > 0 && (size_t)kn < sizeof(key)) {
    cache_expire(r, 0);
    for (read_job *j = r->cache; j; j = j->next)
      if (strcmp(j->key, key) == 0) { /* answered a moment ago */
        r->cache_hits++;
        respond_ok(j, req);
        return;
      }
  }
  if (!is_schema && op != OP_COMPARE && kn > 0 && (size_t)kn < sizeof(key))
    for (read_job *j = r->jobs; j; j = j->next)
      if (j->key && strcmp(j->key, key) == 0 && (j->in_db || j->parked)) {
        if (j->nreqs == j->cap) {
          int cap = j->cap ? j->cap * 2 : 4;
          gdx_http_req **nr = realloc(j->reqs, (size_t)cap * sizeof(*nr));
          if (nr == NULL)
            break;
          j->reqs = nr;
          j->cap = cap;
        }
        j->reqs[j->nreqs++] = req;
        gdx_http_req_set_data(req, j);
        gdx_http_req_on(req, NULL, NULL, read_abort);
        r->coalesced++;
        return;
      }
  read_job *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    gdx_relay_error(req, 503, "node", "busy", "out of memory");
    return;
  }
  j->r = r;
  j->op = op;
  j->s = r->s;
  char items[4096] = "", v[4096], why[300] = "";
  int bad = gdx_http_query_param(q, "items", items, sizeof(items)) < 0;
  if (!bad && select_items(r, j, items, why, sizeof(why)) != 0) {
    gdx_relay_error(req, 403, "node", "item_not_offered", "%s", why);
    read_job_free(j);
    return;
  }
  if (is_schema) {
    serve_schema(r, req, j);
    read_job_free(j);
    return;
  }
  if (op == OP_COMPARE) {
    serve_compare(r, req, j);
    return;
  }
  j->limit = op == OP_CHECKSUMS ? 100 : 1000;
  j->chunk = 1000;
  int got;
  bad |= query_int(q, "limit", 1, READ_MAX_ROWS, &j->limit) < 0;
  bad |= query_int(q, "chunk", 1, READ_MAX_ROWS, &j->chunk) < 0;
  bad |= query_int(q, "wait_ms", 0, WAIT_MAX_MS, &j->wait_ms) < 0;
  got = query_int(q, "position", 0, 1LL << 62, &j->after_seq);
  bad |= got < 0;
  j->has_seq = got == 1;
  if (op == OP_CHECKSUMS && j->chunk * j->limit > CHECKSUM_MAX_ROWS)
    j->limit = CHECKSUM_MAX_ROWS / j->chunk;
  if (op == OP_CHANGES) {
    got = bad ? 0 : query_int(q, "after", 0, 1LL << 62, &j->after_seq);
    bad |= got != 1; /* a change batch needs its position */
  } else {
    got = bad ? 0 : gdx_http_query_param(q, "after", v, sizeof(v));
    bad |= got < 0 || (got == 1 && parse_key(v, r->s.npk, j->after_key) != 0);
    j->has_after = got == 1;
    got = bad ? 0 : gdx_http_query_param(q, "upto", v, sizeof(v));
    bad |= got < 0 || (got == 1 && parse_key(v, r->s.npk, j->upto_key) != 0);
    j->has_upto = got == 1;
  }
  if (bad) {
    gdx_relay_error(req, 400, "client", "invalid_query", "%s", usage[op]);
    read_job_free(j);
    return;
  }
  j->want_zstd = (op == OP_SNAPSHOT || op == OP_CHANGES) &&
                 gdx_accepts_zstd(gdx_http_req_header(req, "Accept-Encoding"));
  j->key = strdup(key);
  j->reqs = malloc(4 * sizeof(*j->reqs));
  if (j->key == NULL || j->reqs == NULL) {
    gdx_relay_error(req, 503, "node", "busy", "out of memory");
    read_job_free(j);
    return;
  }
  j->cap = 4;
  j->reqs[j->nreqs++] = req;
  if (j->wait_ms > 0 && r->wake == NULL) {
    r->wake = malloc(sizeof(*r->wake));
    if (r->wake) {
      uv_timer_init(a->env->loop, r->wake);
      r->wake->data = r;
    }
  }
  j->deadline = uv_now(a->env->loop) + (uint64_t)j->wait_ms;
  gdx_http_req_set_data(req, j);
  gdx_http_req_on(req, NULL, NULL, read_abort);
  if (submit_read(j) != GDX_OK) {
    gdx_http_req_on(req, NULL, NULL, NULL);
    gdx_http_req_set_data(req, NULL);
    gdx_relay_error(req, 503, "node", "busy", "the front-end database queue is full");
    read_job_free(j);
    return;
  }
  j->next = r->jobs;
  r->jobs = j;
}

static void on_wake_closed(uv_handle_t *h) { free(h); }

static void table_close(gdx_adapter *a) {
  table_res *r = a->impl;
  if (r == NULL)
    return;
  r->closing = 1;
  /* the database pool has stopped: what is left is parked */
  while (r->jobs)
    answer(r->jobs, GDX_ECLOSED);
  cache_expire(r, 1);
  if (r->wake)
    uv_close((uv_handle_t *)r->wake, on_wake_closed);
  for (int i = 0; i < r->nitems; i++)
    free(r->items[i]);
  free(r);
  a->impl = NULL;
}

static void table_metrics(gdx_adapter *a, gdx_buf *out) {
  table_res *r = a->impl;
  int parked = 0;
  for (read_job *j = r->jobs; j; j = j->next)
    parked += j->parked;
  gdx_buf_appendf(out, "gdx_node_table_reads_coalesced_total{resource=\"%s\"} %llu\n", a->name,
                  (unsigned long long)r->coalesced);
  gdx_buf_appendf(out, "gdx_node_table_reads_cached_total{resource=\"%s\"} %llu\n", a->name,
                  (unsigned long long)r->cache_hits);
  gdx_buf_appendf(out, "gdx_node_table_reads_waiting{resource=\"%s\"} %d\n", a->name, parked);
  gdx_buf_appendf(out, "gdx_node_table_changelog_backlog{resource=\"%s\"} %lld\n", a->name,
                  r->s.backlog);
  gdx_buf_appendf(out, "gdx_node_table_changelog_purged_upto{resource=\"%s\"} %lld\n", a->name,
                  r->purged);
}

const gdx_adapter_ops gdx_adapter_table = {
    .kind = "table",
    .open = table_open,
    .serve = table_serve,
    .health = table_health,
    .hint = table_hint,
    .metrics = table_metrics,
    .close = table_close,
};
