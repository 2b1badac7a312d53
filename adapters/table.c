/* The table adapter: a table in the unit's front-end database (前置库).
 *
 *   frontdb = { socket = "/run/mysqld/mysqld.sock"; user = "gdx_node";
 *               password_file = "/etc/gdx/frontdb.pw"; name = "qianzhi"; };
 *   resources = (
 *     { name = "enterprises"; kind = "table"; table = "enterprise_info";
 *       items = ["uscc", "name", "legal_person"]; # the columns offered (default: all)
 *       capture = "triggers"; }                   # or "timestamp" + timestamp_column
 *   );
 *
 * Change capture. With capture = "triggers" (the default) the adapter keeps
 * three triggers on the table (gdx_<table>_ai/_au/_ad) that write every
 * insert, update and delete - with the primary key, as a JSON array - into
 * gdx_changelog in the same database and the same transaction as the change
 * itself; an update that changes the key is logged as a delete of the old
 * key and an upsert of the new. The log's seq orders the changes; a
 * provider keeps a row until every subscriber has passed it. With capture =
 * "timestamp" nothing is installed: changes are the rows whose change-time
 * column (a timestamp or datetime the database sets, ON UPDATE
 * CURRENT_TIMESTAMP(6)) is at or after the position, a moment in
 * microseconds, and before the start of the oldest statement or
 * transaction still open and a second ago (table_read.c, ts_bound); rows
 * deleted outright are not seen - a reconciliation run finds them as extra
 * rows and removes them - and there is no long poll (the consumer polls).
 * Its node's user needs the PROCESS privilege to see other connections.
 * Use it only where triggers are not allowed.
 *
 * Schema. At start the adapter reads the table's columns and primary key
 * from information_schema, checks that the configured items are columns and
 * include the key, and remembers a fingerprint of the columns. Every health
 * check (before each heartbeat) reads them again: a table that changed
 * under the node, or lost a trigger, is reported down with what changed,
 * and nothing is served from it until the node is restarted on purpose -
 * never silently mis-applied.
 *
 * Served to the broker (JSON; the key columns first in every row):
 *   GET /r/<name>/schema    columns, key, items, capture, fingerprint, position
 *   GET /r/<name>/snapshot?[after=<JSON key>][&upto=<JSON key>][&limit=N][&items=a,b]
 *       one page in key order; the first page also gives the change-log
 *       position to replay from after the last page
 *   GET /r/<name>/changes?after=<position>[&limit=N][&wait_ms=N][&items=a,b]
 *       the log entries after the position, up to the first gap that may
 *       still fill - a missing seq locked by an open transaction, or handed
 *       out less than a second ago (table_gaps.c); per key the last change,
 *       with the row as it is now ("U") or its key when it is gone ("D");
 *       the new position.
 *       With wait_ms the read is parked while there is nothing new (a long
 *       poll: the log is looked at every 50 ms). 410 when the position is
 *       below what was purged.
 *   GET /r/<name>/checksums?[after=<JSON key>][&chunk=N][&limit=C]
 *       reconciliation: C chunks of N rows, each its key range, row count
 *       and XOR of row hashes (common/rowsum.h)
 *   GET /r/<name>/rowsums?[after=…][&upto=…][&position=P]
 *       a chunk row by row (key, hash), and the keys changed after P
 *   POST /r/<name>/compare?items=a,b   {"records": [{key…, item: value…}, …]}
 *       comparison (比对): per record match, mismatch (the fields that
 *       differ) or not_found, and none of the provider's values; at most
 *       1000 records and 1 MiB; X-Gdx-Records in the answer is the count
 *       the broker charges to the quota, X-Gdx-Quota-Left from the broker
 *       refuses a batch larger than what is left
 * Pages and batches carry "count" and "checksum" for the ledger. Identical
 * reads in flight share one query. The broker's heartbeat answer says how
 * far every subscriber has applied; the log is purged below that.
 * Only items the resource offers can be asked for; the broker asks for the
 * authorized ones, so other columns never leave the node.
 *
 * Identifiers (table and column names) cannot be bound parameters; they are
 * checked against [A-Za-z0-9_]{1,64} and backquoted. Every value goes
 * through bound parameters.
 *
 * This file is the adapter itself: settings, requests, identical reads
 * coalesced, change batches kept a moment, long polls, metrics. The rest is
 * split by role (table_int.h): table_capture.c (inspection, triggers,
 * health, purge), table_read.c (snapshot pages and change batches),
 * table_checksums.c (reconciliation) and table_compare.c (比对).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "compress.h"
#include "error.h"
#include "num.h"
#include "relay.h"
#include "table_int.h"

#define CHECKSUM_MAX_ROWS 200000 /* rows behind one checksums answer */
#define WAIT_MAX_MS 30000
#define WAKE_MS 50               /* how often parked change reads look for news */
#define READ_CACHE_MS 2000       /* answers kept for readers a little behind */
#define READ_CACHE_MAX 8

