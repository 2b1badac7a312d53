/* The HTTP client on a libuv loop, against the gdx server over real
 * sockets: connection reuse, streamed bodies both ways with pausing,
 * timeouts, refused connections and mutual TLS - once with the libcurl
 * engine, once with the native one. The native engine also meets a scripted
 * raw-socket peer for what a well-behaved server never does: closing a
 * keep-alive connection, interim responses, bodies ending with the
 * connection, garbage, an oversized head, a wrong key pin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "harness.h"
#include "httpc.h"
#include "pki.h"
#include <openssl/pem.h>

static test_server ts;
static uv_loop_t loop;
static gdx_httpc *client;
static int native; /* the group runs twice: libcurl, then the native engine */

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
  o.native = native;
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


/* ------------------------------------------------------------------ */
/* the native engine against a scripted peer                          */

typedef struct {
  const char *response; /* sent whole after each request head */
  int close_after;      /* then close the connection */
} step;

static struct {
  int fd, port;
  pthread_t thread;
  const step *steps;
  int nsteps, next;
  int accepts, closes;
  pthread_mutex_t mu;
} peer;

static void *peer_main(void *arg) {
  (void)arg;
  for (;;) {
    int c = accept(peer.fd, NULL, NULL);
    if (c < 0)
      return NULL;
    pthread_mutex_lock(&peer.mu);
    peer.accepts++;
    pthread_mutex_unlock(&peer.mu);
    char buf[8192];
    size_t have = 0;
    for (;;) {
      ssize_t n = recv(c, buf + have, sizeof(buf) - 1 - have, 0);
      if (n <= 0)
        break;
      have += (size_t)n;
      buf[have] = '\0';
      char *end = strstr(buf, "\r\n\r\n");
      if (end == NULL)
        continue;
      size_t used = (size_t)(end + 4 - buf);
      memmove(buf, buf + used, have - used);
      have -= used;
      pthread_mutex_lock(&peer.mu);
      const step *st = peer.next < peer.nsteps ? &peer.steps[peer.next++] : NULL;
      pthread_mutex_unlock(&peer.mu);
      if (st == NULL)
        break;
      if (send(c, st->response, strlen(st->response), MSG_NOSIGNAL) < 0 || st->close_after)
        break;
    }
    close(c);
    pthread_mutex_lock(&peer.mu);
    peer.closes++;
    pthread_mutex_unlock(&peer.mu);
  }
}

static int peer_closes(void) {
  pthread_mutex_lock(&peer.mu);
  int n = peer.closes;
  pthread_mutex_unlock(&peer.mu);
  return n;
}

static void peer_script(const step *steps, int n) {
  pthread_mutex_lock(&peer.mu);
  peer.steps = steps;
  peer.nsteps = n;
  peer.next = 0;
  pthread_mutex_unlock(&peer.mu);
}

