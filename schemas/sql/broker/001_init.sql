-- Broker schema, first migration: every broker process registers itself here
-- at start-up (several brokers may share one database).
-- Later issues add units, accounts, the catalog and the exchange ledger in
-- their own numbered files; never edit an applied file.
CREATE TABLE IF NOT EXISTS broker_instance (
  id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  started_at  DATETIME(6)  NOT NULL,
  last_seen   DATETIME(6)  NOT NULL,
  version     VARCHAR(32)  NOT NULL,
  host        VARCHAR(255) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
