#include "audit_chain.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "digest.h"
#include "error.h"

#define VERIFY_BATCH 1000

static void chain_hash(const char *fields[12], char out[GDX_SHA256_HEX_SIZE]) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  for (int i = 0; i < 12; i++) {
    if (i)
      EVP_DigestUpdate(md, "\x1f", 1);
    EVP_DigestUpdate(md, fields[i], strlen(fields[i]));
  }
  unsigned char h[32];
  unsigned n;
  EVP_DigestFinal_ex(md, h, &n);
  EVP_MD_CTX_free(md);
  gdx_hex(h, sizeof(h), out);
}

int audit_append(gdx_db_conn *c, const char *actor, const char *unit, const char *action,
                 const char *object, const char *purpose, const char *result, const char *source,
                 const char *request_id, const char *detail) {
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT last_id, last_hash, DATE_FORMAT(UTC_TIMESTAMP(6), "
                        "'%Y-%m-%d %H:%i:%s.%f') FROM audit_head WHERE one = 1 FOR UPDATE",
                        NULL, 0, 1, &r);
  if (rc)
    return rc;
  if (r.nrows != 1) {
    gdx_db_result_free(&r);
    return GDX_EDB;
  }
  gdx_db_row w = gdx_db_row_at(&r, 0);
  long long id = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX - 1) + 1;
  if (w.rc) {
    gdx_db_result_free(&r);
    return gdx_db_row_fail(&w, "audit_head");
  }
  char prev[GDX_SHA256_HEX_SIZE], ts[32], ids[24], hash[GDX_SHA256_HEX_SIZE];
  snprintf(prev, sizeof(prev), "%s", gdx_db_get(&r, 0, 1));
  snprintf(ts, sizeof(ts), "%s", gdx_db_get(&r, 0, 2));
  gdx_db_result_free(&r);
  snprintf(ids, sizeof(ids), "%lld", id);
  const char *f[12] = {prev,   ids,     ts,     actor,  unit,       action,
                       object, purpose, result, source, request_id, detail};
  chain_hash(f, hash);
  gdx_db_param p[] = {GDX_DB_P_INT(id),         GDX_DB_P_STR(ts),     GDX_DB_P_STR(actor),
                      GDX_DB_P_STR(unit),       GDX_DB_P_STR(action), GDX_DB_P_STR(object),
                      GDX_DB_P_STR(purpose),    GDX_DB_P_STR(result), GDX_DB_P_STR(source),
                      GDX_DB_P_STR(request_id), GDX_DB_P_STR(detail), GDX_DB_P_STR(prev),
                      GDX_DB_P_STR(hash)};
  rc = gdx_db_exec(c,
                   "INSERT INTO audit_log (id, ts, actor, unit_code, action, object, purpose, "
                   "result, source, request_id, detail, prev_hash, hash) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   p, 13, NULL, NULL);
  if (rc)
    return rc;
  gdx_db_param ph[] = {GDX_DB_P_INT(id), GDX_DB_P_STR(hash)};
  return gdx_db_exec(c, "UPDATE audit_head SET last_id = ?, last_hash = ? WHERE one = 1", ph, 2,
                     NULL, NULL);
}

int audit_verify(gdx_db_conn *c, long long *count, long long *bad_id, char *why, size_t whylen) {
  gdx_db_result h;
  int rc = gdx_db_query(c, "SELECT last_id, last_hash, first_id, anchor_hash FROM audit_head", NULL,
                        0, 1, &h);
  if (rc)
    return rc;
  gdx_db_row w = gdx_db_row_at(&h, 0);
  long long last_id = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX),
            next_id = gdx_db_i64(&w, 2, 0, GDX_DB_ID_MAX);
  if (w.rc) {
    gdx_db_result_free(&h);
    return gdx_db_row_fail(&w, "audit_head");
  }
  char last_hash[GDX_SHA256_HEX_SIZE], prev[GDX_SHA256_HEX_SIZE];
  snprintf(last_hash, sizeof(last_hash), "%s", gdx_db_get(&h, 0, 1));
  snprintf(prev, sizeof(prev), "%s", gdx_db_get(&h, 0, 3));
  gdx_db_result_free(&h);
  *count = 0;
  *bad_id = 0;
  for (;;) {
    gdx_db_result r;
    gdx_db_param p[] = {GDX_DB_P_INT(next_id - 1)};
    rc = gdx_db_query(c,
                      "SELECT id, ts, actor, unit_code, action, object, purpose, result, source, "
                      "request_id, detail, prev_hash, hash FROM audit_log WHERE id > ? "
                      "ORDER BY id LIMIT 1000",
                      p, 1, VERIFY_BATCH, &r);
    if (rc)
      return rc;
    for (size_t i = 0; i < r.nrows; i++) {
      gdx_db_row rw = gdx_db_row_at(&r, i);
      long long id = gdx_db_i64(&rw, 0, 1, GDX_DB_ID_MAX);
      if (rw.rc) {
        gdx_db_result_free(&r);
        return gdx_db_row_fail(&rw, "audit_log");
      }
      const char *f[12] = {prev};
      for (int k = 1; k < 12; k++)
        f[k] = gdx_db_get(&r, i, (size_t)(k - 1));
      char hash[GDX_SHA256_HEX_SIZE];
      chain_hash(f, hash);
      const char *why_now = NULL;
      if (id != next_id)
        why_now = "a record is missing before this one (ids jump)";
      else if (strcmp(gdx_db_get(&r, i, 11), prev) != 0)
        why_now = "its prev_hash does not match the record before it (inserted or reordered)";
      else if (strcmp(gdx_db_get(&r, i, 12), hash) != 0)
        why_now = "its content does not match its hash (edited)";
      if (why_now) {
        *bad_id = id;
        snprintf(why, whylen, "%s", why_now);
        gdx_db_result_free(&r);
        return GDX_OK;
      }
      snprintf(prev, sizeof(prev), "%s", hash);
      next_id = id + 1;
      (*count)++;
    }
    size_t n = r.nrows;
    gdx_db_result_free(&r);
    if (n < VERIFY_BATCH)
      break;
  }
  if (next_id - 1 != last_id || (last_id > 0 && *count > 0 && strcmp(prev, last_hash) != 0)) {
    *bad_id = next_id;
    snprintf(why, whylen,
             "the chain ends at %lld but the head says %lld (records deleted at the end)",
             next_id - 1, last_id);
  }
  return GDX_OK;
}
