/* common/digest.c: SHA-256 and SM3, streamed in pieces or over a file,
 * against the standards' test vectors ("abc", and SM3's 64-byte example
 * from GB/T 32905-2016), both in one pass; misuse refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "error.h"

static void vectors(void **state) {
  (void)state;
  char sha[65], sm3[65];
  gdx_digest *d;
  assert_int_equal(gdx_digest_new(GDX_DIGEST_SHA256 | GDX_DIGEST_SM3, &d), GDX_OK);
  assert_int_equal(gdx_digest_update(d, "a", 1), GDX_OK);
  assert_int_equal(gdx_digest_update(d, "bc", 2), GDX_OK);
  assert_int_equal(gdx_digest_final(d, sha, sm3), GDX_OK);
  assert_string_equal(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert_string_equal(sm3, "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
  assert_int_equal(gdx_digest_update(d, "x", 1), GDX_EINVAL); /* finished */
  assert_int_equal(gdx_digest_final(d, sha, sm3), GDX_EINVAL);
  gdx_digest_free(d);

  char block[65] = "";
  for (int i = 0; i < 16; i++)
    strcat(block, "abcd");
  assert_int_equal(gdx_digest_new(GDX_DIGEST_SM3, &d), GDX_OK);
  assert_int_equal(gdx_digest_update(d, block, 64), GDX_OK);
  assert_int_equal(gdx_digest_final(d, sha, sm3), GDX_OK);
  assert_string_equal(sha, "");
  assert_string_equal(sm3, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732");
  gdx_digest_free(d);
  assert_int_equal(gdx_digest_new(0, &d), GDX_EINVAL);
}

static void files(void **state) {
  (void)state;
  char path[64], sha[65], sm3[65];
  snprintf(path, sizeof(path), "/tmp/gdx-test-digest-%d", (int)getpid());
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  static char big[200000]; /* more than one read */
  for (size_t i = 0; i < sizeof(big); i++)
    big[i] = (char)(i * 7);
  fwrite(big, 1, sizeof(big), f);
  fclose(f);
  char sha_mem[65], sm3_mem[65];
  gdx_digest *d;
  assert_int_equal(gdx_digest_new(GDX_DIGEST_SHA256 | GDX_DIGEST_SM3, &d), GDX_OK);
  assert_int_equal(gdx_digest_update(d, big, sizeof(big)), GDX_OK);
  assert_int_equal(gdx_digest_final(d, sha_mem, sm3_mem), GDX_OK);
  gdx_digest_free(d);
  assert_int_equal(gdx_digest_file(path, GDX_DIGEST_SHA256 | GDX_DIGEST_SM3, sha, sm3), GDX_OK);
  assert_string_equal(sha, sha_mem);
  assert_string_equal(sm3, sm3_mem);
  unlink(path);
  assert_int_equal(gdx_digest_file(path, GDX_DIGEST_SHA256, sha, sm3), GDX_EIO);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(vectors), cmocka_unit_test(files)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
