/* The reports part of the API: what people see of the reconciliation
 * ledger (ledger.h) and act on.
 *   GET  /api/v1/subscriptions                     every subscription they may see
 *   GET  /api/v1/subscriptions/<a>/report?date=    the daily report
 *   GET  /api/v1/subscriptions/<a>/files           a folder subscription's file ledger
 *   POST /api/v1/subscriptions/<a>/reconcile       ask the consumer's node for a run
 *   GET  /api/v1/reconciliations?authorization=    runs, newest first
 *   GET  /api/v1/alarms[?state=open|all]           alarms
 *   POST /api/v1/alarms/<id>/ack                   acknowledge one
 * A unit sees the subscriptions and alarms where it is the consumer or the
 * provider; operations and management see all.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ledger.h"
#include "parts.h"

/* The subscription in the path, if the caller's unit is its consumer or
 * provider (or the caller is platform staff). */
static int person_sub(gdx_db_conn *c, rest_ctx *x, long long *aid, ledger_sub *s) {
  *aid = rest_param_id(x, 0);
  snprintf(x->audit_object, sizeof(x->audit_object), "authorization:%lld", *aid);
  int found = 0;
  int rc = ledger_load_sub(c, *aid, s, &found);
  if (rc)
    return rc;
  if (!found ||
      (!rest_sees_all(x) && s->consumer_id != x->who.unit_id && s->provider_id != x->who.unit_id))
    return rest_fail(x, 404, "not_found", "no table subscription %lld of your unit", *aid);
  if (strcmp(s->method, "subscribe") != 0 && strcmp(s->method, "fetch") != 0)
    return rest_fail(x, 404, "not_found", "authorization %lld is for %s, not a table", *aid,
                     s->method);
  return GDX_OK;
}

#define SUB_COLS                                                                                   \
  "ts.authorization_id, e.resource_code, cu.code, pu.code, ts.resource, ts.target, ts.phase, "     \
  "ts.position, ts.batches, ts.rows_sent, ts.rows_applied, ts.mismatched_batches, "                \
  "IFNULL(DATE_FORMAT(ts.last_ack_at, '%Y-%m-%dT%H:%i:%sZ'), ''), ts.reconcile_requested, "        \
  "IFNULL((SELECT r.status FROM reconciliations r WHERE r.authorization_id = "                     \
  "ts.authorization_id ORDER BY r.id DESC LIMIT 1), ''), (SELECT COUNT(*) FROM alarms al "         \
  "WHERE al.authorization_id = ts.authorization_id AND al.state = 'open'), a.status"
#define SUB_FROM                                                                                   \
  " FROM table_subscriptions ts JOIN authorizations a ON a.id = ts.authorization_id "              \
  "JOIN catalog_entries e ON e.id = a.entry_id JOIN units cu ON cu.id = ts.consumer_unit_id "      \
  "JOIN units pu ON pu.id = ts.provider_unit_id "

static json_t *sub_json(const gdx_db_result *r, size_t i) {
  gdx_db_row w = gdx_db_row_at(r, i);
  int reconcile = gdx_db_flag(&w, 13);
  if (w.rc)
    gdx_db_row_fail(&w, "table_subscriptions"); /* shown as false */
  return json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:b, "
                   "s:s, s:o, s:s}",
                   "authorization_id", rest_json_int(r, i, 0), "resource_code", gdx_db_get(r, i, 1),
                   "consumer", gdx_db_get(r, i, 2), "provider", gdx_db_get(r, i, 3), "resource",
                   gdx_db_get(r, i, 4), "target", gdx_db_get(r, i, 5), "phase", gdx_db_get(r, i, 6),
                   "position", rest_json_int(r, i, 7), "batches", rest_json_int(r, i, 8),
                   "rows_sent", rest_json_int(r, i, 9), "rows_applied", rest_json_int(r, i, 10),
                   "mismatched_batches", rest_json_int(r, i, 11), "last_ack_at",
                   gdx_db_get(r, i, 12), "reconcile_requested", reconcile, "last_reconciliation",
                   gdx_db_get(r, i, 14), "open_alarms", rest_json_int(r, i, 15),
                   "authorization_status", gdx_db_get(r, i, 16));
}

