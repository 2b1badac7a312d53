#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <mysql.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "error.h"

#define FAIL(...)                                                                          \
  do {                                                                                     \
    fprintf(stderr, "harness: " __VA_ARGS__);                                              \
    fprintf(stderr, "\n");                                                                 \
    abort();                                                                               \
  } while (0)

uint64_t th_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void th_sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[32];
  unsigned n;
  EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

size_t th_collect(char *p, size_t s, size_t n, void *ud) {
  th_body *b = ud;
  if (b->len + s * n + 1 > b->cap) { /* geometric: no quadratic copying */
    b->cap = (b->len + s * n + 1) * 2;
    b->data = realloc(b->data, b->cap);
  }
  memcpy(b->data + b->len, p, s * n);
  b->len += s * n;
  b->data[b->len] = '\0';
  return s * n;
}

th_deadline th_deadline_in(int ms) {
  uint64_t now = th_now_ms();
  return (th_deadline){
      .start = now, .end = now + (uint64_t)(ms > 0 ? ms : 0), .looked = now, .pause_ms = 1};
}

int th_poll(th_deadline *d) {
  uint64_t now = th_now_ms();
  if (now >= d->end)
    return 0;
  /* at least as long as the last look took: looking never takes more than
   * half of a wait's time, whatever the condition costs (a query, a digest
   * of a whole table) */
  uint64_t pause = d->pause_ms > now - d->looked ? d->pause_ms : now - d->looked;
  if (pause > d->end - now)
    pause = d->end - now;
  /* the harness's one poll interval: every wait in the suite pauses here */
  usleep((useconds_t)(pause * 1000));
  if (d->pause_ms < TH_POLL_MAX_MS)
    d->pause_ms = d->pause_ms * 2 < TH_POLL_MAX_MS ? d->pause_ms * 2 : TH_POLL_MAX_MS;
  d->looked = th_now_ms();
  return 1;
}

void th_wait_failed(const th_deadline *d, int stayed, const char *fmt, ...) {
  char what[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  unsigned long long ms = (unsigned long long)(th_now_ms() - d->start);
  if (stayed)
    fail_msg("%s: broke after %llu ms", what, ms);
  else
    fail_msg("waited %llu ms for %s", ms, what);
  abort(); /* fail_msg does not return */
}

int th_run(const char *cmd, char *out, size_t n) {
  FILE *p = popen(cmd, "r");
  if (p == NULL)
    FAIL("cannot run %s", cmd);
  size_t len = fread(out, 1, n - 1, p);
  out[len] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int th_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || getsockname(fd, (struct sockaddr *)&sa, &len))
    FAIL("cannot find a free port");
  close(fd);
  return ntohs(sa.sin_port);
}

/* ------------------------------------------------------------------ */
/* test routes (run on the server thread)                              */

static unsigned long long big_served;

static long long query_num(gdx_http_req *req, const char *key, long long def) {
  const char *q = gdx_http_req_query(req);
  size_t kl = strlen(key);
  while (q && *q) {
    if (strncmp(q, key, kl) == 0 && q[kl] == '=')
      return strtoll(q + kl + 1, NULL, 10);
    q = strchr(q, '&');
    if (q)
      q++;
  }
  return def;
}

static void h_hello(gdx_http_req *req, void *d) {
  gdx_http_respond(req, 200, "text/plain", "hello", 5);
}

typedef struct {
  EVP_MD_CTX *md;
  uint64_t bytes;
  size_t max_piece;
} hash_state;

static void hash_body(gdx_http_req *req, const char *data, size_t len) {
  hash_state *h = gdx_http_req_get_data(req);
  EVP_DigestUpdate(h->md, data, len);
  h->bytes += len;
  if (len > h->max_piece)
    h->max_piece = len;
}

static void hash_free(gdx_http_req *req) {
  hash_state *h = gdx_http_req_get_data(req);
  EVP_MD_CTX_free(h->md);
  free(h);
}

static void hash_complete(gdx_http_req *req) {
  hash_state *h = gdx_http_req_get_data(req);
  unsigned char md[32];
  unsigned n;
  char hex[65], body[256];
  EVP_DigestFinal_ex(h->md, md, &n);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  int len = snprintf(body, sizeof(body), "{\"bytes\":%llu,\"sha256\":\"%s\",\"max_piece\":%zu}",
                     (unsigned long long)h->bytes, hex, h->max_piece);
  hash_free(req);
  gdx_http_respond(req, 200, "application/json", body, (size_t)len);
}

