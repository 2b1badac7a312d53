/* The exchange's calls, inside the broker's data plane (exchange.h is its
 * face): one API call, comparison or provider read through the broker, from
 * the request that asks to the call record that proves it.
 *
 * Two doors decide whether a call may pass, each on the authorization's
 * cached entry (authz_cache.h): svc.c for applications with an access token
 * (/svc/<code>/...: calls, comparisons, fetches) and node_hop.c for
 * consumer nodes with their certificate (/node/v1/tables/<auth>/<read>:
 * table and folder reads). This module does what both need: wait for the
 * entry, refuse with a stable code, relay to the provider's node (mutual
 * TLS, the node's key pinned, backpressure both ways, JSON filtered to the
 * granted data items), and queue the call record.
 */
#ifndef GDX_BROKER_XCALL_H
#define GDX_BROKER_XCALL_H

#include <stdint.h>
#include <uv.h>

#include "access_token.h"
#include "authz_cache.h"
#include "broker.h"
#include "call_records.h"
#include "gauges.h"
#include "http.h"
#include "httpc.h"
#include "node_auth.h"

/* why a call was refused, for /metrics */
enum {
  XR_TOKEN,
  XR_CREDENTIAL,
  XR_AUTHZ,
  XR_EXPIRED,
  XR_WRONG_RESOURCE,
  XR_QUOTA,
  XR_RATE,
  XR_OPERATION,
  XR_NODE,
  XR_UNIT,
  XR_COUNT,
  XR_NONE = -1 /* not counted: a malformed request, the broker busy */
};

typedef struct exchange {
  uv_loop_t *loop;
  const gdx_broker_config *cfg;
  const broker_pki *pki;
  gdx_db_pool *db;
  gdx_httpc *httpc; /* to the providers' nodes: the native engine, pooled */
  authz_cache *cache;
  call_records *records;
  gauges *gauges;
  uint64_t calls_by_class[6], refused[XR_COUNT];
  int node_checks; /* node_hop.c's database jobs in flight */
  int stopping, pending_stops, cache_stopping;
  void (*stop_cb)(void *);
  void *stop_data;
} exchange;

typedef struct xcall xcall;
typedef void (*xcall_decide_fn)(xcall *k, authz_entry *e);

struct xcall {
  exchange *x;
  gdx_http_req *req; /* NULL once the client is gone (while waiting) */
  authz_waiter w;
  xcall_decide_fn decide;
  int paused; /* the request body waits for the decision */
  uint64_t start_ms;
  call_record r;
  access_token tok;                  /* svc.c: the caller's */
  char code[GDX_RESOURCE_CODE_SIZE]; /* svc.c: the resource code in the path */
  const char *rest;                  /* into the request's path, after the part each door parses */
  int compare;                       /* a compare batch: counted by the records in it */
  char op[12];                       /* a provider read: schema, snapshot, changes, files, … */
  node_identity node;                /* node_hop.c: the consumer's node */
};

/* A call and its record, begun; NULL after answering 503 (out of memory). */
xcall *xcall_new(exchange *x, gdx_http_req *req);
/* Answers a refusal (the one error shape: type client, broker or node,
 * with the code), records the call and frees k. reason: XR_*. */
void xcall_refuse(xcall *k, int status, const char *code, int reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* decide(k, entry) with the authorization's entry: at once when it is
 * cached, else once it is loaded (the request paused meanwhile). */
void xcall_with_entry(xcall *k, long long auth_id, xcall_decide_fn decide);
/* Relays k's request to the provider's node at url (filter: API calls,
 * whose JSON is cut to the granted data items; extra: one more header line
 * or NULL). On GDX_OK k belongs to the relay, which records and frees it. */
int xcall_relay(xcall *k, authz_entry *e, const char *url, int filter, const char *extra);
/* The provider read k->op (a table's schema, snapshot, changes, checksums,
 * rowsums; a folder's files, chunks, data) at the provider's node, with
 * the read's own parameters passed on (numbers checked, a long poll kept
 * inside the head timeout) and items= set to the granted items, whatever
 * was asked. */
void xcall_read(xcall *k, authz_entry *e);
/* 1 when a fetch authorization may do op: a table's schema and snapshot, a
 * folder's listing, chunk hashes and bytes. */
int xcall_fetch_op(const char *op);

/* The doors (router handlers; data is the exchange). */
void svc_handle(gdx_http_req *req, void *data);
void node_hop_handle(gdx_http_req *req, void *data);
/* node_hop.c may have node checks in flight; exchange.c waits for them. */
void exchange_job_done(exchange *x);

#endif
