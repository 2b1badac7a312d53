/* gdx_buf: caps, growth, JSON escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

static void append_within_cap(void **state) {
  gdx_buf b;
  gdx_buf_init(&b, 10);
  assert_int_equal(gdx_buf_append(&b, "hello", 5), GDX_OK);
  assert_int_equal(gdx_buf_appendf(&b, "%d", 1234), GDX_OK);
  assert_string_equal(b.data, "hello1234");
  assert_int_equal(b.len, 9);
  gdx_buf_free(&b);
}

static void append_past_cap_fails_and_keeps_contents(void **state) {
  gdx_buf b;
  gdx_buf_init(&b, 8);
  assert_int_equal(gdx_buf_appends(&b, "12345678"), GDX_OK);
  assert_int_equal(gdx_buf_appends(&b, "9"), GDX_ETOOBIG);
  assert_int_equal(gdx_buf_appendf(&b, "%s", "x"), GDX_ETOOBIG);
  assert_string_equal(b.data, "12345678");
  gdx_buf_free(&b);
}

static void long_formatted_append(void **state) {
  gdx_buf b;
  gdx_buf_init(&b, 100000);
  char big[5000];
  memset(big, 'z', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  assert_int_equal(gdx_buf_appendf(&b, "<%s>", big), GDX_OK);
  assert_int_equal(b.len, 5001);
  assert_int_equal(b.data[0], '<');
  assert_int_equal(b.data[5000], '>');
  gdx_buf_free(&b);
}

static void json_escaping(void **state) {
  gdx_buf b;
  gdx_buf_init(&b, 1000);
  const char in[] = "a\"b\\c\nd\x01\x7f 中文";
  assert_int_equal(gdx_buf_append_json_str(&b, in, sizeof(in) - 1), GDX_OK);
  assert_string_equal(b.data, "a\\\"b\\\\c\\nd\\u0001\\u007f 中文");
  gdx_buf_free(&b);
}

static void detach_hands_over_memory(void **state) {
  gdx_buf b;
  gdx_buf_init(&b, 100);
  gdx_buf_appends(&b, "abc");
  size_t len;
  char *p = gdx_buf_detach(&b, &len);
  assert_int_equal(len, 3);
  assert_string_equal(p, "abc");
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  free(p);
}

static void str_copy_cuts_and_terminates(void **state) {
  char d[4];
  gdx_str_copy(d, sizeof(d), "ab");
  assert_string_equal(d, "ab");
  gdx_str_copy(d, sizeof(d), "abcdef");
  assert_string_equal(d, "abc");
  gdx_str_copy(d, 1, "x");
  assert_string_equal(d, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(str_copy_cuts_and_terminates),
      cmocka_unit_test(append_within_cap),
      cmocka_unit_test(append_past_cap_fails_and_keeps_contents),
      cmocka_unit_test(long_formatted_append),
      cmocka_unit_test(json_escaping),
      cmocka_unit_test(detach_hands_over_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
