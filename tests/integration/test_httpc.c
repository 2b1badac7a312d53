/* The libcurl multi client on a libuv loop, against the gdx server over real
 * sockets: connection reuse, streamed bodies both ways with pausing,
 * timeouts, refused connections and mutual TLS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "harness.h"
#include "httpc.h"

static test_server ts;
static uv_loop_t loop;
static gdx_httpc *client;

typedef struct {
  int done, status;
  long http;
  gdx_buf body;
  uint64_t received;
  int bad_byte;
  size_t pause_every, since_pause;
  gdx_httpc_req *req;
  uv_timer_t resume;
  int pauses;
  /* streamed upload */
  const char *up;
  size_t up_len, up_off;
} result;

static void on_done(gdx_httpc_req *r, int status, long http, void *ud) {
  result *res = ud;
  res->done = 1;
  res->status = status;
  res->http = http;
}

static int on_data(gdx_httpc_req *r, const char *d, size_t n, void *ud) {
  result *res = ud;
  gdx_buf_append(&res->body, d, n);
  return 0;
}

static void do_resume(uv_timer_t *t) {
  result *res = t->data;
  gdx_httpc_resume(res->req);
}

static int on_pattern(gdx_httpc_req *r, const char *d, size_t n, void *ud) {
  result *res = ud;
  if (res->pause_every && res->since_pause >= res->pause_every) {
    /* pause without consuming: curl hands the same bytes over again */
    res->since_pause = 0;
    res->req = r;
    res->pauses++;
    uv_timer_start(&res->resume, do_resume, 5, 0);
    return 1;
  }
  for (size_t i = 0; i < n; i++)
    if (d[i] != th_pattern(res->received + i))
      res->bad_byte = 1;
  res->received += n;
  res->since_pause += n;
  return 0;
}

static void run_until(result *res) {
  uint64_t end = th_now_ms() + 30000;
  while (!res->done && th_now_ms() < end)
    uv_run(&loop, UV_RUN_ONCE);
  assert_true(res->done);
}

static void request(const char *method, const char *path, int port, result *res,
                    gdx_httpc_opts *extra) {
  char url[256];
  snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", extra && extra->ca_file ? "https" : "http",
           port, path);
  gdx_httpc_opts o = extra ? *extra : (gdx_httpc_opts){0};
  o.method = method;
  o.url = url;
  o.on_done = on_done;
  if (o.on_data == NULL)
    o.on_data = on_data;
  o.data = res;
  gdx_buf_init(&res->body, 64u << 20);
  assert_int_equal(gdx_httpc_request(client, &o, NULL), GDX_OK);
  run_until(res);
}

static void get_reuses_the_connection(void **state) {
  long before = gdx_httpc_connects(client);
  for (int i = 0; i < 5; i++) {
    result res = {0};
    request("GET", "/hello", ts.port, &res, NULL);
    assert_int_equal(res.status, GDX_OK);
    assert_int_equal(res.http, 200);
    assert_string_equal(res.body.data, "hello");
    gdx_buf_free(&res.body);
  }
  assert_int_equal(gdx_httpc_connects(client) - before, 1);
}

