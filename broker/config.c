/* The broker's configuration keys: one table drives parsing, validation,
 * defaults and docs/config.md. */
#include <stddef.h>

#include "broker.h"

#define C(f) offsetof(gdx_broker_config, f)
#define KB 1024LL
#define MB (1024LL * 1024LL)

static const char *const verify_words[] = {"none", "optional", "require", NULL};
static const char *const level_words[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_words[] = {"human", "json", NULL};

const gdx_cfg_key gdx_broker_config_keys[] = {
    {"listen.host", GDX_CFG_STR, C(listen_host), 0, 0, 0, 0, "127.0.0.1", NULL,
     "address of the plain HTTP listener"},
    {"listen.port", GDX_CFG_INT, C(listen_port), 0, 0, 65535, 8080, NULL, NULL,
     "port of the plain HTTP listener (0: any free port)"},
    {"tls.host", GDX_CFG_STR, C(tls_host), 0, 0, 0, 0, "127.0.0.1", NULL,
     "address of the TLS listener"},
    {"tls.port", GDX_CFG_INT, C(tls_port), 0, -1, 65535, -1, NULL, NULL,
     "port of the TLS listener (-1: no TLS listener, 0: any free port)"},
    {"tls.cert", GDX_CFG_STR, C(tls_cert), 0, 0, 0, 0, NULL, NULL, "PEM certificate chain"},
    {"tls.key", GDX_CFG_STR, C(tls_key), 0, 0, 0, 0, NULL, NULL, "PEM private key"},
    {"tls.client_ca", GDX_CFG_STR, C(tls_client_ca), 0, 0, 0, 0, NULL, NULL,
     "PEM CAs that sign client certificates"},
    {"tls.verify", GDX_CFG_STR, C(tls_verify), 0, 0, 0, 0, "none", verify_words,
     "client certificates: none, optional or require (mutual TLS)"},
    {"http.max_header_bytes", GDX_CFG_INT, C(max_header_bytes), 0, 1 * KB, 1 * MB, 8 * KB,
     NULL, NULL, "request line + headers; larger heads get 431"},
    {"http.max_url_bytes", GDX_CFG_INT, C(max_url_bytes), 0, 256, 1 * MB, 4 * KB, NULL, NULL,
     "request target; longer gets 414"},
    {"http.max_body_bytes", GDX_CFG_INT, C(max_body_bytes), 0, 1 * KB, 1024 * MB, 1 * MB,
     NULL, NULL, "request body; larger gets 413"},
    {"http.max_headers", GDX_CFG_INT, C(max_headers), 0, 8, 1000, 100, NULL, NULL,
     "header fields per request"},
    {"http.max_connections", GDX_CFG_INT, C(max_connections), 0, 1, 1000000, 10000, NULL,
     NULL, "open connections; more are answered 503 and closed"},
    {"http.header_timeout_ms", GDX_CFG_INT, C(header_timeout_ms), 0, 10, 3600000, 10000,
     NULL, NULL, "time allowed for a request head (408)"},
    {"http.body_timeout_ms", GDX_CFG_INT, C(body_timeout_ms), 0, 10, 3600000, 30000, NULL,
     NULL, "silence allowed while a body arrives (408)"},
    {"http.keepalive_timeout_ms", GDX_CFG_INT, C(keepalive_timeout_ms), 0, 10, 3600000,
     75000, NULL, NULL, "idle keep-alive connections are closed after this"},
    {"http.send_timeout_ms", GDX_CFG_INT, C(send_timeout_ms), 0, 10, 3600000, 30000, NULL,
     NULL, "a client that reads nothing for this long is cut off"},
    {"http.shutdown_timeout_ms", GDX_CFG_INT, C(shutdown_timeout_ms), 0, 0, 3600000, 10000,
     NULL, NULL, "graceful shutdown waits this long for requests in progress"},
    {"http.write_high_water", GDX_CFG_INT, C(write_high_water), 0, 4 * KB, 1024 * MB, 1 * MB,
     NULL, NULL, "queued response bytes above which reading pauses"},
    {"http.access_log", GDX_CFG_BOOL, C(access_log), 0, 0, 0, 1, NULL, NULL,
     "one log line per request"},
    {"db.socket", GDX_CFG_STR, C(db_socket), 0, 0, 0, 0, NULL, NULL,
     "MariaDB unix socket (preferred over host/port)"},
    {"db.host", GDX_CFG_STR, C(db_host), 0, 0, 0, 0, "127.0.0.1", NULL, "MariaDB host"},
    {"db.port", GDX_CFG_INT, C(db_port), 0, 0, 65535, 3306, NULL, NULL, "MariaDB port"},
    {"db.user", GDX_CFG_STR, C(db_user), 1, 0, 0, 0, NULL, NULL, "MariaDB user"},
    {"db.password_file", GDX_CFG_STR, C(db_password_file), 0, 0, 0, 0, NULL, NULL,
     "file holding the MariaDB password (mode 0600); no password when unset"},
    {"db.name", GDX_CFG_STR, C(db_name), 1, 0, 0, 0, NULL, NULL, "database name"},
    {"db.pool_size", GDX_CFG_INT, C(db_pool_size), 0, 1, 256, 4, NULL, NULL,
     "worker threads, one connection each"},
    {"db.queue_max", GDX_CFG_INT, C(db_queue_max), 0, 1, 1000000, 1024, NULL, NULL,
     "queued queries; more are refused with 503"},
    {"db.connect_timeout_s", GDX_CFG_INT, C(db_connect_timeout_s), 0, 1, 600, 5, NULL, NULL,
     "MariaDB connect timeout"},
    {"db.health_interval_ms", GDX_CFG_INT, C(health_interval_ms), 0, 100, 600000, 2000,
     NULL, NULL, "how often /healthz's database check runs"},
    {"schema_dir", GDX_CFG_STR, C(schema_dir), 0, 0, 0, 0, NULL, NULL,
     "the schemas/ folder (SQL migrations); default: the source tree's"},
    {"log.level", GDX_CFG_STR, C(log_level), 0, 0, 0, 0, "info", level_words,
     "debug, info, warn or error"},
    {"log.format", GDX_CFG_STR, C(log_format), 0, 0, 0, 0, "human", format_words,
     "human or json (one JSON object per line)"},
    {"log.file", GDX_CFG_STR, C(log_file), 0, 0, 0, 0, "-", NULL,
     "log file, \"-\" for standard error"},
};
const size_t gdx_broker_config_nkeys =
    sizeof(gdx_broker_config_keys) / sizeof(gdx_broker_config_keys[0]);