static void h_echo_hash(gdx_http_req *req, void *d) {
  hash_state *h = calloc(1, sizeof(*h));
  h->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(h->md, EVP_sha256(), NULL);
  gdx_http_req_set_data(req, h);
  gdx_http_req_on(req, hash_body, hash_complete, hash_free);
}

typedef struct {
  uint64_t sent, total;
} stream_state;

static void stream_more(gdx_http_req *req) {
  stream_state *s = gdx_http_req_get_data(req);
  char piece[65536];
  while (s->sent < s->total) {
    size_t n = s->total - s->sent < sizeof(piece) ? (size_t)(s->total - s->sent) : sizeof(piece);
    for (size_t i = 0; i < n; i++)
      piece[i] = th_pattern(s->sent + i);
    s->sent += n;
    int rc = gdx_http_write(req, piece, n);
    if (rc < 0)
      return;
    if (rc == 1)
      return; /* on_drain calls us again */
  }
  free(s);
  gdx_http_req_set_data(req, NULL);
  gdx_http_end(req);
}

static void stream_abort(gdx_http_req *req) { free(gdx_http_req_get_data(req)); }

static void h_stream(gdx_http_req *req, void *d) {
  stream_state *s = calloc(1, sizeof(*s));
  s->total = (uint64_t)query_num(req, "n", 1024);
  gdx_http_req_set_data(req, s);
  gdx_http_req_on(req, NULL, NULL, stream_abort);
  gdx_http_req_on_drain(req, stream_more);
  gdx_http_start(req, 200, "application/octet-stream", -1);
  stream_more(req);
}

static void h_big(gdx_http_req *req, void *d) {
  size_t n = (size_t)query_num(req, "n", 4 << 20);
  char *b = malloc(n);
  for (size_t i = 0; i < n; i++)
    b[i] = th_pattern(i);
  big_served++;
  gdx_http_respond(req, 200, "application/octet-stream", b, n);
  free(b);
}

static void h_count(gdx_http_req *req, void *d) {
  char b[32];
  int n = snprintf(b, sizeof(b), "%llu", big_served);
  gdx_http_respond(req, 200, "text/plain", b, (size_t)n);
}

typedef struct {
  uv_timer_t t;
  gdx_http_req *req; /* NULL once aborted */
} slow_state;

static void slow_closed(uv_handle_t *h) { free(h->data); }

static void slow_fire(uv_timer_t *t) {
  slow_state *s = t->data;
  if (s->req) {
    gdx_http_req_set_data(s->req, NULL);
    gdx_http_respond(s->req, 200, "text/plain", "slow", 4);
  }
  uv_close((uv_handle_t *)t, slow_closed);
}

static void slow_abort(gdx_http_req *req) {
  slow_state *s = gdx_http_req_get_data(req);
  if (s)
    s->req = NULL;
}

static void h_slow(gdx_http_req *req, void *d) {
  slow_state *s = calloc(1, sizeof(*s));
  s->req = req;
  s->t.data = s;
  uv_timer_init(&((test_server *)d)->loop, &s->t);
  uv_timer_start(&s->t, slow_fire, (uint64_t)query_num(req, "ms", 100), 0);
  gdx_http_req_set_data(req, s);
  gdx_http_req_on(req, NULL, NULL, slow_abort);
}

static void h_peer(gdx_http_req *req, void *d) {
  const char *s = gdx_http_req_peer_subject(req);
  if (s == NULL)
    s = "none";
  gdx_http_respond(req, 200, "text/plain", s, strlen(s));
}

/* ------------------------------------------------------------------ */
/* server thread                                                       */

typedef struct {
  test_server *ts;
  const gdx_http_limits *lim;
  const gdx_tls_options *tls;
} start_args;

static void on_wake(uv_async_t *a) {
  test_server *ts = a->data;
  if (ts->on_loop) {
    void (*fn)(void *) = ts->on_loop;
    ts->on_loop = NULL;
    fn(ts->on_loop_arg);
    uv_sem_post(&ts->called);
  }
}

