/* gdx-node, the front-end node (前置机) of one unit: the daemon.
 *
 * Once enrolled (enroll.h), it runs on one libuv loop:
 *   - a mutual-TLS listener that serves the unit's resources to the broker
 *     only (/r/<resource>/<rest> -> the resource's adapter, adapter.h): a
 *     peer whose platform certificate does not name the broker is refused;
 *   - the heartbeat to the broker's node listener (heartbeat.c), and the
 *     certificate renewal it may ask for (renew.c);
 *   - the unit's table and folder subscriptions (table_sub.h,
 *     folder_sub.h), over the one broker client (broker_client.h);
 *   - the front-end database's pool, when configured (frontdb.h);
 *   - optionally a plain admin listener for /healthz and /metrics.
 *
 * State folder (node.state_dir, state_dir.h): node.key, node.crt, ca.crt,
 * broker_url.
 */
#ifndef GDX_NODE_H
#define GDX_NODE_H

#include <uv.h>

#include "node_config.h"

typedef struct gdx_node gdx_node;

/* Starts the daemon on loop with the resources and subscriptions of
 * config_file. On failure *out may still be set: stop it to release what
 * was started. cfg must outlive the node. */
int gdx_node_start(uv_loop_t *loop, const gdx_node_config *cfg, const char *config_file,
                   gdx_node **out, char *err, size_t errlen);
/* Stops after what is in flight: the listeners drain, the subscriptions
 * stop, then the database pool; on_stopped runs once all is closed and the
 * node is freed. */
void gdx_node_stop(gdx_node *n, void (*on_stopped)(void *), void *data);

#endif
