/* Front-end nodes: the platform CA, enrollment with one-time tokens,
 * certificate renewal and revocation, heartbeats (R-EX-1, R-EX-4).
 *
 * Trust: the first broker to start creates the platform CA and stores it in
 * the database, so every broker on that database signs with the same CA. A
 * unit admin registers a node and gets a one-time token of the form
 *   <40 hex: the secret>.<64 hex: SHA-256 fingerprint of the CA certificate>
 * The node checks the CA it receives against the fingerprint (so enrolling
 * over an untrusted network cannot plant a rogue CA), sends a CSR, and gets a
 * certificate binding its unit code and node id. From then on it talks to
 * the broker's node listener with mutual TLS, and the broker calls it with
 * its own certificate, pinning the node's public key.
 */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "error.h"
#include "exchange.h"
#include "log.h"
#include "pki.h"

#define BROKER_UNIT "gdx-broker"

/* ------------------------------------------------------------------ */
/* start-up: CA, token key, the broker's own certificate                */

typedef struct {
  broker_pki *pki;
  char err[512];
  int done, rc;
} boot_job;

static int load_ca(gdx_db_conn *c, broker_pki *pki) {
  gdx_db_result r;
  int rc = gdx_db_query(c, "SELECT cert_pem, key_pem, fingerprint FROM platform_ca WHERE id = 1",
                        NULL, 0, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 1) {
    pki->ca_pem = strdup(gdx_db_get(&r, 0, 0));
    pki->ca_key_pem = strdup(gdx_db_get(&r, 0, 1));
    snprintf(pki->ca_fingerprint, sizeof(pki->ca_fingerprint), "%s", gdx_db_get(&r, 0, 2));
  }
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int boot_work(gdx_db_conn *c, void *arg) {
  boot_job *j = arg;
  broker_pki *pki = j->pki;
  int rc = load_ca(c, pki);
  if (!rc && pki->ca_pem == NULL) {
    char *cert = NULL, *key = NULL, fp[65];
    rc = gdx_pki_ca_create("gdx platform CA", 3650, &cert, &key, j->err, sizeof(j->err));
    if (!rc)
      rc = gdx_pki_fingerprint(cert, fp);
    gdx_db_param p[] = {GDX_DB_P_STR(cert ? cert : ""), GDX_DB_P_STR(key ? key : ""),
                        GDX_DB_P_STR(fp)};
    uint64_t n = 0;
    /* IGNORE: another broker starting at the same moment may win; then its
     * CA is the one, and we read it back. */
    if (!rc)
      rc = gdx_db_exec(c,
                       "INSERT IGNORE INTO platform_ca (id, cert_pem, key_pem, fingerprint, "
                       "created_at) VALUES (1, ?, ?, ?, UTC_TIMESTAMP(6))",
                       p, 3, &n, NULL);
    if (!rc && n == 1)
      gdx_log_info("pki", "created the platform CA (fingerprint %s)", fp);
    free(cert);
    gdx_pki_free_secret(key);
    if (!rc)
      rc = load_ca(c, pki);
  }
  unsigned char key[32];
  if (!rc && RAND_bytes(key, sizeof(key)) != 1)
    rc = GDX_EIO;
  gdx_db_param pk[] = {GDX_DB_P_BIN((const char *)key, sizeof(key))};
  if (!rc)
    rc = gdx_db_exec(c,
                     "INSERT IGNORE INTO broker_secrets (name, value, created_at) "
                     "VALUES ('token_hmac', ?, UTC_TIMESTAMP(6))",
                     pk, 1, NULL, NULL);
  OPENSSL_cleanse(key, sizeof(key));
  gdx_db_result r;
  if (!rc && (rc = gdx_db_query(c, "SELECT value FROM broker_secrets WHERE name = 'token_hmac'",
                                NULL, 0, 1, &r)) == GDX_OK) {
    if (r.nrows == 1 && r.lens[0] == 32)
      memcpy(pki->token_key, r.cells[0], 32);
    else
      rc = GDX_EINVAL;
    gdx_db_result_free(&r);
  }
  if (rc && j->err[0] == '\0')
    snprintf(j->err, sizeof(j->err), "cannot load the platform CA: %s", gdx_db_error(c));
  return rc;
}

static void boot_done(int status, void *arg) {
  boot_job *j = arg;
  j->rc = status;
  j->done = 1;
}

static int write_public(const char *path, const char *pem, char *err, size_t errlen) {
  char tmp[1100];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL || fputs(pem, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write %s", path);
    return GDX_EIO;
  }
  return GDX_OK;
}

int nodes_pki_boot(uv_loop_t *loop, gdx_db_pool *db, const gdx_broker_config *cfg,
                   const char *instance, broker_pki *pki, char *err, size_t errlen) {
  boot_job j = {.pki = pki};
  int rc = gdx_db_submit(db, boot_work, boot_done, &j);
  while (!rc && !j.done)
    uv_run(loop, UV_RUN_ONCE);
  if (!rc)
    rc = j.rc;
  if (rc) {
    snprintf(err, errlen, "%s", j.err[0] ? j.err : "cannot load the platform CA");
    return rc;
  }
  const char *dir = cfg->pki_dir;
  if (mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0) {
    snprintf(err, errlen, "pki.dir: cannot create or write %s", dir);
    return GDX_ECONFIG;
  }
  snprintf(pki->ca_file, sizeof(pki->ca_file), "%s/ca.crt", dir);
  snprintf(pki->cert_file, sizeof(pki->cert_file), "%s/broker.crt", dir);
  snprintf(pki->key_file, sizeof(pki->key_file), "%s/broker.key", dir);
  /* A fresh key and certificate at every start: nothing to renew, and a
   * copied pki.dir is worth little. */
  char *key = NULL, *csr = NULL, *cert = NULL, serial[GDX_PKI_SERIAL_HEX];
  rc = gdx_pki_key_create(&key, err, errlen);
  if (!rc)
    rc = gdx_pki_csr_create(key, BROKER_UNIT, instance, &csr, err, errlen);
  if (!rc)
    rc = gdx_pki_csr_sign_san(pki->ca_pem, pki->ca_key_pem, csr, BROKER_UNIT, instance,
                              cfg->pki_broker_names, 3650, &cert, serial, err, errlen);
  if (!rc)
    rc = gdx_pki_write_private(pki->key_file, key, err, errlen);
  if (!rc)
    rc = write_public(pki->cert_file, cert, err, errlen);
  if (!rc)
    rc = write_public(pki->ca_file, pki->ca_pem, err, errlen);
  gdx_pki_free_secret(key);
  free(csr);
  free(cert);
  if (cfg->nodes_url)
    snprintf(pki->nodes_url, sizeof(pki->nodes_url), "%s", cfg->nodes_url);
  return rc;
}

void nodes_pki_free(broker_pki *pki) {
  free(pki->ca_pem);
  gdx_pki_free_secret(pki->ca_key_pem);
  OPENSSL_cleanse(pki->token_key, sizeof(pki->token_key));
  memset(pki, 0, sizeof(*pki));
}

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static void sha256_hex(const char *s, size_t n, char out[65]) {
  unsigned char md[32];
  unsigned mdlen;
  EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* A new enrollment token; its secret's hash goes to the database. */
static int new_token(const broker_pki *pki, char token[106], char hash[65]) {
  unsigned char rnd[20];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1)
    return GDX_EIO;
  for (int i = 0; i < 20; i++)
    snprintf(token + 2 * i, 3, "%02x", rnd[i]);
  sha256_hex(token, 40, hash);
  snprintf(token + 40, 66, ".%s", pki->ca_fingerprint);
  return GDX_OK;
}

#define NODE_COLS                                                                              \
  "n.id, u.code, n.node_id, n.description, n.status, "                                         \
  "IF(n.status = 'active' AND n.last_heartbeat >= UTC_TIMESTAMP(6) - INTERVAL ? SECOND, "       \
  "'online', IF(n.status = 'active', 'offline', n.status)), n.address, n.version, "            \
  "IFNULL(DATE_FORMAT(n.last_heartbeat, '%Y-%m-%dT%H:%i:%sZ'), ''), "                           \
  "IFNULL(DATE_FORMAT(n.cert_not_after, '%Y-%m-%dT%H:%i:%sZ'), ''), IFNULL(n.cert_serial, ''), " \
  "n.resources, n.unit_id, IFNULL(TIMESTAMPDIFF(SECOND, n.last_heartbeat, UTC_TIMESTAMP(6)), -1)"

static json_t *node_json(const gdx_db_result *r, size_t i) {
  const char *res = gdx_db_get(r, i, 11);
  json_t *resources = res ? json_loads(res, 0, NULL) : NULL;
  return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I}", "id",
                   (json_int_t)atoll(gdx_db_get(r, i, 0)), "unit_code", gdx_db_get(r, i, 1),
                   "node_id", gdx_db_get(r, i, 2), "description", gdx_db_get(r, i, 3), "status",
                   gdx_db_get(r, i, 4), "state", gdx_db_get(r, i, 5), "address",
                   gdx_db_get(r, i, 6), "version", gdx_db_get(r, i, 7), "last_heartbeat",
                   gdx_db_get(r, i, 8), "cert_not_after", gdx_db_get(r, i, 9), "cert_serial",
                   gdx_db_get(r, i, 10), "resources", resources ? resources : json_array(),
                   "heartbeat_age_s", (json_int_t)atoll(gdx_db_get(r, i, 13)));
}

