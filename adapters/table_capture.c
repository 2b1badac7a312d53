/* The table adapter's hold on its table (table_int.h): the columns and
 * primary key read from information_schema with a fingerprint of them, the
 * three triggers that write every change into gdx_changelog, the health
 * check before each heartbeat that reads them again (a changed schema or a
 * lost trigger takes the resource down), and the purge of the change log
 * below the slowest subscriber, on the broker's word.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "digest.h"
#include "error.h"
#include "log.h"
#include "table_int.h"

typedef struct {
  table_res *r;
  tschema s;
  int install;
} inspect_job;

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
    rc = gdx_db_query(c, "SELECT COALESCE(MAX(seq), 0), COUNT(*), (SELECT COALESCE(MAX(seq), 0) "
                         "FROM gdx_changelog) FROM gdx_changelog WHERE tbl = ?",
                      p, 1, 1, &res);
    if (!rc) {
      w = gdx_db_row_at(&res, 0);
      s->position = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX);
      s->backlog = gdx_db_i64(&w, 1, 0, GDX_DB_ID_MAX);
      long long max = gdx_db_i64(&w, 2, 0, GDX_DB_ID_MAX);
      /* every gap below it is as old as this look: after a restart the
       * backlog's gaps pass a second after the first inspection
       * (table_gaps.c), not a second after each batch meets them */
      if (w.rc == GDX_OK)
        gdx__table_seen(r, max, uv_hrtime());
    }
    gdx_db_result_free(&res);
  }
  return GDX_OK;
}

/* ------------------------------------------------------------------ */
/* the inspection's verdict, the health (loop thread)                */

int gdx__table_col_index(const tschema *s, const char *name) {
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
    if (gdx__table_col_index(s, r->items[i]) < 0)
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
  int tc = r->triggers ? -1 : gdx__table_col_index(s, r->ts_col);
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

void gdx__table_health(gdx_adapter *a, void (*done)(gdx_adapter *a)) {
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
void gdx__table_hint(gdx_adapter *a, const json_t *hb) {
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
