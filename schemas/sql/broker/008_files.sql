-- File exchange (issue 6): the file ledger (对账 for folders). One row per
-- file version a consumer's node took in: what the provider listed (size,
-- SHA-256, SM3), what arrived (bytes received in the last transfer, the
-- offset it resumed from, the SM3 of the delivered copy) and what became
-- of it: delivered (verified chunk by chunk, scanned, renamed into place)
-- or quarantined (a virus or a disguised format; never visible).
CREATE TABLE IF NOT EXISTS file_ledger (
  id                BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
  authorization_id  BIGINT        NOT NULL,
  path              VARCHAR(1024) NOT NULL,
  size              BIGINT        NOT NULL,
  sha256            CHAR(64)      NOT NULL,
  sm3_sent          CHAR(64)      NOT NULL,
  sm3_received      VARCHAR(64)   NOT NULL,
  bytes_received    BIGINT        NOT NULL,
  resumed_from      BIGINT        NOT NULL,
  status            ENUM('delivered','quarantined') NOT NULL,
  verified          TINYINT(1)    NOT NULL,
  version_kept      TINYINT(1)    NOT NULL,
  detail            VARCHAR(300)  NOT NULL,
  received_at       DATETIME(6)   NOT NULL,
  verified_at       DATETIME(6)   NOT NULL,
  recorded_at       DATETIME(6)   NOT NULL,
  KEY k_file_ledger_auth (authorization_id, verified_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Alarms about a provider's own resource (a disguised file refused by its
-- node) belong to no authorization.
ALTER TABLE alarms ADD COLUMN IF NOT EXISTS resource VARCHAR(65) NOT NULL DEFAULT '';

-- Folder subscriptions stand in the same list as tables: phase 'files',
-- target the consumer's folder.
ALTER TABLE table_subscriptions MODIFY phase ENUM('snapshot','changes','files') NOT NULL;
ALTER TABLE table_subscriptions MODIFY target VARCHAR(1024) NOT NULL DEFAULT '';
