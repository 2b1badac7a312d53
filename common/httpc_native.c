/* gdx's own HTTP/1.1 client engine (gdx_httpc_opts.native = 1).
 *
 * Built for the data plane's hot hops, where libcurl's generality costs more
 * CPU than the rest of the relay together: a request on a warm connection is
 * one write and one read here, with no per-request poll registration, timer
 * juggling or liveness probe.
 *
 * Connections are kept per origin (scheme, host, port and TLS identity: CA,
 * client certificate, key, pinned peer key) in the client's idle list and
 * reused newest first; an idle connection stays registered for reading, so a
 * peer that closes it is noticed at once, and it is closed after
 * H1_IDLE_MS. TLS runs through memory BIOs like the server's; the peer is
 * checked against the CA and then either its public-key pin (nodes are known
 * by key, not by name) or its host name.
 *
 * Request bodies are a buffer or pulled from read_body while fewer than
 * H1_UP_HIGH bytes wait on the socket (chunked when the length is unknown).
 * Responses are parsed with http-parser; on_data may refuse a slice (return
 * 1), which is kept and handed over again on resume while the socket is not
 * read. A request whose reused connection turns out to be closed before any
 * response byte arrived is retried once on a new connection (only when its
 * body is a buffer: a streamed body cannot be replayed).
 *
 * Callbacks may be called from inside a callback of the same request only
 * the way relay.c does: cancel from on_data's stack is safe; resume belongs
 * on a later loop turn.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "error.h"
#include "httpc_int.h"
#include "log.h"
#include "num.h"
#include "pki.h"

#define H1_READ_BUF (64 * 1024)  /* plaintext waiting for the parser */
#define H1_TLS_BUF (64 * 1024)   /* ciphertext per socket read */
#define H1_UP_HIGH (256 * 1024)  /* request body queued on the socket */
#define H1_UP_CHUNK (64 * 1024)  /* request body pulled per read_body call */
#define H1_MAX_HEAD (64 * 1024)  /* response status line and headers */
#define H1_MAX_IDLE 256          /* idle connections kept per client */
#define H1_IDLE_MS 30000         /* an idle connection is closed after */

typedef struct h1ctx {
  struct h1ctx *next;
  char *key; /* CA \n certificate \n key */
  struct timespec mtime; /* of the certificate when loaded: a renewal reloads */
  SSL_CTX *ctx;
} h1ctx;

typedef struct h1conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_getaddrinfo_t gai;
  gdx_httpc *client;
  struct h1conn *prev, *next;
  int list; /* 0 none, 1 idle, 2 busy */
  char *key;
  gdx_httpc_req *req;
  SSL *ssl;
  BIO *rbio, *wbio;
  int handles;
  int connected, ready, closing, reading, in_process, in_pump, eof, reused;
  int msg_done, keep_alive, interim, head_state, soon;
  http_parser parser;
  char *pb; /* plaintext for the parser */
  size_t pb_off, pb_len;
  char *tlsbuf, *wscratch;
  char *ub; /* request body slice being framed */
  size_t wqueued;
  uint64_t last_io, idle_since, connect_deadline, deadline;
  gdx_buf head; /* response header lines, NUL-separated */
  char reason[64];
  size_t reason_len;
  gdx_buf wb; /* request head being built */
} h1conn;

typedef struct {
  uv_write_t w;
  h1conn *conn;
  size_t len;
  char data[];
} h1write;

static http_parser_settings settings;
static void conn_process(h1conn *k);
static void conn_close(h1conn *k);
static void on_defer(uv_timer_t *t);
static void conn_pump(h1conn *k);
static void conn_arm(h1conn *k);
static int conn_connect(gdx_httpc *c, gdx_httpc_req *r);

/* ------------------------------------------------------------------ */
/* lists                                                               */

static void list_remove(h1conn *k) {
  gdx_httpc *c = k->client;
  h1conn **head = k->list == 1 ? &c->idle : &c->busy;
  if (k->list == 0)
    return;
  if (k->list == 1)
    c->nidle--;
  if (k->prev)
    k->prev->next = k->next;
  else
    *head = k->next;
  if (k->next)
    k->next->prev = k->prev;
  k->prev = k->next = NULL;
  k->list = 0;
}

static void list_add(h1conn *k, int which) {
  gdx_httpc *c = k->client;
  list_remove(k);
  h1conn **head = which == 1 ? &c->idle : &c->busy;
  k->next = *head;
  if (*head)
    (*head)->prev = k;
  *head = k;
  k->list = which;
  if (which == 1)
    c->nidle++;
}

/* ------------------------------------------------------------------ */
/* finishing                                                           */

static void conn_free(h1conn *k) {
  gdx_httpc *c = k->client;
  if (k->ssl)
    SSL_free(k->ssl); /* frees both BIOs */
  free(k->pb);
  free(k->tlsbuf);
  free(k->wscratch);
  free(k->ub);
  free(k->key);
  gdx_buf_free(&k->head);
  gdx_buf_free(&k->wb);
  free(k);
  if (--c->open_handles == 0 && c->closing)
    free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  h1conn *k = h->data;
  if (--k->handles == 0)
    conn_free(k);
}

