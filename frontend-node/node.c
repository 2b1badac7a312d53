#include "node.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adapter.h"
#include "folder_sub.h"
#include "scan.h"
#include "table_sub.h"
#include "buf.h"
#include "error.h"
#include "http.h"
#include "httpc.h"
#include "log.h"
#include "metrics.h"
#include "pki.h"
#include "relay.h"
#include "router.h"

#ifndef GDX_VERSION
#define GDX_VERSION "0.0.0"
#endif

#define C(f) offsetof(gdx_node_config, f)
#define MAX_RESOURCES 256
#define BROKER_UNIT "gdx-broker"

static const char *const level_words[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_words[] = {"human", "json", NULL};

const gdx_cfg_key gdx_node_config_keys[] = {
    {"node.unit", GDX_CFG_STR, C(unit), 1, 0, 0, 0, NULL, NULL,
     "the unit's code (统一社会信用代码) the node belongs to"},
    {"node.id", GDX_CFG_STR, C(id), 1, 0, 0, 0, NULL, NULL,
     "the node id registered by the unit admin"},
    {"node.state_dir", GDX_CFG_STR, C(state_dir), 0, 0, 0, 0, "node-state", NULL,
     "folder for the node's key (0600), certificate and the platform CA"},
    {"broker.url", GDX_CFG_STR, C(broker_url), 0, 0, 0, 0, NULL, NULL,
     "the broker's API URL, for enrollment (http(s)://host:port)"},
    {"broker.nodes_url", GDX_CFG_STR, C(broker_nodes_url), 0, 0, 0, 0, NULL, NULL,
     "the broker's node listener (default: what enrollment returned)"},
    {"listen.host", GDX_CFG_STR, C(listen_host), 0, 0, 0, 0, "127.0.0.1", NULL,
     "address of the listener the broker calls (mutual TLS)"},
    {"listen.port", GDX_CFG_INT, C(listen_port), 0, 0, 65535, 7600, NULL, NULL,
     "its port (0: any free port)"},
    {"listen.advertise_url", GDX_CFG_STR, C(advertise_url), 0, 0, 0, 0, NULL, NULL,
     "the URL the broker should use (default https://<listen.host>:<port>)"},
    {"admin.host", GDX_CFG_STR, C(admin_host), 0, 0, 0, 0, "127.0.0.1", NULL,
     "address of the plain listener for /healthz and /metrics"},
    {"admin.port", GDX_CFG_INT, C(admin_port), 0, -1, 65535, -1, NULL, NULL,
     "its port (-1: none, 0: any free port)"},
    {"heartbeat_interval_s", GDX_CFG_INT, C(heartbeat_interval_s), 0, 1, 3600, 10, NULL, NULL,
     "how often the node reports to the broker"},
    {"http.max_body_bytes", GDX_CFG_INT, C(max_body_bytes), 0, 1024, 1LL << 40, 1LL << 32, NULL,
     NULL, "largest request body relayed to an upstream (streamed, not held)"},
    {"http.max_connections", GDX_CFG_INT, C(max_connections), 0, 1, 1000000, 10000, NULL, NULL,
     "open connections"},
    {"http.keepalive_timeout_ms", GDX_CFG_INT, C(keepalive_timeout_ms), 0, 10, 3600000, 120000,
     NULL, NULL, "idle connections from the broker are closed after this"},
    {"http.body_timeout_ms", GDX_CFG_INT, C(body_timeout_ms), 0, 10, 3600000, 60000, NULL, NULL,
     "silence allowed while a request body arrives"},
    {"http.access_log", GDX_CFG_BOOL, C(access_log), 0, 0, 0, 0, NULL, NULL,
     "one log line per request"},
    {"frontdb.socket", GDX_CFG_STR, C(fdb_socket), 0, 0, 0, 0, NULL, NULL,
     "unix socket of the unit's front-end MariaDB (前置库); preferred over host"},
    {"frontdb.host", GDX_CFG_STR, C(fdb_host), 0, 0, 0, 0, "127.0.0.1", NULL,
     "its host"},
    {"frontdb.port", GDX_CFG_INT, C(fdb_port), 0, 0, 65535, 3306, NULL, NULL, "its port"},
    {"frontdb.user", GDX_CFG_STR, C(fdb_user), 0, 0, 0, 0, NULL, NULL,
     "MariaDB user of the node (needs SELECT on the tables, TRIGGER and CREATE)"},
    {"frontdb.password_file", GDX_CFG_STR, C(fdb_password_file), 0, 0, 0, 0, NULL, NULL,
     "file holding its password (mode 0600); no password when unset"},
    {"frontdb.name", GDX_CFG_STR, C(fdb_name), 0, 0, 0, 0, NULL, NULL,
     "the front-end database; required when a resource is a table"},
    {"frontdb.pool_size", GDX_CFG_INT, C(fdb_pool_size), 0, 1, 64, 2, NULL, NULL,
     "connections to it"},
    {"subscriptions", GDX_CFG_LIST, 0, 0, 0, 0, 0, NULL, NULL,
     "what this unit subscribes to: ( { authorization = N; table = \"…\"; } or { authorization "
     "= N; folder = \"/…\"; }, … ) - see docs/config.md, section gdx-node"},
    {"scan.signatures", GDX_CFG_STR, C(scan_signatures), 0, 0, 0, 0, NULL, NULL,
     "folder of ClamAV signature files (main.cvd, daily.cvd, *.hdb …) that every received "
     "file is scanned with before it becomes visible; required with a folder subscription"},
    {"scan.enabled", GDX_CFG_BOOL, C(scan_enabled), 0, 0, 0, 1, NULL, NULL,
     "false delivers received files unscanned (not for production)"},
    {"resources", GDX_CFG_LIST, 0, 0, 0, 0, 0, NULL, NULL,
     "the node's resources: ( { name = \"…\"; kind = \"api\"; … }, … ) - see docs/config.md, section gdx-node"},
    {"log.level", GDX_CFG_STR, C(log_level), 0, 0, 0, 0, "info", level_words,
     "debug, info, warn or error"},
    {"log.format", GDX_CFG_STR, C(log_format), 0, 0, 0, 0, "human", format_words,
     "human or json"},
    {"log.file", GDX_CFG_STR, C(log_file), 0, 0, 0, 0, "-", NULL, "log file, \"-\" for stderr"},
};
const size_t gdx_node_config_nkeys = sizeof(gdx_node_config_keys) / sizeof(gdx_node_config_keys[0]);

int gdx_node_config_load(const char *file, gdx_node_config *cfg, char *err, size_t errlen) {
  memset(cfg, 0, sizeof(*cfg));
  return gdx_config_load(file, gdx_node_config_keys, gdx_node_config_nkeys, cfg, err, errlen);
}

void gdx_node_config_free(gdx_node_config *cfg) {
  gdx_config_free(gdx_node_config_keys, gdx_node_config_nkeys, cfg);
}

static void state_path(const gdx_node_config *cfg, const char *name, char *out, size_t n) {
  snprintf(out, n, "%s/%s", cfg->state_dir, name);
}

static int write_file(const char *path, const char *text, char *err, size_t errlen) {
  char tmp[1100];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return GDX_EIO;
  }
  return GDX_OK;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return NULL;
  gdx_buf b;
  gdx_buf_init(&b, 1 << 20);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    if (gdx_buf_append(&b, chunk, n) != GDX_OK)
      break;
  fclose(f);
  gdx_buf_append(&b, "", 1);
  return gdx_buf_detach(&b, NULL);
}

