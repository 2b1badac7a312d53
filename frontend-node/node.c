#include "node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "frontdb.h"
#include "log.h"
#include "metrics.h"
#include "node_int.h"
#include "pki.h"
#include "relay.h"
#include "state_dir.h"

#define BROKER_UNIT "gdx-broker"

/* ------------------------------------------------------------------ */
/* the listener the broker calls                                        */

/* Only the broker is served: a peer with a platform certificate of a node
 * (another unit's, say) is refused. */
static int peer_is_broker(gdx_http_req *req) {
  int tag = gdx_http_req_peer_tag(req); /* 1 broker, 2 not: decided once per connection */
  if (tag == 0) {
    X509 *peer = gdx_http_req_peer_cert(req);
    char unit[32], node[80];
    tag = peer && gdx_pki_identity(peer, unit, sizeof(unit), node, sizeof(node)) == GDX_OK &&
                  strcmp(unit, BROKER_UNIT) == 0
              ? 1
              : 2;
    gdx_http_req_set_peer_tag(req, tag);
  }
  return tag == 1;
}

static void handle_resource(gdx_http_req *req, void *data) {
  gdx_node *n = data;
  if (!peer_is_broker(req)) {
    n->refused_peers++;
    gdx_relay_error(req, 403, "node", "forbidden", "this node serves the broker only");
    return;
  }
  const char *p = gdx_http_req_path(req) + 3; /* after "/r/" */
  const char *slash = strchr(p, '/');
  size_t len = slash ? (size_t)(slash - p) : strlen(p);
  for (int i = 0; i < n->nres; i++)
    if (strlen(n->res[i]->name) == len && strncmp(n->res[i]->name, p, len) == 0) {
      n->res[i]->ops->serve(n->res[i], req, slash ? slash + 1 : "");
      return;
    }
  gdx_relay_error(req, 404, "node", "unknown_resource", "this node has no resource %.*s",
                  (int)(len > 64 ? 64 : len), p);
}

/* ------------------------------------------------------------------ */
/* the admin listener                                                   */

static void handle_healthz(gdx_http_req *req, void *data) {
  gdx_node *n = data;
  char body[256];
  int len = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"version\":\"%s\",\"broker\":\"%s\"}\n",
                     n->hb.broker_ok ? "ok" : "degraded", GDX_VERSION,
                     n->hb.broker_ok ? "reachable" : "unreachable");
  gdx_http_respond(req, 200, "application/json", body, (size_t)len);
}

static void handle_metrics(gdx_http_req *req, void *data) {
  gdx_node *n = data;
  gdx_buf out;
  gdx_buf_init(&out, 1 << 20);
  gdx_metrics_header(&out, "gdx_build_info", "gauge", "Build information.");
  gdx_buf_appendf(&out, "gdx_build_info{component=\"node\",version=\"%s\"} 1\n", GDX_VERSION);
  gdx_http_server_metrics(n->http, &out);
  gdx_metrics_header(&out, "gdx_node_heartbeats_total", "counter", "Heartbeats by result.");
  gdx_buf_appendf(&out, "gdx_node_heartbeats_total{result=\"ok\"} %llu\n",
                  (unsigned long long)n->hb.ok);
  gdx_buf_appendf(&out, "gdx_node_heartbeats_total{result=\"failed\"} %llu\n",
                  (unsigned long long)n->hb.failed);
  gdx_metrics_header(&out, "gdx_node_broker_up", "gauge", "1 when the last heartbeat succeeded.");
  gdx_buf_appendf(&out, "gdx_node_broker_up %d\n", n->hb.broker_ok);
  gdx_metrics_header(&out, "gdx_node_cert_expiry_seconds", "gauge",
                     "Unix time the node certificate expires.");
  gdx_buf_appendf(&out, "gdx_node_cert_expiry_seconds %lld\n", (long long)n->renew.not_after);
  gdx_metrics_header(&out, "gdx_node_refused_peers_total", "counter",
                     "Requests from peers that are not the broker.");
  gdx_buf_appendf(&out, "gdx_node_refused_peers_total %llu\n",
                  (unsigned long long)n->refused_peers);
  gdx_metrics_header(&out, "gdx_node_resource_up", "gauge", "Adapter health (1 up, 0 down).");
  for (int i = 0; i < n->nres; i++)
    if (strcmp(n->res[i]->health, "unknown") != 0)
      gdx_buf_appendf(&out, "gdx_node_resource_up{resource=\"%s\",kind=\"%s\"} %d\n",
                      n->res[i]->name, n->res[i]->ops->kind,
                      strcmp(n->res[i]->health, "up") == 0);
  for (int i = 0; i < n->nres; i++)
    if (n->res[i]->ops->metrics)
      n->res[i]->ops->metrics(n->res[i], &out);
  if (n->nsubs > 0) {
    gdx_buf_appends(&out, "# HELP gdx_node_subscription_position Change-log position applied "
                          "(with the rows, in one transaction).\n"
                          "# TYPE gdx_node_subscription_position gauge\n");
    for (int i = 0; i < n->nsubs; i++)
      gdx_table_sub_metrics(n->subs[i], &out);
  }
  if (n->nfsubs > 0) {
    gdx_metrics_header(&out, "gdx_node_files_delivered_total", "counter",
                       "Files of folder subscriptions delivered (verified, scanned, renamed into "
                       "place), quarantined and failed; bytes received and resumed.");
    for (int i = 0; i < n->nfsubs; i++)
      gdx_folder_sub_metrics(n->fsubs[i], &out);
  }
  gdx_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
  gdx_buf_free(&out);
}

