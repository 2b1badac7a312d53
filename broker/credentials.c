/* Consumer application credentials (R-AUTH-5): an approved authorization
 * with method `call` (or `compare` or `fetch` of a table, which go through
 * the same /svc path) gives the consumer unit a client id and secret, which
 * it exchanges for short-lived bearer tokens. The token is self-contained
 * and signed with the brokers' shared HMAC key, so the proxy checks it
 * without a database round trip; rotation bumps the credential's generation
 * and revocation its status, and both reach every broker's cache through
 * the invalidation log.
 */
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access_token.h"
#include "digest.h"
#include "error.h"
#include "parts.h"

/* ------------------------------------------------------------------ */
/* credentials                                                         */

static const broker_pki *pki_of(const rest_ctx *x) { return x->part; }

/* 256 random bits, base64url without padding (43 characters). */
static int new_secret(char out[48], char hash[GDX_SHA256_HEX_SIZE]) {
  unsigned char rnd[32];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1)
    return GDX_EIO;
  unsigned char b64[48];
  EVP_EncodeBlock(b64, rnd, sizeof(rnd));
  OPENSSL_cleanse(rnd, sizeof(rnd));
  size_t j = 0;
  for (size_t i = 0; b64[i] && b64[i] != '='; i++)
    out[j++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
  out[j] = '\0';
  gdx_sha256_hex(out, j, hash);
  return GDX_OK;
}

#define CRED_COLS                                                                              \
  "c.id, c.client_id, c.authorization_id, e.resource_code, u.code, o.username, c.generation, " \
  "c.status, DATE_FORMAT(c.created_at, '%Y-%m-%dT%H:%i:%sZ'), "                                 \
  "IFNULL(DATE_FORMAT(c.rotated_at, '%Y-%m-%dT%H:%i:%sZ'), ''), c.unit_id"
#define CRED_FROM                                                                              \
  " FROM credentials c JOIN authorizations a ON a.id = c.authorization_id "                    \
  "JOIN catalog_entries e ON e.id = a.entry_id JOIN units u ON u.id = c.unit_id "              \
  "JOIN accounts o ON o.id = c.owner_account_id "

static json_t *cred_json(const gdx_db_result *r, size_t i) {
  return json_pack("{s:s, s:o, s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "client_id",
                   gdx_db_get(r, i, 1), "authorization_id", rest_json_int(r, i, 2), "resource_code",
                   gdx_db_get(r, i, 3), "unit_code", gdx_db_get(r, i, 4), "owner",
                   gdx_db_get(r, i, 5), "generation", rest_json_int(r, i, 6), "status",
                   gdx_db_get(r, i, 7), "created_at", gdx_db_get(r, i, 8), "rotated_at",
                   gdx_db_get(r, i, 9));
}

static int work_cred_create(gdx_db_conn *c, rest_ctx *x) {
  long long aid = (long long)json_integer_value(json_object_get(x->in, "authorization_id"));
  snprintf(x->audit_object, sizeof(x->audit_object), "authorization:%lld", aid);
  gdx_db_param p[] = {GDX_DB_P_INT(aid), GDX_DB_P_INT(x->who.unit_id)};
  gdx_db_result r;
  int rc = rest_load_one(c, x,
                         "SELECT a.status, a.method, a.valid_until < UTC_DATE(), "
                         "e.resource_code FROM authorizations a JOIN catalog_entries e "
                         "ON e.id = a.entry_id WHERE a.id = ? AND a.consumer_unit_id = ?",
                         p, 2, &r, "your unit holds no authorization %lld", aid);
  if (rc || x->status)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  int active = strcmp(gdx_db_get(&r, 0, 0), "active") == 0;
  const char *m = gdx_db_get(&r, 0, 1);
  int call = strcmp(m, "call") == 0 || strcmp(m, "compare") == 0 || strcmp(m, "fetch") == 0;
  int expired = gdx_db_flag(&w, 2);
  char code[GDX_RESOURCE_CODE_SIZE];
  snprintf(code, sizeof(code), "%s", gdx_db_get(&r, 0, 3));
  rc = w.rc ? gdx_db_row_fail(&w, "authorizations") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;
  if (!active || expired)
    return rest_fail(x, 409, "wrong_state", "authorization %lld is %s", aid,
                     active ? "expired" : "revoked");
  if (!call)
    return rest_fail(x, 409, "wrong_method",
                     "credentials are for API calls, comparisons and fetches; authorization "
                     "%lld is a subscription (the consumer's node keeps it)",
                     aid);
  unsigned char rnd[12];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1)
    return GDX_EIO;
  char client_id[32] = "gdxc_", secret[48], hash[GDX_SHA256_HEX_SIZE];
  gdx_hex(rnd, sizeof(rnd), client_id + 5);
  if (new_secret(secret, hash))
    return GDX_EIO;
  gdx_db_param pi[] = {GDX_DB_P_STR(client_id), GDX_DB_P_INT(aid), GDX_DB_P_INT(x->who.unit_id),
                       GDX_DB_P_INT(x->who.id), GDX_DB_P_STR(hash)};
  rc = gdx_db_exec(c,
                   "INSERT INTO credentials (client_id, authorization_id, unit_id, "
                   "owner_account_id, secret_hash, status, created_at) "
                   "VALUES (?, ?, ?, ?, ?, 'active', UTC_TIMESTAMP(6))",
                   pi, 5, NULL, NULL);
  if (!rc) /* brokers that cached the authorization know its credentials: reload */
    rc = rest_invalidate(c, x, "authorization", aid);
  if (rc)
    return rc;
  snprintf(x->audit_object, sizeof(x->audit_object), "credential:%s", client_id);
  x->audit_detail = json_pack("{s:I, s:s}", "authorization_id", (json_int_t)aid, "resource_code",
                              code);
  x->status = 201;
  x->out = json_pack("{s:s, s:s, s:I, s:s, s:s}", "client_id", client_id, "client_secret",
                     secret, "authorization_id", (json_int_t)aid, "resource_code", code,
                     "note", "the secret is shown once; store it on the consumer's side");
  OPENSSL_cleanse(secret, sizeof(secret));
  return GDX_OK;
}

