#include "rowsum.h"

#include <stdio.h>

#include "buf.h"

#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= FNV_PRIME;
  }
  return h;
}

static uint64_t byte(uint64_t h, unsigned char b) { return fnv(h, &b, 1); }

uint64_t gdx_rowsum_value(uint64_t h, const char *v, size_t n) {
  if (v) {
    h = byte(h, 0x01);
    h = fnv(h, v, n);
  } else {
    h = byte(h, 0x02);
  }
  return byte(h, 0x1f);
}

uint64_t gdx_rowsum_end_row(uint64_t h) { return byte(h, 0x1e); }

uint64_t gdx_rowsum_op(uint64_t h, char op) { return byte(h, (unsigned char)op); }

uint64_t gdx_rowsum_row(uint64_t h, const json_t *row) {
  size_t i;
  const json_t *v;
  json_array_foreach(row, i, v) h = gdx_rowsum_value(
      h, json_is_string(v) ? json_string_value(v) : NULL, json_string_length(v));
  return gdx_rowsum_end_row(h);
}

uint64_t gdx_rowsum_batch(const json_t *batch, size_t *nrows) {
  uint64_t h = GDX_ROWSUM_INIT;
  const json_t *rows = json_object_get(batch, "rows");
  size_t i, n = 0;
  const json_t *x;
  if (json_is_array(rows)) {
    json_array_foreach(rows, i, x) h = gdx_rowsum_row(h, x);
    n = json_array_size(rows);
  }
  const json_t *changes = json_object_get(batch, "changes");
  json_array_foreach(changes, i, x) {
    const char *op = json_string_value(json_object_get(x, "op"));
    h = gdx_rowsum_op(h, op ? op[0] : 0);
    const json_t *r = json_object_get(x, "row");
    h = gdx_rowsum_row(h, r ? r : json_object_get(x, "key"));
    n++;
  }
  if (nrows)
    *nrows = n;
  return h;
}

void gdx_rowsum_hex(uint64_t h, char out[17]) {
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

int gdx_rowsum_sql(struct gdx_buf *b, const char *const *cols, int n) {
  int rc = gdx_buf_appends(b, "CAST(CONV(LEFT(MD5(CONVERT(CONCAT_WS('#'");
  for (int i = 0; !rc && i < n; i++)
    rc = gdx_buf_appendf(b, ", `%s`", cols[i]);
  if (!rc)
    rc = gdx_buf_appends(b, ", CONCAT(");
  for (int i = 0; !rc && i < n; i++)
    rc = gdx_buf_appendf(b, "%sISNULL(`%s`)", i ? ", " : "", cols[i]);
  if (!rc)
    rc = gdx_buf_appends(b, ")) USING utf8mb4)), 16), 16, 10) AS UNSIGNED)");
  return rc;
}