/* ------------------------------------------------------------------ */
/* settings                                                            */

static int table_open(gdx_adapter *a, const config_setting_t *s, char *err, size_t errlen) {
  table_res *r = calloc(1, sizeof(*r));
  if (r == NULL || uv_mutex_init(&r->seen_mu) != 0) {
    free(r);
    return GDX_ENOMEM;
  }
  a->impl = r;
  r->self = a;
  const char *n = a->name;
  char capture[16];
  int rc = gdx_adapter_str(s, "table", r->table, sizeof(r->table), NULL, n, err, errlen);
  if (!rc && !gdx_db_ident_ok(r->table)) {
    snprintf(err, errlen, "resources.%s.table: \"%s\" is not a plain table name "
                          "(letters, digits, _; at most 64)", n, r->table);
    rc = GDX_ECONFIG;
  }
  if (!rc)
    rc = gdx_adapter_str(s, "capture", capture, sizeof(capture), "triggers", n, err, errlen);
  if (!rc && strcmp(capture, "triggers") != 0 && strcmp(capture, "timestamp") != 0) {
    snprintf(err, errlen, "resources.%s.capture: \"triggers\" or \"timestamp\", not \"%s\"", n,
             capture);
    rc = GDX_ECONFIG;
  }
  r->triggers = !rc && strcmp(capture, "triggers") == 0;
  if (!rc && r->triggers && strlen(r->table) > 57) {
    snprintf(err, errlen, "resources.%s.table: at most 57 characters with capture = "
                          "\"triggers\" (the trigger names add 7)", n);
    rc = GDX_ECONFIG;
  }
  if (!rc && !r->triggers) {
    rc = gdx_adapter_str(s, "timestamp_column", r->ts_col, sizeof(r->ts_col), NULL, n, err, errlen);
    if (!rc && !gdx_db_ident_ok(r->ts_col)) {
      snprintf(err, errlen, "resources.%s.timestamp_column: not a plain column name", n);
      rc = GDX_ECONFIG;
    }
  }
  config_setting_t *items = rc ? NULL : config_setting_get_member(s, "items");
  if (items) {
    int count = config_setting_length(items);
    if (!config_setting_is_array(items) || count == 0 || count > MAX_COLS) {
      snprintf(err, errlen, "line %d: resources.%s.items: a list of 1 to %d column names",
               config_setting_source_line(items), n, MAX_COLS);
      rc = GDX_ECONFIG;
    }
    for (int i = 0; !rc && i < count; i++) {
      const char *c = config_setting_get_string_elem(items, i);
      if (c == NULL || !gdx_db_ident_ok(c)) {
        snprintf(err, errlen, "resources.%s.items[%d]: not a plain column name", n, i);
        rc = GDX_ECONFIG;
        break;
      }
      r->items[r->nitems++] = strdup(c);
    }
  }
  if (!rc && a->env && a->env->loop && a->env->frontdb == NULL) {
    snprintf(err, errlen, "resources.%s: a table resource needs frontdb.name (the unit's "
                          "front-end database)", n);
    rc = GDX_ECONFIG;
  }
  snprintf(a->health, sizeof(a->health), "unknown");
  snprintf(a->detail, sizeof(a->detail), "not inspected yet");
  return rc;
}