static void conn_close(h1conn *k) {
  if (k->closing)
    return;
  k->closing = 1;
  list_remove(k);
  if (k->gai.data == k) /* resolving: its callback ends with the cancel */
    uv_cancel((uv_req_t *)&k->gai);
  uv_close((uv_handle_t *)&k->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&k->timer, on_handle_closed);
}

/* Ends the connection's request: hands it to on_done and frees it. */
static void conn_finish(h1conn *k, int status) {
  gdx_httpc_req *r = k->req;
  if (r == NULL)
    return;
  gdx_httpc *c = k->client;
  k->req = NULL;
  r->h1.conn = NULL;
  r->h1.done = 1;
  int reusable = status == GDX_OK && k->keep_alive && r->h1.body_done && !k->closing &&
                 !k->eof && k->pb_off == k->pb_len && !c->closing &&
                 c->nidle < H1_MAX_IDLE;
  if (reusable) {
    list_add(k, 1);
    k->idle_since = uv_now(c->loop);
    k->reused = 1;
    conn_arm(k);
  } else {
    conn_close(k);
  }
  if (r->opts.on_done)
    r->opts.on_done(r, status, status == GDX_OK ? r->h1.status : 0, r->opts.data);
  gdx__httpc_req_free(r);
}

static void conn_fail(h1conn *k, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_fail(h1conn *k, int status, const char *fmt, ...) {
  gdx_httpc_req *r = k->req;
  if (r != NULL && r->errbuf[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errbuf, sizeof(r->errbuf), fmt, ap);
    va_end(ap);
  }
  conn_close(k);
  conn_finish(k, status);
}

static void on_defer(uv_timer_t *t) {
  gdx_httpc *c = t->data;
  while (c->h1_failed) {
    gdx_httpc_req *r = c->h1_failed;
    c->h1_failed = r->next;
    r->next = NULL;
    r->h1.done = 1;
    if (r->opts.on_done)
      r->opts.on_done(r, r->h1.fail_status, 0, r->opts.data);
    gdx__httpc_req_free(r);
  }
}

/* A failure found where on_done must not run yet (inside
 * gdx_httpc_request): the connection goes now, the request is reported on
 * the next loop turn. */
static void conn_fail_soon(h1conn *k, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_fail_soon(h1conn *k, int status, const char *fmt, ...) {
  gdx_httpc_req *r = k->req;
  gdx_httpc *c = k->client;
  conn_close(k);
  if (r == NULL)
    return;
  k->req = NULL;
  r->h1.conn = NULL;
  if (r->errbuf[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errbuf, sizeof(r->errbuf), fmt, ap);
    va_end(ap);
  }
  r->h1.fail_status = status;
  r->next = c->h1_failed;
  c->h1_failed = r;
  uv_timer_start(&c->h1_timer, on_defer, 0, 0);
}

/* A reused connection the peer had closed: the request goes again on a
 * fresh one, once, when nothing of it can have been acted on. */
static int conn_retry(h1conn *k) {
  gdx_httpc_req *r = k->req;
  if (r == NULL || !k->reused || r->h1.attempt > 0 || r->h1.got_bytes ||
      r->opts.read_body != NULL)
    return 0;
  k->req = NULL;
  r->h1.conn = NULL;
  r->h1.attempt = 1;
  r->h1.head_sent = 0;
  conn_close(k);
  if (conn_connect(k->client, r) != GDX_OK) {
    snprintf(r->errbuf, sizeof(r->errbuf), "could not reconnect to %s:%s", r->h1.host,
             r->h1.port);
    if (r->opts.on_done)
      r->opts.on_done(r, GDX_EIO, 0, r->opts.data);
    gdx__httpc_req_free(r);
  }
  return 1;
}

/* ------------------------------------------------------------------ */
/* timers                                                              */

static void on_timer(uv_timer_t *t) {
  h1conn *k = t->data;
  if (k->closing)
    return;
  uint64_t now = uv_now(k->client->loop);
  if (k->soon) {
    k->soon = 0;
    conn_pump(k);
    if (k->closing)
      return;
  }
  gdx_httpc_req *r = k->req;
  if (r == NULL) {
    if (now - k->idle_since >= H1_IDLE_MS) {
      conn_close(k);
      return;
    }
  } else if (!k->ready && now >= k->connect_deadline) {
    conn_fail(k, GDX_ETIMEDOUT, "connecting to %s:%s timed out", r->h1.host, r->h1.port);
    return;
  } else if (k->deadline && now >= k->deadline) {
    conn_fail(k, GDX_ETIMEDOUT, "the request took longer than %ld ms", r->opts.timeout_ms);
    return;
  } else if (k->ready && r->opts.idle_timeout_s > 0 &&
             now - k->last_io >= (uint64_t)r->opts.idle_timeout_s * 1000) {
    conn_fail(k, GDX_ETIMEDOUT, "no data moved for %ld s", r->opts.idle_timeout_s);
    return;
  }
  conn_arm(k);
}

/* Sets the timer to the earliest moment something has to be checked. */
static void conn_arm(h1conn *k) {
  if (k->closing)
    return;
  uint64_t now = uv_now(k->client->loop), at = UINT64_MAX;
  gdx_httpc_req *r = k->req;
  if (k->soon)
    at = now;
  else if (r == NULL)
    at = k->idle_since + H1_IDLE_MS;
  else {
    if (!k->ready)
      at = k->connect_deadline;
    if (k->deadline && k->deadline < at)
      at = k->deadline;
    if (k->ready && r->opts.idle_timeout_s > 0) {
      uint64_t idle = k->last_io + (uint64_t)r->opts.idle_timeout_s * 1000;
      if (idle < at)
        at = idle;
    }
  }
  if (at == UINT64_MAX) {
    uv_timer_stop(&k->timer);
    return;
  }
  uv_timer_start(&k->timer, on_timer, at > now ? at - now : 0, 0);
}

/* ------------------------------------------------------------------ */
/* writing                                                             */

static void on_write_done(uv_write_t *w, int status) {
  h1write *hw = (h1write *)w;
  h1conn *k = hw->conn;
  k->wqueued -= hw->len;
  free(hw);
  if (k->closing)
    return;
  if (status < 0) {
    if (k->req && !conn_retry(k))
      conn_fail(k, GDX_EIO, "sending to the peer failed: %s", uv_strerror(status));
    else
      conn_close(k);
    return;
  }
  k->last_io = uv_now(k->client->loop);
  if (k->req && !k->req->h1.body_done && k->wqueued < H1_UP_HIGH / 2)
    conn_pump(k);
}

/* Writes now what the socket takes; the rest is copied and queued. */
static int conn_write_raw(h1conn *k, const char *data, size_t len) {
  size_t off = 0;
  if (k->wqueued == 0) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN)
      return n;
    off = n > 0 ? (size_t)n : 0;
  }
  if (off == len)
    return 0;
  size_t rest = len - off;
  h1write *hw = malloc(sizeof(*hw) + rest);
  if (hw == NULL)
    return UV_ENOMEM;
  memcpy(hw->data, data + off, rest);
  hw->conn = k;
  hw->len = rest;
  uv_buf_t b = uv_buf_init(hw->data, (unsigned)rest);
  int rc = uv_write(&hw->w, (uv_stream_t *)&k->tcp, &b, 1, on_write_done);
  if (rc < 0) {
    free(hw);
    return rc;
  }
  k->wqueued += rest;
  return 0;
}

