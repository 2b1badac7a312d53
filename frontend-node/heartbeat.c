/* The heartbeat: every heartbeat_interval_s the adapters' health probes
 * run, then POST /node/v1/heartbeat reports the version, the advertised
 * address, each resource's health and the adapters' events (up to 100; the
 * rest, and those of a report that failed, go with the next). The answer
 * is passed on: to the adapters (hint: a table's purge floor), to the
 * table subscriptions the broker wants reconciled, and a renewal when the
 * certificate is close to expiry. */
#include <string.h>

#include "error.h"
#include "log.h"
#include "node_int.h"

#define REPORT_TIMEOUT_MS 10000
#define ANSWER_MAX (1 << 20)
#define EVENTS_PER_REPORT 100
#define EVENTS_KEPT 1000 /* events of failed reports kept for the next */

/* Events of a report that did not go through are sent again (the old ones
 * first). */
static void events_back(gdx__node_heartbeat *hb) {
  json_array_extend(hb->events_sent, hb->events);
  json_decref(hb->events);
  hb->events = hb->events_sent;
  hb->events_sent = NULL;
}

/* The broker's answer, to those it concerns. */
static void take_answer(gdx_node *n, const json_t *j) {
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
  if (json_is_true(json_object_get(j, "renew")) && !n->renew.busy && !n->stopping) {
    gdx_log_info("node", "the broker asks for a certificate renewal");
    gdx__node_renew_start(n);
  }
}

static void reported(int status, long http, const char *why, void *data) {
  gdx_node *n = data;
  gdx__node_heartbeat *hb = &n->hb;
  hb->busy = 0;
  int ok = status == GDX_OK && http == 200;
  if (hb->events_sent && !ok && json_array_size(hb->events) < EVENTS_KEPT) {
    events_back(hb); /* not taken: sent again with the next heartbeat */
  } else if (hb->events_sent) {
    json_decref(hb->events_sent);
    hb->events_sent = NULL;
  }
  if (ok != hb->broker_ok)
    gdx_log(ok ? GDX_LOG_INFO : GDX_LOG_WARN, "node", NULL, "broker %s%s%s",
            ok ? "reachable at " : "unreachable: ", ok ? gdx_broker_client_url(n->broker) : "",
            ok ? "" : (status != GDX_OK ? why : "heartbeat refused"));
  hb->broker_ok = ok;
  if (!ok) {
    hb->failed++;
    if (http == 401 || http == 403)
      gdx_log_error("node", "the broker refused the heartbeat (%ld): %.*s", http,
                    (int)(hb->answer.len > 300 ? 300 : hb->answer.len),
                    hb->answer.data ? hb->answer.data : "");
    return;
  }
  hb->ok++;
  json_t *j = json_loadb(hb->answer.data ? hb->answer.data : "", hb->answer.len, 0, NULL);
  take_answer(n, j);
  json_decref(j);
}

static void report(gdx_node *n) {
  gdx__node_heartbeat *hb = &n->hb;
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
      n->res[i]->ops->events(n->res[i], hb->events);
  if (json_array_size(hb->events) > 0) { /* the rest next time */
    hb->events_sent = json_array();
    while (json_array_size(hb->events) > 0 &&
           json_array_size(hb->events_sent) < EVENTS_PER_REPORT) {
      json_array_append(hb->events_sent, json_array_get(hb->events, 0));
      json_array_remove(hb->events, 0);
    }
    json_object_set(j, "events", hb->events_sent);
  }
  /* libcurl's engine, as ever for the heartbeat: a report a period is no
   * hot path */
  gdx_broker_req r = {.method = "POST",
                      .path = "/node/v1/heartbeat",
                      .json = j,
                      .timeout_ms = REPORT_TIMEOUT_MS,
                      .curl = 1};
  if (gdx_broker_call(n->broker, &r, &hb->answer, 0, reported, n, NULL) == GDX_OK)
    hb->busy = 1;
  else if (hb->events_sent)
    events_back(hb);
  json_decref(j);
}

static void health_done(gdx_adapter *a) {
  gdx_node *n = (gdx_node *)a->env; /* env is the first member */
  if (--n->hb.health_pending == 0 && !n->stopping)
    report(n);
}

static void on_timer(uv_timer_t *t) {
  gdx_node *n = t->data;
  if (n->hb.busy || n->hb.health_pending || n->renew.busy)
    return;
  n->hb.health_pending = n->nres + 1;
  for (int i = 0; i < n->nres; i++)
    n->res[i]->ops->health(n->res[i], health_done);
  if (--n->hb.health_pending == 0)
    report(n);
}

void gdx__node_heartbeat_start(gdx_node *n) {
  gdx_buf_init(&n->hb.answer, ANSWER_MAX);
  n->hb.events = json_array();
  uv_timer_init(n->loop, &n->hb.timer);
  n->hb.timer.data = n;
  n->hb.started = 1;
  uv_timer_start(&n->hb.timer, on_timer, 0, (uint64_t)n->cfg->heartbeat_interval_s * 1000);
}

int gdx__node_heartbeat_stop(gdx_node *n, uv_close_cb closed) {
  if (!n->hb.started)
    return 0;
  uv_timer_stop(&n->hb.timer);
  uv_close((uv_handle_t *)&n->hb.timer, closed);
  return 1;
}

void gdx__node_heartbeat_free(gdx_node *n) {
  gdx_buf_free(&n->hb.answer);
  json_decref(n->hb.events);
  json_decref(n->hb.events_sent);
}
