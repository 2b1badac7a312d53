#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "audit_chain.h"
#include "catalog.h"
#include "digest.h"
#include "error.h"
#include "exchange.h"
#include "ids.h"
#include "log.h"
#include "migrate.h"
#include "parts.h"
#include "passwords.h"
#include "platform_pki.h"
#include "rest.h"

#ifndef GDX_VERSION
#define GDX_VERSION "0.0.0"
#endif
#ifndef GDX_SCHEMA_DIR
#define GDX_SCHEMA_DIR "schemas"
#endif

struct gdx_broker {
  uv_loop_t *loop;
  gdx_http_server *http;
  gdx_router *router;
  rest *rest;
  exchange *exchange;
  broker_pki pki;
  int nodes_listener; /* index of the node listener, -1: none */
  gdx_db_pool *db;
  uv_timer_t health_timer;
  int health_in_flight;
  /* Health as of the last check, answered by /healthz without a query. */
  int db_up;
  uint64_t db_checked_ms;
  char db_error[256];
  char health_body[512];
  size_t health_len;
  time_t started;
  char instance_id[33]; /* this process's row in broker_instance */
  char host[256];
  int registered;
  void (*on_stopped)(void *);
  void *stopped_data;
};

typedef struct {
  gdx_broker *b;
  char error[256];
} health_job;

/* The parts of the API, in the order their routes are matched; pki: the
 * part works with the platform PKI (rest_ctx.part). */
static const struct {
  const rest_part *part;
  int pki;
} parts[] = {
    {&sessions_part, 0}, {&units_part, 0},    {&accounts_part, 0}, {&audit_part, 0},
    {&catalog_part, 0},  {&requests_part, 0}, {&nodes_part, 1},    {&credentials_part, 1},
    {&ledger_part, 0},   {&reports_part, 0},
};

const rest_part *gdx_broker_part(size_t i) {
  return i < sizeof(parts) / sizeof(parts[0]) ? parts[i].part : NULL;
}

int gdx_broker_config_load(const char *file, gdx_broker_config *cfg, char *err,
                           size_t errlen) {
  memset(cfg, 0, sizeof(*cfg));
  int rc = gdx_config_load(file, gdx_broker_config_keys, gdx_broker_config_nkeys, cfg, err,
                           errlen);
  if (rc)
    return rc;
  if (cfg->tls_port >= 0 && (cfg->tls_cert == NULL || cfg->tls_key == NULL)) {
    snprintf(err, errlen, "%s: tls.cert and tls.key: required when tls.port is set", file);
    rc = GDX_ECONFIG;
  } else if (cfg->tls_port >= 0 && strcmp(cfg->tls_verify, "none") != 0 &&
             cfg->tls_client_ca == NULL) {
    snprintf(err, errlen, "%s: tls.client_ca: required when tls.verify is \"%s\"", file,
             cfg->tls_verify);
    rc = GDX_ECONFIG;
  }
  if (rc)
    gdx_broker_config_free(cfg);
  return rc;
}

void gdx_broker_config_free(gdx_broker_config *cfg) {
  gdx_config_free(gdx_broker_config_keys, gdx_broker_config_nkeys, cfg);
}

/* ------------------------------------------------------------------ */
/* health                                                              */

static void render_health(gdx_broker *b) {
  uint64_t age = b->db_checked_ms ? uv_now(b->loop) - b->db_checked_ms : 0;
  gdx_buf out = {b->health_body, 0, sizeof(b->health_body), sizeof(b->health_body) - 1};
  gdx_buf_appendf(&out, "{\"status\":\"%s\",\"version\":\"%s\",\"db\":\"%s\"",
                  b->db_up ? "ok" : "degraded", GDX_VERSION, b->db_up ? "ok" : "down");
  if (!b->db_up && b->db_error[0]) {
    gdx_buf_appends(&out, ",\"db_error\":\"");
    gdx_buf_append_json_str(&out, b->db_error, strlen(b->db_error));
    gdx_buf_appends(&out, "\"");
  }
  gdx_buf_appendf(&out, ",\"db_checked_ms_ago\":%llu}\n", (unsigned long long)age);
  b->health_len = out.len;
}

/* The health check is a real write: it registers this broker (first time)
 * or refreshes its last_seen, so a database that accepts connections but not
 * writes shows as down. */
