#include "table_apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "error.h"
#include "rowsum.h"

#define UPSERT_ROWS 200 /* rows per INSERT; 200 x 256 columns stays under 65535 params */

/* word[(n[,n])][ unsigned][ zerofill]: what information_schema says of
 * ordinary columns; enum and set (quoted values) are refused for now. */
static int type_ok(const char *t) {
  const char *p = t;
  while (*p >= 'a' && *p <= 'z')
    p++;
  if (p == t)
    return 0;
  if (*p == '(') {
    p++;
    size_t d = strspn(p, "0123456789");
    if (d == 0)
      return 0;
    p += d;
    if (*p == ',') {
      p++;
      d = strspn(p, "0123456789");
      if (d == 0)
        return 0;
      p += d;
    }
    if (*p++ != ')')
      return 0;
  }
  if (strncmp(p, " unsigned", 9) == 0)
    p += 9;
  if (strncmp(p, " zerofill", 9) == 0)
    p += 9;
  return *p == '\0' && strncmp(t, "enum", 4) != 0 && strncmp(t, "set", 3) != 0;
}

int gdx_table_apply_prepare(gdx_db_conn *c, const gdx_table_apply_target *t,
                            const json_t *schema, char *err, size_t errlen) {
  if (!gdx_db_ident_ok(t->table) || !gdx_db_ident_ok(t->sub) || t->nkey < 1 ||
      t->ncols < t->nkey) {
    snprintf(err, errlen, "target table or subscription is not a plain name, or no key");
    return GDX_EINVAL;
  }
  json_t *cols = json_object_get(schema, "columns");
  gdx_buf b;
  gdx_buf_init(&b, 256 * 1024);
  gdx_buf_appendf(&b, "CREATE TABLE IF NOT EXISTS `%s` (", t->table);
  for (int i = 0; i < t->ncols; i++) {
    const json_t *col = NULL;
    for (size_t k = 0; k < json_array_size(cols) && col == NULL; k++) {
      const char *name = json_string_value(json_object_get(json_array_get(cols, k), "name"));
      if (name && strcmp(name, t->cols[i]) == 0)
        col = json_array_get(cols, k);
    }
    const char *type = col ? json_string_value(json_object_get(col, "type")) : NULL;
    if (!gdx_db_ident_ok(t->cols[i]) || type == NULL || !type_ok(type)) {
      snprintf(err, errlen, "column %s: %s", t->cols[i],
               type == NULL ? "not in the provider's schema"
                            : "its type is not supported for a target table yet");
      gdx_buf_free(&b);
      return GDX_EINVAL;
    }
    int nullable = json_is_true(json_object_get(col, "nullable")) && i >= t->nkey;
    gdx_buf_appendf(&b, "`%s` %s%s, ", t->cols[i], type, nullable ? " NULL" : " NOT NULL");
  }
  gdx_buf_appends(&b, "PRIMARY KEY (");
  for (int i = 0; i < t->nkey; i++)
    gdx_buf_appendf(&b, "%s`%s`", i ? ", " : "", t->cols[i]);
  gdx_buf_appends(&b, ")) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4");
  int rc = gdx_db_exec_ddl(c, b.data);
  gdx_buf_free(&b);
  if (!rc) {
    gdx_db_param p[] = {GDX_DB_P_STR(t->sub), GDX_DB_P_STR(t->table)};
    rc = gdx_db_exec(c,
                     "INSERT IGNORE INTO gdx_sync_state (subscription, target, snapshot_after) "
                     "VALUES (?, ?, '')",
                     p, 2, NULL, NULL);
  }
  if (rc)
    snprintf(err, errlen, "preparing %s failed: %s", t->table, gdx_db_error(c));
  return rc;
}

static int load(gdx_db_conn *c, const char *sub, gdx_table_apply_state *out, int lock) {
  gdx_db_param p[] = {GDX_DB_P_STR(sub)};
  gdx_db_result r = {0};
  int rc = gdx_db_query(c,
                        lock ? "SELECT snapshot_done, snapshot_after, position, rows_applied "
                               "FROM gdx_sync_state WHERE subscription = ? FOR UPDATE"
                             : "SELECT snapshot_done, snapshot_after, position, rows_applied "
                               "FROM gdx_sync_state WHERE subscription = ?",
                        p, 1, 1, &r);
  if (rc == GDX_OK && r.nrows == 0)
    rc = GDX_ENOTFOUND;
  if (rc == GDX_OK) {
    gdx_db_row w = gdx_db_row_at(&r, 0);
    out->snapshot_done = gdx_db_flag(&w, 0);
    snprintf(out->snapshot_after, sizeof(out->snapshot_after), "%s", gdx_db_get(&r, 0, 1));
    out->position = gdx_db_i64(&w, 2, 0, GDX_DB_ID_MAX);
    out->rows_applied = gdx_db_i64(&w, 3, 0, GDX_DB_ID_MAX);
    if (w.rc)
      rc = gdx_db_row_fail(&w, "gdx_sync_state");
  }
  gdx_db_result_free(&r);
  return rc;
}

