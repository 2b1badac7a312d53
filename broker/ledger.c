/* The reconciliation ledger (对账) of table subscriptions, and alarms.
 *
 * Consumer nodes report to the broker over mutual TLS:
 *   POST /node/v1/ledger/<authorization>           applied batches + where they stand
 *   POST /node/v1/reconciliations/<authorization>  the result of a reconciliation run
 * and people read and act through the API:
 *   GET  /api/v1/subscriptions                     every subscription they may see
 *   GET  /api/v1/subscriptions/<a>/report?date=    the daily report
 *   POST /api/v1/subscriptions/<a>/reconcile       ask the consumer's node for a run
 *   GET  /api/v1/reconciliations?authorization=    runs, newest first
 *   GET  /api/v1/alarms[?state=open|all]           alarms
 *   POST /api/v1/alarms/<id>/ack                   acknowledge one
 *
 * The broker stores counts, checksums and (for a run) up to 20 keys of
 * differing rows - never the rows themselves. A batch whose two checksums
 * or counts differ, and a run that finds differences, raise an alarm; an
 * open alarm of the same kind and subscription is counted again rather
 * than raised twice. The provider learns the lowest applied position of
 * its table's subscribers with its heartbeat (ledger_purge_hints) and may
 * drop its change log below it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "error.h"
#include "log.h"

typedef struct {
  long long consumer_id, provider_id;
  char consumer[19], provider[19], method[16], node[65], resource[65], code[41];
  int active;
} subinfo;

static int load_sub(gdx_db_conn *c, long long aid, subinfo *s, int *found) {
  gdx_db_param p[] = {GDX_DB_P_INT(aid)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT a.consumer_unit_id, cu.code, a.method, a.status = 'active', "
                        "e.provider_unit_id, pu.code, e.published_body, e.resource_code "
                        "FROM authorizations a JOIN catalog_entries e ON e.id = a.entry_id "
                        "JOIN units cu ON cu.id = a.consumer_unit_id "
                        "JOIN units pu ON pu.id = e.provider_unit_id WHERE a.id = ?",
                        p, 1, 1, &r);
  if (rc)
    return rc;
  *found = r.nrows == 1;
  if (*found) {
    s->consumer_id = atoll(gdx_db_get(&r, 0, 0));
    snprintf(s->consumer, sizeof(s->consumer), "%s", gdx_db_get(&r, 0, 1));
    snprintf(s->method, sizeof(s->method), "%s", gdx_db_get(&r, 0, 2));
    s->active = atoi(gdx_db_get(&r, 0, 3));
    s->provider_id = atoll(gdx_db_get(&r, 0, 4));
    snprintf(s->provider, sizeof(s->provider), "%s", gdx_db_get(&r, 0, 5));
    snprintf(s->code, sizeof(s->code), "%s", gdx_db_get(&r, 0, 7));
    json_t *body = gdx_db_get(&r, 0, 6) ? json_loads(gdx_db_get(&r, 0, 6), 0, NULL) : NULL;
    json_t *att = json_object_get(body, "attachment");
    const char *node = json_string_value(json_object_get(att, "node"));
    const char *target = json_string_value(json_object_get(att, "target"));
    snprintf(s->node, sizeof(s->node), "%s", node ? node : "");
    snprintf(s->resource, sizeof(s->resource), "%s", target ? target : "");
    json_decref(body);
  }
  gdx_db_result_free(&r);
  return GDX_OK;
}

/* The authorization in the path, for the calling node: its unit must be
 * the consumer, the method subscribe or fetch. */
static int node_sub(gdx_db_conn *c, api_ctx *x, long long *aid, subinfo *s) {
  *aid = atoll(x->params[0]);
  snprintf(x->audit_object, sizeof(x->audit_object), "authorization:%lld", *aid);
  snprintf(x->audit_actor, sizeof(x->audit_actor), "node:%s", x->node_name);
  snprintf(x->audit_unit, sizeof(x->audit_unit), "%s", x->node_unit);
  int found = 0;
  int rc = load_sub(c, *aid, s, &found);
  if (rc)
    return rc;
  if (!found || strcmp(s->consumer, x->node_unit) != 0)
    return api_fail(x, 404, "not_found", "unit %s holds no authorization %lld", x->node_unit,
                    *aid);
  if (strcmp(s->method, "subscribe") != 0 && strcmp(s->method, "fetch") != 0)
    return api_fail(x, 409, "wrong_method", "authorization %lld is for %s, not a table", *aid,
                    s->method);
  return GDX_OK;
}

