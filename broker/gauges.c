#include "gauges.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "metrics.h"

#define POLL_MS 2000

struct gauges {
  const gdx_broker_config *cfg;
  gdx_db_pool *db;
  uv_timer_t timer;
  char *text;         /* the last poll, rendered */
  json_t *node_state; /* "unit/node" -> state, for the transition log lines */
  int busy, stopping, timer_closed;
  void (*stop_cb)(void *);
  void *stop_data;
};

static void maybe_stopped(gauges *p);

typedef struct {
  gauges *p;
  gdx_db_result r, alarms, subs;
} poll_job;

static int nodes_work(gdx_db_conn *c, void *arg) {
  poll_job *j = arg;
  gdx_db_param p[] = {GDX_DB_P_INT(j->p->cfg->node_offline_after_s)};
  int rc = gdx_db_query(c,
                        "SELECT kind, COUNT(*) FROM alarms WHERE state = 'open' GROUP BY kind "
                        "LIMIT 100",
                        NULL, 0, 100, &j->alarms);
  if (!rc)
    rc = gdx_db_query(c,
                      "SELECT authorization_id, IFNULL(position, 0), rows_applied, "
                      "IFNULL(TIMESTAMPDIFF(SECOND, '1970-01-01', last_ack_at), 0) FROM "
                      "table_subscriptions ORDER BY authorization_id LIMIT 10000",
                      NULL, 0, 10000, &j->subs);
  if (rc)
    return rc;
  return gdx_db_query(c,
                      "SELECT u.code, n.node_id, IF(n.status = 'active' AND n.last_heartbeat >= "
                      "UTC_TIMESTAMP(6) - INTERVAL ? SECOND, 'online', IF(n.status = 'active', "
                      "'offline', n.status)), IFNULL(TIMESTAMPDIFF(SECOND, '1970-01-01', "
                      "n.last_heartbeat), 0) FROM nodes n JOIN units u ON u.id = n.unit_id "
                      "ORDER BY u.code, n.node_id LIMIT 10000",
                      p, 1, 10000, &j->r);
}

