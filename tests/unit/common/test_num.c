/* Checked numbers (common/num.h) and typed row getters (common/db.h), as
 * tables of inputs and what each must give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <string.h>

#include "db.h"
#include "error.h"
#include "num.h"

static const struct {
  const char *text;
  long long min, max;
  int rc;
  long long value;
} parse_cases[] = {
    {"0", 0, 10, GDX_OK, 0},
    {"7", 0, 10, GDX_OK, 7},
    {"007", 0, 10, GDX_OK, 7},
    {"10", 0, 10, GDX_OK, 10},
    {"11", 0, 10, GDX_EINVAL, 0},
    {"-1", 0, 10, GDX_EINVAL, 0},
    {"-1", -5, 10, GDX_OK, -1},
    {"", 0, 10, GDX_EINVAL, 0},
    {"-", -5, 10, GDX_EINVAL, 0},
    {"+1", 0, 10, GDX_EINVAL, 0},
    {" 1", 0, 10, GDX_EINVAL, 0},
    {"1 ", 0, 10, GDX_EINVAL, 0},
    {"12abc", 0, 100, GDX_EINVAL, 0},
    {"0x10", 0, 100, GDX_EINVAL, 0},
    {"1e3", 0, 10000, GDX_EINVAL, 0},
    {"9223372036854775807", 0, LLONG_MAX, GDX_OK, LLONG_MAX},
    {"9223372036854775808", 0, LLONG_MAX, GDX_EINVAL, 0},
    {"-9223372036854775808", LLONG_MIN, 0, GDX_OK, LLONG_MIN},
    {"-9223372036854775809", LLONG_MIN, 0, GDX_EINVAL, 0},
    {"99999999999999999999999", 0, LLONG_MAX, GDX_EINVAL, 0},
};

static void parse_table(void **state) {
  for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
    long long v = 4242;
    int rc = gdx_num_parse(parse_cases[i].text, parse_cases[i].min, parse_cases[i].max, &v);
    if (rc != parse_cases[i].rc)
      fail_msg("\"%s\": rc %d, expected %d", parse_cases[i].text, rc, parse_cases[i].rc);
    assert_int_equal(v, rc == GDX_OK ? parse_cases[i].value : 4242); /* untouched on failure */
  }
  long long v;
  assert_int_equal(gdx_num_parse(NULL, 0, 1, &v), GDX_EINVAL);
}

static void parse_counted_bytes(void **state) {
  long long v = 0;
  assert_int_equal(gdx_num_parse_n("123456", 3, 0, 1000, &v), GDX_OK);
  assert_int_equal(v, 123);
  assert_int_equal(gdx_num_parse_n("12\0" "3", 4, 0, 1000, &v), GDX_EINVAL); /* a NUL inside */
  assert_int_equal(gdx_num_parse_n("5", 0, 0, 10, &v), GDX_EINVAL);
}

/* A result as gdx_db_query makes one: text cells, NULL for SQL NULL. */
static void fake_result(gdx_db_result *r, char **cells, size_t *lens, char **names, size_t ncols,
                        size_t nrows) {
  for (size_t i = 0; i < ncols * nrows; i++)
    lens[i] = cells[i] ? strlen(cells[i]) : 0;
  *r = (gdx_db_result){.nrows = nrows, .ncols = ncols, .cells = cells, .lens = lens,
                       .names = names};
}

static void row_getters(void **state) {
  char *cells[] = {"42", "1", NULL, "-3", "0"};
  char *names[] = {"id", "flag", "quota", "neg", "off"};
  size_t lens[5];
  gdx_db_result r;
  fake_result(&r, cells, lens, names, 5, 1);
  gdx_db_row w = gdx_db_row_at(&r, 0);
  assert_int_equal(gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX), 42);
  assert_int_equal(gdx_db_flag(&w, 1), 1);
  assert_int_equal(gdx_db_i64_or(&w, 2, 0, 100, -1), -1);
  assert_int_equal(gdx_db_i64(&w, 3, -10, 10), -3);
  assert_int_equal(gdx_db_flag(&w, 4), 0);
  assert_int_equal(w.rc, GDX_OK);
  assert_int_equal(w.bad_col, -1);
}

/* Unsigned 64-bit values (row hashes): every value up to 2^64 - 1, no
 * sign, nothing else. */
static void parse_u64_table(void **state) {
  static const struct {
    const char *text;
    int rc;
    uint64_t value;
  } cases[] = {
      {"0", GDX_OK, 0},
      {"18446744073709551615", GDX_OK, UINT64_MAX},
      {"9223372036854775808", GDX_OK, 9223372036854775808ULL},
      {"18446744073709551616", GDX_EINVAL, 0},
      {"99999999999999999999", GDX_EINVAL, 0},
      {"", GDX_EINVAL, 0},
      {"-1", GDX_EINVAL, 0},
      {"+1", GDX_EINVAL, 0},
      {"12abc", GDX_EINVAL, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint64_t v = 0;
    assert_int_equal(gdx_num_parse_u64(cases[i].text, strlen(cases[i].text), &v), cases[i].rc);
    if (cases[i].rc == GDX_OK)
      assert_true(v == cases[i].value);
  }
  char *cells[] = {"18446744073709551615", NULL, "x"};
  char *names[] = {"sum", "none", "bad"};
  size_t lens[3];
  gdx_db_result r;
  fake_result(&r, cells, lens, names, 3, 1);
  gdx_db_row w = gdx_db_row_at(&r, 0);
  assert_true(gdx_db_u64(&w, 0) == UINT64_MAX);
  assert_int_equal(w.rc, GDX_OK);
  assert_true(gdx_db_u64(&w, 1) == 0); /* NULL is not a hash */
  assert_int_equal(w.bad_col, 1);
  w = gdx_db_row_at(&r, 0);
  gdx_db_u64(&w, 2);
  assert_int_equal(w.bad_col, 2);
}

static void row_failures_stick(void **state) {
  char *cells[] = {"42", "abc", NULL, "7", "2"};
  char *names[] = {"id", "text", "null", "big", "flag"};
  size_t lens[5];
  gdx_db_result r;
  fake_result(&r, cells, lens, names, 5, 1);
  static const struct {
    size_t col;
    long long min, max;
    int flag;
  } bad[] = {{1, 0, 10, 0}, {2, 0, 10, 0}, {3, 0, 5, 0}, {4, 0, 0, 1}, {9, 0, 10, 0}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    gdx_db_row w = gdx_db_row_at(&r, 0);
    if (bad[i].flag)
      gdx_db_flag(&w, bad[i].col);
    else
      gdx_db_i64(&w, bad[i].col, bad[i].min, bad[i].max);
    assert_int_equal(w.rc, GDX_EINVAL);
    assert_int_equal(w.bad_col, (int)bad[i].col);
    /* later good columns do not clear it, and give min */
    assert_int_equal(gdx_db_i64(&w, 0, 5, 100), 5);
    assert_int_equal(w.bad_col, (int)bad[i].col);
    assert_int_equal(gdx_db_row_fail(&w, "test"), GDX_EDB);
  }
  gdx_db_row past = gdx_db_row_at(&r, 1); /* no such row */
  assert_int_equal(past.rc, GDX_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_table),
      cmocka_unit_test(parse_counted_bytes),
      cmocka_unit_test(row_getters),
      cmocka_unit_test(row_failures_stick),
      cmocka_unit_test(parse_u64_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
