#include "broker_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compress.h"
#include "error.h"
#include "http.h"

#define URL_MAX 16384 /* a table read's URL carries keys (after=, upto=) */

struct gdx_broker_client {
  gdx_httpc *httpc;
  char *url, *ca_file, *cert_file, *key_file;
  int closing;
};

/* One call in flight: the caller's buffer and callback, and the body it
 * sent (the transfer needs it until the end). */
typedef struct {
  gdx_buf *answer;
  int zstd_sent; /* the answer came with Content-Encoding: zstd */
  char *body;
  gdx_broker_done_fn done;
  void *data;
} call;

int gdx_broker_client_new(uv_loop_t *loop, const char *nodes_url, const char *ca_file,
                          const char *cert_file, const char *key_file, gdx_broker_client **out) {
  gdx_broker_client *bc = calloc(1, sizeof(*bc));
  if (bc == NULL)
    return GDX_ENOMEM;
  bc->url = strdup(nodes_url);
  bc->ca_file = strdup(ca_file);
  bc->cert_file = strdup(cert_file);
  bc->key_file = strdup(key_file);
  int rc = bc->url && bc->ca_file && bc->cert_file && bc->key_file ? GDX_OK : GDX_ENOMEM;
  if (!rc)
    rc = gdx_httpc_new(loop, &bc->httpc);
  if (rc) {
    bc->closing = 1;
    gdx_broker_client_close(bc);
    return rc;
  }
  *out = bc;
  return GDX_OK;
}

void gdx_broker_client_close(gdx_broker_client *bc) {
  bc->closing = 1;
  if (bc->httpc)
    gdx_httpc_close(bc->httpc); /* runs the callbacks of what is in flight */
  free(bc->url);
  free(bc->ca_file);
  free(bc->cert_file);
  free(bc->key_file);
  free(bc);
}

const char *gdx_broker_client_url(const gdx_broker_client *bc) { return bc->url; }

/* <listener><path>[?|&<name>=<value>]… */
static int build_url(const gdx_broker_client *bc, const gdx_broker_req *r, gdx_buf *url) {
  int rc = gdx_buf_appendf(url, "%s%s", bc->url, r->path);
  for (const char *const *q = r->query; !rc && q && q[0]; q += 2) {
    if (q[1] == NULL || q[1][0] == '\0')
      continue;
    rc = gdx_buf_appendf(url, "%c%s=", strchr(url->data, '?') ? '&' : '?', q[0]);
    if (!rc)
      rc = gdx_url_encode(url, q[1]);
  }
  return rc;
}

static int start(gdx_broker_client *bc, const gdx_broker_req *r, gdx_httpc_opts *o,
                 gdx_httpc_req **out) {
  if (bc->closing)
    return GDX_ECLOSED;
  gdx_buf url;
  gdx_buf_init(&url, URL_MAX);
  int rc = build_url(bc, r, &url);
  o->method = r->method;
  o->url = url.data;
  o->timeout_ms = r->timeout_ms;
  o->idle_timeout_s = r->idle_timeout_s;
  o->ca_file = bc->ca_file;
  o->cert_file = bc->cert_file;
  o->key_file = bc->key_file;
  o->native = !r->curl;
  if (!rc)
    rc = gdx_httpc_request(bc->httpc, o, out);
  gdx_buf_free(&url);
  return rc;
}

/* ---- calls ---- */

static int call_data(gdx_httpc_req *req, const char *d, size_t n, void *ud) {
  (void)req;
  call *c = ud;
  return gdx_buf_append(c->answer, d, n) == GDX_OK ? 0 : -1;
}

static void call_header(gdx_httpc_req *req, const char *line, size_t len, void *ud) {
  (void)req;
  call *c = ud;
  static const char h[] = "content-encoding:";
  if (len < sizeof(h) - 1 || strncasecmp(line, h, sizeof(h) - 1) != 0)
    return;
  const char *v = line + sizeof(h) - 1;
  while (*v == ' ')
    v++;
  c->zstd_sent |= (size_t)(v - line) + 4 <= len && strncasecmp(v, "zstd", 4) == 0;
}

/* A compressed answer replaced by what it holds (at most the buffer's cap). */
static int inflate(gdx_buf *b, char *why, size_t n) {
  char *out;
  size_t len;
  int rc = gdx_zstd_decompress(b->data ? b->data : "", b->len, b->cap, &out, &len);
  if (rc) {
    snprintf(why, n, "the compressed answer %s",
             rc == GDX_ETOOBIG  ? "is too large"
             : rc == GDX_ENOMEM ? "does not fit in memory"
                                : "is corrupt");
    return rc;
  }
  size_t cap = b->cap;
  gdx_buf_free(b);
  b->data = out;
  b->len = len;
  b->alloc = len + 1;
  b->cap = cap;
  return GDX_OK;
}

static void call_done(gdx_httpc_req *req, int status, long http, void *ud) {
  call *c = ud;
  char why[100] = "";
  if (status == GDX_OK && c->zstd_sent)
    status = inflate(c->answer, why, sizeof(why));
  else if (status != GDX_OK)
    snprintf(why, sizeof(why), "%s", gdx_httpc_error(req));
  c->done(status, http, why, c->data);
  free(c->body);
  free(c);
}

int gdx_broker_call(gdx_broker_client *bc, const gdx_broker_req *r, gdx_buf *answer, int zstd,
                    gdx_broker_done_fn done, void *data, gdx_httpc_req **out) {
  call *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return GDX_ENOMEM;
  *c = (call){.answer = answer, .done = done, .data = data};
  if (r->json && (c->body = json_dumps(r->json, JSON_COMPACT)) == NULL) {
    free(c);
    return GDX_ENOMEM;
  }
  const char *headers[3] = {NULL, NULL, NULL}, **h = headers;
  if (c->body)
    *h++ = "Content-Type: application/json";
  if (zstd)
    *h++ = "Accept-Encoding: zstd";
  gdx_httpc_opts o = {.headers = headers,
                      .body = c->body,
                      .body_len = c->body ? strlen(c->body) : 0,
                      .on_data = call_data,
                      .on_header = zstd ? call_header : NULL,
                      .on_done = call_done,
                      .data = c};
  gdx_buf_reset(answer);
  int rc = start(bc, r, &o, out);
  if (rc) {
    free(c->body);
    free(c);
  }
  return rc;
}

/* ---- streams ---- */

int gdx_broker_stream(gdx_broker_client *bc, const gdx_broker_req *r,
                      void (*on_header)(gdx_httpc_req *, const char *, size_t, void *),
                      int (*on_data)(gdx_httpc_req *, const char *, size_t, void *),
                      void (*on_done)(gdx_httpc_req *, int, long, void *), void *data,
                      gdx_httpc_req **out) {
  gdx_httpc_opts o = {.on_header = on_header, .on_data = on_data, .on_done = on_done, .data = data};
  return start(bc, r, &o, out);
}