/* Raises an alarm, or counts it again while the same one is open. */
static int raise_alarm(gdx_db_conn *c, const char *kind, long long aid, const subinfo *s,
                       const char *msg) {
  gdx_db_param p[] = {GDX_DB_P_STR(msg), GDX_DB_P_INT(aid), GDX_DB_P_STR(kind)};
  uint64_t n = 0;
  int rc = gdx_db_exec(c,
                       "UPDATE alarms SET occurrences = occurrences + 1, message = ?, "
                       "last_seen_at = UTC_TIMESTAMP(6) WHERE authorization_id = ? AND kind = ? "
                       "AND state = 'open'",
                       p, 3, &n, NULL);
  if (rc || n > 0)
    return rc;
  gdx_db_param pi[] = {GDX_DB_P_STR(kind), GDX_DB_P_INT(aid), GDX_DB_P_INT(s->consumer_id),
                       GDX_DB_P_INT(s->provider_id), GDX_DB_P_STR(msg)};
  rc = gdx_db_exec(c,
                   "INSERT INTO alarms (kind, authorization_id, consumer_unit_id, "
                   "provider_unit_id, message, state, raised_at, last_seen_at) "
                   "VALUES (?, ?, ?, ?, ?, 'open', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                   pi, 5, NULL, NULL);
  if (!rc)
    gdx_log_warn("ledger", "alarm %s on authorization %lld: %s", kind, aid, msg);
  return rc;
}

/* ------------------------------------------------------------------ */
/* from consumer nodes                                                 */

/* Where a subscription stands, after a report of its consumer's node: the
 * batches (or files), rows and mismatches add up; position -1 is none (a
 * snapshot not acknowledged yet, or a folder). */
static int record_standing(gdx_db_conn *c, long long aid, const subinfo *s, const char *target,
                           const char *phase, long long position, long long batches,
                           long long sent, long long applied, long long mismatched) {
  gdx_db_param p[] = {GDX_DB_P_INT(aid),
                      GDX_DB_P_INT(s->consumer_id),
                      GDX_DB_P_INT(s->provider_id),
                      GDX_DB_P_STR(s->node),
                      GDX_DB_P_STR(s->resource),
                      GDX_DB_P_STR(target),
                      GDX_DB_P_STR(phase),
                      position >= 0 ? GDX_DB_P_INT(position) : GDX_DB_P_NULL,
                      GDX_DB_P_INT(batches),
                      GDX_DB_P_INT(sent),
                      GDX_DB_P_INT(applied),
                      GDX_DB_P_INT(mismatched)};
  return gdx_db_exec(c,
                     "INSERT INTO table_subscriptions (authorization_id, consumer_unit_id, "
                     "provider_unit_id, provider_node, resource, target, phase, position, "
                     "batches, rows_sent, rows_applied, mismatched_batches, last_ack_at, "
                     "started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), "
                     "UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE target = VALUES(target), "
                     "phase = VALUES(phase), position = VALUES(position), "
                     "batches = batches + VALUES(batches), rows_sent = rows_sent + "
                     "VALUES(rows_sent), rows_applied = rows_applied + VALUES(rows_applied), "
                     "mismatched_batches = mismatched_batches + VALUES(mismatched_batches), "
                     "last_ack_at = UTC_TIMESTAMP(6)",
                     p, 12, NULL, NULL);
}

static int work_ledger(gdx_db_conn *c, api_ctx *x) {
  long long aid;
  subinfo s;
  int rc = node_sub(c, x, &aid, &s);
  if (rc || x->status)
    return rc;
  json_t *entries = json_object_get(x->in, "entries");
  const char *phase = json_string_value(json_object_get(x->in, "phase"));
  json_t *pos = json_object_get(x->in, "position");
  const char *target = json_string_value(json_object_get(x->in, "target"));
  long long sent = 0, applied = 0, mismatched = 0;
  size_t i;
  json_t *e;
  json_array_foreach(entries, i, e) {
    long long rs = json_integer_value(json_object_get(e, "rows_sent"));
    long long ra = json_integer_value(json_object_get(e, "rows_applied"));
    const char *cs = json_string_value(json_object_get(e, "checksum_sent"));
    const char *ca = json_string_value(json_object_get(e, "checksum_applied"));
    int matched = rs == ra && strcmp(cs, ca) == 0;
    gdx_db_param p[] = {GDX_DB_P_INT(aid),
                        GDX_DB_P_STR(json_string_value(json_object_get(e, "kind"))),
                        GDX_DB_P_STR(json_string_value(json_object_get(e, "from"))),
                        GDX_DB_P_STR(json_string_value(json_object_get(e, "to"))),
                        GDX_DB_P_INT(rs), GDX_DB_P_STR(cs), GDX_DB_P_INT(ra), GDX_DB_P_STR(ca),
                        GDX_DB_P_INT(matched),
                        GDX_DB_P_INT(json_integer_value(json_object_get(e, "applied_at")))};
    rc = gdx_db_exec(c,
                     "INSERT INTO table_ledger (authorization_id, kind, batch_from, batch_to, "
                     "rows_sent, checksum_sent, rows_applied, checksum_applied, matched, "
                     "applied_at, recorded_at) VALUES (?, ?, LEFT(?, 300), LEFT(?, 300), ?, ?, "
                     "?, ?, ?, FROM_UNIXTIME(? / 1000), UTC_TIMESTAMP(6))",
                     p, 10, NULL, NULL);
    if (rc)
      return rc;
    sent += rs;
    applied += ra;
    if (!matched) {
      mismatched++;
      char msg[400];
      snprintf(msg, sizeof(msg), "a %s batch (%s -> %s) was sent with %lld rows, checksum %s, "
               "and applied with %lld rows, checksum %s",
               json_string_value(json_object_get(e, "kind")),
               json_string_value(json_object_get(e, "from")),
               json_string_value(json_object_get(e, "to")), rs, cs, ra, ca);
      rc = raise_alarm(c, "batch_mismatch", aid, &s, msg);
      if (rc)
        return rc;
    }
  }
  rc = record_standing(c, aid, &s, target ? target : "", phase,
                       json_is_integer(pos) ? json_integer_value(pos) : -1,
                       (long long)json_array_size(entries), sent, applied, mismatched);
  if (rc)
    return rc;
  gdx_db_param pq[] = {GDX_DB_P_INT(aid)};
  gdx_db_result r;
  rc = gdx_db_query(c, "SELECT reconcile_requested FROM table_subscriptions WHERE "
                       "authorization_id = ?", pq, 1, 1, &r);
  if (rc)
    return rc;
  int want = r.nrows == 1 && atoi(gdx_db_get(&r, 0, 0));
  gdx_db_result_free(&r);
  x->out = json_pack("{s:I, s:b}", "recorded", (json_int_t)json_array_size(entries),
                     "reconcile", want);
  return GDX_OK;
}

/* An audit record for a node's report about a file (detail: taken). */
static int audit_file(gdx_db_conn *c, const api_ctx *x, const char *actor, const char *unit,
                      const char *action, const char *obj, const char *result, json_t *detail) {
  char *dj = json_dumps(detail, JSON_COMPACT);
  json_decref(detail);
  int rc = api_audit_append(c, actor, unit, action, obj, "", result, x->source, x->request_id,
                            dj ? dj : "{}");
  free(dj);
  return rc;
}

/* POST /node/v1/files/<authorization>: the files of a folder subscription
 * its consumer's node delivered or quarantined. A quarantined file raises
 * an alarm and writes an audit record for each side (the consumer's node
 * stopped it; the provider's unit published it). */
static int work_files(gdx_db_conn *c, api_ctx *x) {
  long long aid;
  subinfo s;
  int rc = node_sub(c, x, &aid, &s);
  if (rc || x->status)
    return rc;
  json_t *entries = json_object_get(x->in, "entries");
  const char *folder = json_string_value(json_object_get(x->in, "folder"));
  long long quarantined = 0;
  size_t i;
  json_t *e;
  json_array_foreach(entries, i, e) {
    const char *path = json_string_value(json_object_get(e, "path"));
    const char *status = json_string_value(json_object_get(e, "status"));
    const char *sm3s = json_string_value(json_object_get(e, "sm3_sent"));
    const char *sm3r = json_string_value(json_object_get(e, "sm3_received"));
    const char *detail = json_string_value(json_object_get(e, "detail"));
    const char *sha = json_string_value(json_object_get(e, "sha256"));
    int delivered = strcmp(status, "delivered") == 0;
    int verified = delivered && strcmp(sm3s, sm3r) == 0;
    gdx_db_param p[] = {GDX_DB_P_INT(aid),
                        GDX_DB_P_STR(path),
                        GDX_DB_P_INT(json_integer_value(json_object_get(e, "size"))),
                        GDX_DB_P_STR(sha),
                        GDX_DB_P_STR(sm3s),
                        GDX_DB_P_STR(sm3r),
                        GDX_DB_P_INT(json_integer_value(json_object_get(e, "bytes_received"))),
                        GDX_DB_P_INT(json_integer_value(json_object_get(e, "resumed_from"))),
                        GDX_DB_P_STR(status),
                        GDX_DB_P_INT(verified),
                        GDX_DB_P_INT(json_is_true(json_object_get(e, "version_kept"))),
                        GDX_DB_P_STR(detail),
                        GDX_DB_P_INT(json_integer_value(json_object_get(e, "received_at"))),
                        GDX_DB_P_INT(json_integer_value(json_object_get(e, "verified_at")))};
    rc = gdx_db_exec(c,
                     "INSERT INTO file_ledger (authorization_id, path, size, sha256, sm3_sent, "
                     "sm3_received, bytes_received, resumed_from, status, verified, "
                     "version_kept, detail, received_at, verified_at, recorded_at) VALUES (?, ?, "
                     "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000), "
                     "FROM_UNIXTIME(? / 1000), UTC_TIMESTAMP(6))",
                     p, 14, NULL, NULL);
    if (rc)
      return rc;
    char msg[700];
    if (delivered && !verified) {
      snprintf(msg, sizeof(msg), "%s was delivered with SM3 %.64s, the provider listed %.64s",
               path, sm3r, sm3s);
      rc = raise_alarm(c, "file_mismatch", aid, &s, msg);
    }
    if (!delivered) {
      quarantined++;
      snprintf(msg, sizeof(msg), "%s (sha256 %.16s…) was quarantined by the consumer's node: %s",
               path, sha, detail);
      rc = raise_alarm(c, "file_quarantined", aid, &s, msg);
      char obj[1100];
      snprintf(obj, sizeof(obj), "file:%s/%s", s.resource, path);
      const char *units[] = {s.consumer, s.provider}; /* both sides hear of it */
      for (int u = 0; u < 2 && !rc; u++)
        rc = audit_file(c, x, x->audit_actor, units[u], "file.quarantined", obj, "ok",
                        json_pack("{s:I, s:s, s:s, s:s}", "authorization_id", (json_int_t)aid,
                                  "sha256", sha, "reason", detail, "folder",
                                  folder ? folder : ""));
    }
    if (rc)
      return rc;
  }
  rc = record_standing(c, aid, &s, folder ? folder : "", "files", -1,
                       (long long)json_array_size(entries), 0, 0, quarantined);
  if (!rc)
    x->out = json_pack("{s:I}", "recorded", (json_int_t)json_array_size(entries));
  return rc;
}

/* Events in a provider node's heartbeat: a file its folder adapter refused
 * (a disguised or oversized file) - an audit record and an alarm for the
 * provider's unit, once per path while the alarm is open. */
int ledger_node_events(gdx_db_conn *c, api_ctx *x, const json_t *events) {
  size_t i;
  json_t *e;
  json_array_foreach(events, i, e) {
    const char *res = json_string_value(json_object_get(e, "resource"));
    const char *path = json_string_value(json_object_get(e, "path"));
    const char *detail = json_string_value(json_object_get(e, "detail"));
    char msg[1400], obj[1100];
    snprintf(msg, sizeof(msg), "%s/%s refused by node %s: %s", res, path, x->node_name, detail);
    snprintf(obj, sizeof(obj), "file:%s/%s", res, path);
    char actor[80];
    snprintf(actor, sizeof(actor), "node:%s", x->node_name);
    int rc = audit_file(c, x, actor, x->node_unit, "file.refused", obj, "refused",
                        json_pack("{s:s, s:s, s:I}", "node", x->node_name, "reason", detail,
                                  "size",
                                  (json_int_t)json_integer_value(json_object_get(e, "size"))));
    if (rc)
      return rc;
    gdx_db_param p[] = {GDX_DB_P_STR(msg), GDX_DB_P_STR(res), GDX_DB_P_STR(msg)};
    uint64_t n = 0;
    rc = gdx_db_exec(c,
                     "UPDATE alarms SET occurrences = occurrences + 1, message = ?, "
                     "last_seen_at = UTC_TIMESTAMP(6) WHERE kind = 'file_refused' AND "
                     "authorization_id IS NULL AND resource = ? AND message = ? AND "
                     "state = 'open'",
                     p, 3, &n, NULL);
    if (!rc && n == 0) {
      gdx_db_param pi[] = {GDX_DB_P_STR(msg), GDX_DB_P_STR(res), GDX_DB_P_INT(x->node_row)};
      rc = gdx_db_exec(c,
                       "INSERT INTO alarms (kind, authorization_id, consumer_unit_id, "
                       "provider_unit_id, message, state, raised_at, last_seen_at, resource) "
                       "SELECT 'file_refused', NULL, NULL, unit_id, ?, 'open', "
                       "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), ? FROM nodes WHERE id = ?",
                       pi, 3, NULL, NULL);
      gdx_log_warn("ledger", "alarm file_refused: %s", msg);
    }
    if (rc)
      return rc;
  }
  return GDX_OK;
}

static long long in_int(const api_ctx *x, const char *k) {
  return (long long)json_integer_value(json_object_get(x->in, k));
}

static int work_reconciliation(gdx_db_conn *c, api_ctx *x) {
  long long aid;
  subinfo s;
  int rc = node_sub(c, x, &aid, &s);
  if (rc || x->status)
    return rc;
  const char *status = json_string_value(json_object_get(x->in, "status"));
  char *detail = json_dumps(json_object_get(x->in, "differences"), JSON_COMPACT);
  long long missing = in_int(x, "rows_missing"), extra = in_int(x, "rows_extra"),
            different = in_int(x, "rows_different"), repaired = in_int(x, "rows_repaired");
  gdx_db_param p[] = {GDX_DB_P_INT(aid),
                      GDX_DB_P_STR(status),
                      GDX_DB_P_INT(in_int(x, "chunks")),
                      GDX_DB_P_INT(in_int(x, "chunks_differing")),
                      GDX_DB_P_INT(in_int(x, "rows_source")),
                      GDX_DB_P_INT(in_int(x, "rows_target")),
                      GDX_DB_P_INT(missing),
                      GDX_DB_P_INT(extra),
                      GDX_DB_P_INT(different),
                      GDX_DB_P_INT(in_int(x, "rows_in_flight")),
                      GDX_DB_P_INT(repaired),
                      GDX_DB_P_INT(in_int(x, "position")),
                      GDX_DB_P_STR(detail ? detail : "[]"),
                      GDX_DB_P_INT(in_int(x, "started_at")),
                      GDX_DB_P_INT(in_int(x, "finished_at"))};
  uint64_t id = 0;
  rc = gdx_db_exec(c,
                   "INSERT INTO reconciliations (authorization_id, status, chunks, "
                   "chunks_differing, rows_source, rows_target, rows_missing, rows_extra, "
                   "rows_different, rows_in_flight, rows_repaired, position, detail, "
                   "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                   "FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000))",
                   p, 15, NULL, &id);
  free(detail);
  if (rc)
    return rc;
  gdx_db_param pa[] = {GDX_DB_P_INT(aid)};
  rc = gdx_db_exec(c, "UPDATE table_subscriptions SET reconcile_requested = 0 WHERE "
                      "authorization_id = ?", pa, 1, NULL, NULL);
  if (!rc && (missing || extra || different || strcmp(status, "failed") == 0)) {
    char msg[400];
    if (strcmp(status, "failed") == 0)
      snprintf(msg, sizeof(msg), "reconciliation run %llu failed: %s", (unsigned long long)id,
               json_string_value(json_object_get(x->in, "error")));
    else
      snprintf(msg, sizeof(msg), "reconciliation run %llu found %lld missing, %lld extra and "
               "%lld different rows; %lld repaired", (unsigned long long)id, missing, extra,
               different, repaired);
    rc = raise_alarm(c, strcmp(status, "failed") == 0 ? "reconciliation_failed"
                                                      : "reconciliation_differences",
                     aid, &s, msg);
  }
  if (rc)
    return rc;
  snprintf(x->audit_object, sizeof(x->audit_object), "reconciliation:%llu",
           (unsigned long long)id);
  x->audit_detail = json_pack("{s:I, s:s, s:I, s:I, s:I, s:I}", "authorization_id",
                              (json_int_t)aid, "status", status, "rows_missing",
                              (json_int_t)missing, "rows_extra", (json_int_t)extra,
                              "rows_different", (json_int_t)different, "rows_repaired",
                              (json_int_t)repaired);
  x->status = 201;
  x->out = json_pack("{s:I, s:s}", "id", (json_int_t)id, "status", status);
  return GDX_OK;
}

