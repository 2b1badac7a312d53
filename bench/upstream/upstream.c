/* gdx-upstream: a small internal HTTP service, the "upstream" behind a
 * provider's node in the demo, the tests and bench/proxy. It is a real HTTP
 * server (the gdx server library) with a few endpoints:
 *
 *   GET  /hello                    16 bytes of text (the benchmark body)
 *   GET  /enterprises/{uscc}       a JSON record with Chinese content
 *   GET  /enterprises              a JSON list of records
 *   GET  /health                   200 {"status":"ok"}
 *   GET  /big?bytes=N              N bytes (streamed, not held in memory)
 *   GET  /slow?ms=N                answers after N ms
 *   POST /echo                     the body back, with its length and a hash
 *   GET  /headers                  the request headers as JSON
 *
 * Usage: gdx-upstream [--host H] [--port P] [--port-file F]
 */
#include <getopt.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "http.h"
#include "log.h"
#include "router.h"

static uv_loop_t *loop;

static void hello(gdx_http_req *req, void *d) {
  (void)d;
  gdx_http_respond(req, 200, "text/plain", "hello from gdx!\n", 16);
}

static void health(gdx_http_req *req, void *d) {
  (void)d;
  gdx_http_respond(req, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
}

static const char *const names[] = {"厦门市思明区示例科技有限公司", "福州市鼓楼区数据服务有限公司",
                                    "泉州市晋江鞋业制造有限公司"};

static void record(gdx_buf *b, int i, const char *uscc) {
  gdx_buf_appendf(b,
                  "{\"uscc\":\"%s\",\"ent_name\":\"%s\",\"legal_rep\":\"张%s\","
                  "\"reg_capital\":%d,\"address\":\"福建省%s\"}",
                  uscc, names[i % 3], i % 2 ? "伟" : "敏", 1000 + i * 250,
                  i % 2 ? "厦门市" : "福州市");
}

static void enterprise(gdx_http_req *req, void *d) {
  (void)d;
  const char *uscc = gdx_http_req_path(req) + strlen("/enterprises/");
  if (strlen(uscc) != 18 || strspn(uscc, "0123456789ABCDEFGHJKLMNPQRTUWXY") != 18) {
    gdx_http_respond(req, 404, "application/json", "{\"message\":\"no such enterprise\"}\n", 33);
    return;
  }
  gdx_buf b;
  gdx_buf_init(&b, 4096);
  record(&b, (unsigned char)uscc[17] % 3, uscc);
  gdx_buf_appends(&b, "\n");
  gdx_http_respond(req, 200, "application/json; charset=utf-8", b.data, b.len);
  gdx_buf_free(&b);
}

static void enterprises(gdx_http_req *req, void *d) {
  (void)d;
  gdx_buf b;
  gdx_buf_init(&b, 65536);
  gdx_buf_appends(&b, "{\"items\":[");
  static const char *const ids[] = {"91350203MA2XK8UX3L", "91350102MA31Y5BQ0B",
                                    "91350582MA2Y6TQ74K"};
  for (int i = 0; i < 3; i++) {
    if (i)
      gdx_buf_appends(&b, ",");
    record(&b, i, ids[i]);
  }
  gdx_buf_appends(&b, "]}\n");
  gdx_http_respond(req, 200, "application/json; charset=utf-8", b.data, b.len);
  gdx_buf_free(&b);
}

static long long query_num(gdx_http_req *req, const char *key, long long def) {
  const char *q = strstr(gdx_http_req_query(req), key);
  return q ? atoll(q + strlen(key)) : def;
}

/* /big: streams with backpressure, so memory stays flat at any size. */
typedef struct {
  long long left;
} big_state;

static char chunk[65536];

static void big_pump(gdx_http_req *req) {
  big_state *s = gdx_http_req_get_data(req);
  while (s->left > 0) {
    size_t n = s->left < (long long)sizeof(chunk) ? (size_t)s->left : sizeof(chunk);
    s->left -= (long long)n;
    int rc = gdx_http_write(req, chunk, n);
    if (rc < 0)
      break;
    if (rc == 1 && s->left > 0)
      return; /* on_drain calls again */
  }
  gdx_http_req_set_data(req, NULL);
  gdx_http_req_on(req, NULL, NULL, NULL);
  free(s);
  gdx_http_end(req);
}

static void big_abort(gdx_http_req *req) { free(gdx_http_req_get_data(req)); }

static void big(gdx_http_req *req, void *d) {
  (void)d;
  big_state *s = calloc(1, sizeof(*s));
  s->left = query_num(req, "bytes=", 1 << 20);
  gdx_http_req_set_data(req, s);
  gdx_http_req_on(req, NULL, NULL, big_abort);
  gdx_http_req_on_drain(req, big_pump);
  gdx_http_start(req, 200, "application/octet-stream", s->left);
  big_pump(req);
}

typedef struct {
  uv_timer_t t;
  gdx_http_req *req;
} slow_state;

static void slow_closed(uv_handle_t *h) { free(h->data); }

static void slow_fire(uv_timer_t *t) {
  slow_state *s = t->data;
  if (s->req) {
    gdx_http_req_set_data(s->req, NULL);
    gdx_http_respond(s->req, 200, "text/plain", "slow\n", 5);
  }
  uv_close((uv_handle_t *)t, slow_closed);
}

static void slow_abort(gdx_http_req *req) {
  slow_state *s = gdx_http_req_get_data(req);
  if (s)
    s->req = NULL;
}

static void slow(gdx_http_req *req, void *d) {
  (void)d;
  slow_state *s = calloc(1, sizeof(*s));
  s->req = req;
  uv_timer_init(loop, &s->t);
  s->t.data = s;
  gdx_http_req_set_data(req, s);
  gdx_http_req_on(req, NULL, NULL, slow_abort);
  uv_timer_start(&s->t, slow_fire, (uint64_t)query_num(req, "ms=", 1000), 0);
}

typedef struct {
  EVP_MD_CTX *md;
  long long n;
} echo_state;

static void echo_body(gdx_http_req *req, const char *data, size_t len) {
  echo_state *s = gdx_http_req_get_data(req);
  EVP_DigestUpdate(s->md, data, len);
  s->n += (long long)len;
}

static void echo_done(gdx_http_req *req) {
  echo_state *s = gdx_http_req_get_data(req);
  unsigned char md[32];
  unsigned mdlen;
  EVP_DigestFinal_ex(s->md, md, &mdlen);
  char hex[65], body[200];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  int len = snprintf(body, sizeof(body), "{\"bytes\":%lld,\"sha256\":\"%s\"}\n", s->n, hex);
  EVP_MD_CTX_free(s->md);
  free(s);
  gdx_http_req_set_data(req, NULL);
  gdx_http_respond(req, 200, "application/json", body, (size_t)len);
}

static void echo_abort(gdx_http_req *req) {
  echo_state *s = gdx_http_req_get_data(req);
  if (s) {
    EVP_MD_CTX_free(s->md);
    free(s);
  }
}

static void echo(gdx_http_req *req, void *d) {
  (void)d;
  echo_state *s = calloc(1, sizeof(*s));
  s->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
  gdx_http_req_set_data(req, s);
  gdx_http_req_on(req, echo_body, echo_done, echo_abort);
}

static void headers(gdx_http_req *req, void *d) {
  (void)d;
  gdx_buf b;
  gdx_buf_init(&b, 65536);
  gdx_buf_appends(&b, "{");
  const char *n, *v;
  for (unsigned i = 0; gdx_http_req_header_at(req, i, &n, &v) == 0; i++) {
    gdx_buf_appendf(&b, "%s\"", i ? "," : "");
    gdx_buf_append_json_str(&b, n, strlen(n));
    gdx_buf_appends(&b, "\":\"");
    gdx_buf_append_json_str(&b, v, strlen(v));
    gdx_buf_appends(&b, "\"");
  }
  gdx_buf_appends(&b, "}\n");
  gdx_http_respond(req, 200, "application/json", b.data, b.len);
  gdx_buf_free(&b);
}

static gdx_http_server *srv;
static uv_signal_t sig;

static void on_sig(uv_signal_t *s, int n) {
  (void)n;
  uv_close((uv_handle_t *)s, NULL);
  gdx_http_server_shutdown(srv, NULL, NULL);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *port_file = NULL;
  int port = 0, c;
  static const struct option opts[] = {{"host", required_argument, NULL, 'H'},
                                       {"port", required_argument, NULL, 'p'},
                                       {"port-file", required_argument, NULL, 'f'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'H': host = optarg; break;
    case 'p': port = atoi(optarg); break;
    case 'f': port_file = optarg; break;
    case 'h':
      puts("Usage: gdx-upstream [--host H] [--port P] [--port-file F]\n"
           "A small internal HTTP service for the demo, tests and benchmarks:\n"
           "/hello /health /enterprises[/USCC] /big?bytes=N /slow?ms=N /echo /headers");
      return 0;
    default: return 2;
    }
  }
  memset(chunk, 'x', sizeof(chunk));
  signal(SIGPIPE, SIG_IGN);
  gdx_log_setup(GDX_LOG_WARN, GDX_LOG_HUMAN, "-");
  loop = uv_default_loop();
  gdx_router *r;
  gdx_router_new(&r);
  gdx_router_add(r, "GET", "/hello", hello, NULL);
  gdx_router_add(r, "GET", "/health", health, NULL);
  gdx_router_add(r, "GET", "/enterprises", enterprises, NULL);
  gdx_router_add(r, "GET", "/enterprises/*", enterprise, NULL);
  gdx_router_add(r, "GET", "/big", big, NULL);
  gdx_router_add(r, "GET", "/slow", slow, NULL);
  gdx_router_add(r, "POST", "/echo", echo, NULL);
  gdx_router_add(r, "GET", "/headers", headers, NULL);
  gdx_http_server_options o = {.loop = loop, .on_request = gdx_router_dispatch, .data = r,
                               .name = "upstream"};
  gdx_http_limits_default(&o.limits);
  o.limits.max_body_bytes = 1ULL << 40;
  char err[256];
  if (gdx_http_server_new(&o, &srv) || gdx_http_listen(srv, host, port, NULL, err, sizeof(err))) {
    fprintf(stderr, "gdx-upstream: %s\n", err);
    return 1;
  }
  if (port_file) {
    FILE *f = fopen(port_file, "w");
    if (f) {
      fprintf(f, "%d\n", gdx_http_server_port(srv, 0));
      fclose(f);
    }
  }
  uv_signal_init(loop, &sig);
  uv_signal_start(&sig, on_sig, SIGTERM);
  uv_run(loop, UV_RUN_DEFAULT);
  gdx_router_free(r);
  return 0;
}
