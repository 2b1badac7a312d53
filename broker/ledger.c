/* The ledger part of the API: what consumer nodes post over mutual TLS.
 *   POST /node/v1/ledger/<authorization>           applied batches + where they stand
 *   POST /node/v1/files/<authorization>            files delivered or quarantined
 *   POST /node/v1/reconciliations/<authorization>  the result of a reconciliation run
 * and what heartbeats carry (ledger_node_events, ledger_heartbeat).
 *
 * The broker stores counts, checksums and (for a run) up to 20 keys of
 * differing rows - never the rows themselves. A batch whose two checksums
 * or counts differ, and a run that finds differences, raise an alarm; an
 * open alarm of the same kind and subscription is counted again rather
 * than raised twice. The provider learns the lowest applied position of
 * its table's subscribers with its heartbeat (ledger_heartbeat) and may
 * drop its change log below it.
 */
#include "ledger.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_chain.h"
#include "error.h"
#include "log.h"
#include "parts.h"

int ledger_load_sub(gdx_db_conn *c, long long aid, ledger_sub *s, int *found) {
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
    gdx_db_row w = gdx_db_row_at(&r, 0);
    s->consumer_id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
    s->active = gdx_db_flag(&w, 3);
    s->provider_id = gdx_db_i64(&w, 4, 1, GDX_DB_ID_MAX);
    if (w.rc) {
      gdx_db_result_free(&r);
      return gdx_db_row_fail(&w, "authorizations");
    }
    snprintf(s->consumer, sizeof(s->consumer), "%s", gdx_db_get(&r, 0, 1));
    snprintf(s->method, sizeof(s->method), "%s", gdx_db_get(&r, 0, 2));
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
static int node_sub(gdx_db_conn *c, rest_ctx *x, long long *aid, ledger_sub *s) {
  *aid = rest_param_id(x, 0);
  snprintf(x->audit_object, sizeof(x->audit_object), "authorization:%lld", *aid);
  snprintf(x->audit_actor, sizeof(x->audit_actor), "node:%s", x->node.node);
  snprintf(x->audit_unit, sizeof(x->audit_unit), "%s", x->node.unit);
  int found = 0;
  int rc = ledger_load_sub(c, *aid, s, &found);
  if (rc)
    return rc;
  if (!found || strcmp(s->consumer, x->node.unit) != 0)
    return rest_fail(x, 404, "not_found", "unit %s holds no authorization %lld", x->node.unit,
                     *aid);
  if (strcmp(s->method, "subscribe") != 0 && strcmp(s->method, "fetch") != 0)
    return rest_fail(x, 409, "wrong_method", "authorization %lld is for %s, not a table", *aid,
                     s->method);
  return GDX_OK;
}

int ledger_raise_alarm(gdx_db_conn *c, const char *kind, long long aid, const ledger_sub *s,
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
static int record_standing(gdx_db_conn *c, long long aid, const ledger_sub *s, const char *target,
                           const char *phase, long long position, long long batches, long long sent,
                           long long applied, long long mismatched) {
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

static int work_ledger(gdx_db_conn *c, rest_ctx *x) {
  long long aid;
  ledger_sub s;
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
      rc = ledger_raise_alarm(c, "batch_mismatch", aid, &s, msg);
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
  gdx_db_row w = gdx_db_row_at(&r, 0); /* the row: record_standing made it */
  int want = gdx_db_flag(&w, 0);
  rc = w.rc ? gdx_db_row_fail(&w, "table_subscriptions") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;
  x->out = json_pack("{s:I, s:b}", "recorded", (json_int_t)json_array_size(entries),
                     "reconcile", want);
  return GDX_OK;
}

/* An audit record for a node's report about a file (detail: taken). */
static int audit_file(gdx_db_conn *c, const rest_ctx *x, const char *actor, const char *unit,
                      const char *action, const char *obj, const char *result, json_t *detail) {
  char *dj = json_dumps(detail, JSON_COMPACT);
  json_decref(detail);
  int rc = audit_append(c, actor, unit, action, obj, "", result, x->source, x->request_id,
                        dj ? dj : "{}");
  free(dj);
  return rc;
}

/* POST /node/v1/files/<authorization>: the files of a folder subscription
 * its consumer's node delivered or quarantined. A quarantined file raises
 * an alarm and writes an audit record for each side (the consumer's node
 * stopped it; the provider's unit published it). */
static int work_files(gdx_db_conn *c, rest_ctx *x) {
  long long aid;
  ledger_sub s;
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
      rc = ledger_raise_alarm(c, "file_mismatch", aid, &s, msg);
    }
    if (!delivered) {
      quarantined++;
      snprintf(msg, sizeof(msg), "%s (sha256 %.16s…) was quarantined by the consumer's node: %s",
               path, sha, detail);
      rc = ledger_raise_alarm(c, "file_quarantined", aid, &s, msg);
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

/* A refused file (disguised or oversized) is raised once per path while
 * its alarm is open. */
int ledger_node_events(gdx_db_conn *c, rest_ctx *x, const json_t *events) {
  size_t i;
  json_t *e;
  json_array_foreach(events, i, e) {
    const char *res = json_string_value(json_object_get(e, "resource"));
    const char *path = json_string_value(json_object_get(e, "path"));
    const char *detail = json_string_value(json_object_get(e, "detail"));
    char msg[1400], obj[1100];
    snprintf(msg, sizeof(msg), "%s/%s refused by node %s: %s", res, path, x->node.node, detail);
    snprintf(obj, sizeof(obj), "file:%s/%s", res, path);
    char actor[80];
    snprintf(actor, sizeof(actor), "node:%s", x->node.node);
    int rc = audit_file(c, x, actor, x->node.unit, "file.refused", obj, "refused",
                        json_pack("{s:s, s:s, s:I}", "node", x->node.node, "reason", detail, "size",
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
      gdx_db_param pi[] = {GDX_DB_P_STR(msg), GDX_DB_P_STR(res), GDX_DB_P_INT(x->node.row)};
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

static long long in_int(const rest_ctx *x, const char *k) {
  return (long long)json_integer_value(json_object_get(x->in, k));
}

static int work_reconciliation(gdx_db_conn *c, rest_ctx *x) {
  long long aid;
  ledger_sub s;
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
    rc = ledger_raise_alarm(
        c, strcmp(status, "failed") == 0 ? "reconciliation_failed" : "reconciliation_differences",
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
  for (size_t i = 0; i < r.nrows && rc == GDX_OK; i++) {
    gdx_db_row w = gdx_db_row_at(&r, i);
    long long floor = gdx_db_i64_or(&w, 1, 0, LLONG_MAX, -1);
    long long unknown = gdx_db_i64(&w, 2, 0, LLONG_MAX); /* subscribers not reported yet */
    if (w.rc)
      rc = gdx_db_row_fail(&w, "table_subscriptions");
    else if (unknown == 0 && floor >= 0)
      json_object_set_new(purge, gdx_db_get(&r, i, 0), json_integer(floor));
  }
  gdx_db_result_free(&r);
  if (rc) {
    json_decref(purge);
    return rc;
  }
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
    json_array_append_new(want, rest_json_int(&r, i, 0));
  gdx_db_result_free(&r);
  json_object_set_new(out, "reconcile", want);
  return GDX_OK;
}

static const rest_route routes[] = {
    {"POST", "/node/v1/ledger/{}", NULL, REST_NODE, 0, "table_ledger", work_ledger,
     "A consumer node reports applied batches (rows and checksums both sides) and its position"},
    {"POST", "/node/v1/reconciliations/{}", "table.reconcile", REST_NODE, 0, "table_reconciliation",
     work_reconciliation,
     "A consumer node reports a reconciliation run (chunked checksums, differing rows, repairs)"},
    {"POST", "/node/v1/files/{}", NULL, REST_NODE, 0, "file_ledger", work_files,
     "A consumer node's file ledger: files of a folder subscription delivered or quarantined "
     "(mutual TLS)"},
};

const rest_part ledger_part = REST_PART("ledger", routes);