int gdx_table_apply_load(gdx_db_conn *c, const char *sub, gdx_table_apply_state *out) {
  return load(c, sub, out, 0);
}

/* n rows of t->ncols values each (v NULL: null) in one INSERT … ON
 * DUPLICATE KEY UPDATE, the values bound as they are. */
static int upsert_values(gdx_db_conn *c, const gdx_table_apply_target *t, const char *const *v,
                         const size_t *len, size_t n, char *err, size_t errlen) {
  gdx_buf b;
  gdx_buf_init(&b, 1024 * 1024);
  gdx_buf_appendf(&b, "INSERT %sINTO `%s` (", t->ncols == t->nkey ? "IGNORE " : "", t->table);
  for (int i = 0; i < t->ncols; i++)
    gdx_buf_appendf(&b, "%s`%s`", i ? ", " : "", t->cols[i]);
  gdx_buf_appends(&b, ") VALUES ");
  size_t nv = n * (size_t)t->ncols;
  gdx_db_param *p = calloc(nv ? nv : 1, sizeof(*p));
  if (p == NULL) {
    gdx_buf_free(&b);
    return GDX_ENOMEM;
  }
  int rc = GDX_OK;
  for (size_t r = 0; r < n; r++) {
    gdx_buf_appends(&b, r ? ", (" : "(");
    for (int i = 0; i < t->ncols; i++)
      gdx_buf_appends(&b, i ? ", ?" : "?");
    gdx_buf_appends(&b, ")");
  }
  for (size_t k = 0; k < nv && !rc; k++) {
    if (v[k] == NULL && (int)(k % (size_t)t->ncols) < t->nkey) {
      snprintf(err, errlen, "column %s: a key value is null", t->cols[k % (size_t)t->ncols]);
      rc = GDX_EINVAL;
    }
    p[k] = v[k] ? GDX_DB_P_BIN(v[k], len[k]) : GDX_DB_P_NULL;
  }
  if (!rc && t->ncols > t->nkey) {
    gdx_buf_appends(&b, " ON DUPLICATE KEY UPDATE ");
    for (int i = t->nkey; i < t->ncols; i++)
      gdx_buf_appendf(&b, "%s`%s` = VALUES(`%s`)", i > t->nkey ? ", " : "", t->cols[i],
                      t->cols[i]);
  }
  if (!rc && (rc = gdx_db_exec(c, b.data, p, nv, NULL, NULL)) != GDX_OK)
    snprintf(err, errlen, "writing rows into %s failed: %s", t->table, gdx_db_error(c));
  free(p);
  gdx_buf_free(&b);
  return rc;
}

/* The same for rows as JSON arrays of text (repairs). */
static int upsert(gdx_db_conn *c, const gdx_table_apply_target *t, json_t *const *rows, size_t n,
                  char *err, size_t errlen) {
  size_t nv = n * (size_t)t->ncols;
  const char **v = calloc(nv ? nv : 1, sizeof(*v));
  size_t *len = calloc(nv ? nv : 1, sizeof(*len));
  int rc = v && len ? GDX_OK : GDX_ENOMEM;
  for (size_t r = 0; r < n && !rc; r++) {
    if (!json_is_array(rows[r]) || json_array_size(rows[r]) != (size_t)t->ncols) {
      snprintf(err, errlen, "a row has %zu values, the target %d columns",
               json_array_size(rows[r]), t->ncols);
      rc = GDX_EINVAL;
      break;
    }
    for (int i = 0; i < t->ncols && !rc; i++) {
      json_t *x = json_array_get(rows[r], (size_t)i);
      if (!json_is_string(x) && !json_is_null(x)) {
        snprintf(err, errlen, "column %s: a value is neither text nor null", t->cols[i]);
        rc = GDX_EINVAL;
      }
      v[r * (size_t)t->ncols + (size_t)i] = json_string_value(x);
      len[r * (size_t)t->ncols + (size_t)i] = json_string_length(x);
    }
  }
  if (!rc)
    rc = upsert_values(c, t, v, len, n, err, errlen);
  free(v);
  free(len);
  return rc;
}