static int work_sub_list(gdx_db_conn *c, rest_ctx *x) {
  int all = rest_sees_all(x);
  gdx_db_param p[] = {GDX_DB_P_INT(all), GDX_DB_P_INT(x->who.unit_id),
                      GDX_DB_P_INT(x->who.unit_id)};
  return rest_list(c, x,
                   "SELECT " SUB_COLS SUB_FROM "WHERE ? = 1 OR ts.consumer_unit_id = ? OR "
                   "ts.provider_unit_id = ? ORDER BY ts.authorization_id LIMIT 1000",
                   p, 3, 1000, sub_json);
}

static int work_sub_reconcile(gdx_db_conn *c, rest_ctx *x) {
  long long aid;
  ledger_sub s;
  int rc = person_sub(c, x, &aid, &s);
  if (rc || x->status)
    return rc;
  gdx_db_param p[] = {GDX_DB_P_INT(aid)};
  uint64_t n = 0;
  rc = gdx_db_exec(c,
                   "UPDATE table_subscriptions SET reconcile_requested = 1 WHERE "
                   "authorization_id = ?",
                   p, 1, &n, NULL);
  if (rc)
    return rc;
  if (n == 0)
    return rest_fail(x, 409, "not_started",
                     "subscription %lld has not applied anything yet; "
                     "its node reports once it has",
                     aid);
  x->status = 202;
  x->out = json_pack("{s:I, s:s}", "authorization_id", (json_int_t)aid, "note",
                     "the consumer's node runs it after its next heartbeat; see "
                     "GET /api/v1/reconciliations?authorization=<id>");
  return GDX_OK;
}

static json_t *recon_json(const gdx_db_result *r, size_t i) {
  static const struct {
    const char *name;
    size_t col;
  } ints[] = {{"id", 0},
              {"authorization_id", 1},
              {"chunks", 3},
              {"chunks_differing", 4},
              {"rows_source", 5},
              {"rows_target", 6},
              {"rows_missing", 7},
              {"rows_extra", 8},
              {"rows_different", 9},
              {"rows_in_flight", 10},
              {"rows_repaired", 11},
              {"position", 12}};
  json_t *detail = json_loads(gdx_db_get(r, i, 14), 0, NULL);
  json_t *o = json_pack("{s:s, s:o, s:s, s:s}", "status", gdx_db_get(r, i, 2), "differences",
                        detail ? detail : json_array(), "started_at", gdx_db_get(r, i, 13),
                        "finished_at", gdx_db_get(r, i, 15));
  for (size_t k = 0; o && k < sizeof(ints) / sizeof(ints[0]); k++)
    json_object_set_new(o, ints[k].name, rest_json_int(r, i, ints[k].col));
  return o;
}

#define RECON_COLS                                                                                 \
  "r.id, r.authorization_id, r.status, r.chunks, r.chunks_differing, r.rows_source, "              \
  "r.rows_target, r.rows_missing, r.rows_extra, r.rows_different, r.rows_in_flight, "              \
  "r.rows_repaired, r.position, DATE_FORMAT(r.started_at, '%Y-%m-%dT%H:%i:%sZ'), r.detail, "       \
  "DATE_FORMAT(r.finished_at, '%Y-%m-%dT%H:%i:%sZ')"

static int work_recon_list(gdx_db_conn *c, rest_ctx *x) {
  int bad = 0;
  long long aid = rest_query_int(x, "authorization", 0, 0, 1LL << 62, &bad);
  if (bad || x->status)
    return GDX_OK;
  int all = rest_sees_all(x);
  gdx_db_param p[] = {GDX_DB_P_INT(aid), GDX_DB_P_INT(aid), GDX_DB_P_INT(all),
                      GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_INT(x->who.unit_id)};
  return rest_list(c, x,
                   "SELECT " RECON_COLS " FROM reconciliations r JOIN table_subscriptions ts ON "
                   "ts.authorization_id = r.authorization_id WHERE (? = 0 OR r.authorization_id "
                   "= ?) AND (? = 1 OR ts.consumer_unit_id = ? OR ts.provider_unit_id = ?) "
                   "ORDER BY r.id DESC LIMIT 200",
                   p, 5, 200, recon_json);
}