void gdx__table_read_job_free(read_job *j) {
  for (int i = 0; i < KEY_MAX; i++) {
    free(j->after_key[i]);
    free(j->upto_key[i]);
  }
  free(j->reqs);
  free(j->key);
  free(j->body);
  free(j->zbody);
  gdx_buf_free(&j->in);
  json_decref(j->records);
  free(j);
}

/* ---- answering, coalescing, long polls ---- */

static void unlink_job(read_job *j) {
  for (read_job **p = &j->r->jobs; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      return;
    }
}

void gdx__table_read_abort(gdx_http_req *req) {
  read_job *j = gdx_http_req_get_data(req);
  for (int i = 0; i < j->nreqs; i++)
    if (j->reqs[i] == req)
      j->reqs[i] = NULL;
  if (j->op == OP_COMPARE && !j->in_db) { /* still reading its body */
    unlink_job(j);
    gdx__table_read_job_free(j);
  }
}

static int live_reqs(const read_job *j) {
  int n = 0;
  for (int i = 0; i < j->nreqs; i++)
    n += j->reqs[i] != NULL;
  return n;
}

/* A successful answer to one reader: compressed when it accepts zstd. */
static void respond_ok(read_job *j, gdx_http_req *req) {
  if (j->op == OP_COMPARE) { /* the broker counts them against the quota */
    char n[24];
    snprintf(n, sizeof(n), "%zu", j->nrecords);
    gdx_http_add_header(req, "X-Gdx-Records", n);
  }
  int z = gdx__table_compressible(j) &&
          gdx_accepts_zstd(gdx_http_req_header(req, "Accept-Encoding"));
  if (z)
    gdx__table_compress_body(j); /* a reader that joined late: compressed here, once */
  if (z && j->zbody) {
    gdx_http_add_header(req, "Content-Encoding", "zstd");
    gdx_http_respond(req, 200, "application/json", j->zbody, j->zlen);
  } else {
    gdx_http_respond(req, 200, "application/json", j->body, j->blen);
  }
}

/* Drops cached answers older than READ_CACHE_MS (all of them with all). */
static void cache_expire(table_res *r, int all) {
  uint64_t now = all ? 0 : uv_now(r->self->env->loop);
  for (read_job **p = &r->cache; *p;) {
    read_job *j = *p;
    if (all || now - j->cached_at > READ_CACHE_MS) {
      *p = j->next;
      r->ncache--;
      gdx__table_read_job_free(j);
    } else {
      p = &j->next;
    }
  }
}

/* Keeps a non-empty change batch for READ_CACHE_MS: subscribers a little
 * behind one another get it without another query. A kept batch is never
 * wrong, only older - a prefix of what a fresh read would give, the rest
 * follows from its position. Snapshot pages are not kept: a fetch must
 * see what was committed before it began. */
static int cache_keep(read_job *j) {
  table_res *r = j->r;
  if (r->closing || j->body == NULL || j->key == NULL || j->empty || j->op != OP_CHANGES)
    return 0;
  cache_expire(r, 0);
  if (r->ncache >= READ_CACHE_MAX) { /* the oldest goes */
    read_job **p = &r->cache;
    while ((*p)->next)
      p = &(*p)->next;
    gdx__table_read_job_free(*p);
    *p = NULL;
    r->ncache--;
  }
  j->nreqs = 0;
  j->cached_at = uv_now(r->self->env->loop);
  j->next = r->cache;
  r->cache = j;
  r->ncache++;
  return 1;
}

/* Answers everyone waiting and frees (or keeps) the job. */
void gdx__table_answer(read_job *j, int db_status) {
  unlink_job(j);
  for (int i = 0; i < j->nreqs; i++) {
    gdx_http_req *req = j->reqs[i];
    if (req == NULL)
      continue;
    gdx_http_req_on(req, NULL, NULL, NULL);
    gdx_http_req_set_data(req, NULL);
    if (db_status != GDX_OK || (j->status == 200 && j->body == NULL))
      gdx_relay_error(req, 503, "node", "table_unavailable", "the front-end database failed");
    else if (j->status != 200)
      gdx_relay_error(req, j->status, j->status == 503 ? "node" : "client", j->code, "%s",
                      j->msg);
    else
      respond_ok(j, req);
  }
  if (db_status != GDX_OK || j->status != 200 || !cache_keep(j))
    gdx__table_read_job_free(j);
}