/* Deletes the row of one key (t->nkey values, text). */
static int delete_values(gdx_db_conn *c, const gdx_table_apply_target *t, const char *const *v,
                         const size_t *len, char *err, size_t errlen) {
  gdx_buf b;
  gdx_buf_init(&b, 64 * 1024);
  gdx_db_param p[16];
  gdx_buf_appendf(&b, "DELETE FROM `%s` WHERE ", t->table);
  for (int i = 0; i < t->nkey && i < 16; i++) {
    if (v[i] == NULL) {
      gdx_buf_free(&b);
      snprintf(err, errlen, "a key value is null");
      return GDX_EINVAL;
    }
    p[i] = GDX_DB_P_BIN(v[i], len[i]);
    gdx_buf_appendf(&b, "%s`%s` = ?", i ? " AND " : "", t->cols[i]);
  }
  int rc = gdx_db_exec(c, b.data, p, (size_t)t->nkey, NULL, NULL);
  if (rc)
    snprintf(err, errlen, "deleting from %s failed: %s", t->table, gdx_db_error(c));
  gdx_buf_free(&b);
  return rc;
}

/* The same for a key as a JSON array of text (repairs). */
static int delete_key(gdx_db_conn *c, const gdx_table_apply_target *t, const json_t *key, char *err,
                      size_t errlen) {
  if (!json_is_array(key) || json_array_size(key) != (size_t)t->nkey || t->nkey > 16) {
    snprintf(err, errlen, "a delete carries %zu key values, the key has %d",
             json_array_size(key), t->nkey);
    return GDX_EINVAL;
  }
  const char *v[16];
  size_t len[16];
  for (int i = 0; i < t->nkey; i++) {
    json_t *x = json_array_get(key, (size_t)i);
    if (!json_is_string(x)) {
      snprintf(err, errlen, "a key value is not text");
      return GDX_EINVAL;
    }
    v[i] = json_string_value(x);
    len[i] = json_string_length(x);
  }
  return delete_values(c, t, v, len, err, errlen);
}

/* The batch's ledger entry, in the transaction that applies it: rows and
 * checksum as the provider sent them (the batch's "count" and "checksum"
 * in meta) and as they were applied here (applied, sum). */
static int ledger(gdx_db_conn *c, const gdx_table_apply_target *t, const char *kind,
                  const char *from, const char *to, const json_t *meta, uint64_t applied_sum,
                  size_t applied, char *err, size_t errlen) {
  char sum[17], sent_sum[17] = "0000000000000000";
  gdx_rowsum_hex(applied_sum, sum);
  const char *ss = json_string_value(json_object_get(meta, "checksum"));
  if (ss && strlen(ss) == 16 && strspn(ss, "0123456789abcdef") == 16)
    memcpy(sent_sum, ss, 17);
  json_t *cnt = json_object_get(meta, "count");
  long long sent = json_is_integer(cnt) ? json_integer_value(cnt) : -1;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  gdx_db_param p[] = {GDX_DB_P_STR(t->sub), GDX_DB_P_STR(kind), GDX_DB_P_STR(from),
                      GDX_DB_P_STR(to), GDX_DB_P_INT(sent < 0 ? 0 : sent),
                      GDX_DB_P_STR(sent_sum), GDX_DB_P_INT(applied), GDX_DB_P_STR(sum),
                      GDX_DB_P_INT(now_ms)};
  int rc = gdx_db_exec(c,
                       "INSERT INTO gdx_sync_ledger (subscription, kind, batch_from, batch_to, "
                       "rows_sent, checksum_sent, rows_applied, checksum_applied, applied_at) "
                       "VALUES (?, ?, LEFT(?, 300), LEFT(?, 300), ?, ?, ?, ?, ?)",
                       p, 9, NULL, NULL);
  if (rc)
    snprintf(err, errlen, "writing the ledger failed: %s", gdx_db_error(c));
  return rc;
}

static int finish(gdx_db_conn *c, int rc) {
  if (rc == GDX_OK)
    return gdx_db_commit(c);
  gdx_db_rollback(c);
  return rc;
}

