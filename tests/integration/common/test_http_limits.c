/* Bad input over real sockets, driven from one table: each case sends its
 * bytes, and the test asserts the status code, whether the server closed the
 * connection, and that a well-behaved client is served at the same time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static test_server ts;

typedef enum { SEND, SLOW_HEAD, SLOW_BODY, IDLE } kind;

typedef struct {
  const char *name;
  kind how;
  const char *raw;      /* request bytes; %H expands to a header of 5000 bytes */
  int status;           /* expected; 0: connection closed without a response */
  int closes;           /* the server closes after it */
} bad_case;

static const bad_case cases[] = {
    {"malformed request line", SEND, "GET\r\n\r\n", 400, 1},
    {"unknown method", SEND, "FETCH / HTTP/1.1\r\nHost: h\r\n\r\n", 400, 1},
    {"bad protocol", SEND, "GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400, 1},
    {"HTTP/2.0 in an HTTP/1 request line", SEND, "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, 1},
    {"garbage version", SEND, "GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400, 1},
    {"absolute-form target", SEND, "GET http://h/hello HTTP/1.1\r\nHost: h\r\n\r\n", 400, 1},
    {"NUL in target", SEND, "GET /he\0llo HTTP/1.1\r\nHost: h\r\n\r\n", 400, 1},
    {"header too large", SEND, "GET /hello HTTP/1.1\r\nHost: h\r\nX-Big: %H\r\n\r\n", 431, 1},
    {"too many headers", SEND, "%M", 431, 1},
    {"target too long", SEND, "%U", 414, 1},
    {"control byte in header value", SEND, "GET /hello HTTP/1.1\r\nHost: h\r\nX-A: a\x01z\r\n\r\n", 400, 1},
    {"space in header name", SEND, "GET /hello HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n", 400, 1},
    {"bare CR in header value", SEND, "GET /hello HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", 400, 1},
    {"bare LF line endings", SEND, "GET /hello HTTP/1.1\nHost: h\n\n", 400, 1},
    {"folded header line", SEND, "GET /hello HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", 400, 1},
    {"no Host in HTTP/1.1", SEND, "GET /hello HTTP/1.1\r\n\r\n", 400, 1},
    {"Content-Length and Transfer-Encoding", SEND,
     "POST /echo-hash HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\n\r\n", 400, 1},
    {"Transfer-Encoding not ending in chunked", SEND,
     "POST /echo-hash HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc", 400, 1},
    {"two different Content-Lengths", SEND,
     "POST /echo-hash HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, 1},
    {"negative Content-Length", SEND,
     "POST /echo-hash HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400, 1},
    {"Content-Length over the body limit", SEND,
     "POST /echo-hash HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\nabc", 413, 1},
    {"chunked body over the limit", SEND, "%C", 413, 1},
    {"huge chunk size", SEND,
     "POST /echo-hash HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\nabc", 413, 1},
    {"overflowing chunk size", SEND,
     "POST /echo-hash HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
     "FFFFFFFFFFFFFFFFFFFF\r\nabc", 400, 1},
    {"invalid chunk size", SEND,
     "POST /echo-hash HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc", 400, 1},
    {"unsupported Expect", SEND,
     "POST /echo-hash HTTP/1.1\r\nHost: h\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx", 417, 1},
    {"slow request head", SLOW_HEAD, "GET /hello HTTP/1.1\r\nHo", 408, 1},
    {"slow request body", SLOW_BODY,
     "POST /echo-hash HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nonly ten b", 408, 1},
    {"connection that never sends", IDLE, "", 408, 1},
    {"wrong method on a known path", SEND, "DELETE /hello HTTP/1.1\r\nHost: h\r\n\r\n", 405, 0},
    {"unknown path", SEND, "GET /nothing HTTP/1.1\r\nHost: h\r\n\r\n", 404, 0},
};

static char *expand(const char *raw, size_t *len) {
  static char buf[300000];
  size_t n = 0;
  if (strcmp(raw, "%M") == 0) {
    n += (size_t)snprintf(buf, sizeof(buf), "GET /hello HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 150; i++)
      n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-H%d: v\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
  } else if (strcmp(raw, "%U") == 0) {
    n += (size_t)snprintf(buf, sizeof(buf), "GET /");
    memset(buf + n, 'u', 2000);
    n += 2000;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, " HTTP/1.1\r\nHost: h\r\n\r\n");
  } else if (strcmp(raw, "%C") == 0) {
    n += (size_t)snprintf(buf, sizeof(buf),
                          "POST /echo-hash HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 20; i++) { /* 20 x 4000 > 64 KiB */
      n += (size_t)snprintf(buf + n, sizeof(buf) - n, "fa0\r\n");
      memset(buf + n, 'c', 4000);
      n += 4000;
      memcpy(buf + n, "\r\n", 2);
      n += 2;
    }
  } else {
    const char *h = strstr(raw, "%H");
    /* raw strings may hold a NUL: take the length from the table literal */
    size_t rl = strlen(raw);
    if (strcmp(raw, "GET /he") == 0)
      rl = sizeof("GET /he\0llo HTTP/1.1\r\nHost: h\r\n\r\n") - 1;
    if (h) {
      n = (size_t)(h - raw);
      memcpy(buf, raw, n);
      memset(buf + n, 'x', 5000);
      n += 5000;
      size_t rest = strlen(h + 2);
      memcpy(buf + n, h + 2, rest);
      n += rest;
    } else {
      memcpy(buf, raw, rl);
      n = rl;
    }
  }
  *len = n;
  return buf;
}

static void *good_client(void *arg) {
  int *ok = arg;
  *ok = 1;
  for (int i = 0; i < 5; i++)
    if (tc_hello(ts.port) != 200)
      *ok = 0;
  return NULL;
}

static void bad_input_table(void **state) {
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const bad_case *c = &cases[i];
    size_t len;
    char *raw = expand(c->raw, &len);
    int fd = tc_connect(ts.port);
    assert_true(fd >= 0);
    tc_send(fd, raw, len);
    /* a well-behaved client at the same time, while this one misbehaves */
    pthread_t th;
    int good_ok = 0;
    pthread_create(&th, NULL, good_client, &good_ok);
    tc_response r;
    int st = tc_read_response(fd, &r, 5000);
    pthread_join(th, NULL);
    char rid[80] = "";
    tc_header(&r, "X-Request-Id", rid, sizeof(rid));
    int closed = r.closed || tc_wait_closed(fd, c->closes ? 3000 : 50);
    printf("%-40s -> %d%s\n", c->name, st, closed ? " (closed)" : "");
    if (st != c->status)
      fail_msg("%s: status %d, expected %d", c->name, st, c->status);
    if (closed != c->closes)
      fail_msg("%s: closed=%d, expected %d", c->name, closed, c->closes);
    if (!good_ok)
      fail_msg("%s: a well-behaved client was not served meanwhile", c->name);
    /* every error is JSON with a code and the request id */
    if (st >= 400) {
      assert_non_null(strstr(r.hdrs, "Content-Type: application/json"));
      assert_non_null(strstr(r.body, "\"code\":\""));
      assert_true(strlen(rid) > 0);
      assert_non_null(strstr(r.body, rid));
    }
    tc_response_free(&r);
    close(fd);
  }
}

static void too_many_connections_get_503(void **state) {
  /* this server allows 8 connections; ts_start's limits below */
  test_server small;
  gdx_http_limits lim;
  gdx_http_limits_default(&lim);
  lim.max_connections = 8;
  ts_start(&small, &lim, NULL);
  int fds[8];
  for (int i = 0; i < 8; i++) {
    fds[i] = tc_connect(small.port);
    assert_true(fds[i] >= 0);
    tc_sends(fds[i], "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    tc_response r;
    assert_int_equal(tc_read_response(fds[i], &r, 3000), 200);
    tc_response_free(&r);
  }
  int extra = tc_connect(small.port);
  assert_true(extra >= 0);
  char buf[1024] = "";
  size_t n = tc_read_all(extra, buf, sizeof(buf) - 1, 3000);
  buf[n] = '\0';
  assert_non_null(strstr(buf, "HTTP/1.1 503"));
  assert_non_null(strstr(buf, "too_many_connections"));
  close(extra);
  /* the 8 open connections still work */
  tc_sends(fds[0], "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
  tc_response r;
  assert_int_equal(tc_read_response(fds[0], &r, 3000), 200);
  tc_response_free(&r);
  /* closing one frees a place */
  close(fds[1]);
  gdx_http_stats st;
  TH_WAIT_UNTIL((ts_stats(&small, &st), st.connections_open == 7), 10000,
                "the server to see a connection closed (%llu open)",
                (unsigned long long)st.connections_open);
  assert_int_equal(tc_hello(small.port), 200);
  ts_stats(&small, &st);
  assert_int_equal(st.connections_rejected, 1);
  for (int i = 0; i < 8; i++)
    if (i != 1)
      close(fds[i]);
  ts_stop(&small);
}

static void keepalive_idle_closed_quietly(void **state) {
  int fd = tc_connect(ts.port);
  tc_sends(fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
  tc_response r;
  assert_int_equal(tc_read_response(fd, &r, 3000), 200);
  tc_response_free(&r);
  /* the server closes it, without a 408 after a finished request */
  assert_true(tc_wait_closed(fd, 10000));
  gdx_http_stats st;
  ts_stats(&ts, &st);
  assert_int_equal(st.status_counts[408], 3); /* only the three slow cases of the table */
  close(fd);
}

static int setup(void **state) {
  gdx_http_limits lim;
  gdx_http_limits_default(&lim);
  lim.max_header_bytes = 4096;
  lim.max_url_bytes = 1024;
  lim.max_body_bytes = 64 * 1024;
  lim.header_timeout_ms = 400;
  lim.body_timeout_ms = 400;
  lim.keepalive_timeout_ms = 600;
  ts_start(&ts, &lim, NULL);
  return 0;
}

static int teardown(void **state) {
  ts_stop(&ts);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bad_input_table),
      cmocka_unit_test(too_many_connections_get_503),
      cmocka_unit_test(keepalive_idle_closed_quietly),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
