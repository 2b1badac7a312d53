/* Schema migrations.
 *
 * Each component keeps its schema as numbered SQL files,
 * schemas/sql/<component>/NNN_name.sql, applied in order and recorded in the
 * table gdx_schema_migrations with their SHA-256. Start-up refuses to go on
 * when an applied file has been changed since (edit history by adding a new
 * migration, never by rewriting one), when the database holds a migration
 * this build does not know (an older binary against a newer schema), or when
 * a file name does not follow the pattern. A named lock serialises brokers
 * (or nodes) that start at the same time against one database.
 *
 * The broker migrates its database at start-up (component "broker"); a
 * front-end node migrates the unit's front-end database (component
 * "node") on each new connection of its pool, since that database may be
 * down when the node starts, or restarted under it.
 */
#ifndef GDX_MIGRATE_H
#define GDX_MIGRATE_H

#include "db.h"

/* Applies the pending migrations of `component` found in `dir`. `applied`
 * (may be NULL) gets how many were applied now. */
int gdx_migrate(const gdx_db_options *opts, const char *component, const char *dir,
                int *applied, char *err, size_t errlen);
/* The same on a connection that is open already - a pool's, from its
 * gdx_db_options.on_connect, so that no job runs before the schema is
 * there. A file of several statements runs with the connection's
 * multi-statement option on for the time it takes (pool connections have
 * it off). */
int gdx_migrate_on(MYSQL *my, const char *component, const char *dir, int *applied, char *err,
                   size_t errlen);
/* dir as gdx_migrate would find it, without a database: readable files,
 * all named NNN_name.sql, no number twice. */
int gdx_migrate_check(const char *dir, char *err, size_t errlen);

#endif