int gdx_table_apply_page(gdx_db_conn *c, const gdx_table_apply_target *t, const char *after,
                         const gdx_page *pg, char *err, size_t errlen) {
  const json_t *page = pg->meta;
  if (pg->nrows > 0 && pg->ncols != t->ncols) {
    snprintf(err, errlen, "a row has %d values, the target %d columns", pg->ncols, t->ncols);
    return GDX_EINVAL;
  }
  gdx_table_apply_state st;
  int rc = gdx_db_begin(c);
  if (!rc)
    rc = load(c, t->sub, &st, 1);
  if (!rc && (st.snapshot_done || strcmp(st.snapshot_after, after) != 0)) {
    snprintf(err, errlen, "the page after %s is not the next one (state: %s%s)",
             after[0] ? after : "the start", st.snapshot_done ? "snapshot done" : "after ",
             st.snapshot_done ? "" : (st.snapshot_after[0] ? st.snapshot_after : "the start"));
    rc = GDX_ECONFLICT;
  }
  size_t n = pg->nrows;
  for (size_t i = 0; !rc && i < n; i += UPSERT_ROWS) {
    size_t m = n - i < UPSERT_ROWS ? n - i : UPSERT_ROWS;
    rc = upsert_values(c, t, pg->v + i * (size_t)t->ncols, pg->len + i * (size_t)t->ncols, m,
                       err, errlen);
  }
  if (!rc) {
    json_t *last = json_object_get(page, "last");
    char *next = json_is_array(last) ? json_dumps(last, JSON_COMPACT) : NULL;
    int done = json_is_true(json_object_get(page, "done"));
    json_t *pos = json_object_get(page, "position");
    long long position = json_is_integer(pos) && after[0] == '\0' ? json_integer_value(pos)
                                                                  : st.position;
    gdx_db_param p[] = {GDX_DB_P_STR(next ? next : after), GDX_DB_P_INT(done),
                        GDX_DB_P_INT(position), GDX_DB_P_INT(n), GDX_DB_P_STR(t->sub)};
    rc = gdx_db_exec(c,
                     "UPDATE gdx_sync_state SET snapshot_after = ?, snapshot_done = ?, "
                     "position = ?, rows_applied = rows_applied + ? WHERE subscription = ?",
                     p, 5, NULL, NULL);
    if (rc)
      snprintf(err, errlen, "storing the position failed: %s", gdx_db_error(c));
    if (!rc)
      rc = ledger(c, t, "page", after, next ? next : after, page, gdx_page_rowsum(pg), n, err,
                  errlen);
    free(next);
  }
  return finish(c, rc);
}

int gdx_table_apply_changes(gdx_db_conn *c, const gdx_table_apply_target *t, long long after,
                            const gdx_page *pg, char *err, size_t errlen) {
  json_t *pos = json_object_get(pg->meta, "position");
  if (pg->nrows > 0 || !json_is_integer(pos) || json_integer_value(pos) < after) {
    snprintf(err, errlen, "the batch has no changes or no position");
    return GDX_EINVAL;
  }
  gdx_table_apply_state st;
  int rc = gdx_db_begin(c);
  if (!rc)
    rc = load(c, t->sub, &st, 1);
  if (!rc && (!st.snapshot_done || st.position != after)) {
    snprintf(err, errlen, "the changes after %lld are not the next ones (state: %s %lld)", after,
             st.snapshot_done ? "at" : "snapshot not done,", st.position);
    rc = GDX_ECONFLICT;
  }
  size_t n = pg->nchanges;
  for (size_t i = 0; !rc && i < n;) {
    int want = pg->ops[i] == 'D' ? t->nkey : t->ncols;
    if (pg->width[i] != want) {
      snprintf(err, errlen, "change %zu carries %d values, %s %d", i, pg->width[i],
               pg->ops[i] == 'D' ? "the key has" : "the target has", want);
      rc = GDX_EINVAL;
      break;
    }
    if (pg->ops[i] == 'D') {
      rc = delete_values(c, t, pg->v + pg->first[i], pg->len + pg->first[i], err, errlen);
      i++;
      continue;
    }
    /* a run of upserts in one statement: their values are consecutive */
    size_t m = 1;
    while (i + m < n && m < UPSERT_ROWS && pg->ops[i + m] == 'U' &&
           pg->width[i + m] == t->ncols)
      m++;
    rc = upsert_values(c, t, pg->v + pg->first[i], pg->len + pg->first[i], m, err, errlen);
    i += m;
  }
  if (!rc) {
    gdx_db_param p[] = {GDX_DB_P_INT(json_integer_value(pos)), GDX_DB_P_INT(n),
                        GDX_DB_P_STR(t->sub)};
    rc = gdx_db_exec(c,
                     "UPDATE gdx_sync_state SET position = ?, rows_applied = rows_applied + ? "
                     "WHERE subscription = ?",
                     p, 3, NULL, NULL);
    if (rc)
      snprintf(err, errlen, "storing the position failed: %s", gdx_db_error(c));
    char from[24], to[24];
    snprintf(from, sizeof(from), "%lld", after);
    snprintf(to, sizeof(to), "%lld", (long long)json_integer_value(pos));
    if (!rc)
      rc = ledger(c, t, "changes", from, to, pg->meta, gdx_page_rowsum(pg), n, err, errlen);
  }
  return finish(c, rc);
}

