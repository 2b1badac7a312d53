/* Schema migrations.
 *
 * Each component keeps its schema as numbered SQL files,
 * schemas/sql/<component>/NNN_name.sql, applied in order and recorded in the
 * table gdx_schema_migrations with their SHA-256. Start-up refuses to go on
 * when an applied file has been changed since (edit history by adding a new
 * migration, never by rewriting one), when the database holds a migration
 * this build does not know (an older binary against a newer schema), or when
 * a file name does not follow the pattern. A named lock serialises brokers
 * that start at the same time against one database.
 */
#ifndef GDX_MIGRATE_H
#define GDX_MIGRATE_H

#include "db.h"

/* Applies the pending migrations of `component` found in `dir`. `applied`
 * (may be NULL) gets how many were applied now. */
int gdx_migrate(const gdx_db_options *opts, const char *component, const char *dir,
                int *applied, char *err, size_t errlen);

#endif