/* ------------------------------------------------------------------ */
/* enrollment (blocking, before the daemon runs)                        */

static size_t collect(char *p, size_t s, size_t n, void *ud) {
  gdx_buf *b = ud;
  return gdx_buf_append(b, p, s * n) == GDX_OK ? s * n : 0;
}

int gdx_node_enroll(const gdx_node_config *cfg, const char *token, char *err, size_t errlen) {
  if (cfg->broker_url == NULL) {
    snprintf(err, errlen, "broker.url: required for enrollment");
    return GDX_ECONFIG;
  }
  const char *dot = strchr(token, '.');
  if (strlen(token) != 105 || dot == NULL || dot - token != 40) {
    snprintf(err, errlen, "the token is malformed (expected 40 hex digits, a dot, 64 hex digits)");
    return GDX_EINVAL;
  }
  if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "node.state_dir: cannot create %s: %s", cfg->state_dir,
             strerror(errno));
    return GDX_ECONFIG;
  }
  char *key = NULL, *csr = NULL;
  int rc = gdx_pki_key_create(&key, err, errlen);
  if (!rc)
    rc = gdx_pki_csr_create(key, cfg->unit, cfg->id, &csr, err, errlen);
  if (rc) {
    gdx_pki_free_secret(key);
    return rc;
  }
  json_t *body = json_pack("{s:s, s:s}", "token", token, "csr", csr);
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  free(csr);
  char url[1024];
  snprintf(url, sizeof(url), "%s/api/v1/nodes/enroll", cfg->broker_url);
  CURL *e = curl_easy_init();
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  gdx_buf resp;
  gdx_buf_init(&resp, 1 << 20);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, text);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
  CURLcode cr = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  free(text);
  json_t *j = resp.len ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
  gdx_buf_free(&resp);
  if (cr != CURLE_OK) {
    snprintf(err, errlen, "cannot reach the broker at %s: %s", url, curl_easy_strerror(cr));
    rc = GDX_EIO;
  } else if (status != 201) {
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    snprintf(err, errlen, "the broker refused the enrollment (%ld): %s", status,
             m ? m : "no message");
    rc = GDX_EINVAL;
  }
  const char *cert = json_string_value(json_object_get(j, "certificate"));
  const char *ca = json_string_value(json_object_get(j, "ca_certificate"));
  const char *nodes_url = json_string_value(json_object_get(j, "broker_url"));
  char fp[65] = "";
  if (!rc && (cert == NULL || ca == NULL || gdx_pki_fingerprint(ca, fp) != GDX_OK)) {
    snprintf(err, errlen, "the broker's answer lacks the certificates");
    rc = GDX_EINVAL;
  }
  if (!rc && strcmp(fp, dot + 1) != 0) {
    snprintf(err, errlen, "the broker sent a CA whose fingerprint %s is not the token's: "
                          "refusing to trust it", fp);
    rc = GDX_ETLS;
  }
  if (!rc)
    rc = gdx_pki_verify(ca, cert, err, errlen);
  if (!rc) {
    X509 *x = gdx_pki_parse_cert(cert);
    char unit[32], node[80];
    if (x == NULL || gdx_pki_identity(x, unit, sizeof(unit), node, sizeof(node)) != GDX_OK ||
        strcmp(unit, cfg->unit) != 0 || strcmp(node, cfg->id) != 0) {
      snprintf(err, errlen, "the certificate is for another node than node.unit/node.id "
                            "(%s/%s): the token belongs to a different node", cfg->unit, cfg->id);
      rc = GDX_EINVAL;
    }
    X509_free(x);
  }
  char path[1024];
  if (!rc) {
    state_path(cfg, "node.key", path, sizeof(path));
    rc = gdx_pki_write_private(path, key, err, errlen);
  }
  if (!rc) {
    state_path(cfg, "node.crt", path, sizeof(path));
    rc = write_file(path, cert, err, errlen);
  }
  if (!rc) {
    state_path(cfg, "ca.crt", path, sizeof(path));
    rc = write_file(path, ca, err, errlen);
  }
  if (!rc && nodes_url) {
    state_path(cfg, "broker_url", path, sizeof(path));
    rc = write_file(path, nodes_url, err, errlen);
  }
  gdx_pki_free_secret(key);
  json_decref(j);
  return rc;
}