static int unit_scoped(const api_ctx *x) {
  return x->who.role == ROLE_UNIT_ADMIN || x->who.role == ROLE_STAFF;
}

/* Loads a node the caller may see, FOR UPDATE; 404 otherwise. */
static int load_node(gdx_db_conn *c, api_ctx *x, gdx_db_result *r, int *found) {
  long long id = atoll(x->params[0]);
  snprintf(x->audit_object, sizeof(x->audit_object), "node:%lld", id);
  gdx_db_param p[] = {GDX_DB_P_INT(x->cfg->node_offline_after_s), GDX_DB_P_INT(id)};
  int rc = gdx_db_query(c,
                        "SELECT " NODE_COLS " FROM nodes n JOIN units u ON u.id = n.unit_id "
                        "WHERE n.id = ? FOR UPDATE",
                        p, 2, 1, r);
  if (rc)
    return rc;
  *found = r->nrows == 1 && (!unit_scoped(x) || atoll(gdx_db_get(r, 0, 12)) == x->who.unit_id);
  if (!*found) {
    gdx_db_result_free(r);
    api_fail(x, 404, "not_found", "no node %lld", id);
  } else {
    snprintf(x->audit_object, sizeof(x->audit_object), "node:%s/%s", gdx_db_get(r, 0, 1),
             gdx_db_get(r, 0, 2));
  }
  return GDX_OK;
}

