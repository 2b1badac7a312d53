-- The resource catalog (R-CAT). An entry has a working copy (body) that its
-- provider edits and submits, and - once a management reviewer has published
-- it - a published version (published_body, version > 0) that everyone can
-- find. Editing a published entry leaves the published version visible until
-- the new one is published. The columns after `published_body` repeat fields
-- of the published version for search and filters.
CREATE TABLE IF NOT EXISTS catalog_entries (
  id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  resource_code    VARCHAR(40)  NOT NULL,
  provider_unit_id BIGINT       NOT NULL,
  status           ENUM('draft','submitted','published','withdrawn') NOT NULL,
  version          INT          NOT NULL DEFAULT 0,
  body             MEDIUMTEXT   NOT NULL,
  published_body   MEDIUMTEXT   NULL,
  review_opinion   VARCHAR(1000) NOT NULL DEFAULT '',
  name             VARCHAR(200) NOT NULL DEFAULT '',
  summary          TEXT         NOT NULL,
  category         VARCHAR(16)  NOT NULL DEFAULT '',
  resource_type    VARCHAR(16)  NOT NULL DEFAULT '',
  format           VARCHAR(32)  NOT NULL DEFAULT '',
  sharing_type     VARCHAR(16)  NOT NULL DEFAULT '',
  publish_date     DATE         NULL,
  created_by       BIGINT       NOT NULL,
  created_at       DATETIME(6)  NOT NULL,
  updated_at       DATETIME(6)  NOT NULL,
  UNIQUE KEY uk_catalog_code (resource_code),
  KEY k_catalog_provider (provider_unit_id, status),
  KEY k_catalog_visible (version, status, name),
  CONSTRAINT fk_catalog_provider FOREIGN KEY (provider_unit_id) REFERENCES units (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every published version, whole.
CREATE TABLE IF NOT EXISTS catalog_versions (
  entry_id     BIGINT      NOT NULL,
  version      INT         NOT NULL,
  body         MEDIUMTEXT  NOT NULL,
  published_at DATETIME(6) NOT NULL,
  published_by VARCHAR(64) NOT NULL,
  PRIMARY KEY (entry_id, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The lifecycle of every entry: created, updated, submitted, returned,
-- published, withdrawn - with who and the reviewer's opinion.
CREATE TABLE IF NOT EXISTS catalog_events (
  id        BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  entry_id  BIGINT       NOT NULL,
  ts        DATETIME(6)  NOT NULL,
  actor     VARCHAR(64)  NOT NULL,
  event     VARCHAR(16)  NOT NULL,
  version   INT          NOT NULL,
  opinion   VARCHAR(1000) NOT NULL DEFAULT '',
  KEY k_events_entry (entry_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Resource codes are <category>/<sequence>; one counter per category.
CREATE TABLE IF NOT EXISTS catalog_sequences (
  category  VARCHAR(16) NOT NULL PRIMARY KEY,
  next      BIGINT      NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
