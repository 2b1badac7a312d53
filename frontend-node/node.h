/* gdx-node: the front-end node (前置机) of one unit.
 *
 * It enrolls once with a one-time token (key made here, 0600, never sent),
 * then serves the unit's resources to the broker over mutual TLS - only a
 * peer whose platform certificate names the broker is served - and reports
 * a heartbeat (version, address, resources, adapter health) to the broker's
 * node listener, renewing its certificate when the broker says it is close
 * to expiry. A plain admin listener on localhost serves /healthz and
 * /metrics.
 *
 * State folder (node.state_dir): node.key, node.crt, ca.crt, broker_url.
 */
#ifndef GDX_NODE_H
#define GDX_NODE_H

#include <uv.h>

#include "config.h"

typedef struct {
  char *unit, *id, *broker_url, *broker_nodes_url, *state_dir;
  char *listen_host, *advertise_url, *admin_host;
  long long listen_port, admin_port, heartbeat_interval_s;
  long long max_body_bytes, max_connections, keepalive_timeout_ms, body_timeout_ms;
  char *log_level, *log_format, *log_file;
  int access_log;
  /* the unit's front-end database (前置库), for table resources */
  char *fdb_socket, *fdb_host, *fdb_user, *fdb_password_file, *fdb_name;
  long long fdb_port, fdb_pool_size;
  /* virus scanning of received files */
  char *scan_signatures;
  int scan_enabled;
} gdx_node_config;

extern const gdx_cfg_key gdx_node_config_keys[];
extern const size_t gdx_node_config_nkeys;

typedef struct gdx_node gdx_node;

int gdx_node_config_load(const char *file, gdx_node_config *cfg, char *err, size_t errlen);
void gdx_node_config_free(gdx_node_config *cfg);

/* Enrolls with the broker (blocking): makes the key, sends the CSR with the
 * token, checks the CA against the token's fingerprint and the certificate
 * against the configured unit and node id, and writes the state folder. */
int gdx_node_enroll(const gdx_node_config *cfg, const char *token, char *err, size_t errlen);

/* Checks the resources in config_file (as the adapters read them), without
 * needing an enrollment or a network. */
int gdx_node_check(const gdx_node_config *cfg, const char *config_file, char *err,
                   size_t errlen);

/* Starts the daemon on loop: reads the resources from config_file. */
int gdx_node_start(uv_loop_t *loop, const gdx_node_config *cfg, const char *config_file,
                   gdx_node **out, char *err, size_t errlen);
void gdx_node_stop(gdx_node *n, void (*on_stopped)(void *), void *data);

#endif
