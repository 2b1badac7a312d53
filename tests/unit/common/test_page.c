/* common/page.c: snapshot pages parsed straight from their JSON text - the
 * values unescaped in place (escapes, \u with surrogate pairs, nulls), the
 * other members through jansson, the checksum equal to the one computed
 * over the same page as a jansson tree; and every malformed page refused
 * with a reason, never half-parsed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "error.h"
#include "page.h"
#include "rowsum.h"

static int parse(const char *text, gdx_page *p, char *err, size_t n) {
  return gdx_page_parse(p, strdup(text), strlen(text), err, n);
}

static void values_and_members(void **state) {
  (void)state;
  static const char text[] =
      " {\"columns\":[\"id\",\"name\",\"note\"],\"key_columns\":1,\"position\":42,"
      "\"rows\":[[\"1\",\"企业\\\"甲\\\"\",null],[\"2\",\"tab\\there\\nline\\\\ \\/\","
      "\"\\u00e9\\u4e2d\\ud83d\\ude00\"]],\"last\":[\"2\"],\"done\":true,\"count\":2,"
      "\"checksum\":\"0123456789abcdef\"} ";
  gdx_page p;
  char err[200] = "";
  assert_int_equal(parse(text, &p, err, sizeof(err)), GDX_OK);
  assert_int_equal(p.nrows, 2);
  assert_int_equal(p.ncols, 3);
  assert_string_equal(p.v[1], "企业\"甲\"");
  assert_int_equal(p.len[1], strlen("企业\"甲\""));
  assert_null(p.v[2]);
  assert_string_equal(p.v[4], "tab\there\nline\\ /");
  assert_string_equal(p.v[5], "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"); /* é 中 😀 */
  assert_int_equal(json_integer_value(json_object_get(p.meta, "position")), 42);
  assert_true(json_is_true(json_object_get(p.meta, "done")));
  assert_string_equal(json_string_value(json_array_get(json_object_get(p.meta, "last"), 0)),
                      "2");
  assert_null(json_object_get(p.meta, "rows"));
  /* the same checksum as over the page as a tree */
  json_t *tree = json_loads(text, 0, NULL);
  assert_non_null(tree);
  assert_true(gdx_page_rowsum(&p) == gdx_rowsum_batch(tree, NULL));
  json_decref(tree);
  gdx_page_free(&p);

  assert_int_equal(parse("{\"rows\":[],\"done\":true,\"last\":null}", &p, err, sizeof(err)),
                   GDX_OK);
  assert_int_equal(p.nrows, 0);
  assert_true(json_is_null(json_object_get(p.meta, "last")));
  gdx_page_free(&p);
}