static void nodes_done(int status, void *arg) {
  poll_job *j = arg;
  gauges *p = j->p;
  p->busy = 0;
  if (status == GDX_OK) {
    gdx_buf b;
    gdx_buf_init(&b, 4 << 20);
    int counts[4] = {0};
    static const char *const states[] = {"online", "offline", "pending", "revoked"};
    gdx_metrics_header(&b, "gdx_node_up", "gauge",
                       "1 when the node's last heartbeat is recent (nodes.offline_after_s).");
    for (size_t i = 0; i < j->r.nrows; i++) {
      const char *unit = gdx_db_get(&j->r, i, 0), *node = gdx_db_get(&j->r, i, 1),
                 *st = gdx_db_get(&j->r, i, 2);
      for (int s = 0; s < 4; s++)
        counts[s] += strcmp(st, states[s]) == 0;
      if (strcmp(st, "online") == 0 || strcmp(st, "offline") == 0)
        gdx_buf_appendf(&b, "gdx_node_up{unit=\"%s\",node=\"%s\"} %d\n", unit, node,
                        strcmp(st, "online") == 0);
      char key[100];
      snprintf(key, sizeof(key), "%s/%s", unit, node);
      const char *was = json_string_value(json_object_get(p->node_state, key));
      if (was && strcmp(was, st) != 0 && (strcmp(st, "offline") == 0 || strcmp(st, "online") == 0))
        gdx_log(strcmp(st, "offline") == 0 ? GDX_LOG_WARN : GDX_LOG_INFO, "nodes", NULL,
                "node %s is %s (last heartbeat %s)", key, st,
                strcmp(st, "offline") == 0 ? "too long ago" : "just now");
      json_object_set_new(p->node_state, key, json_string(st));
    }
    gdx_metrics_header(&b, "gdx_node_last_heartbeat_seconds", "gauge",
                       "Unix time of each node's last heartbeat.");
    for (size_t i = 0; i < j->r.nrows; i++) {
      gdx_db_row w = gdx_db_row_at(&j->r, i);
      long long at = gdx_db_i64(&w, 3, 0, LLONG_MAX);
      if (at > 0)
        gdx_buf_appendf(&b, "gdx_node_last_heartbeat_seconds{unit=\"%s\",node=\"%s\"} %lld\n",
                        gdx_db_get(&j->r, i, 0), gdx_db_get(&j->r, i, 1), at);
    }
    gdx_metrics_header(&b, "gdx_nodes", "gauge", "Nodes by state.");
    for (int s = 0; s < 4; s++)
      gdx_buf_appendf(&b, "gdx_nodes{state=\"%s\"} %d\n", states[s], counts[s]);
    gdx_metrics_header(&b, "gdx_alarms_open", "gauge",
                       "Open alarms by kind (GET /api/v1/alarms), 0 when none.");
    static const char *const kinds[] = {"batch_mismatch", "reconciliation_differences",
                                        "reconciliation_failed"};
    for (size_t k = 0; k < 3; k++) {
      const char *n = "0";
      for (size_t i = 0; i < j->alarms.nrows; i++)
        if (strcmp(gdx_db_get(&j->alarms, i, 0), kinds[k]) == 0)
          n = gdx_db_get(&j->alarms, i, 1);
      gdx_buf_appendf(&b, "gdx_alarms_open{kind=\"%s\"} %s\n", kinds[k], n);
    }
    gdx_metrics_header(&b, "gdx_table_subscription_position", "gauge",
                       "Change-log position each table subscription has applied and reported.");
    for (size_t i = 0; i < j->subs.nrows; i++)
      gdx_buf_appendf(&b, "gdx_table_subscription_position{authorization=\"%s\"} %s\n",
                      gdx_db_get(&j->subs, i, 0), gdx_db_get(&j->subs, i, 1));
    gdx_metrics_header(&b, "gdx_table_subscription_rows_applied", "gauge",
                       "Rows applied per table subscription, from its ledger reports.");
    for (size_t i = 0; i < j->subs.nrows; i++)
      gdx_buf_appendf(&b, "gdx_table_subscription_rows_applied{authorization=\"%s\"} %s\n",
                      gdx_db_get(&j->subs, i, 0), gdx_db_get(&j->subs, i, 2));
    gdx_metrics_header(&b, "gdx_table_subscription_last_report_seconds", "gauge",
                       "Unix time of each table subscription's last ledger report.");
    for (size_t i = 0; i < j->subs.nrows; i++)
      gdx_buf_appendf(&b,
                      "gdx_table_subscription_last_report_seconds{authorization=\"%s\"} "
                      "%s\n",
                      gdx_db_get(&j->subs, i, 0), gdx_db_get(&j->subs, i, 3));
    free(p->text);
    p->text = gdx_buf_detach(&b, NULL);
  }
  gdx_db_result_free(&j->r);
  gdx_db_result_free(&j->alarms);
  gdx_db_result_free(&j->subs);
  free(j);
  maybe_stopped(p);
}

static void on_nodes_timer(uv_timer_t *t) {
  gauges *p = t->data;
  if (p->busy || p->stopping)
    return;
  poll_job *j = calloc(1, sizeof(*j));
  if (j == NULL)
    return;
  j->p = p;
  if (gdx_db_submit(p->db, nodes_work, nodes_done, j) != GDX_OK) {
    free(j);
    return;
  }
  p->busy = 1;
}

int gauges_new(uv_loop_t *loop, const gdx_broker_config *cfg, gdx_db_pool *db, gauges **out) {
  gauges *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return GDX_ENOMEM;
  p->cfg = cfg;
  p->db = db;
  p->node_state = json_object();
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  uv_timer_start(&p->timer, on_nodes_timer, 0, POLL_MS);
  *out = p;
  return GDX_OK;
}

void gauges_metrics(gauges *p, gdx_buf *out) {
  if (p->text)
    gdx_buf_appends(out, p->text);
}

static void on_timer_closed(uv_handle_t *h) {
  gauges *p = h->data;
  p->timer_closed = 1;
  maybe_stopped(p);
}

static void maybe_stopped(gauges *p) {
  if (!p->stopping || p->busy || !p->timer_closed)
    return;
  void (*cb)(void *) = p->stop_cb;
  void *data = p->stop_data;
  free(p->text);
  json_decref(p->node_state);
  free(p);
  if (cb)
    cb(data);
}

void gauges_stop(gauges *p, void (*cb)(void *), void *data) {
  p->stopping = 1;
  p->stop_cb = cb;
  p->stop_data = data;
  uv_timer_stop(&p->timer);
  uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}
