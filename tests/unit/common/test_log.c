/* Logging: both formats, levels, and that input cannot forge log lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

static char path[64];

static size_t read_log(char *buf, size_t n) {
  FILE *f = fopen(path, "r");
  size_t got = fread(buf, 1, n - 1, f);
  fclose(f);
  buf[got] = '\0';
  return got;
}

static void json_lines_parse(void **state) {
  snprintf(path, sizeof(path), "/tmp/gdx-test-log-%d.log", (int)getpid());
  unlink(path);
  assert_int_equal(gdx_log_setup(GDX_LOG_INFO, GDX_LOG_JSON, path), GDX_OK);
  gdx_log(GDX_LOG_INFO, "http", "abc123", "user said \"%s\"", "hi\nthere");
  gdx_log_debug("http", "hidden %d", 1);
  char buf[4096];
  read_log(buf, sizeof(buf));
  assert_int_equal(strchr(buf, '\n') - buf + 1, (long)strlen(buf)); /* one line */
  json_error_t e;
  json_t *j = json_loads(buf, 0, &e);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
  assert_string_equal(json_string_value(json_object_get(j, "comp")), "http");
  assert_string_equal(json_string_value(json_object_get(j, "req")), "abc123");
  assert_string_equal(json_string_value(json_object_get(j, "msg")), "user said \"hi\nthere\"");
  json_decref(j);
  unlink(path);
}

static void human_format_one_line_per_event(void **state) {
  unlink(path);
  assert_int_equal(gdx_log_setup(GDX_LOG_WARN, GDX_LOG_HUMAN, path), GDX_OK);
  gdx_log_info("db", "below the level");
  gdx_log_warn("db", "forged\n2026-01-01T00:00:00.000Z ERROR fake line");
  char buf[4096];
  read_log(buf, sizeof(buf));
  assert_null(strstr(buf, "below the level"));
  assert_non_null(strstr(buf, "WARN  db     forged 2026"));
  assert_int_equal(strchr(buf, '\n') - buf + 1, (long)strlen(buf));
  unlink(path);
  gdx_log_setup(GDX_LOG_INFO, GDX_LOG_HUMAN, NULL);
}

static void parse_words(void **state) {
  gdx_log_level l;
  gdx_log_format f;
  assert_int_equal(gdx_log_level_parse("debug", &l), GDX_OK);
  assert_int_equal(l, GDX_LOG_DEBUG);
  assert_int_equal(gdx_log_level_parse("loud", &l), GDX_EINVAL);
  assert_int_equal(gdx_log_format_parse("json", &f), GDX_OK);
  assert_int_equal(gdx_log_format_parse("xml", &f), GDX_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(json_lines_parse),
      cmocka_unit_test(human_format_one_line_per_event),
      cmocka_unit_test(parse_words),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