static void read_done(int status, void *arg);
static void wake_start(table_res *r);

int gdx__table_submit_read(read_job *j) {
  if (gdx_db_submit(j->r->self->env->frontdb, gdx__table_read_work, read_done, j) != GDX_OK)
    return GDX_EBUSY;
  j->in_db = 1;
  j->parked = 0;
  return GDX_OK;
}

static void read_done(int status, void *arg) {
  read_job *j = arg;
  j->in_db = 0;
  if (status == GDX_OK && j->status == 200 && j->op == OP_CHANGES && j->empty &&
      j->wait_ms > 0 && j->r->triggers && uv_now(j->r->self->env->loop) < j->deadline && live_reqs(j) > 0 &&
      j->r->wake) {
    j->parked = 1; /* nothing new yet: answer when there is, or at the deadline */
    wake_start(j->r);
    return;
  }
  gdx__table_answer(j, status);
}

typedef struct {
  table_res *r;
  long long max;
} wake_job;

static int wake_work(gdx_db_conn *c, void *arg) {
  wake_job *w = arg;
  gdx_db_result res = {0};
  int rc = gdx_db_query(c, "SELECT COALESCE(MAX(seq), 0) FROM gdx_changelog", NULL, 0, 1, &res);
  if (rc == GDX_OK) {
    gdx_db_row row = gdx_db_row_at(&res, 0);
    w->max = gdx_db_i64(&row, 0, 0, GDX_DB_ID_MAX);
    rc = row.rc;
  }
  if (rc == GDX_OK) /* the gaps below it are as old as this look (table_gaps.c) */
    gdx__table_seen(w->r, w->max, uv_hrtime());
  gdx_db_result_free(&res);
  return rc;
}

/* Parked reads: gone ones are dropped, due ones answered empty, the rest
 * read again when the change log has grown past their position. */
static void wake_scan(table_res *r, long long max) {
  uint64_t now = uv_now(r->self->env->loop);
  read_job *next;
  for (read_job *j = r->jobs; j; j = next) {
    next = j->next;
    if (!j->parked)
      continue;
    if (live_reqs(j) == 0) {
      unlink_job(j);
      gdx__table_read_job_free(j);
    } else if (now >= j->deadline) {
      gdx__table_answer(j, GDX_OK);
    } else if (max > j->after_seq) {
      free(j->body);
      free(j->zbody);
      j->body = j->zbody = NULL;
      if (gdx__table_submit_read(j) != GDX_OK)
        gdx__table_answer(j, GDX_OK); /* the empty answer it has: the consumer asks again */
    }
  }
}

static void wake_done(int status, void *arg) {
  wake_job *w = arg;
  table_res *r = w->r;
  r->waking = 0;
  long long max = status == GDX_OK ? w->max : -1;
  free(w);
  if (r->closing)
    return;
  wake_scan(r, max < 0 ? 0 : max);
}

static void on_wake(uv_timer_t *t) {
  table_res *r = t->data;
  int parked = 0;
  for (read_job *j = r->jobs; j; j = j->next)
    parked += j->parked;
  if (parked == 0) {
    uv_timer_stop(t);
    return;
  }
  if (r->waking)
    return;
  wake_job *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return;
  w->r = r;
  r->waking = 1;
  if (gdx_db_submit(r->self->env->frontdb, wake_work, wake_done, w) != GDX_OK) {
    r->waking = 0;
    free(w);
    wake_scan(r, 0); /* at least the deadlines */
  }
}

static void wake_start(table_res *r) {
  if (!uv_is_active((uv_handle_t *)r->wake))
    uv_timer_start(r->wake, on_wake, WAKE_MS, WAKE_MS);
}

/* ---- requests ---- */

/* items=a,b,c: the columns asked for; each must be offered. The key comes
 * first whether asked for or not (a consumer cannot apply without it). */
