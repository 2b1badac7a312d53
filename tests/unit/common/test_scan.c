/* common/scan.c: libclamav with a locally made signature for the EICAR
 * test file (its MD5, as ClamAV's .hdb format has it) - the EICAR file is
 * found, a clean file passes, a missing file is an error and never clean,
 * and a signature folder with nothing in it is refused. The EICAR string
 * is put together at run time, so no scanner trips over this source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "scan.h"

static char dir[256];

static void write_file(const char *path, const char *data, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  fclose(f);
}

static void eicar(char *out) {
  strcpy(out, "X5O!P%@AP[4\\PZX54(P^)7CC)7}$");
  strcat(out, "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
}

static void scans(void **state) {
  (void)state;
  char e[80], db[300], path[300], line[200];
  eicar(e);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_Digest(e, strlen(e), md, &mdlen, EVP_md5(), NULL);
  char hex[33];
  for (unsigned i = 0; i < mdlen; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  snprintf(db, sizeof(db), "%s/sigs", dir);
  assert_int_equal(mkdir(db, 0700), 0);
  int len = snprintf(line, sizeof(line), "%s:%zu:Gdx.Test.EICAR\n", hex, strlen(e));
  snprintf(path, sizeof(path), "%s/gdx-test.hdb", db);
  write_file(path, line, (size_t)len);

  gdx_scanner *s = NULL;
  unsigned sigs = 0;
  char err[300] = "", name[200] = "";
  if (gdx_scanner_new(db, &s, &sigs, err, sizeof(err)) != GDX_OK)
    fail_msg("%s", err);
  assert_int_equal(sigs, 1);
  snprintf(path, sizeof(path), "%s/eicar.txt", dir);
  write_file(path, e, strlen(e));
  assert_int_equal(gdx_scanner_scan(s, path, name, sizeof(name), err, sizeof(err)),
                   GDX_SCAN_INFECTED);
  assert_non_null(strstr(name, "Gdx.Test.EICAR"));
  snprintf(path, sizeof(path), "%s/clean.csv", dir);
  write_file(path, "统一社会信用代码,企业名称\n", strlen("统一社会信用代码,企业名称\n"));
  assert_int_equal(gdx_scanner_scan(s, path, name, sizeof(name), err, sizeof(err)),
                   GDX_SCAN_CLEAN);
  snprintf(path, sizeof(path), "%s/missing.doc", dir);
  assert_true(gdx_scanner_scan(s, path, name, sizeof(name), err, sizeof(err)) < 0);
  assert_non_null(strstr(err, "missing.doc"));
  gdx_scanner_free(s);

  /* a folder without signatures is a configuration error, not a scanner
   * that finds nothing */
  snprintf(db, sizeof(db), "%s/empty", dir);
  assert_int_equal(mkdir(db, 0700), 0);
  assert_int_equal(gdx_scanner_new(db, &s, &sigs, err, sizeof(err)), GDX_ECONFIG);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/gdx-test-scan-%d", (int)getpid());
  return mkdir(dir, 0700);
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(scans)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