static int health_work(gdx_db_conn *c, void *arg) {
  health_job *j = arg;
  gdx_broker *b = j->b;
  int rc;
  if (!b->registered) {
    gdx_db_param p[] = {GDX_DB_P_STR(b->instance_id), GDX_DB_P_STR(GDX_VERSION),
                        GDX_DB_P_STR(b->host)};
    rc = gdx_db_exec(c,
                     "INSERT INTO broker_instance (id, started_at, last_seen, version, host) "
                     "VALUES (?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), ?, ?)",
                     p, 3, NULL, NULL);
  } else {
    gdx_db_param p[] = {GDX_DB_P_STR(b->instance_id)};
    rc = gdx_db_exec(c, "UPDATE broker_instance SET last_seen = UTC_TIMESTAMP(6) WHERE id = ?",
                     p, 1, NULL, NULL);
  }
  if (rc)
    snprintf(j->error, sizeof(j->error), "%s", gdx_db_error(c));
  return rc;
}

static void health_done(int status, void *arg) {
  health_job *j = arg;
  gdx_broker *b = j->b;
  b->health_in_flight = 0;
  if (status == GDX_OK && !b->registered) {
    b->registered = 1;
    gdx_log_info("broker", "registered as broker instance %s", b->instance_id);
  }
  int was_up = b->db_up;
  b->db_up = status == GDX_OK;
  b->db_checked_ms = uv_now(b->loop);
  snprintf(b->db_error, sizeof(b->db_error), "%s",
           status == GDX_OK ? "" : (j->error[0] ? j->error : gdx_strerror(status)));
  if (was_up != b->db_up)
    gdx_log(b->db_up ? GDX_LOG_INFO : GDX_LOG_WARN, "broker", NULL, "database is %s%s%s",
            b->db_up ? "reachable again" : "unreachable", b->db_up ? "" : ": ", b->db_error);
  render_health(b);
  free(j);
}

static void on_health_timer(uv_timer_t *t) {
  gdx_broker *b = t->data;
  if (b->health_in_flight)
    return;
  health_job *j = calloc(1, sizeof(*j));
  if (j == NULL)
    return;
  j->b = b;
  if (gdx_db_submit(b->db, health_work, health_done, j) != GDX_OK) {
    free(j); /* queue full: the database is busy, not down; try next tick */
    return;
  }
  b->health_in_flight = 1;
}

static void handle_healthz(gdx_http_req *req, void *data) {
  gdx_broker *b = data;
  gdx_http_add_header(req, "Cache-Control", "no-store");
  gdx_http_respond(req, b->db_up ? 200 : 503, "application/json", b->health_body,
                   b->health_len);
}

static void handle_metrics(gdx_http_req *req, void *data) {
  gdx_broker *b = data;
  gdx_buf out;
  gdx_buf_init(&out, 1 << 20);
  gdx_db_stats s;
  gdx_db_pool_stats(b->db, &s);
  gdx_metrics_header(&out, "gdx_build_info", "gauge", "Build information.");
  gdx_buf_appendf(&out, "gdx_build_info{component=\"broker\",version=\"%s\"} 1\n", GDX_VERSION);
  gdx_metrics_header(&out, "gdx_process_start_time_seconds", "gauge",
                     "Start time of the process since the Unix epoch.");
  gdx_buf_appendf(&out, "gdx_process_start_time_seconds %lld\n", (long long)b->started);
  gdx_http_server_metrics(b->http, &out);
  if (b->exchange)
    exchange_metrics(b->exchange, &out);
  gdx_metrics_header(&out, "gdx_db_up", "gauge", "1 when the last database check succeeded.");
  gdx_buf_appendf(&out, "gdx_db_up %d\n", b->db_up);
  gdx_metrics_header(&out, "gdx_db_pool_size", "gauge", "Database worker threads.");
  gdx_buf_appendf(&out, "gdx_db_pool_size %u\n", s.pool_size);
  gdx_metrics_header(&out, "gdx_db_connected_workers", "gauge",
                     "Workers holding a live database connection.");
  gdx_buf_appendf(&out, "gdx_db_connected_workers %u\n", s.connected_workers);
  gdx_metrics_header(&out, "gdx_db_queue_depth", "gauge", "Queries waiting for a worker.");
  gdx_buf_appendf(&out, "gdx_db_queue_depth %u\n", s.queued);
  gdx_metrics_header(&out, "gdx_db_busy_workers", "gauge", "Workers running a query.");
  gdx_buf_appendf(&out, "gdx_db_busy_workers %u\n", s.busy_workers);
  gdx_metrics_header(&out, "gdx_db_jobs_total", "counter", "Database jobs by result.");
  gdx_buf_appendf(&out, "gdx_db_jobs_total{result=\"ok\"} %llu\n",
                  (unsigned long long)(s.jobs_total - s.jobs_failed));
  gdx_buf_appendf(&out, "gdx_db_jobs_total{result=\"failed\"} %llu\n",
                  (unsigned long long)s.jobs_failed);
  gdx_buf_appendf(&out, "gdx_db_jobs_total{result=\"rejected\"} %llu\n",
                  (unsigned long long)s.jobs_rejected);
  gdx_metrics_header(&out, "gdx_db_reconnects_total", "counter",
                     "Database connections re-established after a loss.");
  gdx_buf_appendf(&out, "gdx_db_reconnects_total %llu\n", (unsigned long long)s.reconnects);
  gdx_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
  gdx_buf_free(&out);
}