static int select_items(table_res *r, read_job *j, const char *items, char *why, size_t n) {
  const tschema *s = &j->s;
  for (int k = 0; k < s->npk; k++)
    j->sel[j->nsel++] = s->pk[k];
  char copy[4096];
  snprintf(copy, sizeof(copy), "%s", items);
  int all = items[0] == '\0';
  for (int i = 0; all && i < (r->nitems ? r->nitems : s->ncols); i++) {
    int c = r->nitems ? gdx__table_col_index(s, r->items[i]) : i;
    int dup = 0;
    for (int k = 0; k < j->nsel; k++)
      dup |= j->sel[k] == c;
    if (!dup)
      j->sel[j->nsel++] = c;
  }
  for (char *save = NULL, *t = all ? NULL : strtok_r(copy, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    int offered = r->nitems == 0 && gdx__table_col_index(s, t) >= 0;
    for (int i = 0; i < r->nitems; i++)
      offered |= strcmp(r->items[i], t) == 0;
    if (!offered) {
      snprintf(why, n, "%s is not an item of resource %s", t, r->self->name);
      return -1;
    }
    int c = gdx__table_col_index(s, t), dup = 0;
    for (int k = 0; k < j->nsel; k++)
      dup |= j->sel[k] == c;
    if (!dup && j->nsel < MAX_COLS)
      j->sel[j->nsel++] = c;
  }
  return 0;
}

static void serve_schema(table_res *r, gdx_http_req *req, read_job *j) {
  const tschema *s = &r->s;
  /* of the selected columns only: the others stay unknown */
  json_t *cols = json_array(), *key = json_array(), *sel = json_array();
  for (int k = 0; k < j->nsel; k++) {
    const tcol *c = &s->cols[j->sel[k]];
    json_array_append_new(cols, json_pack("{s:s, s:s, s:b}", "name", c->name, "type", c->type,
                                          "nullable", c->nullable));
    json_array_append_new(sel, json_string(c->name));
  }
  for (int i = 0; i < s->npk; i++)
    json_array_append_new(key, json_string(s->cols[s->pk[i]].name));
  json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:I}", "table", r->table, "capture",
                        r->triggers ? "triggers" : "timestamp", "columns", cols, "primary_key",
                        key, "items", sel, "fingerprint", s->fingerprint, "position",
                        (json_int_t)s->position);
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (text == NULL) {
    gdx_relay_error(req, 500, "node", "internal", "out of memory");
    return;
  }
  gdx_http_respond(req, 200, "application/json", text, strlen(text));
  free(text);
}

/* A JSON array of npk key values (text or integers) into out[]. */
static int parse_key(const char *v, int npk, char **out) {
  json_t *key = json_loads(v, 0, NULL);
  int bad = !json_is_array(key) || json_array_size(key) != (size_t)npk;
  for (int k = 0; !bad && k < npk; k++) {
    json_t *e = json_array_get(key, (size_t)k);
    char num[32];
    if (json_is_integer(e))
      snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(e));
    bad |= !json_is_string(e) && !json_is_integer(e);
    if (!bad)
      out[k] = strdup(json_is_string(e) ? json_string_value(e) : num);
  }
  json_decref(key);
  return bad ? -1 : 0;
}

/* An integer query parameter in [min, max]; 0 absent, 1 set, -1 malformed. */
static int query_int(const char *q, const char *name, long long min, long long max,
                     long long *out) {
  char v[32];
  int got = gdx_http_query_param(q, name, v, sizeof(v));
  if (got != 1)
    return got;
  return gdx_num_parse(v, min, max, out) == GDX_OK ? 1 : -1;
}

static const char *const usage[] = {
    "snapshot?[after=<JSON key>][&upto=<JSON key>][&limit=1..10000][&items=a,b]",
    "changes?after=<position>[&limit=1..10000][&wait_ms=0..30000][&items=a,b]",
    "checksums?[after=<JSON key>][&chunk=1..10000][&limit=<chunks>][&items=a,b]",
    "rowsums?[after=<JSON key>][&upto=<JSON key>][&position=<n>][&items=a,b]",
};