static int work_cred_list(gdx_db_conn *c, rest_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_INT(rest_sees_all(x)), GDX_DB_P_INT(x->who.unit_id)};
  return rest_list(c, x,
                   "SELECT " CRED_COLS CRED_FROM "WHERE ? = 1 OR c.unit_id = ? "
                   "ORDER BY c.id DESC LIMIT 1000",
                   p, 2, 1000, cred_json);
}

/* The credential in the path, FOR UPDATE, if the caller's unit owns it. */
static int load_cred(gdx_db_conn *c, rest_ctx *x, long long *id, int *active) {
  snprintf(x->audit_object, sizeof(x->audit_object), "credential:%s", x->params[0]);
  gdx_db_param p[] = {GDX_DB_P_STR(x->params[0]), GDX_DB_P_INT(x->who.role == ROLE_OPS),
                      GDX_DB_P_INT(x->who.unit_id)};
  gdx_db_result r;
  int rc = rest_load_one(c, x,
                         "SELECT id, status = 'active' FROM credentials WHERE client_id = ? "
                         "AND (? = 1 OR unit_id = ?) FOR UPDATE",
                         p, 3, &r, "no credential %s of your unit", x->params[0]);
  if (rc || x->status)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  *id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  *active = gdx_db_flag(&w, 1);
  rc = w.rc ? gdx_db_row_fail(&w, "credentials") : GDX_OK;
  gdx_db_result_free(&r);
  if (!rc && !*active)
    rest_fail(x, 409, "wrong_state", "credential %s is revoked", x->params[0]);
  return rc;
}

static int work_cred_rotate(gdx_db_conn *c, rest_ctx *x) {
  long long id = 0;
  int active = 0;
  int rc = load_cred(c, x, &id, &active);
  if (rc || x->status)
    return rc;
  char secret[48], hash[GDX_SHA256_HEX_SIZE];
  if (new_secret(secret, hash))
    return GDX_EIO;
  gdx_db_param p[] = {GDX_DB_P_STR(hash), GDX_DB_P_INT(id)};
  rc = gdx_db_exec(c,
                   "UPDATE credentials SET secret_hash = ?, generation = generation + 1, "
                   "rotated_at = UTC_TIMESTAMP(6) WHERE id = ?",
                   p, 2, NULL, NULL);
  if (!rc)
    rc = rest_invalidate(c, x, "credential", id);
  if (!rc)
    x->out = json_pack("{s:s, s:s, s:s}", "client_id", x->params[0], "client_secret", secret,
                       "note", "tokens issued with the old secret stop working now");
  OPENSSL_cleanse(secret, sizeof(secret));
  return rc;
}

static int work_cred_revoke(gdx_db_conn *c, rest_ctx *x) {
  long long id = 0;
  int active = 0;
  int rc = load_cred(c, x, &id, &active);
  if (rc || x->status)
    return rc;
  gdx_db_param p[] = {GDX_DB_P_INT(id)};
  rc = gdx_db_exec(c,
                   "UPDATE credentials SET status = 'revoked', revoked_at = UTC_TIMESTAMP(6) "
                   "WHERE id = ?",
                   p, 1, NULL, NULL);
  if (!rc)
    rc = rest_invalidate(c, x, "credential", id);
  if (!rc)
    x->out = json_pack("{s:s, s:s}", "client_id", x->params[0], "status", "revoked");
  return rc;
}