/* ------------------------------------------------------------------ */
/* the ledger's report to the broker                                   */

int gdx_table_apply_ledger_read(gdx_db_conn *c, const char *sub, size_t max, json_t **entries,
                                long long *maxid) {
  gdx_db_param p[] = {GDX_DB_P_STR(sub), GDX_DB_P_INT(max)};
  gdx_db_result r = {0};
  int rc = gdx_db_query(c,
                        "SELECT id, kind, batch_from, batch_to, rows_sent, checksum_sent, "
                        "rows_applied, checksum_applied, applied_at FROM gdx_sync_ledger "
                        "WHERE subscription = ? ORDER BY id LIMIT ?",
                        p, 2, max, &r);
  if (rc)
    return rc;
  *entries = json_array();
  *maxid = 0;
  for (size_t i = 0; i < r.nrows && !rc; i++) {
    gdx_db_row w = gdx_db_row_at(&r, i);
    long long id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
    long long sent = gdx_db_i64(&w, 4, 0, GDX_DB_INT_MAX);
    long long applied = gdx_db_i64(&w, 6, 0, GDX_DB_INT_MAX);
    long long at = gdx_db_i64(&w, 8, 0, GDX_DB_ID_MAX);
    if (w.rc) {
      rc = gdx_db_row_fail(&w, "gdx_sync_ledger");
      break;
    }
    *maxid = id;
    json_array_append_new(
        *entries,
        json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:I}", "kind", gdx_db_get(&r, i, 1),
                  "from", gdx_db_get(&r, i, 2), "to", gdx_db_get(&r, i, 3), "rows_sent",
                  (json_int_t)sent, "checksum_sent", gdx_db_get(&r, i, 5), "rows_applied",
                  (json_int_t)applied, "checksum_applied", gdx_db_get(&r, i, 7), "applied_at",
                  (json_int_t)at));
  }
  gdx_db_result_free(&r);
  if (rc) {
    json_decref(*entries);
    *entries = NULL;
  }
  return rc;
}

int gdx_table_apply_ledger_forget(gdx_db_conn *c, const char *sub, long long maxid) {
  gdx_db_param p[] = {GDX_DB_P_STR(sub), GDX_DB_P_INT(maxid)};
  return gdx_db_exec(c, "DELETE FROM gdx_sync_ledger WHERE subscription = ? AND id <= ?", p, 2,
                     NULL, NULL);
}

int gdx_table_apply_reset(gdx_db_conn *c, const gdx_table_apply_target *t, char *err,
                          size_t errlen) {
  gdx_buf b;
  gdx_buf_init(&b, 1024);
  gdx_buf_appendf(&b, "DELETE FROM `%s`", t->table);
  int rc = gdx_db_begin(c);
  if (!rc)
    rc = gdx_db_exec(c, b.data, NULL, 0, NULL, NULL);
  gdx_db_param p[] = {GDX_DB_P_STR(t->sub)};
  if (!rc)
    rc = gdx_db_exec(c,
                     "UPDATE gdx_sync_state SET snapshot_done = 0, snapshot_after = '', "
                     "position = 0 WHERE subscription = ?",
                     p, 1, NULL, NULL);
  if (rc)
    snprintf(err, errlen, "starting over failed: %s", gdx_db_error(c));
  gdx_buf_free(&b);
  return finish(c, rc);
}

/* ------------------------------------------------------------------ */
/* reconciliation: the target's side                                   */

