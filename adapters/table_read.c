/* The body of a table read (table_int.h), made on a worker of the
 * front-end pool: snapshot pages written straight as JSON text, change
 * batches from the change log up to the first gap that may still fill (or,
 * with capture = "timestamp", from the change-time column), compressed with
 * zstd for readers that accept it; and the SQL pieces every read uses.
 * Identifiers come from the inspected schema (checked, backquoted); values
 * are bound parameters.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "error.h"
#include "num.h"
#include "rowsum.h"
#include "table_int.h"

void gdx__table_sel_sql(const read_job *j, gdx_buf *b) {
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
void gdx__table_keys_in_sql(const tschema *s, size_t n, gdx_buf *b) {
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
size_t gdx__table_range_sql(const read_job *j, gdx_buf *b, gdx_db_param *p) {
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

void gdx__table_order_sql(const tschema *s, gdx_buf *b) {
  gdx_buf_appends(b, " ORDER BY ");
  for (int k = 0; k < s->npk; k++)
    gdx_buf_appendf(b, "%s`%s`", k ? ", " : "", s->cols[s->pk[k]].name);
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

int gdx__table_read_fail(read_job *j, gdx_db_conn *c, const char *what) {
  j->status = 503;
  snprintf(j->code, sizeof(j->code), "table_unavailable");
  snprintf(j->msg, sizeof(j->msg), "%s: %s", what, gdx_db_error(c));
  return GDX_OK;
}

/* ---- capture = "timestamp" ---- */

/* The moment before which every change to the table is committed, in
 * microseconds since the epoch, cut down to the column's fractional digits
 * so that no row stamped later in the same unit of time is passed.
 * Positions are such moments: a read after P serves the rows stamped at or
 * after P and before the bound. A row is stamped with its statement's start
 * and committed later, so the bound is the earliest of
 * - the start of every statement still running (PROCESSLIST: read afresh
 *   each time, it shows a statement from before its stamp is taken);
 * - the start of every open transaction InnoDB lists (INNODB_TRX: InnoDB
 *   refreshes that list only when nobody read it for 100 ms, so it may miss
 *   a transaction that is newer than its last refresh);
 * - now less GRACE_MS, for a transaction whose statements are done and that
 *   commits within the grace but is not listed yet.
 * What none of them sees: a transaction newer than the list's last refresh
 * that stays open longer than the grace after its last statement. Its rows
 * can be passed; reconciliation repairs them (capture = "triggers" has no
 * such gap: table_gaps.c). */
static int ts_bound(read_job *j, gdx_db_conn *c, long long *bound) {
  gdx_db_result t = {0};
  gdx_db_param grace = GDX_DB_P_INT(GRACE_MS * 1000LL);
  int rc = gdx_db_query(c,
                        "SELECT LEAST(CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED) - ?, "
                        "CAST(UNIX_TIMESTAMP(IFNULL((SELECT MIN(trx_started) FROM "
                        "information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> "
                        "CONNECTION_ID()), NOW(6))) * 1000000 AS SIGNED), "
                        "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED) - IFNULL((SELECT "
                        "CEIL(MAX(TIME_MS) * 1000) FROM information_schema.PROCESSLIST WHERE "
                        "ID <> CONNECTION_ID() AND COMMAND IN ('Query', 'Execute')), 0))",
                        &grace, 1, 1, &t);
  if (rc)
    return rc;
  gdx_db_row w = gdx_db_row_at(&t, 0);
  long long b = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX);
  gdx_db_result_free(&t);
  if (w.rc)
    return GDX_EDB;
  /* "timestamp(3)": the column keeps 3 fractional digits ("timestamp": none) */
  const char *type = j->s.cols[gdx__table_col_index(&j->s, j->r->ts_col)].type;
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
    return gdx__table_read_fail(j, c, "reading the time failed (the node's user needs PROCESS)");
  json_t *changes = json_array();
  long long pos = after > bound ? after : bound;
  int more = 0;
  if (after < bound) {
    gdx_buf sql;
    gdx_buf_init(&sql, 64 * 1024);
    gdx_buf_appends(&sql, "SELECT ");
    gdx__table_sel_sql(j, &sql);
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
      gdx__table_sel_sql(j, &sql);
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
      return gdx__table_read_fail(j, c, rc == GDX_ETOOBIG
                                            ? "more than 100000 rows share one timestamp"
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
      return gdx__table_read_fail(j, c, "a change time is not a number");
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
      return gdx__table_read_fail(j, c, "reading the change-log position failed");
    gdx_db_row w = gdx_db_row_at(&pos, 0);
    position = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX);
    gdx_db_result_free(&pos);
    if (w.rc)
      return gdx__table_read_fail(j, c, "the change-log position is not a number");
  } else if (!j->has_after) { /* timestamp capture: replayed from the moment before */
    if (ts_bound(j, c, &position) != GDX_OK)
      return gdx__table_read_fail(j, c, "reading the time failed (the node's user needs PROCESS)");
  }
  gdx_buf sql;
  gdx_buf_init(&sql, 64 * 1024);
  gdx_db_param params[2 * KEY_MAX + 1];
  gdx_buf_appends(&sql, "SELECT ");
  gdx__table_sel_sql(j, &sql);
  gdx_buf_appendf(&sql, " FROM `%s`", j->r->table);
  size_t np = gdx__table_range_sql(j, &sql, params);
  gdx__table_order_sql(s, &sql);
  gdx_buf_appends(&sql, " LIMIT ?");
  params[np++] = GDX_DB_P_INT(j->limit);
  gdx_db_result res = {0};
  int rc = gdx_db_query(c, sql.data, params, np, (size_t)j->limit, &res);
  gdx_buf_free(&sql);
  if (rc)
    return gdx__table_read_fail(j, c, "reading the table failed");
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
    return gdx__table_read_fail(j, c, "the page is too large");
  }
  j->body = gdx_buf_detach(&b, &j->blen);
  return GDX_OK;
}

