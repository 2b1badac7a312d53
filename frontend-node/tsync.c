#include "tsync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

#define UPSERT_ROWS 200 /* rows per INSERT; 200 x 256 columns stays under 65535 params */

static const char state_ddl[] =
    "CREATE TABLE IF NOT EXISTS gdx_sync_state ("
    " subscription VARCHAR(64) NOT NULL PRIMARY KEY,"
    " target VARCHAR(64) NOT NULL,"
    " snapshot_done TINYINT NOT NULL DEFAULT 0,"
    " snapshot_after TEXT NOT NULL,"
    " position BIGINT NOT NULL DEFAULT 0,"
    " rows_applied BIGINT NOT NULL DEFAULT 0,"
    " updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

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

int gdx_tsync_prepare(gdx_db_conn *c, const gdx_tsync_target *t, const json_t *schema, char *err,
                      size_t errlen) {
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
  int rc = gdx_db_exec_ddl(c, state_ddl);
  if (!rc)
    rc = gdx_db_exec_ddl(c, b.data);
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

static int load(gdx_db_conn *c, const char *sub, gdx_tsync_state *out, int lock) {
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
    out->snapshot_done = atoi(gdx_db_get(&r, 0, 0));
    snprintf(out->snapshot_after, sizeof(out->snapshot_after), "%s", gdx_db_get(&r, 0, 1));
    out->position = atoll(gdx_db_get(&r, 0, 2));
    out->rows_applied = atoll(gdx_db_get(&r, 0, 3));
  }
  gdx_db_result_free(&r);
  return rc;
}

int gdx_tsync_load(gdx_db_conn *c, const char *sub, gdx_tsync_state *out) {
  int rc = load(c, sub, out, 0);
  if (rc == GDX_EDB && gdx_db_errno(c) == 1146) /* no gdx_sync_state yet */
    rc = GDX_ENOTFOUND;
  return rc;
}

/* rows[from, from+n) as one INSERT … ON DUPLICATE KEY UPDATE. */
static int upsert(gdx_db_conn *c, const gdx_tsync_target *t, json_t *const *rows, size_t n,
                  char *err, size_t errlen) {
  gdx_buf b;
  gdx_buf_init(&b, 1024 * 1024);
  gdx_buf_appendf(&b, "INSERT %sINTO `%s` (", t->ncols == t->nkey ? "IGNORE " : "", t->table);
  for (int i = 0; i < t->ncols; i++)
    gdx_buf_appendf(&b, "%s`%s`", i ? ", " : "", t->cols[i]);
  gdx_buf_appends(&b, ") VALUES ");
  gdx_db_param *p = calloc(n * (size_t)t->ncols, sizeof(*p));
  if (p == NULL) {
    gdx_buf_free(&b);
    return GDX_ENOMEM;
  }
  int rc = GDX_OK;
  for (size_t r = 0; r < n && !rc; r++) {
    if (!json_is_array(rows[r]) || json_array_size(rows[r]) != (size_t)t->ncols) {
      snprintf(err, errlen, "a row has %zu values, the target %d columns",
               json_array_size(rows[r]), t->ncols);
      rc = GDX_EINVAL;
      break;
    }
    gdx_buf_appends(&b, r ? ", (" : "(");
    for (int i = 0; i < t->ncols; i++) {
      json_t *v = json_array_get(rows[r], (size_t)i);
      if (!json_is_string(v) && !(json_is_null(v) && i >= t->nkey)) {
        snprintf(err, errlen, "column %s: a value is neither text nor (outside the key) null",
                 t->cols[i]);
        rc = GDX_EINVAL;
        break;
      }
      p[r * (size_t)t->ncols + (size_t)i] =
          json_is_null(v) ? GDX_DB_P_NULL
                          : GDX_DB_P_BIN(json_string_value(v), json_string_length(v));
      gdx_buf_appends(&b, i ? ", ?" : "?");
    }
    gdx_buf_appends(&b, ")");
  }
  if (!rc && t->ncols > t->nkey) {
    gdx_buf_appends(&b, " ON DUPLICATE KEY UPDATE ");
    for (int i = t->nkey; i < t->ncols; i++)
      gdx_buf_appendf(&b, "%s`%s` = VALUES(`%s`)", i > t->nkey ? ", " : "", t->cols[i],
                      t->cols[i]);
  }
  if (!rc && (rc = gdx_db_exec(c, b.data, p, n * (size_t)t->ncols, NULL, NULL)) != GDX_OK)
    snprintf(err, errlen, "writing rows into %s failed: %s", t->table, gdx_db_error(c));
  free(p);
  gdx_buf_free(&b);
  return rc;
}