static void table_serve(gdx_adapter *a, gdx_http_req *req, const char *rest) {
  table_res *r = a->impl;
  static const char *const ops[] = {"snapshot", "changes", "checksums", "rowsums", "compare"};
  int op = -1, is_schema = strcmp(rest, "schema") == 0;
  for (int i = 0; i < 5; i++)
    if (strcmp(rest, ops[i]) == 0)
      op = i;
  if (!is_schema && op < 0) {
    gdx_relay_error(req, 404, "node", "not_found", "table resource %s has no %s", a->name, rest);
    return;
  }
  if (strcmp(gdx_http_req_method(req), op == OP_COMPARE ? "POST" : "GET") != 0) {
    gdx_relay_error(req, 405, "node", "method_not_allowed", "%s is %s", rest,
                    op == OP_COMPARE ? "POSTed" : "read with GET");
    return;
  }
  if (!r->ready || r->s.error[0]) {
    gdx_relay_error(req, 503, "node", "table_unavailable", "%s",
                    r->s.error[0] ? r->s.error : "the table has not been inspected yet");
    return;
  }
  const char *q = gdx_http_req_query(req);
  /* the same read in flight or parked: wait for its answer */
  char key[8192];
  int kn = snprintf(key, sizeof(key), "%s?%s", rest, q ? q : "");
  if (!is_schema && op != OP_COMPARE && kn > 0 && (size_t)kn < sizeof(key)) {
    cache_expire(r, 0);
    for (read_job *j = r->cache; j; j = j->next)
      if (strcmp(j->key, key) == 0) { /* answered a moment ago */
        r->cache_hits++;
        respond_ok(j, req);
        return;
      }
  }
  if (!is_schema && op != OP_COMPARE && kn > 0 && (size_t)kn < sizeof(key))
    for (read_job *j = r->jobs; j; j = j->next)
      if (j->key && strcmp(j->key, key) == 0 && (j->in_db || j->parked)) {
        if (j->nreqs == j->cap) {
          int cap = j->cap ? j->cap * 2 : 4;
          gdx_http_req **nr = realloc(j->reqs, (size_t)cap * sizeof(*nr));
          if (nr == NULL)
            break;
          j->reqs = nr;
          j->cap = cap;
        }
        j->reqs[j->nreqs++] = req;
        gdx_http_req_set_data(req, j);
        gdx_http_req_on(req, NULL, NULL, gdx__table_read_abort);
        r->coalesced++;
        return;
      }
  read_job *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    gdx_relay_error(req, 503, "node", "busy", "out of memory");
    return;
  }
  j->r = r;
  j->op = op;
  j->s = r->s;
  char items[4096] = "", v[4096], why[300] = "";
  int bad = gdx_http_query_param(q, "items", items, sizeof(items)) < 0;
  if (!bad && select_items(r, j, items, why, sizeof(why)) != 0) {
    gdx_relay_error(req, 403, "node", "item_not_offered", "%s", why);
    gdx__table_read_job_free(j);
    return;
  }
  if (is_schema) {
    serve_schema(r, req, j);
    gdx__table_read_job_free(j);
    return;
  }
  if (op == OP_COMPARE) {
    gdx__table_serve_compare(r, req, j);
    return;
  }
  j->limit = op == OP_CHECKSUMS ? 100 : 1000;
  j->chunk = 1000;
  int got;
  bad |= query_int(q, "limit", 1, READ_MAX_ROWS, &j->limit) < 0;
  bad |= query_int(q, "chunk", 1, READ_MAX_ROWS, &j->chunk) < 0;
  bad |= query_int(q, "wait_ms", 0, WAIT_MAX_MS, &j->wait_ms) < 0;
  got = query_int(q, "position", 0, 1LL << 62, &j->after_seq);
  bad |= got < 0;
  j->has_seq = got == 1;
  if (op == OP_CHECKSUMS && j->chunk * j->limit > CHECKSUM_MAX_ROWS)
    j->limit = CHECKSUM_MAX_ROWS / j->chunk;
  if (op == OP_CHANGES) {
    got = bad ? 0 : query_int(q, "after", 0, 1LL << 62, &j->after_seq);
    bad |= got != 1; /* a change batch needs its position */
  } else {
    got = bad ? 0 : gdx_http_query_param(q, "after", v, sizeof(v));
    bad |= got < 0 || (got == 1 && parse_key(v, r->s.npk, j->after_key) != 0);
    j->has_after = got == 1;
    got = bad ? 0 : gdx_http_query_param(q, "upto", v, sizeof(v));
    bad |= got < 0 || (got == 1 && parse_key(v, r->s.npk, j->upto_key) != 0);
    j->has_upto = got == 1;
  }
  if (bad) {
    gdx_relay_error(req, 400, "client", "invalid_query", "%s", usage[op]);
    gdx__table_read_job_free(j);
    return;
  }
  j->want_zstd = (op == OP_SNAPSHOT || op == OP_CHANGES) &&
                 gdx_accepts_zstd(gdx_http_req_header(req, "Accept-Encoding"));
  j->key = strdup(key);
  j->reqs = malloc(4 * sizeof(*j->reqs));
  if (j->key == NULL || j->reqs == NULL) {
    gdx_relay_error(req, 503, "node", "busy", "out of memory");
    gdx__table_read_job_free(j);
    return;
  }
  j->cap = 4;
  j->reqs[j->nreqs++] = req;
  if (j->wait_ms > 0 && r->wake == NULL) {
    r->wake = malloc(sizeof(*r->wake));
    if (r->wake) {
      uv_timer_init(a->env->loop, r->wake);
      r->wake->data = r;
    }
  }
  j->deadline = uv_now(a->env->loop) + (uint64_t)j->wait_ms;
  gdx_http_req_set_data(req, j);
  gdx_http_req_on(req, NULL, NULL, gdx__table_read_abort);
  if (gdx__table_submit_read(j) != GDX_OK) {
    gdx_http_req_on(req, NULL, NULL, NULL);
    gdx_http_req_set_data(req, NULL);
    gdx_relay_error(req, 503, "node", "busy", "the front-end database queue is full");
    gdx__table_read_job_free(j);
    return;
  }
  j->next = r->jobs;
  r->jobs = j;
}

