/* Applying a table subscription on the consumer's node (订阅, the consumer
 * side): batches from the provider - snapshot pages, then change batches -
 * go into a target table of the unit's front-end database, and the
 * subscription's position is stored in the same transaction as the rows
 * (table gdx_sync_state), with the batch's ledger entry (gdx_sync_ledger;
 * both tables are the node's migrations, schemas/sql/node). A batch that
 * does not start where the stored
 * position is - a retry of one already applied, or one out of order - is
 * refused with GDX_ECONFLICT and changes nothing, so retries never
 * duplicate and a crash never skips. The target's side of reconciliation
 * (chunk and row checksums, repairs) is here too.
 *
 * All functions run on a gdx_db worker thread with its connection.
 *
 * Batches are the JSON the provider node serves (adapters/table_read.c):
 *   page:    {"columns":[…], "rows":[[…],…], "last":[key]|null, "done":bool,
 *             "position":n (first page only)}
 *   changes: {"columns":[…], "changes":[{"op":"U","row":[…]} |
 *             {"op":"D","key":[…]}, …], "position":n}
 * Every row has the key columns first; values are text or null.
 */
#ifndef GDX_TABLE_APPLY_H
#define GDX_TABLE_APPLY_H

#include <jansson.h>

#include "db.h"
#include "page.h"

typedef struct {
  char sub[65];        /* the subscription's id */
  char table[65];      /* the target table */
  int nkey;            /* key columns, first in every row */
  int ncols;
  char cols[256][65];  /* the columns of every row, in order */
} gdx_table_apply_target;

typedef struct {
  int snapshot_done;
  char snapshot_after[2048]; /* JSON of the last key applied, "" before the first page */
  long long position;        /* change-log position to continue from */
  long long rows_applied;
} gdx_table_apply_state;

/* Makes, from the provider's schema (its "columns": [{name, type,
 * nullable}] and "primary_key"), the target table with the key and the
 * selected columns (the names of t->cols), and the subscription's row in
 * gdx_sync_state; column types are checked against a plain grammar (no
 * enum/set yet). Idempotent. */
int gdx_table_apply_prepare(gdx_db_conn *c, const gdx_table_apply_target *t,
                            const json_t *schema, char *err, size_t errlen);
/* GDX_ENOTFOUND before prepare. */
int gdx_table_apply_load(gdx_db_conn *c, const char *sub, gdx_table_apply_state *out);
/* A snapshot page (common/page.h) that was asked for after `after` (""
 * for the first). */
int gdx_table_apply_page(gdx_db_conn *c, const gdx_table_apply_target *t, const char *after,
                         const gdx_page *page, char *err, size_t errlen);
/* A change batch (common/page.h) that was asked for after position `after`. */
int gdx_table_apply_changes(gdx_db_conn *c, const gdx_table_apply_target *t, long long after,
                            const gdx_page *batch, char *err, size_t errlen);

/* The ledger rows not yet reported (at most max), as the broker's
 * POST /node/v1/ledger wants them, and their highest id. */
int gdx_table_apply_ledger_read(gdx_db_conn *c, const char *sub, size_t max, json_t **entries,
                                long long *maxid);
/* Forgets what the broker has recorded. */
int gdx_table_apply_ledger_forget(gdx_db_conn *c, const char *sub, long long maxid);
/* Empties the target and starts the subscription over (the provider
 * purged the change log past its position). */
int gdx_table_apply_reset(gdx_db_conn *c, const gdx_table_apply_target *t, char *err,
                          size_t errlen);

/* Reconciliation (对账), the target's side. The provider's chunks
 * ({"after": key|null, "last": key|null, "rows": n, "sum": hex}, see
 * adapters/table_checksums.c) are checksummed the same way over the target (common/
 * rowsum.h); the ones that differ are appended to `differing`. */
int gdx_table_apply_chunks(gdx_db_conn *c, const gdx_table_apply_target *t, const json_t *chunks,
                           long long *target_rows, json_t *differing, char *err, size_t errlen);

typedef struct {
  long long missing, extra, different, in_flight;
  json_t *repair_keys;  /* missing or different: to be sent again */
  json_t *extra_keys;   /* here but not at the provider: to be deleted */
  json_t *samples;      /* up to 20 {"key": […], "what": …} */
  json_t *ranges;       /* [{"after": key|null, "last": key}]: the runs of keys to
                         * repair in the provider's order, each read on its own */
} gdx_table_apply_diff;

/* One differing chunk row by row against the provider's rowsums answer
 * ({"rows": [[key…, hash]], "pending": [[key…]]}); keys the provider
 * changed after the subscription's position are in flight, not counted. */
int gdx_table_apply_rowdiff(gdx_db_conn *c, const gdx_table_apply_target *t, const json_t *chunk,
                            const json_t *prov, gdx_table_apply_diff *d, char *err, size_t errlen);
/* Applies the provider's rows of the chunk (a snapshot page) for the keys
 * to repair and deletes the extra keys, in one transaction with a ledger
 * entry of kind "repair". */
int gdx_table_apply_repair(gdx_db_conn *c, const gdx_table_apply_target *t, const json_t *chunk,
                           const json_t *page, const json_t *repair_keys, const json_t *extra_keys,
                     long long *repaired, char *err, size_t errlen);

#endif
