-- OpenAPI texts read by a real parser: the operations of an API
-- entry's published OpenAPI text (published_body's attachment.openapi), in
-- the stored form of common/openapi.h ({"v":1,"ops":[…]}). Written by the
-- catalog when it publishes the entry, in the same UPDATE that copies body
-- to published_body, so the two always describe the same version; the
-- proxy loads it instead of reading the text at call time. NULL for
-- entries that are not APIs, and for APIs published before this migration
-- until they are published again (the proxy then parses published_body).
ALTER TABLE catalog_entries ADD COLUMN IF NOT EXISTS openapi_ops MEDIUMTEXT NULL;
