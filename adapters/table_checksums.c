/* Reconciliation's reads of a table resource (table_int.h): chunk
 * checksums (row count and XOR of row hashes per N keys) and a chunk's rows
 * one by one with the keys changed since a position; the hashes are
 * computed in SQL (common/rowsum.h).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rowsum.h"
#include "table_int.h"

static void rowhash_sql(const read_job *j, gdx_buf *b) {
  const char *names[MAX_COLS];
  for (int i = 0; i < j->nsel; i++)
    names[i] = j->s.cols[j->sel[i]].name;
  gdx_rowsum_sql(b, names, j->nsel);
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
  size_t np = gdx__table_range_sql(j, sql, params);
  gdx__table_order_sql(s, sql);
  return np;
}

/* Chunks of `chunk` rows in key order after `after`: each with the key
 * range (after, last], its row count and the XOR of its row hashes. The
 * last chunk of the table has no upper bound ("last": null), so rows a
 * consumer has beyond the provider's last key fall into it. */
int gdx__table_checksums_work(read_job *j, gdx_db_conn *c, json_t *out) {
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
    return gdx__table_read_fail(j, c, "reading the table's checksums failed");
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
    return gdx__table_read_fail(j, c, "a row hash is not a number");
  }
  json_object_set_new(out, "chunks", chunks);
  json_object_set_new(out, "done", json_boolean(done));
  gdx_db_result_free(&res);
  return GDX_OK;
}

/* Per row of a range: its key and hash; and, given position=P, the keys
 * changed after P (their difference is in flight, not a discrepancy). */
int gdx__table_rowsums_work(read_job *j, gdx_db_conn *c, json_t *out) {
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
    return gdx__table_read_fail(j, c, "reading the rows' checksums failed");
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
      return gdx__table_read_fail(j, c, "a row hash is not a number");
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
      return gdx__table_read_fail(j, c, "reading the change log failed");
    json_t *pending = json_array();
    for (size_t i = 0; i < res.nrows && i < 10000; i++) {
      json_t *key = json_loads(gdx_db_get(&res, i, 0), 0, NULL);
      if (json_is_array(key))
        json_array_append_new(pending, gdx__table_text_key(key));
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
      return gdx__table_read_fail(j, c, "reading the changed keys failed");
    json_t *pending = json_array();
    for (size_t i = 0; i < res.nrows && i < 10000; i++)
      json_array_append_new(pending, key_of(&res, i, s->npk));
    json_object_set_new(out, "pending", pending);
    json_object_set_new(out, "pending_overflow", json_boolean(res.nrows > 10000));
    gdx_db_result_free(&res);
  }
  return GDX_OK;
}