/* ------------------------------------------------------------------ */
/* start and stop                                                      */

static void limits_from_config(const gdx_broker_config *cfg, gdx_http_limits *l) {
  gdx_http_limits_default(l);
  l->max_header_bytes = (size_t)cfg->max_header_bytes;
  l->max_url_bytes = (size_t)cfg->max_url_bytes;
  l->max_body_bytes = (uint64_t)cfg->max_body_bytes;
  l->max_headers = (unsigned)cfg->max_headers;
  l->max_connections = (unsigned)cfg->max_connections;
  l->header_timeout_ms = (uint64_t)cfg->header_timeout_ms;
  l->body_timeout_ms = (uint64_t)cfg->body_timeout_ms;
  l->keepalive_timeout_ms = (uint64_t)cfg->keepalive_timeout_ms;
  l->send_timeout_ms = (uint64_t)cfg->send_timeout_ms;
  l->shutdown_timeout_ms = (uint64_t)cfg->shutdown_timeout_ms;
  l->write_high_water = (size_t)cfg->write_high_water;
}

static gdx_tls_verify verify_mode(const char *s) {
  if (strcmp(s, "require") == 0)
    return GDX_TLS_VERIFY_REQUIRE;
  if (strcmp(s, "optional") == 0)
    return GDX_TLS_VERIFY_OPTIONAL;
  return GDX_TLS_VERIFY_NONE;
}

int gdx_broker_start(uv_loop_t *loop, const gdx_broker_config *cfg, gdx_broker **out,
                     char *err, size_t errlen) {
  char *password = NULL;
  if (cfg->db_password_file &&
      gdx_config_read_secret(cfg->db_password_file, &password, err, errlen) != GDX_OK)
    return GDX_ECONFIG;
  gdx_db_options dbo = {
      .host = cfg->db_host,
      .socket = cfg->db_socket,
      .port = (unsigned)cfg->db_port,
      .user = cfg->db_user,
      .password = password,
      .database = cfg->db_name,
      .pool_size = (unsigned)cfg->db_pool_size,
      .queue_max = (unsigned)cfg->db_queue_max,
      .connect_timeout_s = (unsigned)cfg->db_connect_timeout_s,
  };
  char migdir[4096];
  snprintf(migdir, sizeof(migdir), "%s/sql/broker", cfg->schema_dir ? cfg->schema_dir : GDX_SCHEMA_DIR);
  int applied = 0;
  int rc = gdx_migrate(&dbo, "broker", migdir, &applied, err, errlen);
  if (rc) {
    if (password)
      explicit_bzero(password, strlen(password));
    free(password);
    return rc;
  }
  gdx_log_info("broker", "database schema is current (%d migration%s applied now)", applied,
               applied == 1 ? "" : "s");

  gdx_broker *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return GDX_ENOMEM;
  b->loop = loop;
  b->started = time(NULL);
  b->db_up = 1; /* migrations just succeeded */
  b->db_checked_ms = uv_now(loop);
  unsigned char rnd[16];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1)
    memset(rnd, 0, sizeof(rnd));
  gdx_hex(rnd, sizeof(rnd), b->instance_id);
  if (gethostname(b->host, sizeof(b->host) - 1) != 0)
    snprintf(b->host, sizeof(b->host), "unknown");
  render_health(b);
  rc = gdx_db_pool_start(loop, &dbo, &b->db);
  if (password)
    explicit_bzero(password, strlen(password));
  free(password);
  if (rc) {
    snprintf(err, errlen, "cannot start the database pool: %s", gdx_strerror(rc));
    free(b);
    return rc;
  }

  gdx_router_new(&b->router);
  gdx_router_add(b->router, "GET", "/healthz", handle_healthz, b);
  gdx_router_add(b->router, "GET", "/metrics", handle_metrics, b);
  b->nodes_listener = -1;
  /* the exchange's routes first: the node listener's table reads
   * (/node/v1/tables/...) are its, the rest of /node/v1/ the REST core's
   * (the router takes the first match) */
  rc = platform_pki_boot(loop, b->db, cfg, b->instance_id, &b->pki, err, errlen);
  if (!rc)
    rc = exchange_new(loop, cfg, &b->pki, b->db, b->router, &b->exchange, err, errlen);
  if (!rc)
    rc = rest_new(cfg, b->db, b->router, &b->rest);
  for (size_t i = 0; !rc && i < sizeof(parts) / sizeof(parts[0]); i++)
    rc = rest_add_part(b->rest, parts[i].part, parts[i].pki ? &b->pki : NULL, err, errlen);
  if (rc) {
    *out = b;
    return rc;
  }
  rest_on_invalidate(b->rest, exchange_poke, b->exchange);

  gdx_http_server_options so = {
      .loop = loop,
      .on_request = gdx_router_dispatch,
      .data = b->router,
      .access_log = cfg->access_log,
      .name = "broker",
  };
  limits_from_config(cfg, &so.limits);
  rc = gdx_http_server_new(&so, &b->http);
  if (!rc)
    rc = gdx_http_listen(b->http, cfg->listen_host, (int)cfg->listen_port, NULL, err, errlen);
  if (!rc && cfg->tls_port >= 0) {
    gdx_tls_options tls = {cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca,
                           verify_mode(cfg->tls_verify)};
    rc = gdx_http_listen(b->http, cfg->tls_host, (int)cfg->tls_port, &tls, err, errlen);
  }
  if (!rc && cfg->nodes_port >= 0) {
    /* nodes: mutual TLS against the platform CA */
    gdx_tls_options tls = {b->pki.cert_file, b->pki.key_file, b->pki.ca_file,
                           GDX_TLS_VERIFY_REQUIRE};
    b->nodes_listener = cfg->tls_port >= 0 ? 2 : 1;
    rc = gdx_http_listen(b->http, cfg->nodes_host, (int)cfg->nodes_port, &tls, err, errlen);
    if (!rc && b->pki.nodes_url[0] == '\0')
      snprintf(b->pki.nodes_url, sizeof(b->pki.nodes_url), "https://%s:%d",
               strcmp(cfg->nodes_host, "0.0.0.0") == 0 ? "127.0.0.1" : cfg->nodes_host,
               gdx_http_server_port(b->http, b->nodes_listener));
  }
  uv_timer_init(loop, &b->health_timer);
  b->health_timer.data = b;
  /* The first check (which registers the instance) runs at once. */
  uv_timer_start(&b->health_timer, on_health_timer, 0, (uint64_t)cfg->health_interval_ms);
  *out = b;
  return rc;
}