/* ------------------------------------------------------------------ */
/* the daemon                                                          */

struct gdx_node {
  gdx_adapter_env env; /* first: adapters' callbacks find the node through it */
  uv_loop_t *loop;
  const gdx_node_config *cfg;
  gdx_http_server *http, *admin;
  gdx_router *router, *admin_router;
  gdx_httpc *httpc;        /* upstreams */
  gdx_httpc *broker_c;     /* heartbeats, renewals */
  gdx_db_pool *frontdb;    /* the unit's front-end database, when configured */
  gdx_table_sub_env sync_env;
  gdx_table_sub *subs[MAX_RESOURCES];
  int nsubs;
  gdx_folder_sub_env fsync_env;
  gdx_folder_sub *fsubs[MAX_RESOURCES];
  int nfsubs;
  gdx_scanner *scanner;    /* for folder subscriptions */
  json_t *events;          /* adapters' events not yet taken by the broker */
  json_t *events_sent;     /* those in the heartbeat in flight */
  gdx_adapter *res[MAX_RESOURCES];
  int nres;
  uv_timer_t hb_timer;
  char key_file[1024], cert_file[1024], ca_file[1024];
  char nodes_url[512], advertise[512];
  int health_pending, hb_busy, renewing, stopping, pending_stops;
  gdx_buf hb_resp;
  int broker_ok;
  uint64_t heartbeats_ok, heartbeats_failed, renewals, refused_peers;
  time_t cert_not_after;
  void (*on_stopped)(void *);
  void *stopped_data;
};

static void load_cert_info(gdx_node *n) {
  char *pem = read_file(n->cert_file);
  X509 *x = pem ? gdx_pki_parse_cert(pem) : NULL;
  time_t nb;
  if (x)
    gdx_pki_validity(x, &nb, &n->cert_not_after);
  X509_free(x);
  free(pem);
}

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

static void handle_healthz(gdx_http_req *req, void *data) {
  gdx_node *n = data;
  char body[256];
  int len = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"version\":\"%s\",\"broker\":\"%s\"}\n",
                     n->broker_ok ? "ok" : "degraded", GDX_VERSION,
                     n->broker_ok ? "reachable" : "unreachable");
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
                  (unsigned long long)n->heartbeats_ok);
  gdx_buf_appendf(&out, "gdx_node_heartbeats_total{result=\"failed\"} %llu\n",
                  (unsigned long long)n->heartbeats_failed);
  gdx_metrics_header(&out, "gdx_node_broker_up", "gauge", "1 when the last heartbeat succeeded.");
  gdx_buf_appendf(&out, "gdx_node_broker_up %d\n", n->broker_ok);
  gdx_metrics_header(&out, "gdx_node_cert_expiry_seconds", "gauge",
                     "Unix time the node certificate expires.");
  gdx_buf_appendf(&out, "gdx_node_cert_expiry_seconds %lld\n", (long long)n->cert_not_after);
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

/* ---- heartbeat and renewal ---- */

static int hb_data(gdx_httpc_req *r, const char *d, size_t len, void *ud) {
  gdx_node *n = ud;
  return gdx_buf_append(&n->hb_resp, d, len) == GDX_OK ? 0 : -1;
}

static void renew_done(gdx_httpc_req *r, int status, long http, void *ud);
static char *renew_key, *renew_body; /* one renewal at a time */

static void start_renewal(gdx_node *n) {
  char err[256];
  char *key = NULL, *csr = NULL;
  if (gdx_pki_key_create(&key, err, sizeof(err)) != GDX_OK ||
      gdx_pki_csr_create(key, n->cfg->unit, n->cfg->id, &csr, err, sizeof(err)) != GDX_OK) {
    gdx_log_error("node", "cannot make a renewal request: %s", err);
    gdx_pki_free_secret(key);
    return;
  }
  json_t *j = json_pack("{s:s}", "csr", csr);
  free(csr);
  char *body = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  char url[600];
  snprintf(url, sizeof(url), "%s/node/v1/renew", n->nodes_url);
  static const char *const hv[] = {"Content-Type: application/json", NULL};
  gdx_buf_reset(&n->hb_resp);
  gdx_httpc_opts o = {.method = "POST", .url = url, .headers = hv, .body = body,
                      .body_len = strlen(body), .on_data = hb_data, .on_done = renew_done,
                      .data = n, .timeout_ms = 30000, .ca_file = n->ca_file,
                      .cert_file = n->cert_file, .key_file = n->key_file};
  renew_key = key;
  renew_body = body; /* lives until renew_done */
  n->renewing = 1;
  if (gdx_httpc_request(n->broker_c, &o, NULL) != GDX_OK) {
    n->renewing = 0;
    gdx_pki_free_secret(renew_key);
    renew_key = NULL;
    free(renew_body);
    renew_body = NULL;
  }
}

