/* The nodes part of the API: front-end nodes registered, enrolled with
 * one-time tokens, renewed, revoked, and their heartbeats (R-EX-1, R-EX-4).
 * Registered with the platform PKI (platform_pki.h) as its data.
 *
 * Trust: every broker on a database signs with the same platform CA. A
 * unit admin registers a node and gets a one-time token of the form
 *   <40 hex: the secret>.<64 hex: SHA-256 fingerprint of the CA certificate>
 * The node checks the CA it receives against the fingerprint (so enrolling
 * over an untrusted network cannot plant a rogue CA), sends a CSR, and gets a
 * certificate binding its unit code and node id. From then on it talks to
 * the broker's node listener with mutual TLS, and the broker calls it with
 * its own certificate, pinning the node's public key.
 */
#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "error.h"
#include "ledger.h"
#include "log.h"
#include "parts.h"
#include "pki.h"
#include "platform_pki.h"

/* "<40 hex>.<64 hex>" and its NUL */
#define ENROLL_TOKEN_SIZE (40 + 1 + GDX_SHA256_HEX_SIZE)

static const broker_pki *pki_of(const rest_ctx *x) { return x->part; }

/* ------------------------------------------------------------------ */
/* helpers                                                             */

/* A new enrollment token; its secret's hash goes to the database. */
static int new_token(const broker_pki *pki, char token[ENROLL_TOKEN_SIZE],
                     char hash[GDX_SHA256_HEX_SIZE]) {
  unsigned char rnd[20];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1)
    return GDX_EIO;
  gdx_hex(rnd, sizeof(rnd), token);
  gdx_sha256_hex(token, 40, hash);
  snprintf(token + 40, ENROLL_TOKEN_SIZE - 40, ".%s", pki->ca_fingerprint);
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
  return json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "id",
                   rest_json_int(r, i, 0), "unit_code", gdx_db_get(r, i, 1), "node_id",
                   gdx_db_get(r, i, 2), "description", gdx_db_get(r, i, 3), "status",
                   gdx_db_get(r, i, 4), "state", gdx_db_get(r, i, 5), "address",
                   gdx_db_get(r, i, 6), "version", gdx_db_get(r, i, 7), "last_heartbeat",
                   gdx_db_get(r, i, 8), "cert_not_after", gdx_db_get(r, i, 9), "cert_serial",
                   gdx_db_get(r, i, 10), "resources", resources ? resources : json_array(),
                   "heartbeat_age_s", rest_json_int(r, i, 13));
}

#define NODE_FROM                                                                                  \
  " FROM nodes n JOIN units u ON u.id = n.unit_id WHERE n.id = ? AND (? = 1 OR n.unit_id = ?)"

/* The node of the path into r - if the caller may see it; a 404 refusal
 * otherwise - locked FOR UPDATE when it is to change. */
static int load_node(gdx_db_conn *c, rest_ctx *x, int for_update, gdx_db_result *r) {
  snprintf(x->audit_object, sizeof(x->audit_object), "node:%s", x->params[0]);
  gdx_db_param p[] = {GDX_DB_P_INT(x->cfg->node_offline_after_s), GDX_DB_P_INT(rest_param_id(x, 0)),
                      GDX_DB_P_INT(rest_sees_all(x)), GDX_DB_P_INT(x->who.unit_id)};
  int rc = rest_load_one(c, x,
                         for_update ? "SELECT " NODE_COLS NODE_FROM " FOR UPDATE"
                                    : "SELECT " NODE_COLS NODE_FROM,
                         p, 4, r, "no node %s", x->params[0]);
  if (rc || x->status)
    return rc;
  snprintf(x->audit_object, sizeof(x->audit_object), "node:%s/%s", gdx_db_get(r, 0, 1),
           gdx_db_get(r, 0, 2));
  return GDX_OK;
}

/* The id and whether it is revoked, of a node load_node found. */
static int node_state(gdx_db_result *r, long long *id, int *revoked) {
  gdx_db_row w = gdx_db_row_at(r, 0);
  *id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  *revoked = strcmp(gdx_db_get(r, 0, 4), "revoked") == 0;
  int rc = w.rc ? gdx_db_row_fail(&w, "nodes") : GDX_OK;
  gdx_db_result_free(r);
  return rc;
}

/* ------------------------------------------------------------------ */
/* unit admins and operations                                           */

