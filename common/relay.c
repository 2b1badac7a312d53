#include "relay.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "log.h"
#include "num.h"

#define MAX_RESP_HEADERS 64
#define MAX_RESP_HEADER_BYTES (16 * 1024)
#define MAX_REQ_HEADERS 110

typedef struct relay {
  gdx_relay_opts o;
  gdx_http_req *req;      /* NULL once the client side is done or gone */
  gdx_httpc_req *up;      /* NULL once the transfer is done */
  uv_loop_t *loop;
  uv_timer_t head_timer;
  uv_idle_t kick; /* deferred resumes, never from inside a client callback; an idle
                   * handle (not a check) so that the loop does not block in poll
                   * while one is pending */
  int handles;
  uint64_t started_ms;
  /* request body: client -> next hop */
  gdx_buf upbuf;
  size_t upoff;
  int client_complete, client_paused, up_paused, has_body;
  /* response */
  int status, head_seen, started, congested, buffering, timed_out;
  int64_t clen;
  char ctype[128];
  char *hdrs[MAX_RESP_HEADERS];
  int nhdrs;
  size_t hdr_bytes;
  gdx_buf respbuf;
  int want_resume_up, want_resume_client;
  gdx_relay_result res;
  int finished;
} relay;

static const char *const hop_headers[] = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
    "expect", "x-request-id", "date", "server", NULL};

int gdx_relay_hop_header(const char *name) {
  for (int i = 0; hop_headers[i]; i++)
    if (strcasecmp(name, hop_headers[i]) == 0)
      return 1;
  return 0;
}

