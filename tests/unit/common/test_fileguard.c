/* common/fileguard.c: file names that may travel, and the allowed formats
 * (R-CAT-6) checked by content as well as by extension - real files from
 * tests/fixtures/files (Chinese names included), an executable named .doc,
 * an image named .csv, a zip named .docx. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileguard.h"

static gdx_fileguard *G;

static size_t load(const char *path, char *buf, size_t n) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot read %s", path);
  size_t got = fread(buf, 1, n, f);
  fclose(f);
  return got;
}

static const char *fixture(const char *name) {
  static char path[1024];
  snprintf(path, sizeof(path), "%s/tests/fixtures/files/%s", getenv("GDX_SOURCE_DIR"), name);
  return path;
}

/* Checks the fixture `file` under the name `as`: GDX_OK and the format, or
 * the refusal's text into why. */
static int check(const char *file, const char *as, const char **format, char *why, size_t n) {
  static char head[65536];
  size_t len = load(file[0] == '/' ? file : fixture(file), head, sizeof(head));
  return gdx_fileguard_check(G, as, head, len, format, why, n);
}

static void names(void **state) {
  (void)state;
  char why[200];
  static const char *const good[] = {"申报材料.doc", "2026/三季度/统计表.xls", "a b.txt",
                                     "报告(终稿).docx", ".hidden.csv"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    if (gdx_file_name_check(good[i], why, sizeof(why)) != GDX_OK)
      fail_msg("%s refused: %s", good[i], why);
  static const char *const bad[] = {
      "", "/etc/passwd", "../secret.txt", "a/../../b.txt", "a//b.txt", "./a.txt", "a/./b.txt",
      "dir/", "a\\b.txt", "bad\nname.txt", "tab\tname.txt", "del\x7f.txt",
      "\xff\xfe.txt",       /* not UTF-8 */
      "\xc0\xae\xc0\xae/x", /* overlong "..": not UTF-8 */
      "\xed\xa0\x80.txt",   /* a surrogate */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (gdx_file_name_check(bad[i], why, sizeof(why)) != GDX_EINVAL)
      fail_msg("bad name %zu was allowed", i);
  char longpart[300];
  memset(longpart, 'a', 256);
  strcpy(longpart + 256, ".txt");
  assert_int_equal(gdx_file_name_check(longpart, why, sizeof(why)), GDX_EINVAL);
}

static void allowed_formats(void **state) {
  (void)state;
  static const struct {
    const char *file, *format;
  } ok[] = {
      {"申报材料.doc", "doc"}, {"统计表.xls", "xls"},   {"汇报.ppt", "ppt"},
      {"通知.wps", "wps"},     {"台账.et", "et"},       {"企业名录.docx", "docx"},
      {"企业名单.csv", "csv"}, {"说明.txt", "txt"},     {"page.html", "html"},
      {"data.xml", "xml"},
  };
  char why[300];
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    const char *format = NULL;
    why[0] = '\0';
    if (check(ok[i].file, ok[i].file, &format, why, sizeof(why)) != GDX_OK)
      fail_msg("%s refused: %s", ok[i].file, why);
    assert_string_equal(format, ok[i].format);
  }
  /* the extension in any case, in a folder */
  const char *format = NULL;
  assert_int_equal(check("统计表.xls", "报表/统计表.XLS", &format, why, sizeof(why)), GDX_OK);
  assert_string_equal(format, "xls");
}

static void disguised_and_unknown(void **state) {
  (void)state;
  char why[300];
  const char *format;
  /* an executable named .doc */
  assert_int_equal(check("/bin/true", "合同.doc", &format, why, sizeof(why)), GDX_EINVAL);
  assert_non_null(strstr(why, "executable"));
  assert_non_null(strstr(why, "not a .doc file"));
  /* an image named .csv, a zip named .docx, a spreadsheet named .docx */
  assert_int_equal(check("pixel.png", "名单.csv", &format, why, sizeof(why)), GDX_EINVAL);
  assert_non_null(strstr(why, "image/png"));
  assert_int_equal(check("not-a-document.zip", "报告.docx", &format, why, sizeof(why)),
                   GDX_EINVAL);
  assert_non_null(strstr(why, "zip"));
  assert_int_equal(check("统计表.xls", "报告.docx", &format, why, sizeof(why)), GDX_EINVAL);
  /* an HTML page is not a .txt; text is not a .doc */
  assert_int_equal(check("page.html", "说明.txt", &format, why, sizeof(why)), GDX_EINVAL);
  assert_int_equal(check("说明.txt", "说明.doc", &format, why, sizeof(why)), GDX_EINVAL);
  /* formats that are not allowed, and no extension */
  assert_int_equal(check("pixel.png", "pixel.png", &format, why, sizeof(why)), GDX_EINVAL);
  assert_non_null(strstr(why, ".png is not an allowed format"));
  assert_int_equal(check("说明.txt", "README", &format, why, sizeof(why)), GDX_EINVAL);
  assert_int_equal(check("说明.txt", "archive.tar.gz", &format, why, sizeof(why)), GDX_EINVAL);
}

static int setup(void **state) {
  (void)state;
  char err[200];
  return gdx_fileguard_new(&G, err, sizeof(err)) == GDX_OK ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  gdx_fileguard_free(G);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names),
      cmocka_unit_test(allowed_formats),
      cmocka_unit_test(disguised_and_unknown),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