static void server_thread(void *arg) {
  start_args *a = arg;
  test_server *ts = a->ts;
  uv_loop_init(&ts->loop);
  uv_async_init(&ts->loop, &ts->wake, on_wake);
  ts->wake.data = ts;
  gdx_router_new(&ts->router);
  gdx_router_add(ts->router, "GET", "/hello", h_hello, ts);
  gdx_router_add(ts->router, "POST", "/echo-hash", h_echo_hash, ts);
  gdx_router_add(ts->router, "GET", "/stream", h_stream, ts);
  gdx_router_add(ts->router, "GET", "/big", h_big, ts);
  gdx_router_add(ts->router, "GET", "/count", h_count, ts);
  gdx_router_add(ts->router, "GET", "/slow", h_slow, ts);
  gdx_router_add(ts->router, "GET", "/peer", h_peer, ts);
  gdx_http_server_options o = {.loop = &ts->loop,
                               .limits = *a->lim,
                               .on_request = gdx_router_dispatch,
                               .data = ts->router,
                               .access_log = 0,
                               .name = "test"};
  char err[256];
  if (gdx_http_server_new(&o, &ts->srv) ||
      gdx_http_listen(ts->srv, "127.0.0.1", 0, NULL, err, sizeof(err)))
    FAIL("server start: %s", err);
  ts->port = gdx_http_server_port(ts->srv, 0);
  if (a->tls) {
    if (gdx_http_listen(ts->srv, "127.0.0.1", 0, a->tls, err, sizeof(err)))
      FAIL("TLS listen: %s", err);
    ts->tls_port = gdx_http_server_port(ts->srv, 1);
  }
  uv_sem_post(&ts->ready);
  uv_run(&ts->loop, UV_RUN_DEFAULT);
  gdx_router_free(ts->router);
  uv_loop_close(&ts->loop);
}

void ts_start(test_server *ts, const gdx_http_limits *lim, const gdx_tls_options *tls) {
  memset(ts, 0, sizeof(*ts));
  uv_sem_init(&ts->ready, 0);
  uv_sem_init(&ts->called, 0);
  static start_args a;
  a = (start_args){ts, lim, tls};
  uv_thread_create(&ts->thread, server_thread, &a);
  uv_sem_wait(&ts->ready);
}

void ts_call(test_server *ts, void (*fn)(void *), void *arg) {
  ts->on_loop = fn;
  ts->on_loop_arg = arg;
  uv_async_send(&ts->wake);
  uv_sem_wait(&ts->called);
}

static void on_stopped(gdx_http_server *srv, void *data) {
  test_server *ts = data;
  ts->stopped = 1;
  uv_close((uv_handle_t *)&ts->wake, NULL);
}

static void do_shutdown(void *arg) {
  test_server *ts = arg;
  gdx_http_server_shutdown(ts->srv, on_stopped, ts);
}

void ts_stop(test_server *ts) {
  ts->on_loop = do_shutdown;
  ts->on_loop_arg = ts;
  uv_async_send(&ts->wake);
  uv_sem_wait(&ts->called);
  uv_thread_join(&ts->thread);
}

typedef struct {
  test_server *ts;
  gdx_http_stats *out;
} stats_args;

static void copy_stats(void *arg) {
  stats_args *a = arg;
  *a->out = *gdx_http_server_stats(a->ts->srv);
}

void ts_stats(test_server *ts, gdx_http_stats *out) {
  stats_args a = {ts, out};
  ts_call(ts, copy_stats, &a);
}

/* ------------------------------------------------------------------ */
/* blocking clients                                                    */

#define MAX_FD 4096
static char *leftover[MAX_FD];
static size_t leftover_len[MAX_FD];

int tc_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (fd < MAX_FD) {
    free(leftover[fd]);
    leftover[fd] = NULL;
    leftover_len[fd] = 0;
  }
  return fd;
}

void tc_send(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; /* the server may legitimately close mid-send (413, 431) */
    p += n;
    len -= (size_t)n;
  }
}

void tc_sends(int fd, const char *s) { tc_send(fd, s, strlen(s)); }