/* (key) > (after) AND (key) <= (last), each when it is a JSON array. */
static int range(const gdx_table_apply_target *t, const json_t *after, const json_t *last,
                 gdx_buf *b, gdx_db_param *p, size_t *np) {
  *np = 0;
  for (int part = 0; part < 2; part++) {
    const json_t *k = part ? last : after;
    if (!json_is_array(k))
      continue;
    if (json_array_size(k) != (size_t)t->nkey)
      return GDX_EINVAL;
    gdx_buf_appends(b, *np ? " AND (" : " WHERE (");
    for (int i = 0; i < t->nkey; i++)
      gdx_buf_appendf(b, "%s`%s`", i ? ", " : "", t->cols[i]);
    gdx_buf_appends(b, part ? ") <= (" : ") > (");
    for (int i = 0; i < t->nkey; i++) {
      const json_t *v = json_array_get(k, (size_t)i);
      if (!json_is_string(v))
        return GDX_EINVAL;
      p[(*np)++] = GDX_DB_P_BIN(json_string_value(v), json_string_length(v));
      gdx_buf_appends(b, i ? ", ?" : "?");
    }
    gdx_buf_appends(b, ")");
  }
  return GDX_OK;
}

static void rowexpr(const gdx_table_apply_target *t, gdx_buf *b) {
  const char *names[256];
  for (int i = 0; i < t->ncols; i++)
    names[i] = t->cols[i];
  gdx_rowsum_sql(b, names, t->ncols);
}

int gdx_table_apply_chunks(gdx_db_conn *c, const gdx_table_apply_target *t, const json_t *chunks,
                           long long *target_rows, json_t *differing, char *err, size_t errlen) {
  size_t i;
  const json_t *ch;
  json_array_foreach(chunks, i, ch) {
    gdx_buf b;
    gdx_buf_init(&b, 256 * 1024);
    gdx_db_param p[32];
    size_t np;
    gdx_buf_appends(&b, "SELECT COUNT(*), IFNULL(BIT_XOR(");
    rowexpr(t, &b);
    gdx_buf_appendf(&b, "), 0) FROM `%s`", t->table);
    int rc = range(t, json_object_get(ch, "after"), json_object_get(ch, "last"), &b, p, &np);
    gdx_db_result r = {0};
    if (rc) {
      snprintf(err, errlen, "chunk %zu: a bound is not a key", i);
    } else if ((rc = gdx_db_query(c, b.data, p, np, 1, &r)) != GDX_OK) {
      snprintf(err, errlen, "checksumming %s failed: %s", t->table, gdx_db_error(c));
    }
    gdx_buf_free(&b);
    if (rc)
      return rc;
    gdx_db_row w = gdx_db_row_at(&r, 0);
    long long rows = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX);
    char hex[17];
    gdx_rowsum_hex(gdx_db_u64(&w, 1), hex);
    if (w.rc) {
      rc = gdx_db_row_fail(&w, t->table);
      snprintf(err, errlen, "checksumming %s gave no number", t->table);
    }
    gdx_db_result_free(&r);
    if (rc)
      return rc;
    *target_rows += rows;
    const char *sum = json_string_value(json_object_get(ch, "sum"));
    if (rows != json_integer_value(json_object_get(ch, "rows")) || sum == NULL ||
        strcmp(sum, hex) != 0)
      json_array_append(differing, (json_t *)ch);
  }
  return GDX_OK;
}

typedef struct {
  char *key;    /* values joined by 0x1f */
  char sum[17];
  const json_t *json; /* the key as a JSON array of text */
  size_t idx;   /* position in the provider's order */
} krow;

static int krow_cmp(const void *a, const void *b) {
  return strcmp(((const krow *)a)->key, ((const krow *)b)->key);
}

static char *join_key(const json_t *k, int nkey) {
  gdx_buf b;
  gdx_buf_init(&b, 64 * 1024);
  for (int i = 0; i < nkey; i++) {
    if (i)
      gdx_buf_append(&b, "\x1f", 1);
    const json_t *v = json_array_get(k, (size_t)i);
    gdx_buf_append(&b, json_string_value(v) ? json_string_value(v) : "",
                   json_string_value(v) ? json_string_length(v) : 0);
  }
  gdx_buf_append(&b, "", 1);
  return gdx_buf_detach(&b, NULL);
}

static void krows_free(krow *k, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(k[i].key);
  free(k);
}

static int in_set(const krow *set, size_t n, const char *key) {
  krow probe = {.key = (char *)key};
  return n && bsearch(&probe, set, n, sizeof(krow), krow_cmp) != NULL;
}

static void sample(gdx_table_apply_diff *d, const json_t *key, const char *what) {
  if (json_array_size(d->samples) < 20)
    json_array_append_new(d->samples, json_pack("{s:O, s:s}", "key", key, "what", what));
}

