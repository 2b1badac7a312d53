/* Configuration: every error names the file, the line and the key; driven
 * from a table of (file text, expected error fragment). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "error.h"

typedef struct {
  long long port;
  char *host;
  int tls;
  char *mode;
  char *user;
} conf;

static const char *const modes[] = {"fast", "safe", NULL};
static const gdx_cfg_key keys[] = {
    {"net.port", GDX_CFG_INT, offsetof(conf, port), 0, 1, 65535, 8080, NULL, NULL, "port"},
    {"net.host", GDX_CFG_STR, offsetof(conf, host), 0, 0, 0, 0, "127.0.0.1", NULL, "host"},
    {"net.tls", GDX_CFG_BOOL, offsetof(conf, tls), 0, 0, 0, 0, NULL, NULL, "tls"},
    {"mode", GDX_CFG_STR, offsetof(conf, mode), 0, 0, 0, 0, "safe", modes, "mode"},
    {"db.user", GDX_CFG_STR, offsetof(conf, user), 1, 0, 0, 0, NULL, NULL, "user"},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char path[64];

static int load(const char *text, conf *c, char *err, size_t n) {
  snprintf(path, sizeof(path), "/tmp/gdx-test-config-%d.conf", (int)getpid());
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  memset(c, 0, sizeof(*c));
  int rc = gdx_config_load(path, keys, NKEYS, c, err, n);
  unlink(path);
  return rc;
}

static void valid_file_with_defaults(void **state) {
  conf c;
  char err[512] = "";
  assert_int_equal(load("# comment\nnet = { port = 9000; tls = true; };\ndb = { user = \"gdx\"; };\n",
                        &c, err, sizeof(err)),
                   GDX_OK);
  assert_int_equal(c.port, 9000);
  assert_int_equal(c.tls, 1);
  assert_string_equal(c.host, "127.0.0.1");
  assert_string_equal(c.mode, "safe");
  assert_string_equal(c.user, "gdx");
  gdx_config_free(keys, NKEYS, &c);
  assert_null(c.host);
}

static const struct {
  const char *text;
  const char *expect; /* fragments, '|' separated */
} bad[] = {
    {"db = { user = \"u\"; };\nnet = { prot = 1; };\n", ":2: net.prot: unknown key"},
    {"db = { user = \"u\"; };\nnet = { port = 70000; };\n",
     ":2: net.port: must be an integer from 1 to 65535 (got 70000)"},
    {"db = { user = \"u\"; };\nnet = { port = \"80\"; };\n", ":2: net.port: must be an integer"},
    {"db = { user = \"u\"; };\nnet = { tls = 1; };\n", ":2: net.tls: must be true or false"},
    {"db = { user = \"u\"; };\nmode = \"turbo\";\n",
     ":2: mode: must be one of fast, safe (got \"turbo\")"},
    {"net = { port = 1; };\n", "db.user: required key is missing"},
    {"db = { user = \"u\" };\nnet = { port = 1 \n", ": syntax error"},
    {"db = { user = \"u\"; };\nextra = { a = 1; };\n", ":2: extra: unknown key"},
};

static void bad_files_name_line_and_key(void **state) {
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    conf c;
    char err[512] = "";
    assert_int_equal(load(bad[i].text, &c, err, sizeof(err)), GDX_ECONFIG);
    if (strstr(err, bad[i].expect) == NULL || strstr(err, "gdx-test-config-") == NULL)
      fail_msg("case %zu: error \"%s\" lacks \"%s\" or the file name", i, err, bad[i].expect);
    assert_null(c.host); /* nothing left allocated */
  }
}

static void missing_file(void **state) {
  conf c;
  char err[512];
  assert_int_equal(gdx_config_load("/nonexistent/x.conf", keys, NKEYS, &c, err, sizeof(err)),
                   GDX_ECONFIG);
  assert_non_null(strstr(err, "/nonexistent/x.conf: cannot read the file"));
}

static void secret_file_must_be_private(void **state) {
  char p[64], err[256];
  snprintf(p, sizeof(p), "/tmp/gdx-test-secret-%d", (int)getpid());
  FILE *f = fopen(p, "w");
  fputs("s3cret\n", f);
  fclose(f);
  char *out = NULL;
  chmod(p, 0644);
  assert_int_equal(gdx_config_read_secret(p, &out, err, sizeof(err)), GDX_ECONFIG);
  assert_non_null(strstr(err, "chmod 600"));
  assert_null(strstr(err, "s3cret"));
  chmod(p, 0600);
  assert_int_equal(gdx_config_read_secret(p, &out, err, sizeof(err)), GDX_OK);
  assert_string_equal(out, "s3cret");
  free(out);
  unlink(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(valid_file_with_defaults),
      cmocka_unit_test(bad_files_name_line_and_key),
      cmocka_unit_test(missing_file),
      cmocka_unit_test(secret_file_must_be_private),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
