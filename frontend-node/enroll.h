/* Enrollment: how a node gets its identity, once, before the daemon runs
 * (gdx-node --enroll TOKEN).
 *
 * The key is made on the node (0600, never sent); the CSR goes with the
 * one-time token from the unit admin to the broker's API; the platform CA
 * that comes back must have the fingerprint the token carries, and the
 * certificate must name the configured unit and node id. Then node.key,
 * node.crt, ca.crt and broker_url (the node listener) are written into
 * node.state_dir. Blocking: libcurl's easy interface, no event loop.
 */
#ifndef GDX_NODE_ENROLL_H
#define GDX_NODE_ENROLL_H

#include <stddef.h>

#include "node_config.h"

/* token: 40 hex digits, a dot, the CA's SHA-256 fingerprint in hex.
 * GDX_ECONFIG (no broker.url, no state folder), GDX_EINVAL (a malformed
 * token, a refusal, a certificate for another node), GDX_ETLS (the CA is
 * not the token's) or GDX_EIO, with err. */
int gdx_node_enroll(const gdx_node_config *cfg, const char *token, char *err, size_t errlen);

#endif