/* For the heartbeat of a node: what its table resources may purge, and the
 * runs asked of its subscriptions. */
int ledger_heartbeat(gdx_db_conn *c, long long node_row, const char *node_name, json_t *out) {
  gdx_db_param p[] = {GDX_DB_P_INT(node_row), GDX_DB_P_STR(node_name)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT ts.resource, MIN(ts.position), SUM(ts.position IS NULL) "
                        "FROM table_subscriptions ts JOIN authorizations a ON a.id = "
                        "ts.authorization_id WHERE ts.provider_unit_id = (SELECT unit_id FROM "
                        "nodes WHERE id = ?) AND ts.provider_node = ? AND a.status = 'active' "
                        "AND a.method = 'subscribe' GROUP BY ts.resource",
                        p, 2, 1000, &r);
  if (rc)
    return rc;
  json_t *purge = json_object();
  for (size_t i = 0; i < r.nrows; i++)
    if (atoll(gdx_db_get(&r, i, 2)) == 0 && gdx_db_get(&r, i, 1))
      json_object_set_new(purge, gdx_db_get(&r, i, 0),
                          json_integer(atoll(gdx_db_get(&r, i, 1))));
  gdx_db_result_free(&r);
  json_object_set_new(out, "purge", purge);
  rc = gdx_db_query(c,
                    "SELECT authorization_id FROM table_subscriptions WHERE consumer_unit_id = "
                    "(SELECT unit_id FROM nodes WHERE id = ?) AND reconcile_requested = 1 "
                    "LIMIT 1000",
                    p, 1, 1000, &r);
  if (rc)
    return rc;
  json_t *want = json_array();
  for (size_t i = 0; i < r.nrows; i++)
    json_array_append_new(want, json_integer(atoll(gdx_db_get(&r, i, 0))));
  gdx_db_result_free(&r);
  json_object_set_new(out, "reconcile", want);
  return GDX_OK;
}