static void renew_done(gdx_httpc_req *r, int status, long http, void *ud) {
  gdx_node *n = ud;
  n->renewing = 0;
  char *key = renew_key;
  renew_key = NULL;
  free(renew_body);
  renew_body = NULL;
  json_t *j = n->hb_resp.len ? json_loadb(n->hb_resp.data, n->hb_resp.len, 0, NULL) : NULL;
  const char *cert = json_string_value(json_object_get(j, "certificate"));
  char err[300] = "";
  if (status != GDX_OK || http != 200 || cert == NULL) {
    gdx_log_error("node", "certificate renewal failed (%ld): %s", http,
                  status != GDX_OK ? gdx_httpc_error(r) : "refused");
  } else {
    char *ca = read_file(n->ca_file);
    int rc = ca ? gdx_pki_verify(ca, cert, err, sizeof(err)) : GDX_EIO;
    free(ca);
    char newkey[1100];
    snprintf(newkey, sizeof(newkey), "%s.new", n->key_file);
    if (!rc)
      rc = gdx_pki_write_private(newkey, key, err, sizeof(err));
    if (!rc)
      rc = write_file(n->cert_file, cert, err, sizeof(err)) ||
           rename(newkey, n->key_file) != 0;
    gdx_tls_options tls = {n->cert_file, n->key_file, n->ca_file, GDX_TLS_VERIFY_REQUIRE};
    if (!rc && !n->stopping)
      rc = gdx_http_reload_tls(n->http, 0, &tls, err, sizeof(err));
    if (rc) {
      gdx_log_error("node", "cannot install the renewed certificate: %s", err);
    } else {
      n->renewals++;
      load_cert_info(n);
      gdx_log_info("node", "certificate renewed; valid until %lld", (long long)n->cert_not_after);
    }
  }
  json_decref(j);
  gdx_pki_free_secret(key);
}

static char *hb_body;

static void hb_done(gdx_httpc_req *r, int status, long http, void *ud) {
  gdx_node *n = ud;
  n->hb_busy = 0;
  free(hb_body);
  hb_body = NULL;
  int ok = status == GDX_OK && http == 200;
  if (n->events_sent) { /* not taken: sent again with the next heartbeat */
    if (!ok && json_array_size(n->events) < 1000) {
      json_array_extend(n->events_sent, n->events);
      json_decref(n->events);
      n->events = n->events_sent;
    } else {
      json_decref(n->events_sent);
    }
    n->events_sent = NULL;
  }
  if (ok != n->broker_ok)
    gdx_log(ok ? GDX_LOG_INFO : GDX_LOG_WARN, "node", NULL, "broker %s%s%s",
            ok ? "reachable at " : "unreachable: ", ok ? n->nodes_url : "",
            ok ? "" : (status != GDX_OK ? gdx_httpc_error(r) : "heartbeat refused"));
  n->broker_ok = ok;
  if (!ok) {
    n->heartbeats_failed++;
    if (http == 401 || http == 403)
      gdx_log_error("node", "the broker refused the heartbeat (%ld): %.*s", http,
                    (int)(n->hb_resp.len > 300 ? 300 : n->hb_resp.len),
                    n->hb_resp.data ? n->hb_resp.data : "");
    return;
  }
  n->heartbeats_ok++;
  json_t *j = json_loadb(n->hb_resp.data, n->hb_resp.len, 0, NULL);
  int renew = json_is_true(json_object_get(j, "renew"));
  for (int i = 0; i < n->nres && !n->stopping; i++)
    if (n->res[i]->ops->hint)
      n->res[i]->ops->hint(n->res[i], j);
  size_t k;
  json_t *want;
  json_array_foreach(json_object_get(j, "reconcile"), k, want) {
    for (int i = 0; i < n->nsubs && !n->stopping; i++)
      if (json_integer_value(want) == gdx_table_sub_authorization(n->subs[i]))
        gdx_table_sub_reconcile(n->subs[i]);
  }
  json_decref(j);
  if (renew && !n->renewing && !n->stopping) {
    gdx_log_info("node", "the broker asks for a certificate renewal");
    start_renewal(n);
  }
}

