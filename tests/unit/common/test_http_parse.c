/* The request-parsing path without sockets (the path the fuzzer drives):
 * the same bytes fed whole or one at a time give the same responses;
 * pipelining, chunked bodies, HEAD, HTTP/1.0, request ids, 100-continue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "http.h"
#include "router.h"

static gdx_http_server *srv;
static gdx_router *router;
static uv_loop_t loop;

static void sink(const char *data, size_t len, void *ud) { gdx_buf_append(ud, data, len); }

static void h_echo(gdx_http_req *req, void *d);
static void echo_body(gdx_http_req *req, const char *data, size_t len) {
  gdx_buf_append(gdx_http_req_get_data(req), data, len);
}
static void echo_done(gdx_http_req *req) {
  gdx_buf *b = gdx_http_req_get_data(req);
  gdx_http_respond(req, 200, "text/plain", b->data ? b->data : "", b->len);
  gdx_buf_free(b);
  free(b);
}
static void echo_abort(gdx_http_req *req) {
  gdx_buf *b = gdx_http_req_get_data(req);
  gdx_buf_free(b);
  free(b);
}
static void h_echo(gdx_http_req *req, void *d) {
  gdx_buf *b = calloc(1, sizeof(*b));
  gdx_buf_init(b, 1 << 20);
  gdx_http_req_set_data(req, b);
  gdx_http_req_on(req, echo_body, echo_done, echo_abort);
}
static void h_path(gdx_http_req *req, void *d) {
  char out[512];
  int n = snprintf(out, sizeof(out), "%s %s ?%s id=%s", gdx_http_req_method(req),
                   gdx_http_req_path(req), gdx_http_req_query(req), gdx_http_req_id(req));
  gdx_http_respond(req, 200, "text/plain", out, (size_t)n);
}

static int setup(void **state) {
  uv_loop_init(&loop);
  gdx_router_new(&router);
  gdx_router_add(router, "POST", "/echo", h_echo, NULL);
  gdx_router_add(router, "*", "/p/*", h_path, NULL);
  gdx_http_server_options o = {.loop = &loop, .on_request = gdx_router_dispatch,
                               .data = router, .name = "unit"};
  gdx_http_limits_default(&o.limits);
  o.limits.max_body_bytes = 4096;
  return gdx_http_server_new(&o, &srv);
}

/* Feeds `in` in pieces of `step` bytes (0: whole) and returns the output. */
static char *run(const char *in, size_t len, size_t step) {
  gdx_buf *out = calloc(1, sizeof(*out));
  gdx_buf_init(out, 1 << 20);
  gdx_http_conn *c = gdx_http_test_conn_new(srv, sink, out);
  if (step == 0)
    step = len;
  for (size_t i = 0; i < len; i += step)
    gdx_http_test_conn_feed(c, in + i, len - i < step ? len - i : step);
  gdx_http_test_conn_free(c);
  char *s = out->data ? out->data : strdup("");
  free(out);
  return s;
}

/* Drops the Date header so outputs compare. */
static void strip_dates(char *s) {
  char *p;
  while ((p = strstr(s, "Date: ")) != NULL) {
    char *e = strstr(p, "\r\n");
    memmove(p, e + 2, strlen(e + 2) + 1);
  }
}

static const char pipelined[] =
    "GET /p/a?x=1 HTTP/1.1\r\nHost: h\r\nX-Request-Id: first-1\r\n\r\n"
    "POST /echo HTTP/1.1\r\nHost: h\r\nX-Request-Id: second-2\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    "HEAD /p/b HTTP/1.1\r\nHost: h\r\n\r\n"
    "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";

static void pipelined_in_order_any_split(void **state) {
  char *whole = run(pipelined, sizeof(pipelined) - 1, 0);
  strip_dates(whole);
  const char *a = strstr(whole, "GET /p/a ?x=1 id=first-1");
  const char *b = strstr(whole, "hello world");
  const char *c = strstr(whole, "X-Request-Id: second-2");
  const char *d = strstr(whole, "Content-Length: 3\r\n");
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  assert_non_null(d);
  assert_true(a < c && c < b && b < d);
  assert_null(strstr(whole, "HEAD /p/b")); /* HEAD: headers only */
  assert_non_null(strstr(whole, "\r\n\r\nabc"));
  for (size_t step = 1; step < 40; step += 7) {
    char *split = run(pipelined, sizeof(pipelined) - 1, step);
    strip_dates(split);
    /* ids are echoed or generated per request: compare without them */
    assert_int_equal(strlen(split), strlen(whole));
    free(split);
  }
  free(whole);
}

static void http10_closes_after_response(void **state) {
  const char in[] = "GET /p/x HTTP/1.0\r\n\r\nGET /p/y HTTP/1.0\r\n\r\n";
  char *out = run(in, sizeof(in) - 1, 0);
  assert_non_null(strstr(out, "GET /p/x"));
  assert_non_null(strstr(out, "Connection: close"));
  assert_null(strstr(out, "GET /p/y")); /* the second request is never read */
  free(out);
}

static void expect_continue(void **state) {
  const char in[] = "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                    "Content-Length: 2\r\n\r\nok";
  char *out = run(in, sizeof(in) - 1, 0);
  assert_memory_equal(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", 40);
  free(out);
  const char big[] = "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                     "Content-Length: 999999\r\n\r\n";
  out = run(big, sizeof(big) - 1, 0);
  assert_memory_equal(out, "HTTP/1.1 413 ", 13); /* no 100 for a body we refuse */
  free(out);
}

static void request_id_generated_when_invalid(void **state) {
  const char in[] = "GET /p/x HTTP/1.1\r\nHost: h\r\nX-Request-Id: bad id with spaces\r\n\r\n";
  char *out = run(in, sizeof(in) - 1, 0);
  assert_null(strstr(out, "bad id"));
  const char *id = strstr(out, "X-Request-Id: ");
  assert_non_null(id);
  assert_int_equal(strcspn(id + 14, "\r"), 16);
  free(out);
}

static void error_shape_is_json_with_request_id(void **state) {
  const char in[] = "GET /nowhere HTTP/1.1\r\nHost: h\r\nX-Request-Id: rid-42\r\n\r\n";
  char *out = run(in, sizeof(in) - 1, 0);
  assert_non_null(strstr(out, "HTTP/1.1 404 Not Found"));
  assert_non_null(strstr(out, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such path\","
                              "\"request_id\":\"rid-42\"}}"));
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pipelined_in_order_any_split),
      cmocka_unit_test(http10_closes_after_response),
      cmocka_unit_test(expect_continue),
      cmocka_unit_test(request_id_generated_when_invalid),
      cmocka_unit_test(error_shape_is_json_with_request_id),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