/* Reads some bytes within timeout: >0 bytes, 0 closed, -1 timeout/error. */
static ssize_t read_some(int fd, char *buf, size_t cap, int timeout_ms) {
  if (fd < MAX_FD && leftover_len[fd]) {
    size_t n = leftover_len[fd] < cap ? leftover_len[fd] : cap;
    memcpy(buf, leftover[fd], n);
    memmove(leftover[fd], leftover[fd] + n, leftover_len[fd] - n);
    leftover_len[fd] -= n;
    return (ssize_t)n;
  }
  struct pollfd p = {fd, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  if (r <= 0)
    return -1;
  ssize_t n = recv(fd, buf, cap, 0);
  if (n < 0)
    return errno == ECONNRESET ? 0 : -1;
  return n;
}

static void push_back(int fd, const char *data, size_t len) {
  if (fd >= MAX_FD || len == 0)
    return;
  char *p = malloc(leftover_len[fd] + len);
  memcpy(p, data, len);
  if (leftover_len[fd])
    memcpy(p + len, leftover[fd], leftover_len[fd]);
  free(leftover[fd]);
  leftover[fd] = p;
  leftover_len[fd] += len;
}

size_t tc_read_all(int fd, char *buf, size_t cap, int timeout_ms) {
  size_t got = 0;
  uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
  while (got < cap) {
    uint64_t now = th_now_ms();
    if (now >= end)
      break;
    ssize_t n = read_some(fd, buf + got, cap - got, (int)(end - now));
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  return got;
}

int tc_wait_closed(int fd, int timeout_ms) {
  char b[4096];
  uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    uint64_t now = th_now_ms();
    if (now >= end)
      return 0;
    ssize_t n = read_some(fd, b, sizeof(b), (int)(end - now));
    if (n == 0)
      return 1;
    if (n < 0 && th_now_ms() >= end)
      return 0;
  }
}

/* Reads until `buf` holds a line (CRLF) or the head end; grows as needed. */
typedef struct {
  char *data;
  size_t len, cap;
} rbuf;

static int fill(int fd, rbuf *b, uint64_t end) {
  if (b->len == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 16384;
    b->data = realloc(b->data, b->cap + 1);
  }
  uint64_t now = th_now_ms();
  if (now >= end)
    return -1;
  ssize_t n = read_some(fd, b->data + b->len, b->cap - b->len, (int)(end - now));
  if (n <= 0)
    return n == 0 ? 0 : -1;
  b->len += (size_t)n;
  b->data[b->len] = '\0';
  return 1;
}

static char *find_crlf(rbuf *b, size_t from) {
  for (size_t i = from; i + 1 < b->len; i++)
    if (b->data[i] == '\r' && b->data[i + 1] == '\n')
      return b->data + i;
  return NULL;
}

int tc_read_response(int fd, tc_response *r, int timeout_ms) {
  memset(r, 0, sizeof(*r));
  r->status = -1;
  uint64_t end = th_now_ms() + (uint64_t)timeout_ms;
  rbuf b = {0};
  char *head_end;
  for (;;) {
    head_end = b.len ? strstr(b.data, "\r\n\r\n") : NULL;
    if (head_end)
      break;
    int f = fill(fd, &b, end);
    if (f <= 0) {
      r->closed = f == 0;
      free(b.data);
      return -1;
    }
  }
  size_t hl = (size_t)(head_end - b.data) + 4;
  if (sscanf(b.data, "HTTP/1.%*d %d", &r->status) != 1)
    r->status = -1;
  snprintf(r->hdrs, sizeof(r->hdrs), "%.*s", (int)hl, b.data);
  char v[64];
  size_t pos = hl;
  if (tc_header(r, "Content-Length", v, sizeof(v)) == 0) {
    size_t cl = strtoull(v, NULL, 10);
    while (b.len - pos < cl)
      if (fill(fd, &b, end) <= 0)
        break;
    size_t have = b.len - pos < cl ? b.len - pos : cl;
    r->body = malloc(have + 1);
    memcpy(r->body, b.data + pos, have);
    r->body[have] = '\0';
    r->body_len = have;
    pos += have;
  } else if (tc_header(r, "Transfer-Encoding", v, sizeof(v)) == 0) {
    size_t out_cap = 65536;
    r->body = malloc(out_cap + 1);
    for (;;) {
      char *crlf;
      while ((crlf = find_crlf(&b, pos)) == NULL)
        if (fill(fd, &b, end) <= 0)
          goto done;
      size_t sz = strtoull(b.data + pos, NULL, 16);
      size_t data_at = (size_t)(crlf - b.data) + 2;
      while (b.len < data_at + sz + 2)
        if (fill(fd, &b, end) <= 0)
          goto done;
      if (r->body_len + sz > out_cap) {
        while (r->body_len + sz > out_cap)
          out_cap *= 2;
        r->body = realloc(r->body, out_cap + 1);
      }
      memcpy(r->body + r->body_len, b.data + data_at, sz);
      r->body_len += sz;
      pos = data_at + sz + 2;
      if (sz == 0)
        break;
      /* keep the buffer small on long streams */
      memmove(b.data, b.data + pos, b.len - pos);
      b.len -= pos;
      pos = 0;
    }
    r->body[r->body_len] = '\0';
  } else {
    r->body = calloc(1, 1);
  }
done:
  push_back(fd, b.data + pos, b.len > pos ? b.len - pos : 0);
  free(b.data);
  if (tc_header(r, "Connection", v, sizeof(v)) == 0 && strcasecmp(v, "close") == 0)
    r->closed = tc_wait_closed(fd, 2000);
  return r->status;
}

void tc_response_free(tc_response *r) {
  free(r->body);
  r->body = NULL;
}

int tc_header(const tc_response *r, const char *name, char *out, size_t n) {
  size_t nl = strlen(name);
  const char *p = strstr(r->hdrs, "\r\n");
  while (p && p[2] != '\r') {
    p += 2;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ')
        v++;
      const char *e = strstr(v, "\r\n");
      snprintf(out, n, "%.*s", (int)(e - v), v);
      return 0;
    }
    p = strstr(p, "\r\n");
  }
  return -1;
}