/* ------------------------------------------------------------------ */
/* for people                                                          */

static int unit_scoped(const api_ctx *x) {
  return x->who.role == ROLE_UNIT_ADMIN || x->who.role == ROLE_STAFF;
}

/* The subscription in the path, if the caller's unit is its consumer or
 * provider (or the caller is platform staff). */
static int person_sub(gdx_db_conn *c, api_ctx *x, long long *aid, subinfo *s) {
  *aid = atoll(x->params[0]);
  snprintf(x->audit_object, sizeof(x->audit_object), "authorization:%lld", *aid);
  int found = 0;
  int rc = load_sub(c, *aid, s, &found);
  if (rc)
    return rc;
  if (!found || (unit_scoped(x) && s->consumer_id != x->who.unit_id &&
                 s->provider_id != x->who.unit_id))
    return api_fail(x, 404, "not_found", "no table subscription %lld of your unit", *aid);
  if (strcmp(s->method, "subscribe") != 0 && strcmp(s->method, "fetch") != 0)
    return api_fail(x, 404, "not_found", "authorization %lld is for %s, not a table", *aid,
                    s->method);
  return GDX_OK;
}

#define SUB_COLS                                                                              \
  "ts.authorization_id, e.resource_code, cu.code, pu.code, ts.resource, ts.target, ts.phase, " \
  "ts.position, ts.batches, ts.rows_sent, ts.rows_applied, ts.mismatched_batches, "           \
  "IFNULL(DATE_FORMAT(ts.last_ack_at, '%Y-%m-%dT%H:%i:%sZ'), ''), ts.reconcile_requested, "   \
  "IFNULL((SELECT r.status FROM reconciliations r WHERE r.authorization_id = "                \
  "ts.authorization_id ORDER BY r.id DESC LIMIT 1), ''), (SELECT COUNT(*) FROM alarms al "     \
  "WHERE al.authorization_id = ts.authorization_id AND al.state = 'open'), a.status"
