-- The data plane's state (issue 4): the platform CA, front-end nodes and
-- their certificates, consumer credentials, per-call records and usage
-- counters, and the invalidation log that keeps every broker's caches true.

-- The platform CA, created by the first broker to start and shared by every
-- broker on this database (one row).
CREATE TABLE IF NOT EXISTS platform_ca (
  id          TINYINT      NOT NULL PRIMARY KEY,
  cert_pem    TEXT         NOT NULL,
  key_pem     TEXT         NOT NULL,
  fingerprint CHAR(64)     NOT NULL,
  created_at  DATETIME(6)  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- Keys the brokers share: the HMAC key that signs consumer access tokens.
CREATE TABLE IF NOT EXISTS broker_secrets (
  name        VARCHAR(32)  NOT NULL PRIMARY KEY,
  value       VARBINARY(64) NOT NULL,
  created_at  DATETIME(6)  NOT NULL
) ENGINE=InnoDB;

-- A unit's front-end node. `pending` until it enrolls with its one-time
-- token; `active` with a certificate; `revoked` for good.
CREATE TABLE IF NOT EXISTS nodes (
  id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  unit_id        BIGINT       NOT NULL,
  node_id        VARCHAR(64)  NOT NULL,
  description    VARCHAR(200) NOT NULL DEFAULT '',
  status         ENUM('pending','active','revoked') NOT NULL,
  token_hash     CHAR(64)     NULL,
  token_expires  DATETIME(6)  NULL,
  cert_serial    VARCHAR(32)  NULL,
  cert_not_after DATETIME(6)  NULL,
  pubkey_pin     VARCHAR(60)  NULL,
  address        VARCHAR(300) NOT NULL DEFAULT '',
  version        VARCHAR(40)  NOT NULL DEFAULT '',
  resources      TEXT         NULL,
  last_heartbeat DATETIME(6)  NULL,
  enrolled_at    DATETIME(6)  NULL,
  created_by     VARCHAR(64)  NOT NULL,
  created_at     DATETIME(6)  NOT NULL,
  revoked_at     DATETIME(6)  NULL,
  revoked_by     VARCHAR(64)  NOT NULL DEFAULT '',
  revoke_reason  VARCHAR(1000) NOT NULL DEFAULT '',
  UNIQUE KEY uk_nodes_unit_node (unit_id, node_id),
  UNIQUE KEY uk_nodes_token (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every certificate ever issued to a node: a renewal or a revocation is a
-- row here, so the broker can refuse an old or revoked serial.
CREATE TABLE IF NOT EXISTS node_certs (
  serial      VARCHAR(32)  NOT NULL PRIMARY KEY,
  node_row    BIGINT       NOT NULL,
  not_after   DATETIME(6)  NOT NULL,
  issued_at   DATETIME(6)  NOT NULL,
  revoked     TINYINT(1)   NOT NULL DEFAULT 0,
  KEY k_node_certs_node (node_row)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- Application credentials of consumer units, each bound to one
-- authorization. The secret is random (256 bits), so its SHA-256 is stored.
CREATE TABLE IF NOT EXISTS credentials (
  id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  client_id        VARCHAR(40)  NOT NULL,
  authorization_id BIGINT       NOT NULL,
  unit_id          BIGINT       NOT NULL,
  owner_account_id BIGINT       NOT NULL,
  secret_hash      CHAR(64)     NOT NULL,
  generation       INT          NOT NULL DEFAULT 1,
  status           ENUM('active','revoked') NOT NULL,
  created_at       DATETIME(6)  NOT NULL,
  rotated_at       DATETIME(6)  NULL,
  revoked_at       DATETIME(6)  NULL,
  UNIQUE KEY uk_credentials_client (client_id),
  KEY k_credentials_auth (authorization_id),
  KEY k_credentials_unit (unit_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Calls used per authorization (the quota), kept across restarts; written
-- in batches with the call records.
CREATE TABLE IF NOT EXISTS authorization_usage (
  authorization_id BIGINT      NOT NULL PRIMARY KEY,
  calls            BIGINT      NOT NULL DEFAULT 0,
  bytes_in         BIGINT      NOT NULL DEFAULT 0,
  bytes_out        BIGINT      NOT NULL DEFAULT 0,
  last_call_at     DATETIME(6) NULL
) ENGINE=InnoDB;

-- One row per proxied call (R-OPS): who, under which authorization (and so
-- which purpose), what happened, how many bytes, time spent at each hop.
CREATE TABLE IF NOT EXISTS api_calls (
  id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ts               DATETIME(6)  NOT NULL,
  request_id       VARCHAR(40)  NOT NULL,
  authorization_id BIGINT       NULL,
  credential_id    BIGINT       NULL,
  consumer_unit    VARCHAR(18)  NOT NULL DEFAULT '',
  resource_code    VARCHAR(40)  NOT NULL DEFAULT '',
  method           VARCHAR(10)  NOT NULL,
  path             VARCHAR(500) NOT NULL,
  status           INT          NOT NULL,
  error_type       VARCHAR(10)  NOT NULL DEFAULT '',
  error_code       VARCHAR(40)  NOT NULL DEFAULT '',
  bytes_in         BIGINT       NOT NULL DEFAULT 0,
  bytes_out        BIGINT       NOT NULL DEFAULT 0,
  ms_total         INT          NOT NULL DEFAULT 0,
  ms_node          INT          NULL,
  ms_upstream      INT          NULL,
  source           VARCHAR(64)  NOT NULL DEFAULT '',
  KEY k_api_calls_auth (authorization_id, id),
  KEY k_api_calls_ts (ts)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Changes that make cached access decisions stale (a revoked authorization,
-- credential or node, a disabled unit or account). Every broker reads new
-- rows every few hundred milliseconds and drops what they name.
CREATE TABLE IF NOT EXISTS cache_invalidations (
  id      BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ts      DATETIME(6) NOT NULL,
  kind    VARCHAR(16) NOT NULL,
  ref_id  BIGINT      NOT NULL
) ENGINE=InnoDB;
