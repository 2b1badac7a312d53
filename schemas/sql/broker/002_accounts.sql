-- Units, accounts, sessions and the hash-chained audit trail (R-ACC, R-OPS-4).
CREATE TABLE IF NOT EXISTS units (
  id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  code        CHAR(18)     NOT NULL,             -- unified social credit code
  name        VARCHAR(200) NOT NULL,
  roles       SET('provider','consumer','management','operations') NOT NULL,
  status      ENUM('active','disabled') NOT NULL DEFAULT 'active',
  created_at  DATETIME(6)  NOT NULL,
  updated_at  DATETIME(6)  NOT NULL,
  UNIQUE KEY uk_units_code (code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS accounts (
  id                   BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  unit_id              BIGINT       NOT NULL,
  username             VARCHAR(64)  NOT NULL,
  display_name         VARCHAR(100) NOT NULL,
  role                 ENUM('ops_admin','mgmt_reviewer','unit_admin','staff') NOT NULL,
  password_hash        VARCHAR(255) NOT NULL,  -- argon2id encoded string
  password_changed_at  DATETIME(6)  NOT NULL,
  must_change_password TINYINT(1)   NOT NULL DEFAULT 1,
  failed_logins        INT          NOT NULL DEFAULT 0,
  locked_until         DATETIME(6)  NULL,
  status               ENUM('active','disabled') NOT NULL DEFAULT 'active',
  created_at           DATETIME(6)  NOT NULL,
  created_by           BIGINT       NULL,
  UNIQUE KEY uk_accounts_username (username),
  KEY k_accounts_unit (unit_id),
  CONSTRAINT fk_accounts_unit FOREIGN KEY (unit_id) REFERENCES units (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Session tokens are stored only as their SHA-256.
CREATE TABLE IF NOT EXISTS sessions (
  token_hash  CHAR(64)     NOT NULL PRIMARY KEY,
  account_id  BIGINT       NOT NULL,
  created_at  DATETIME(6)  NOT NULL,
  last_seen   DATETIME(6)  NOT NULL,
  expires_at  DATETIME(6)  NOT NULL,             -- absolute expiry
  source      VARCHAR(64)  NOT NULL,
  KEY k_sessions_account (account_id),
  CONSTRAINT fk_sessions_account FOREIGN KEY (account_id) REFERENCES accounts (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Every record carries the hash of the previous one and of its own content:
-- hash = SHA-256(prev_hash | id | ts | actor | unit | action | object |
--                purpose | result | source | request_id | detail).
CREATE TABLE IF NOT EXISTS audit_log (
  id          BIGINT       NOT NULL PRIMARY KEY,
  ts          DATETIME(6)  NOT NULL,
  actor       VARCHAR(64)  NOT NULL,
  unit_code   VARCHAR(18)  NOT NULL,
  action      VARCHAR(64)  NOT NULL,
  object      VARCHAR(255) NOT NULL,
  purpose     VARCHAR(512) NOT NULL,
  result      VARCHAR(32)  NOT NULL,
  source      VARCHAR(64)  NOT NULL,
  request_id  VARCHAR(64)  NOT NULL,
  detail      TEXT         NOT NULL,
  prev_hash   CHAR(64)     NOT NULL,
  hash        CHAR(64)     NOT NULL,
  KEY k_audit_ts (ts),
  KEY k_audit_unit (unit_code, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The head of the chain: one row, locked to append. After a purge it also
-- remembers where the kept chain starts.
CREATE TABLE IF NOT EXISTS audit_head (
  one         TINYINT      NOT NULL PRIMARY KEY,
  last_id     BIGINT       NOT NULL,
  last_hash   CHAR(64)     NOT NULL,
  first_id    BIGINT       NOT NULL,
  anchor_hash CHAR(64)     NOT NULL   -- prev_hash of the first kept record
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT IGNORE INTO audit_head VALUES (1, 0, REPEAT('0', 64), 1, REPEAT('0', 64));
