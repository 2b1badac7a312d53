/* gdx-broker: the central service. It serves /healthz and /metrics, keeps a
 * MariaDB pool and applies its schema migrations, boots the platform PKI,
 * and puts its parts on one router: the data plane (exchange.h) and the
 * REST core (rest.h) with every part of the API registered on it.
 */
#ifndef GDX_BROKER_H
#define GDX_BROKER_H

#include <uv.h>

#include "config.h"
#include "db.h"
#include "http.h"
#include "router.h"

typedef struct {
  char *listen_host;
  long long listen_port;
  char *tls_host;
  long long tls_port; /* 0: no TLS listener */
  char *tls_cert, *tls_key, *tls_client_ca, *tls_verify;
  long long max_header_bytes, max_url_bytes, max_body_bytes, max_headers, max_connections;
  long long header_timeout_ms, body_timeout_ms, keepalive_timeout_ms, send_timeout_ms,
      shutdown_timeout_ms, write_high_water;
  char *db_socket, *db_host, *db_user, *db_password_file, *db_name;
  long long db_port, db_pool_size, db_queue_max, db_connect_timeout_s;
  long long health_interval_ms;
  char *schema_dir;
  char *log_level, *log_format, *log_file;
  int access_log;
  long long session_idle_s, session_max_s, password_max_age_days, max_failed_logins, lockout_s,
      argon2_memory_kib, argon2_iterations, audit_retention_days;
  /* exchange: PKI, nodes, the API proxy */
  char *pki_dir, *pki_broker_names;
  char *nodes_host, *nodes_url;
  long long nodes_port, node_cert_days, node_renew_before_days, node_offline_after_s,
      node_token_ttl_s;
  long long proxy_token_ttl_s, proxy_rate_limit_rps, proxy_rate_burst,
      proxy_connect_timeout_ms, proxy_head_timeout_ms, proxy_idle_timeout_s,
      proxy_filter_max_bytes, proxy_records_flush_ms, proxy_cache_poll_ms;
} gdx_broker_config;

extern const gdx_cfg_key gdx_broker_config_keys[];
extern const size_t gdx_broker_config_nkeys;

typedef struct gdx_broker gdx_broker;

/* Loads and checks the configuration file; err names file, line and key. */
int gdx_broker_config_load(const char *file, gdx_broker_config *cfg, char *err, size_t errlen);
void gdx_broker_config_free(gdx_broker_config *cfg);

/* Connects, migrates, listens. The broker runs on `loop` until
 * gdx_broker_stop(); `on_stopped` is called when everything is closed. */
int gdx_broker_start(uv_loop_t *loop, const gdx_broker_config *cfg, gdx_broker **out,
                     char *err, size_t errlen);
void gdx_broker_stop(gdx_broker *b, void (*on_stopped)(void *), void *data);
int gdx_broker_port(gdx_broker *b);
/* The port of the node listener (mutual TLS), -1 when there is none. */
int gdx_broker_nodes_port(gdx_broker *b);
/* The i-th part of the REST API (rest.h), NULL past the last: for the
 * route listing and the test that keeps docs/openapi.yaml true. */
struct rest_part;
const struct rest_part *gdx_broker_part(size_t i);
/* Creates the operations unit (if missing) and its first operations admin,
 * who must change `password` at the first login. Blocking; for set-up. */
int gdx_broker_init_admin(const gdx_broker_config *cfg, const char *user, const char *unit_code,
                          const char *unit_name, const char *password, char *err, size_t errlen);

#endif
