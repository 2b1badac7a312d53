/* Resource adapters of the front-end node.
 *
 * A node exposes resources; each is served by an adapter of one kind:
 *   api    an internal HTTP service (api.c)
 *   table  a table in the unit's front-end database (table.c; table_int.h
 *          names the files it is split into)
 *   file   a folder (file.c, file_index.c)
 * The node reads each resource's settings from its configuration file and
 * hands them to the adapter's open(); requests from the broker for
 * /r/<resource>/<rest> go to serve(); health() runs before each heartbeat
 * and its answer is reported to the broker. Secrets an adapter needs (an
 * upstream's API key) stay in the node's configuration and never reach the
 * broker.
 */
#ifndef GDX_ADAPTER_H
#define GDX_ADAPTER_H

#include <jansson.h>
#include <libconfig.h>
#include <stddef.h>
#include <uv.h>

#include "db.h"
#include "http.h"
#include "httpc.h"

typedef struct gdx_adapter gdx_adapter;

/* What the node lends its adapters. */
typedef struct {
  uv_loop_t *loop;
  gdx_httpc *httpc;     /* shared client: pooled upstream connections */
  gdx_db_pool *frontdb; /* the unit's front-end database, or NULL */
  const char *state_dir; /* the node's state folder (a file resource's index) */
} gdx_adapter_env;

typedef struct {
  const char *kind;
  /* Reads the resource's settings (s is its group in the file); err names
   * the key: "resources[0].base_url: must start with http:// or https://". */
  int (*open)(gdx_adapter *a, const config_setting_t *s, char *err, size_t errlen);
  /* A request from the broker; rest is the path after /r/<name>/. */
  void (*serve)(gdx_adapter *a, gdx_http_req *req, const char *rest);
  /* Checks health; calls done (maybe later) with "up", "down" or "unknown". */
  void (*health)(gdx_adapter *a, void (*done)(gdx_adapter *a));
  /* Optional: the broker's heartbeat answer (a table purges its change
   * log below its slowest subscriber). */
  void (*hint)(gdx_adapter *a, const json_t *heartbeat);
  /* Optional: moves the events the broker must hear of (a refused file)
   * into out, a JSON array; they go with the next heartbeat. */
  void (*events)(gdx_adapter *a, json_t *out);
  /* Optional: Prometheus lines of the resource. */
  void (*metrics)(gdx_adapter *a, gdx_buf *out);
  /* After the database pool has stopped. */
  void (*close)(gdx_adapter *a);
} gdx_adapter_ops;

struct gdx_adapter {
  const gdx_adapter_ops *ops;
  const gdx_adapter_env *env;
  char name[65];
  char health[8];   /* "up", "down", "unknown" */
  char detail[300];
  void *impl;
};

/* The adapter kinds this build has, or NULL. */
const gdx_adapter_ops *gdx_adapter_find(const char *kind);

/* Settings of resource `name`: a string into out (def when absent; NULL
 * makes the key required), or an integer in [min, max] (def when absent;
 * *bad set on error). Errors name the line, the resource and the key. */
int gdx_adapter_str(const config_setting_t *s, const char *key, char *out, size_t n,
                    const char *def, const char *name, char *err, size_t errlen);
long gdx_adapter_int(const config_setting_t *s, const char *key, long def, long min, long max,
                     int *bad, char *err, size_t errlen, const char *name);

extern const gdx_adapter_ops gdx_adapter_api;
extern const gdx_adapter_ops gdx_adapter_table;
extern const gdx_adapter_ops gdx_adapter_file;

#endif