static void send_heartbeat(gdx_node *n) {
  json_t *res = json_array();
  for (int i = 0; i < n->nres; i++) {
    gdx_adapter *a = n->res[i];
    json_array_append_new(res, json_pack("{s:s, s:s, s:s, s:s}", "name", a->name, "kind",
                                         a->ops->kind, "health", a->health, "detail", a->detail));
  }
  json_t *j = json_pack("{s:s, s:s, s:o}", "version", GDX_VERSION, "address", n->advertise,
                        "resources", res);
  for (int i = 0; i < n->nres; i++)
    if (n->res[i]->ops->events)
      n->res[i]->ops->events(n->res[i], n->events);
  if (json_array_size(n->events) > 0) { /* up to 100 a heartbeat; the rest next time */
    n->events_sent = json_array();
    while (json_array_size(n->events) > 0 && json_array_size(n->events_sent) < 100) {
      json_array_append(n->events_sent, json_array_get(n->events, 0));
      json_array_remove(n->events, 0);
    }
    json_object_set(j, "events", n->events_sent);
  }
  hb_body = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  char url[600];
  snprintf(url, sizeof(url), "%s/node/v1/heartbeat", n->nodes_url);
  static const char *const hv[] = {"Content-Type: application/json", NULL};
  gdx_buf_reset(&n->hb_resp);
  gdx_httpc_opts o = {.method = "POST", .url = url, .headers = hv, .body = hb_body,
                      .body_len = strlen(hb_body), .on_data = hb_data, .on_done = hb_done,
                      .data = n, .timeout_ms = 10000, .ca_file = n->ca_file,
                      .cert_file = n->cert_file, .key_file = n->key_file};
  if (gdx_httpc_request(n->broker_c, &o, NULL) == GDX_OK) {
    n->hb_busy = 1;
  } else {
    free(hb_body);
    hb_body = NULL;
    if (n->events_sent) {
      json_array_extend(n->events_sent, n->events);
      json_decref(n->events);
      n->events = n->events_sent;
      n->events_sent = NULL;
    }
  }
}

static void health_cb(gdx_adapter *a) {
  gdx_node *n = (gdx_node *)a->env; /* env is the first member */
  if (--n->health_pending == 0 && !n->stopping)
    send_heartbeat(n);
}

static void on_hb_timer(uv_timer_t *t) {
  gdx_node *n = t->data;
  if (n->hb_busy || n->health_pending || n->renewing)
    return;
  n->health_pending = n->nres + 1;
  for (int i = 0; i < n->nres; i++)
    n->res[i]->ops->health(n->res[i], health_cb);
  if (--n->health_pending == 0)
    send_heartbeat(n);
}

/* ---- resources ---- */

/* { authorization = 13; folder = "/srv/in"; versions = 5; wait_ms = 20000;
 *   poll_ms = 2000; once = false; } - see folder_sub.h */
static int load_folder_sub(gdx_node *n, const char *file, int i, config_setting_t *s,
                           const char *folder, gdx_folder_sub_opts *o, char *err, size_t errlen) {
  long long auth = 0, versions = 5, wait = 20000, poll = 2000;
  int once = 0, line = config_setting_source_line(s);
  const char *table = NULL;
  if (!config_setting_lookup_int64(s, "authorization", &auth) || auth <= 0 ||
      folder[0] != '/' || strlen(folder) >= sizeof(o->folder) - 64 ||
      config_setting_lookup_string(s, "table", &table)) {
    snprintf(err, errlen, "%s:%d: subscriptions[%d]: a folder subscription has authorization "
                          "(the id, a number) and folder (an absolute path), and no table",
             file, line, i);
    return GDX_ECONFIG;
  }
  config_setting_lookup_int64(s, "versions", &versions);
  config_setting_lookup_int64(s, "wait_ms", &wait);
  config_setting_lookup_int64(s, "poll_ms", &poll);
  config_setting_lookup_bool(s, "once", &once);
  const char *bad = versions < 0 || versions > 1000 ? "versions: 0..1000 (0: replace)"
                    : wait < 0 || wait > 25000    ? "wait_ms: 0..25000 (0: no long poll)"
                    : poll < 50 || poll > 600000  ? "poll_ms: 50..600000"
                                                  : NULL;
  if (bad) {
    snprintf(err, errlen, "%s:%d: subscriptions[%d].%s", file, line, i, bad);
    return GDX_ECONFIG;
  }
  if (n->cfg && n->cfg->scan_enabled && n->cfg->scan_signatures == NULL) {
    snprintf(err, errlen, "%s:%d: subscriptions[%d]: received files are scanned for viruses: "
                          "set scan.signatures (a folder of ClamAV signatures), or scan.enabled "
                          "= false", file, line, i);
    return GDX_ECONFIG;
  }
  memset(o, 0, sizeof(*o));
  o->authorization = auth;
  snprintf(o->folder, sizeof(o->folder), "%s", folder);
  o->versions = versions;
  o->wait_ms = wait;
  o->poll_ms = poll;
  o->once = once;
  return GDX_OK;
}

/* subscriptions = ( { authorization = 12; table = "ent_copy"; batch = 1000;
 *                     poll_ms = 500; wait_ms = 20000; reconcile_every_s = 86400;
 *                     chunk = 1000; once = false; } ) - see table_sub.h */