/* Moves what TLS produced to the socket. */
static int conn_flush_tls(h1conn *k) {
  for (;;) {
    int n = BIO_read(k->wbio, k->wscratch, 17 * 1024);
    if (n <= 0)
      return 0;
    int rc = conn_write_raw(k, k->wscratch, (size_t)n);
    if (rc < 0)
      return rc;
  }
}

static int conn_send(h1conn *k, const char *data, size_t len) {
  if (k->ssl == NULL)
    return conn_write_raw(k, data, len);
  while (len > 0) {
    int n = SSL_write(k->ssl, data, len > 16384 ? 16384 : (int)len);
    if (n <= 0)
      return UV_EPROTO;
    data += n;
    len -= (size_t)n;
    int rc = conn_flush_tls(k);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int skip_header(const char *h) {
  static const char *const own[] = {"host:", "content-length:", "transfer-encoding:",
                                    "connection:", "expect:", NULL};
  if (strpbrk(h, "\r\n") != NULL)
    return 1;
  for (int i = 0; own[i]; i++)
    if (strncasecmp(h, own[i], strlen(own[i])) == 0)
      return 1;
  const char *colon = strchr(h, ':');
  return colon == NULL || colon == h || colon[strspn(colon + 1, " \t") + 1] == '\0';
}

static void conn_send_head(h1conn *k) {
  gdx_httpc_req *r = k->req;
  gdx_httpc_opts *o = &r->opts;
  gdx_buf *b = &k->wb;
  gdx_buf_reset(b);
  int rc = gdx_buf_appendf(b, "%s %s HTTP/1.1\r\nHost: %s\r\n", o->method, r->h1.target,
                           r->h1.hosthdr);
  if (rc == GDX_OK && r->h1.hdrs)
    rc = gdx_buf_appends(b, r->h1.hdrs);
  if (rc == GDX_OK && o->read_body) {
    if (o->stream_body_len >= 0)
      rc = gdx_buf_appendf(b, "Content-Length: %lld\r\n", (long long)o->stream_body_len);
    else
      rc = gdx_buf_appends(b, "Transfer-Encoding: chunked\r\n");
  } else if (rc == GDX_OK && o->body) {
    rc = gdx_buf_appendf(b, "Content-Length: %zu\r\n", o->body_len);
  }
  if (rc == GDX_OK)
    rc = gdx_buf_append(b, "\r\n", 2);
  int small = o->body && o->body_len <= 64 * 1024;
  if (rc == GDX_OK && small && o->body_len > 0)
    rc = gdx_buf_append(b, o->body, o->body_len);
  if (rc != GDX_OK) {
    conn_fail_soon(k, GDX_ETOOBIG, "the request head is too large");
    return;
  }
  r->h1.head_sent = 1;
  k->last_io = uv_now(k->client->loop);
  k->msg_done = 0;
  k->interim = 0;
  http_parser_init(&k->parser, HTTP_RESPONSE);
  k->parser.data = k;
  rc = conn_send(k, b->data, b->len);
  if (rc == 0 && o->body && !small)
    rc = conn_send(k, o->body, o->body_len);
  if (rc < 0) {
    if (!conn_retry(k))
      conn_fail_soon(k, GDX_EIO, "sending to %s:%s failed: %s", r->h1.host, r->h1.port,
                     uv_strerror(rc));
    return;
  }
  if (o->read_body) {
    /* read_body runs on a later loop turn, never inside gdx_httpc_request. */
    k->soon = 1;
  } else {
    r->h1.body_done = 1;
  }
  conn_arm(k);
}

/* Pulls the streamed request body while the socket keeps up. */
static void conn_pump(h1conn *k) {
  gdx_httpc_req *r = k->req;
  if (k->in_pump || r == NULL || !r->h1.head_sent || r->h1.body_done || r->h1.read_paused)
    return;
  k->in_pump = 1;
  int chunked = r->opts.stream_body_len < 0;
  while (k->req == r && !k->closing && !r->h1.body_done && !r->h1.read_paused &&
         k->wqueued < H1_UP_HIGH) {
    if (k->ub == NULL && (k->ub = malloc(H1_UP_CHUNK + 12)) == NULL) {
      conn_fail(k, GDX_ENOMEM, "out of memory");
      break;
    }
    char *buf = k->ub;
    size_t off = chunked ? 10 : 0;
    size_t n = r->opts.read_body(buf + off, H1_UP_CHUNK, r->opts.data);
    if (k->req != r)
      break;
    if (n == GDX_HTTPC_READ_PAUSE) {
      r->h1.read_paused = 1;
      break;
    }
    if (n == GDX_HTTPC_READ_ABORT || n > H1_UP_CHUNK) {
      conn_fail(k, GDX_ECLOSED, "the request body was aborted");
      break;
    }
    int rc;
    if (n == 0) {
      r->h1.body_done = 1;
      if (!chunked && r->h1.body_sent != (uint64_t)r->opts.stream_body_len) {
        conn_fail(k, GDX_EIO, "the request body ended after %llu of %lld bytes",
                  (unsigned long long)r->h1.body_sent, (long long)r->opts.stream_body_len);
        break;
      }
      rc = chunked ? conn_send(k, "0\r\n\r\n", 5) : 0;
    } else {
      r->h1.body_sent += n;
      if (chunked) {
        char hdr[11];
        snprintf(hdr, sizeof(hdr), "%08zx\r\n", n);
        memcpy(buf, hdr, 10);
        memcpy(buf + off + n, "\r\n", 2);
        rc = conn_send(k, buf, n + 12);
      } else {
        rc = conn_send(k, buf, n);
      }
    }
    if (rc < 0) {
      conn_fail(k, GDX_EIO, "sending the request body failed: %s", uv_strerror(rc));
      break;
    }
  }
  k->in_pump = 0;
}

/* ------------------------------------------------------------------ */
/* reading                                                             */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  h1conn *k = h->data;
  (void)suggested;
  if (k->ssl) {
    *buf = uv_buf_init(k->tlsbuf, H1_TLS_BUF);
    return;
  }
  if (k->pb_off == k->pb_len) {
    k->pb_off = k->pb_len = 0;
  } else if (k->pb_off > 0) {
    memmove(k->pb, k->pb + k->pb_off, k->pb_len - k->pb_off);
    k->pb_len -= k->pb_off;
    k->pb_off = 0;
  }
  *buf = uv_buf_init(k->pb + k->pb_len, (unsigned)(H1_READ_BUF - k->pb_len));
}

static void conn_on_eof(h1conn *k, int err) {
  k->eof = 1;
  if (k->req == NULL) {
    conn_close(k);
    return;
  }
  if (err == 0 && k->req->h1.head_sent && !k->msg_done) {
    /* a body delimited by the end of the connection ends here */
    http_parser_execute(&k->parser, &settings, NULL, 0);
    if (k->req == NULL)
      return;
    if (k->msg_done) {
      conn_finish(k, GDX_OK);
      return;
    }
  }
  if (conn_retry(k))
    return;
  gdx_httpc_req *r = k->req;
  if (err)
    conn_fail(k, GDX_EIO, "the connection to %s:%s failed: %s", r->h1.host, r->h1.port,
              uv_strerror(err));
  else
    conn_fail(k, GDX_EIO, "%s:%s closed the connection before the response ended",
              r->h1.host, r->h1.port);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  h1conn *k = s->data;
  (void)buf;
  if (k->closing)
    return;
  if (nread < 0) {
    conn_on_eof(k, nread == UV_EOF ? 0 : (int)nread);
    return;
  }
  if (nread == 0)
    return;
  k->last_io = uv_now(k->client->loop);
  if (k->req)
    k->req->h1.got_bytes = 1;
  if (k->ssl)
    BIO_write(k->rbio, buf->base, (int)nread);
  else
    k->pb_len += (size_t)nread;
  if (k->req == NULL && k->ssl == NULL) {
    conn_close(k); /* an idle connection has nothing to say */
    return;
  }
  conn_process(k);
}

static void conn_start_reading(h1conn *k) {
  if (k->closing || !k->connected)
    return;
  int want = k->req == NULL || !k->req->h1.resp_paused;
  if (want && !k->reading) {
    uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    k->reading = 1;
  } else if (!want && k->reading) {
    uv_read_stop((uv_stream_t *)&k->tcp);
    k->reading = 0;
  }
}

static int conn_handshake(h1conn *k) {
  int rc = SSL_do_handshake(k->ssl);
  if (conn_flush_tls(k) < 0) {
    conn_fail(k, GDX_EIO, "sending to the peer failed");
    return -1;
  }
  gdx_httpc_req *r = k->req;
  if (rc != 1) {
    int e = SSL_get_error(k->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      return 0;
    long vr = SSL_get_verify_result(k->ssl);
    unsigned long ossl = ERR_get_error();
    char why[160];
    ERR_error_string_n(ossl, why, sizeof(why));
    ERR_clear_error();
    conn_fail(k, GDX_ETLS, "TLS handshake with %s:%s failed: %s", r->h1.host, r->h1.port,
              vr != X509_V_OK ? X509_verify_cert_error_string(vr) : why);
    return -1;
  }
  if (r->opts.pinned_key) {
    char pin[GDX_PKI_PIN_LEN];
    X509 *peer = SSL_get0_peer_certificate(k->ssl);
    if (peer == NULL || gdx_pki_pin(peer, pin) != GDX_OK ||
        strcmp(pin, r->opts.pinned_key) != 0) {
      conn_fail(k, GDX_ETLS, "%s:%s presented a key that does not match its pin",
                r->h1.host, r->h1.port);
      return -1;
    }
  }
  k->ready = 1;
  conn_send_head(k);
  return 0;
}

static void conn_process(h1conn *k) {
  if (k->in_process || k->closing)
    return;
  k->in_process = 1;
  for (;;) {
    gdx_httpc_req *r = k->req;
    if (k->closing)
      break;
    if (k->ssl && !k->ready) {
      if (r == NULL || conn_handshake(k) != 0 || !k->ready)
        break;
      continue;
    }
    if (r != NULL && r->h1.resp_paused)
      break;
    if (k->pb_off < k->pb_len) {
      if (r == NULL || !r->h1.head_sent) {
        conn_fail(k, GDX_EIO, "the peer sent data nobody asked for");
        break;
      }
      size_t n = http_parser_execute(&k->parser, &settings, k->pb + k->pb_off,
                                     k->pb_len - k->pb_off);
      if (k->closing || k->req != r)
        break;
      k->pb_off += n;
      enum http_errno err = HTTP_PARSER_ERRNO(&k->parser);
      if (err == HPE_PAUSED) {
        http_parser_pause(&k->parser, 0);
        if (k->msg_done)
          conn_finish(k, GDX_OK);
        continue;
      }
      if (err != HPE_OK) {
        conn_fail(k, GDX_EIO, "bad response from %s:%s: %s", r->h1.host, r->h1.port,
                  http_errno_description(err));
        break;
      }
      continue;
    }
    k->pb_off = k->pb_len = 0;
    if (k->ssl == NULL)
      break;
    int n = SSL_read(k->ssl, k->pb, H1_READ_BUF);
    if (n > 0) {
      if (r == NULL) {
        conn_close(k); /* an idle connection has nothing to say */
        break;
      }
      k->pb_len = (size_t)n;
      continue;
    }
    int e = SSL_get_error(k->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      conn_flush_tls(k); /* key updates and the like */
      break;
    }
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify */
      k->in_process = 0;
      conn_on_eof(k, 0);
      return;
    }
    if (r)
      conn_fail(k, GDX_ETLS, "TLS error from %s:%s", r->h1.host, r->h1.port);
    else
      conn_close(k);
    break;
  }
  k->in_process = 0;
  conn_start_reading(k);
}

/* ------------------------------------------------------------------ */
/* response parsing                                                    */

static int on_message_begin(http_parser *p) {
  h1conn *k = p->data;
  gdx_buf_reset(&k->head);
  k->reason_len = 0;
  k->head_state = 0;
  return 0;
}

static int on_status(http_parser *p, const char *at, size_t len) {
  h1conn *k = p->data;
  size_t room = sizeof(k->reason) - 1 - k->reason_len;
  if (len > room)
    len = room;
  memcpy(k->reason + k->reason_len, at, len);
  k->reason_len += len;
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  h1conn *k = p->data;
  if (k->head_state != 1 && k->head.len > 0 && gdx_buf_append(&k->head, "", 1) != GDX_OK)
    return -1;
  k->head_state = 1;
  return gdx_buf_append(&k->head, at, len) == GDX_OK ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  h1conn *k = p->data;
  if (k->head_state == 1 && gdx_buf_append(&k->head, ": ", 2) != GDX_OK)
    return -1;
  k->head_state = 2;
  return gdx_buf_append(&k->head, at, len) == GDX_OK ? 0 : -1;
}

static int on_headers_complete(http_parser *p) {
  h1conn *k = p->data;
  gdx_httpc_req *r = k->req;
  unsigned status = p->status_code;
  if (status < 200) {
    if (status == 101)
      return -1; /* nobody asked for an upgrade */
    k->interim = 1;
    return 0;
  }
  k->interim = 0;
  r->h1.status = (long)status;
  if (r->opts.on_header) {
    char line[128];
    int n = snprintf(line, sizeof(line), "HTTP/%u.%u %u %.*s", p->http_major, p->http_minor,
                     status, (int)k->reason_len, k->reason);
    r->opts.on_header(r, line, (size_t)n, r->opts.data);
    if (k->req != r)
      return -1;
    if (k->head.len > 0 && gdx_buf_append(&k->head, "", 1) != GDX_OK)
      return -1;
    for (size_t off = 0; off < k->head.len;) {
      size_t l = strlen(k->head.data + off);
      r->opts.on_header(r, k->head.data + off, l, r->opts.data);
      if (k->req != r)
        return -1;
      off += l + 1;
    }
  }
  return strcmp(r->opts.method, "HEAD") == 0 ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  h1conn *k = p->data;
  gdx_httpc_req *r = k->req;
  if (r->opts.on_data == NULL)
    return 0;
  int rc = r->opts.on_data(r, at, len, r->opts.data);
  if (k->req != r)
    return -1; /* cancelled from inside on_data */
  if (rc == 1) {
    gdx_buf_reset(&r->h1.pending);
    if (gdx_buf_append(&r->h1.pending, at, len) != GDX_OK) {
      conn_fail(k, GDX_ENOMEM, "out of memory");
      return -1;
    }
    r->h1.resp_paused = 1;
    http_parser_pause(p, 1);
    return 0;
  }
  if (rc < 0) {
    conn_fail(k, GDX_ECLOSED, "the response body was refused");
    return -1;
  }
  return 0;
}

static int on_message_complete(http_parser *p) {
  h1conn *k = p->data;
  if (k->interim) {
    k->interim = 0;
    return 0;
  }
  k->msg_done = 1;
  k->keep_alive = http_should_keep_alive(p);
  http_parser_pause(p, 1);
  return 0;
}

static http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------------ */
/* connecting                                                          */

static SSL_CTX *tls_ctx(gdx_httpc *c, const gdx_httpc_opts *o, char *err, size_t errlen) {
  char key[3200];
  snprintf(key, sizeof(key), "%s\n%s\n%s", o->ca_file ? o->ca_file : "",
           o->cert_file ? o->cert_file : "", o->key_file ? o->key_file : "");
  struct stat st;
  struct timespec mt = {0, 0};
  if (o->cert_file && stat(o->cert_file, &st) == 0)
    mt = st.st_mtim;
  h1ctx **pp = &c->ctxs;
  for (; *pp; pp = &(*pp)->next) {
    h1ctx *x = *pp;
    if (strcmp(x->key, key) != 0)
      continue;
    if (x->mtime.tv_sec == mt.tv_sec && x->mtime.tv_nsec == mt.tv_nsec)
      return x->ctx;
    *pp = x->next; /* the certificate changed: load it again */
    SSL_CTX_free(x->ctx);
    free(x->key);
    free(x);
    break;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  /* AES-128-GCM first: as safe for this use and cheaper per record */
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                "TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  const char *bad = NULL;
  if (o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1
                 : SSL_CTX_set_default_verify_paths(ctx) != 1)
    bad = "the CA file could not be loaded";
  else if (o->cert_file && SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1)
    bad = "the client certificate could not be loaded";
  else if (o->key_file && SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1)
    bad = "the client key could not be loaded";
  h1ctx *x = bad ? NULL : calloc(1, sizeof(*x));
  if (x == NULL || (x->key = strdup(key)) == NULL) {
    snprintf(err, errlen, "%s", bad ? bad : "out of memory");
    ERR_clear_error();
    SSL_CTX_free(ctx);
    free(x);
    return NULL;
  }
  x->ctx = ctx;
  x->mtime = mt;
  x->next = c->ctxs;
  c->ctxs = x;
  return ctx;
}

static void on_connect(uv_connect_t *cr, int status) {
  h1conn *k = cr->data;
  if (k->closing)
    return;
  gdx_httpc_req *r = k->req;
  if (status < 0) {
    conn_fail(k, GDX_EIO, "connecting to %s:%s failed: %s", r->h1.host, r->h1.port,
              uv_strerror(status));
    return;
  }
  k->connected = 1;
  k->last_io = uv_now(k->client->loop);
  conn_start_reading(k);
  if (!r->h1.tls) {
    k->ready = 1;
    conn_send_head(k);
    return;
  }
  char err[160];
  SSL_CTX *ctx = tls_ctx(k->client, &r->opts, err, sizeof(err));
  if (ctx == NULL) {
    conn_fail(k, GDX_ETLS, "TLS set-up for %s:%s failed: %s", r->h1.host, r->h1.port, err);
    return;
  }
  k->ssl = SSL_new(ctx);
  k->rbio = BIO_new(BIO_s_mem());
  k->wbio = BIO_new(BIO_s_mem());
  k->tlsbuf = malloc(H1_TLS_BUF);
  k->wscratch = malloc(17 * 1024);
  if (k->ssl == NULL || k->rbio == NULL || k->wbio == NULL || k->tlsbuf == NULL ||
      k->wscratch == NULL) {
    if (k->ssl == NULL) {
      BIO_free(k->rbio);
      BIO_free(k->wbio);
    } else {
      SSL_set_bio(k->ssl, k->rbio, k->wbio);
    }
    conn_fail(k, GDX_ENOMEM, "out of memory");
    return;
  }
  SSL_set_bio(k->ssl, k->rbio, k->wbio);
  SSL_set_connect_state(k->ssl);
  struct in6_addr a6;
  struct in_addr a4;
  int is_ip = inet_pton(AF_INET, r->h1.host, &a4) == 1 || inet_pton(AF_INET6, r->h1.host, &a6) == 1;
  if (!is_ip)
    SSL_set_tlsext_host_name(k->ssl, r->h1.host);
  if (r->opts.pinned_key == NULL) {
    /* no pin: the certificate must name the host */
    if (is_ip)
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(k->ssl), r->h1.host);
    else
      SSL_set1_host(k->ssl, r->h1.host);
  }
  conn_process(k);
}

static void conn_start_connect(h1conn *k, const struct sockaddr *sa) {
  k->connect_req.data = k;
  int rc = uv_tcp_connect(&k->connect_req, &k->tcp, sa, on_connect);
  if (rc < 0)
    conn_fail_soon(k, GDX_EIO, "connecting to %s:%s failed: %s", k->req->h1.host,
                   k->req->h1.port, uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res) {
  h1conn *k = g->data;
  g->data = NULL;
  if (k->closing) {
    uv_freeaddrinfo(res);
    if (--k->handles == 0)
      conn_free(k);
    return;
  }
  k->handles--;
  gdx_httpc_req *r = k->req;
  if (status < 0 || res == NULL) {
    conn_fail(k, GDX_EIO, "could not resolve %s: %s", r->h1.host, uv_strerror(status));
    uv_freeaddrinfo(res);
    return;
  }
  conn_start_connect(k, res->ai_addr);
  uv_freeaddrinfo(res);
}

static int conn_connect(gdx_httpc *c, gdx_httpc_req *r) {
  h1conn *k = calloc(1, sizeof(*k));
  if (k == NULL)
    return GDX_ENOMEM;
  k->pb = malloc(H1_READ_BUF);
  k->key = strdup(r->h1.key);
  if (k->pb == NULL || k->key == NULL) {
    free(k->pb);
    free(k->key);
    free(k);
    return GDX_ENOMEM;
  }
  k->client = c;
  gdx_buf_init(&k->head, H1_MAX_HEAD);
  gdx_buf_init(&k->wb, 64 * 1024 + 16 * 1024 + 256);
  uv_tcp_init(c->loop, &k->tcp);
  uv_timer_init(c->loop, &k->timer);
  k->tcp.data = k->timer.data = k;
  k->handles = 2;
  c->open_handles++;
  c->connects++;
  list_add(k, 2);
  k->req = r;
  r->h1.conn = k;
  uint64_t now = uv_now(c->loop);
  k->connect_deadline =
      now + (uint64_t)(r->opts.connect_timeout_ms > 0 ? r->opts.connect_timeout_ms : 10000);
  k->deadline = r->opts.timeout_ms > 0 ? now + (uint64_t)r->opts.timeout_ms : 0;
  uv_tcp_nodelay(&k->tcp, 1);
  struct sockaddr_storage ss;
  long long port = 0; /* checked by parse_url */
  gdx_num_parse(r->h1.port, 1, 65535, &port);
  if (uv_ip4_addr(r->h1.host, (int)port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(r->h1.host, (int)port, (struct sockaddr_in6 *)&ss) == 0) {
    conn_start_connect(k, (struct sockaddr *)&ss);
  } else {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    k->gai.data = k;
    int rc = uv_getaddrinfo(c->loop, &k->gai, on_resolved, r->h1.host, r->h1.port, &hints);
    if (rc < 0) {
      k->gai.data = NULL;
      conn_fail_soon(k, GDX_EIO, "could not resolve %s: %s", r->h1.host, uv_strerror(rc));
    } else {
      k->handles++;
    }
  }
  conn_arm(k);
  return GDX_OK;
}

/* ------------------------------------------------------------------ */
/* the engine's entry points                                           */

/* Splits http[s]://host[:port][/target] ([v6] hosts in brackets). */
static int parse_url(gdx_httpc_req *r) {
  const char *u = r->opts.url;
  struct h1req *h = &r->h1;
  if (strncasecmp(u, "http://", 7) == 0)
    u += 7;
  else if (strncasecmp(u, "https://", 8) == 0)
    u += 8, h->tls = 1;
  else
    return GDX_EINVAL;
  const char *slash = u + strcspn(u, "/?#");
  const char *hs = u, *he, *ps = NULL;
  if (*u == '[') {
    he = memchr(u, ']', (size_t)(slash - u));
    if (he == NULL)
      return GDX_EINVAL;
    hs = u + 1;
    ps = he + 1 < slash && he[1] == ':' ? he + 2 : NULL;
  } else {
    const char *colon = memchr(u, ':', (size_t)(slash - u));
    he = colon ? colon : slash;
    ps = colon ? colon + 1 : NULL;
  }
  if (he == hs || (ps && ps == slash) ||
      (ps && (slash - ps > 5 || strspn(ps, "0123456789") != (size_t)(slash - ps))))
    return GDX_EINVAL;
  /* host, port, Host header, target and pool key in one allocation (freed
   * through h->host) */
  const gdx_httpc_opts *o = &r->opts;
  size_t n = 3 * strlen(o->url) + 64 + (o->ca_file ? strlen(o->ca_file) : 0) +
             (o->cert_file ? strlen(o->cert_file) : 0) + (o->key_file ? strlen(o->key_file) : 0) +
             (o->pinned_key ? strlen(o->pinned_key) : 0);
  char *arena = malloc(n), *at = arena;
  if (arena == NULL)
    return GDX_ENOMEM;
  const char *frag = strchr(slash, '#');
  int tlen = (int)(frag ? (size_t)(frag - slash) : strlen(slash));
  h->host = at;
  at += sprintf(at, "%.*s", (int)(he - hs), hs) + 1;
  h->port = at;
  at += (ps ? sprintf(at, "%.*s", (int)(slash - ps), ps) : sprintf(at, h->tls ? "443" : "80")) + 1;
  h->hosthdr = at;
  at += sprintf(at, "%.*s", (int)(slash - u), u) + 1;
  h->target = at; /* "?q" without a path gets its "/" */
  at += sprintf(at, "%s%.*s", *slash == '/' ? "" : "/", tlen, slash) + 1;
  h->key = at;
  snprintf(at, n - (size_t)(at - arena), "%s|%s|%s|%s|%s|%s|%s", h->tls ? "https" : "http",
           h->host, h->port, o->ca_file ? o->ca_file : "", o->cert_file ? o->cert_file : "",
           o->key_file ? o->key_file : "", o->pinned_key ? o->pinned_key : "");
  long long port;
  if (strpbrk(h->target, " \r\n\t") != NULL || gdx_num_parse(h->port, 1, 65535, &port) != GDX_OK)
    return GDX_EINVAL;
  return GDX_OK;
}

int gdx__h1_request(gdx_httpc *c, gdx_httpc_req *r) {
  int rc = parse_url(r);
  if (rc != GDX_OK)
    return rc;
  gdx_buf_init(&r->h1.pending, 1024 * 1024);
  /* the caller's header strings live only until we return */
  gdx_buf hb;
  gdx_buf_init(&hb, 64 * 1024);
  for (const char *const *h = r->opts.headers; h && *h; h++) {
    if (skip_header(*h))
      continue;
    if (gdx_buf_appends(&hb, *h) != GDX_OK || gdx_buf_append(&hb, "\r\n", 2) != GDX_OK) {
      gdx_buf_free(&hb);
      return GDX_ETOOBIG;
    }
  }
  r->opts.headers = NULL;
  r->h1.hdrs = gdx_buf_detach(&hb, NULL);
  for (h1conn *k = c->idle; k; k = k->next) {
    if (strcmp(k->key, r->h1.key) != 0)
      continue;
    list_add(k, 2);
    k->req = r;
    r->h1.conn = k;
    uint64_t now = uv_now(c->loop);
    k->deadline = r->opts.timeout_ms > 0 ? now + (uint64_t)r->opts.timeout_ms : 0;
    k->last_io = now;
    conn_send_head(k); /* no user callback runs in here */
    if (r->h1.conn == k)
      conn_start_reading(k);
    return GDX_OK;
  }
  return conn_connect(c, r);
}

void gdx__h1_resume(gdx_httpc_req *r) {
  h1conn *k = r->h1.conn;
  if (k == NULL || r->h1.done)
    return;
  if (r->h1.read_paused) {
    r->h1.read_paused = 0;
    conn_pump(k);
    if (k->req != r)
      return;
  }
  if (!r->h1.resp_paused)
    return;
  int rc = r->opts.on_data(r, r->h1.pending.data, r->h1.pending.len, r->opts.data);
  if (k->req != r)
    return;
  if (rc == 1)
    return;
  if (rc < 0) {
    conn_fail(k, GDX_ECLOSED, "the response body was refused");
    return;
  }
  gdx_buf_reset(&r->h1.pending);
  r->h1.resp_paused = 0;
  conn_process(k);
}

void gdx__h1_cancel(gdx_httpc_req *r) {
  h1conn *k = r->h1.conn;
  if (r->h1.done)
    return;
  if (k == NULL) { /* failed, waiting to be reported: reported now */
    gdx_httpc *c = r->client;
    for (gdx_httpc_req **pp = &c->h1_failed; *pp; pp = &(*pp)->next)
      if (*pp == r) {
        *pp = r->next;
        break;
      }
    r->h1.done = 1;
    if (r->opts.on_done)
      r->opts.on_done(r, GDX_ECLOSED, 0, r->opts.data);
    gdx__httpc_req_free(r);
    return;
  }
  if (r->errbuf[0] == '\0')
    snprintf(r->errbuf, sizeof(r->errbuf), "cancelled");
  conn_close(k);
  conn_finish(k, GDX_ECLOSED);
}

void gdx__h1_close_all(gdx_httpc *c) {
  while (c->busy) {
    h1conn *k = c->busy;
    if (k->req && k->req->errbuf[0] == '\0')
      snprintf(k->req->errbuf, sizeof(k->req->errbuf), "the client was closed");
    conn_close(k); /* takes it off the list */
    conn_finish(k, GDX_ECLOSED);
  }
  while (c->idle)
    conn_close(c->idle);
  for (gdx_httpc_req *r = c->h1_failed; r; r = r->next)
    r->h1.fail_status = GDX_ECLOSED;
  on_defer(&c->h1_timer); /* reports them now */
  while (c->ctxs) {
    h1ctx *x = c->ctxs;
    c->ctxs = x->next;
    SSL_CTX_free(x->ctx);
    free(x->key);
    free(x);
  }
}
