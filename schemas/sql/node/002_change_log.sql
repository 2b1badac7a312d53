-- The provider's change capture (adapters/table.c). A table resource with
-- capture = "triggers" gets three triggers (made per table by the adapter)
-- that write the key of every changed row here, in the transaction of the
-- change; seq orders the changes. Rows are deleted below the slowest
-- subscriber's position.
CREATE TABLE IF NOT EXISTS gdx_changelog (
 seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
 tbl VARCHAR(64) NOT NULL,
 op CHAR(1) NOT NULL,
 pk TEXT NOT NULL,
 changed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
 KEY k_gdx_changelog_tbl (tbl, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Where each table's change log was purged to (below every subscriber): a
-- read of the changes before it is answered 410 position_purged.
CREATE TABLE IF NOT EXISTS gdx_changelog_purged (
 tbl VARCHAR(64) NOT NULL PRIMARY KEY,
 upto BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