void gdx_relay_error(gdx_http_req *req, int status, const char *type, const char *code,
                     const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  char body[1024];
  gdx_buf b = {body, 0, sizeof(body), sizeof(body) - 1};
  gdx_buf_appendf(&b, "{\"error\":{\"type\":\"%s\",\"code\":\"%s\",\"message\":\"", type, code);
  gdx_buf_append_json_str(&b, msg, strlen(msg));
  gdx_buf_appends(&b, "\",\"request_id\":\"");
  const char *id = gdx_http_req_id(req);
  gdx_buf_append_json_str(&b, id, strlen(id));
  gdx_buf_appends(&b, "\"}}\n");
  gdx_http_add_header(req, "X-Gdx-Error-Type", type);
  gdx_http_add_header(req, "Cache-Control", "no-store");
  gdx_http_respond(req, status, "application/json", b.data, b.len);
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

static void relay_free(relay *r) {
  for (int i = 0; i < r->nhdrs; i++)
    free(r->hdrs[i]);
  gdx_buf_free(&r->upbuf);
  gdx_buf_free(&r->respbuf);
  free(r);
}

static void on_handle_closed(uv_handle_t *h) {
  relay *r = h->data;
  if (--r->handles == 0)
    relay_free(r);
}

static void maybe_finish(relay *r) {
  if (r->finished || r->up != NULL || r->req != NULL)
    return;
  r->finished = 1;
  if (r->o.on_finish)
    r->o.on_finish(&r->res, r->o.data);
  uv_timer_stop(&r->head_timer);
  uv_idle_stop(&r->kick);
  uv_close((uv_handle_t *)&r->head_timer, on_handle_closed);
  uv_close((uv_handle_t *)&r->kick, on_handle_closed);
}

/* The client side is finished: forget req (it may still deliver a body we
 * no longer want). */
static void release_client(relay *r) {
  if (r->req == NULL)
    return;
  gdx_http_req_on(r->req, NULL, NULL, NULL);
  gdx_http_req_on_drain(r->req, NULL);
  gdx_http_req_set_data(r->req, NULL);
  if (r->client_paused)
    gdx_http_req_resume(r->req); /* let the server read and drop the rest */
  r->req = NULL;
}

static void set_error(relay *r, const char *type, const char *code) {
  snprintf(r->res.error_type, sizeof(r->res.error_type), "%s", type);
  snprintf(r->res.error_code, sizeof(r->res.error_code), "%s", code);
}

static void fail_client(relay *r, int status, const char *type, const char *code,
                        const char *msg) {
  if (r->req == NULL)
    return;
  set_error(r, type, code);
  r->res.status = status;
  if (r->started) {
    gdx_http_abort(r->req);
    r->req = NULL;
    return;
  }
  gdx_http_req *req = r->req;
  release_client(r);
  gdx_relay_error(req, status, type, code, "%s", msg);
}

static void on_kick(uv_idle_t *h) {
  relay *r = h->data;
  uv_idle_stop(h);
  if (r->want_resume_client && r->req && r->client_paused) {
    r->client_paused = 0;
    gdx_http_req_resume(r->req);
  }
  r->want_resume_client = 0;
  if (r->want_resume_up && r->up) {
    r->want_resume_up = 0;
    gdx_httpc_resume(r->up);
  }
  r->want_resume_up = 0;
}

static void kick(relay *r) { uv_idle_start(&r->kick, on_kick); }

/* ------------------------------------------------------------------ */
/* client side                                                         */

static void client_body(gdx_http_req *req, const char *data, size_t len) {
  relay *r = gdx_http_req_get_data(req);
  if (r->upoff > 0) { /* keep the unsent bytes at the front */
    memmove(r->upbuf.data, r->upbuf.data + r->upoff, r->upbuf.len - r->upoff);
    r->upbuf.len -= r->upoff;
    r->upoff = 0;
  }
  if (gdx_buf_append(&r->upbuf, data, len) != GDX_OK) {
    fail_client(r, 503, "broker", "busy", "out of memory");
    return;
  }
  if (r->upbuf.len - r->upoff >= GDX_RELAY_UP_HIGH && !r->client_paused) {
    r->client_paused = 1;
    gdx_http_req_pause(req);
  }
  if (r->up_paused) {
    r->up_paused = 0;
    r->want_resume_up = 1;
    kick(r);
  }
}

static void client_complete(gdx_http_req *req) {
  relay *r = gdx_http_req_get_data(req);
  r->client_complete = 1;
  if (r->up_paused) {
    r->up_paused = 0;
    r->want_resume_up = 1;
    kick(r);
  }
}

static void client_abort(gdx_http_req *req) {
  relay *r = gdx_http_req_get_data(req);
  r->req = NULL;
  r->res.status = 499;
  if (!r->res.error_type[0])
    set_error(r, "client", "client_gone");
  if (r->up)
    gdx_httpc_cancel(r->up); /* runs up_done now */
  maybe_finish(r);
}

static void client_drain(gdx_http_req *req) {
  relay *r = gdx_http_req_get_data(req);
  if (r == NULL || !r->congested)
    return;
  r->congested = 0;
  r->want_resume_up = 1;
  kick(r);
}

/* curl pulls the request body. */
static size_t up_read(char *buf, size_t len, void *data) {
  relay *r = data;
  size_t avail = r->upbuf.len - r->upoff;
  if (avail == 0) {
    if (r->client_complete || r->req == NULL)
      return r->req == NULL && !r->client_complete ? GDX_HTTPC_READ_ABORT : 0;
    r->up_paused = 1;
    return GDX_HTTPC_READ_PAUSE;
  }
  size_t n = avail < len ? avail : len;
  memcpy(buf, r->upbuf.data + r->upoff, n);
  r->upoff += n;
  r->res.bytes_in += n;
  if (r->upoff == r->upbuf.len) {
    r->upbuf.len = 0;
    r->upoff = 0;
  }
  if (r->client_paused && r->upbuf.len - r->upoff < GDX_RELAY_UP_HIGH / 4) {
    r->want_resume_client = 1;
    kick(r);
  }
  return n;
}

/* ------------------------------------------------------------------ */
/* next hop side                                                       */

static void on_head_timeout(uv_timer_t *t) {
  relay *r = t->data;
  if (r->head_seen || r->up == NULL)
    return;
  r->timed_out = 1;
  gdx_httpc_cancel(r->up);
}

static void up_header(gdx_httpc_req *u, const char *line, size_t len, void *data) {
  relay *r = data;
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    /* "HTTP/1.1 200 OK": three digits after the first space, else 0 */
    const char *sp = memchr(line, ' ', len);
    long long st = 0;
    if (sp == NULL || (size_t)(line + len - (sp + 1)) < 3 ||
        gdx_num_parse_n(sp + 1, 3, 100, 599, &st) != GDX_OK)
      st = 0;
    r->status = (int)st;
    for (int i = 0; i < r->nhdrs; i++)
      free(r->hdrs[i]);
    r->nhdrs = 0;
    r->hdr_bytes = 0;
    r->ctype[0] = '\0';
    r->clen = -1;
    r->res.peer_upstream_ms = -1;
    if (r->status >= 200) {
      r->head_seen = 1;
      r->res.ms_head = uv_now(r->loop) - r->started_ms;
      uv_timer_stop(&r->head_timer);
    }
    return;
  }
  const char *colon = memchr(line, ':', len);
  if (colon == NULL || colon == line)
    return;
  size_t nlen = (size_t)(colon - line);
  const char *v = colon + 1;
  while (v < line + len && (*v == ' ' || *v == '\t'))
    v++;
  size_t vlen = (size_t)(line + len - v);
  while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
    vlen--;
  char name[64];
  if (nlen >= sizeof(name))
    return;
  memcpy(name, line, nlen);
  name[nlen] = '\0';
  if (strcasecmp(name, "Content-Type") == 0) {
    snprintf(r->ctype, sizeof(r->ctype), "%.*s", (int)vlen, v);
    return;
  }
  if (strcasecmp(name, "Content-Length") == 0) {
    long long n;
    r->clen = gdx_num_parse_n(v, vlen, 0, LLONG_MAX, &n) == GDX_OK ? n : -1;
    return;
  }
  /* the next hop's own figures: a value that is not a plain number in
   * range counts as not sent */
  if (strcasecmp(name, "X-Gdx-Upstream-Ms") == 0) {
    long long n;
    r->res.peer_upstream_ms = gdx_num_parse_n(v, vlen, 0, 86400000, &n) == GDX_OK ? (long)n : -1;
    return;
  }
  if (strcasecmp(name, "X-Gdx-Records") == 0) {
    long long n;
    r->res.peer_records = gdx_num_parse_n(v, vlen, 0, 1000000, &n) == GDX_OK ? (long)n : -1;
  } /* and passed on */
  if (strcasecmp(name, "X-Gdx-Error-Type") == 0)
    snprintf(r->res.error_type, sizeof(r->res.error_type), "%.*s", (int)vlen, v);
  if (gdx_relay_hop_header(name))
    return;
  if (r->nhdrs == MAX_RESP_HEADERS || r->hdr_bytes + len > MAX_RESP_HEADER_BYTES)
    return; /* beyond the caps: dropped, not stored */
  char *h = malloc(len + 1);
  if (h == NULL)
    return;
  memcpy(h, line, len);
  h[len] = '\0';
  r->hdrs[r->nhdrs++] = h;
  r->hdr_bytes += len;
}

