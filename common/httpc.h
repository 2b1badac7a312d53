/* HTTP client on the gdx libuv loop, with two engines behind one interface.
 *
 * The default is libcurl's multi interface: curl tells us which sockets to
 * watch (uv_poll) and when to wake it (uv_timer); every transfer of one
 * gdx_httpc shares curl's connection cache, so keep-alive connections to the
 * same peer are reused. It does everything HTTP can ask of a client.
 *
 * opts.native picks gdx's own engine (httpc_native.c), built for the data
 * plane's hot hops: HTTP/1.1 only, http and https (TLS through memory BIOs,
 * as the server does), a pool of keep-alive connections per origin that stay
 * registered with the loop, http-parser for responses. A request on a warm
 * connection costs one write and one read, with none of curl's per-request
 * poll registration, timers and liveness checks. Response bodies are
 * streamed to on_data as they arrive (a callback may pause the transfer for
 * backpressure and resume it later); request bodies are either a buffer or
 * pulled from a read callback.
 */
#ifndef GDX_HTTPC_H
#define GDX_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct gdx_httpc gdx_httpc;
typedef struct gdx_httpc_req gdx_httpc_req;

typedef struct {
  const char *method;        /* "GET" when NULL */
  const char *url;
  const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL */
  const void *body;          /* request body; must live until on_done */
  size_t body_len;
  /* Streamed request body instead of `body`: return bytes written into buf,
   * 0 at the end; body_len gives the length or -1 (chunked) via
   * stream_body_len. */
  size_t (*read_body)(char *buf, size_t len, void *data);
  int64_t stream_body_len;
  /* Streamed response body. Return 0 when the bytes were consumed; 1 to
   * pause without consuming them (they are handed over again after
   * gdx_httpc_resume); -1 to abort the transfer. */
  int (*on_data)(gdx_httpc_req *req, const char *data, size_t len, void *data_ud);
  /* Once per response header line, "Name: value" without CRLF. */
  void (*on_header)(gdx_httpc_req *req, const char *line, size_t len, void *data);
  /* status: GDX_OK or a GDX_E* code; http_status: the response code or 0.
   * The request is freed after on_done returns. */
  void (*on_done)(gdx_httpc_req *req, int status, long http_status, void *data);
  void *data;
  long timeout_ms;          /* whole transfer; 0: none */
  long connect_timeout_ms;  /* 0: 10 s */
  long idle_timeout_s;      /* abort when no byte moves for this long; 0: never */
  const char *ca_file;      /* TLS: CAs to trust for the server */
  const char *cert_file;    /* TLS: client certificate (mutual TLS) */
  const char *key_file;
  /* Mutual TLS with a peer known by its key rather than its name: the
   * server's public key must match this pin ("sha256//…"), and then its
   * host name is not checked (the CA check still is). */
  const char *pinned_key;
  /* 1: gdx's own HTTP/1.1 engine (see above) instead of libcurl. */
  int native;
} gdx_httpc_opts;

/* read_body may return this when no bytes are ready yet: the upload pauses
 * until gdx_httpc_resume(). */
#define GDX_HTTPC_READ_PAUSE ((size_t)0x10000001)
/* read_body returns this to abort the transfer. */
#define GDX_HTTPC_READ_ABORT ((size_t)0x10000000)

int gdx_httpc_new(uv_loop_t *loop, gdx_httpc **out);
/* Aborts transfers in flight (their on_done gets GDX_ECLOSED), closes the
 * handles; the client is freed on a later loop turn. */
void gdx_httpc_close(gdx_httpc *c);
/* Starts a transfer. The option strings are copied. */
int gdx_httpc_request(gdx_httpc *c, const gdx_httpc_opts *opts, gdx_httpc_req **out);
void gdx_httpc_resume(gdx_httpc_req *req);
/* Aborts one transfer: its on_done runs now with GDX_ECLOSED. */
void gdx_httpc_cancel(gdx_httpc_req *req);
/* New connections opened by this client so far (for reuse checks). */
long gdx_httpc_connects(gdx_httpc *c);
/* The error text curl gave for a failed transfer ("" if none). */
const char *gdx_httpc_error(gdx_httpc_req *req);

#endif