/* A change-log key (JSON numbers or strings) as text values, like rows. */
json_t *gdx__table_text_key(const json_t *key) {
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
  gdx__table_sel_sql(j, &sql);
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
    return gdx__table_read_fail(j, c, "reading the change log's purge position failed");
  if (j->after_seq < floor) {
    j->status = 410;
    snprintf(j->code, sizeof(j->code), "position_purged");
    snprintf(j->msg, sizeof(j->msg), "the change log before %lld is purged (asked after %lld): "
             "load a new snapshot", floor, j->after_seq);
    return GDX_OK;
  }
  gdx_db_param p[] = {GDX_DB_P_INT(j->after_seq), GDX_DB_P_INT(j->limit)};
  gdx_db_result log = {0};
  if (gdx_db_query(c, "SELECT seq, tbl, op, pk FROM gdx_changelog WHERE seq > ? "
                      "ORDER BY seq LIMIT ?",
                   p, 2, (size_t)j->limit, &log))
    return gdx__table_read_fail(j, c, "reading the change log failed");
  uint64_t read_at = uv_hrtime();
  /* the entries up to the first gap that may still fill (table_gaps.c) */
  long long *seqs = malloc((log.nrows ? log.nrows : 1) * sizeof(*seqs));
  size_t upto = 0;
  int rc = seqs ? GDX_OK : GDX_ENOMEM;
  for (size_t i = 0; rc == GDX_OK && i < log.nrows; i++)
    rc = (seqs[i] = log_seq(&log, i)) < 0 ? GDX_EINVAL : GDX_OK;
  if (rc == GDX_OK)
    rc = gdx__table_gaps_upto(j->r, c, j->after_seq, seqs, log.nrows, read_at, &upto);
  long long pos = rc == GDX_OK && upto ? seqs[upto - 1] : j->after_seq;
  free(seqs);
  if (rc != GDX_OK) {
    gdx_db_result_free(&log);
    return gdx__table_read_fail(j, c, rc == GDX_EINVAL ? "a change-log seq is not a number"
                                                       : "checking a gap in the change log "
                                                         "failed");
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
    return gdx__table_read_fail(j, c, "out of memory");
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
      keys[npick] = gdx__table_text_key(key);
      pick[npick++] = i;
    } /* else written before a key change: reconciliation covers it */
    json_decref(key);
  }
  json_decref(seen);
  /* the rows of the keys not deleted, a few queries for the whole batch */
  json_t *found = json_object(); /* text key -> row */
  rc = GDX_OK;
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
    gdx__table_sel_sql(j, &sql);
    gdx_buf_appendf(&sql, " FROM `%s` WHERE ", j->r->table);
    gdx__table_keys_in_sql(s, padded, &sql);
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
    return gdx__table_read_fail(j, c, "reading the changed rows failed");
  }
  j->empty = pos == j->after_seq;
  json_object_set_new(out, "changes", changes);
  json_object_set_new(out, "position", json_integer(pos));
  json_object_set_new(out, "more", json_boolean(upto == (size_t)j->limit));
  gdx_db_result_free(&log);
  return GDX_OK;
}

#define ZSTD_MIN 4096 /* smaller bodies go as they are */

/* Pages and change batches of some size travel compressed. */
int gdx__table_compressible(const read_job *j) {
  return j->body && j->blen >= ZSTD_MIN && (j->op == OP_SNAPSHOT || j->op == OP_CHANGES);
}

/* The body once, compressed (or left as it is when that fails). */
void gdx__table_compress_body(read_job *j) {
  if (j->zbody == NULL && gdx_zstd_compress(j->body, j->blen, &j->zbody, &j->zlen) != GDX_OK)
    j->zbody = NULL;
}

static void read_body(gdx_db_conn *c, read_job *j);

int gdx__table_read_work(gdx_db_conn *c, void *arg) {
  read_job *j = arg;
  j->status = 200;
  read_body(c, j);
  if (j->status == 200 && j->want_zstd && gdx__table_compressible(j))
    gdx__table_compress_body(j); /* here in the worker, not on the loop */
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
    gdx__table_checksums_work(j, c, out);
  else if (j->op == OP_ROWSUMS)
    gdx__table_rowsums_work(j, c, out);
  else
    gdx__table_compare_work(j, c, out);
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