static int start_response(relay *r, int64_t clen) {
  gdx_http_req *req = r->req;
  for (int i = 0; i < r->nhdrs; i++) {
    char *colon = strchr(r->hdrs[i], ':');
    *colon = '\0';
    const char *v = colon + 1;
    while (*v == ' ')
      v++;
    gdx_http_add_header(req, r->hdrs[i], v);
    *colon = ':';
  }
  if (r->o.on_head)
    r->o.on_head(req, r->status, &r->res, r->o.data);
  if (r->status == 204 || r->status == 304)
    clen = 0;
  r->started = 1;
  r->res.status = r->status;
  return gdx_http_start(req, r->status, r->ctype[0] ? r->ctype : NULL, clen);
}

static int up_data(gdx_httpc_req *u, const char *data, size_t len, void *ud) {
  relay *r = ud;
  if (r->req == NULL)
    return -1;
  if (!r->started && !r->buffering) {
    if (r->o.want_buffer && r->o.want_buffer(r->ctype, r->o.data)) {
      r->buffering = 1;
      gdx_buf_init(&r->respbuf, r->o.buffer_max);
    } else if (start_response(r, r->clen) != GDX_OK) {
      return -1;
    }
  }
  if (r->buffering) {
    if (gdx_buf_append(&r->respbuf, data, len) != GDX_OK) {
      fail_client(r, 502, "broker", "response_too_large",
                  "the response is too large to be filtered to the authorized data items");
      return -1;
    }
    return 0;
  }
  if (r->congested)
    return 1; /* not consumed: curl hands these bytes over again after resume */
  int rc = gdx_http_write(r->req, data, len);
  if (rc < 0)
    return -1;
  r->res.bytes_out += len;
  if (rc == 1) {
    r->congested = 1;
    gdx_http_req_on_drain(r->req, client_drain);
  }
  return 0;
}

static void up_done(gdx_httpc_req *u, int status, long http_status, void *data) {
  relay *r = data;
  r->up = NULL;
  uv_timer_stop(&r->head_timer);
  if (r->req == NULL) {
    maybe_finish(r);
    return;
  }
  if (status != GDX_OK || !r->head_seen) {
    const char *hop = r->o.next_hop ? r->o.next_hop : "upstream";
    char msg[300];
    if (r->timed_out || status == GDX_ETIMEDOUT) {
      snprintf(msg, sizeof(msg), "the %s did not answer in time", hop);
      fail_client(r, 504, hop, "timeout", msg);
    } else {
      snprintf(msg, sizeof(msg), "the %s could not be reached: %s", hop,
               status == GDX_OK ? "no response" : gdx_httpc_error(u));
      fail_client(r, 502, hop, status == GDX_ETLS ? "tls_failed" : "unreachable", msg);
    }
    maybe_finish(r);
    return;
  }
  gdx_http_req *req = r->req;
  if (r->buffering) {
    char why[256] = "";
    if (r->o.transform(&r->respbuf, r->ctype, r->o.data, why, sizeof(why)) != 0) {
      fail_client(r, 502, "broker", "unfilterable_response", why);
      maybe_finish(r);
      return;
    }
    if (start_response(r, (int64_t)r->respbuf.len) == GDX_OK) {
      gdx_http_write(req, r->respbuf.data, r->respbuf.len);
      r->res.bytes_out = r->respbuf.len;
    }
  } else if (!r->started) {
    start_response(r, r->clen >= 0 ? r->clen : 0);
  }
  release_client(r);
  gdx_http_end(req);
  maybe_finish(r);
}

