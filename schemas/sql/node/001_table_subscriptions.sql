-- The consumer's side of table subscriptions, in the unit's front-end
-- database next to the target tables (frontend-node/table_apply.c). Both
-- are written in the transaction that applies a batch, so the rows, the
-- position and the ledger entry go in together or not at all.

-- Where each subscription stands: the last key of the snapshot applied
-- (JSON, '' before the first page), whether the snapshot is done, and the
-- provider's change-log position applied after it.
CREATE TABLE IF NOT EXISTS gdx_sync_state (
 subscription VARCHAR(64) NOT NULL PRIMARY KEY,
 target VARCHAR(64) NOT NULL,
 snapshot_done TINYINT NOT NULL DEFAULT 0,
 snapshot_after TEXT NOT NULL,
 position BIGINT NOT NULL DEFAULT 0,
 rows_applied BIGINT NOT NULL DEFAULT 0,
 updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The ledger of applied batches (rows and checksum as sent and as
-- applied): the node's ledger outbox reports it to the broker and deletes
-- what the broker has recorded.
CREATE TABLE IF NOT EXISTS gdx_sync_ledger (
 id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
 subscription VARCHAR(64) NOT NULL,
 kind VARCHAR(8) NOT NULL,
 batch_from VARCHAR(300) NOT NULL,
 batch_to VARCHAR(300) NOT NULL,
 rows_sent INT NOT NULL,
 checksum_sent CHAR(16) NOT NULL,
 rows_applied INT NOT NULL,
 checksum_applied CHAR(16) NOT NULL,
 applied_at BIGINT NOT NULL,
 KEY k_gdx_sync_ledger_sub (subscription, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