static void peer_start(void) {
  peer.fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  assert_int_equal(bind(peer.fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(peer.fd, 16), 0);
  getsockname(peer.fd, (struct sockaddr *)&a, &len);
  peer.port = ntohs(a.sin_port);
  pthread_mutex_init(&peer.mu, NULL);
  pthread_create(&peer.thread, NULL, peer_main, NULL);
}

static void peer_stop(void) {
  shutdown(peer.fd, SHUT_RDWR);
  close(peer.fd);
  pthread_join(peer.thread, NULL);
}

static void native_reuse_and_stale_connections(void **state) {
  (void)state;
  static const step steps[] = {
      /* 1: keep-alive, but the peer closes right after (stale for #2) */
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", 1},
      /* 2: retried on a fresh connection, answered with Connection: close */
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo", 1},
      /* 3: a new connection again; 100 Continue first, then the answer */
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nthree", 0},
      /* 4: same connection: chunked */
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nfo\r\n2\r\nur\r\n0\r\n\r\n", 0},
      /* 5: same connection: HEAD with a length and no body */
      {"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 0},
      /* 6: same connection: a body that ends with the connection */
      {"HTTP/1.0 200 OK\r\n\r\nuntil the end", 1},
  };
  peer_script(steps, 6);
  int closes = peer_closes();
  long before = gdx_httpc_connects(client);
  const char *want[] = {"one", "two", "three", "four", "", "until the end"};
  long codes[] = {200, 200, 201, 200, 200, 200};
  for (int i = 0; i < 6; i++) {
    result res = {0};
    if (i == 1) /* the peer has closed #1 (the client may not have seen it yet) */
      TH_WAIT_UNTIL(peer_closes() > closes, 10000, "the peer to close connection #1");
    request(i == 4 ? "HEAD" : "GET", "/x", peer.port, &res, NULL);
    assert_int_equal(res.status, GDX_OK);
    assert_int_equal(res.http, codes[i]);
    assert_string_equal(res.body.data ? res.body.data : "", want[i]);
    gdx_buf_free(&res.body);
  }
  /* #1, #2 (after #1's close was seen or retried), #3-#5, #6 on #3's */
  assert_int_equal(gdx_httpc_connects(client) - before, 3);
  assert_int_equal(peer.next, 6);
}

static void native_bad_peers(void **state) {
  (void)state;
  static char big[80 * 1024];
  if (big[0] == '\0') {
    strcpy(big, "HTTP/1.1 200 OK\r\n");
    size_t l = strlen(big);
    while (l < sizeof(big) - 200)
      l += (size_t)sprintf(big + l, "X-Filler-%zu: %s\r\n", l, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    strcpy(big + l, "Content-Length: 0\r\n\r\n");
  }
  const step steps[] = {
      {"SSH-2.0-OpenSSH_9.2\r\n", 0},
      {big, 0},
      {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", 1},
  };
  peer_script(steps, 3);
  for (int i = 0; i < 3; i++) {
    result res = {0};
    request("GET", "/bad", peer.port, &res, NULL);
    assert_int_equal(res.status, GDX_EIO);
    assert_int_equal(res.http, 0);
    gdx_buf_free(&res.body);
  }
}

static void native_pinned_key(void **state) {
  (void)state;
  char pin[GDX_PKI_PIN_LEN];
  char scert[220];
  snprintf(scert, sizeof(scert), "%s/server.crt", dir);
  FILE *f = fopen(scert, "r");
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  assert_int_equal(gdx_pki_pin(x, pin), GDX_OK);
  X509_free(x);
  result res = {0};
  gdx_httpc_opts o = {.ca_file = ca, .cert_file = cert, .key_file = key, .pinned_key = pin};
  request("GET", "/peer", ts.tls_port, &res, &o);
  assert_int_equal(res.status, GDX_OK);
  assert_int_equal(res.http, 200);
  gdx_buf_free(&res.body);
  /* another key behind the same name: refused before any byte of the request */
  result bad = {0};
  gdx_httpc_opts ob = o;
  ob.pinned_key = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  request("GET", "/peer", ts.tls_port, &bad, &ob);
  assert_int_equal(bad.status, GDX_ETLS);
  gdx_buf_free(&bad.body);
}

static void cancel_from_timer(uv_timer_t *t) {
  result *res = t->data;
  gdx_httpc_cancel(res->req);
}

static int on_data_keep(gdx_httpc_req *r, const char *d, size_t n, void *ud) {
  result *res = ud;
  res->req = r;
  res->received += n;
  return 0;
}

static void native_cancel_and_close(void **state) {
  (void)state;
  /* cancelled in the middle of a long body */
  result res = {0};
  uv_timer_init(&loop, &res.resume);
  res.resume.data = &res;
  gdx_httpc_opts o = {.on_data = on_data_keep};
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/stream?n=900000000", ts.port);
  o.method = "GET";
  o.url = url;
  o.on_done = on_done;
  o.data = &res;
  o.native = 1;
  assert_int_equal(gdx_httpc_request(client, &o, &res.req), GDX_OK);
  uv_timer_start(&res.resume, cancel_from_timer, 200, 0);
  run_until(&res);
  assert_int_equal(res.status, GDX_ECLOSED);
  assert_true(res.received > 0 && res.received < 900000000);
  uv_close((uv_handle_t *)&res.resume, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);

  /* a client closed with a request in flight reports it, once */
  gdx_httpc *c2;
  assert_int_equal(gdx_httpc_new(&loop, &c2), GDX_OK);
  result r2 = {0};
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow?ms=2000", ts.port);
  o.url = url;
  o.on_data = on_data;
  o.data = &r2;
  assert_int_equal(gdx_httpc_request(c2, &o, NULL), GDX_OK);
  for (int i = 0; i < 20; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  gdx_httpc_close(c2);
  assert_true(r2.done);
  assert_int_equal(r2.status, GDX_ECLOSED);
  /* a malformed URL is refused at once */
  gdx_httpc_opts ou = {.url = "ftp://x/", .native = 1, .on_done = on_done};
  assert_int_equal(gdx_httpc_request(client, &ou, NULL), GDX_EINVAL);
  ou.url = "http://127.0.0.1:99999/";
  assert_int_equal(gdx_httpc_request(client, &ou, NULL), GDX_EINVAL);
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
  const struct CMUnitTest native_only[] = {
      cmocka_unit_test(native_reuse_and_stale_connections),
      cmocka_unit_test(native_bad_peers),
      cmocka_unit_test(native_pinned_key),
      cmocka_unit_test(native_cancel_and_close),
  };
  signal(SIGPIPE, SIG_IGN); /* as the daemons do: a peer that went away is an EPIPE */
  int failed = cmocka_run_group_tests_name("libcurl engine", tests, setup, teardown);
  native = 1;
  failed += cmocka_run_group_tests_name("native engine", tests, setup, teardown);
  peer_start();
  failed += cmocka_run_group_tests_name("native engine, odd peers", native_only, setup, teardown);
  peer_stop();
  return failed;
}
