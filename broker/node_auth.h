/* Front-end nodes known by their certificate: the one identity check behind
 * every request a node makes to the broker - the REST core's /node/v1
 * routes (heartbeat, renewal, ledger posts) and the exchange's node hop
 * (table and folder reads).
 *
 * The node listener only accepts clients with a certificate of the platform
 * CA. That is not enough: the certificate's serial must be one issued to
 * the node it names (SAN gdx:unit:<code>:node:<id>), not revoked and not
 * expired, and node and unit must be active - looked up in nodes and
 * node_certs, so a revocation bites at once.
 */
#ifndef GDX_BROKER_NODE_AUTH_H
#define GDX_BROKER_NODE_AUTH_H

#include <stdint.h>

#include "db.h"
#include "http.h"
#include "ids.h"
#include "pki.h"

typedef struct {
  char unit[GDX_UNIT_CODE_SIZE]; /* from the certificate */
  char node[GDX_NAME_SIZE];
  char serial[GDX_PKI_SERIAL_HEX];
  long long row, unit_id; /* nodes.id and units.id, once checked */
} node_identity;

/* The identity in the request's client certificate: GDX_OK, or GDX_EINVAL
 * when there is none naming a unit and a node (out is then empty). */
int node_identity_of(gdx_http_req *req, node_identity *out);

typedef struct {
  int status;       /* 0: may be served; else 401 or 403 */
  const char *code; /* stable: unknown_node, certificate_revoked, … */
  char message[200];
} node_check;

/* Worker thread: the node's certificate and standing against the
 * database; fills id->row and id->unit_id when the node is known. */
int node_check_cert(gdx_db_conn *c, node_identity *id, node_check *out);

/* The connection's last verdict on its node (loop thread): 1 served less
 * than two seconds ago, -1 refused, 0 to be checked (again). Kept so that a
 * busy connection is not checked per request, while a revoked node stops
 * being served on connections it already has. */
int node_verdict(gdx_http_req *req, uint64_t now_ms);
void node_verdict_keep(gdx_http_req *req, int ok, uint64_t now_ms);

#endif