static void on_wake_closed(uv_handle_t *h) { free(h); }

static void table_close(gdx_adapter *a) {
  table_res *r = a->impl;
  if (r == NULL)
    return;
  r->closing = 1;
  /* the database pool has stopped: what is left is parked */
  while (r->jobs)
    gdx__table_answer(r->jobs, GDX_ECLOSED);
  cache_expire(r, 1);
  if (r->wake)
    uv_close((uv_handle_t *)r->wake, on_wake_closed);
  for (int i = 0; i < r->nitems; i++)
    free(r->items[i]);
  uv_mutex_destroy(&r->seen_mu);
  free(r);
  a->impl = NULL;
}

static void table_metrics(gdx_adapter *a, gdx_buf *out) {
  table_res *r = a->impl;
  int parked = 0;
  for (read_job *j = r->jobs; j; j = j->next)
    parked += j->parked;
  gdx_buf_appendf(out, "gdx_node_table_reads_coalesced_total{resource=\"%s\"} %llu\n", a->name,
                  (unsigned long long)r->coalesced);
  gdx_buf_appendf(out, "gdx_node_table_reads_cached_total{resource=\"%s\"} %llu\n", a->name,
                  (unsigned long long)r->cache_hits);
  gdx_buf_appendf(out, "gdx_node_table_reads_waiting{resource=\"%s\"} %d\n", a->name, parked);
  gdx_buf_appendf(out, "gdx_node_table_changelog_backlog{resource=\"%s\"} %lld\n", a->name,
                  r->s.backlog);
  gdx_buf_appendf(out, "gdx_node_table_changelog_purged_upto{resource=\"%s\"} %lld\n", a->name,
                  r->purged);
}

const gdx_adapter_ops gdx_adapter_table = {
    .kind = "table",
    .open = table_open,
    .serve = table_serve,
    .health = gdx__table_health,
    .hint = gdx__table_hint,
    .metrics = table_metrics,
    .close = table_close,
};