static int delete_key(gdx_db_conn *c, const gdx_tsync_target *t, const json_t *key, char *err,
                      size_t errlen) {
  if (!json_is_array(key) || json_array_size(key) != (size_t)t->nkey) {
    snprintf(err, errlen, "a delete carries %zu key values, the key has %d",
             json_array_size(key), t->nkey);
    return GDX_EINVAL;
  }
  gdx_buf b;
  gdx_buf_init(&b, 64 * 1024);
  gdx_db_param p[16];
  gdx_buf_appendf(&b, "DELETE FROM `%s` WHERE ", t->table);
  for (int i = 0; i < t->nkey && i < 16; i++) {
    json_t *v = json_array_get(key, (size_t)i);
    if (!json_is_string(v)) {
      gdx_buf_free(&b);
      snprintf(err, errlen, "a key value is not text");
      return GDX_EINVAL;
    }
    p[i] = GDX_DB_P_BIN(json_string_value(v), json_string_length(v));
    gdx_buf_appendf(&b, "%s`%s` = ?", i ? " AND " : "", t->cols[i]);
  }
  int rc = gdx_db_exec(c, b.data, p, (size_t)t->nkey, NULL, NULL);
  if (rc)
    snprintf(err, errlen, "deleting from %s failed: %s", t->table, gdx_db_error(c));
  gdx_buf_free(&b);
  return rc;
}

static int finish(gdx_db_conn *c, int rc) {
  if (rc == GDX_OK)
    return gdx_db_commit(c);
  gdx_db_rollback(c);
  return rc;
}

int gdx_tsync_apply_page(gdx_db_conn *c, const gdx_tsync_target *t, const char *after,
                         const json_t *page, char *err, size_t errlen) {
  json_t *rows = json_object_get(page, "rows");
  if (!json_is_array(rows)) {
    snprintf(err, errlen, "the page has no rows");
    return GDX_EINVAL;
  }
  gdx_tsync_state st;
  int rc = gdx_db_begin(c);
  if (!rc)
    rc = load(c, t->sub, &st, 1);
  if (!rc && (st.snapshot_done || strcmp(st.snapshot_after, after) != 0)) {
    snprintf(err, errlen, "the page after %s is not the next one (state: %s%s)",
             after[0] ? after : "the start", st.snapshot_done ? "snapshot done" : "after ",
             st.snapshot_done ? "" : (st.snapshot_after[0] ? st.snapshot_after : "the start"));
    rc = GDX_ECONFLICT;
  }
  size_t n = json_array_size(rows);
  for (size_t i = 0; !rc && i < n; i += UPSERT_ROWS) {
    json_t *chunk[UPSERT_ROWS];
    size_t m = n - i < UPSERT_ROWS ? n - i : UPSERT_ROWS;
    for (size_t k = 0; k < m; k++)
      chunk[k] = json_array_get(rows, i + k);
    rc = upsert(c, t, chunk, m, err, errlen);
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
    free(next);
    if (rc)
      snprintf(err, errlen, "storing the position failed: %s", gdx_db_error(c));
  }
  return finish(c, rc);
}

int gdx_tsync_apply_changes(gdx_db_conn *c, const gdx_tsync_target *t, long long after,
                            const json_t *batch, char *err, size_t errlen) {
  json_t *changes = json_object_get(batch, "changes");
  json_t *pos = json_object_get(batch, "position");
  if (!json_is_array(changes) || !json_is_integer(pos) || json_integer_value(pos) < after) {
    snprintf(err, errlen, "the batch has no changes or no position");
    return GDX_EINVAL;
  }
  gdx_tsync_state st;
  int rc = gdx_db_begin(c);
  if (!rc)
    rc = load(c, t->sub, &st, 1);
  if (!rc && (!st.snapshot_done || st.position != after)) {
    snprintf(err, errlen, "the changes after %lld are not the next ones (state: %s %lld)", after,
             st.snapshot_done ? "at" : "snapshot not done,", st.position);
    rc = GDX_ECONFLICT;
  }
  size_t n = json_array_size(changes);
  for (size_t i = 0; !rc && i < n;) {
    json_t *ch = json_array_get(changes, i);
    const char *op = json_string_value(json_object_get(ch, "op"));
    if (op && strcmp(op, "D") == 0) {
      rc = delete_key(c, t, json_object_get(ch, "key"), err, errlen);
      i++;
      continue;
    }
    if (op == NULL || strcmp(op, "U") != 0) {
      snprintf(err, errlen, "change %zu: op must be U or D", i);
      rc = GDX_EINVAL;
      break;
    }
    /* a run of upserts in one statement */
    json_t *chunk[UPSERT_ROWS];
    size_t m = 0;
    while (i < n && m < UPSERT_ROWS) {
      json_t *x = json_array_get(changes, i);
      const char *o = json_string_value(json_object_get(x, "op"));
      if (o == NULL || strcmp(o, "U") != 0)
        break;
      chunk[m++] = json_object_get(x, "row");
      i++;
    }
    rc = upsert(c, t, chunk, m, err, errlen);
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
  }
  return finish(c, rc);
}
