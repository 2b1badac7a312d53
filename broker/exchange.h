/* The broker's data plane: API calls, comparisons and fetches of
 * applications (/svc/..., svc.c) and the table and folder reads of consumer
 * nodes (/node/v1/tables/..., node_hop.c), decided on cached authorizations
 * (authz_cache.h), relayed to the providers' nodes (xcall.h), recorded
 * (call_records.h); plus the database gauges of /metrics (gauges.h).
 */
#ifndef GDX_BROKER_EXCHANGE_H
#define GDX_BROKER_EXCHANGE_H

#include <uv.h>

#include "broker.h"
#include "buf.h"
#include "db.h"
#include "platform_pki.h"
#include "router.h"

typedef struct exchange exchange;

/* Registers /svc/... and /node/v1/tables/... on router (before the REST
 * core's /node/v1/...: the router takes the first match). */
int exchange_new(uv_loop_t *loop, const gdx_broker_config *cfg, const broker_pki *pki,
                 gdx_db_pool *db, gdx_router *router, exchange **out, char *err, size_t errlen);
/* A change made through this broker (rest_on_invalidate): cached decisions
 * it names are dropped at once. */
void exchange_poke(void *x, const char *kind, long long ref);
/* Writes the call records still queued (they are not lost on a clean stop)
 * and closes; cb runs when done, before the database pool stops. */
void exchange_stop(exchange *x, void (*cb)(void *), void *data);
void exchange_metrics(exchange *x, gdx_buf *out);

#endif