static void change_batches(void **state) {
  (void)state;
  static const char text[] =
      "{\"columns\":[\"id\",\"name\"],\"changes\":[{\"seq\":5,\"op\":\"U\",\"row\":[\"1\","
      "\"甲\"]},{\"op\":\"D\",\"seq\":6,\"key\":[\"2\"]},{\"seq\":7,\"op\":\"U\",\"row\":"
      "[\"3\",null]}],\"position\":7,\"more\":false,\"count\":3,\"checksum\":\"x\"}";
  gdx_page p;
  char err[200] = "";
  assert_int_equal(parse(text, &p, err, sizeof(err)), GDX_OK);
  assert_int_equal(p.nrows, 0);
  assert_int_equal(p.nchanges, 3);
  assert_memory_equal(p.ops, "UDU", 3);
  assert_int_equal(p.width[0], 2);
  assert_int_equal(p.width[1], 1);
  assert_string_equal(p.v[p.first[0] + 1], "甲");
  assert_string_equal(p.v[p.first[1]], "2");
  assert_null(p.v[p.first[2] + 1]);
  assert_int_equal(json_integer_value(json_object_get(p.meta, "position")), 7);
  json_t *tree = json_loads(text, 0, NULL);
  assert_true(gdx_page_rowsum(&p) == gdx_rowsum_batch(tree, NULL));
  json_decref(tree);
  gdx_page_free(&p);
  static const char *const bad[] = {
      "{\"changes\":[{\"op\":\"X\",\"row\":[\"1\"]}]}",
      "{\"changes\":[{\"op\":\"U\",\"key\":[\"1\"]}]}",
      "{\"changes\":[{\"op\":\"D\",\"row\":[\"1\"]}]}",
      "{\"changes\":[{\"row\":[\"1\"]}]}",
      "{\"changes\":[[\"1\"]]}",
      "{\"changes\":[],\"rows\":[]}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (parse(bad[i], &p, err, sizeof(err)) != GDX_EINVAL)
      fail_msg("batch %zu was not refused: %s", i, bad[i]);
}

static void malformed_pages(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      "[]",
      "{}",
      "{\"done\":true}",                              /* no rows, no changes */
      "{\"rows\":[[\"1\",\"a\"],[\"2\"]]}",           /* rows of different lengths */
      "{\"rows\":[[1,\"a\"]]}",                       /* a number as a value */
      "{\"rows\":[[\"1\",{\"x\":1}]]}",               /* an object as a value */
      "{\"rows\":[[]]}",                              /* an empty row */
      "{\"rows\":[[\"1\"]],\"x\":tru}",               /* a member that is not JSON */
      "{\"rows\":[[\"1\"]]} x",                       /* text after the object */
      "{\"rows\":[[\"1\"]],\"rows\":[[\"2\"]]}",      /* rows twice */
      "{\"rows\":[[\"1\"]]",                          /* no end */
      "{\"rows\":[[\"unterminated]]}",
      "{\"rows\":[[\"\\ud800\"]]}",                   /* a lone surrogate */
      "{\"rows\":[[\"\\u0000\"]]}",                   /* NUL */
      "{\"rows\":[[\"\\x\"]]}",                       /* a bad escape */
      "{\"rows\":[[\"a\nb\"]]}",                      /* a raw control character */
      "{\"rows\":[[\"1\"]],\"d\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
      "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
      "]]]]]]]}", /* too deep */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    gdx_page p;
    char err[200] = "";
    if (parse(bad[i], &p, err, sizeof(err)) != GDX_EINVAL)
      fail_msg("page %zu was not refused: %s", i, bad[i]);
    assert_non_null(strstr(err, "not valid"));
    assert_null(p.text); /* freed, nothing left */
  }
}

/* common/compress.c: what pages travel in between the nodes. */
static void zstd_between_hops(void **state) {
  (void)state;
  assert_true(gdx_accepts_zstd("zstd"));
  assert_true(gdx_accepts_zstd("gzip, zstd"));
  assert_true(gdx_accepts_zstd("zstd;q=0.5, gzip"));
  assert_false(gdx_accepts_zstd("zstd;q=0"));
  assert_false(gdx_accepts_zstd("gzip, deflate"));
  assert_false(gdx_accepts_zstd("xzstd"));
  assert_false(gdx_accepts_zstd(NULL));
  char in[20000];
  for (size_t i = 0; i < sizeof(in); i++)
    in[i] = (char)('a' + i % 7);
  char *z, *back;
  size_t zn, bn;
  assert_int_equal(gdx_zstd_compress(in, sizeof(in), &z, &zn), GDX_OK);
  assert_true(zn < sizeof(in) / 10);
  assert_int_equal(gdx_zstd_decompress(z, zn, sizeof(in), &back, &bn), GDX_OK);
  assert_int_equal(bn, sizeof(in));
  assert_memory_equal(back, in, sizeof(in));
  assert_int_equal(back[bn], '\0');
  free(back);
  /* the cap holds before anything is allocated; garbage is refused */
  assert_int_equal(gdx_zstd_decompress(z, zn, sizeof(in) - 1, &back, &bn), GDX_ETOOBIG);
  assert_int_equal(gdx_zstd_decompress("not zstd", 8, 1 << 20, &back, &bn), GDX_EINVAL);
  z[zn - 1] ^= 0x55;
  assert_int_equal(gdx_zstd_decompress(z, zn - 3, 1 << 20, &back, &bn), GDX_EINVAL);
  free(z);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(zstd_between_hops),
      cmocka_unit_test(values_and_members),
      cmocka_unit_test(change_batches),
      cmocka_unit_test(malformed_pages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