int gdx_broker_port(gdx_broker *b) { return gdx_http_server_port(b->http, 0); }

int gdx_broker_nodes_port(gdx_broker *b) {
  return b->nodes_listener < 0 ? -1 : gdx_http_server_port(b->http, b->nodes_listener);
}

static void on_health_timer_closed(uv_handle_t *h) {
  gdx_broker *b = h->data;
  void (*cb)(void *) = b->on_stopped;
  void *data = b->stopped_data;
  gdx_router_free(b->router);
  rest_free(b->rest);
  platform_pki_free(&b->pki);
  free(b);
  if (cb)
    cb(data);
}

static void on_exchange_stopped(void *data) {
  gdx_broker *b = data;
  b->exchange = NULL;
  gdx_db_pool_stop(b->db); /* finishes queued jobs, e.g. a health check */
  uv_close((uv_handle_t *)&b->health_timer, on_health_timer_closed);
}

static void on_http_stopped(gdx_http_server *srv, void *data) {
  gdx_broker *b = data;
  b->http = NULL;
  if (b->exchange) {
    exchange_stop(b->exchange, on_exchange_stopped, b); /* writes the queued call records */
    return;
  }
  on_exchange_stopped(b);
}

void gdx_broker_stop(gdx_broker *b, void (*on_stopped)(void *), void *data) {
  b->on_stopped = on_stopped;
  b->stopped_data = data;
  if (b->http == NULL) { /* start-up failed before the server existed */
    if (b->exchange) {
      exchange *x = b->exchange;
      b->exchange = NULL;
      exchange_stop(x, NULL, NULL);
      uv_run(b->loop, UV_RUN_DEFAULT);
    }
    gdx_db_pool_stop(b->db);
    uv_timer_init(b->loop, &b->health_timer);
    b->health_timer.data = b;
    uv_close((uv_handle_t *)&b->health_timer, on_health_timer_closed);
    return;
  }
  uv_timer_stop(&b->health_timer);
  gdx_http_server_shutdown(b->http, on_http_stopped, b);
}

