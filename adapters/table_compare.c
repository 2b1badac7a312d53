/* Comparison (比对) against a table resource (table_int.h): a consumer
 * POSTs records (key and items); each is answered match, mismatch with the
 * fields that differ, or not_found, and none of the provider's values
 * leaves the node. The body is capped (COMPARE_MAX_BYTES, records) and
 * checked before one query answers the whole batch.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "num.h"
#include "relay.h"
#include "table_int.h"

#define COMPARE_MAX_RECORDS 1000
#define COMPARE_MAX_BYTES (1 << 20)

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
int gdx__table_compare_work(read_job *j, gdx_db_conn *c, json_t *out) {
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
    return gdx__table_read_fail(j, c, "compare");
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
  gdx__table_sel_sql(j, &b);
  gdx_buf_appendf(&b, " FROM `%s` WHERE ", j->r->table);
  gdx__table_keys_in_sql(s, padded, &b);
  gdx_db_result res;
  int rc = gdx_db_query(c, b.data, p, padded * (size_t)s->npk, padded, &res);
  gdx_buf_free(&b);
  free(p);
  if (rc) {
    free(texts);
    return gdx__table_read_fail(j, c, "compare");
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
  gdx__table_answer(j, GDX_OK);
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
      int c = gdx__table_col_index(s, name), ok = 0;
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
  if (gdx__table_submit_read(j) != GDX_OK)
    return compare_fail(j, 503, "busy", "the front-end database queue is full");
}

/* POST /r/<name>/compare?items=…: the broker sets items to the
 * authorization's and X-Gdx-Quota-Left to what its quota has left. */
void gdx__table_serve_compare(table_res *r, gdx_http_req *req, read_job *j) {
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
    gdx__table_read_job_free(j);
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
  gdx_http_req_on(req, compare_body, compare_complete, gdx__table_read_abort);
}