#define SUB_FROM                                                                               \
  " FROM table_subscriptions ts JOIN authorizations a ON a.id = ts.authorization_id "          \
  "JOIN catalog_entries e ON e.id = a.entry_id JOIN units cu ON cu.id = ts.consumer_unit_id "  \
  "JOIN units pu ON pu.id = ts.provider_unit_id "

static json_t *sub_json(const gdx_db_result *r, size_t i) {
  const char *pos = gdx_db_get(r, i, 7);
  return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:s, s:b, "
                   "s:s, s:I, s:s}",
                   "authorization_id", (json_int_t)atoll(gdx_db_get(r, i, 0)), "resource_code",
                   gdx_db_get(r, i, 1), "consumer", gdx_db_get(r, i, 2), "provider",
                   gdx_db_get(r, i, 3), "resource", gdx_db_get(r, i, 4), "target",
                   gdx_db_get(r, i, 5), "phase", gdx_db_get(r, i, 6), "position",
                   pos ? json_integer(atoll(pos)) : json_null(), "batches",
                   (json_int_t)atoll(gdx_db_get(r, i, 8)), "rows_sent",
                   (json_int_t)atoll(gdx_db_get(r, i, 9)), "rows_applied",
                   (json_int_t)atoll(gdx_db_get(r, i, 10)), "mismatched_batches",
                   (json_int_t)atoll(gdx_db_get(r, i, 11)), "last_ack_at", gdx_db_get(r, i, 12),
                   "reconcile_requested", atoi(gdx_db_get(r, i, 13)), "last_reconciliation",
                   gdx_db_get(r, i, 14), "open_alarms", (json_int_t)atoll(gdx_db_get(r, i, 15)),
                   "authorization_status", gdx_db_get(r, i, 16));
}

static int work_sub_list(gdx_db_conn *c, api_ctx *x) {
  int all = !unit_scoped(x);
  gdx_db_param p[] = {GDX_DB_P_INT(all), GDX_DB_P_INT(x->who.unit_id),
                      GDX_DB_P_INT(x->who.unit_id)};
  return api_list(c, x,
                  "SELECT " SUB_COLS SUB_FROM "WHERE ? = 1 OR ts.consumer_unit_id = ? OR "
                  "ts.provider_unit_id = ? ORDER BY ts.authorization_id LIMIT 1000",
                  p, 3, 1000, sub_json);
}

static int work_sub_reconcile(gdx_db_conn *c, api_ctx *x) {
  long long aid;
  subinfo s;
  int rc = person_sub(c, x, &aid, &s);
  if (rc || x->status)
    return rc;
  gdx_db_param p[] = {GDX_DB_P_INT(aid)};
  uint64_t n = 0;
  rc = gdx_db_exec(c, "UPDATE table_subscriptions SET reconcile_requested = 1 WHERE "
                      "authorization_id = ?", p, 1, &n, NULL);
  if (rc)
    return rc;
  if (n == 0)
    return api_fail(x, 409, "not_started", "subscription %lld has not applied anything yet; "
                    "its node reports once it has", aid);
  x->status = 202;
  x->out = json_pack("{s:I, s:s}", "authorization_id", (json_int_t)aid, "note",
                     "the consumer's node runs it after its next heartbeat; see "
                     "GET /api/v1/reconciliations?authorization=<id>");
  return GDX_OK;
}

static json_t *recon_json(const gdx_db_result *r, size_t i) {
  json_t *detail = json_loads(gdx_db_get(r, i, 14), 0, NULL);
  return json_pack("{s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, "
                   "s:s, s:s}",
                   "id", (json_int_t)atoll(gdx_db_get(r, i, 0)), "authorization_id",
                   (json_int_t)atoll(gdx_db_get(r, i, 1)), "status", gdx_db_get(r, i, 2),
                   "chunks", (json_int_t)atoll(gdx_db_get(r, i, 3)), "chunks_differing",
                   (json_int_t)atoll(gdx_db_get(r, i, 4)), "rows_source",
                   (json_int_t)atoll(gdx_db_get(r, i, 5)), "rows_target",
                   (json_int_t)atoll(gdx_db_get(r, i, 6)), "rows_missing",
                   (json_int_t)atoll(gdx_db_get(r, i, 7)), "rows_extra",
                   (json_int_t)atoll(gdx_db_get(r, i, 8)), "rows_different",
                   (json_int_t)atoll(gdx_db_get(r, i, 9)), "rows_in_flight",
                   (json_int_t)atoll(gdx_db_get(r, i, 10)), "rows_repaired",
                   (json_int_t)atoll(gdx_db_get(r, i, 11)), "position",
                   (json_int_t)atoll(gdx_db_get(r, i, 12)), "differences",
                   detail ? detail : json_array(), "started_at", gdx_db_get(r, i, 13),
                   "finished_at", gdx_db_get(r, i, 15));
}