static int load_subscriptions(gdx_node *n, const char *file, gdx_table_sub_opts *out, int *nout,
                              gdx_folder_sub_opts *fout, int *nfout, char *err, size_t errlen) {
  config_t *c = gdx_config_open(file, err, errlen);
  if (c == NULL)
    return GDX_ECONFIG;
  config_setting_t *list = config_lookup(c, "subscriptions");
  int count = list ? config_setting_length(list) : 0, rc = GDX_OK;
  *nout = *nfout = 0;
  if (count > MAX_RESOURCES) {
    snprintf(err, errlen, "%s: subscriptions: at most %d", file, MAX_RESOURCES);
    rc = GDX_ECONFIG;
  }
  for (int i = 0; !rc && i < count; i++) {
    config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
    const char *folder = NULL;
    if (config_setting_is_group(s) && config_setting_lookup_string(s, "folder", &folder)) {
      rc = load_folder_sub(n, file, i, s, folder, &fout[(*nfout)++], err, errlen);
      continue;
    }
    if (n->cfg && n->cfg->fdb_name == NULL) {
      snprintf(err, errlen, "%s:%d: subscriptions[%d]: a table subscription needs frontdb.name "
                            "(the front-end database the table is written to)",
               file, config_setting_source_line(s), i);
      rc = GDX_ECONFIG;
      break;
    }
    long long auth = 0, batch = 1000, poll = 500, wait = 20000, every = 86400, chunk = 1000;
    int once = 0;
    const char *table = NULL;
    int line = config_setting_source_line(s);
    if (!config_setting_is_group(s) || !config_setting_lookup_int64(s, "authorization", &auth) ||
        auth <= 0 || !config_setting_lookup_string(s, "table", &table) ||
        !gdx_db_ident_ok(table)) {
      snprintf(err, errlen, "%s:%d: subscriptions[%d]: a group with authorization (the id, a "
                            "number) and table (a plain table name)", file, line, i);
      rc = GDX_ECONFIG;
      break;
    }
    config_setting_lookup_int64(s, "batch", &batch);
    config_setting_lookup_int64(s, "poll_ms", &poll);
    config_setting_lookup_int64(s, "wait_ms", &wait);
    config_setting_lookup_int64(s, "reconcile_every_s", &every);
    config_setting_lookup_int64(s, "chunk", &chunk);
    config_setting_lookup_bool(s, "once", &once);
    const char *bad = batch < 1 || batch > 10000 ? "batch: 1..10000"
                      : poll < 50 || poll > 60000 ? "poll_ms: 50..60000"
                      : wait < 0 || wait > 25000  ? "wait_ms: 0..25000 (0: no long poll)"
                      : every < 0 || every > 31 * 86400 ? "reconcile_every_s: 0..2678400 (0: on request only)"
                      : chunk < 10 || chunk > 10000 ? "chunk: 10..10000"
                                                    : NULL;
    if (bad) {
      snprintf(err, errlen, "%s:%d: subscriptions[%d].%s", file, line, i, bad);
      rc = GDX_ECONFIG;
      break;
    }
    gdx_table_sub_opts *o = &out[(*nout)++];
    o->authorization = auth;
    snprintf(o->table, sizeof(o->table), "%s", table);
    o->batch = batch;
    o->poll_ms = poll;
    o->wait_ms = wait;
    o->reconcile_every_s = every;
    o->chunk = chunk;
    o->once = once;
  }
  gdx_config_close(c);
  return rc;
}

static int load_resources(gdx_node *n, const char *file, char *err, size_t errlen) {
  config_t *c = gdx_config_open(file, err, errlen);
  if (c == NULL)
    return GDX_ECONFIG;
  config_setting_t *list = config_lookup(c, "resources");
  int count = list ? config_setting_length(list) : 0;
  int rc = GDX_OK;
  if (count > MAX_RESOURCES) {
    snprintf(err, errlen, "%s: resources: at most %d", file, MAX_RESOURCES);
    rc = GDX_ECONFIG;
  }
  for (int i = 0; !rc && i < count; i++) {
    config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
    const char *name = NULL, *kind = NULL;
    if (!config_setting_is_group(s) || !config_setting_lookup_string(s, "name", &name) ||
        !config_setting_lookup_string(s, "kind", &kind)) {
      snprintf(err, errlen, "%s:%d: resources[%d]: each resource is a group with name and kind",
               file, config_setting_source_line(s), i);
      rc = GDX_ECONFIG;
      break;
    }
    size_t nl = strlen(name);
    int plain = nl > 0 && nl <= 64;
    for (size_t k = 0; k < nl && plain; k++)
      plain = (name[k] >= 'a' && name[k] <= 'z') || (name[k] >= 'A' && name[k] <= 'Z') ||
              (name[k] >= '0' && name[k] <= '9') || (k > 0 && strchr("._-", name[k]));
    for (int k = 0; k < n->nres && plain; k++)
      if (strcmp(n->res[k]->name, name) == 0) {
        snprintf(err, errlen, "%s:%d: resources[%d].name: \"%s\" is used twice", file,
                 config_setting_source_line(s), i, name);
        rc = GDX_ECONFIG;
      }
    if (!plain && !rc) {
      snprintf(err, errlen, "%s:%d: resources[%d].name: letters, digits, . _ - (at most 64)",
               file, config_setting_source_line(s), i);
      rc = GDX_ECONFIG;
    }
    const gdx_adapter_ops *ops = rc ? NULL : gdx_adapter_find(kind);
    if (!rc && ops == NULL) {
      snprintf(err, errlen, "%s:%d: resources[%d].kind: \"%s\" is not a kind this node knows "
                            "(api, table, file)", file, config_setting_source_line(s), i, kind);
      rc = GDX_ECONFIG;
    }
    if (rc)
      break;
    gdx_adapter *a = calloc(1, sizeof(*a));
    a->ops = ops;
    a->env = &n->env;
    snprintf(a->name, sizeof(a->name), "%s", name);
    snprintf(a->health, sizeof(a->health), "unknown");
    n->res[n->nres++] = a;
    char why[400];
    if (ops->open(a, s, why, sizeof(why)) != GDX_OK) {
      snprintf(err, errlen, "%s: %s", file, why);
      rc = GDX_ECONFIG;
    }
  }
  gdx_config_close(c);
  return rc;
}

