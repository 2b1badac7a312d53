/* HTTP/1.1 server. See http.h for the contract; this file is organised as
 *   server and listeners -> accept -> connection I/O (plain or TLS) ->
 *   parsing (http-parser callbacks) -> responses -> timers and shutdown.
 */
#include "http.h"

#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "error.h"
#include "log.h"

#define RBUF_MIN (64 * 1024)      /* unparsed bytes per connection, at least */
#define TLS_IN_SIZE (17 * 1024)   /* one TLS record plus slack */
#define FLUSH_AT (64 * 1024)      /* stream bodies out in pieces of this size */
#define EXTRA_HEADERS_CAP 8192    /* response headers a handler may add */
#define WRITE_QUEUE_LIMIT (64u << 20) /* a handler ignoring backpressure */
#define LINGER_MS 2000            /* read and drop after an error response */
#define ID_LEN 16

typedef struct {
  uint32_t name_off, val_off;
} hdr_slot;

struct gdx_http_req {
  gdx_http_conn *conn;
  const char *path, *query;
  int64_t content_length;
  uint64_t body_bytes;
  uint64_t start_ns;
  uint64_t resp_bytes;
  int64_t resp_remaining; /* Content-Length responses: bytes still owed */
  int status;
  unsigned head_done : 1, msg_complete : 1, resp_started : 1, resp_ended : 1,
      keep_alive : 1, chunked_resp : 1, is_head : 1, paused : 1, http10 : 1,
      want_drain : 1, recorded : 1;
  char id[ID_LEN + 1];
  gdx_buf extra;
  gdx_http_body_cb on_body;
  gdx_http_req_cb on_complete, on_abort, on_drain;
  void *data;
  char *peer_subject;
};

typedef struct listener {
  uv_tcp_t tcp;
  gdx_http_server *srv;
  SSL_CTX *tls;
  int port;
} listener;

#define MAX_LISTENERS 4

struct gdx_http_server {
  gdx_http_server_options opts;
  gdx_http_limits lim;
  listener *listeners[MAX_LISTENERS];
  int nlisteners;
  int open_handles; /* listeners, timers and connections not yet closed */
  gdx_http_conn *conns; /* doubly linked list */
  uv_timer_t tick;
  uv_timer_t shutdown_timer;
  int draining;
  void (*shutdown_cb)(gdx_http_server *, void *);
  void *shutdown_data;
  gdx_http_stats stats;
  uint32_t id_prefix;
  uint64_t id_counter;
  time_t date_sec;
  char date[40];
  char name[32];
};

struct gdx_http_conn {
  uv_tcp_t tcp;
  gdx_http_server *srv;
  gdx_http_conn *prev, *next;
  http_parser parser;
  SSL *ssl;
  BIO *rbio, *wbio;
  char *rbuf;
  size_t rstart, rlen, rcap;
  size_t url_end; /* offset in rbuf just past the request target */
  char *tbuf; /* TLS ciphertext in */
  char *hbuf; /* request head arena: url, names, values, each NUL-terminated */
  size_t hlen, hcap, head_bytes;
  hdr_slot *hdrs;
  unsigned nhdrs;
  int last_was_value;
  gdx_buf out; /* response bytes not yet handed to the socket */
  size_t wqueued;
  unsigned nwrites;
  uint64_t accepted_ms, last_read_ms, last_write_ms, idle_since_ms, req_begin_ms;
  uint64_t nrequests;
  int error_status; /* set by a parser callback that rejects the request */
  const char *error_code, *error_msg;
  unsigned req_active : 1, blocked : 1, bp_blocked : 1, in_process : 1, closing : 1, closed : 1,
      linger : 1, shutting : 1, reading : 1, tls_ready : 1, peer_eof : 1;
  uint64_t linger_until_ms;
  uv_shutdown_t shutdown_req;
  void (*sink)(const char *, size_t, void *);
  void *sink_data;
  char remote[64];
  int peer_tag; /* the handler's verdict on the peer certificate, cached */
  gdx_http_req req;
};

typedef struct {
  uv_write_t w;
  gdx_http_conn *conn;
  char *base;
  size_t len;
} write_req;

static http_parser_settings parser_settings;
static void conn_process(gdx_http_conn *c);
static void conn_flush(gdx_http_conn *c);
static void conn_close(gdx_http_conn *c);
static void conn_update_reading(gdx_http_conn *c);
static void conn_finish_request(gdx_http_conn *c);
static void conn_maybe_close_after_flush(gdx_http_conn *c);
static void server_maybe_done(gdx_http_server *srv);
static void conn_record_response(gdx_http_conn *c);
void gdx__http_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ------------------------------------------------------------------ */
/* status texts and small helpers                                      */

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

int gdx_url_decode(const char *s, size_t n, char *out, size_t outn) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int ch = (unsigned char)s[i];
    if (ch == '%') {
      if (i + 2 >= n)
        return -1;
      int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
      if (h < 0 || l < 0)
        return -1;
      ch = h * 16 + l;
      i += 2;
    } else if (ch == '+') {
      ch = ' ';
    }
    if (ch == 0 || o + 1 >= outn)
      return -1;
    out[o++] = (char)ch;
  }
  out[o] = '\0';
  return 0;
}

int gdx_url_encode(gdx_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  int rc = GDX_OK;
  for (; *s && rc == GDX_OK; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        ch == '_' || ch == '-' || ch == '.') {
      rc = gdx_buf_append(b, s, 1);
    } else {
      char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
      rc = gdx_buf_append(b, e, 3);
    }
  }
  return rc;
}

int gdx_http_query_param(const char *query, const char *name, char *out, size_t n) {
  size_t nl = strlen(name);
  const char *q = query;
  while (*q) {
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    if (len > nl && strncmp(q, name, nl) == 0 && q[nl] == '=')
      return gdx_url_decode(q + nl + 1, len - nl - 1, out, n) == 0 ? 1 : -1;
    if (!amp)
      break;
    q = amp + 1;
  }
  return 0;
}

const char *gdx_http_status_text(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  }
  return "Unknown";
}

void gdx_http_limits_default(gdx_http_limits *l) {
  l->max_header_bytes = 8 * 1024;
  l->max_url_bytes = 4 * 1024;
  l->max_body_bytes = 1024 * 1024;
  l->max_headers = 100;
  l->max_connections = 10000;
  l->header_timeout_ms = 10000;
  l->body_timeout_ms = 30000;
  l->keepalive_timeout_ms = 75000;
  l->send_timeout_ms = 30000;
  l->shutdown_timeout_ms = 10000;
  l->write_high_water = 1024 * 1024;
}

static uint64_t now_ms(gdx_http_server *srv) { return uv_now(srv->opts.loop); }

