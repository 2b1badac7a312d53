/* Gauges read from the database for /metrics, every two seconds: each
 * node's state (online while its heartbeats are recent, offline, pending,
 * revoked) and last heartbeat, the open alarms by kind, and each
 * subscription's position, rows and last report. A node that goes offline
 * or comes back is logged. Rendered once per poll; /metrics only copies
 * the text. Shared by every broker on the database, so each shows all.
 */
#ifndef GDX_BROKER_GAUGES_H
#define GDX_BROKER_GAUGES_H

#include <uv.h>

#include "broker.h"
#include "buf.h"
#include "db.h"

typedef struct gauges gauges;

int gauges_new(uv_loop_t *loop, const gdx_broker_config *cfg, gdx_db_pool *db, gauges **out);
/* Appends the last poll's text. */
void gauges_metrics(gauges *g, gdx_buf *out);
/* Stops polling; cb runs once no poll is in flight, then g is freed. */
void gauges_stop(gauges *g, void (*cb)(void *), void *data);

#endif
