/* The exchange's cache of access decisions: everything about one
 * authorization that a call through the broker is decided on, and the
 * access tokens already verified - so that a call costs no database round
 * trip (loop thread only).
 *
 * An entry holds the authorization's status, method, validity period,
 * quota and calls used, the consumer unit and its state, the resource and
 * its operations, the data items not granted, the provider's node (address
 * and pinned key) and the credentials with their generation. A miss loads
 * all of it in one database job while the calls that need it wait
 * (authz_waiter); an entry older than a minute is loaded again. Entries are
 * dropped when the invalidation log names them (cache_invalidations,
 * polled every proxy.cache_poll_ms; at once for a change made through this
 * broker: authz_invalidate).
 */
#ifndef GDX_BROKER_AUTHZ_CACHE_H
#define GDX_BROKER_AUTHZ_CACHE_H

#include <stdint.h>
#include <uv.h>

#include "access_token.h"
#include "broker.h"
#include "buf.h"
#include "db.h"
#include "ids.h"
#include "openapi.h"
#include "pki.h"

#define AUTHZ_MAX_CREDS 32

typedef struct authz_waiter authz_waiter;

typedef struct authz_entry {
  long long id;
  struct authz_entry *next; /* in its bucket */
  int loading, stale;
  uint64_t loaded_ms;
  authz_waiter *waiters;
  char fwd[3][112]; /* the headers sent to the node, made on first use */
  /* what the load found */
  int exists, active, is_call, unit_active;
  char method[12];                 /* call, subscribe, fetch, compare */
  char *items_query;               /* the authorized items as "a%2Cb", for table reads */
  long long valid_from, valid_end; /* unix seconds, [from, end) */
  long long quota;                 /* -1: none */
  long long used;                  /* counted against the quota, written or not */
  char consumer[GDX_UNIT_CODE_SIZE], code[GDX_RESOURCE_CODE_SIZE], target[501];
  char provider[GDX_UNIT_CODE_SIZE], node_name[GDX_NAME_SIZE];
  int node_ok;
  char node_addr[301], node_pin[GDX_PKI_PIN_LEN];
  char **deny; /* the entry's data items the authorization leaves out */
  int ndeny;
  gdx_openapi *ops;  /* an API's operations (its OpenAPI text), */
  char ops_err[200]; /* or, when NULL, why they do not read */
  struct {
    long long id, generation;
    int ok;
  } creds[AUTHZ_MAX_CREDS];
  int ncreds;
  double tokens; /* the rate limit's bucket */
  uint64_t tokens_ms;
} authz_entry;

/* A call waiting for an entry: ready() runs on the loop when the load is
 * done, with the entry (status GDX_OK) or without it (the database could
 * not answer: e is NULL). */
struct authz_waiter {
  authz_waiter *next;
  void (*ready)(authz_waiter *w, authz_entry *e, int status);
};

typedef struct authz_cache authz_cache;

typedef struct {
  uv_loop_t *loop;
  const gdx_broker_config *cfg;
  const broker_pki *pki;
  gdx_db_pool *db;
  /* units of calls counted against authorization `id` but not written to
   * authorization_usage yet (call_records.h), added to a loaded entry */
  long long (*pending_units)(void *data, long long id);
  void *pending_data;
} authz_cache_opts;

int authz_cache_new(const authz_cache_opts *o, authz_cache **out);
/* The entry of authorization id if it is cached and fresh, else NULL. */
authz_entry *authz_fresh(authz_cache *c, long long id);
/* After authz_fresh said NULL: w->ready runs once the entry is loaded (or
 * could not be; perhaps before this returns). */
void authz_wait(authz_cache *c, long long id, authz_waiter *w);
/* The cached entry, fresh or not, or NULL: for what a call in progress
 * counts or filters. */
authz_entry *authz_find(authz_cache *c, long long id);
/* A verified access token: GDX_OK, GDX_EINVAL (malformed or forged),
 * GDX_ETIMEDOUT (expired). Tokens seen before skip the HMAC. */
int authz_token(authz_cache *c, const char *s, access_token *t);
/* A change made through this broker (kind as in rest_invalidate): drops
 * what it names at once, then reads the log for other changes. */
void authz_invalidate(authz_cache *c, const char *kind, long long ref);
/* Stops polling; cb runs once no database job of the cache is in flight
 * (loads finish, their waiters are answered). Frees the cache after cb. */
void authz_cache_stop(authz_cache *c, void (*cb)(void *), void *data);
void authz_cache_metrics(authz_cache *c, gdx_buf *out);

#endif