/* ------------------------------------------------------------------ */
/* start                                                               */

/* The broker's node listener: configured, or as enrollment learned it. */
static int broker_url(gdx_node *n, char *out, size_t outlen, char *err, size_t errlen) {
  if (n->cfg->broker_nodes_url) {
    snprintf(out, outlen, "%s", n->cfg->broker_nodes_url);
    return GDX_OK;
  }
  char path[1100];
  gdx__node_state_path(n->cfg, "broker_url", path, sizeof(path));
  char *u = gdx__node_file_read(path);
  int rc = u && *u ? GDX_OK : GDX_ECONFIG;
  if (rc)
    snprintf(err, errlen, "broker.nodes_url: not set and not learned at enrollment");
  else
    snprintf(out, outlen, "%s", u);
  free(u);
  return rc;
}

static int start_scanner(gdx_node *n, int nfolders, char *err, size_t errlen) {
  const gdx_node_config *cfg = n->cfg;
  if (nfolders > 0 && cfg->scan_enabled) {
    unsigned sigs = 0;
    char why[300];
    if (gdx_scanner_new(cfg->scan_signatures, &n->scanner, &sigs, why, sizeof(why)) != GDX_OK) {
      snprintf(err, errlen, "scan.signatures: %s", why);
      return GDX_ECONFIG;
    }
    gdx_log_info("node", "virus scanner ready: %u signatures from %s", sigs,
                 cfg->scan_signatures);
  } else if (nfolders > 0) {
    gdx_log_warn("node", "scan.enabled = false: received files are delivered WITHOUT a virus "
                         "scan");
  }
  return GDX_OK;
}

/* The mutual-TLS listener for the broker, and the admin one if wanted. */
static int start_listeners(gdx_node *n, char *err, size_t errlen) {
  const gdx_node_config *cfg = n->cfg;
  gdx_router_new(&n->router);
  gdx_router_add(n->router, "*", "/r/*", handle_resource, n);
  gdx_http_server_options so = {.loop = n->loop, .on_request = gdx_router_dispatch,
                                .data = n->router, .access_log = cfg->access_log, .name = "node"};
  gdx_http_limits_default(&so.limits);
  so.limits.max_body_bytes = (uint64_t)cfg->max_body_bytes;
  so.limits.max_connections = (unsigned)cfg->max_connections;
  so.limits.keepalive_timeout_ms = (uint64_t)cfg->keepalive_timeout_ms;
  so.limits.body_timeout_ms = (uint64_t)cfg->body_timeout_ms;
  int rc = gdx_http_server_new(&so, &n->http);
  gdx_tls_options tls = {n->cert_file, n->key_file, n->ca_file, GDX_TLS_VERIFY_REQUIRE};
  if (!rc)
    rc = gdx_http_listen(n->http, cfg->listen_host, (int)cfg->listen_port, &tls, err, errlen);
  if (rc)
    return rc;
  if (cfg->advertise_url)
    snprintf(n->advertise, sizeof(n->advertise), "%s", cfg->advertise_url);
  else
    snprintf(n->advertise, sizeof(n->advertise), "https://%s:%d", cfg->listen_host,
             gdx_http_server_port(n->http, 0));
  if (cfg->admin_port < 0)
    return GDX_OK;
  gdx_router_new(&n->admin_router);
  gdx_router_add(n->admin_router, "GET", "/healthz", handle_healthz, n);
  gdx_router_add(n->admin_router, "GET", "/metrics", handle_metrics, n);
  gdx_http_server_options ao = {.loop = n->loop, .on_request = gdx_router_dispatch,
                                .data = n->admin_router, .name = "node-admin"};
  gdx_http_limits_default(&ao.limits);
  rc = gdx_http_server_new(&ao, &n->admin);
  if (!rc)
    rc = gdx_http_listen(n->admin, cfg->admin_host, (int)cfg->admin_port, NULL, err, errlen);
  return rc;
}