#define ALARM_COLS                                                                                 \
  "al.id, al.kind, IFNULL(al.authorization_id, 0), al.message, al.state, "                         \
  "DATE_FORMAT(al.raised_at, '%Y-%m-%dT%H:%i:%sZ'), "                                              \
  "DATE_FORMAT(al.last_seen_at, '%Y-%m-%dT%H:%i:%sZ'), al.occurrences, al.acked_by, "              \
  "IFNULL(cu.code, ''), IFNULL(pu.code, '')"
#define ALARM_FROM                                                                                 \
  " FROM alarms al LEFT JOIN units cu ON cu.id = al.consumer_unit_id "                             \
  "LEFT JOIN units pu ON pu.id = al.provider_unit_id "

static json_t *alarm_json(const gdx_db_result *r, size_t i) {
  return json_pack(
      "{s:o, s:s, s:o, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "id", rest_json_int(r, i, 0),
      "kind", gdx_db_get(r, i, 1), "authorization_id", rest_json_int(r, i, 2), "message",
      gdx_db_get(r, i, 3), "state", gdx_db_get(r, i, 4), "raised_at", gdx_db_get(r, i, 5),
      "last_seen_at", gdx_db_get(r, i, 6), "occurrences", rest_json_int(r, i, 7), "acked_by",
      gdx_db_get(r, i, 8), "consumer", gdx_db_get(r, i, 9), "provider", gdx_db_get(r, i, 10));
}

static int work_alarm_list(gdx_db_conn *c, rest_ctx *x) {
  char buf[8];
  const char *state = rest_query(x, "state", buf, sizeof(buf), "open");
  if (x->status)
    return GDX_OK;
  if (strcmp(state, "open") != 0 && strcmp(state, "all") != 0)
    return rest_fail(x, 400, "invalid_query", "state is open or all");
  int all = rest_sees_all(x);
  gdx_db_param p[] = {GDX_DB_P_INT(strcmp(state, "all") == 0), GDX_DB_P_INT(all),
                      GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_INT(x->who.unit_id)};
  return rest_list(c, x,
                   "SELECT " ALARM_COLS ALARM_FROM "WHERE (? = 1 OR al.state = 'open') AND "
                   "(? = 1 OR al.consumer_unit_id = ? OR al.provider_unit_id = ?) "
                   "ORDER BY al.id DESC LIMIT 1000",
                   p, 4, 1000, alarm_json);
}

static int work_alarm_ack(gdx_db_conn *c, rest_ctx *x) {
  long long id = rest_param_id(x, 0);
  snprintf(x->audit_object, sizeof(x->audit_object), "alarm:%lld", id);
  gdx_db_param p[] = {GDX_DB_P_INT(id), GDX_DB_P_INT(rest_sees_all(x)),
                      GDX_DB_P_INT(x->who.unit_id), GDX_DB_P_INT(x->who.unit_id)};
  gdx_db_result r;
  int rc = rest_load_one(c, x,
                         "SELECT state = 'open', kind FROM alarms WHERE id = ? AND (? = 1 OR "
                         "consumer_unit_id = ? OR provider_unit_id = ?) FOR UPDATE",
                         p, 4, &r, "no alarm %lld of your unit", id);
  if (rc || x->status)
    return rc;
  gdx_db_row w = gdx_db_row_at(&r, 0);
  int open = gdx_db_flag(&w, 0);
  x->audit_detail = json_pack("{s:s}", "kind", gdx_db_get(&r, 0, 1));
  rc = w.rc ? gdx_db_row_fail(&w, "alarms") : GDX_OK;
  gdx_db_result_free(&r);
  if (rc)
    return rc;
  if (!open)
    return rest_fail(x, 409, "wrong_state", "alarm %lld is already acknowledged", id);
  gdx_db_param pu[] = {GDX_DB_P_STR(x->who.username), GDX_DB_P_INT(id)};
  rc = gdx_db_exec(c,
                   "UPDATE alarms SET state = 'acknowledged', acked_by = ?, acked_at = "
                   "UTC_TIMESTAMP(6) WHERE id = ?",
                   pu, 2, NULL, NULL);
  if (!rc)
    x->out = json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "acknowledged");
  return rc;
}

