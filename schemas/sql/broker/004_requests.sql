-- Requests, demands and authorizations (R-AUTH).
-- A request asks for a published resource for a stated purpose; the provider
-- approves it (possibly narrower than asked) or rejects it with an opinion;
-- approval creates the authorization the data plane enforces.
CREATE TABLE IF NOT EXISTS requests (
  id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  entry_id         BIGINT       NOT NULL,
  consumer_unit_id BIGINT       NOT NULL,
  applicant        VARCHAR(64)  NOT NULL,
  purpose          VARCHAR(1000) NOT NULL,
  data_items       TEXT         NOT NULL,          -- JSON array of item names
  method           ENUM('fetch','subscribe','compare','call') NOT NULL,
  valid_until      DATE         NOT NULL,
  call_quota       BIGINT       NULL,
  status           ENUM('pending','approved','rejected','cancelled') NOT NULL,
  decided_by       VARCHAR(64)  NOT NULL DEFAULT '',
  decided_at       DATETIME(6)  NULL,
  opinion          VARCHAR(1000) NOT NULL DEFAULT '',
  demand_id        BIGINT       NULL,
  created_at       DATETIME(6)  NOT NULL,
  KEY k_requests_consumer (consumer_unit_id, status),
  KEY k_requests_entry (entry_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS authorizations (
  id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  request_id       BIGINT       NOT NULL,
  entry_id         BIGINT       NOT NULL,
  consumer_unit_id BIGINT       NOT NULL,
  purpose          VARCHAR(1000) NOT NULL,
  data_items       TEXT         NOT NULL,
  method           ENUM('fetch','subscribe','compare','call') NOT NULL,
  valid_from       DATE         NOT NULL,
  valid_until      DATE         NOT NULL,
  call_quota       BIGINT       NULL,
  status           ENUM('active','revoked') NOT NULL,
  auto_approved    TINYINT(1)   NOT NULL DEFAULT 0,
  created_at       DATETIME(6)  NOT NULL,
  revoked_at       DATETIME(6)  NULL,
  revoked_by       VARCHAR(64)  NOT NULL DEFAULT '',
  revoke_reason    VARCHAR(1000) NOT NULL DEFAULT '',
  UNIQUE KEY uk_auth_request (request_id),
  KEY k_auth_consumer (consumer_unit_id, status),
  KEY k_auth_entry (entry_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A demand for a resource that is not in the catalog yet (R-AUTH-3): the
-- management unit decides; the named provider then catalogs and publishes
-- it and fulfils the demand, which files the consumer's request.
CREATE TABLE IF NOT EXISTS demands (
  id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  consumer_unit_id BIGINT       NOT NULL,
  provider_unit_id BIGINT       NOT NULL,
  applicant        VARCHAR(64)  NOT NULL,
  description      VARCHAR(2000) NOT NULL,
  purpose          VARCHAR(1000) NOT NULL,
  status           ENUM('pending','approved','rejected','fulfilled') NOT NULL,
  decided_by       VARCHAR(64)  NOT NULL DEFAULT '',
  opinion          VARCHAR(1000) NOT NULL DEFAULT '',
  entry_id         BIGINT       NULL,
  created_at       DATETIME(6)  NOT NULL,
  KEY k_demands_provider (provider_unit_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