int gdx_relay_start(gdx_http_req *req, const gdx_relay_opts *o) {
  relay *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return GDX_ENOMEM;
  r->o = *o;
  r->req = req;
  r->clen = -1;
  r->res.peer_upstream_ms = -1;
  r->res.peer_records = -1;
  r->loop = gdx_http_server_loop(gdx_http_req_server(req));
  r->started_ms = uv_now(r->loop);
  gdx_buf_init(&r->upbuf, GDX_RELAY_UP_HIGH * 2 + 65536);

  /* request headers: the caller's, then the client's end-to-end ones, laid
   * out in one allocation */
  const char *hv[MAX_REQ_HEADERS + 32];
  int nh = 0;
  for (const char *const *h = o->headers; h && *h && nh < 30; h++)
    hv[nh++] = *h;
  char idh[80];
  snprintf(idh, sizeof(idh), "X-Request-Id: %s", gdx_http_req_id(req));
  hv[nh++] = idh;
  const char *name, *value;
  size_t need = 0;
  for (unsigned i = 0; gdx_http_req_header_at(req, i, &name, &value) == 0; i++)
    need += strlen(name) + strlen(value) + 3;
  char *arena = malloc(need + 1), *at = arena;
  int ncopied = 0;
  for (unsigned i = 0; arena && gdx_http_req_header_at(req, i, &name, &value) == 0; i++) {
    if (gdx_relay_hop_header(name) || ncopied == MAX_REQ_HEADERS)
      continue;
    int drop = 0;
    for (const char *const *d = o->drop_headers; d && *d && !drop; d++)
      drop = strcasecmp(*d, name) == 0 ||
             (strchr(*d, '*') && strncasecmp(*d, name, strlen(*d) - 1) == 0);
    if (drop)
      continue;
    size_t nl = strlen(name), vl = strlen(value);
    hv[nh++] = at;
    memcpy(at, name, nl);
    at[nl] = ':';
    at[nl + 1] = ' ';
    memcpy(at + nl + 2, value, vl + 1);
    at += nl + vl + 3;
    ncopied++;
  }
  hv[nh] = NULL;
  const char *te = gdx_http_req_header(req, "Transfer-Encoding");
  int64_t cl = gdx_http_req_content_length(req);
  r->has_body = cl > 0 || te != NULL;
  gdx_httpc_opts ho = {
      .method = gdx_http_req_method(req),
      .url = o->url,
      .headers = hv,
      .read_body = r->has_body ? up_read : NULL,
      .stream_body_len = cl > 0 ? cl : -1,
      .on_data = up_data,
      .on_header = up_header,
      .on_done = up_done,
      .data = r,
      .connect_timeout_ms = o->connect_timeout_ms,
      .idle_timeout_s = o->idle_timeout_s,
      .ca_file = o->ca_file,
      .cert_file = o->cert_file,
      .key_file = o->key_file,
      .pinned_key = o->pinned_key,
      .native = o->native,
  };
  if (!r->has_body && strcmp(ho.method, "GET") != 0 && strcmp(ho.method, "HEAD") != 0) {
    ho.body = ""; /* POST/PUT/DELETE without a body: Content-Length: 0 */
    ho.body_len = 0;
  }
  uv_timer_init(r->loop, &r->head_timer);
  uv_idle_init(r->loop, &r->kick);
  r->head_timer.data = r->kick.data = r;
  r->handles = 2;
  gdx_http_req_set_data(req, r);
  gdx_http_req_on(req, r->has_body ? client_body : NULL, client_complete, client_abort);
  if (!r->has_body)
    r->client_complete = 1;
  int rc = gdx_httpc_request(o->client, &ho, &r->up);
  free(arena); /* the client copied the headers */
  if (rc != GDX_OK) {
    r->up = NULL;
    gdx_http_req_on(req, NULL, NULL, NULL);
    gdx_http_req_set_data(req, NULL);
    r->req = NULL;
    r->finished = 1;
    uv_close((uv_handle_t *)&r->head_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->kick, on_handle_closed);
    return rc;
  }
  if (o->head_timeout_ms > 0)
    uv_timer_start(&r->head_timer, on_head_timeout, (uint64_t)o->head_timeout_ms, 0);
  return GDX_OK;
}
