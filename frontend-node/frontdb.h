/* The unit's front-end database (前置库) as gdx-node uses it: one gdx_db
 * pool shared by the table adapters (the provider's side) and the table
 * subscriptions (the consumer's side).
 *
 * The node's own tables - gdx_sync_state, gdx_sync_ledger, gdx_changelog,
 * gdx_changelog_purged - come from the migrations in schemas/sql/node,
 * applied with common/migrate.c (component "node") to every new connection
 * of the pool before any job runs on it. The database may be down when the
 * node starts, or restarted under it: the node starts all the same; until
 * a connection is made and migrated, jobs fail as they would with the
 * database down (GDX_EDB) and their owners try again - a table resource
 * reports itself down, a subscription backs off - and the first job after
 * the database is back migrates its connection and goes on. Internal to
 * gdx-node.
 */
#ifndef GDX_NODE_FRONTDB_H
#define GDX_NODE_FRONTDB_H

#include <uv.h>

#include "db.h"
#include "node_config.h"

/* Starts the pool for frontdb.* (the password read from its file).
 * migrations_dir (gdx_node_config_migrations_dir) must outlive the pool;
 * it is checked here, without the database. GDX_ECONFIG with err. */
int gdx__node_frontdb_start(uv_loop_t *loop, const gdx_node_config *cfg, const char *migrations_dir,
                            gdx_db_pool **out, char *err, size_t errlen);

#endif
