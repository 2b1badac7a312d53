/* libFuzzer target for the request-parsing path: the bytes go through a
 * socketless connection of the real server (gdx_http_test_conn_*), split at
 * a point chosen by the first input byte, to routes that answer at once, read
 * and echo a body, or stream a chunked response. Any crash, leak or
 * sanitizer report is a bug. Run: make fuzz (docs/fuzzing.md). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "log.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gdx_http_server *srv;

static void sink(const char *d, size_t n, void *ud) { (void)d, (void)n, (void)ud; }

static void h_hello(gdx_http_req *req, void *d) {
  gdx_http_add_header(req, "X-Test", gdx_http_req_header(req, "X-Echo") ? "echo" : "none");
  gdx_http_respond(req, 200, "text/plain", "hello", 5);
}

static void body_piece(gdx_http_req *req, const char *p, size_t n) {
  gdx_buf_append(gdx_http_req_get_data(req), p, n);
}
static void body_free(gdx_http_req *req) {
  gdx_buf *b = gdx_http_req_get_data(req);
  gdx_buf_free(b);
  free(b);
}
static void body_done(gdx_http_req *req) {
  gdx_buf *b = gdx_http_req_get_data(req);
  gdx_http_start(req, 200, "application/octet-stream", -1);
  gdx_http_write(req, b->data ? b->data : "", b->len);
  gdx_http_write(req, "tail", 4);
  gdx_http_end(req);
  body_free(req);
}
static void h_echo(gdx_http_req *req, void *d) {
  gdx_buf *b = calloc(1, sizeof(*b));
  gdx_buf_init(b, 1 << 16);
  gdx_http_req_set_data(req, b);
  gdx_http_req_on(req, body_piece, body_done, body_free);
}

static void init(void) {
  static uv_loop_t loop;
  static gdx_router *router;
  gdx_log_setup(GDX_LOG_ERROR, GDX_LOG_HUMAN, NULL);
  uv_loop_init(&loop);
  gdx_router_new(&router);
  gdx_router_add(router, "GET", "/hello", h_hello, NULL);
  gdx_router_add(router, "*", "/echo*", h_echo, NULL);
  gdx_http_server_options o = {.loop = &loop, .on_request = gdx_router_dispatch,
                               .data = router, .name = "fuzz"};
  gdx_http_limits_default(&o.limits);
  o.limits.max_header_bytes = 2048;
  o.limits.max_body_bytes = 8192;
  o.limits.max_headers = 20;
  gdx_http_server_new(&o, &srv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (srv == NULL)
    init();
  if (size == 0)
    return 0;
  size_t split = data[0] ? data[0] : size;
  data++, size--;
  gdx_http_conn *c = gdx_http_test_conn_new(srv, sink, NULL);
  for (size_t off = 0; off < size; off += split)
    if (gdx_http_test_conn_feed(c, (const char *)data + off,
                                size - off < split ? size - off : split) < 0)
      break;
  gdx_http_test_conn_free(c);
  return 0;
}
