/* A table subscription on the consumer's node: the loop that pulls the
 * provider's table through the broker and applies it (table_apply.h).
 *
 *   subscriptions = ( { authorization = 12; table = "ent_copy"; } );
 *
 * It reads the schema of the authorized columns, then snapshot pages until
 * the last, then change batches after the stored position, forever: at once
 * while batches come back full; when caught up, the next read waits at the
 * provider until there is a change (a long poll of wait_ms; without one,
 * every poll_ms). Every batch is applied together with its position and its
 * ledger entry (exactly once); a batch refused as stale makes it reload the
 * stored state; a failed read or apply is retried after a growing pause (1 s
 * to 30 s) and shown in the node's /metrics and log. Restarting the node
 * resumes where the database says it stopped. If the provider purged the
 * change log past the position (410), the target is emptied and loaded
 * again.
 *
 * The ledger entries (rows and checksums sent and applied) are reported to
 * the broker (POST /node/v1/ledger/<authorization>, ledger_outbox.h) and
 * then forgotten; the broker's record of the position lets the provider
 * purge its change log.
 *
 * Reconciliation (对账) runs when the broker asks (a heartbeat or ledger
 * answer) and every reconcile_every_s, between change batches while caught
 * up: the provider's chunk checksums against the target's, row checksums
 * of the chunks that differ, the provider's rows for those that are missing
 * or different and deletes of those it does not have; keys changed after
 * the position are in flight, not differences. The result goes to the
 * broker (POST /node/v1/reconciliations/<authorization>). The run is
 * table_reconcile.c; the loop drives it between its own reads.
 */
#ifndef GDX_TABLE_SUB_H
#define GDX_TABLE_SUB_H

#include <uv.h>

#include "broker_client.h"
#include "buf.h"
#include "db.h"

typedef struct gdx_table_sub gdx_table_sub;

typedef struct {
  uv_loop_t *loop;
  gdx_broker_client *broker;
  gdx_db_pool *frontdb;    /* the unit's front-end database */
} gdx_table_sub_env;

typedef struct {
  long long authorization;
  char table[65];          /* target table in the front-end database */
  long long batch;         /* rows per read */
  long long poll_ms;       /* pause when nothing is new and no long poll */
  long long wait_ms;       /* long poll at the provider; 0: none */
  long long reconcile_every_s; /* 0: only when asked */
  long long chunk;         /* rows per reconciliation chunk */
  int once;                /* fetch (获取): the snapshot only, then stop */
} gdx_table_sub_opts;

/* env must outlive the subscription. */
int gdx_table_sub_start(const gdx_table_sub_env *env, const gdx_table_sub_opts *o,
                        gdx_table_sub **out);
/* Stops after what is in flight; cb runs once everything is closed. */
void gdx_table_sub_stop(gdx_table_sub *s, void (*cb)(void *), void *data);
long long gdx_table_sub_authorization(const gdx_table_sub *s);
/* A reconciliation run as soon as the subscription is caught up. */
void gdx_table_sub_reconcile(gdx_table_sub *s);
/* Prometheus lines for this subscription. */
void gdx_table_sub_metrics(gdx_table_sub *s, gdx_buf *out);

#endif
