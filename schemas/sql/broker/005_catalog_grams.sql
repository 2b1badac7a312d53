-- Search grams of published catalog entries (see catalog/catalog.h): CJK
-- bigrams and Latin trigrams of the published name and summary.
CREATE TABLE IF NOT EXISTS catalog_grams (
  gram      VARCHAR(4)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  entry_id  BIGINT      NOT NULL,
  PRIMARY KEY (gram, entry_id),
  KEY k_grams_entry (entry_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