int gdx_node_check(const gdx_node_config *cfg, const char *config_file, char *err,
                   size_t errlen) {
  (void)cfg;
  gdx_node *n = calloc(1, sizeof(*n));
  if (n == NULL)
    return GDX_ENOMEM;
  int rc = load_resources(n, config_file, err, errlen);
  static gdx_table_sub_opts subs[MAX_RESOURCES];
  static gdx_folder_sub_opts fsubs[MAX_RESOURCES];
  int nsubs = 0, nfsubs = 0;
  n->cfg = cfg;
  if (!rc)
    rc = load_subscriptions(n, config_file, subs, &nsubs, fsubs, &nfsubs, err, errlen);
  for (int i = 0; i < n->nres; i++) {
    n->res[i]->ops->close(n->res[i]);
    free(n->res[i]);
  }
  free(n);
  return rc;
}

int gdx_node_start(uv_loop_t *loop, const gdx_node_config *cfg, const char *config_file,
                   gdx_node **out, char *err, size_t errlen) {
  gdx_node *n = calloc(1, sizeof(*n));
  if (n == NULL)
    return GDX_ENOMEM;
  *out = n;
  n->loop = loop;
  n->cfg = cfg;
  state_path(cfg, "node.key", n->key_file, sizeof(n->key_file));
  state_path(cfg, "node.crt", n->cert_file, sizeof(n->cert_file));
  state_path(cfg, "ca.crt", n->ca_file, sizeof(n->ca_file));
  gdx_buf_init(&n->hb_resp, 1 << 20);
  if (access(n->cert_file, R_OK) != 0 || access(n->key_file, R_OK) != 0) {
    snprintf(err, errlen, "the node is not enrolled (no %s): run gdx-node --config %s --enroll "
                          "TOKEN with the token from the unit admin", n->cert_file, config_file);
    return GDX_ECONFIG;
  }
  if (cfg->broker_nodes_url) {
    snprintf(n->nodes_url, sizeof(n->nodes_url), "%s", cfg->broker_nodes_url);
  } else {
    char path[1100];
    state_path(cfg, "broker_url", path, sizeof(path));
    char *u = read_file(path);
    if (u == NULL || *u == '\0') {
      free(u);
      snprintf(err, errlen, "broker.nodes_url: not set and not learned at enrollment");
      return GDX_ECONFIG;
    }
    snprintf(n->nodes_url, sizeof(n->nodes_url), "%s", u);
    free(u);
  }
  load_cert_info(n);
  int rc = gdx_httpc_new(loop, &n->httpc);
  if (!rc)
    rc = gdx_httpc_new(loop, &n->broker_c);
  if (rc)
    return rc;
  n->env.loop = loop;
  n->env.httpc = n->httpc;
  if (cfg->fdb_name) {
    char *pw = NULL;
    if (cfg->fdb_user == NULL) {
      snprintf(err, errlen, "frontdb.user: required with frontdb.name");
      return GDX_ECONFIG;
    }
    if (cfg->fdb_password_file &&
        gdx_config_read_secret(cfg->fdb_password_file, &pw, err, errlen) != GDX_OK)
      return GDX_ECONFIG;
    gdx_db_options o = {.host = cfg->fdb_host, .socket = cfg->fdb_socket,
                        .port = (unsigned)cfg->fdb_port, .user = cfg->fdb_user,
                        .password = pw, .database = cfg->fdb_name,
                        .pool_size = (unsigned)cfg->fdb_pool_size, .queue_max = 1024,
                        .connect_timeout_s = 5};
    rc = gdx_db_pool_start(loop, &o, &n->frontdb);
    free(pw);
    if (rc) {
      snprintf(err, errlen, "frontdb: cannot start the connection pool");
      return rc;
    }
    n->env.frontdb = n->frontdb;
  }
  n->env.state_dir = cfg->state_dir;
  n->events = json_array();
  rc = load_resources(n, config_file, err, errlen);
  static gdx_table_sub_opts subs[MAX_RESOURCES];
  static gdx_folder_sub_opts fsubs[MAX_RESOURCES];
  int nsubs = 0, nfsubs = 0;
  if (!rc)
    rc = load_subscriptions(n, config_file, subs, &nsubs, fsubs, &nfsubs, err, errlen);
  if (rc)
    return rc;
  if (nfsubs > 0 && cfg->scan_enabled) {
    unsigned sigs = 0;
    char why[300];
    if (gdx_scanner_new(cfg->scan_signatures, &n->scanner, &sigs, why, sizeof(why)) != GDX_OK) {
      snprintf(err, errlen, "scan.signatures: %s", why);
      return GDX_ECONFIG;
    }
    gdx_log_info("node", "virus scanner ready: %u signatures from %s", sigs,
                 cfg->scan_signatures);
  } else if (nfsubs > 0) {
    gdx_log_warn("node", "scan.enabled = false: received files are delivered WITHOUT a virus "
                         "scan");
  }

  gdx_router_new(&n->router);
  gdx_router_add(n->router, "*", "/r/*", handle_resource, n);
  gdx_http_server_options so = {.loop = loop, .on_request = gdx_router_dispatch,
                                .data = n->router, .access_log = cfg->access_log, .name = "node"};
  gdx_http_limits_default(&so.limits);
  so.limits.max_body_bytes = (uint64_t)cfg->max_body_bytes;
  so.limits.max_connections = (unsigned)cfg->max_connections;
  so.limits.keepalive_timeout_ms = (uint64_t)cfg->keepalive_timeout_ms;
  so.limits.body_timeout_ms = (uint64_t)cfg->body_timeout_ms;
  rc = gdx_http_server_new(&so, &n->http);
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
  if (cfg->admin_port >= 0) {
    gdx_router_new(&n->admin_router);
    gdx_router_add(n->admin_router, "GET", "/healthz", handle_healthz, n);
    gdx_router_add(n->admin_router, "GET", "/metrics", handle_metrics, n);
    gdx_http_server_options ao = {.loop = loop, .on_request = gdx_router_dispatch,
                                  .data = n->admin_router, .name = "node-admin"};
    gdx_http_limits_default(&ao.limits);
    rc = gdx_http_server_new(&ao, &n->admin);
    if (!rc)
      rc = gdx_http_listen(n->admin, cfg->admin_host, (int)cfg->admin_port, NULL, err, errlen);
    if (rc)
      return rc;
  }
  gdx_log_info("node", "node %s/%s serving %d resource%s at %s; broker at %s", cfg->unit,
               cfg->id, n->nres, n->nres == 1 ? "" : "s", n->advertise, n->nodes_url);
  uv_timer_init(loop, &n->hb_timer);
  n->hb_timer.data = n;
  uv_timer_start(&n->hb_timer, on_hb_timer, 0, (uint64_t)cfg->heartbeat_interval_s * 1000);
  n->sync_env = (gdx_table_sub_env){.loop = loop, .client = n->broker_c, .frontdb = n->frontdb,
                               .nodes_url = n->nodes_url, .ca_file = n->ca_file,
                               .cert_file = n->cert_file, .key_file = n->key_file};
  for (int i = 0; i < nsubs; i++) {
    if (gdx_table_sub_start(&n->sync_env, &subs[i], &n->subs[n->nsubs]) != GDX_OK)
      return GDX_ENOMEM;
    n->nsubs++;
    gdx_log_info("node", "subscription %lld into table %s", subs[i].authorization,
                 subs[i].table);
  }
  n->fsync_env = (gdx_folder_sub_env){.loop = loop, .client = n->broker_c, .nodes_url = n->nodes_url,
                                 .ca_file = n->ca_file, .cert_file = n->cert_file,
                                 .key_file = n->key_file, .scanner = n->scanner};
  for (int i = 0; i < nfsubs; i++) {
    rc = gdx_folder_sub_start(&n->fsync_env, &fsubs[i], &n->fsubs[n->nfsubs], err, errlen);
    if (rc != GDX_OK)
      return rc;
    n->nfsubs++;
    gdx_log_info("node", "subscription %lld into folder %s", fsubs[i].authorization,
                 fsubs[i].folder);
  }
  return GDX_OK;
}

