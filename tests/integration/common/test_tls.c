/* TLS on the server through memory BIOs, with mutual TLS: a client with a
 * certificate from the platform CA is let in and its subject reaches the
 * handler; no certificate, or one from another CA, is refused at the
 * handshake and counted. libcurl is the client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static char dir[128];
static char path_buf[8][256];

static const char *path(int slot, const char *name) {
  snprintf(path_buf[slot], sizeof(path_buf[slot]), "%s/%s", dir, name);
  return path_buf[slot];
}

typedef th_body body;

/* GET url with an optional client cert; returns the HTTP status or -curlcode. */
static long get(const char *url, const char *cert, const char *key, body *b) {
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CAINFO, path(7, "ca.crt"));
  if (cert) {
    curl_easy_setopt(e, CURLOPT_SSLCERT, cert);
    curl_easy_setopt(e, CURLOPT_SSLKEY, key);
  }
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, th_collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
  if (getenv("GDX_TEST_VERBOSE"))
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
  CURLcode rc = curl_easy_perform(e);
  long code = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(e);
  return rc == CURLE_OK ? code : -(long)rc;
}

static void run_mode(gdx_tls_verify mode) {
  test_server ts;
  gdx_http_limits l;
  gdx_http_limits_default(&l);
  gdx_tls_options tls = {path(0, "server.crt"), path(1, "server.key"), path(2, "ca.crt"), mode};
  ts_start(&ts, &l, &tls);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/peer", ts.tls_port);

  body b = {0};
  long st = get(url, path(3, "client.crt"), path(4, "client.key"), &b);
  assert_int_equal(st, 200);
  assert_string_equal(b.data, "CN=node-1,O=91110000MA01ABCD2X");
  free(b.data);

  b = (body){0};
  st = get(url, NULL, NULL, &b);
  if (mode == GDX_TLS_VERIFY_REQUIRE) {
    assert_true(st < 0); /* handshake refused */
  } else {
    assert_int_equal(st, 200);
    assert_string_equal(b.data, "none");
  }
  free(b.data);

  b = (body){0};
  st = get(url, path(5, "rogue.crt"), path(6, "rogue.key"), &b);
  assert_true(st < 0); /* a certificate from another CA never gets in */
  free(b.data);

  /* the plain listener still serves, and failures are counted */
  assert_int_equal(tc_hello(ts.port), 200);
  gdx_http_stats s;
  ts_stats(&ts, &s);
  assert_int_equal(s.tls_handshake_failures, mode == GDX_TLS_VERIFY_REQUIRE ? 2 : 1);
  ts_stop(&ts);
}

static void mutual_tls_required(void **state) { run_mode(GDX_TLS_VERIFY_REQUIRE); }
static void client_cert_optional(void **state) { run_mode(GDX_TLS_VERIFY_OPTIONAL); }

static void tls_large_bodies_both_ways(void **state) {
  test_server ts;
  gdx_http_limits l;
  gdx_http_limits_default(&l);
  l.max_body_bytes = 32u << 20;
  gdx_tls_options tls = {path(0, "server.crt"), path(1, "server.key"), path(2, "ca.crt"),
                         GDX_TLS_VERIFY_REQUIRE};
  ts_start(&ts, &l, &tls);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/stream?n=20000000", ts.tls_port);
  body b = {0};
  assert_int_equal(get(url, path(3, "client.crt"), path(4, "client.key"), &b), 200);
  assert_int_equal(b.len, 20000000);
  for (size_t i = 0; i < b.len; i++)
    if (b.data[i] != th_pattern(i))
      fail_msg("byte %zu differs", i);
  free(b.data);

  size_t n = 10u << 20;
  char *up = malloc(n);
  for (size_t i = 0; i < n; i++)
    up[i] = th_pattern(i);
  char want[65];
  th_sha256_hex(up, n, want);
  CURL *e = curl_easy_init();
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/echo-hash", ts.tls_port);
  b = (body){0};
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CAINFO, path(7, "ca.crt"));
  curl_easy_setopt(e, CURLOPT_SSLCERT, path(3, "client.crt"));
  curl_easy_setopt(e, CURLOPT_SSLKEY, path(4, "client.key"));
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, up);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, th_collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  assert_int_equal(curl_easy_perform(e), CURLE_OK);
  curl_easy_cleanup(e);
  assert_non_null(strstr(b.data, want));
  free(b.data);
  free(up);
  ts_stop(&ts);
}

static int setup(void **state) {
  snprintf(dir, sizeof(dir), "/tmp/gdx-test-certs-%d", (int)getpid());
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "%s/tests/harness/make-certs.sh %s >/dev/null",
           getenv("GDX_SOURCE_DIR") ? getenv("GDX_SOURCE_DIR") : ".", dir);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  return system(cmd);
}

static int teardown(void **state) {
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  return system(cmd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mutual_tls_required),
      cmocka_unit_test(client_cert_optional),
      cmocka_unit_test(tls_large_bodies_both_ways),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
