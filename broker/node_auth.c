#include "node_auth.h"

#include <stdio.h>
#include <string.h>

#include "error.h"

#define VERDICT_S 2

int node_identity_of(gdx_http_req *req, node_identity *out) {
  memset(out, 0, sizeof(*out));
  X509 *peer = gdx_http_req_peer_cert(req);
  if (peer == NULL ||
      gdx_pki_identity(peer, out->unit, sizeof(out->unit), out->node, sizeof(out->node)) !=
          GDX_OK ||
      gdx_pki_serial(peer, out->serial) != GDX_OK) {
    memset(out, 0, sizeof(*out));
    return GDX_EINVAL;
  }
  return GDX_OK;
}

int node_check_cert(gdx_db_conn *c, node_identity *id, node_check *out) {
  memset(out, 0, sizeof(*out));
  gdx_db_param p[] = {GDX_DB_P_STR(id->serial), GDX_DB_P_STR(id->unit), GDX_DB_P_STR(id->node)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT n.id, u.id, n.status = 'active', nc.revoked, "
                        "nc.not_after < UTC_TIMESTAMP(6), u.status = 'active' "
                        "FROM nodes n JOIN units u ON u.id = n.unit_id "
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
             id->node, id->unit, id->serial);
    return GDX_OK;
  }
  gdx_db_row w = gdx_db_row_at(&r, 0);
  id->row = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
  id->unit_id = gdx_db_i64(&w, 1, 1, GDX_DB_ID_MAX);
  int node_ok = gdx_db_flag(&w, 2), revoked = gdx_db_flag(&w, 3), expired = gdx_db_flag(&w, 4),
      unit_ok = gdx_db_flag(&w, 5);
  rc = w.rc ? gdx_db_row_fail(&w, "node certificate") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;
  const char *why = NULL;
  if (!node_ok || revoked) {
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

/* The connection's tag: -1 refused, else the loop-clock second (+1, so
 * that 0 means "never checked") of the last good check. */
int node_verdict(gdx_http_req *req, uint64_t now_ms) {
  int tag = gdx_http_req_peer_tag(req);
  if (tag == -1)
    return -1;
  int now_s = (int)(now_ms / 1000) + 1;
  return tag > 0 && now_s - tag < VERDICT_S ? 1 : 0;
}

void node_verdict_keep(gdx_http_req *req, int ok, uint64_t now_ms) {
  gdx_http_req_set_peer_tag(req, ok ? (int)(now_ms / 1000) + 1 : -1);
}
