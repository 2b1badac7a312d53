/* Consumer application credentials (R-AUTH-5): an approved authorization
 * with method `call` (or `compare` or `fetch` of a table, which go through
 * the same /svc path) gives the consumer unit a client id and secret, which
 * it exchanges for short-lived bearer tokens. The token is self-contained
 * and signed with the brokers' shared HMAC key, so the proxy checks it
 * without a database round trip; rotation bumps the credential's generation
 * and revocation its status, and both reach every broker's cache through
 * the invalidation log.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "error.h"
#include "exchange.h"

/* ------------------------------------------------------------------ */
/* tokens                                                              */

static void hmac_hex(const broker_pki *pki, const char *msg, size_t n, char out[65]) {
  unsigned char md[32];
  unsigned mdlen = 0;
  HMAC(EVP_sha256(), pki->token_key, sizeof(pki->token_key), (const unsigned char *)msg, n, md,
       &mdlen);
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    out[2 * i] = digits[md[i] >> 4];
    out[2 * i + 1] = digits[md[i] & 15];
  }
  out[64] = '\0';
}

int token_sign(const broker_pki *pki, const access_token *t, char *out, size_t n) {
  int len = snprintf(out, n, "gdxa.%lld.%lld.%lld.%lld", t->credential_id, t->authorization_id,
                     t->generation, t->expires);
  if (len < 0 || (size_t)len + 66 > n)
    return GDX_ETOOBIG;
  char mac[65];
  hmac_hex(pki, out, (size_t)len, mac);
  snprintf(out + len, n - (size_t)len, ".%s", mac);
  return GDX_OK;
}

int token_verify(const broker_pki *pki, const char *s, access_token *t) {
  size_t n = strlen(s);
  if (n < 70 || n >= ACCESS_TOKEN_MAX || strncmp(s, "gdxa.", 5) != 0)
    return GDX_EINVAL;
  const char *dot = strrchr(s, '.');
  if (dot == NULL || strlen(dot + 1) != 64)
    return GDX_EINVAL;
  char mac[65];
  hmac_hex(pki, s, (size_t)(dot - s), mac);
  if (CRYPTO_memcmp(mac, dot + 1, 64) != 0)
    return GDX_EINVAL;
  char tail;
  if (sscanf(s, "gdxa.%lld.%lld.%lld.%lld%c", &t->credential_id, &t->authorization_id,
             &t->generation, &t->expires, &tail) != 5 || tail != '.')
    return GDX_EINVAL;
  if (t->expires <= (long long)time(NULL))
    return GDX_ETIMEDOUT;
  return GDX_OK;
}

/* ------------------------------------------------------------------ */
/* credentials                                                         */

static void sha256_hex(const char *s, size_t n, char out[65]) {
  unsigned char md[32];
  unsigned mdlen;
  EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* 256 random bits, base64url without padding (43 characters). */
static int new_secret(char out[48], char hash[65]) {
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
  sha256_hex(out, j, hash);
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
  return json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "client_id",
                   gdx_db_get(r, i, 1), "authorization_id",
                   (json_int_t)atoll(gdx_db_get(r, i, 2)), "resource_code", gdx_db_get(r, i, 3),
                   "unit_code", gdx_db_get(r, i, 4), "owner", gdx_db_get(r, i, 5), "generation",
                   (json_int_t)atoll(gdx_db_get(r, i, 6)), "status", gdx_db_get(r, i, 7),
                   "created_at", gdx_db_get(r, i, 8), "rotated_at", gdx_db_get(r, i, 9));
}