/* ------------------------------------------------------------------ */
/* unit admins and operations                                           */

static int work_node_create(gdx_db_conn *c, api_ctx *x) {
  const char *node_id = json_string_value(json_object_get(x->in, "node_id"));
  const char *desc = json_string_value(json_object_get(x->in, "description"));
  snprintf(x->audit_object, sizeof(x->audit_object), "node:%s/%s", x->who.unit_code, node_id);
  char token[106], hash[65];
  if (new_token(x->pki, token, hash))
    return GDX_EIO;
  gdx_db_param p[] = {GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_STR(node_id),
                      GDX_DB_P_STR(desc ? desc : ""), GDX_DB_P_STR(hash),
                      GDX_DB_P_INT(x->cfg->node_token_ttl_s), GDX_DB_P_STR(x->who.username)};
  uint64_t id = 0;
  int rc = gdx_db_exec(c,
                       "INSERT INTO nodes (unit_id, node_id, description, status, token_hash, "
                       "token_expires, created_by, created_at) VALUES (?, ?, ?, 'pending', ?, "
                       "UTC_TIMESTAMP(6) + INTERVAL ? SECOND, ?, UTC_TIMESTAMP(6))",
                       p, 6, NULL, &id);
  if (rc && gdx_db_errno(c) == 1062)
    return api_fail(x, 409, "conflict", "unit %s has a node %s already", x->who.unit_code,
                    node_id);
  if (rc)
    return rc;
  x->status = 201;
  x->out = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:s}", "id", (json_int_t)id, "unit_code",
                     x->who.unit_code, "node_id", node_id, "status", "pending",
                     "enrollment_token", token, "token_expires_in_s",
                     (json_int_t)x->cfg->node_token_ttl_s, "ca_fingerprint",
                     x->pki->ca_fingerprint);
  return GDX_OK;
}

