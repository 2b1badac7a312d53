/* The daemon's state, shared by the files that make it up: node.c (start,
 * stop, the listeners), heartbeat.c and renew.c. Internal to gdx-node:
 * nothing outside frontend-node/ includes it. */
#ifndef GDX_NODE_INT_H
#define GDX_NODE_INT_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "adapter.h"
#include "broker_client.h"
#include "folder_sub.h"
#include "http.h"
#include "node.h"
#include "router.h"
#include "scan.h"
#include "table_sub.h"

#ifndef GDX_VERSION
#define GDX_VERSION "0.0.0"
#endif

/* The heartbeat (heartbeat.c): adapter health probes, then the report. */
typedef struct {
  uv_timer_t timer;
  int started;        /* the timer was initialised */
  int health_pending; /* probes not answered yet (+1 while they are started) */
  int busy;           /* a report in flight */
  gdx_buf answer;
  json_t *events;      /* adapters' events the broker has not taken yet */
  json_t *events_sent; /* those in the report in flight */
  int broker_ok;       /* the last report was accepted */
  uint64_t ok, failed;
} gdx__node_heartbeat;

/* Certificate renewal (renew.c), when the broker asks for it. */
typedef struct {
  int busy;
  char *key; /* the new key, until its certificate is in place */
  gdx_buf answer;
  uint64_t done;
  time_t not_after; /* the certificate in use expires then */
} gdx__node_renewal;

struct gdx_node {
  gdx_adapter_env env; /* first: adapters' callbacks find the node through it */
  uv_loop_t *loop;
  const gdx_node_config *cfg;
  gdx_http_server *http, *admin;
  gdx_router *router, *admin_router;
  gdx_httpc *httpc;          /* the API adapters' upstreams */
  gdx_broker_client *broker; /* every request to the broker */
  gdx_db_pool *frontdb;      /* the unit's front-end database, when configured */
  char migrations_dir[4096]; /* its migrations (the pool keeps a pointer) */
  gdx_table_sub_env table_env;
  gdx_table_sub *subs[GDX_NODE_MAX_RESOURCES];
  int nsubs;
  gdx_folder_sub_env folder_env;
  gdx_folder_sub *fsubs[GDX_NODE_MAX_RESOURCES];
  int nfsubs;
  gdx_scanner *scanner; /* for folder subscriptions */
  gdx_adapter *res[GDX_NODE_MAX_RESOURCES];
  int nres;
  char key_file[1024], cert_file[1024], ca_file[1024];
  char advertise[512];
  int stopping, pending_stops;
  uint64_t refused_peers;
  gdx__node_heartbeat hb;
  gdx__node_renewal renew;
  void (*on_stopped)(void *);
  void *stopped_data;
};

/* heartbeat.c: reports every heartbeat_interval_s from now on. */
void gdx__node_heartbeat_start(gdx_node *n);
/* Stops reporting: 1 when closed runs later (the timer's close), 0 when
 * the heartbeat never started. */
int gdx__node_heartbeat_stop(gdx_node *n, uv_close_cb closed);
void gdx__node_heartbeat_free(gdx_node *n);

/* renew.c: a new key and certificate, asked for over the broker client;
 * the listener's TLS context is reloaded with them. One at a time. */
void gdx__node_renew_start(gdx_node *n);
/* Reads when the certificate in use expires (for /metrics). */
void gdx__node_renew_load_expiry(gdx_node *n);
void gdx__node_renew_free(gdx_node *n);

#endif