int gdx_table_apply_rowdiff(gdx_db_conn *c, const gdx_table_apply_target *t, const json_t *chunk,
                            const json_t *prov, gdx_table_apply_diff *d, char *err, size_t errlen) {
  gdx_buf b;
  gdx_buf_init(&b, 256 * 1024);
  gdx_db_param p[32];
  size_t np;
  gdx_buf_appends(&b, "SELECT ");
  for (int i = 0; i < t->nkey; i++)
    gdx_buf_appendf(&b, "`%s`, ", t->cols[i]);
  rowexpr(t, &b);
  gdx_buf_appendf(&b, " FROM `%s`", t->table);
  int rc = range(t, json_object_get(chunk, "after"), json_object_get(chunk, "last"), &b, p, &np);
  gdx_buf_appends(&b, " LIMIT 10001");
  gdx_db_result r = {0};
  if (!rc && (rc = gdx_db_query(c, b.data, p, np, 10001, &r)) != GDX_OK)
    snprintf(err, errlen, "reading %s's rows failed: %s", t->table, gdx_db_error(c));
  else if (rc)
    snprintf(err, errlen, "the chunk's bounds are not keys");
  gdx_buf_free(&b);
  if (rc)
    return rc;
  const json_t *prows = json_object_get(prov, "rows"), *pend = json_object_get(prov, "pending");
  size_t np_ = json_array_size(prows), nt = r.nrows, npend = json_array_size(pend);
  krow *P = calloc(np_ + 1, sizeof(krow)), *T = calloc(nt + 1, sizeof(krow)),
       *Q = calloc(npend + 1, sizeof(krow));
  json_t *tkeys = json_array();
  for (size_t i = 0; P && i < np_; i++) {
    const json_t *row = json_array_get(prows, i);
    P[i].key = join_key(row, t->nkey);
    const char *s = json_string_value(json_array_get(row, (size_t)t->nkey));
    snprintf(P[i].sum, sizeof(P[i].sum), "%s", s ? s : "");
    P[i].json = row;
    P[i].idx = i;
  }
  char *fix = calloc(np_ + 1, 1); /* provider rows to send again */
  for (size_t i = 0; T && i < nt; i++) {
    json_t *k = json_array();
    for (int x = 0; x < t->nkey; x++)
      json_array_append_new(k, json_string(gdx_db_get(&r, i, (size_t)x)));
    json_array_append_new(tkeys, k);
    T[i].key = join_key(k, t->nkey);
    gdx_db_row w = gdx_db_row_at(&r, i);
    gdx_rowsum_hex(gdx_db_u64(&w, (size_t)t->nkey), T[i].sum);
    T[i].json = k;
    if (w.rc && rc == GDX_OK)
      rc = gdx_db_row_fail(&w, t->table);
  }
  for (size_t i = 0; Q && i < npend; i++)
    Q[i].key = join_key(json_array_get(pend, i), t->nkey);
  gdx_db_result_free(&r);
  if (!P || !T || !Q || !fix) {
    free(P), free(T), free(Q), free(fix);
    json_decref(tkeys);
    return GDX_ENOMEM;
  }
  if (rc) {
    snprintf(err, errlen, "a row hash of %s is not a number", t->table);
    krows_free(P, np_);
    krows_free(T, nt);
    krows_free(Q, npend);
    free(fix);
    json_decref(tkeys);
    return rc;
  }
  qsort(P, np_, sizeof(krow), krow_cmp);
  qsort(T, nt, sizeof(krow), krow_cmp);
  qsort(Q, npend, sizeof(krow), krow_cmp);
  size_t i = 0, k = 0;
  while (i < np_ || k < nt) {
    int cmp = i == np_ ? 1 : k == nt ? -1 : strcmp(P[i].key, T[k].key);
    const krow *x = cmp <= 0 ? &P[i] : &T[k];
    const char *what = cmp < 0 ? "missing" : cmp > 0 ? "extra"
                       : strcmp(P[i].sum, T[k].sum) != 0 ? "different" : NULL;
    if (what && in_set(Q, npend, x->key)) {
      d->in_flight++; /* changed after the position: the next batches carry it */
    } else if (what) {
      json_t *key = json_array();
      for (int c2 = 0; c2 < t->nkey; c2++)
        json_array_append(key, json_array_get(x->json, (size_t)c2));
      sample(d, key, what);
      if (cmp > 0) {
        d->extra++;
        json_array_append(d->extra_keys, key);
      } else {
        cmp < 0 ? d->missing++ : d->different++;
        json_array_append(d->repair_keys, key);
        fix[P[i].idx] = 1;
      }
      json_decref(key);
    }
    if (cmp <= 0)
      i++;
    if (cmp >= 0)
      k++;
  }
  /* runs of rows to send again, as key ranges in the provider's order:
   * (the key before the run, the run's last key] */
  for (size_t x = 0; x < np_; x++) {
    if (!fix[x] || (x > 0 && fix[x - 1]))
      continue;
    size_t end = x;
    while (end + 1 < np_ && fix[end + 1])
      end++;
    json_t *after = x == 0 ? json_deep_copy(json_object_get(chunk, "after")) : json_array();
    json_t *last = json_array();
    for (int c2 = 0; c2 < t->nkey; c2++) {
      if (x > 0)
        json_array_append(after, json_array_get(json_array_get(prows, x - 1), (size_t)c2));
      json_array_append(last, json_array_get(json_array_get(prows, end), (size_t)c2));
    }
    json_array_append_new(d->ranges, json_pack("{s:o, s:o}", "after",
                                               after ? after : json_null(), "last", last));
  }
  free(fix);
  krows_free(P, np_);
  krows_free(T, nt);
  krows_free(Q, npend);
  json_decref(tkeys);
  return GDX_OK;
}