/* One row of sums (COUNT, SUM: never NULL, never negative) as an object of
 * the names; *picked gets the value of column `pick`. */
static json_t *sums_json(const gdx_db_result *r, const char *const *names, size_t n, size_t pick,
                         long long *picked, int *rc) {
  gdx_db_row w = gdx_db_row_at(r, 0);
  json_t *o = json_object();
  for (size_t k = 0; k < n; k++)
    json_object_set_new(o, names[k], json_integer(gdx_db_i64(&w, k, 0, LLONG_MAX)));
  *picked = gdx_db_i64(&w, pick, 0, LLONG_MAX);
  *rc = w.rc ? gdx_db_row_fail(&w, "report sums") : GDX_OK;
  return o;
}

/* The daily report: the ledger of the day, its reconciliation runs, the
 * alarms raised that day or still open, and a verdict. */
static int work_sub_report(gdx_db_conn *c, rest_ctx *x) {
  long long aid;
  ledger_sub s;
  int rc = person_sub(c, x, &aid, &s);
  if (rc || x->status)
    return rc;
  char date[16], dbuf[16];
  snprintf(date, sizeof(date), "%s", rest_query(x, "date", dbuf, sizeof(dbuf), ""));
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
  if (strlen(date) != 10 || strspn(date, "0123456789-") != 10 || date[4] != '-' || date[7] != '-')
    return rest_fail(x, 400, "invalid_query", "date is YYYY-MM-DD (UTC)");
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
  static const char *const ledger_names[] = {"batches",        "rows_sent",
                                             "rows_applied",   "mismatched_batches",
                                             "snapshot_pages", "change_batches"};
  long long mismatched;
  json_t *ledger = sums_json(&r, ledger_names, 6, 3, &mismatched, &rc);
  gdx_db_result_free(&r);
  if (rc)
    return rc;
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
  static const char *const file_names[] = {"files",       "delivered",  "bytes_delivered",
                                           "quarantined", "unverified", "bytes_received",
                                           "resumed"};
  long long nfiles, fbad;
  json_t *files = sums_json(&r, file_names, 7, 4, &fbad, &rc);
  nfiles = json_integer_value(json_object_get(files, "files"));
  gdx_db_result_free(&r);
  if (rc) {
    json_decref(ledger);
    return rc;
  }
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
           mismatched || fbad              ? "discrepancies"
           : nfiles > 0 && r.nrows == 0    ? "consistent" /* every file verified by hash */
           : r.nrows == 0                  ? "not_reconciled"
           : strcmp(last, "clean") == 0    ? "consistent"
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
  rc = gdx_db_query(c, "SELECT " SUB_COLS SUB_FROM "WHERE ts.authorization_id = ?", pa, 1, 1, &r);
  json_t *state = !rc && r.nrows == 1 ? sub_json(&r, 0) : json_null();
  if (!rc)
    gdx_db_result_free(&r);
  x->out = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "authorization_id",
                     (json_int_t)aid, "date", date, "resource_code", s.code, "consumer", s.consumer,
                     "provider", s.provider, "verdict", verdict, "state", state, "ledger", ledger,
                     "reconciliations", runs, "alarms", alarms);
  return rc;
}

/* GET /api/v1/subscriptions/<a>/files?status=&path=: the file ledger, newest
 * first (the last 1000; path= gives one file's versions). */
#define FILE_COLS                                                                                  \
  "id, path, size, sha256, sm3_sent, sm3_received, bytes_received, resumed_from, status, "         \
  "verified, version_kept, detail, DATE_FORMAT(received_at, '%Y-%m-%dT%H:%i:%s.%fZ'), "            \
  "DATE_FORMAT(verified_at, '%Y-%m-%dT%H:%i:%s.%fZ')"