static const char *http_date(gdx_http_server *srv) {
  time_t t = time(NULL);
  if (t != srv->date_sec) {
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(srv->date, sizeof(srv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    srv->date_sec = t;
  }
  return srv->date;
}

static int valid_request_id(const char *s) {
  size_t n = 0;
  for (; s[n]; n++) {
    char ch = s[n];
    if (n >= 64 || !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
      return 0;
  }
  return n > 0;
}

/* ------------------------------------------------------------------ */
/* connections                                                         */

static int conn_init_buffers(gdx_http_conn *c) {
  gdx_http_server *srv = c->srv;
  c->hcap = srv->lim.max_header_bytes + 2 * (size_t)srv->lim.max_headers + 4;
  /* A request head stays whole in rbuf until it is validated. */
  c->rcap = RBUF_MIN;
  if (c->rcap < srv->lim.max_header_bytes + 1024)
    c->rcap = srv->lim.max_header_bytes + 1024;
  c->rbuf = malloc(c->rcap);
  c->hbuf = malloc(c->hcap);
  c->hdrs = calloc(srv->lim.max_headers + 1, sizeof(hdr_slot));
  if (!c->rbuf || !c->hbuf || !c->hdrs)
    return GDX_ENOMEM;
  gdx_buf_init(&c->out, SIZE_MAX / 2);
  gdx_buf_init(&c->req.extra, EXTRA_HEADERS_CAP);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->accepted_ms = c->idle_since_ms = c->last_read_ms = c->last_write_ms = now_ms(srv);
  return GDX_OK;
}

static void conn_link(gdx_http_conn *c) {
  gdx_http_server *srv = c->srv;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->stats.connections_open++;
  srv->stats.connections_total++;
}

static void conn_unlink(gdx_http_conn *c) {
  gdx_http_server *srv = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  srv->stats.connections_open--;
}

static void conn_free(gdx_http_conn *c) {
  if (c->ssl)
    SSL_free(c->ssl); /* frees both BIOs */
  free(c->rbuf);
  free(c->tbuf);
  free(c->hbuf);
  free(c->hdrs);
  gdx_buf_free(&c->out);
  gdx_buf_free(&c->req.extra);
  free(c->req.peer_subject);
  free(c);
}

static void on_conn_closed(uv_handle_t *h) {
  gdx_http_conn *c = h->data;
  gdx_http_server *srv = c->srv;
  conn_free(c);
  srv->open_handles--;
  server_maybe_done(srv);
}

/* Tells an unfinished handler that its request is gone. */
static void conn_abort_request(gdx_http_conn *c) {
  gdx_http_req *r = &c->req;
  if (c->req_active && r->head_done && !(r->resp_ended && r->msg_complete)) {
    gdx_http_req_cb cb = r->on_abort;
    r->on_abort = NULL;
    r->on_body = NULL;
    r->on_complete = NULL;
    r->on_drain = NULL;
    if (cb)
      cb(r);
  }
}

static void conn_close(gdx_http_conn *c) {
  if (c->closed)
    return;
  c->closed = 1;
  conn_abort_request(c);
  conn_unlink(c);
  if (c->sink)
    return; /* test connection: freed by gdx_http_test_conn_free */
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* Tells a handler waiting on backpressure that it may write again, or goes on
 * with pipelined requests held back by it. */
static void conn_maybe_drain(gdx_http_conn *c) {
  gdx_http_req *r = &c->req;
  if (c->bp_blocked && c->wqueued + c->out.len < c->srv->lim.write_high_water / 2) {
    c->bp_blocked = 0;
    conn_process(c);
    return;
  }
  if (!c->req_active || !r->want_drain || r->on_drain == NULL ||
      c->wqueued + c->out.len >= c->srv->lim.write_high_water / 2)
    return;
  r->want_drain = 0;
  r->on_drain(r);
}

static void on_write_done(uv_write_t *w, int status) {
  write_req *wr = (write_req *)w;
  gdx_http_conn *c = wr->conn;
  c->wqueued -= wr->len;
  c->nwrites--;
  free(wr->base);
  free(wr);
  if (c->closed)
    return;
  if (status < 0) {
    gdx_log_debug("http", "write to %s failed: %s", c->remote, uv_strerror(status));
    conn_close(c);
    return;
  }
  c->last_write_ms = now_ms(c->srv);
  conn_maybe_drain(c);
  if (c->closed)
    return;
  conn_maybe_close_after_flush(c);
  conn_update_reading(c);
}

/* Queues `base` (taken over; freed when written) from offset `off`. */
static void conn_write_owned(gdx_http_conn *c, char *base, size_t off, size_t len) {
  write_req *wr = malloc(sizeof(*wr));
  if (wr == NULL) {
    free(base);
    conn_close(c);
    return;
  }
  wr->conn = c;
  wr->base = base;
  wr->len = len;
  uv_buf_t b = uv_buf_init(base + off, (unsigned)len);
  if (c->wqueued == 0)
    c->last_write_ms = now_ms(c->srv);
  int err = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
  if (err) {
    free(base);
    free(wr);
    conn_close(c);
    return;
  }
  c->wqueued += len;
  c->nwrites++;
}

/* Plain TCP: try to write at once; queue whatever the kernel did not take. */
static void conn_send_plain(gdx_http_conn *c) {
  size_t off = 0;
  if (c->nwrites == 0) {
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->out.len) {
      c->last_write_ms = now_ms(c->srv);
      gdx_buf_reset(&c->out);
      return;
    }
    if (n < 0 && n != UV_EAGAIN) {
      conn_close(c);
      return;
    }
    if (n > 0)
      off = (size_t)n;
  }
  size_t len;
  char *base = gdx_buf_detach(&c->out, &len);
  conn_write_owned(c, base, off, len - off);
}

static void conn_send_tls(gdx_http_conn *c) {
  if (c->out.len > 0 && c->tls_ready) {
    int n = SSL_write(c->ssl, c->out.data, (int)c->out.len);
    if (n <= 0) {
      conn_close(c);
      return;
    }
    gdx_buf_reset(&c->out);
  }
  size_t pending = BIO_ctrl_pending(c->wbio);
  if (pending == 0)
    return;
  /* Small output is tried at once from the stack: a uv_write for it would
   * cost an epoll_ctl on every response when libuv drains its queue. */
  char small[16 * 1024 + 512];
  size_t off = 0;
  if (c->nwrites == 0 && pending <= sizeof(small)) {
    int n = BIO_read(c->wbio, small, (int)pending);
    uv_buf_t b = uv_buf_init(small, n > 0 ? (unsigned)n : 0);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w == (int)b.len) {
      c->last_write_ms = now_ms(c->srv);
      return;
    }
    if (w < 0 && w != UV_EAGAIN) {
      conn_close(c);
      return;
    }
    off = w > 0 ? (size_t)w : 0;
    char *rest = malloc(b.len - off);
    if (rest == NULL) {
      conn_close(c);
      return;
    }
    memcpy(rest, small + off, b.len - off);
    conn_write_owned(c, rest, 0, b.len - off);
    return;
  }
  char *base = malloc(pending);
  if (base == NULL) {
    conn_close(c);
    return;
  }
  int n = BIO_read(c->wbio, base, (int)pending);
  conn_write_owned(c, base, 0, n > 0 ? (size_t)n : 0);
}

static void conn_flush(gdx_http_conn *c) {
  if (c->closed)
    return;
  c->srv->stats.bytes_out += c->out.len;
  if (c->sink) {
    if (c->out.len)
      c->sink(c->out.data, c->out.len, c->sink_data);
    gdx_buf_reset(&c->out);
  } else if (c->ssl) {
    conn_send_tls(c);
  } else if (c->out.len) {
    conn_send_plain(c);
  }
  if (!c->closed)
    conn_maybe_close_after_flush(c);
}

static void on_shutdown_done(uv_shutdown_t *req, int status) {
  gdx_http_conn *c = req->data;
  if (c->closed)
    return;
  if (status < 0 || c->peer_eof) {
    conn_close(c);
    return;
  }
  /* Read and drop what the client still sends, so that closing does not
   * reset the connection before it has read our answer. */
  c->linger = 1;
  c->linger_until_ms = now_ms(c->srv) + LINGER_MS;
  conn_update_reading(c);
}

/* After an error or Connection: close, once everything is written: half-close
 * and linger briefly. */
static void conn_maybe_close_after_flush(gdx_http_conn *c) {
  if (!c->closing || c->shutting || c->out.len || c->wqueued || c->closed)
    return;
  if (c->req_active && !c->req.resp_ended && c->req.head_done)
    return; /* a response is still being produced */
  c->shutting = 1;
  if (c->sink) {
    conn_close(c);
    return;
  }
  if (c->ssl && c->tls_ready) {
    SSL_shutdown(c->ssl); /* close_notify */
    c->closing = 1;
    conn_send_tls(c);
    if (c->closed)
      return;
  }
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown_done) != 0)
    conn_close(c);
}

