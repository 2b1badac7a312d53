/* The gdx HTTP/1.1 server: libuv for I/O, http-parser for parsing, OpenSSL
 * memory BIOs for TLS.
 *
 * A connection handles one request at a time; pipelined requests wait in the
 * read buffer until the response before them has ended, so responses always
 * leave in request order and memory per connection stays bounded. Responses
 * are gathered in a per-connection output buffer and written once per read
 * batch (one syscall for many pipelined responses).
 *
 * Life of a request:
 *   on_request(req)        head parsed; route, check, maybe respond at once
 *   body callback(req, …)  zero or more slices of the (de-chunked) body,
 *                          valid only during the call
 *   complete callback(req) the whole body has arrived
 *   gdx_http_respond() or gdx_http_start()/write()/end() from any of these, or
 *   later from another callback on the loop thread (a database reply).
 * The req pointer stays valid until the response has ended and the body has
 * been read, or until the abort callback reports that the connection died;
 * after either, the handler must forget it.
 *
 * Limits (gdx_http_limits) answer with the matching status and close:
 * request line + headers over max_header_bytes 431 (URL alone 414), body over
 * max_body_bytes 413, a client too slow to send its head or body 408, too many
 * connections 503. A client that stops reading its responses is cut off after
 * send_timeout_ms without progress; while its queue is above
 * write_high_water the server stops reading from it.
 */
#ifndef GDX_HTTP_H
#define GDX_HTTP_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "metrics.h"

typedef struct gdx_http_server gdx_http_server;
typedef struct gdx_http_req gdx_http_req;

typedef struct {
  size_t max_header_bytes;   /* request line + headers (431); default 8 KiB */
  size_t max_url_bytes;      /* request target (414); default 4 KiB */
  uint64_t max_body_bytes;   /* request body (413); default 1 MiB */
  unsigned max_headers;      /* header count (431); default 100 */
  unsigned max_connections;  /* more are answered 503 and closed */
  uint64_t header_timeout_ms;    /* first byte to end of head (408) */
  uint64_t body_timeout_ms;      /* silence while a body is arriving (408) */
  uint64_t keepalive_timeout_ms; /* idle between requests: close quietly */
  uint64_t send_timeout_ms;      /* no write progress: close */
  uint64_t shutdown_timeout_ms;  /* graceful shutdown: then force-close */
  size_t write_high_water;       /* queued response bytes: stop reading */
} gdx_http_limits;

void gdx_http_limits_default(gdx_http_limits *l);

typedef enum {
  GDX_TLS_VERIFY_NONE = 0,
  GDX_TLS_VERIFY_OPTIONAL, /* ask for a client certificate, verify if sent */
  GDX_TLS_VERIFY_REQUIRE,  /* mutual TLS: no valid certificate, no connection */
} gdx_tls_verify;

typedef struct {
  const char *cert_file;      /* PEM chain */
  const char *key_file;       /* PEM private key */
  const char *client_ca_file; /* PEM CAs that sign client certificates */
  gdx_tls_verify verify;
} gdx_tls_options;

typedef void (*gdx_http_request_cb)(gdx_http_req *req, void *data);

typedef struct {
  uv_loop_t *loop;
  gdx_http_limits limits;
  gdx_http_request_cb on_request;
  void *data;           /* handed to on_request */
  int access_log;       /* one info line per request */
  const char *name;     /* for logs: "broker" */
} gdx_http_server_options;

typedef struct {
  uint64_t connections_open;
  uint64_t connections_total;
  uint64_t connections_rejected; /* over max_connections */
  uint64_t tls_handshake_failures;
  uint64_t requests_total;
  uint64_t responses_by_class[6]; /* index status/100 */
  uint64_t status_counts[600];
  uint64_t bytes_in, bytes_out;
  gdx_histogram latency;
} gdx_http_stats;

/* Creates a server; listeners are added with gdx_http_listen(). */
int gdx_http_server_new(const gdx_http_server_options *opts, gdx_http_server **out);
/* Binds host:port (port 0 picks one; gdx_http_server_port() tells). With
 * tls != NULL the listener speaks TLS only. */
int gdx_http_listen(gdx_http_server *srv, const char *host, int port,
                    const gdx_tls_options *tls, char *err, size_t errlen);
int gdx_http_server_port(gdx_http_server *srv, int index);
/* Replaces a TLS listener's certificate, key and client CAs (after a
 * renewal); connections already open keep the old ones. */
int gdx_http_reload_tls(gdx_http_server *srv, int index, const gdx_tls_options *tls, char *err,
                        size_t errlen);
/* Stops accepting, lets requests in progress finish (answering them with
 * Connection: close), closes idle connections, force-closes what remains
 * after shutdown_timeout_ms, then calls cb. The server is freed after cb
 * returns. */
void gdx_http_server_shutdown(gdx_http_server *srv, void (*cb)(gdx_http_server *, void *),
                              void *data);
const gdx_http_stats *gdx_http_server_stats(const gdx_http_server *srv);
/* Appends the server's metrics in Prometheus text format. */
int gdx_http_server_metrics(const gdx_http_server *srv, gdx_buf *out);