static int work_cred_create(gdx_db_conn *c, api_ctx *x) {
  long long aid = (long long)json_integer_value(json_object_get(x->in, "authorization_id"));
  snprintf(x->audit_object, sizeof(x->audit_object), "authorization:%lld", aid);
  gdx_db_param p[] = {GDX_DB_P_INT(aid)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT a.consumer_unit_id, a.status, a.method, a.valid_until < "
                        "UTC_DATE(), e.resource_code FROM authorizations a JOIN catalog_entries e "
                        "ON e.id = a.entry_id WHERE a.id = ?",
                        p, 1, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 0 || atoll(gdx_db_get(&r, 0, 0)) != x->who.unit_id) {
    gdx_db_result_free(&r);
    return api_fail(x, 404, "not_found", "your unit holds no authorization %lld", aid);
  }
  int active = strcmp(gdx_db_get(&r, 0, 1), "active") == 0;
  const char *m = gdx_db_get(&r, 0, 2);
  int call = strcmp(m, "call") == 0 || strcmp(m, "compare") == 0 || strcmp(m, "fetch") == 0;
  int expired = atoi(gdx_db_get(&r, 0, 3));
  char code[41];
  snprintf(code, sizeof(code), "%s", gdx_db_get(&r, 0, 4));
  gdx_db_result_free(&r);
  if (!active || expired)
    return api_fail(x, 409, "wrong_state", "authorization %lld is %s", aid,
                    active ? "expired" : "revoked");
  if (!call)
    return api_fail(x, 409, "wrong_method",
                    "credentials are for API calls, comparisons and fetches; authorization "
                    "%lld is a subscription (the consumer's node keeps it)",
                    aid);
  unsigned char rnd[12];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1)
    return GDX_EIO;
  char client_id[32] = "gdxc_", secret[48], hash[65];
  for (int i = 0; i < 12; i++)
    snprintf(client_id + 5 + 2 * i, 3, "%02x", rnd[i]);
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
    rc = api_invalidate(c, x, "authorization", aid);
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

static int work_cred_list(gdx_db_conn *c, api_ctx *x) {
  int all = x->who.role == ROLE_OPS || x->who.role == ROLE_MGMT;
  gdx_db_param p[] = {GDX_DB_P_INT(all), GDX_DB_P_INT(x->who.unit_id)};
  return api_list(c, x,
                  "SELECT " CRED_COLS CRED_FROM "WHERE ? = 1 OR c.unit_id = ? "
                  "ORDER BY c.id DESC LIMIT 1000",
                  p, 2, 1000, cred_json);
}

/* The credential in the path, FOR UPDATE, if the caller's unit owns it. */
static int load_cred(gdx_db_conn *c, api_ctx *x, long long *id, int *active) {
  snprintf(x->audit_object, sizeof(x->audit_object), "credential:%s", x->params[0]);
  gdx_db_param p[] = {GDX_DB_P_STR(x->params[0])};
  gdx_db_result r;
  int rc = gdx_db_query(c, "SELECT id, unit_id, status FROM credentials WHERE client_id = ? "
                           "FOR UPDATE", p, 1, 1, &r);
  if (rc)
    return rc;
  int mine = r.nrows == 1 && (atoll(gdx_db_get(&r, 0, 1)) == x->who.unit_id ||
                              x->who.role == ROLE_OPS);
  if (mine) {
    *id = atoll(gdx_db_get(&r, 0, 0));
    *active = strcmp(gdx_db_get(&r, 0, 2), "active") == 0;
  }
  gdx_db_result_free(&r);
  if (!mine)
    api_fail(x, 404, "not_found", "no credential %s of your unit", x->params[0]);
  else if (!*active)
    api_fail(x, 409, "wrong_state", "credential %s is revoked", x->params[0]);
  return GDX_OK;
}

static int work_cred_rotate(gdx_db_conn *c, api_ctx *x) {
  long long id = 0;
  int active = 0;
  int rc = load_cred(c, x, &id, &active);
  if (rc || x->status)
    return rc;
  char secret[48], hash[65];
  if (new_secret(secret, hash))
    return GDX_EIO;
  gdx_db_param p[] = {GDX_DB_P_STR(hash), GDX_DB_P_INT(id)};
  rc = gdx_db_exec(c,
                   "UPDATE credentials SET secret_hash = ?, generation = generation + 1, "
                   "rotated_at = UTC_TIMESTAMP(6) WHERE id = ?",
                   p, 2, NULL, NULL);
  if (!rc)
    rc = api_invalidate(c, x, "credential", id);
  if (!rc)
    x->out = json_pack("{s:s, s:s, s:s}", "client_id", x->params[0], "client_secret", secret,
                       "note", "tokens issued with the old secret stop working now");
  OPENSSL_cleanse(secret, sizeof(secret));
  return rc;
}