static json_t *file_json(const gdx_db_result *r, size_t i) {
  gdx_db_row w = gdx_db_row_at(r, i);
  int verified = gdx_db_flag(&w, 9), version_kept = gdx_db_flag(&w, 10);
  if (w.rc)
    gdx_db_row_fail(&w, "file_ledger"); /* shown as false */
  return json_pack("{s:o, s:s, s:o, s:s, s:s, s:s, s:o, s:o, s:s, s:b, s:b, s:s, s:s, s:s}", "id",
                   rest_json_int(r, i, 0), "path", gdx_db_get(r, i, 1), "size",
                   rest_json_int(r, i, 2), "sha256", gdx_db_get(r, i, 3), "sm3_sent",
                   gdx_db_get(r, i, 4), "sm3_received", gdx_db_get(r, i, 5), "bytes_received",
                   rest_json_int(r, i, 6), "resumed_from", rest_json_int(r, i, 7), "status",
                   gdx_db_get(r, i, 8), "verified", verified, "version_kept", version_kept,
                   "detail", gdx_db_get(r, i, 11), "received_at", gdx_db_get(r, i, 12),
                   "verified_at", gdx_db_get(r, i, 13));
}

static int work_sub_files(gdx_db_conn *c, rest_ctx *x) {
  long long aid;
  ledger_sub s;
  int rc = person_sub(c, x, &aid, &s);
  if (rc || x->status)
    return rc;
  char buf[16], pbuf[1025];
  const char *status = rest_query(x, "status", buf, sizeof(buf), "");
  const char *path = x->status ? "" : rest_query(x, "path", pbuf, sizeof(pbuf), "");
  if (x->status)
    return GDX_OK;
  if (*status && strcmp(status, "delivered") != 0 && strcmp(status, "quarantined") != 0)
    return rest_fail(x, 400, "invalid_query", "status is delivered or quarantined");
  gdx_db_param p[] = {GDX_DB_P_INT(aid), GDX_DB_P_STR(status), GDX_DB_P_STR(status),
                      GDX_DB_P_STR(path), GDX_DB_P_STR(path)};
  return rest_list(c, x,
                   "SELECT " FILE_COLS " FROM file_ledger WHERE authorization_id = ? AND "
                   "(? = '' OR status = ?) AND (? = '' OR path = ?) ORDER BY id DESC LIMIT 1000",
                   p, 5, 1000, file_json);
}

static const rest_route routes[] = {
    {"GET", "/api/v1/subscriptions/{}/files", NULL, REST_SESSION, ROLE_ANY, NULL, work_sub_files,
     "The file ledger of a folder subscription (path, size, hashes, bytes "
     "received, delivered or quarantined), newest first"},
    {"GET", "/api/v1/subscriptions", NULL, REST_SESSION, ROLE_ANY, NULL, work_sub_list,
     "Table subscriptions of your unit (consumer or provider): phase, position, ledger totals"},
    {"GET", "/api/v1/subscriptions/{}/report", NULL, REST_SESSION, ROLE_ANY, NULL, work_sub_report,
     "The daily reconciliation report of a subscription (?date=YYYY-MM-DD)"},
    {"POST", "/api/v1/subscriptions/{}/reconcile", "table.reconcile_request", REST_SESSION,
     ROLE_UNIT_ADMIN | ROLE_OPS, NULL, work_sub_reconcile,
     "Ask the consumer's node for a reconciliation run now"},
    {"GET", "/api/v1/reconciliations", NULL, REST_SESSION, ROLE_ANY, NULL, work_recon_list,
     "Reconciliation runs, newest first (?authorization=N)"},
    {"GET", "/api/v1/alarms", NULL, REST_SESSION, ROLE_ANY, NULL, work_alarm_list,
     "Alarms of your unit (?state=open|all)"},
    {"POST", "/api/v1/alarms/{}/ack", "alarm.ack", REST_SESSION, ROLE_UNIT_ADMIN | ROLE_OPS, NULL,
     work_alarm_ack, "Acknowledge an alarm"},
};
const rest_part reports_part = REST_PART("reports", routes);
