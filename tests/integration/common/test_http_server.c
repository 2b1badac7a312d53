/* The HTTP server over real sockets: keep-alive, pipelining in order, request
 * and response bodies streamed without holding them whole, a client that
 * stops reading, and graceful shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static gdx_http_limits limits(void) {
  gdx_http_limits l;
  gdx_http_limits_default(&l);
  l.max_body_bytes = 64u << 20;
  l.send_timeout_ms = 600;
  l.write_high_water = 1u << 20;
  return l;
}

static void keepalive_many_requests(void **state) {
  test_server ts;
  gdx_http_limits l = limits();
  ts_start(&ts, &l, NULL);
  int fd = tc_connect(ts.port);
  for (int i = 0; i < 200; i++) {
    tc_sends(fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    tc_response r;
    assert_int_equal(tc_read_response(fd, &r, 3000), 200);
    assert_string_equal(r.body, "hello");
    assert_false(r.closed);
    tc_response_free(&r);
  }
  close(fd);
  gdx_http_stats st;
  ts_stats(&ts, &st);
  assert_int_equal(st.connections_total, 1);
  assert_int_equal(st.status_counts[200], 200);
  ts_stop(&ts);
}

static void pipelined_answered_in_order(void **state) {
  test_server ts;
  gdx_http_limits l = limits();
  ts_start(&ts, &l, NULL);
  int fd = tc_connect(ts.port);
  /* the first is slow (answered from a timer), the others immediate */
  tc_sends(fd, "GET /slow?ms=200 HTTP/1.1\r\nHost: h\r\nX-Request-Id: r1\r\n\r\n"
               "GET /hello HTTP/1.1\r\nHost: h\r\nX-Request-Id: r2\r\n\r\n"
               "POST /echo-hash HTTP/1.1\r\nHost: h\r\nX-Request-Id: r3\r\n"
               "Content-Length: 3\r\n\r\nabc"
               "GET /nothing HTTP/1.1\r\nHost: h\r\nX-Request-Id: r4\r\n\r\n");
  const char *ids[] = {"r1", "r2", "r3", "r4"};
  const int status[] = {200, 200, 200, 404};
  for (int i = 0; i < 4; i++) {
    tc_response r;
    char id[32];
    assert_int_equal(tc_read_response(fd, &r, 3000), status[i]);
    assert_int_equal(tc_header(&r, "X-Request-Id", id, sizeof(id)), 0);
    assert_string_equal(id, ids[i]);
    if (i == 0)
      assert_string_equal(r.body, "slow");
    if (i == 2)
      assert_non_null(strstr(r.body, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    tc_response_free(&r);
  }
  close(fd);
  ts_stop(&ts);
}

static void chunked_request_body_streamed(void **state) {
  test_server ts;
  gdx_http_limits l = limits();
  ts_start(&ts, &l, NULL);
  const size_t total = 16u << 20, piece = 8192;
  char *body = malloc(total);
  for (size_t i = 0; i < total; i++)
    body[i] = th_pattern(i);
  char want[65];
  th_sha256_hex(body, total, want);
  int fd = tc_connect(ts.port);
  tc_sends(fd, "POST /echo-hash HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (size_t off = 0; off < total; off += piece) {
    char hdr[32];
    snprintf(hdr, sizeof(hdr), "%zx\r\n", piece);
    tc_sends(fd, hdr);
    tc_send(fd, body + off, piece);
    tc_sends(fd, "\r\n");
  }
  tc_sends(fd, "0\r\n\r\n");
  tc_response r;
  assert_int_equal(tc_read_response(fd, &r, 10000), 200);
  char expect[128];
  snprintf(expect, sizeof(expect), "\"bytes\":%zu,\"sha256\":\"%s\"", total, want);
  assert_non_null(strstr(r.body, expect));
  /* the handler saw the body in pieces no larger than the read buffer */
  const char *mp = strstr(r.body, "\"max_piece\":");
  assert_non_null(mp);
  assert_true(strtoul(mp + 12, NULL, 10) <= 64 * 1024);
  tc_response_free(&r);
  close(fd);
  free(body);
  ts_stop(&ts);
}

static void chunked_response_streamed(void **state) {
  test_server ts;
  gdx_http_limits l = limits();
  /* 48 MiB under the sanitizers on a shared machine: the reader may pause
   * longer than the 600 ms the slow-reader tests use */
  l.send_timeout_ms = 15000;
  ts_start(&ts, &l, NULL);
  const size_t total = 48u << 20;
  int fd = tc_connect(ts.port);
  char req[128];
  snprintf(req, sizeof(req), "GET /stream?n=%zu HTTP/1.1\r\nHost: h\r\n\r\n", total);
  tc_sends(fd, req);
  tc_response r;
  assert_int_equal(tc_read_response(fd, &r, 20000), 200);
  assert_non_null(strstr(r.hdrs, "Transfer-Encoding: chunked"));
  assert_int_equal(r.body_len, total);
  for (size_t i = 0; i < total; i++)
    if (r.body[i] != th_pattern(i))
      fail_msg("byte %zu differs", i);
  tc_response_free(&r);
  /* the connection is still usable */
  tc_sends(fd, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
  assert_int_equal(tc_read_response(fd, &r, 3000), 200);
  tc_response_free(&r);
  close(fd);
  ts_stop(&ts);
}

/* How many times the server has answered /big (GET /count). */
static long big_served(int port) {
  int fd = tc_connect(port);
  tc_sends(fd, "GET /count HTTP/1.1\r\nHost: h\r\n\r\n");
  tc_response r;
  assert_int_equal(tc_read_response(fd, &r, 3000), 200);
  long served = strtol(r.body, NULL, 10);
  tc_response_free(&r);
  close(fd);
  return served;
}

static uint64_t connections_open(test_server *ts) {
  gdx_http_stats st;
  ts_stats(ts, &st);
  return st.connections_open;
}

static void client_that_stops_reading_is_cut_off(void **state) {
  test_server ts;
  gdx_http_limits l = limits();
  ts_start(&ts, &l, NULL);
  int fd = tc_connect(ts.port);
  /* 50 pipelined requests for 4 MiB each = 200 MiB, and never a read */
  char req[] = "GET /big?n=4194304 HTTP/1.1\r\nHost: h\r\n\r\n";
  for (int i = 0; i < 50; i++)
    tc_sends(fd, req);
  /* meanwhile, once the server is on them, other clients are served */
  long served = 0;
  TH_WAIT_UNTIL((served = big_served(ts.port)) >= 1, 10000, "the server to answer /big");
  for (int i = 0; i < 10; i++)
    assert_int_equal(tc_hello(ts.port), 200);
  /* the server cuts the silent client off after send_timeout (the other
   * clients have closed theirs; the server sees all of it) */
  uint64_t open = 1;
  TH_WAIT_UNTIL((open = connections_open(&ts)) == 0, 10000,
                "the server to cut the silent client off (%llu connections open)",
                (unsigned long long)open);
  /* backpressure: the server answered only what fits in the socket buffers
   * and its high-water mark, not the 50 requests */
  served = big_served(ts.port);
  printf("/big answered %ld of 50 times before the client was cut off\n", served);
  assert_true(served >= 1 && served <= 10);
  TH_WAIT_UNTIL((open = connections_open(&ts)) == 0, 10000,
                "the server to see the last client's close (%llu connections open)",
                (unsigned long long)open);
  assert_int_equal(open, 0);
  close(fd);
  ts_stop(&ts);
}

/* 1 when nothing accepts a connection on port. */
static int refuses_connections(int port) {
  int fd = tc_connect(port);
  if (fd >= 0)
    close(fd);
  return fd < 0;
}

typedef struct {
  test_server *ts;
} stopper;

static void *stop_thread(void *arg) {
  ts_stop(((stopper *)arg)->ts);
  return NULL;
}

static void graceful_shutdown_drains(void **state) {
  test_server ts;
  gdx_http_limits l = limits();
  ts_start(&ts, &l, NULL);
  int idle = tc_connect(ts.port);
  tc_sends(idle, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
  tc_response r;
  assert_int_equal(tc_read_response(idle, &r, 3000), 200);
  tc_response_free(&r);
  int busy = tc_connect(ts.port);
  tc_sends(busy, "GET /slow?ms=2000 HTTP/1.1\r\nHost: h\r\n\r\n");
  gdx_http_stats st = {0};
  TH_WAIT_UNTIL((ts_stats(&ts, &st), st.requests_total == 2), 10000,
                "the server to start on the slow request");
  stopper s = {&ts};
  pthread_t th;
  pthread_create(&th, NULL, stop_thread, &s);
  /* no new connections (once the listener is closed); idle ones closed; the
   * request in progress finishes */
  TH_WAIT_UNTIL(refuses_connections(ts.port), 10000, "the listener to close");
  assert_true(refuses_connections(ts.port));
  assert_true(tc_wait_closed(idle, 5000));
  assert_int_equal(tc_read_response(busy, &r, 3000), 200);
  assert_string_equal(r.body, "slow");
  assert_non_null(strstr(r.hdrs, "Connection: close"));
  assert_true(r.closed);
  tc_response_free(&r);
  pthread_join(th, NULL);
  assert_true(ts.stopped);
  close(idle);
  close(busy);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(keepalive_many_requests),
      cmocka_unit_test(pipelined_answered_in_order),
      cmocka_unit_test(chunked_request_body_streamed),
      cmocka_unit_test(chunked_response_streamed),
      cmocka_unit_test(client_that_stops_reading_is_cut_off),
      cmocka_unit_test(graceful_shutdown_drains),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
