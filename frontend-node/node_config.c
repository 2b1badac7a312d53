#include "node_config.h"

#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "migrate.h"

#ifndef GDX_SCHEMA_DIR
#define GDX_SCHEMA_DIR "schemas"
#endif

#define C(f) offsetof(gdx_node_config, f)

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
    {"schema_dir", GDX_CFG_STR, C(schema_dir), 0, 0, 0, 0, NULL, NULL,
     "the schemas/ folder (the front-end database's SQL migrations, sql/node); default: the "
     "source tree's"},
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

void gdx_node_config_migrations_dir(const gdx_node_config *cfg, char *out, size_t n) {
  snprintf(out, n, "%s/sql/node", cfg->schema_dir ? cfg->schema_dir : GDX_SCHEMA_DIR);
}

/* ------------------------------------------------------------------ */
/* resources                                                           */

/* letters, digits, . _ - (not first), at most 64: it is a URL segment */
static int resource_name_ok(const char *name) {
  size_t nl = strlen(name);
  int plain = nl > 0 && nl <= 64;
  for (size_t k = 0; k < nl && plain; k++)
    plain = (name[k] >= 'a' && name[k] <= 'z') || (name[k] >= 'A' && name[k] <= 'Z') ||
            (name[k] >= '0' && name[k] <= '9') || (k > 0 && strchr("._-", name[k]));
  return plain;
}

int gdx_node_config_resources(const char *file, const gdx_adapter_env *env, gdx_adapter **res,
                              int *nres, char *err, size_t errlen) {
  *nres = 0;
  config_t *c = gdx_config_open(file, err, errlen);
  if (c == NULL)
    return GDX_ECONFIG;
  config_setting_t *list = config_lookup(c, "resources");
  int count = list ? config_setting_length(list) : 0;
  int rc = GDX_OK;
  if (count > GDX_NODE_MAX_RESOURCES) {
    snprintf(err, errlen, "%s: resources: at most %d", file, GDX_NODE_MAX_RESOURCES);
    rc = GDX_ECONFIG;
  }
  for (int i = 0; !rc && i < count; i++) {
    config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
    const char *name = NULL, *kind = NULL;
    int line = config_setting_source_line(s);
    if (!config_setting_is_group(s) || !config_setting_lookup_string(s, "name", &name) ||
        !config_setting_lookup_string(s, "kind", &kind)) {
      snprintf(err, errlen, "%s:%d: resources[%d]: each resource is a group with name and kind",
               file, line, i);
      rc = GDX_ECONFIG;
      break;
    }
    int plain = resource_name_ok(name);
    for (int k = 0; k < *nres && plain; k++)
      if (strcmp(res[k]->name, name) == 0) {
        snprintf(err, errlen, "%s:%d: resources[%d].name: \"%s\" is used twice", file, line, i,
                 name);
        rc = GDX_ECONFIG;
      }
    if (!plain && !rc) {
      snprintf(err, errlen, "%s:%d: resources[%d].name: letters, digits, . _ - (at most 64)",
               file, line, i);
      rc = GDX_ECONFIG;
    }
    const gdx_adapter_ops *ops = rc ? NULL : gdx_adapter_find(kind);
    if (!rc && ops == NULL) {
      snprintf(err, errlen, "%s:%d: resources[%d].kind: \"%s\" is not a kind this node knows "
                            "(api, table, file)", file, line, i, kind);
      rc = GDX_ECONFIG;
    }
    gdx_adapter *a = rc ? NULL : calloc(1, sizeof(*a));
    if (!rc && a == NULL)
      rc = GDX_ENOMEM;
    if (rc)
      break;
    a->ops = ops;
    a->env = env;
    snprintf(a->name, sizeof(a->name), "%s", name);
    snprintf(a->health, sizeof(a->health), "unknown");
    res[(*nres)++] = a;
    char why[400];
    if (ops->open(a, s, why, sizeof(why)) != GDX_OK) {
      snprintf(err, errlen, "%s: %s", file, why);
      rc = GDX_ECONFIG;
    }
  }
  gdx_config_close(c);
  return rc;
}

void gdx_node_config_resources_close(gdx_adapter **res, int nres) {
  for (int i = 0; i < nres; i++) {
    res[i]->ops->close(res[i]);
    free(res[i]);
  }
}

/* ------------------------------------------------------------------ */
/* subscriptions                                                       */

/* { authorization = 13; folder = "/srv/in"; versions = 5; wait_ms = 20000;
 *   poll_ms = 2000; once = false; } - see folder_sub.h */
