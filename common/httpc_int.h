/* Internals shared by the two engines of the HTTP client: libcurl
 * (httpc.c) and gdx's own keep-alive HTTP/1.1 engine (httpc_native.c). */
#ifndef GDX_HTTPC_INT_H
#define GDX_HTTPC_INT_H

#include <http_parser.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "httpc.h"

#define GDX_HTTPC_ERRLEN 256

struct h1conn;
struct h1ctx;

struct gdx_httpc {
  uv_loop_t *loop;
  void *multi;          /* CURLM */
  uv_timer_t timer;
  int closing;
  int open_handles;     /* uv handles still to close before the client is freed */
  long connects;
  gdx_httpc_req *reqs;  /* curl transfers in flight, for close */
  void *spare[64];      /* finished curl easy handles, reset for reuse */
  int nspare;
  struct sock_ctx *socks; /* sockets curl watches, for close */
  /* native engine */
  struct h1conn *idle;  /* keep-alive connections waiting for a request */
  struct h1conn *busy;  /* connections carrying a request or connecting */
  struct h1ctx *ctxs;   /* TLS contexts by (CA, certificate, key) */
  int nidle;
  gdx_httpc_req *h1_failed; /* failures to report on the next loop turn */
  uv_timer_t h1_timer;
};

/* State of a request on the native engine. */
struct h1req {
  struct h1conn *conn;
  char *host, *port, *target, *hosthdr; /* one allocation, at host */
  char *key;            /* origin key: scheme, host, port, TLS identity (same allocation) */
  char *hdrs; /* the request's own header lines, CRLF-terminated */
  int tls;
  int attempt;
  int head_sent, body_done, read_paused, resp_paused, got_bytes, done;
  uint64_t body_sent;
  gdx_buf pending;      /* a body slice on_data did not take yet */
  long status;
  int fail_status;
};

struct gdx_httpc_req {
  gdx_httpc *client;
  gdx_httpc_req *prev, *next;
  void *easy;           /* CURL */
  struct curl_slist *headers;
  gdx_httpc_opts opts;
  char errbuf[GDX_HTTPC_ERRLEN];
  int paused;
  int native;
  struct h1req h1;
};

int gdx__h1_request(gdx_httpc *c, gdx_httpc_req *r);
void gdx__h1_resume(gdx_httpc_req *r);
void gdx__h1_cancel(gdx_httpc_req *r);
/* Closes every native connection; requests in flight get GDX_ECLOSED. */
void gdx__h1_close_all(gdx_httpc *c);
void gdx__httpc_req_free(gdx_httpc_req *r);

#endif