int gdx_table_apply_repair(gdx_db_conn *c, const gdx_table_apply_target *t, const json_t *chunk,
                           const json_t *page, const json_t *repair_keys, const json_t *extra_keys,
                     long long *repaired, char *err, size_t errlen) {
  size_t nr = json_array_size(repair_keys);
  krow *R = calloc(nr + 1, sizeof(krow));
  if (R == NULL)
    return GDX_ENOMEM;
  for (size_t i = 0; i < nr; i++)
    R[i].key = join_key(json_array_get(repair_keys, i), t->nkey);
  qsort(R, nr, sizeof(krow), krow_cmp);
  const json_t *rows = json_object_get(page, "rows");
  json_t *fixed = json_array();
  size_t i;
  const json_t *row;
  json_array_foreach(rows, i, row) {
    char *k = join_key(row, t->nkey);
    if (in_set(R, nr, k))
      json_array_append(fixed, (json_t *)row);
    free(k);
  }
  krows_free(R, nr);
  int rc = gdx_db_begin(c);
  size_t n = json_array_size(fixed);
  for (size_t x = 0; !rc && x < n; x += UPSERT_ROWS) {
    json_t *part[UPSERT_ROWS];
    size_t m = n - x < UPSERT_ROWS ? n - x : UPSERT_ROWS;
    for (size_t y = 0; y < m; y++)
      part[y] = json_array_get(fixed, x + y);
    rc = upsert(c, t, part, m, err, errlen);
  }
  /* rows the provider does not have (unless it has them again by now) */
  long long deleted = 0;
  const json_t *key;
  json_array_foreach(extra_keys, i, key) {
    if (rc)
      break;
    char *k = join_key(key, t->nkey);
    int back = 0;
    size_t y;
    const json_t *pr;
    json_array_foreach(rows, y, pr) {
      char *pk = join_key(pr, t->nkey);
      back |= strcmp(pk, k) == 0;
      free(pk);
    }
    free(k);
    if (!back) {
      rc = delete_key(c, t, key, err, errlen);
      deleted++;
    }
  }
  if (!rc) {
    json_t *batch = json_pack("{s:O}", "rows", fixed);
    size_t cnt = 0;
    char hex[17];
    uint64_t sum = gdx_rowsum_batch(batch, &cnt);
    gdx_rowsum_hex(sum, hex);
    json_object_set_new(batch, "count", json_integer((json_int_t)cnt));
    json_object_set_new(batch, "checksum", json_string(hex));
    char *from = json_dumps(json_object_get(chunk, "after"), JSON_COMPACT | JSON_ENCODE_ANY);
    char *to = json_dumps(json_object_get(chunk, "last"), JSON_COMPACT | JSON_ENCODE_ANY);
    rc = ledger(c, t, "repair", from ? from : "null", to ? to : "null", batch, sum, cnt, err,
                errlen);
    free(from);
    free(to);
    json_decref(batch);
  }
  *repaired = (long long)n + deleted;
  json_decref(fixed);
  return finish(c, rc);
}