static int work_node_create(gdx_db_conn *c, rest_ctx *x) {
  const char *node_id = json_string_value(json_object_get(x->in, "node_id"));
  const char *desc = json_string_value(json_object_get(x->in, "description"));
  snprintf(x->audit_object, sizeof(x->audit_object), "node:%s/%s", x->who.unit_code, node_id);
  char token[ENROLL_TOKEN_SIZE], hash[GDX_SHA256_HEX_SIZE];
  if (new_token(pki_of(x), token, hash))
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
    return rest_fail(x, 409, "conflict", "unit %s has a node %s already", x->who.unit_code,
                     node_id);
  if (rc)
    return rc;
  x->status = 201;
  x->out = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:s}", "id", (json_int_t)id, "unit_code",
                     x->who.unit_code, "node_id", node_id, "status", "pending", "enrollment_token",
                     token, "token_expires_in_s", (json_int_t)x->cfg->node_token_ttl_s,
                     "ca_fingerprint", pki_of(x)->ca_fingerprint);
  return GDX_OK;
}

static int work_node_token(gdx_db_conn *c, rest_ctx *x) {
  gdx_db_result r;
  long long id;
  int revoked, rc = load_node(c, x, 1, &r);
  if (rc || x->status || (rc = node_state(&r, &id, &revoked)) != GDX_OK)
    return rc;
  if (x->who.role != ROLE_UNIT_ADMIN)
    return rest_fail(x, 403, "forbidden", "enrollment tokens are issued by the unit's admin");
  if (revoked)
    return rest_fail(x, 409, "wrong_state", "the node is revoked; register a new node id");
  char token[ENROLL_TOKEN_SIZE], hash[GDX_SHA256_HEX_SIZE];
  if (new_token(pki_of(x), token, hash))
    return GDX_EIO;
  gdx_db_param p[] = {GDX_DB_P_STR(hash), GDX_DB_P_INT(x->cfg->node_token_ttl_s),
                      GDX_DB_P_INT(id)};
  rc = gdx_db_exec(c,
                   "UPDATE nodes SET token_hash = ?, token_expires = UTC_TIMESTAMP(6) + "
                   "INTERVAL ? SECOND WHERE id = ?",
                   p, 3, NULL, NULL);
  if (!rc)
    x->out = json_pack("{s:I, s:s, s:I, s:s}", "id", (json_int_t)id, "enrollment_token", token,
                       "token_expires_in_s", (json_int_t)x->cfg->node_token_ttl_s, "ca_fingerprint",
                       pki_of(x)->ca_fingerprint);
  return rc;
}

static int work_node_list(gdx_db_conn *c, rest_ctx *x) {
  gdx_db_param p[] = {GDX_DB_P_INT(x->cfg->node_offline_after_s), GDX_DB_P_INT(rest_sees_all(x)),
                      GDX_DB_P_INT(x->who.unit_id)};
  return rest_list(c, x,
                   "SELECT " NODE_COLS " FROM nodes n JOIN units u ON u.id = n.unit_id "
                   "WHERE ? = 1 OR n.unit_id = ? ORDER BY u.code, n.node_id LIMIT 1000",
                   p, 3, 1000, node_json);
}

