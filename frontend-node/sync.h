/* A table subscription on the consumer's node: the loop that pulls the
 * provider's table through the broker and applies it (tsync.h).
 *
 *   subscriptions = ( { authorization = 12; table = "ent_copy"; } );
 *
 * It reads the schema of the authorized columns, then snapshot pages until
 * the last, then change batches after the stored position, forever: at once
 * while batches come back full, every poll_ms when the provider has nothing
 * new. Every batch is applied together with its position (exactly once); a
 * batch refused as stale makes it reload the stored state; a failed read or
 * apply is retried after a growing pause (1 s to 30 s) and shown in the
 * node's /metrics and log. Restarting the node resumes where the database
 * says it stopped.
 */
#ifndef GDX_SYNC_H
#define GDX_SYNC_H

#include <uv.h>

#include "buf.h"
#include "db.h"
#include "httpc.h"

typedef struct gdx_sync gdx_sync;

typedef struct {
  uv_loop_t *loop;
  gdx_httpc *client;       /* to the broker's node listener */
  gdx_db_pool *frontdb;    /* the unit's front-end database */
  const char *nodes_url;   /* https://broker:port */
  const char *ca_file, *cert_file, *key_file;
} gdx_sync_env;

typedef struct {
  long long authorization;
  char table[65];          /* target table in the front-end database */
  long long batch;         /* rows per read */
  long long poll_ms;       /* pause when nothing is new */
} gdx_sync_opts;

/* env must outlive the subscription. */
int gdx_sync_start(const gdx_sync_env *env, const gdx_sync_opts *o, gdx_sync **out);
/* Stops after what is in flight; cb runs once everything is closed. */
void gdx_sync_stop(gdx_sync *s, void (*cb)(void *), void *data);
/* Prometheus lines for this subscription. */
void gdx_sync_metrics(gdx_sync *s, gdx_buf *out);

#endif