#define RECON_COLS                                                                            \
  "r.id, r.authorization_id, r.status, r.chunks, r.chunks_differing, r.rows_source, "         \
  "r.rows_target, r.rows_missing, r.rows_extra, r.rows_different, r.rows_in_flight, "         \
  "r.rows_repaired, r.position, DATE_FORMAT(r.started_at, '%Y-%m-%dT%H:%i:%sZ'), r.detail, "  \
  "DATE_FORMAT(r.finished_at, '%Y-%m-%dT%H:%i:%sZ')"

static int work_recon_list(gdx_db_conn *c, api_ctx *x) {
  int bad = 0;
  long long aid = api_query_int(x, "authorization", 0, 0, 1LL << 62, &bad);
  if (bad || x->status)
    return GDX_OK;
  int all = !unit_scoped(x);
  gdx_db_param p[] = {GDX_DB_P_INT(aid), GDX_DB_P_INT(aid), GDX_DB_P_INT(all),
                      GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_INT(x->who.unit_id)};
  return api_list(c, x,
                  "SELECT " RECON_COLS " FROM reconciliations r JOIN table_subscriptions ts ON "
                  "ts.authorization_id = r.authorization_id WHERE (? = 0 OR r.authorization_id "
                  "= ?) AND (? = 1 OR ts.consumer_unit_id = ? OR ts.provider_unit_id = ?) "
                  "ORDER BY r.id DESC LIMIT 200",
                  p, 5, 200, recon_json);
}

#define ALARM_COLS                                                                            \
  "al.id, al.kind, IFNULL(al.authorization_id, 0), al.message, al.state, "                    \
  "DATE_FORMAT(al.raised_at, '%Y-%m-%dT%H:%i:%sZ'), "                                          \
  "DATE_FORMAT(al.last_seen_at, '%Y-%m-%dT%H:%i:%sZ'), al.occurrences, al.acked_by, "          \
  "IFNULL(cu.code, ''), IFNULL(pu.code, '')"
#define ALARM_FROM                                                                            \
  " FROM alarms al LEFT JOIN units cu ON cu.id = al.consumer_unit_id "                         \
  "LEFT JOIN units pu ON pu.id = al.provider_unit_id "

static json_t *alarm_json(const gdx_db_result *r, size_t i) {
  return json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "id",
                   (json_int_t)atoll(gdx_db_get(r, i, 0)), "kind", gdx_db_get(r, i, 1),
                   "authorization_id", (json_int_t)atoll(gdx_db_get(r, i, 2)), "message",
                   gdx_db_get(r, i, 3), "state", gdx_db_get(r, i, 4), "raised_at",
                   gdx_db_get(r, i, 5), "last_seen_at", gdx_db_get(r, i, 6), "occurrences",
                   (json_int_t)atoll(gdx_db_get(r, i, 7)), "acked_by", gdx_db_get(r, i, 8),
                   "consumer", gdx_db_get(r, i, 9), "provider", gdx_db_get(r, i, 10));
}

static int work_alarm_list(gdx_db_conn *c, api_ctx *x) {
  char buf[8];
  const char *state = api_query(x, "state", buf, sizeof(buf), "open");
  if (x->status)
    return GDX_OK;
  if (strcmp(state, "open") != 0 && strcmp(state, "all") != 0)
    return api_fail(x, 400, "invalid_query", "state is open or all");
  int all = !unit_scoped(x);
  gdx_db_param p[] = {GDX_DB_P_INT(strcmp(state, "all") == 0), GDX_DB_P_INT(all),
                      GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_INT(x->who.unit_id)};
  return api_list(c, x,
                  "SELECT " ALARM_COLS ALARM_FROM "WHERE (? = 1 OR al.state = 'open') AND "
                  "(? = 1 OR al.consumer_unit_id = ? OR al.provider_unit_id = ?) "
                  "ORDER BY al.id DESC LIMIT 1000",
                  p, 4, 1000, alarm_json);
}

static int work_alarm_ack(gdx_db_conn *c, api_ctx *x) {
  long long id = atoll(x->params[0]);
  snprintf(x->audit_object, sizeof(x->audit_object), "alarm:%lld", id);
  gdx_db_param p[] = {GDX_DB_P_INT(id)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT IFNULL(consumer_unit_id, 0), IFNULL(provider_unit_id, 0), state, "
                        "kind FROM alarms WHERE id = ? FOR UPDATE",
                        p, 1, 1, &r);
  if (rc)
    return rc;
  int ok = r.nrows == 1 && (!unit_scoped(x) || atoll(gdx_db_get(&r, 0, 0)) == x->who.unit_id ||
                            atoll(gdx_db_get(&r, 0, 1)) == x->who.unit_id);
  int open = ok && strcmp(gdx_db_get(&r, 0, 2), "open") == 0;
  if (ok)
    x->audit_detail = json_pack("{s:s}", "kind", gdx_db_get(&r, 0, 3));
  gdx_db_result_free(&r);
  if (!ok)
    return api_fail(x, 404, "not_found", "no alarm %lld of your unit", id);
  if (!open)
    return api_fail(x, 409, "wrong_state", "alarm %lld is already acknowledged", id);
  gdx_db_param pu[] = {GDX_DB_P_STR(x->who.username), GDX_DB_P_INT(id)};
  rc = gdx_db_exec(c,
                   "UPDATE alarms SET state = 'acknowledged', acked_by = ?, acked_at = "
                   "UTC_TIMESTAMP(6) WHERE id = ?",
                   pu, 2, NULL, NULL);
  if (!rc)
    x->out = json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "acknowledged");
  return rc;
}

