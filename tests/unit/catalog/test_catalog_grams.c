/* Search grams: CJK bigrams, lower-cased Latin trigrams, runs broken by
 * script changes and punctuation, duplicates dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "grams.h"

static const struct {
  const char *text, *grams; /* grams joined by '|' */
} cases[] = {
    {"市场主体", "市场|场主|主体"},
    {"Enterprise", "ent|nte|ter|erp|rpr|pri|ris|ise"},
    {"API接口", "api|接口"},
    {"数据，数据", "数据"},
    {"大 数", ""},
    {"ab", ""},
    {"a1b2", "a1b|1b2"},
    {"人", ""},
    {"𠀀𠀁", "𠀀𠀁"},
    {"", ""},
};

static void grams_table(void **state) {
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char g[64][GDX_GRAM_MAX], joined[1024] = "";
    size_t n = gdx_catalog_grams(cases[i].text, g, 64);
    for (size_t k = 0; k < n; k++) {
      size_t used = strlen(joined);
      snprintf(joined + used, sizeof(joined) - used, "%s%s", k ? "|" : "", g[k]);
    }
    if (strcmp(joined, cases[i].grams) != 0)
      fail_msg("\"%s\": got %s, expected %s", cases[i].text, joined, cases[i].grams);
  }
}

static void capped(void **state) {
  char g[3][GDX_GRAM_MAX];
  assert_int_equal(gdx_catalog_grams("abcdefghijk", g, 3), 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(grams_table), cmocka_unit_test(capped)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
