/* The broker's data plane (issue 4): node trust (nodes.c), consumer
 * credentials and access tokens (credentials.c) and the API proxy with its
 * caches, rate limits, quotas and call records (proxy.c).
 */
#ifndef GDX_BROKER_EXCHANGE_H
#define GDX_BROKER_EXCHANGE_H

#include <stdint.h>
#include <uv.h>

#include "api.h"
#include "broker.h"
#include "buf.h"
#include "db.h"
#include "router.h"

/* nodes.c: loads (or, first of all brokers, creates) the platform CA and the
 * token key, and issues this broker's own certificate into pki.dir.
 * Blocking (runs the loop until the database answers): start-up only. */
int nodes_pki_boot(uv_loop_t *loop, gdx_db_pool *db, const gdx_broker_config *cfg,
                   const char *instance, broker_pki *pki, char *err, size_t errlen);
void nodes_pki_free(broker_pki *pki);

/* nodes.c: a front-end node known by its certificate - the serial must be
 * one issued to that node, not revoked and not expired, and node and unit
 * must be active. status 0 when it may be served, else the HTTP status
 * with a stable code and a message. Runs on a database worker. */
typedef struct {
  long long node_row, unit_id;
  int status;
  const char *code;
  char message[200];
} node_check;
int nodes_cert_check(gdx_db_conn *c, const char *unit, const char *node, const char *serial,
                     node_check *out);

/* credentials.c: consumer access tokens,
 *   gdxa.<credential>.<authorization>.<generation>.<expiry unix>.<HMAC-SHA256 hex>
 * self-contained, so checking one costs no database round trip. */
typedef struct {
  long long credential_id, authorization_id, generation, expires;
} access_token;
#define ACCESS_TOKEN_MAX 200
int token_sign(const broker_pki *pki, const access_token *t, char *out, size_t n);
/* 0: good; GDX_EINVAL: malformed or forged; GDX_ETIMEDOUT: expired. */
int token_verify(const broker_pki *pki, const char *s, access_token *t);

/* proxy.c */
typedef struct proxy proxy;
int proxy_new(uv_loop_t *loop, const gdx_broker_config *cfg, const broker_pki *pki,
              gdx_db_pool *db, gdx_router *router, proxy **out, char *err, size_t errlen);
/* A change made through this broker: drops what it names from the cache at
 * once (kind as in api_invalidate), then reads the log for other changes. */
void proxy_poke(void *p, const char *kind, long long ref);
/* Writes the call records still queued (they are not lost on a clean stop)
 * and closes; cb runs when done, before the database pool stops. */
void proxy_stop(proxy *p, void (*cb)(void *), void *data);
void proxy_metrics(proxy *p, gdx_buf *out);

#endif