static int work_node_token(gdx_db_conn *c, api_ctx *x) {
  gdx_db_result r;
  int found, rc = load_node(c, x, &r, &found);
  if (rc || !found)
    return rc;
  int revoked = strcmp(gdx_db_get(&r, 0, 4), "revoked") == 0;
  long long id = atoll(gdx_db_get(&r, 0, 0));
  gdx_db_result_free(&r);
  if (x->who.role != ROLE_UNIT_ADMIN)
    return api_fail(x, 403, "forbidden", "enrollment tokens are issued by the unit's admin");
  if (revoked)
    return api_fail(x, 409, "wrong_state", "the node is revoked; register a new node id");
  char token[106], hash[65];
  if (new_token(x->pki, token, hash))
    return GDX_EIO;
  gdx_db_param p[] = {GDX_DB_P_STR(hash), GDX_DB_P_INT(x->cfg->node_token_ttl_s),
                      GDX_DB_P_INT(id)};
  rc = gdx_db_exec(c,
                   "UPDATE nodes SET token_hash = ?, token_expires = UTC_TIMESTAMP(6) + "
                   "INTERVAL ? SECOND WHERE id = ?",
                   p, 3, NULL, NULL);
  if (!rc)
    x->out = json_pack("{s:I, s:s, s:I, s:s}", "id", (json_int_t)id, "enrollment_token", token,
                       "token_expires_in_s", (json_int_t)x->cfg->node_token_ttl_s,
                       "ca_fingerprint", x->pki->ca_fingerprint);
  return rc;
}

static int work_node_list(gdx_db_conn *c, api_ctx *x) {
  int all = !unit_scoped(x);
  gdx_db_param p[] = {GDX_DB_P_INT(x->cfg->node_offline_after_s), GDX_DB_P_INT(all),
                      GDX_DB_P_INT(x->who.unit_id)};
  return api_list(c, x,
                  "SELECT " NODE_COLS " FROM nodes n JOIN units u ON u.id = n.unit_id "
                  "WHERE ? = 1 OR n.unit_id = ? ORDER BY u.code, n.node_id LIMIT 1000",
                  p, 3, 1000, node_json);
}