static int work_node_get(gdx_db_conn *c, rest_ctx *x) {
  gdx_db_result r;
  int rc = load_node(c, x, 0, &r);
  if (rc || x->status)
    return rc;
  x->out = node_json(&r, 0);
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int work_node_revoke(gdx_db_conn *c, rest_ctx *x) {
  gdx_db_result r;
  long long id;
  int revoked, rc = load_node(c, x, 1, &r);
  if (rc || x->status || (rc = node_state(&r, &id, &revoked)) != GDX_OK)
    return rc;
  if (x->who.role != ROLE_UNIT_ADMIN && x->who.role != ROLE_OPS)
    return rest_fail(x, 403, "forbidden", "nodes are revoked by their unit's admin or operations");
  if (revoked)
    return rest_fail(x, 409, "wrong_state", "the node is revoked already");
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
    rc = rest_invalidate(c, x, "node", id);
  if (!rc)
    x->out = json_pack("{s:I, s:s}", "id", (json_int_t)id, "status", "revoked");
  return rc;
}

/* ------------------------------------------------------------------ */
/* nodes themselves                                                     */

/* Signs a certificate for the node row and records it. */
static int issue_cert(gdx_db_conn *c, rest_ctx *x, long long row, const char *unit,
                      const char *node, const char *csr, char **cert_out) {
  char err[256], serial[GDX_PKI_SERIAL_HEX];
  char *cert = NULL;
  int rc = gdx_pki_csr_sign(pki_of(x)->ca_pem, pki_of(x)->ca_key_pem, csr, unit, node,
                            (int)x->cfg->node_cert_days, &cert, serial, err, sizeof(err));
  if (rc == GDX_EINVAL)
    return rest_fail(x, 400, "invalid_csr", "%s", err);
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
    rc = rest_invalidate(c, x, "node", row);
  if (rc) {
    free(cert);
    return rc;
  }
  x->audit_detail = json_pack("{s:s, s:I}", "serial", serial, "not_after_unix", (json_int_t)na);
  *cert_out = cert;
  return GDX_OK;
}

static const char *nodes_url(const rest_ctx *x) { return pki_of(x)->nodes_url; }

static int work_node_enroll(gdx_db_conn *c, rest_ctx *x) {
  const char *token = json_string_value(json_object_get(x->in, "token"));
  const char *csr = json_string_value(json_object_get(x->in, "csr"));
  snprintf(x->audit_actor, sizeof(x->audit_actor), "enrollment");
  if (strcmp(token + 41, pki_of(x)->ca_fingerprint) != 0)
    return rest_fail(x, 400, "wrong_platform",
                     "the token was issued for another platform CA (fingerprint mismatch)");
  char hash[GDX_SHA256_HEX_SIZE];
  gdx_sha256_hex(token, 40, hash);
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
    return rest_fail(x, 401, "invalid_token", "the enrollment token is unknown or used already");
  }
  gdx_db_row w = gdx_db_row_at(&r, 0);
  long long row = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  int expired = gdx_db_flag(&w, 4);
  char unit[GDX_UNIT_CODE_SIZE], node[GDX_NAME_SIZE];
  snprintf(unit, sizeof(unit), "%s", gdx_db_get(&r, 0, 1));
  snprintf(node, sizeof(node), "%s", gdx_db_get(&r, 0, 2));
  int unit_ok = strcmp(gdx_db_get(&r, 0, 5), "active") == 0;
  int revoked = strcmp(gdx_db_get(&r, 0, 3), "revoked") == 0;
  rc = w.rc ? gdx_db_row_fail(&w, "nodes") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;
  snprintf(x->audit_actor, sizeof(x->audit_actor), "node:%s", node);
  snprintf(x->audit_unit, sizeof(x->audit_unit), "%s", unit);
  snprintf(x->audit_object, sizeof(x->audit_object), "node:%s/%s", unit, node);
  if (expired)
    return rest_fail(x, 401, "token_expired",
                     "the enrollment token has expired; ask the unit "
                     "admin for a new one");
  if (revoked || !unit_ok)
    return rest_fail(x, 403, "forbidden", "the node is revoked or its unit is disabled");
  /* Re-enrollment (a node that lost its key) retires the old certificates. */
  gdx_db_param pid[] = {GDX_DB_P_INT(row)};
  rc = gdx_db_exec(c, "UPDATE node_certs SET revoked = 1 WHERE node_row = ?", pid, 1, NULL, NULL);
  char *cert = NULL;
  if (!rc)
    rc = issue_cert(c, x, row, unit, node, csr, &cert);
  if (rc || x->status)
    return rc;
  x->status = 201;
  x->out = json_pack("{s:s, s:s, s:s, s:s, s:s}", "unit_code", unit, "node_id", node, "certificate",
                     cert, "ca_certificate", pki_of(x)->ca_pem, "broker_url", nodes_url(x));
  free(cert);
  return GDX_OK;
}

static int work_node_renew(gdx_db_conn *c, rest_ctx *x) {
  snprintf(x->audit_object, sizeof(x->audit_object), "node:%s/%s", x->node.unit, x->node.node);
  char *cert = NULL;
  int rc = issue_cert(c, x, x->node.row, x->node.unit, x->node.node,
                      json_string_value(json_object_get(x->in, "csr")), &cert);
  if (rc || x->status)
    return rc;
  /* The certificate the renewal came with stays valid until it expires, so
   * connections made with it finish; the new one is current from now. */
  x->out = json_pack("{s:s, s:s}", "certificate", cert, "ca_certificate", pki_of(x)->ca_pem);
  free(cert);
  return GDX_OK;
}