int tc_hello(int port) {
  int fd = tc_connect(port);
  if (fd < 0)
    return -1;
  tc_sends(fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  tc_response r;
  int st = tc_read_response(fd, &r, 3000);
  if (st == 200 && strcmp(r.body, "hello") != 0)
    st = -2;
  tc_response_free(&r);
  close(fd);
  return st;
}

/* ------------------------------------------------------------------ */
/* the fixture's MariaDB                                               */

static char db_socket[256];

const char *tdb_socket(void) {
  if (db_socket[0])
    return db_socket;
  const char *env = getenv("GDX_TEST_DB_ENV");
  FILE *f = env ? fopen(env, "r") : NULL;
  if (f == NULL) {
    fprintf(stderr, "harness: GDX_TEST_DB_ENV %s%s: this test needs the fixture's MariaDB; run it "
                    "through ctest, whose mariadb_start writes that file\n",
            env ? "names an unreadable file " : "is not set", env ? env : "");
    exit(1);
  }
  char line[512];
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, "GDX_DB_SOCKET=", 14) == 0)
      snprintf(db_socket, sizeof(db_socket), "%.*s", (int)strcspn(line + 14, "\n"), line + 14);
  fclose(f);
  if (db_socket[0] == '\0') {
    fprintf(stderr, "harness: %s has no GDX_DB_SOCKET line: the fixture did not start\n", env);
    exit(1);
  }
  return db_socket;
}

static MYSQL *root_conn(const char *sock, const char *db) {
  gdx_db_options o = {.socket = sock ? sock : tdb_socket(), .user = "root", .database = db};
  char err[512];
  MYSQL *my = gdx_db_connect(&o, 1, err, sizeof(err));
  if (my == NULL)
    FAIL("%s", err);
  return my;
}

MYSQL *tdb_open(const char *db) { return root_conn(NULL, db); }

int tdb_query(MYSQL *my, const char *sql) {
  if (mysql_query(my, sql) != 0)
    return (int)mysql_errno(my);
  do {
    MYSQL_RES *res = mysql_store_result(my);
    if (res)
      mysql_free_result(res);
  } while (mysql_next_result(my) == 0);
  return 0;
}

unsigned long tdb_conn_id(MYSQL *my) { return mysql_thread_id(my); }

void tdb_close(MYSQL *my) { mysql_close(my); }

int tdb_exec_at(const char *sock, const char *db, const char *sql) {
  MYSQL *my = root_conn(sock, db);
  int rc = tdb_query(my, sql);
  mysql_close(my);
  return rc;
}

int tdb_exec(const char *db, const char *sql) { return tdb_exec_at(NULL, db, sql); }

void tdb_scalar(const char *db, const char *sql, char *out, size_t n) {
  tdb_scalar_at(NULL, db, sql, out, n);
}

void tdb_scalar_at(const char *sock, const char *db, const char *sql, char *out, size_t n) {
  MYSQL *my = root_conn(sock, db);
  out[0] = '\0';
  if (mysql_query(my, sql) == 0) {
    MYSQL_RES *res = mysql_store_result(my);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (row && row[0])
      snprintf(out, n, "%s", row[0]);
    if (res)
      mysql_free_result(res);
  }
  mysql_close(my);
}

int tdb_wait_scalar(const char *sock, const char *db, const char *sql, const char *want,
                    double seconds, char *out, size_t n) {
  th_deadline d = th_deadline_in((int)(seconds * 1000));
  do {
    tdb_scalar_at(sock, db, sql, out, n);
    if (strcmp(out, want) == 0)
      return 1;
  } while (th_poll(&d));
  return 0;
}

void tdb_options(gdx_db_options *o, const char *prefix, char *dbname, size_t n) {
  snprintf(dbname, n, "%s_%d", prefix, (int)getpid());
  char sql[512];
  snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s", dbname, dbname);
  if (tdb_exec(NULL, sql) != 0)
    FAIL("cannot create database %s", dbname);
  *o = (gdx_db_options){.socket = tdb_socket(), .user = "root", .database = dbname,
                        .pool_size = 2, .queue_max = 64};
}