/* --- request accessors (valid while req is) --- */
const char *gdx_http_req_method(const gdx_http_req *req);
const char *gdx_http_req_path(const gdx_http_req *req);  /* without query */
const char *gdx_http_req_query(const gdx_http_req *req); /* "" when none */
/* Case-insensitive lookup of the first header of that name, or NULL. */
const char *gdx_http_req_header(const gdx_http_req *req, const char *name);
/* The i-th header as received (0-based); -1 past the last. */
int gdx_http_req_header_at(const gdx_http_req *req, unsigned i, const char **name,
                           const char **value);
const char *gdx_http_req_id(const gdx_http_req *req);
int64_t gdx_http_req_content_length(const gdx_http_req *req); /* -1: chunked/none */
/* The verified client certificate (mutual TLS), or NULL. Owned by the
 * connection. */
X509 *gdx_http_req_peer_cert(const gdx_http_req *req);
/* Its subject as a one-line string ("CN=node-1,O=…"), or NULL. */
const char *gdx_http_req_peer_subject(gdx_http_req *req);
const char *gdx_http_req_remote_addr(const gdx_http_req *req);
/* A small integer the handler keeps per connection (0 at first), for caching
 * what it concluded from the peer certificate, which cannot change while the
 * connection lives (renegotiation is refused). */
int gdx_http_req_peer_tag(const gdx_http_req *req);
void gdx_http_req_set_peer_tag(gdx_http_req *req, int tag);
void gdx_http_req_set_data(gdx_http_req *req, void *data);
void *gdx_http_req_get_data(const gdx_http_req *req);
gdx_http_server *gdx_http_req_server(const gdx_http_req *req);
uv_loop_t *gdx_http_server_loop(const gdx_http_server *srv);

/* --- streaming the request body --- */
typedef void (*gdx_http_body_cb)(gdx_http_req *req, const char *data, size_t len);
typedef void (*gdx_http_req_cb)(gdx_http_req *req);
/* Sets the body, completion and abort callbacks. Without a body callback the
 * body is read and dropped. A handler that neither responded nor set any
 * callback by the time the body has arrived is a bug: the server answers 500.
 * An asynchronous handler sets at least on_abort, which tells it that the
 * connection died and req must be forgotten. */
void gdx_http_req_on(gdx_http_req *req, gdx_http_body_cb on_body,
                     gdx_http_req_cb on_complete, gdx_http_req_cb on_abort);
/* Request-body backpressure: stop handing body bytes (and stop reading the
 * socket) until resumed. */
void gdx_http_req_pause(gdx_http_req *req);
void gdx_http_req_resume(gdx_http_req *req);

/* --- responses --- */
/* Adds a response header (before respond/start). GDX_EINVAL for CR/LF. */
int gdx_http_add_header(gdx_http_req *req, const char *name, const char *value);
/* A whole response. */
int gdx_http_respond(gdx_http_req *req, int status, const char *content_type,
                     const void *body, size_t len);
/* The JSON error every gdx endpoint uses:
 * {"error":{"code":"…","message":"…","request_id":"…"}} */
int gdx_http_respond_error(gdx_http_req *req, int status, const char *code,
                           const char *message);
/* Streaming: content_length < 0 means chunked. */
int gdx_http_start(gdx_http_req *req, int status, const char *content_type,
                   int64_t content_length);
/* Returns 1 when the connection's queue is above the high-water mark: the
 * handler should wait for the drain callback before writing more. */
int gdx_http_write(gdx_http_req *req, const void *data, size_t len);
int gdx_http_end(gdx_http_req *req);
void gdx_http_req_on_drain(gdx_http_req *req, gdx_http_req_cb on_drain);
/* Closes the connection at once, mid-response if need be: how a proxy tells
 * its client that a streamed body broke off. The abort callback does not
 * run; req is gone afterwards. */
void gdx_http_abort(gdx_http_req *req);

const char *gdx_http_status_text(int status);

/* URL-decodes [s, s+n) into out ('+' is a space); -1 on a bad escape, a
 * NUL or no room. */
int gdx_url_decode(const char *s, size_t n, char *out, size_t outn);
/* Appends s percent-encoded for a query value (all but [A-Za-z0-9_.-]). */
int gdx_url_encode(gdx_buf *b, const char *s);
/* The decoded value of query parameter `name` (query without the '?'):
 * 1 found, 0 absent, -1 malformed or longer than n - 1. */
int gdx_http_query_param(const char *query, const char *name, char *out, size_t n);

/* --- test and fuzz hooks: a connection without a socket --- */
typedef struct gdx_http_conn gdx_http_conn;
/* Creates a connection whose output goes to `sink` (may be NULL). */
gdx_http_conn *gdx_http_test_conn_new(gdx_http_server *srv,
                                      void (*sink)(const char *, size_t, void *),
                                      void *sink_data);
/* Feeds bytes as if read from the socket; returns 0 while open. */
int gdx_http_test_conn_feed(gdx_http_conn *c, const char *data, size_t len);
void gdx_http_test_conn_free(gdx_http_conn *c);

#endif