static int start_subscriptions(gdx_node *n, const gdx_table_sub_opts *tables, int ntables,
                               const gdx_folder_sub_opts *folders, int nfolders, char *err,
                               size_t errlen) {
  n->table_env = (gdx_table_sub_env){.loop = n->loop, .broker = n->broker,
                                     .frontdb = n->frontdb};
  for (int i = 0; i < ntables; i++) {
    if (gdx_table_sub_start(&n->table_env, &tables[i], &n->subs[n->nsubs]) != GDX_OK)
      return GDX_ENOMEM;
    n->nsubs++;
    gdx_log_info("node", "subscription %lld into table %s", tables[i].authorization,
                 tables[i].table);
  }
  n->folder_env = (gdx_folder_sub_env){.loop = n->loop, .broker = n->broker,
                                       .scanner = n->scanner};
  for (int i = 0; i < nfolders; i++) {
    int rc = gdx_folder_sub_start(&n->folder_env, &folders[i], &n->fsubs[n->nfsubs], err,
                                  errlen);
    if (rc != GDX_OK)
      return rc;
    n->nfsubs++;
    gdx_log_info("node", "subscription %lld into folder %s", folders[i].authorization,
                 folders[i].folder);
  }
  return GDX_OK;
}

/* The clients, the front-end database and the resources: what the
 * subscriptions and the listeners need. */
static int start_parts(gdx_node *n, const char *config_file, char *err, size_t errlen) {
  const gdx_node_config *cfg = n->cfg;
  char url[512];
  int rc = broker_url(n, url, sizeof(url), err, errlen);
  if (!rc)
    rc = gdx_httpc_new(n->loop, &n->httpc);
  if (!rc)
    rc = gdx_broker_client_new(n->loop, url, n->ca_file, n->cert_file, n->key_file, &n->broker);
  if (rc)
    return rc;
  n->env.loop = n->loop;
  n->env.httpc = n->httpc;
  n->env.state_dir = cfg->state_dir;
  if (cfg->fdb_name) {
    gdx_node_config_migrations_dir(cfg, n->migrations_dir, sizeof(n->migrations_dir));
    rc = gdx__node_frontdb_start(n->loop, cfg, n->migrations_dir, &n->frontdb, err, errlen);
    if (rc)
      return rc;
    n->env.frontdb = n->frontdb;
  }
  return gdx_node_config_resources(config_file, &n->env, n->res, &n->nres, err, errlen);
}