static int work_node_get(gdx_db_conn *c, api_ctx *x) {
  long long id = atoll(x->params[0]);
  gdx_db_param p[] = {GDX_DB_P_INT(x->cfg->node_offline_after_s), GDX_DB_P_INT(id)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT " NODE_COLS " FROM nodes n JOIN units u ON u.id = n.unit_id "
                        "WHERE n.id = ?",
                        p, 2, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 0 || (unit_scoped(x) && atoll(gdx_db_get(&r, 0, 12)) != x->who.unit_id))
    api_fail(x, 404, "not_found", "no node %lld", id);
  else
    x->out = node_json(&r, 0);
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int work_node_revoke(gdx_db_conn *c, api_ctx *x) {
  gdx_db_result r;
  int found, rc = load_node(c, x, &r, &found);
  if (rc || !found)
    return rc;
  int revoked = strcmp(gdx_db_get(&r, 0, 4), "revoked") == 0;
  long long id = atoll(gdx_db_get(&r, 0, 0));
  gdx_db_result_free(&r);
  if (x->who.role != ROLE_UNIT_ADMIN && x->who.role != ROLE_OPS)
    return api_fail(x, 403, "forbidden", "nodes are revoked by their unit's admin or operations");
  if (revoked)
    return api_fail(x, 409, "wrong_state", "the node is revoked already");
  gdx_db_param p[] = {GDX_DB_P_STR(x->who.username),
                      GDX_DB_P_STR(json_string_value(json_object_get(x->in, "opinion"))),
                      GDX_DB_P_INT(id)};
  rc = gdx_db_exec(c,
                   "UPDATE nodes SET status = 'revoked', token_hash = NULL, revoked_at = "
                   "UTC_TIMESTAMP(6), revoked_by = ?, revoke_reason = ? WHERE id = ?",
                   p, 3, NULL, NULL);
  gdx_db_param pid[] = {GDX_DB_P_INT(id)};
  if (!rc)
    rc = gdx_db_exec(c, "UPDATE node_certs SET revoked = 1 WHERE node_row = ?", pid, 1, NULL,
                     NULL);
  if (!rc)
    rc = api_invalidate(c, x, "node", id);
  if (!rc)
    x->out = json_pack("{s:I, s:s}", "id", (json_int_t)id, "status", "revoked");
  return rc;
}

/* ------------------------------------------------------------------ */
/* nodes themselves                                                     */

/* Signs a certificate for the node row and records it. */
static int issue_cert(gdx_db_conn *c, api_ctx *x, long long row, const char *unit,
                      const char *node, const char *csr, char **cert_out) {
  char err[256], serial[GDX_PKI_SERIAL_HEX];
  char *cert = NULL;
  int rc = gdx_pki_csr_sign(x->pki->ca_pem, x->pki->ca_key_pem, csr, unit, node,
                            (int)x->cfg->node_cert_days, &cert, serial, err, sizeof(err));
  if (rc == GDX_EINVAL)
    return api_fail(x, 400, "invalid_csr", "%s", err);
  if (rc) {
    gdx_log_error("pki", "signing a certificate for %s/%s: %s", unit, node, err);
    return rc;
  }
  X509 *xc = gdx_pki_parse_cert(cert);
  char pin[GDX_PKI_PIN_LEN];
  time_t nb = 0, na = 0;
  if (xc == NULL || gdx_pki_pin(xc, pin) != GDX_OK || gdx_pki_validity(xc, &nb, &na) != GDX_OK) {
    X509_free(xc);
    free(cert);
    return GDX_EINVAL;
  }
  X509_free(xc);
  gdx_db_param p[] = {GDX_DB_P_STR(serial), GDX_DB_P_INT(row), GDX_DB_P_INT(na)};
  rc = gdx_db_exec(c,
                   "INSERT INTO node_certs (serial, node_row, not_after, issued_at) "
                   "VALUES (?, ?, FROM_UNIXTIME(?), UTC_TIMESTAMP(6))",
                   p, 3, NULL, NULL);
  gdx_db_param pn[] = {GDX_DB_P_STR(serial), GDX_DB_P_INT(na), GDX_DB_P_STR(pin),
                       GDX_DB_P_INT(row)};
  if (!rc)
    rc = gdx_db_exec(c,
                     "UPDATE nodes SET status = 'active', token_hash = NULL, token_expires = NULL, "
                     "cert_serial = ?, cert_not_after = FROM_UNIXTIME(?), pubkey_pin = ?, "
                     "enrolled_at = IFNULL(enrolled_at, UTC_TIMESTAMP(6)) WHERE id = ?",
                     pn, 4, NULL, NULL);
  if (!rc)
    rc = api_invalidate(c, x, "node", row);
  if (rc) {
    free(cert);
    return rc;
  }
  x->audit_detail = json_pack("{s:s, s:I}", "serial", serial, "not_after_unix", (json_int_t)na);
  *cert_out = cert;
  return GDX_OK;
}

static const char *nodes_url(const api_ctx *x) { return x->pki->nodes_url; }

static int work_node_enroll(gdx_db_conn *c, api_ctx *x) {
  const char *token = json_string_value(json_object_get(x->in, "token"));
  const char *csr = json_string_value(json_object_get(x->in, "csr"));
  snprintf(x->audit_actor, sizeof(x->audit_actor), "enrollment");
  if (strcmp(token + 41, x->pki->ca_fingerprint) != 0)
    return api_fail(x, 400, "wrong_platform",
                    "the token was issued for another platform CA (fingerprint mismatch)");
  char hash[65];
  sha256_hex(token, 40, hash);
  gdx_db_param p[] = {GDX_DB_P_STR(hash)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT n.id, u.code, n.node_id, n.status, n.token_expires < "
                        "UTC_TIMESTAMP(6), u.status FROM nodes n JOIN units u ON u.id = n.unit_id "
                        "WHERE n.token_hash = ? FOR UPDATE",
                        p, 1, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 0) {
    gdx_db_result_free(&r);
    return api_fail(x, 401, "invalid_token", "the enrollment token is unknown or used already");
  }
  long long row = atoll(gdx_db_get(&r, 0, 0));
  char unit[19], node[65];
  snprintf(unit, sizeof(unit), "%s", gdx_db_get(&r, 0, 1));
  snprintf(node, sizeof(node), "%s", gdx_db_get(&r, 0, 2));
  int expired = atoi(gdx_db_get(&r, 0, 4));
  int unit_ok = strcmp(gdx_db_get(&r, 0, 5), "active") == 0;
  int revoked = strcmp(gdx_db_get(&r, 0, 3), "revoked") == 0;
  gdx_db_result_free(&r);
  snprintf(x->audit_actor, sizeof(x->audit_actor), "node:%s", node);
  snprintf(x->audit_unit, sizeof(x->audit_unit), "%s", unit);
  snprintf(x->audit_object, sizeof(x->audit_object), "node:%s/%s", unit, node);
  if (expired)
    return api_fail(x, 401, "token_expired", "the enrollment token has expired; ask the unit "
                                             "admin for a new one");
  if (revoked || !unit_ok)
    return api_fail(x, 403, "forbidden", "the node is revoked or its unit is disabled");
  /* Re-enrollment (a node that lost its key) retires the old certificates. */
  gdx_db_param pid[] = {GDX_DB_P_INT(row)};
  rc = gdx_db_exec(c, "UPDATE node_certs SET revoked = 1 WHERE node_row = ?", pid, 1, NULL, NULL);
  char *cert = NULL;
  if (!rc)
    rc = issue_cert(c, x, row, unit, node, csr, &cert);
  if (rc || x->status)
    return rc;
  x->status = 201;
  x->out = json_pack("{s:s, s:s, s:s, s:s, s:s}", "unit_code", unit, "node_id", node,
                     "certificate", cert, "ca_certificate", x->pki->ca_pem, "broker_url",
                     nodes_url(x));
  free(cert);
  return GDX_OK;
}

static int work_node_renew(gdx_db_conn *c, api_ctx *x) {
  snprintf(x->audit_object, sizeof(x->audit_object), "node:%s/%s", x->node_unit, x->node_name);
  char *cert = NULL;
  int rc = issue_cert(c, x, x->node_row, x->node_unit, x->node_name,
                      json_string_value(json_object_get(x->in, "csr")), &cert);
  if (rc || x->status)
    return rc;
  /* The certificate the renewal came with stays valid until it expires, so
   * connections made with it finish; the new one is current from now. */
  x->out = json_pack("{s:s, s:s}", "certificate", cert, "ca_certificate", x->pki->ca_pem);
  free(cert);
  return GDX_OK;
}

static int work_node_heartbeat(gdx_db_conn *c, api_ctx *x) {
  const char *address = json_string_value(json_object_get(x->in, "address"));
  char *res = json_dumps(json_object_get(x->in, "resources"), JSON_COMPACT);
  gdx_db_param pq[] = {GDX_DB_P_INT(x->node_row)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT address, cert_serial, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(6), "
                        "cert_not_after) FROM nodes WHERE id = ?",
                        pq, 1, 1, &r);
  if (rc) {
    free(res);
    return rc;
  }
  int moved = r.nrows == 1 && strcmp(gdx_db_get(&r, 0, 0), address) != 0;
  long long left = r.nrows == 1 && gdx_db_get(&r, 0, 2) ? atoll(gdx_db_get(&r, 0, 2)) : 0;
  int current = r.nrows == 1 && gdx_db_get(&r, 0, 1) &&
                strcmp(gdx_db_get(&r, 0, 1), x->node_serial) == 0;
  gdx_db_result_free(&r);
  gdx_db_param p[] = {GDX_DB_P_STR(address),
                      GDX_DB_P_STR(json_string_value(json_object_get(x->in, "version"))),
                      GDX_DB_P_STR(res ? res : "[]"), GDX_DB_P_INT(x->node_row)};
  rc = gdx_db_exec(c,
                   "UPDATE nodes SET address = ?, version = ?, resources = ?, "
                   "last_heartbeat = UTC_TIMESTAMP(6) WHERE id = ?",
                   p, 4, NULL, NULL);
  free(res);
  if (!rc && moved) {
    gdx_log_info("nodes", "node %s/%s is now at %s", x->node_unit, x->node_name, address);
    rc = api_invalidate(c, x, "node", x->node_row);
  }
  if (!rc && json_array_size(json_object_get(x->in, "events")) > 0)
    rc = ledger_node_events(c, x, json_object_get(x->in, "events"));
  if (rc)
    return rc;
  int renew = current && left < x->cfg->node_renew_before_days * 86400LL;
  x->out = json_pack("{s:b, s:I, s:I}", "renew", renew, "offline_after_s",
                     (json_int_t)x->cfg->node_offline_after_s, "cert_seconds_left",
                     (json_int_t)left);
  return ledger_heartbeat(c, x->node_row, x->node_name, x->out);
}

const api_route api_node_routes[] = {
    {"POST", "/api/v1/nodes", "node.create", API_SESSION, ROLE_UNIT_ADMIN, "node_create",
     work_node_create, "Register a front-end node of your unit; returns its enrollment token"},
    {"GET", "/api/v1/nodes", NULL, API_SESSION, ROLE_ANY, NULL, work_node_list,
     "List nodes with their state (online, offline, pending, revoked)"},
    {"GET", "/api/v1/nodes/{}", NULL, API_SESSION, ROLE_ANY, NULL, work_node_get,
     "A node: certificate, address, version, resources and adapter health"},
    {"POST", "/api/v1/nodes/{}/token", "node.token", API_SESSION, ROLE_UNIT_ADMIN, NULL,
     work_node_token, "A new one-time enrollment token (re-enrollment after a lost key)"},
    {"POST", "/api/v1/nodes/{}/revoke", "node.revoke", API_SESSION, ROLE_UNIT_ADMIN | ROLE_OPS,
     "opinion", work_node_revoke, "Revoke a node and all its certificates"},
    {"POST", "/api/v1/nodes/enroll", "node.enroll", API_PUBLIC, 0, "node_enroll",
     work_node_enroll, "A node enrolls with its token and CSR and gets its certificate"},
    {"POST", "/node/v1/heartbeat", NULL, API_NODE, 0, "node_heartbeat", work_node_heartbeat,
     "Node heartbeat: version, address, resources and adapter health (mutual TLS)"},
    {"POST", "/node/v1/renew", "node.renew", API_NODE, 0, "node_renew", work_node_renew,
     "Renew the node certificate (mutual TLS)"},
};
const size_t api_node_nroutes = sizeof(api_node_routes) / sizeof(api_node_routes[0]);

int nodes_cert_check(gdx_db_conn *c, const char *unit, const char *node, const char *serial,
                     node_check *out) {
  memset(out, 0, sizeof(*out));
  gdx_db_param p[] = {GDX_DB_P_STR(serial), GDX_DB_P_STR(unit), GDX_DB_P_STR(node)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT n.id, u.id, n.status, nc.revoked, nc.not_after < UTC_TIMESTAMP(6), "
                        "u.status FROM nodes n JOIN units u ON u.id = n.unit_id "
                        "JOIN node_certs nc ON nc.node_row = n.id AND nc.serial = ? "
                        "WHERE u.code = ? AND n.node_id = ?",
                        p, 3, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 0) {
    gdx_db_result_free(&r);
    out->status = 401;
    out->code = "unknown_node";
    snprintf(out->message, sizeof(out->message), "no node %s of unit %s holds certificate %s",
             node, unit, serial);
    return GDX_OK;
  }
  out->node_row = atoll(gdx_db_get(&r, 0, 0));
  out->unit_id = atoll(gdx_db_get(&r, 0, 1));
  int ok_node = strcmp(gdx_db_get(&r, 0, 2), "active") == 0;
  int revoked = atoi(gdx_db_get(&r, 0, 3));
  int expired = atoi(gdx_db_get(&r, 0, 4));
  int unit_ok = strcmp(gdx_db_get(&r, 0, 5), "active") == 0;
  gdx_db_result_free(&r);
  const char *why = NULL;
  if (!ok_node || revoked) {
    out->status = 403;
    out->code = "certificate_revoked";
    why = "the node or its certificate is revoked";
  } else if (expired) {
    out->status = 401;
    out->code = "certificate_expired";
    why = "the node certificate has expired";
  } else if (!unit_ok) {
    out->status = 403;
    out->code = "unit_disabled";
    why = "the node's unit is disabled";
  }
  if (why)
    snprintf(out->message, sizeof(out->message), "%s", why);
  return GDX_OK;
}