/* The daily report: the ledger of the day, its reconciliation runs, the
 * alarms raised that day or still open, and a verdict. */
static int work_sub_report(gdx_db_conn *c, api_ctx *x) {
  long long aid;
  subinfo s;
  int rc = person_sub(c, x, &aid, &s);
  if (rc || x->status)
    return rc;
  char date[16], dbuf[16];
  snprintf(date, sizeof(date), "%s", api_query(x, "date", dbuf, sizeof(dbuf), ""));
  if (x->status)
    return GDX_OK;
  gdx_db_result r;
  if (date[0] == '\0') {
    rc = gdx_db_query(c, "SELECT DATE_FORMAT(UTC_DATE(), '%Y-%m-%d')", NULL, 0, 1, &r);
    if (rc)
      return rc;
    snprintf(date, sizeof(date), "%s", gdx_db_get(&r, 0, 0));
    gdx_db_result_free(&r);
  }
  if (strlen(date) != 10 || strspn(date, "0123456789-") != 10 || date[4] != '-' ||
      date[7] != '-')
    return api_fail(x, 400, "invalid_query", "date is YYYY-MM-DD (UTC)");
  gdx_db_param pd[] = {GDX_DB_P_INT(aid), GDX_DB_P_STR(date), GDX_DB_P_STR(date)};
  rc = gdx_db_query(c,
                    "SELECT COUNT(*), IFNULL(SUM(rows_sent), 0), IFNULL(SUM(rows_applied), 0), "
                    "IFNULL(SUM(matched = 0), 0), IFNULL(SUM(kind = 'page'), 0), "
                    "IFNULL(SUM(kind = 'changes'), 0) FROM table_ledger "
                    "WHERE authorization_id = ? AND applied_at >= ? AND applied_at < "
                    "? + INTERVAL 1 DAY",
                    pd, 3, 1, &r);
  if (rc)
    return rc;
  json_t *ledger = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "batches",
                             (json_int_t)atoll(gdx_db_get(&r, 0, 0)), "rows_sent",
                             (json_int_t)atoll(gdx_db_get(&r, 0, 1)), "rows_applied",
                             (json_int_t)atoll(gdx_db_get(&r, 0, 2)), "mismatched_batches",
                             (json_int_t)atoll(gdx_db_get(&r, 0, 3)), "snapshot_pages",
                             (json_int_t)atoll(gdx_db_get(&r, 0, 4)), "change_batches",
                             (json_int_t)atoll(gdx_db_get(&r, 0, 5)));
  long long mismatched = atoll(gdx_db_get(&r, 0, 3));
  gdx_db_result_free(&r);
  /* a folder subscription's files of the day */
  rc = gdx_db_query(c,
                    "SELECT COUNT(*), IFNULL(SUM(status = 'delivered'), 0), "
                    "IFNULL(SUM(IF(status = 'delivered', size, 0)), 0), "
                    "IFNULL(SUM(status = 'quarantined'), 0), "
                    "IFNULL(SUM(status = 'delivered' AND verified = 0), 0), "
                    "IFNULL(SUM(bytes_received), 0), IFNULL(SUM(resumed_from > 0), 0) "
                    "FROM file_ledger WHERE authorization_id = ? AND verified_at >= ? AND "
                    "verified_at < ? + INTERVAL 1 DAY",
                    pd, 3, 1, &r);
  if (rc) {
    json_decref(ledger);
    return rc;
  }
  long long nfiles = atoll(gdx_db_get(&r, 0, 0)), fbad = atoll(gdx_db_get(&r, 0, 4));
  json_t *files = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "files", (json_int_t)nfiles,
                            "delivered", (json_int_t)atoll(gdx_db_get(&r, 0, 1)),
                            "bytes_delivered", (json_int_t)atoll(gdx_db_get(&r, 0, 2)),
                            "quarantined", (json_int_t)atoll(gdx_db_get(&r, 0, 3)),
                            "unverified", (json_int_t)fbad, "bytes_received",
                            (json_int_t)atoll(gdx_db_get(&r, 0, 5)), "resumed",
                            (json_int_t)atoll(gdx_db_get(&r, 0, 6)));
  gdx_db_result_free(&r);
  json_object_set_new(ledger, "files", files);
  rc = gdx_db_query(c,
                    "SELECT " RECON_COLS " FROM reconciliations r WHERE r.authorization_id = ? "
                    "AND r.finished_at >= ? AND r.finished_at < ? + INTERVAL 1 DAY "
                    "ORDER BY r.id LIMIT 1000",
                    pd, 3, 1000, &r);
  if (rc) {
    json_decref(ledger);
    return rc;
  }
  json_t *runs = json_array();
  const char *last = "";
  for (size_t i = 0; i < r.nrows; i++)
    json_array_append_new(runs, recon_json(&r, i));
  if (r.nrows)
    last = json_string_value(json_object_get(json_array_get(runs, r.nrows - 1), "status"));
  char verdict[32];
  snprintf(verdict, sizeof(verdict), "%s",
           mismatched || fbad ? "discrepancies"
           : nfiles > 0 && r.nrows == 0 ? "consistent" /* every file verified by hash */
           : r.nrows == 0 ? "not_reconciled"
           : strcmp(last, "clean") == 0 ? "consistent"
           : strcmp(last, "repaired") == 0 ? "repaired"
                                           : "discrepancies");
  gdx_db_result_free(&r);
  rc = gdx_db_query(c,
                    "SELECT " ALARM_COLS ALARM_FROM "WHERE al.authorization_id = ? AND "
                    "(al.state = 'open' OR (al.raised_at >= ? AND al.raised_at < ? + INTERVAL "
                    "1 DAY)) ORDER BY al.id LIMIT 1000",
                    pd, 3, 1000, &r);
  if (rc) {
    json_decref(ledger);
    json_decref(runs);
    return rc;
  }
  json_t *alarms = json_array();
  for (size_t i = 0; i < r.nrows; i++)
    json_array_append_new(alarms, alarm_json(&r, i));
  gdx_db_result_free(&r);
  gdx_db_param pa[] = {GDX_DB_P_INT(aid)};
  rc = gdx_db_query(c, "SELECT " SUB_COLS SUB_FROM "WHERE ts.authorization_id = ?", pa, 1, 1,
                    &r);
  json_t *state = !rc && r.nrows == 1 ? sub_json(&r, 0) : json_null();
  if (!rc)
    gdx_db_result_free(&r);
  x->out = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "authorization_id",
                     (json_int_t)aid, "date", date, "resource_code", s.code, "consumer",
                     s.consumer, "provider", s.provider, "verdict", verdict, "state", state,
                     "ledger", ledger, "reconciliations", runs, "alarms", alarms);
  return rc;
}