/* ------------------------------------------------------------------ */
/* first operations admin                                              */

typedef struct {
  const gdx_broker_config *cfg;
  const char *user, *unit_code, *unit_name, *password;
  char err[512];
  int done;
} init_job;

static int init_work(gdx_db_conn *c, void *arg) {
  init_job *j = arg;
  char enc[256];
  int rc = gdx_db_begin(c);
  gdx_db_param pu[] = {GDX_DB_P_STR(j->unit_code), GDX_DB_P_STR(j->unit_name)};
  if (!rc)
    rc = gdx_db_exec(c,
                     "INSERT IGNORE INTO units (code, name, roles, status, created_at, updated_at) "
                     "VALUES (?, ?, 'operations', 'active', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                     pu, 2, NULL, NULL);
  if (!rc)
    rc = password_hash(j->cfg, j->password, enc, sizeof(enc));
  gdx_db_param pa[] = {GDX_DB_P_STR(j->user), GDX_DB_P_STR(enc), GDX_DB_P_STR(j->unit_code)};
  uint64_t n = 0;
  if (!rc)
    rc = gdx_db_exec(c,
                     "INSERT IGNORE INTO accounts (unit_id, username, display_name, role, "
                     "password_hash, password_changed_at, must_change_password, created_at) "
                     "SELECT id, ?, 'operations admin', 'ops_admin', ?, UTC_TIMESTAMP(6), 1, "
                     "UTC_TIMESTAMP(6) FROM units WHERE code = ? AND FIND_IN_SET('operations', roles)",
                     pa, 3, &n, NULL);
  if (!rc && n == 0) {
    snprintf(j->err, sizeof(j->err),
             "user %s exists already, or unit %s exists without the operations role", j->user,
             j->unit_code);
    gdx_db_rollback(c);
    return GDX_ECONFLICT;
  }
  if (!rc) {
    char object[128];
    snprintf(object, sizeof(object), "account:%s", j->user);
    rc = audit_append(c, "gdx-broker --init-admin", j->unit_code, "account.create", object,
                      "initial operations admin", "success", "local", "-",
                      "{\"role\":\"ops_admin\"}");
  }
  if (rc) {
    snprintf(j->err, sizeof(j->err), "%s", gdx_db_error(c));
    gdx_db_rollback(c);
    return rc;
  }
  return gdx_db_commit(c);
}

static void init_done(int status, void *arg) { ((init_job *)arg)->done = 1; }

int gdx_broker_init_admin(const gdx_broker_config *cfg, const char *user, const char *unit_code,
                          const char *unit_name, const char *password, char *err, size_t errlen) {
  const char *why, *code;
  if (gdx_uscc_check(unit_code, &why)) {
    snprintf(err, errlen, "--unit-code %s: %s", unit_code, why);
    return GDX_EINVAL;
  }
  if (password_policy_check(password, user, &code, &why)) {
    snprintf(err, errlen, "initial password: %s", why);
    return GDX_EINVAL;
  }
  char *dbpw = NULL;
  if (cfg->db_password_file &&
      gdx_config_read_secret(cfg->db_password_file, &dbpw, err, errlen) != GDX_OK)
    return GDX_ECONFIG;
  gdx_db_options dbo = {.host = cfg->db_host, .socket = cfg->db_socket,
                        .port = (unsigned)cfg->db_port, .user = cfg->db_user,
                        .password = dbpw, .database = cfg->db_name, .pool_size = 1,
                        .queue_max = 1, .connect_timeout_s = (unsigned)cfg->db_connect_timeout_s};
  char migdir[4096];
  snprintf(migdir, sizeof(migdir), "%s/sql/broker", cfg->schema_dir ? cfg->schema_dir : GDX_SCHEMA_DIR);
  int rc = gdx_migrate(&dbo, "broker", migdir, NULL, err, errlen);
  uv_loop_t loop;
  gdx_db_pool *pool = NULL;
  init_job j = {cfg, user, unit_code, unit_name, password, "", 0};
  if (!rc) {
    uv_loop_init(&loop);
    rc = gdx_db_pool_start(&loop, &dbo, &pool);
    if (!rc)
      rc = gdx_db_submit(pool, init_work, init_done, &j);
    while (!rc && !j.done)
      uv_run(&loop, UV_RUN_ONCE);
    if (pool)
      gdx_db_pool_stop(pool);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (!rc && j.err[0]) {
      snprintf(err, errlen, "%s", j.err);
      rc = GDX_ECONFLICT;
    }
  }
  if (dbpw)
    explicit_bzero(dbpw, strlen(dbpw));
  free(dbpw);
  return rc;
}
