-- Table exchange's reconciliation (对账, issue 5): where every subscription
-- stands, the ledger of its batches, reconciliation runs and alarms. The
-- broker keeps no rows of anyone's data: only counts, checksums and keys of
-- rows that differed.

-- One row per table subscription (or fetch), as its consumer node reports
-- it. `position` is the change-log position the consumer has applied; NULL
-- while a snapshot has started but its first page is not acknowledged yet
-- (the provider then keeps its whole change log). The provider node learns
-- the lowest position of its table's subscribers with its heartbeat and
-- purges its change log below it.
CREATE TABLE IF NOT EXISTS table_subscriptions (
  authorization_id    BIGINT       NOT NULL PRIMARY KEY,
  consumer_unit_id    BIGINT       NOT NULL,
  provider_unit_id    BIGINT       NOT NULL,
  provider_node       VARCHAR(64)  NOT NULL,
  resource            VARCHAR(64)  NOT NULL,
  target              VARCHAR(64)  NOT NULL DEFAULT '',
  phase               ENUM('snapshot','changes') NOT NULL,
  position            BIGINT       NULL,
  batches             BIGINT       NOT NULL DEFAULT 0,
  rows_sent           BIGINT       NOT NULL DEFAULT 0,
  rows_applied        BIGINT       NOT NULL DEFAULT 0,
  mismatched_batches  BIGINT       NOT NULL DEFAULT 0,
  reconcile_requested TINYINT(1)   NOT NULL DEFAULT 0,
  last_ack_at         DATETIME(6)  NULL,
  started_at          DATETIME(6)  NOT NULL,
  KEY k_tsub_provider (provider_unit_id, provider_node, resource),
  KEY k_tsub_consumer (consumer_unit_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every applied batch: rows and checksum as the provider sent them, rows
-- and checksum as the consumer applied them (FNV-1a 64 over the values).
CREATE TABLE IF NOT EXISTS table_ledger (
  id                BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  authorization_id  BIGINT       NOT NULL,
  kind              ENUM('page','changes','repair') NOT NULL,
  batch_from        VARCHAR(300) NOT NULL,
  batch_to          VARCHAR(300) NOT NULL,
  rows_sent         INT          NOT NULL,
  checksum_sent     CHAR(16)     NOT NULL,
  rows_applied      INT          NOT NULL,
  checksum_applied  CHAR(16)     NOT NULL,
  matched           TINYINT(1)   NOT NULL,
  applied_at        DATETIME(6)  NOT NULL,
  recorded_at       DATETIME(6)  NOT NULL,
  KEY k_ledger_auth (authorization_id, applied_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A reconciliation run: provider source against consumer target by chunked
-- checksums over key ranges, then row by row inside the chunks that differ.
CREATE TABLE IF NOT EXISTS reconciliations (
  id                BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  authorization_id  BIGINT       NOT NULL,
  status            ENUM('clean','repaired','differences','failed') NOT NULL,
  chunks            BIGINT       NOT NULL,
  chunks_differing  BIGINT       NOT NULL,
  rows_source       BIGINT       NOT NULL,
  rows_target       BIGINT       NOT NULL,
  rows_missing      BIGINT       NOT NULL,
  rows_extra        BIGINT       NOT NULL,
  rows_different    BIGINT       NOT NULL,
  rows_in_flight    BIGINT       NOT NULL,
  rows_repaired     BIGINT       NOT NULL,
  position          BIGINT       NOT NULL,
  detail            TEXT         NOT NULL,
  started_at        DATETIME(6)  NOT NULL,
  finished_at       DATETIME(6)  NOT NULL,
  KEY k_recon_auth (authorization_id, finished_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Alarms: discrepancies the platform found (a batch whose checksums do not
-- match, a reconciliation that found differences). Open until someone
-- acknowledges them; the same open alarm is not raised twice.
CREATE TABLE IF NOT EXISTS alarms (
  id                BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  kind              VARCHAR(40)  NOT NULL,
  authorization_id  BIGINT       NULL,
  consumer_unit_id  BIGINT       NULL,
  provider_unit_id  BIGINT       NULL,
  message           VARCHAR(1000) NOT NULL,
  state             ENUM('open','acknowledged') NOT NULL,
  raised_at         DATETIME(6)  NOT NULL,
  last_seen_at      DATETIME(6)  NOT NULL,
  occurrences       INT          NOT NULL DEFAULT 1,
  acked_by          VARCHAR(64)  NOT NULL DEFAULT '',
  acked_at          DATETIME(6)  NULL,
  KEY k_alarms_state (state, kind),
  KEY k_alarms_auth (authorization_id, kind, state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- What a call counts against its authorization's quota: 1 for an API call or
-- a table read, the number of records for a compare batch (比对).
ALTER TABLE api_calls ADD COLUMN IF NOT EXISTS units INT NOT NULL DEFAULT 1;