int gdx_node_start(uv_loop_t *loop, const gdx_node_config *cfg, const char *config_file,
                   gdx_node **out, char *err, size_t errlen) {
  gdx_node *n = calloc(1, sizeof(*n));
  if (n == NULL)
    return GDX_ENOMEM;
  *out = n;
  n->loop = loop;
  n->cfg = cfg;
  gdx__node_state_path(cfg, "node.key", n->key_file, sizeof(n->key_file));
  gdx__node_state_path(cfg, "node.crt", n->cert_file, sizeof(n->cert_file));
  gdx__node_state_path(cfg, "ca.crt", n->ca_file, sizeof(n->ca_file));
  if (access(n->cert_file, R_OK) != 0 || access(n->key_file, R_OK) != 0) {
    snprintf(err, errlen, "the node is not enrolled (no %s): run gdx-node --config %s --enroll "
                          "TOKEN with the token from the unit admin", n->cert_file, config_file);
    return GDX_ECONFIG;
  }
  gdx__node_renew_load_expiry(n);
  gdx_table_sub_opts *tables = calloc(GDX_NODE_MAX_RESOURCES, sizeof(*tables));
  gdx_folder_sub_opts *folders = calloc(GDX_NODE_MAX_RESOURCES, sizeof(*folders));
  int ntables = 0, nfolders = 0;
  int rc = tables && folders ? start_parts(n, config_file, err, errlen) : GDX_ENOMEM;
  if (!rc)
    rc = gdx_node_config_subscriptions(cfg, config_file, tables, &ntables, folders, &nfolders,
                                       err, errlen);
  if (!rc)
    rc = start_scanner(n, nfolders, err, errlen);
  if (!rc)
    rc = start_listeners(n, err, errlen);
  if (!rc) {
    gdx_log_info("node", "node %s/%s serving %d resource%s at %s; broker at %s", cfg->unit,
                 cfg->id, n->nres, n->nres == 1 ? "" : "s", n->advertise,
                 gdx_broker_client_url(n->broker));
    gdx__node_heartbeat_start(n);
    rc = start_subscriptions(n, tables, ntables, folders, nfolders, err, errlen);
  }
  free(tables);
  free(folders);
  return rc;
}

/* ------------------------------------------------------------------ */
/* stop                                                                */

static void stop_step(gdx_node *n) {
  if (--n->pending_stops > 0)
    return;
  if (n->broker) /* the heartbeat never started */
    gdx_broker_client_close(n->broker);
  if (n->httpc) /* the listener never started */
    gdx_httpc_close(n->httpc);
  if (n->frontdb) /* waits for the adapters' jobs and runs their callbacks */
    gdx_db_pool_stop(n->frontdb);
  gdx_node_config_resources_close(n->res, n->nres);
  if (n->router)
    gdx_router_free(n->router);
  if (n->admin_router)
    gdx_router_free(n->admin_router);
  gdx__node_heartbeat_free(n);
  gdx__node_renew_free(n);
  gdx_scanner_free(n->scanner);
  void (*cb)(void *) = n->on_stopped;
  void *data = n->stopped_data;
  free(n);
  if (cb)
    cb(data);
}

static void on_server_stopped(gdx_http_server *s, void *data) {
  gdx_node *n = data;
  if (s == n->http) {
    n->http = NULL;
    /* relays are done: the upstreams' client can go */
    gdx_httpc_close(n->httpc);
    n->httpc = NULL;
  }
  stop_step(n);
}

static void on_heartbeat_closed(uv_handle_t *h) {
  gdx_node *n = h->data;
  /* the subscriptions stopped first: what they have in flight ends now */
  gdx_broker_client_close(n->broker);
  n->broker = NULL;
  stop_step(n);
}

static void on_sub_stopped(void *data) { stop_step(data); }

void gdx_node_stop(gdx_node *n, void (*on_stopped)(void *), void *data) {
  n->stopping = 1;
  n->on_stopped = on_stopped;
  n->stopped_data = data;
  n->pending_stops = 1 + n->nsubs + n->nfsubs; /* the heartbeat, the subscriptions */
  for (int i = 0; i < n->nsubs; i++)
    gdx_table_sub_stop(n->subs[i], on_sub_stopped, n); /* before the broker client closes */
  for (int i = 0; i < n->nfsubs; i++)
    gdx_folder_sub_stop(n->fsubs[i], on_sub_stopped, n);
  if (n->http)
    n->pending_stops++;
  if (n->admin)
    n->pending_stops++;
  if (!gdx__node_heartbeat_stop(n, on_heartbeat_closed))
    n->pending_stops--;
  if (n->http)
    gdx_http_server_shutdown(n->http, on_server_stopped, n);
  if (n->admin)
    gdx_http_server_shutdown(n->admin, on_server_stopped, n);
  if (n->pending_stops == 0) {
    n->pending_stops = 1;
    stop_step(n);
  }
}