static void streamed_response_with_pauses(void **state) {
  result res = {0};
  res.pause_every = 1u << 20;
  uv_timer_init(&loop, &res.resume);
  res.resume.data = &res;
  gdx_httpc_opts o = {.on_data = on_pattern};
  request("GET", "/stream?n=8000000", ts.port, &res, &o);
  assert_int_equal(res.http, 200);
  assert_int_equal(res.received, 8000000);
  assert_false(res.bad_byte);
  assert_true(res.pauses >= 7);
  uv_close((uv_handle_t *)&res.resume, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
}

static void post_buffer(void **state) {
  size_t n = 1u << 20;
  char *b = malloc(n), want[65];
  for (size_t i = 0; i < n; i++)
    b[i] = th_pattern(i);
  th_sha256_hex(b, n, want);
  result res = {0};
  gdx_httpc_opts o = {.body = b, .body_len = n};
  request("POST", "/echo-hash", ts.port, &res, &o);
  assert_int_equal(res.http, 200);
  assert_non_null(strstr(res.body.data, want));
  gdx_buf_free(&res.body);
  free(b);
}

static size_t read_up(char *buf, size_t len, void *ud) {
  result *res = ud;
  size_t n = res->up_len - res->up_off < len ? res->up_len - res->up_off : len;
  memcpy(buf, res->up + res->up_off, n);
  res->up_off += n;
  return n;
}

static void post_streamed_chunked(void **state) {
  size_t n = 3u << 20;
  char *b = malloc(n), want[65];
  for (size_t i = 0; i < n; i++)
    b[i] = th_pattern(i * 3);
  th_sha256_hex(b, n, want);
  result res = {0};
  res.up = b;
  res.up_len = n;
  const char *hdrs[] = {"Transfer-Encoding: chunked", NULL};
  gdx_httpc_opts o = {.read_body = read_up, .stream_body_len = -1, .headers = hdrs};
  request("POST", "/echo-hash", ts.port, &res, &o);
  assert_int_equal(res.http, 200);
  assert_non_null(strstr(res.body.data, want));
  gdx_buf_free(&res.body);
  free(b);
}

static void timeout_and_refused(void **state) {
  result res = {0};
  gdx_httpc_opts o = {.timeout_ms = 200};
  request("GET", "/slow?ms=3000", ts.port, &res, &o);
  assert_int_equal(res.status, GDX_ETIMEDOUT);
  gdx_buf_free(&res.body);

  result res2 = {0};
  request("GET", "/hello", th_free_port(), &res2, NULL);
  assert_int_equal(res2.status, GDX_EIO);
  assert_int_equal(res2.http, 0);
  gdx_buf_free(&res2.body);
}

static char dir[128], ca[200], cert[200], key[200], rcert[200], rkey[200];

static void mutual_tls_client(void **state) {
  result res = {0};
  gdx_httpc_opts o = {.ca_file = ca, .cert_file = cert, .key_file = key};
  request("GET", "/peer", ts.tls_port, &res, &o);
  assert_int_equal(res.status, GDX_OK);
  assert_string_equal(res.body.data, "CN=node-1,O=91110000MA01ABCD2X");
  gdx_buf_free(&res.body);

  result bad = {0};
  gdx_httpc_opts ob = {.ca_file = ca, .cert_file = rcert, .key_file = rkey};
  request("GET", "/peer", ts.tls_port, &bad, &ob);
  assert_int_not_equal(bad.status, GDX_OK);
  assert_int_equal(bad.http, 0);
  gdx_buf_free(&bad.body);
}

static int setup(void **state) {
  snprintf(dir, sizeof(dir), "/tmp/gdx-test-httpc-%d", (int)getpid());
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "%s/tests/harness/make-certs.sh %s >/dev/null",
           getenv("GDX_SOURCE_DIR") ? getenv("GDX_SOURCE_DIR") : ".", dir);
  if (system(cmd) != 0)
    return -1;
  snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
  snprintf(cert, sizeof(cert), "%s/client.crt", dir);
  snprintf(key, sizeof(key), "%s/client.key", dir);
  snprintf(rcert, sizeof(rcert), "%s/rogue.crt", dir);
  snprintf(rkey, sizeof(rkey), "%s/rogue.key", dir);
  static char scert[200], skey[200];
  snprintf(scert, sizeof(scert), "%s/server.crt", dir);
  snprintf(skey, sizeof(skey), "%s/server.key", dir);
  gdx_tls_options tls = {scert, skey, ca, GDX_TLS_VERIFY_REQUIRE};
  gdx_http_limits l;
  gdx_http_limits_default(&l);
  l.max_body_bytes = 16u << 20;
  ts_start(&ts, &l, &tls);
  uv_loop_init(&loop);
  return gdx_httpc_new(&loop, &client);
}

static int teardown(void **state) {
  gdx_httpc_close(client);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  ts_stop(&ts);
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  return system(cmd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(get_reuses_the_connection),
      cmocka_unit_test(streamed_response_with_pauses),
      cmocka_unit_test(post_buffer),
      cmocka_unit_test(post_streamed_chunked),
      cmocka_unit_test(timeout_and_refused),
      cmocka_unit_test(mutual_tls_client),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
