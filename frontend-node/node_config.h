/* gdx-node's configuration: the key table every setting is checked
 * against (gdx-node --print-keys prints it; docs/config.md, section
 * gdx-node, lists it), and the two lists the table cannot describe - the
 * node's `resources`, whose settings each adapter reads (adapter.h), and
 * the unit's `subscriptions` to tables and folders (table_sub.h,
 * folder_sub.h).
 *
 * (node_config, not config: common/config.h is the libconfig layer this
 * is built on.)
 */
#ifndef GDX_NODE_CONFIG_H
#define GDX_NODE_CONFIG_H

#include "adapter.h"
#include "config.h"
#include "folder_sub.h"
#include "table_sub.h"

#define GDX_NODE_MAX_RESOURCES 256 /* resources, and subscriptions, of one node */

typedef struct {
  char *unit, *id, *broker_url, *broker_nodes_url, *state_dir;
  char *listen_host, *advertise_url, *admin_host;
  long long listen_port, admin_port, heartbeat_interval_s;
  long long max_body_bytes, max_connections, keepalive_timeout_ms, body_timeout_ms;
  char *log_level, *log_format, *log_file;
  int access_log;
  /* the unit's front-end database (前置库), for table resources and
   * subscriptions */
  char *fdb_socket, *fdb_host, *fdb_user, *fdb_password_file, *fdb_name;
  long long fdb_port, fdb_pool_size;
  char *schema_dir; /* the schemas/ folder: the front-end database's migrations */
  /* virus scanning of received files */
  char *scan_signatures;
  int scan_enabled;
} gdx_node_config;

extern const gdx_cfg_key gdx_node_config_keys[];
extern const size_t gdx_node_config_nkeys;

int gdx_node_config_load(const char *file, gdx_node_config *cfg, char *err, size_t errlen);
void gdx_node_config_free(gdx_node_config *cfg);

/* Opens an adapter for each of the `resources` in file (at most
 * GDX_NODE_MAX_RESOURCES; names checked, settings checked by the kind's
 * open()). The *nres opened are in res, also on failure; the caller closes
 * them with gdx_node_config_resources_close(). env may be all zero to check
 * settings only. */
int gdx_node_config_resources(const char *file, const gdx_adapter_env *env, gdx_adapter **res,
                              int *nres, char *err, size_t errlen);
/* Closes and frees them (after the front-end database's pool stopped). */
void gdx_node_config_resources_close(gdx_adapter **res, int nres);

/* The `subscriptions` in file, each with its defaults and ranges checked:
 * tables[*ntables] and folders[*nfolders] (room for GDX_NODE_MAX_RESOURCES
 * each). */
int gdx_node_config_subscriptions(const gdx_node_config *cfg, const char *file,
                                  gdx_table_sub_opts *tables, int *ntables,
                                  gdx_folder_sub_opts *folders, int *nfolders, char *err,
                                  size_t errlen);

/* The whole file as the daemon would read it - resources, subscriptions
 * and, with a front-end database, its migrations folder - without an
 * enrollment, a network or a database. */
int gdx_node_config_check(const gdx_node_config *cfg, const char *file, char *err, size_t errlen);

/* <schema_dir>/sql/node (the build's schemas/ folder when schema_dir is
 * not set): the front-end database's migrations. */
void gdx_node_config_migrations_dir(const gdx_node_config *cfg, char *out, size_t n);

#endif
