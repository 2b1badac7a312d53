/* The node's client of the broker: every request gdx-node makes to the
 * broker's node listener as itself - heartbeats, certificate renewals,
 * table and folder reads, ledger and reconciliation reports - goes
 * through one gdx_broker_client. It knows the listener's URL and the
 * node's certificate, key and the platform CA (node.state_dir), and makes
 * each request over gdx_httpc with that identity (mutual TLS).
 *
 * Two shapes of request:
 *   - a call: the answer is collected into the caller's gdx_buf, whose cap
 *     bounds what the broker can make the node hold (JSON answers, table
 *     pages); with zstd the answer is asked for compressed and inflated
 *     into the same buffer, within the same cap, before the caller hears;
 *   - a stream: the answer's bytes go to the caller as they arrive, and
 *     the caller may pause and resume the transfer (a file's data).
 *
 * Enrollment is not here: it happens before the node has an identity, on
 * the broker's API listener (enroll.c).
 */
#ifndef GDX_BROKER_CLIENT_H
#define GDX_BROKER_CLIENT_H

#include <jansson.h>
#include <uv.h>

#include "buf.h"
#include "httpc.h"

typedef struct gdx_broker_client gdx_broker_client;

/* The strings are copied. */
int gdx_broker_client_new(uv_loop_t *loop, const char *nodes_url, const char *ca_file,
                          const char *cert_file, const char *key_file, gdx_broker_client **out);
/* Aborts what is in flight (the callbacks get GDX_ECLOSED before this
 * returns; new requests from them are refused) and frees the client. */
void gdx_broker_client_close(gdx_broker_client *bc);
/* The broker's node listener, "https://host:port". */
const char *gdx_broker_client_url(const gdx_broker_client *bc);

typedef struct {
  const char *method;       /* "GET" when NULL */
  const char *path;         /* after the listener's URL: "/node/v1/tables/12/snapshot?limit=10" */
  const char *const *query; /* name, value, …, NULL: appended URL-encoded; NULL or "" values
                             * are left out */
  const json_t *json;       /* a JSON body (sent compact, as application/json), or NULL */
  long timeout_ms;          /* the whole transfer; 0: none */
  long idle_timeout_s;      /* abort when no byte moves for this long; 0: never */
  int curl;                 /* libcurl's engine instead of gdx's native one */
} gdx_broker_req;

/* A call's end. status: GDX_OK when the broker answered (http is its
 * status code, the answer is in the caller's buffer), else why the request
 * failed, with why in words ("" on success); valid until the callback
 * returns. */
typedef void (*gdx_broker_done_fn)(int status, long http, const char *why, void *data);

/* A call: the answer goes into `answer` (reset first; one larger than its
 * cap fails the request). With zstd, "Accept-Encoding: zstd" is sent and
 * an answer with "Content-Encoding: zstd" is inflated in place. `answer`
 * must live until done runs; *out (may be NULL) is the transfer, for
 * gdx_httpc_cancel(), valid until done. */
int gdx_broker_call(gdx_broker_client *bc, const gdx_broker_req *r, gdx_buf *answer, int zstd,
                    gdx_broker_done_fn done, void *data, gdx_httpc_req **out);

/* A stream: on_header, on_data (0 consumed, 1 pause - the bytes come again
 * after gdx_httpc_resume() - or -1 abort) and on_done run as gdx_httpc runs
 * them, with nothing in between (a file's bytes take the same path as
 * through gdx_httpc itself). */
int gdx_broker_stream(gdx_broker_client *bc, const gdx_broker_req *r,
                      void (*on_header)(gdx_httpc_req *, const char *, size_t, void *),
                      int (*on_data)(gdx_httpc_req *, const char *, size_t, void *),
                      void (*on_done)(gdx_httpc_req *, int, long, void *), void *data,
                      gdx_httpc_req **out);

#endif