/* GET /api/v1/subscriptions/<a>/files?status=&path=: the file ledger, newest
 * first (the last 1000; path= gives one file's versions). */
#define FILE_COLS                                                                             \
  "id, path, size, sha256, sm3_sent, sm3_received, bytes_received, resumed_from, status, "     \
  "verified, version_kept, detail, DATE_FORMAT(received_at, '%Y-%m-%dT%H:%i:%s.%fZ'), "         \
  "DATE_FORMAT(verified_at, '%Y-%m-%dT%H:%i:%s.%fZ')"

static json_t *file_json(const gdx_db_result *r, size_t i) {
  return json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:s, s:b, s:b, s:s, s:s, s:s}",
                   "id", (json_int_t)atoll(gdx_db_get(r, i, 0)), "path", gdx_db_get(r, i, 1),
                   "size", (json_int_t)atoll(gdx_db_get(r, i, 2)), "sha256",
                   gdx_db_get(r, i, 3), "sm3_sent", gdx_db_get(r, i, 4), "sm3_received",
                   gdx_db_get(r, i, 5), "bytes_received",
                   (json_int_t)atoll(gdx_db_get(r, i, 6)), "resumed_from",
                   (json_int_t)atoll(gdx_db_get(r, i, 7)), "status", gdx_db_get(r, i, 8),
                   "verified", atoi(gdx_db_get(r, i, 9)), "version_kept",
                   atoi(gdx_db_get(r, i, 10)), "detail", gdx_db_get(r, i, 11), "received_at",
                   gdx_db_get(r, i, 12), "verified_at", gdx_db_get(r, i, 13));
}

static int work_sub_files(gdx_db_conn *c, api_ctx *x) {
  long long aid;
  subinfo s;
  int rc = person_sub(c, x, &aid, &s);
  if (rc || x->status)
    return rc;
  char buf[16], pbuf[1025];
  const char *status = api_query(x, "status", buf, sizeof(buf), "");
  const char *path = x->status ? "" : api_query(x, "path", pbuf, sizeof(pbuf), "");
  if (x->status)
    return GDX_OK;
  if (*status && strcmp(status, "delivered") != 0 && strcmp(status, "quarantined") != 0)
    return api_fail(x, 400, "invalid_query", "status is delivered or quarantined");
  gdx_db_param p[] = {GDX_DB_P_INT(aid), GDX_DB_P_STR(status), GDX_DB_P_STR(status),
                      GDX_DB_P_STR(path), GDX_DB_P_STR(path)};
  return api_list(c, x,
                  "SELECT " FILE_COLS " FROM file_ledger WHERE authorization_id = ? AND "
                  "(? = '' OR status = ?) AND (? = '' OR path = ?) ORDER BY id DESC LIMIT 1000",
                  p, 5, 1000, file_json);
}

const api_route api_ledger_routes[] = {
    {"POST", "/node/v1/ledger/{}", NULL, API_NODE, 0, "table_ledger", work_ledger,
     "A consumer node reports applied batches (rows and checksums both sides) and its position"},
    {"POST", "/node/v1/reconciliations/{}", "table.reconcile", API_NODE, 0,
     "table_reconciliation", work_reconciliation,
     "A consumer node reports a reconciliation run (chunked checksums, differing rows, repairs)"},
    {"POST", "/node/v1/files/{}", NULL, API_NODE, 0, "file_ledger", work_files,
     "A consumer node's file ledger: files of a folder subscription delivered or quarantined "
     "(mutual TLS)"},
    {"GET", "/api/v1/subscriptions/{}/files", NULL, API_SESSION, ROLE_ANY, NULL,
     work_sub_files, "The file ledger of a folder subscription (path, size, hashes, bytes "
     "received, delivered or quarantined), newest first"},
    {"GET", "/api/v1/subscriptions", NULL, API_SESSION, ROLE_ANY, NULL, work_sub_list,
     "Table subscriptions of your unit (consumer or provider): phase, position, ledger totals"},
    {"GET", "/api/v1/subscriptions/{}/report", NULL, API_SESSION, ROLE_ANY, NULL,
     work_sub_report, "The daily reconciliation report of a subscription (?date=YYYY-MM-DD)"},
    {"POST", "/api/v1/subscriptions/{}/reconcile", "table.reconcile_request", API_SESSION,
     ROLE_UNIT_ADMIN | ROLE_OPS, NULL, work_sub_reconcile,
     "Ask the consumer's node for a reconciliation run now"},
    {"GET", "/api/v1/reconciliations", NULL, API_SESSION, ROLE_ANY, NULL, work_recon_list,
     "Reconciliation runs, newest first (?authorization=N)"},
    {"GET", "/api/v1/alarms", NULL, API_SESSION, ROLE_ANY, NULL, work_alarm_list,
     "Alarms of your unit (?state=open|all)"},
    {"POST", "/api/v1/alarms/{}/ack", "alarm.ack", API_SESSION, ROLE_UNIT_ADMIN | ROLE_OPS, NULL,
     work_alarm_ack, "Acknowledge an alarm"},
};
const size_t api_ledger_nroutes = sizeof(api_ledger_routes) / sizeof(api_ledger_routes[0]);