/* POST /api/v1/token: client credentials -> bearer token. */
static int work_token(gdx_db_conn *c, rest_ctx *x) {
  const char *client_id = json_string_value(json_object_get(x->in, "client_id"));
  const char *secret = json_string_value(json_object_get(x->in, "client_secret"));
  snprintf(x->audit_actor, sizeof(x->audit_actor), "client:%s", client_id);
  snprintf(x->audit_object, sizeof(x->audit_object), "credential:%s", client_id);
  gdx_db_param p[] = {GDX_DB_P_STR(client_id)};
  gdx_db_result r;
  int rc = gdx_db_query(
      c,
      "SELECT c.id, c.authorization_id, c.generation, c.secret_hash, c.status, a.status, "
      "a.method, a.valid_from > UTC_DATE(), a.valid_until < UTC_DATE(), u.status, o.status, "
      "u.code, UNIX_TIMESTAMP(a.valid_until + INTERVAL 1 DAY) "
      "FROM credentials c JOIN authorizations a ON a.id = c.authorization_id "
      "JOIN units u ON u.id = c.unit_id JOIN accounts o ON o.id = c.owner_account_id "
      "WHERE c.client_id = ?",
      p, 1, 1, &r);
  if (rc)
    return rc;
  char hash[GDX_SHA256_HEX_SIZE];
  gdx_sha256_hex(secret, strlen(secret), hash);
  if (r.nrows == 0 || CRYPTO_memcmp(hash, gdx_db_get(&r, 0, 3), 64) != 0) {
    gdx_db_result_free(&r);
    return rest_fail(x, 401, "invalid_client", "unknown client id or wrong secret");
  }
  snprintf(x->audit_unit, sizeof(x->audit_unit), "%s", gdx_db_get(&r, 0, 11));
  gdx_db_row w = gdx_db_row_at(&r, 0);
  access_token t = {gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX), gdx_db_i64(&w, 1, 1, GDX_DB_ID_MAX),
                    gdx_db_i64(&w, 2, 0, GDX_DB_ID_MAX), 0};
  int not_yet = gdx_db_flag(&w, 7), expired = gdx_db_flag(&w, 8);
  long long end = gdx_db_i64(&w, 12, 0, LLONG_MAX);
  if (w.rc) {
    gdx_db_result_free(&r);
    return gdx_db_row_fail(&w, "credentials");
  }
  const char *why = NULL, *code = NULL;
  int status = 403;
  if (strcmp(gdx_db_get(&r, 0, 4), "active") != 0)
    status = 401, code = "invalid_client", why = "the credential is revoked";
  else if (strcmp(gdx_db_get(&r, 0, 9), "active") != 0 ||
           strcmp(gdx_db_get(&r, 0, 10), "active") != 0)
    code = "account_disabled", why = "the consumer unit or the credential's owner is disabled";
  else if (strcmp(gdx_db_get(&r, 0, 5), "active") != 0)
    code = "authorization_revoked", why = "the authorization is revoked";
  else if (expired)
    code = "authorization_expired", why = "the authorization has expired";
  else if (not_yet)
    code = "authorization_not_yet_valid", why = "the authorization is not valid yet";
  gdx_db_result_free(&r);
  if (code)
    return rest_fail(x, status, code, "%s", why);
  long long now = (long long)time(NULL);
  t.expires = now + x->cfg->proxy_token_ttl_s;
  if (t.expires > end)
    t.expires = end; /* never beyond the authorization's last day */
  char tok[ACCESS_TOKEN_MAX];
  if (token_sign(pki_of(x), &t, tok, sizeof(tok)))
    return GDX_EINVAL;
  x->out = json_pack("{s:s, s:s, s:I}", "access_token", tok, "token_type", "Bearer",
                     "expires_in", (json_int_t)(t.expires - now));
  return GDX_OK;
}

static const rest_route routes[] = {
    {"POST", "/api/v1/credentials", "credential.create", REST_SESSION, ROLE_UNIT_ADMIN,
     "credential_create", work_cred_create,
     "Create an application credential for an authorization of your unit (secret shown once)"},
    {"GET", "/api/v1/credentials", NULL, REST_SESSION, ROLE_ANY, NULL, work_cred_list,
     "List your unit's credentials (never their secrets)"},
    {"POST", "/api/v1/credentials/{}/rotate", "credential.rotate", REST_SESSION, ROLE_UNIT_ADMIN,
     NULL, work_cred_rotate, "A new secret; tokens of the old one stop working"},
    {"POST", "/api/v1/credentials/{}/revoke", "credential.revoke", REST_SESSION,
     ROLE_UNIT_ADMIN | ROLE_OPS, NULL, work_cred_revoke, "Revoke a credential"},
    {"POST", "/api/v1/token", "credential.token", REST_PUBLIC, 0, "token_request", work_token,
     "Exchange a client id and secret for a short-lived bearer token"},
};
const rest_part credentials_part = REST_PART("credentials", routes);