static int work_cred_revoke(gdx_db_conn *c, api_ctx *x) {
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
    rc = api_invalidate(c, x, "credential", id);
  if (!rc)
    x->out = json_pack("{s:s, s:s}", "client_id", x->params[0], "status", "revoked");
  return rc;
}

/* POST /api/v1/token: client credentials -> bearer token. */
static int work_token(gdx_db_conn *c, api_ctx *x) {
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
  char hash[65];
  sha256_hex(secret, strlen(secret), hash);
  if (r.nrows == 0 || CRYPTO_memcmp(hash, gdx_db_get(&r, 0, 3), 64) != 0) {
    gdx_db_result_free(&r);
    return api_fail(x, 401, "invalid_client", "unknown client id or wrong secret");
  }
  snprintf(x->audit_unit, sizeof(x->audit_unit), "%s", gdx_db_get(&r, 0, 11));
  access_token t = {atoll(gdx_db_get(&r, 0, 0)), atoll(gdx_db_get(&r, 0, 1)),
                    atoll(gdx_db_get(&r, 0, 2)), 0};
  const char *why = NULL, *code = NULL;
  int status = 403;
  if (strcmp(gdx_db_get(&r, 0, 4), "active") != 0)
    status = 401, code = "invalid_client", why = "the credential is revoked";
  else if (strcmp(gdx_db_get(&r, 0, 9), "active") != 0 ||
           strcmp(gdx_db_get(&r, 0, 10), "active") != 0)
    code = "account_disabled", why = "the consumer unit or the credential's owner is disabled";
  else if (strcmp(gdx_db_get(&r, 0, 5), "active") != 0)
    code = "authorization_revoked", why = "the authorization is revoked";
  else if (atoi(gdx_db_get(&r, 0, 8)))
    code = "authorization_expired", why = "the authorization has expired";
  else if (atoi(gdx_db_get(&r, 0, 7)))
    code = "authorization_not_yet_valid", why = "the authorization is not valid yet";
  long long end = atoll(gdx_db_get(&r, 0, 12));
  gdx_db_result_free(&r);
  if (code)
    return api_fail(x, status, code, "%s", why);
  long long now = (long long)time(NULL);
  t.expires = now + x->cfg->proxy_token_ttl_s;
  if (t.expires > end)
    t.expires = end; /* never beyond the authorization's last day */
  char tok[ACCESS_TOKEN_MAX];
  if (token_sign(x->pki, &t, tok, sizeof(tok)))
    return GDX_EINVAL;
  x->out = json_pack("{s:s, s:s, s:I}", "access_token", tok, "token_type", "Bearer",
                     "expires_in", (json_int_t)(t.expires - now));
  return GDX_OK;
}

const api_route api_credential_routes[] = {
    {"POST", "/api/v1/credentials", "credential.create", API_SESSION, ROLE_UNIT_ADMIN,
     "credential_create", work_cred_create,
     "Create an application credential for an authorization of your unit (secret shown once)"},
    {"GET", "/api/v1/credentials", NULL, API_SESSION, ROLE_ANY, NULL, work_cred_list,
     "List your unit's credentials (never their secrets)"},
    {"POST", "/api/v1/credentials/{}/rotate", "credential.rotate", API_SESSION, ROLE_UNIT_ADMIN,
     NULL, work_cred_rotate, "A new secret; tokens of the old one stop working"},
    {"POST", "/api/v1/credentials/{}/revoke", "credential.revoke", API_SESSION,
     ROLE_UNIT_ADMIN | ROLE_OPS, NULL, work_cred_revoke, "Revoke a credential"},
    {"POST", "/api/v1/token", "credential.token", API_PUBLIC, 0, "token_request", work_token,
     "Exchange a client id and secret for a short-lived bearer token"},
};
const size_t api_credential_nroutes =
    sizeof(api_credential_routes) / sizeof(api_credential_routes[0]);
