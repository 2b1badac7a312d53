/* Relaying one HTTP request to the next hop and its response back: the data
 * path shared by the broker (client -> node) and the front-end node
 * (broker -> internal service).
 *
 * Both bodies stream with backpressure and bounded memory: the request body
 * is read from the client only as fast as the next hop takes it (at most
 * GDX_RELAY_UP_HIGH bytes held), and the response body pauses the next hop
 * while the client's queue is above the server's high-water mark. Hop-by-hop
 * headers are dropped in both directions; X-Request-Id is set to the
 * incoming request's id, so one id travels end to end.
 *
 * A response can instead be buffered whole (up to a cap) and rewritten before
 * anything is sent - the broker filters JSON fields this way.
 *
 * Failures of the next hop are answered with the typed gdx error
 *   {"error":{"type":"node","code":"unreachable","message":…,"request_id":…}}
 * 502 for a refused or broken connection, 504 when no response head arrives
 * in time; a response that breaks off after its head was sent closes the
 * client's connection (the only honest signal left).
 */
#ifndef GDX_RELAY_H
#define GDX_RELAY_H

#include <stdint.h>

#include "buf.h"
#include "http.h"
#include "httpc.h"

#define GDX_RELAY_UP_HIGH (256 * 1024)

typedef struct {
  int status;               /* sent to the client (499: the client went away) */
  uint64_t bytes_in;        /* request body bytes passed on */
  uint64_t bytes_out;       /* response body bytes sent */
  uint64_t ms_head;         /* start to the next hop's response head */
  long peer_upstream_ms;    /* X-Gdx-Upstream-Ms of the next hop, -1 if none */
  long peer_records;        /* X-Gdx-Records of the next hop (compare), -1 if none */
  char error_type[12];      /* "" or the hop that failed: client broker node upstream */
  char error_code[40];
} gdx_relay_result;

typedef struct {
  gdx_httpc *client;
  const char *url;
  const char *const *headers;      /* added to the request, NULL-terminated */
  const char *const *drop_headers; /* client headers not to pass on (case-insensitive) */
  const char *ca_file, *cert_file, *key_file, *pinned_key;
  long connect_timeout_ms;
  long head_timeout_ms;            /* no response head in this long: 504 */
  long idle_timeout_s;             /* a body silent this long: abort */
  const char *next_hop;            /* error type of failures: "node", "upstream" */
  int native;                      /* gdx's own HTTP/1.1 engine instead of libcurl */
  /* Buffering: when want_buffer says so for a response's content type, the
   * body is collected (at most buffer_max bytes, else 502) and handed to
   * transform, which may rewrite it; transform returns 0, or -1 after
   * filling why (the client gets 502 type broker). */
  size_t buffer_max;
  int (*want_buffer)(const char *content_type, void *data);
  int (*transform)(gdx_buf *body, const char *content_type, void *data, char *why, size_t n);
  /* Before the response head goes out: add headers with gdx_http_add_header. */
  void (*on_head)(gdx_http_req *req, int status, const gdx_relay_result *so_far, void *data);
  /* Exactly once, when both sides are done. */
  void (*on_finish)(const gdx_relay_result *res, void *data);
  void *data;
} gdx_relay_opts;

/* Takes over req (its body, abort and drain callbacks) and starts the
 * request to the next hop. On failure nothing was sent and the caller still
 * owns req. */
int gdx_relay_start(gdx_http_req *req, const gdx_relay_opts *opts);

/* The typed error every gdx hop answers with; also sets X-Gdx-Error-Type. */
void gdx_relay_error(gdx_http_req *req, int status, const char *type, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Hop-by-hop headers (RFC 9110 7.6.1) and those every hop sets itself. */
int gdx_relay_hop_header(const char *name);

#endif