/* ------------------------------------------------------------------ */
/* reading                                                             */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  gdx_http_conn *c = h->data;
  if (c->ssl) {
    *buf = uv_buf_init(c->tbuf, TLS_IN_SIZE);
  } else if (c->linger) {
    *buf = uv_buf_init(c->rbuf, c->rcap); /* dropped anyway */
  } else {
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
  }
}

static void conn_update_reading(gdx_http_conn *c) {
  if (c->closed || c->sink)
    return;
  int want;
  if (c->linger)
    want = 1;
  else
    want = !c->peer_eof && !c->shutting && c->rlen < c->rcap &&
           c->wqueued < c->srv->lim.write_high_water;
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, gdx__http_on_read) == 0)
      c->reading = 1;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
}

static void conn_tls_handshake(gdx_http_conn *c) {
  int rc = SSL_do_handshake(c->ssl);
  if (rc == 1) {
    c->tls_ready = 1;
    return;
  }
  int e = SSL_get_error(c->ssl, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return;
  unsigned long ossl = ERR_peek_last_error();
  char why[256];
  ERR_error_string_n(ossl, why, sizeof(why));
  long vr = SSL_get_verify_result(c->ssl);
  gdx_log_warn("http", "TLS handshake with %s failed: %s%s%s", c->remote, why,
               vr != X509_V_OK ? "; certificate: " : "",
               vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
  ERR_clear_error();
  c->srv->stats.tls_handshake_failures++;
  conn_send_tls(c); /* the alert */
  c->closing = 1;
  c->peer_eof = 1;
  conn_maybe_close_after_flush(c);
}

/* Moves decrypted bytes into rbuf while there is room. */
static void conn_tls_read(gdx_http_conn *c) {
  if (!c->tls_ready) {
    conn_tls_handshake(c);
    if (!c->tls_ready)
      return;
  }
  while (c->rlen < c->rcap) {
    int n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(c->rcap - c->rlen));
    if (n > 0) {
      c->rlen += (size_t)n;
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      break;
    ERR_clear_error();
    c->peer_eof = 1; /* close_notify or a broken record */
    break;
  }
}

void gdx__http_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  gdx_http_conn *c = s->data;
  if (nread == 0 || nread == UV_ENOBUFS)
    return;
  if (nread < 0) {
    c->peer_eof = 1;
    if (c->reading) {
      uv_read_stop(s);
      c->reading = 0;
    }
    /* A request still being answered may finish writing to a half-closed
     * socket; anything else ends here. */
    if (c->linger || !c->req_active || !c->req.head_done || c->req.msg_complete == 0 ||
        nread != UV_EOF)
      conn_close(c);
    return;
  }
  c->srv->stats.bytes_in += (uint64_t)nread;
  c->last_read_ms = now_ms(c->srv);
  if (c->linger)
    return;
  if (c->ssl) {
    BIO_write(c->rbio, buf->base, (int)nread);
  } else {
    c->rlen += (size_t)nread;
  }
  conn_process(c);
}

/* ------------------------------------------------------------------ */
/* parsing                                                             */

static int reject(gdx_http_conn *c, int status, const char *code, const char *msg) {
  c->error_status = status;
  c->error_code = code;
  c->error_msg = msg;
  return -1;
}

/* Appends to the head arena, counting against max_header_bytes. */
static int head_append(gdx_http_conn *c, const char *at, size_t len) {
  c->head_bytes += len;
  if (c->head_bytes > c->srv->lim.max_header_bytes || c->hlen + len + 1 > c->hcap)
    return reject(c, 431, "header_too_large", "request headers are larger than allowed");
  memcpy(c->hbuf + c->hlen, at, len);
  c->hlen += len;
  return 0;
}

static int head_terminate(gdx_http_conn *c) {
  if (c->hlen + 1 > c->hcap)
    return reject(c, 431, "header_too_large", "request headers are larger than allowed");
  c->hbuf[c->hlen++] = '\0';
  return 0;
}

static int on_message_begin(http_parser *p) {
  gdx_http_conn *c = p->data;
  gdx_http_req *r = &c->req;
  gdx_buf extra = r->extra;
  gdx_buf_reset(&extra);
  memset(r, 0, sizeof(*r));
  r->extra = extra;
  r->conn = c;
  r->content_length = -1;
  r->start_ns = uv_hrtime();
  c->req_active = 1;
  c->req_begin_ms = now_ms(c->srv);
  c->url_end = SIZE_MAX;
  c->hlen = 0;
  c->head_bytes = 0;
  c->nhdrs = 0;
  c->last_was_value = 1;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  gdx_http_conn *c = p->data;
  c->url_end = (size_t)(at - c->rbuf) + len;
  if (c->hlen + len > c->srv->lim.max_url_bytes)
    return reject(c, 414, "uri_too_long", "the request target is longer than allowed");
  return head_append(c, at, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  gdx_http_conn *c = p->data;
  if (c->last_was_value) {
    if (head_terminate(c)) /* ends the url or the previous value */
      return -1;
    if (c->nhdrs >= c->srv->lim.max_headers)
      return reject(c, 431, "too_many_headers", "the request has too many header fields");
    c->hdrs[c->nhdrs++].name_off = (uint32_t)c->hlen;
    c->last_was_value = 0;
  }
  return head_append(c, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  gdx_http_conn *c = p->data;
  if (!c->last_was_value) {
    if (head_terminate(c))
      return -1;
    c->hdrs[c->nhdrs - 1].val_off = (uint32_t)c->hlen;
    c->last_was_value = 1;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)at[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      return reject(c, 400, "invalid_header", "a header value contains a control character");
  }
  return head_append(c, at, len);
}

/* RFC 9110 token characters (header names). */
static int is_tchar(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Debian builds http-parser in its lenient mode, which accepts "HTTX/1.1",
 * spaces in header names, bare CR or LF line ends and folded lines. Those
 * are where request smuggling lives, so the head is checked again here, on
 * the raw bytes, which stay in rbuf until the head is complete:
 *   SP "HTTP/" DIGIT "." DIGIT CRLF *( token ":" *(VCHAR/obs-text/SP/HTAB) CRLF ) CRLF */
static int validate_head(gdx_http_conn *c) {
  if (c->url_end == SIZE_MAX)
    return reject(c, 400, "bad_request", "the request has no target");
  const unsigned char *p = (const unsigned char *)c->rbuf + c->url_end;
  const unsigned char *end = (const unsigned char *)c->rbuf + c->rlen;
  if (end - p < 11 || memcmp(p, " HTTP/", 6) != 0 || p[6] < '0' || p[6] > '9' || p[7] != '.' ||
      p[8] < '0' || p[8] > '9' || p[9] != '\r' || p[10] != '\n')
    return reject(c, 400, "bad_request", "the request line must end in HTTP/x.y and CRLF");
  p += 11;
  for (;;) {
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
      return 0; /* the empty line */
    const unsigned char *name = p;
    while (p < end && is_tchar(*p))
      p++;
    if (p == name || p == end || *p != ':')
      return reject(c, 400, "invalid_header", "a header name is empty or holds a character "
                                              "that is not allowed");
    for (p++; p < end && *p != '\r' && *p != '\n'; p++)
      if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
        return reject(c, 400, "invalid_header", "a header value contains a control character");
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
      return reject(c, 400, "invalid_header", "header lines must end in CRLF");
    p += 2;
    if (p < end && (*p == ' ' || *p == '\t'))
      return reject(c, 400, "invalid_header", "folded header lines are not accepted");
  }
}

static void set_request_id(gdx_http_conn *c) {
  gdx_http_req *r = &c->req;
  const char *given = gdx_http_req_header(r, "X-Request-Id");
  if (given && strlen(given) <= ID_LEN && valid_request_id(given)) {
    memcpy(r->id, given, strlen(given) + 1);
    return;
  }
  gdx_http_server *srv = c->srv;
  /* "%08x%08x" of prefix and counter, without printf (every request) */
  static const char hex[] = "0123456789abcdef";
  uint64_t v = ((uint64_t)srv->id_prefix << 32) | (++srv->id_counter & 0xffffffffu);
  for (int i = 15; i >= 0; i--, v >>= 4)
    r->id[i] = hex[v & 15];
  r->id[16] = '\0';
}

static int on_headers_complete(http_parser *p) {
  gdx_http_conn *c = p->data;
  gdx_http_server *srv = c->srv;
  gdx_http_req *r = &c->req;
  if (c->nhdrs > 0 && !c->last_was_value)
    return reject(c, 400, "bad_request", "a header field has no value");
  if (validate_head(c))
    return -1;
  if (head_terminate(c))
    return -1;
  r->head_done = 1;
  r->path = c->hbuf;
  char *q = strchr(c->hbuf, '?');
  if (q) {
    *q = '\0';
    r->query = q + 1;
  } else {
    r->query = "";
  }
  char *hash = strchr(r->query, '#');
  if (hash)
    *hash = '\0';
  r->http10 = p->http_major == 1 && p->http_minor == 0;
  r->keep_alive = http_should_keep_alive(p) && !srv->draining;
  r->is_head = p->method == HTTP_HEAD;
  set_request_id(c);
  srv->stats.requests_total++;

  if (p->http_major != 1)
    return reject(c, 505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served");
  if (r->path[0] != '/' && !(p->method == HTTP_OPTIONS && strcmp(r->path, "*") == 0))
    return reject(c, 400, "bad_request", "the request target must be an absolute path");
  if (!r->http10 && gdx_http_req_header(r, "Host") == NULL)
    return reject(c, 400, "bad_request", "HTTP/1.1 requests must carry a Host header");
  if (p->flags & F_CHUNKED) {
    r->content_length = -1;
  } else if (p->flags & F_CONTENTLENGTH) {
    r->content_length = (int64_t)p->content_length;
    if (p->content_length > srv->lim.max_body_bytes)
      return reject(c, 413, "body_too_large", "the request body is larger than allowed");
  } else {
    r->content_length = 0;
  }
  srv->opts.on_request(r, srv->opts.data);
  if (c->closed)
    return -1;
  /* A client waiting for 100 Continue gets it only if we want the body. */
  const char *expect = gdx_http_req_header(r, "Expect");
  if (expect && !r->resp_started && r->content_length != 0) {
    if (strcasecmp(expect, "100-continue") != 0)
      return reject(c, 417, "expectation_failed", "only 100-continue is supported");
    if (!r->http10)
      gdx_buf_appends(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
  }
  /* A handler that paused before taking the body (it decides first, then
   * streams) gets all of it: nothing is parsed, and so nothing dropped,
   * until it resumes - even bytes that came with the head. */
  if (r->paused && r->content_length != 0) {
    c->blocked = 1;
    http_parser_pause(p, 1);
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  gdx_http_conn *c = p->data;
  gdx_http_req *r = &c->req;
  r->body_bytes += len;
  if (r->body_bytes > c->srv->lim.max_body_bytes)
    return reject(c, 413, "body_too_large", "the request body is larger than allowed");
  if (r->on_body && !r->resp_ended)
    r->on_body(r, at, len);
  if (c->closed)
    return -1;
  if (r->paused) {
    c->blocked = 1;
    http_parser_pause(p, 1);
  }
  return 0;
}

static int on_chunk_header(http_parser *p) {
  gdx_http_conn *c = p->data;
  /* Refuse an oversized chunk before its bytes arrive. */
  if (p->content_length > c->srv->lim.max_body_bytes ||
      c->req.body_bytes + p->content_length > c->srv->lim.max_body_bytes)
    return reject(c, 413, "body_too_large", "the request body is larger than allowed");
  return 0;
}

static int on_message_complete(http_parser *p) {
  gdx_http_conn *c = p->data;
  gdx_http_req *r = &c->req;
  r->msg_complete = 1;
  if (!r->resp_ended) {
    if (r->on_complete)
      r->on_complete(r);
    else if (!r->resp_started && !r->on_abort && !r->on_body)
      gdx_http_respond_error(r, 500, "internal", "the handler produced no response");
  }
  if (c->closed)
    return -1;
  if (r->resp_ended) {
    conn_finish_request(c);
    if (!c->closing && c->wqueued + c->out.len <= c->srv->lim.write_high_water)
      return 0; /* on to the next pipelined request */
    /* Stop: closing, or the client is behind on reading its responses. */
    c->bp_blocked = !c->closing;
  } else {
    c->blocked = 1; /* wait for the handler's response */
  }
  http_parser_pause(p, 1);
  return 0;
}

static http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

static void conn_parse_error(gdx_http_conn *c, enum http_errno err) {
  gdx_http_req *r = &c->req;
  int status = c->error_status;
  const char *code = c->error_code, *msg = c->error_msg;
  if (status == 0) {
    status = err == HPE_HEADER_OVERFLOW ? 431 : 400;
    code = status == 431 ? "header_too_large" : "bad_request";
    msg = http_errno_description(err);
  }
  gdx_log_debug("http", "rejecting request from %s: %d %s", c->remote, status, msg);
  c->closing = 1;
  if (!c->req_active) {
    /* Bytes that never became a request: still answer with a request id. */
    on_message_begin(&c->parser);
  }
  if (!r->head_done) {
    r->path = "";
    r->query = "";
    c->nhdrs = 0; /* a partial head: none of its headers can be trusted */
    set_request_id(c);
  }
  if (r->resp_started) {
    conn_abort_request(c); /* the handler's response cannot be completed */
    conn_close(c);
    return;
  }
  r->keep_alive = 0;
  r->on_body = NULL;
  gdx_http_respond_error(r, status, code, msg);
}

/* Between the first byte of a request and the end of its head. */
static int conn_in_head(const gdx_http_conn *c) { return c->req_active && !c->req.head_done; }

static void conn_process(gdx_http_conn *c) {
  if (c->in_process || c->closed)
    return;
  c->in_process = 1;
  for (;;) {
    if (c->ssl)
      conn_tls_read(c);
    if (c->closed || c->closing || c->blocked || c->bp_blocked || c->rstart == c->rlen)
      break;
    size_t avail = c->rlen - c->rstart;
    size_t used =
        http_parser_execute(&c->parser, &parser_settings, c->rbuf + c->rstart, avail);
    c->rstart += used;
    enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    if (err == HPE_PAUSED) {
      http_parser_pause(&c->parser, 0); /* `blocked` now holds the state */
      continue;
    }
    if (c->closed)
      break;
    if (err != HPE_OK) {
      conn_parse_error(c, err);
      break;
    }
    if (c->rstart == c->rlen && !conn_in_head(c))
      c->rstart = c->rlen = 0;
  }
  /* Compact, keeping the raw request line from the end of the target on
   * while a head is in progress (validate_head reads it). */
  size_t keep = c->rstart;
  if (conn_in_head(c) && c->url_end != SIZE_MAX && c->url_end < keep)
    keep = c->url_end;
  if (!c->closed && keep > 0) {
    memmove(c->rbuf, c->rbuf + keep, c->rlen - keep);
    c->rlen -= keep;
    c->rstart -= keep;
    if (c->url_end != SIZE_MAX)
      c->url_end = c->url_end >= keep ? c->url_end - keep : SIZE_MAX;
  }
  c->in_process = 0;
  if (c->closed)
    return;
  conn_flush(c);
  if (c->closed)
    return;
  conn_maybe_drain(c);
  if (c->closed)
    return;
  if (c->peer_eof && !c->req_active && !c->closing)
    c->closing = 1, conn_maybe_close_after_flush(c);
  conn_update_reading(c);
}

/* Metrics and the access log line, once per response. */
static void conn_record_response(gdx_http_conn *c) {
  gdx_http_server *srv = c->srv;
  gdx_http_req *r = &c->req;
  if (r->recorded)
    return;
  r->recorded = 1;
  int st = r->status >= 100 && r->status < 600 ? r->status : 500;
  srv->stats.status_counts[st]++;
  srv->stats.responses_by_class[st / 100]++;
  double secs = (double)(uv_hrtime() - r->start_ns) / 1e9;
  gdx_histogram_observe(&srv->stats.latency, secs);
  if (srv->opts.access_log)
    gdx_log(GDX_LOG_INFO, "http", r->id, "%s %s %s %d %llu bytes %.3f ms", c->remote,
            http_method_str((enum http_method)c->parser.method), r->path ? r->path : "",
            st, (unsigned long long)r->resp_bytes, secs * 1000.0);
}

static void conn_finish_request(gdx_http_conn *c) {
  gdx_http_server *srv = c->srv;
  gdx_http_req *r = &c->req;
  c->nrequests++;
  if (!r->keep_alive || srv->draining)
    c->closing = 1;
  c->req_active = 0;
  c->blocked = 0;
  c->idle_since_ms = now_ms(srv);
  r->on_body = NULL;
  r->on_complete = NULL;
  r->on_abort = NULL;
  r->on_drain = NULL;
  r->data = NULL;
  free(r->peer_subject);
  r->peer_subject = NULL;
}

/* Called when a handler ends its response outside the parser. */
static void conn_response_ended(gdx_http_conn *c) {
  gdx_http_req *r = &c->req;
  if (c->in_process) /* the parser loop picks it up */
    return;
  if (r->msg_complete) {
    conn_finish_request(c);
    if (c->wqueued + c->out.len > c->srv->lim.write_high_water)
      c->bp_blocked = 1;
    conn_process(c); /* pipelined requests waiting in rbuf */
  } else {
    if (!r->keep_alive)
      c->closing = 1;
    conn_flush(c);
  }
}

/* ------------------------------------------------------------------ */
/* responses                                                           */

int gdx_http_add_header(gdx_http_req *r, const char *name, const char *value) {
  if (r->resp_started || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
    return GDX_EINVAL;
  int err = gdx_buf_appends(&r->extra, name);
  if (!err)
    err = gdx_buf_append(&r->extra, ": ", 2);
  if (!err)
    err = gdx_buf_appends(&r->extra, value);
  return err ? err : gdx_buf_append(&r->extra, "\r\n", 2);
}

/* Decimal without printf: the head of every response goes through here. */
static int append_u64(gdx_buf *b, uint64_t v) {
  char d[24];
  int i = (int)sizeof(d);
  do {
    d[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return gdx_buf_append(b, d + i, sizeof(d) - (size_t)i);
}

static int write_head(gdx_http_req *r, int status, const char *ctype, int64_t clen) {
  gdx_http_conn *c = r->conn;
  if (r->resp_started || c->closed)
    return GDX_EINVAL;
  r->resp_started = 1;
  r->status = status;
  if (c->srv->draining)
    r->keep_alive = 0;
  if (clen < 0 && r->http10)
    r->keep_alive = 0; /* HTTP/1.0 has no chunked: the close ends the body */
  gdx_buf *o = &c->out;
  int err = gdx_buf_append(o, "HTTP/1.1 ", 9);
  if (!err)
    err = append_u64(o, (uint64_t)(status > 0 ? status : 0));
  if (!err)
    err = gdx_buf_append(o, " ", 1);
  if (!err)
    err = gdx_buf_appends(o, gdx_http_status_text(status));
  if (!err)
    err = gdx_buf_append(o, "\r\nDate: ", 8);
  if (!err)
    err = gdx_buf_appends(o, http_date(c->srv));
  if (!err)
    err = gdx_buf_appends(o, "\r\nServer: gdx\r\nX-Request-Id: ");
  if (!err)
    err = gdx_buf_appends(o, r->id);
  if (!err)
    err = gdx_buf_append(o, "\r\n", 2);
  if (!err && ctype) {
    err = gdx_buf_append(o, "Content-Type: ", 14);
    if (!err)
      err = gdx_buf_appends(o, ctype);
    if (!err)
      err = gdx_buf_append(o, "\r\n", 2);
  }
  if (!err && clen >= 0) {
    err = gdx_buf_append(o, "Content-Length: ", 16);
    if (!err)
      err = append_u64(o, (uint64_t)clen);
    if (!err)
      err = gdx_buf_append(o, "\r\n", 2);
  } else if (!err && !r->http10) {
    err = gdx_buf_appends(&c->out, "Transfer-Encoding: chunked\r\n");
    r->chunked_resp = 1;
  }
  if (!err && !r->keep_alive)
    err = gdx_buf_appends(&c->out, "Connection: close\r\n");
  else if (!err && r->http10)
    err = gdx_buf_appends(&c->out, "Connection: keep-alive\r\n");
  if (!err && r->extra.len)
    err = gdx_buf_append(&c->out, r->extra.data, r->extra.len);
  if (!err)
    err = gdx_buf_append(&c->out, "\r\n", 2);
  r->resp_remaining = clen;
  if (r->is_head)
    r->resp_remaining = 0;
  return err;
}

int gdx_http_start(gdx_http_req *r, int status, const char *ctype, int64_t clen) {
  return write_head(r, status, ctype, clen);
}

int gdx_http_write(gdx_http_req *r, const void *data, size_t len) {
  gdx_http_conn *c = r->conn;
  if (!r->resp_started || r->resp_ended || c->closed)
    return GDX_EINVAL;
  if (r->is_head || len == 0)
    return 0;
  if (c->wqueued > WRITE_QUEUE_LIMIT)
    return GDX_ETOOBIG;
  int err;
  if (r->chunked_resp) {
    err = gdx_buf_appendf(&c->out, "%zx\r\n", len);
    if (!err)
      err = gdx_buf_append(&c->out, data, len);
    if (!err)
      err = gdx_buf_append(&c->out, "\r\n", 2);
  } else {
    if (r->resp_remaining >= 0 && (int64_t)len > r->resp_remaining)
      return GDX_ETOOBIG; /* more than the Content-Length promised */
    err = gdx_buf_append(&c->out, data, len);
    if (r->resp_remaining >= 0)
      r->resp_remaining -= (int64_t)len;
  }
  if (err)
    return err;
  r->resp_bytes += len;
  if (c->out.len >= FLUSH_AT && !c->in_process)
    conn_flush(c);
  if (c->closed)
    return GDX_ECLOSED;
  if (c->wqueued + c->out.len > c->srv->lim.write_high_water) {
    r->want_drain = 1;
    return 1;
  }
  return 0;
}

int gdx_http_end(gdx_http_req *r) {
  gdx_http_conn *c = r->conn;
  if (!r->resp_started || r->resp_ended || c->closed)
    return GDX_EINVAL;
  if (r->chunked_resp && !r->is_head)
    gdx_buf_append(&c->out, "0\r\n\r\n", 5);
  if (r->resp_remaining > 0) {
    /* The body is shorter than promised: the framing is broken, so the only
     * honest ending is to close. */
    gdx_log_error("http", "%s: response ended %lld bytes short of its Content-Length",
                  r->id, (long long)r->resp_remaining);
    r->keep_alive = 0;
  }
  r->resp_ended = 1;
  conn_record_response(c);
  if (!r->keep_alive)
    c->closing = 1;
  conn_response_ended(c);
  return 0;
}

int gdx_http_respond(gdx_http_req *r, int status, const char *ctype, const void *body,
                     size_t len) {
  int err = write_head(r, status, ctype, (int64_t)len);
  if (!err && len && !r->is_head) {
    err = gdx_buf_append(&r->conn->out, body, len);
    r->resp_remaining = 0;
    r->resp_bytes = len;
  }
  if (err)
    return err;
  return gdx_http_end(r);
}

int gdx_http_respond_error(gdx_http_req *r, int status, const char *code,
                           const char *message) {
  char stack[1024];
  gdx_buf b = {stack, 0, sizeof(stack), sizeof(stack) - 1};
  gdx_buf_appends(&b, "{\"error\":{\"code\":\"");
  gdx_buf_append_json_str(&b, code, strlen(code));
  gdx_buf_appends(&b, "\",\"message\":\"");
  gdx_buf_append_json_str(&b, message, strlen(message));
  gdx_buf_appends(&b, "\",\"request_id\":\"");
  gdx_buf_append_json_str(&b, r->id, strlen(r->id));
  gdx_buf_appends(&b, "\"}}\n");
  return gdx_http_respond(r, status, "application/json", b.data, b.len);
}

/* ------------------------------------------------------------------ */
/* request accessors                                                   */

const char *gdx_http_req_method(const gdx_http_req *r) {
  return http_method_str((enum http_method)r->conn->parser.method);
}
const char *gdx_http_req_path(const gdx_http_req *r) { return r->path; }
const char *gdx_http_req_query(const gdx_http_req *r) { return r->query; }
const char *gdx_http_req_id(const gdx_http_req *r) { return r->id; }
int64_t gdx_http_req_content_length(const gdx_http_req *r) { return r->content_length; }
void gdx_http_req_set_data(gdx_http_req *r, void *d) { r->data = d; }
int gdx_http_req_peer_tag(const gdx_http_req *r) { return r->conn->peer_tag; }
void gdx_http_req_set_peer_tag(gdx_http_req *r, int tag) { r->conn->peer_tag = tag; }
void *gdx_http_req_get_data(const gdx_http_req *r) { return r->data; }
gdx_http_server *gdx_http_req_server(const gdx_http_req *r) { return r->conn->srv; }
uv_loop_t *gdx_http_server_loop(const gdx_http_server *srv) { return srv->opts.loop; }
const char *gdx_http_req_remote_addr(const gdx_http_req *r) { return r->conn->remote; }

const char *gdx_http_req_header(const gdx_http_req *r, const char *name) {
  gdx_http_conn *c = r->conn;
  if (!r->head_done && c->hlen > 0 && c->hbuf[c->hlen - 1] != '\0')
    return NULL; /* a head cut off mid-field: its strings are not terminated */
  for (unsigned i = 0; i < c->nhdrs; i++)
    if (strcasecmp(c->hbuf + c->hdrs[i].name_off, name) == 0)
      return c->hbuf + c->hdrs[i].val_off;
  return NULL;
}

int gdx_http_req_header_at(const gdx_http_req *r, unsigned i, const char **name,
                           const char **value) {
  gdx_http_conn *c = r->conn;
  if (!r->head_done || i >= c->nhdrs)
    return -1;
  *name = c->hbuf + c->hdrs[i].name_off;
  *value = c->hbuf + c->hdrs[i].val_off;
  return 0;
}

void gdx_http_abort(gdx_http_req *r) {
  gdx_http_conn *c = r->conn;
  r->on_abort = NULL; /* the caller knows */
  r->keep_alive = 0;
  conn_close(c);
}

X509 *gdx_http_req_peer_cert(const gdx_http_req *r) {
  gdx_http_conn *c = r->conn;
  if (c->ssl == NULL || SSL_get_verify_result(c->ssl) != X509_V_OK)
    return NULL;
  return SSL_get0_peer_certificate(c->ssl);
}

const char *gdx_http_req_peer_subject(gdx_http_req *r) {
  if (r->peer_subject)
    return r->peer_subject;
  X509 *x = gdx_http_req_peer_cert(r);
  if (x == NULL)
    return NULL;
  BIO *mem = BIO_new(BIO_s_mem());
  if (mem == NULL)
    return NULL;
  X509_NAME_print_ex(mem, X509_get_subject_name(x), 0,
                     XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char *p;
  long n = BIO_get_mem_data(mem, &p);
  r->peer_subject = strndup(p, (size_t)n);
  BIO_free(mem);
  return r->peer_subject;
}

void gdx_http_req_on(gdx_http_req *r, gdx_http_body_cb body_cb, gdx_http_req_cb complete_cb,
                     gdx_http_req_cb abort_cb) {
  r->on_body = body_cb;
  r->on_complete = complete_cb;
  r->on_abort = abort_cb;
}

void gdx_http_req_on_drain(gdx_http_req *r, gdx_http_req_cb cb) { r->on_drain = cb; }

void gdx_http_req_pause(gdx_http_req *r) { r->paused = 1; }

void gdx_http_req_resume(gdx_http_req *r) {
  gdx_http_conn *c = r->conn;
  if (!r->paused)
    return;
  r->paused = 0;
  if (c->blocked && !r->msg_complete) {
    c->blocked = 0;
    conn_process(c);
  }
}

/* ------------------------------------------------------------------ */
/* timers: one per server, walking all connections                     */

static void conn_timeout(gdx_http_conn *c, const char *why, int send_408) {
  gdx_log_debug("http", "closing connection from %s: %s", c->remote, why);
  if (send_408 && !c->req.resp_started && (c->ssl == NULL || c->tls_ready)) {
    c->error_status = 408;
    c->error_code = "timeout";
    c->error_msg = why;
    conn_parse_error(c, HPE_OK);
    conn_flush(c);
  } else {
    conn_close(c);
  }
}

static void check_conn(gdx_http_conn *c, uint64_t now) {
  const gdx_http_limits *l = &c->srv->lim;
  if (c->linger) {
    if (now >= c->linger_until_ms)
      conn_close(c);
    return;
  }
  if (c->wqueued > 0) {
    if (now - c->last_write_ms >= l->send_timeout_ms)
      conn_timeout(c, "client stopped reading its responses", 0);
    return;
  }
  if (c->shutting)
    return;
  if (c->req_active) {
    gdx_http_req *r = &c->req;
    if (!r->head_done) {
      if (now - c->req_begin_ms >= l->header_timeout_ms)
        conn_timeout(c, "the request head took too long to arrive", 1);
    } else if (!r->msg_complete && !r->paused &&
               now - c->last_read_ms >= l->body_timeout_ms) {
      conn_timeout(c, "the request body stopped arriving", 1);
    }
    return;
  }
  if (c->nrequests == 0) {
    if (now - c->accepted_ms >= l->header_timeout_ms)
      conn_timeout(c, "no request arrived in time", 1);
  } else if (now - c->idle_since_ms >= l->keepalive_timeout_ms) {
    conn_timeout(c, "idle keep-alive connection", 0);
  }
}

static void on_tick(uv_timer_t *t) {
  gdx_http_server *srv = t->data;
  uint64_t now = now_ms(srv);
  gdx_http_conn *c = srv->conns;
  while (c) {
    gdx_http_conn *next = c->next; /* c may close */
    if (!c->sink)
      check_conn(c, now);
    c = next;
  }
}

/* ------------------------------------------------------------------ */
/* server, listeners, accept                                           */

static void reject_closed(uv_handle_t *h) { free(h); }

static void on_connection(uv_stream_t *ls, int status) {
  listener *l = ls->data;
  gdx_http_server *srv = l->srv;
  if (status < 0) {
    gdx_log_warn("http", "accept failed: %s", uv_strerror(status));
    return;
  }
  if (srv->stats.connections_open >= srv->lim.max_connections) {
    /* Refuse cleanly: a short 503 the client can read, then close. */
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Connection: close\r\nContent-Length: 94\r\n\r\n"
        "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"server is at its connection limit\"}}\n";
    uv_tcp_t *t = malloc(sizeof(*t));
    if (t == NULL)
      return;
    uv_tcp_init(srv->opts.loop, t);
    if (uv_accept(ls, (uv_stream_t *)t) == 0) {
      uv_buf_t b = uv_buf_init((char *)busy, sizeof(busy) - 1);
      if (l->tls == NULL)
        uv_try_write((uv_stream_t *)t, &b, 1);
    }
    srv->stats.connections_rejected++;
    uv_close((uv_handle_t *)t, reject_closed);
    return;
  }
  gdx_http_conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return;
  c->srv = srv;
  uv_tcp_init(srv->opts.loop, &c->tcp);
  c->tcp.data = c;
  srv->open_handles++; /* the server outlives its connections' close callbacks */
  if (conn_init_buffers(c) != 0 || uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage sa;
  int salen = sizeof(sa);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0) {
    char ip[48] = "?";
    int port = 0;
    if (sa.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof(ip));
      port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof(ip));
      port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    }
    snprintf(c->remote, sizeof(c->remote), "%s:%d", ip, port);
  }
  if (l->tls) {
    c->tbuf = malloc(TLS_IN_SIZE);
    c->ssl = SSL_new(l->tls);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->tbuf || !c->ssl || !c->rbio || !c->wbio) {
      BIO_free(c->rbio);
      BIO_free(c->wbio);
      c->rbio = c->wbio = NULL;
      uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
      return;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
  }
  conn_link(c);
  conn_update_reading(c);
}

int gdx_http_server_new(const gdx_http_server_options *opts, gdx_http_server **out) {
  gdx_http_server *srv = calloc(1, sizeof(*srv));
  if (srv == NULL)
    return GDX_ENOMEM;
  srv->opts = *opts;
  srv->lim = opts->limits;
  snprintf(srv->name, sizeof(srv->name), "%s", opts->name ? opts->name : "http");
  srv->opts.name = srv->name;
  if (RAND_bytes((unsigned char *)&srv->id_prefix, sizeof(srv->id_prefix)) != 1)
    srv->id_prefix = (uint32_t)uv_hrtime();
  uv_timer_init(opts->loop, &srv->tick);
  uv_timer_init(opts->loop, &srv->shutdown_timer);
  srv->tick.data = srv->shutdown_timer.data = srv;
  uv_unref((uv_handle_t *)&srv->shutdown_timer);
  srv->open_handles = 2;
  /* Timeouts are checked at a quarter of the shortest one, at most 1 s. */
  uint64_t tmin = srv->lim.header_timeout_ms;
  uint64_t all[] = {srv->lim.body_timeout_ms, srv->lim.keepalive_timeout_ms,
                    srv->lim.send_timeout_ms};
  for (size_t i = 0; i < 3; i++)
    if (all[i] < tmin)
      tmin = all[i];
  uint64_t tick = tmin / 4;
  tick = tick < 10 ? 10 : tick > 1000 ? 1000 : tick;
  uv_timer_start(&srv->tick, on_tick, tick, tick);
  *out = srv;
  return GDX_OK;
}

static SSL_CTX *tls_context(const gdx_tls_options *tls, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL)
    return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  /* a connection's peer certificate never changes (handlers cache their
   * verdict on it per connection) */
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  const char *what = NULL, *file = NULL;
  if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1)
    what = "certificate", file = tls->cert_file;
  else if (SSL_CTX_use_PrivateKey_file(ctx, tls->key_file, SSL_FILETYPE_PEM) != 1)
    what = "private key", file = tls->key_file;
  else if (SSL_CTX_check_private_key(ctx) != 1)
    what = "private key (does not match the certificate)", file = tls->key_file;
  else if (tls->verify != GDX_TLS_VERIFY_NONE) {
    if (tls->client_ca_file == NULL ||
        SSL_CTX_load_verify_locations(ctx, tls->client_ca_file, NULL) != 1) {
      what = "client CA file", file = tls->client_ca_file ? tls->client_ca_file : "(unset)";
    } else {
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(tls->client_ca_file);
      if (names)
        SSL_CTX_set_client_CA_list(ctx, names);
      int mode = SSL_VERIFY_PEER;
      if (tls->verify == GDX_TLS_VERIFY_REQUIRE)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      SSL_CTX_set_verify(ctx, mode, NULL);
    }
  }
  if (what) {
    char why[200];
    ERR_error_string_n(ERR_get_error(), why, sizeof(why));
    ERR_clear_error();
    snprintf(err, errlen, "TLS %s %s: %s", what, file ? file : "(unset)", why);
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

int gdx_http_listen(gdx_http_server *srv, const char *host, int port,
                    const gdx_tls_options *tls, char *err, size_t errlen) {
  if (srv->nlisteners == MAX_LISTENERS) {
    snprintf(err, errlen, "too many listeners");
    return GDX_EINVAL;
  }
  struct sockaddr_storage sa;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&sa) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa) != 0) {
    snprintf(err, errlen, "%s is not an IPv4 or IPv6 address", host);
    return GDX_EINVAL;
  }
  listener *l = calloc(1, sizeof(*l));
  if (l == NULL)
    return GDX_ENOMEM;
  l->srv = srv;
  if (tls && (l->tls = tls_context(tls, err, errlen)) == NULL) {
    free(l);
    return GDX_ETLS;
  }
  uv_tcp_init(srv->opts.loop, &l->tcp);
  l->tcp.data = l;
  srv->listeners[srv->nlisteners++] = l;
  srv->open_handles++;
  int rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&sa, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
  if (rc != 0) {
    snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
    return GDX_EIO;
  }
  struct sockaddr_storage bound;
  int blen = sizeof(bound);
  uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &blen);
  l->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  gdx_log_info("http", "%s listening on %s:%d%s", srv->name, host, l->port,
               l->tls ? (tls->verify == GDX_TLS_VERIFY_REQUIRE ? " (TLS, client certificates required)"
                                                             : " (TLS)")
                      : "");
  return GDX_OK;
}

int gdx_http_reload_tls(gdx_http_server *srv, int index, const gdx_tls_options *tls, char *err,
                        size_t errlen) {
  if (index < 0 || index >= srv->nlisteners || srv->listeners[index]->tls == NULL) {
    snprintf(err, errlen, "listener %d does not speak TLS", index);
    return GDX_EINVAL;
  }
  SSL_CTX *ctx = tls_context(tls, err, errlen);
  if (ctx == NULL)
    return GDX_ETLS;
  SSL_CTX_free(srv->listeners[index]->tls); /* open connections hold their own reference */
  srv->listeners[index]->tls = ctx;
  return GDX_OK;
}

int gdx_http_server_port(gdx_http_server *srv, int index) {
  return index < srv->nlisteners ? srv->listeners[index]->port : -1;
}

const gdx_http_stats *gdx_http_server_stats(const gdx_http_server *srv) {
  return &srv->stats;
}

int gdx_http_server_metrics(const gdx_http_server *srv, gdx_buf *b) {
  const gdx_http_stats *s = &srv->stats;
  int err = 0;
  err |= gdx_metrics_header(b, "gdx_http_connections_open", "gauge", "Open client connections.");
  err |= gdx_buf_appendf(b, "gdx_http_connections_open %llu\n",
                         (unsigned long long)s->connections_open);
  err |= gdx_metrics_header(b, "gdx_http_connections_total", "counter", "Accepted connections.");
  err |= gdx_buf_appendf(b, "gdx_http_connections_total %llu\n",
                         (unsigned long long)s->connections_total);
  err |= gdx_metrics_header(b, "gdx_http_connections_rejected_total", "counter",
                            "Connections refused at the connection limit.");
  err |= gdx_buf_appendf(b, "gdx_http_connections_rejected_total %llu\n",
                         (unsigned long long)s->connections_rejected);
  err |= gdx_metrics_header(b, "gdx_http_tls_handshake_failures_total", "counter",
                            "Failed TLS handshakes (including refused client certificates).");
  err |= gdx_buf_appendf(b, "gdx_http_tls_handshake_failures_total %llu\n",
                         (unsigned long long)s->tls_handshake_failures);
  err |= gdx_metrics_header(b, "gdx_http_requests_total", "counter",
                            "Finished requests by response status.");
  for (int i = 100; i < 600; i++)
    if (s->status_counts[i])
      err |= gdx_buf_appendf(b, "gdx_http_requests_total{status=\"%d\"} %llu\n", i,
                             (unsigned long long)s->status_counts[i]);
  err |= gdx_metrics_header(b, "gdx_http_received_bytes_total", "counter", "Bytes read from clients.");
  err |= gdx_buf_appendf(b, "gdx_http_received_bytes_total %llu\n", (unsigned long long)s->bytes_in);
  err |= gdx_metrics_header(b, "gdx_http_sent_bytes_total", "counter", "Bytes written to clients.");
  err |= gdx_buf_appendf(b, "gdx_http_sent_bytes_total %llu\n", (unsigned long long)s->bytes_out);
  err |= gdx_metrics_histogram(b, "gdx_http_request_duration_seconds",
                               "Time from the first byte of a request to the end of its response.",
                               &s->latency);
  return err ? GDX_ETOOBIG : GDX_OK;
}

/* ------------------------------------------------------------------ */
/* shutdown                                                            */

static void server_free(gdx_http_server *srv) {
  for (int i = 0; i < srv->nlisteners; i++) {
    if (srv->listeners[i]->tls)
      SSL_CTX_free(srv->listeners[i]->tls);
    free(srv->listeners[i]);
  }
  free(srv);
}

static void on_server_handle_closed(uv_handle_t *h) {
  gdx_http_server *srv =
      h->type == UV_TCP ? ((listener *)h->data)->srv : (gdx_http_server *)h->data;
  srv->open_handles--;
  server_maybe_done(srv);
}

static void server_maybe_done(gdx_http_server *srv) {
  if (!srv->draining || srv->conns)
    return;
  if (!uv_is_closing((uv_handle_t *)&srv->tick)) {
    uv_close((uv_handle_t *)&srv->tick, on_server_handle_closed);
    uv_close((uv_handle_t *)&srv->shutdown_timer, on_server_handle_closed);
  }
  if (srv->open_handles > 0 || srv->shutdown_cb == NULL)
    return;
  void (*cb)(gdx_http_server *, void *) = srv->shutdown_cb;
  srv->shutdown_cb = NULL;
  gdx_log_info("http", "%s stopped", srv->name);
  cb(srv, srv->shutdown_data);
  server_free(srv);
}

static void on_shutdown_timeout(uv_timer_t *t) {
  gdx_http_server *srv = t->data;
  gdx_log_warn("http", "%s: shutdown timeout, closing %llu connections", srv->name,
               (unsigned long long)srv->stats.connections_open);
  while (srv->conns)
    conn_close(srv->conns);
}

void gdx_http_server_shutdown(gdx_http_server *srv, void (*cb)(gdx_http_server *, void *),
                              void *data) {
  if (srv->draining)
    return;
  srv->draining = 1;
  srv->shutdown_cb = cb;
  srv->shutdown_data = data;
  gdx_log_info("http", "%s shutting down: %llu connections open", srv->name,
               (unsigned long long)srv->stats.connections_open);
  for (int i = 0; i < srv->nlisteners; i++)
    uv_close((uv_handle_t *)&srv->listeners[i]->tcp, on_server_handle_closed);
  gdx_http_conn *c = srv->conns;
  while (c) {
    gdx_http_conn *next = c->next;
    if (!c->req_active && c->wqueued == 0 && c->out.len == 0)
      conn_close(c);
    else
      c->req.keep_alive = 0, c->closing = c->req.resp_ended ? 1 : c->closing;
    c = next;
  }
  uv_ref((uv_handle_t *)&srv->shutdown_timer);
  uv_timer_start(&srv->shutdown_timer, on_shutdown_timeout, srv->lim.shutdown_timeout_ms, 0);
  server_maybe_done(srv);
}

/* ------------------------------------------------------------------ */
/* socketless connections for tests and fuzzing                        */

gdx_http_conn *gdx_http_test_conn_new(gdx_http_server *srv,
                                      void (*sink)(const char *, size_t, void *),
                                      void *sink_data) {
  gdx_http_conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->srv = srv;
  c->sink = sink;
  c->sink_data = sink_data;
  snprintf(c->remote, sizeof(c->remote), "test");
  if (conn_init_buffers(c) != 0) {
    conn_free(c);
    return NULL;
  }
  conn_link(c);
  return c;
}

int gdx_http_test_conn_feed(gdx_http_conn *c, const char *data, size_t len) {
  while (len > 0 && !c->closed) {
    size_t room = c->rcap - c->rlen;
    if (room == 0)
      return 1; /* blocked: a real socket would stop reading here */
    size_t n = len < room ? len : room;
    memcpy(c->rbuf + c->rlen, data, n);
    c->rlen += n;
    data += n;
    len -= n;
    conn_process(c);
  }
  return c->closed ? -1 : 0;
}

void gdx_http_test_conn_free(gdx_http_conn *c) {
  conn_close(c);
  conn_free(c);
}