static int folder_sub(const gdx_node_config *cfg, const char *file, int i,
                      const config_setting_t *s, const char *folder, gdx_folder_sub_opts *o,
                      char *err, size_t errlen) {
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
  if (cfg->scan_enabled && cfg->scan_signatures == NULL) {
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

/* { authorization = 12; table = "ent_copy"; batch = 1000; poll_ms = 500;
 *   wait_ms = 20000; reconcile_every_s = 86400; chunk = 1000; once = false; }
 * - see table_sub.h */
static int table_sub(const gdx_node_config *cfg, const char *file, int i,
                     const config_setting_t *s, gdx_table_sub_opts *o, char *err,
                     size_t errlen) {
  int line = config_setting_source_line(s);
  if (cfg->fdb_name == NULL) {
    snprintf(err, errlen, "%s:%d: subscriptions[%d]: a table subscription needs frontdb.name "
                          "(the front-end database the table is written to)", file, line, i);
    return GDX_ECONFIG;
  }
  long long auth = 0, batch = 1000, poll = 500, wait = 20000, every = 86400, chunk = 1000;
  int once = 0;
  const char *table = NULL;
  if (!config_setting_is_group(s) || !config_setting_lookup_int64(s, "authorization", &auth) ||
      auth <= 0 || !config_setting_lookup_string(s, "table", &table) ||
      !gdx_db_ident_ok(table)) {
    snprintf(err, errlen, "%s:%d: subscriptions[%d]: a group with authorization (the id, a "
                          "number) and table (a plain table name)", file, line, i);
    return GDX_ECONFIG;
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
    return GDX_ECONFIG;
  }
  memset(o, 0, sizeof(*o));
  o->authorization = auth;
  snprintf(o->table, sizeof(o->table), "%s", table);
  o->batch = batch;
  o->poll_ms = poll;
  o->wait_ms = wait;
  o->reconcile_every_s = every;
  o->chunk = chunk;
  o->once = once;
  return GDX_OK;
}

int gdx_node_config_subscriptions(const gdx_node_config *cfg, const char *file,
                                  gdx_table_sub_opts *tables, int *ntables,
                                  gdx_folder_sub_opts *folders, int *nfolders, char *err,
                                  size_t errlen) {
  *ntables = *nfolders = 0;
  config_t *c = gdx_config_open(file, err, errlen);
  if (c == NULL)
    return GDX_ECONFIG;
  config_setting_t *list = config_lookup(c, "subscriptions");
  int count = list ? config_setting_length(list) : 0, rc = GDX_OK;
  if (count > GDX_NODE_MAX_RESOURCES) {
    snprintf(err, errlen, "%s: subscriptions: at most %d", file, GDX_NODE_MAX_RESOURCES);
    rc = GDX_ECONFIG;
  }
  for (int i = 0; !rc && i < count; i++) {
    config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
    const char *folder = NULL;
    if (config_setting_is_group(s) && config_setting_lookup_string(s, "folder", &folder))
      rc = folder_sub(cfg, file, i, s, folder, &folders[(*nfolders)++], err, errlen);
    else
      rc = table_sub(cfg, file, i, s, &tables[(*ntables)++], err, errlen);
  }
  gdx_config_close(c);
  return rc;
}

/* ------------------------------------------------------------------ */

int gdx_node_config_check(const gdx_node_config *cfg, const char *file, char *err,
                          size_t errlen) {
  gdx_adapter *res[GDX_NODE_MAX_RESOURCES];
  gdx_adapter_env none = {0};
  int nres = 0, ntables = 0, nfolders = 0;
  int rc = gdx_node_config_resources(file, &none, res, &nres, err, errlen);
  gdx_node_config_resources_close(res, nres);
  gdx_table_sub_opts *tables = calloc(GDX_NODE_MAX_RESOURCES, sizeof(*tables));
  gdx_folder_sub_opts *folders = calloc(GDX_NODE_MAX_RESOURCES, sizeof(*folders));
  if (!rc && (tables == NULL || folders == NULL))
    rc = GDX_ENOMEM;
  if (!rc)
    rc = gdx_node_config_subscriptions(cfg, file, tables, &ntables, folders, &nfolders, err,
                                       errlen);
  free(tables);
  free(folders);
  if (!rc && cfg->fdb_name) {
    char dir[4096];
    gdx_node_config_migrations_dir(cfg, dir, sizeof(dir));
    rc = gdx_migrate_check(dir, err, errlen);
  }
  return rc;
}