static int work_node_heartbeat(gdx_db_conn *c, rest_ctx *x) {
  const char *address = json_string_value(json_object_get(x->in, "address"));
  char *res = json_dumps(json_object_get(x->in, "resources"), JSON_COMPACT);
  gdx_db_param pq[] = {GDX_DB_P_INT(x->node.row)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT address, cert_serial, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(6), "
                        "cert_not_after) FROM nodes WHERE id = ?",
                        pq, 1, 1, &r);
  if (rc) {
    free(res);
    return rc;
  }
  gdx_db_row w = gdx_db_row_at(&r, 0); /* the row exists: the node was just checked */
  int moved = r.nrows == 1 && strcmp(gdx_db_get(&r, 0, 0), address) != 0;
  long long left = gdx_db_i64_or(&w, 2, LLONG_MIN, LLONG_MAX, 0);
  int current =
      r.nrows == 1 && gdx_db_get(&r, 0, 1) && strcmp(gdx_db_get(&r, 0, 1), x->node.serial) == 0;
  rc = w.rc ? gdx_db_row_fail(&w, "nodes") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc) {
    free(res);
    return rc;
  }
  gdx_db_param p[] = {GDX_DB_P_STR(address),
                      GDX_DB_P_STR(json_string_value(json_object_get(x->in, "version"))),
                      GDX_DB_P_STR(res ? res : "[]"), GDX_DB_P_INT(x->node.row)};
  rc = gdx_db_exec(c,
                   "UPDATE nodes SET address = ?, version = ?, resources = ?, "
                   "last_heartbeat = UTC_TIMESTAMP(6) WHERE id = ?",
                   p, 4, NULL, NULL);
  free(res);
  if (!rc && moved) {
    gdx_log_info("nodes", "node %s/%s is now at %s", x->node.unit, x->node.node, address);
    rc = rest_invalidate(c, x, "node", x->node.row);
  }
  if (!rc && json_array_size(json_object_get(x->in, "events")) > 0)
    rc = ledger_node_events(c, x, json_object_get(x->in, "events"));
  if (rc)
    return rc;
  int renew = current && left < x->cfg->node_renew_before_days * 86400LL;
  x->out = json_pack("{s:b, s:I, s:I}", "renew", renew, "offline_after_s",
                     (json_int_t)x->cfg->node_offline_after_s, "cert_seconds_left",
                     (json_int_t)left);
  return ledger_heartbeat(c, x->node.row, x->node.node, x->out);
}

static const rest_route routes[] = {
    {"POST", "/api/v1/nodes", "node.create", REST_SESSION, ROLE_UNIT_ADMIN, "node_create",
     work_node_create, "Register a front-end node of your unit; returns its enrollment token"},
    {"GET", "/api/v1/nodes", NULL, REST_SESSION, ROLE_ANY, NULL, work_node_list,
     "List nodes with their state (online, offline, pending, revoked)"},
    {"GET", "/api/v1/nodes/{}", NULL, REST_SESSION, ROLE_ANY, NULL, work_node_get,
     "A node: certificate, address, version, resources and adapter health"},
    {"POST", "/api/v1/nodes/{}/token", "node.token", REST_SESSION, ROLE_UNIT_ADMIN, NULL,
     work_node_token, "A new one-time enrollment token (re-enrollment after a lost key)"},
    {"POST", "/api/v1/nodes/{}/revoke", "node.revoke", REST_SESSION, ROLE_UNIT_ADMIN | ROLE_OPS,
     "opinion", work_node_revoke, "Revoke a node and all its certificates"},
    {"POST", "/api/v1/nodes/enroll", "node.enroll", REST_PUBLIC, 0, "node_enroll", work_node_enroll,
     "A node enrolls with its token and CSR and gets its certificate"},
    {"POST", "/node/v1/heartbeat", NULL, REST_NODE, 0, "node_heartbeat", work_node_heartbeat,
     "Node heartbeat: version, address, resources and adapter health (mutual TLS)"},
    {"POST", "/node/v1/renew", "node.renew", REST_NODE, 0, "node_renew", work_node_renew,
     "Renew the node certificate (mutual TLS)"},
};
const rest_part nodes_part = REST_PART("nodes", routes);