static void stop_step(gdx_node *n) {
  if (--n->pending_stops > 0)
    return;
  if (n->frontdb) /* waits for the adapters' jobs and runs their callbacks */
    gdx_db_pool_stop(n->frontdb);
  for (int i = 0; i < n->nres; i++) {
    n->res[i]->ops->close(n->res[i]);
    free(n->res[i]);
  }
  gdx_router_free(n->router);
  if (n->admin_router)
    gdx_router_free(n->admin_router);
  gdx_buf_free(&n->hb_resp);
  gdx_scanner_free(n->scanner);
  json_decref(n->events);
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
    /* relays are done: the clients can go */
    gdx_httpc_close(n->httpc);
    n->httpc = NULL;
  }
  stop_step(n);
}

static void on_hb_closed(uv_handle_t *h) {
  gdx_node *n = h->data;
  if (n->broker_c) {
    gdx_httpc_close(n->broker_c);
    n->broker_c = NULL;
  }
  stop_step(n);
}

static void on_sub_stopped(void *data) { stop_step(data); }

void gdx_node_stop(gdx_node *n, void (*on_stopped)(void *), void *data) {
  n->stopping = 1;
  n->on_stopped = on_stopped;
  n->stopped_data = data;
  n->pending_stops = 1 + n->nsubs + n->nfsubs; /* the timer, the subscriptions */
  for (int i = 0; i < n->nsubs; i++)
    gdx_table_sub_stop(n->subs[i], on_sub_stopped, n); /* before broker_c closes */
  for (int i = 0; i < n->nfsubs; i++)
    gdx_folder_sub_stop(n->fsubs[i], on_sub_stopped, n);
  if (n->http)
    n->pending_stops++;
  if (n->admin)
    n->pending_stops++;
  if (uv_is_active((uv_handle_t *)&n->hb_timer) || n->hb_timer.loop) {
    uv_timer_stop(&n->hb_timer);
    uv_close((uv_handle_t *)&n->hb_timer, on_hb_closed);
  } else {
    n->pending_stops--;
  }
  if (n->http)
    gdx_http_server_shutdown(n->http, on_server_stopped, n);
  if (n->admin)
    gdx_http_server_shutdown(n->admin, on_server_stopped, n);
  if (n->pending_stops == 0) {
    n->pending_stops = 1;
    stop_step(n);
  }
}
