/* The API proxy: https://<broker>/svc/<resource code>/<path>?<query>
 * (R-EX-1, R-AUTH-5).
 *
 * Hot path, all on the loop thread and without a database round trip:
 *   1. the bearer token's HMAC and expiry (credentials.c);
 *   2. the authorization from the cache: credential generation, status,
 *      validity period, consumer unit and owner active, resource code;
 *   3. quota (calls counted in memory, written in batches) and a token
 *      bucket per authorization;
 *   4. method and path against the operations of the entry's OpenAPI text;
 *   5. relay to the provider's node over pooled mutual-TLS connections,
 *      pinning the node's public key; responses filtered to the authorized
 *      data items when the authorization is narrower than the entry.
 * A cache miss loads everything about one authorization in one database job
 * while the calls that need it wait. Entries are dropped when the
 * invalidation log names them (polled every proxy.cache_poll_ms; at once for
 * changes made through this broker) and reloaded after a minute regardless.
 * Per-call records and usage counters are queued and written in batches;
 * a clean stop writes what is queued.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "error.h"
#include "exchange.h"
#include "httpc.h"
#include "log.h"
#include "pki.h"
#include "relay.h"

#define BUCKETS 4096
#define MAX_CREDS 32
#define MAX_OPS 256
#define ENTRY_TTL_MS 60000
#define RECORDS_MAX 200000
#define BATCH_MAX 2000

typedef struct {
  char method[8];
  char path[200];
} api_op;

typedef struct pcall pcall;

typedef struct aentry {
  long long id;
  struct aentry *next;
  int loading, stale, loaded;
  char fwd[3][112]; /* the headers sent to the node, made on first use */
  uint64_t loaded_ms;
  pcall *waiters;
  /* what the load found */
  int exists, active, is_call, unit_active;
  char method[12];    /* call, subscribe, fetch, compare */
  char *items_query;  /* the authorized items as "a%2Cb", for table reads */
  long long valid_from, valid_end; /* unix seconds, [from, end) */
  long long quota;                 /* -1: none */
  long long used;
  char consumer[19], code[41], target[501], provider[19], node_name[65];
  int node_ok;
  char node_addr[301], node_pin[64];
  char **deny;
  int ndeny;
  api_op *ops;
  int nops, ops_any;
  struct {
    long long id, generation;
    int ok;
  } creds[MAX_CREDS];
  int ncreds;
  /* rate limit */
  double tokens;
  uint64_t tokens_ms;
} aentry;

typedef struct {
  int64_t ts_us;
  char request_id[40];
  long long auth_id, cred_id;
  char consumer[19], code[41], method[10], path[256];
  int status;
  char error_type[12], error_code[40];
  uint64_t bytes_in, bytes_out;
  int ms_total, ms_node, ms_upstream;
  char source[64];
  int forwarded; /* reached the provider: counts against the quota */
  int units;     /* what it counts: 1, or the records of a compare batch */
} rec;

/* Tokens already verified, so that a busy client's calls skip the HMAC:
 * direct-mapped by a hash of the token, compared whole; the expiry is still
 * checked on every call, and everything else is decided from the
 * authorization cache as before. */
#define TOKCACHE 1024
typedef struct {
  char token[ACCESS_TOKEN_MAX];
  access_token tok;
} tokslot;

struct proxy {
  uv_loop_t *loop;
  const gdx_broker_config *cfg;
  const broker_pki *pki;
  gdx_db_pool *db;
  gdx_httpc *httpc;
  aentry *buckets[BUCKETS];
  tokslot *tokcache;
  uv_timer_t flush_timer, poll_timer, nodes_timer;
  int handles;
  /* records */
  rec *recs;
  size_t nrecs, caprecs;
  rec *inflight; /* the batch being written */
  size_t ninflight;
  /* invalidation log */
  long long last_inval;
  int poll_busy, poll_again;
  /* node states for /metrics */
  char *nodes_metrics;
  int nodes_busy;
  json_t *node_state; /* "unit/node" -> "online"/"offline" for transition logs */
  int stopping;
  int jobs; /* database jobs in flight */
  void (*stop_cb)(void *);
  void *stop_data;
  /* counters */
  uint64_t calls_by_result[6], refused[16], cache_hits, cache_misses, records_written,
      records_dropped, invalidations;
};

/* refusal reasons for /metrics */
enum {
  R_TOKEN, R_CREDENTIAL, R_AUTHZ, R_EXPIRED, R_WRONG_RESOURCE, R_QUOTA, R_RATE, R_OPERATION,
  R_NODE, R_UNIT, R_NRSN
};
static const char *const reason_names[] = {"token", "credential", "authorization", "expired",
                                           "wrong_resource", "quota", "rate", "operation",
                                           "node", "unit"};

struct pcall {
  proxy *p;
  gdx_http_req *req; /* NULL once the client is gone (while waiting) */
  pcall *next_waiter;
  aentry *waiting_on;
  access_token tok;
  char code[41];
  const char *rest; /* into the request's path */
  int paused;       /* the request body waits for the decision */
  uint64_t start_ms;
  rec r;
  /* a table read from a consumer's node (/node/v1/tables/…) */
  int table;
  int compare; /* a compare batch: counted by the records in it */
  char op[12], node_unit[32], node_name[80], serial[GDX_PKI_SERIAL_HEX];
};

static uint64_t now_ms(proxy *p) { return uv_now(p->loop); }

/* snprintf(dst, n, "%s", src) without the format machinery: hot path. */
static void copy_str(char *dst, size_t n, const char *src) {
  size_t l = strnlen(src, n - 1);
  memcpy(dst, src, l);
  dst[l] = '\0';
}

static int verify_cached(proxy *p, const char *s, access_token *t) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const char *c = s; *c; c++)
    h = (h ^ (unsigned char)*c) * 16777619u;
  tokslot *slot = p->tokcache ? &p->tokcache[h % TOKCACHE] : NULL;
  if (slot && strcmp(slot->token, s) == 0) {
    *t = slot->tok;
    return t->expires <= (long long)time(NULL) ? GDX_ETIMEDOUT : GDX_OK;
  }
  int rc = token_verify(p->pki, s, t);
  if (rc == GDX_OK && slot && strlen(s) < sizeof(slot->token)) {
    copy_str(slot->token, sizeof(slot->token), s);
    slot->tok = *t;
  }
  return rc;
}

static int64_t wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------ */
/* the cache                                                           */

static aentry **bucket_of(proxy *p, long long id) {
  return &p->buckets[(unsigned long long)id * 2654435761u % BUCKETS];
}

static aentry *entry_find(proxy *p, long long id) {
  for (aentry *e = *bucket_of(p, id); e; e = e->next)
    if (e->id == id)
      return e;
  return NULL;
}

static void entry_clear(aentry *e) {
  for (int i = 0; i < e->ndeny; i++)
    free(e->deny[i]);
  free(e->deny);
  free(e->ops);
  free(e->items_query);
  e->items_query = NULL;
  e->deny = NULL;
  e->ops = NULL;
  e->ndeny = e->nops = 0;
  e->fwd[0][0] = '\0';
}

static void entry_unlink(proxy *p, aentry *e) {
  for (aentry **pp = bucket_of(p, e->id); *pp; pp = &(*pp)->next)
    if (*pp == e) {
      *pp = e->next;
      break;
    }
}

/* Drops an entry, or marks it to be reloaded when a load is running. */
static void entry_drop(proxy *p, aentry *e) {
  if (e->loading) {
    e->stale = 1;
    return;
  }
  entry_unlink(p, e);
  entry_clear(e);
  free(e);
}

static void cache_drop_all(proxy *p) {
  for (int b = 0; b < BUCKETS; b++) {
    aentry *e = p->buckets[b];
    while (e) {
      aentry *next = e->next;
      entry_drop(p, e);
      e = next;
    }
  }
}

/* ---- OpenAPI operations ---- */

static int is_method(const char *m) {
  static const char *const ms[] = {"get", "put", "post", "delete", "patch", "head", "options",
                                   NULL};
  for (int i = 0; ms[i]; i++)
    if (strcasecmp(m, ms[i]) == 0)
      return 1;
  return 0;
}

static void add_op(aentry *e, const char *method, const char *path, size_t plen) {
  if (e->nops == MAX_OPS || plen == 0 || plen >= sizeof(e->ops[0].path))
    return;
  api_op *o = &e->ops[e->nops++];
  snprintf(o->method, sizeof(o->method), "%s", method);
  for (char *c = o->method; *c; c++)
    *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
  memcpy(o->path, path, plen);
  o->path[plen] = '\0';
}

/* The operations an OpenAPI document (JSON, or YAML in its usual block
 * layout) declares. None found: every path and method is allowed. */
static void parse_ops(aentry *e, const char *text) {
  e->ops = calloc(MAX_OPS, sizeof(api_op));
  if (e->ops == NULL || text == NULL || *text == '\0') {
    e->ops_any = 1;
    return;
  }
  json_t *doc = json_loads(text, 0, NULL);
  if (doc) {
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
      const char *m;
      json_t *op;
      json_object_foreach(item, m, op) if (is_method(m)) add_op(e, m, path, strlen(path));
    }
    json_decref(doc);
  } else {
    const char *l = text;
    int in_paths = 0, path_indent = -1;
    char cur[200] = "";
    while (*l) {
      const char *eol = strchr(l, '\n');
      size_t len = eol ? (size_t)(eol - l) : strlen(l);
      int ind = 0;
      while ((size_t)ind < len && l[ind] == ' ')
        ind++;
      const char *k = l + ind;
      size_t klen = len - (size_t)ind;
      while (klen > 0 && (k[klen - 1] == '\r' || k[klen - 1] == ' '))
        klen--;
      if (klen > 0 && *k != '#') {
        if (ind == 0) {
          in_paths = klen == 6 && strncmp(k, "paths:", 6) == 0;
          path_indent = -1;
        } else if (in_paths && klen > 1 && k[klen - 1] == ':') {
          const char *key = k;
          size_t kl = klen - 1;
          if (kl >= 2 && (key[0] == '"' || key[0] == '\'') && key[kl - 1] == key[0])
            key++, kl -= 2;
          if (key[0] == '/' && (path_indent < 0 || ind <= path_indent)) {
            path_indent = ind;
            snprintf(cur, sizeof(cur), "%.*s", (int)kl, key);
          } else if (ind > path_indent && path_indent >= 0 && cur[0] && kl < 8) {
            char m[8];
            snprintf(m, sizeof(m), "%.*s", (int)kl, key);
            if (is_method(m))
              add_op(e, m, cur, strlen(cur));
          }
        }
      }
      if (!eol)
        break;
      l = eol + 1;
    }
  }
  e->ops_any = e->nops == 0;
}

/* "/persons/{id}" matches "/persons/42"; a template segment matches one
 * non-empty segment. */
static int path_matches(const char *tmpl, const char *path) {
  while (*tmpl && *path) {
    if (*tmpl == '{') {
      const char *te = strchr(tmpl, '}');
      if (te == NULL)
        return 0;
      const char *pe = path;
      while (*pe && *pe != '/')
        pe++;
      if (pe == path)
        return 0;
      tmpl = te + 1;
      path = pe;
      continue;
    }
    if (*tmpl != *path)
      return 0;
    tmpl++, path++;
  }
  return *tmpl == '\0' && *path == '\0';
}

/* 0: allowed; 404: no such path; 405: path known, method not. */
static int op_allowed(const aentry *e, const char *method, const char *path) {
  if (e->ops_any)
    return 0;
  int known = 0;
  for (int i = 0; i < e->nops; i++)
    if (path_matches(e->ops[i].path, path)) {
      known = 1;
      if (strcmp(e->ops[i].method, method) == 0 ||
          (strcmp(method, "HEAD") == 0 && strcmp(e->ops[i].method, "GET") == 0))
        return 0;
    }
  return known ? 405 : 404;
}

/* ---- the load job ---- */

typedef struct {
  proxy *p;
  aentry *e;
  aentry tmp; /* filled on the worker */
} load_job;

static long long unflushed(proxy *p, long long auth) {
  long long n = 0;
  for (size_t i = 0; i < p->nrecs; i++)
    n += p->recs[i].auth_id == auth && p->recs[i].forwarded ? p->recs[i].units : 0;
  for (size_t i = 0; i < p->ninflight; i++)
    n += p->inflight[i].auth_id == auth && p->inflight[i].forwarded ? p->inflight[i].units : 0;
  return n;
}

static const char *str_or(const json_t *j) {
  const char *s = json_string_value(j);
  return s ? s : "";
}

static int load_work(gdx_db_conn *c, void *arg) {
  load_job *j = arg;
  aentry *t = &j->tmp;
  gdx_db_param p[] = {GDX_DB_P_INT(j->e->id)};
  gdx_db_result r;
  int rc = gdx_db_query(
      c,
      "SELECT a.status, a.method, TIMESTAMPDIFF(SECOND, '1970-01-01', a.valid_from), "
      "TIMESTAMPDIFF(SECOND, '1970-01-01', a.valid_until + INTERVAL 1 DAY), a.call_quota, "
      "a.data_items, cu.code, cu.status, e.resource_code, e.published_body, pu.code, "
      "IFNULL(ua.calls, 0), e.provider_unit_id "
      "FROM authorizations a JOIN catalog_entries e ON e.id = a.entry_id "
      "JOIN units cu ON cu.id = a.consumer_unit_id JOIN units pu ON pu.id = e.provider_unit_id "
      "LEFT JOIN authorization_usage ua ON ua.authorization_id = a.id WHERE a.id = ?",
      p, 1, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 0) {
    gdx_db_result_free(&r);
    return GDX_OK; /* exists stays 0 */
  }
  t->exists = 1;
  t->active = strcmp(gdx_db_get(&r, 0, 0), "active") == 0;
  t->is_call = strcmp(gdx_db_get(&r, 0, 1), "call") == 0;
  snprintf(t->method, sizeof(t->method), "%s", gdx_db_get(&r, 0, 1));
  t->valid_from = atoll(gdx_db_get(&r, 0, 2));
  t->valid_end = atoll(gdx_db_get(&r, 0, 3));
  t->quota = gdx_db_get(&r, 0, 4) ? atoll(gdx_db_get(&r, 0, 4)) : -1;
  snprintf(t->consumer, sizeof(t->consumer), "%s", gdx_db_get(&r, 0, 6));
  t->unit_active = strcmp(gdx_db_get(&r, 0, 7), "active") == 0;
  snprintf(t->code, sizeof(t->code), "%s", gdx_db_get(&r, 0, 8));
  snprintf(t->provider, sizeof(t->provider), "%s", gdx_db_get(&r, 0, 10));
  t->used = atoll(gdx_db_get(&r, 0, 11));
  long long provider_id = atoll(gdx_db_get(&r, 0, 12));
  json_t *allowed = json_loads(gdx_db_get(&r, 0, 5), 0, NULL);
  json_t *body = gdx_db_get(&r, 0, 9) ? json_loads(gdx_db_get(&r, 0, 9), 0, NULL) : NULL;
  gdx_db_result_free(&r);
  json_t *att = json_object_get(body, "attachment");
  snprintf(t->node_name, sizeof(t->node_name), "%s",
           str_or(json_object_get(att, "node")));
  snprintf(t->target, sizeof(t->target), "%s",
           str_or(json_object_get(att, "target")));
  parse_ops(t, json_string_value(json_object_get(att, "openapi")));
  /* the entry's items that the authorization does not include */
  json_t *items = json_object_get(body, "data_items");
  size_t i;
  json_t *it;
  t->deny = calloc(json_array_size(items) + 1, sizeof(char *));
  json_array_foreach(items, i, it) {
    const char *name = json_string_value(json_object_get(it, "name"));
    int ok = 0;
    size_t k;
    json_t *a;
    json_array_foreach(allowed, k, a) ok |= name && json_is_string(a) &&
                                            strcmp(json_string_value(a), name) == 0;
    if (name && !ok && t->deny)
      t->deny[t->ndeny++] = strdup(name);
  }
  /* the authorized items, URL-encoded for a table read's items= */
  gdx_buf iq;
  gdx_buf_init(&iq, 64 * 1024);
  json_array_foreach(allowed, i, it) {
    const char *name = json_string_value(it);
    if (name && iq.len > 0)
      gdx_buf_appends(&iq, "%2C");
    if (name)
      gdx_url_encode(&iq, name);
  }
  t->items_query = gdx_buf_detach(&iq, NULL);
  json_decref(allowed);
  json_decref(body);

  gdx_db_param pn[] = {GDX_DB_P_INT(provider_id), GDX_DB_P_STR(t->node_name)};
  rc = gdx_db_query(c,
                    "SELECT status, address, IFNULL(pubkey_pin, '') FROM nodes "
                    "WHERE unit_id = ? AND node_id = ?",
                    pn, 2, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 1) {
    t->node_ok = strcmp(gdx_db_get(&r, 0, 0), "active") == 0 && gdx_db_get(&r, 0, 1)[0] &&
                 gdx_db_get(&r, 0, 2)[0];
    snprintf(t->node_addr, sizeof(t->node_addr), "%s", gdx_db_get(&r, 0, 1));
    snprintf(t->node_pin, sizeof(t->node_pin), "%s", gdx_db_get(&r, 0, 2));
  }
  gdx_db_result_free(&r);
  rc = gdx_db_query(c,
                    "SELECT c.id, c.generation, c.status = 'active' AND o.status = 'active' "
                    "FROM credentials c JOIN accounts o ON o.id = c.owner_account_id "
                    "WHERE c.authorization_id = ? ORDER BY c.id DESC",
                    p, 1, MAX_CREDS, &r);
  if (rc == GDX_ETOOBIG)
    rc = GDX_OK; /* the newest MAX_CREDS are kept */
  if (rc)
    return rc;
  for (size_t k = 0; k < r.nrows && t->ncreds < MAX_CREDS; k++) {
    t->creds[t->ncreds].id = atoll(gdx_db_get(&r, k, 0));
    t->creds[t->ncreds].generation = atoll(gdx_db_get(&r, k, 1));
    t->creds[t->ncreds++].ok = atoi(gdx_db_get(&r, k, 2));
  }
  gdx_db_result_free(&r);
  return GDX_OK;
}

static void decide(pcall *k, aentry *e);
static void submit_load(proxy *p, aentry *e);
static void refuse(pcall *k, int status, const char *code, int reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void load_done(int status, void *arg) {
  load_job *j = arg;
  proxy *p = j->p;
  aentry *e = j->e;
  p->jobs--;
  e->loading = 0;
  if (status == GDX_OK && e->stale && !p->stopping) {
    e->stale = 0; /* invalidated while loading: the result may be old already */
    entry_clear(&j->tmp);
    free(j);
    submit_load(p, e);
    return;
  }
  pcall *w = e->waiters;
  e->waiters = NULL;
  if (status == GDX_OK) {
    entry_clear(e);
    aentry saved = *e;
    *e = j->tmp;
    e->id = saved.id;
    e->next = saved.next;
    e->waiters = NULL;
    e->loaded = 1;
    e->loaded_ms = now_ms(p);
    e->used += unflushed(p, e->id);
    e->tokens = p->cfg->proxy_rate_burst > 0 ? (double)p->cfg->proxy_rate_burst
                                             : (double)p->cfg->proxy_rate_limit_rps;
    e->tokens_ms = now_ms(p);
    free(j);
  } else {
    entry_clear(&j->tmp);
    free(j);
  }
  while (w) {
    pcall *next = w->next_waiter;
    w->waiting_on = NULL;
    if (w->req == NULL) {
      free(w);
    } else if (status != GDX_OK) {
      refuse(w, 503, "busy", -1,
             "the broker cannot check the authorization now; try again shortly");
    } else {
      decide(w, e);
    }
    w = next;
  }
  if (status != GDX_OK) /* not cached: the next call tries again */
    entry_drop(p, e);
}

static void submit_load(proxy *p, aentry *e) {
  load_job *j = calloc(1, sizeof(*j));
  if (j != NULL) {
    j->p = p;
    j->e = e;
    e->loading = 1;
    if (gdx_db_submit(p->db, load_work, load_done, j) == GDX_OK) {
      p->jobs++;
      return;
    }
    free(j);
  }
  e->loading = 0;
  pcall *w = e->waiters;
  e->waiters = NULL;
  while (w) {
    pcall *next = w->next_waiter;
    if (w->req) {
      gdx_http_add_header(w->req, "Retry-After", "1");
      refuse(w, 503, "busy", -1, "the broker is busy; try again shortly");
    } else {
      free(w);
    }
    w = next;
  }
  entry_drop(p, e);
}

/* ------------------------------------------------------------------ */
/* records                                                             */

static void record(proxy *p, const rec *r) {
  if (r->status >= 100 && r->status < 600)
    p->calls_by_result[r->status / 100]++;
  if (p->nrecs == p->caprecs) {
    if (p->caprecs >= RECORDS_MAX) {
      p->records_dropped++;
      return;
    }
    size_t cap = p->caprecs ? p->caprecs * 2 : 1024;
    rec *n = realloc(p->recs, cap * sizeof(rec));
    if (n == NULL) {
      p->records_dropped++;
      return;
    }
    p->recs = n;
    p->caprecs = cap;
  }
  p->recs[p->nrecs++] = *r;
}

typedef struct {
  proxy *p;
} flush_job;

#define REC_COLS 19
static const char *insert_sql(size_t rows, char *buf, size_t n) {
  size_t len = (size_t)snprintf(buf, n,
                                "INSERT INTO api_calls (ts, request_id, authorization_id, "
                                "credential_id, consumer_unit, resource_code, method, path, "
                                "status, error_type, error_code, bytes_in, bytes_out, ms_total, "
                                "ms_node, ms_upstream, source, id, units) VALUES ");
  for (size_t i = 0; i < rows && len + 80 < n; i++)
    len += (size_t)snprintf(buf + len, n - len,
                            "%s(FROM_UNIXTIME(?/1000000),?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            i ? "," : "");
  return buf;
}

static void rec_params(const rec *r, gdx_db_param *p) {
  p[0] = GDX_DB_P_INT(r->ts_us);
  p[1] = GDX_DB_P_STR(r->request_id);
  p[2] = r->auth_id ? GDX_DB_P_INT(r->auth_id) : GDX_DB_P_NULL;
  p[3] = r->cred_id ? GDX_DB_P_INT(r->cred_id) : GDX_DB_P_NULL;
  p[4] = GDX_DB_P_STR(r->consumer);
  p[5] = GDX_DB_P_STR(r->code);
  p[6] = GDX_DB_P_STR(r->method);
  p[7] = GDX_DB_P_STR(r->path);
  p[8] = GDX_DB_P_INT(r->status);
  p[9] = GDX_DB_P_STR(r->error_type);
  p[10] = GDX_DB_P_STR(r->error_code);
  p[11] = GDX_DB_P_INT(r->bytes_in);
  p[12] = GDX_DB_P_INT(r->bytes_out);
  p[13] = GDX_DB_P_INT(r->ms_total);
  p[14] = r->ms_node >= 0 ? GDX_DB_P_INT(r->ms_node) : GDX_DB_P_NULL;
  p[15] = r->ms_upstream >= 0 ? GDX_DB_P_INT(r->ms_upstream) : GDX_DB_P_NULL;
  p[16] = GDX_DB_P_STR(r->source);
  p[17] = GDX_DB_P_NULL; /* id: AUTO_INCREMENT */
  p[18] = GDX_DB_P_INT(r->units);
}

static int flush_work(gdx_db_conn *c, void *arg) {
  flush_job *j = arg;
  proxy *p = j->p;
  int rc = gdx_db_begin(c);
  /* few, large statements: the server's cost is mostly per statement */
  static const size_t sizes[] = {250, 50, 10, 1};
  gdx_db_param *params = calloc(250 * REC_COLS, sizeof(gdx_db_param));
  size_t sqlmax = 400 + 250 * 72;
  char *sql = malloc(sqlmax);
  if (params == NULL || sql == NULL)
    rc = GDX_ENOMEM;
  size_t i = 0;
  for (int s = 0; !rc && s < 4; s++) {
    while (!rc && p->ninflight - i >= sizes[s]) {
      for (size_t k = 0; k < sizes[s]; k++)
        rec_params(&p->inflight[i + k], params + k * REC_COLS);
      rc = gdx_db_exec(c, insert_sql(sizes[s], sql, sqlmax), params, sizes[s] * REC_COLS, NULL,
                       NULL);
      i += sizes[s];
    }
  }
  free(params);
  free(sql);
  /* usage: one upsert per authorization in the batch */
  for (size_t a = 0; !rc && a < p->ninflight; a++) {
    long long id = p->inflight[a].auth_id;
    int seen = id == 0 || !p->inflight[a].forwarded;
    for (size_t b = 0; b < a && !seen; b++)
      seen = p->inflight[b].auth_id == id && p->inflight[b].forwarded;
    if (seen)
      continue;
    long long calls = 0, bin = 0, bout = 0;
    for (size_t b = a; b < p->ninflight; b++)
      if (p->inflight[b].auth_id == id && p->inflight[b].forwarded) {
        calls += p->inflight[b].units;
        bin += (long long)p->inflight[b].bytes_in;
        bout += (long long)p->inflight[b].bytes_out;
      }
    gdx_db_param up[] = {GDX_DB_P_INT(id), GDX_DB_P_INT(calls), GDX_DB_P_INT(bin),
                         GDX_DB_P_INT(bout)};
    rc = gdx_db_exec(c,
                     "INSERT INTO authorization_usage (authorization_id, calls, bytes_in, "
                     "bytes_out, last_call_at) VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6)) "
                     "ON DUPLICATE KEY UPDATE calls = calls + VALUES(calls), bytes_in = "
                     "bytes_in + VALUES(bytes_in), bytes_out = bytes_out + VALUES(bytes_out), "
                     "last_call_at = VALUES(last_call_at)",
                     up, 4, NULL, NULL);
  }
  if (rc) {
    gdx_log_warn("proxy", "writing %zu call records failed (kept for the next try): %s",
                 p->ninflight, gdx_db_error(c));
    gdx_db_rollback(c);
    return rc;
  }
  return gdx_db_commit(c);
}

static void maybe_stopped(proxy *p);
static void flush_now(proxy *p);

static void flush_done(int status, void *arg) {
  flush_job *j = arg;
  proxy *p = j->p;
  free(j);
  p->jobs--;
  if (status == GDX_OK) {
    p->records_written += p->ninflight;
    free(p->inflight);
  } else {
    /* back in front of the queue, oldest first */
    size_t n = p->ninflight + p->nrecs;
    rec *all = malloc((n ? n : 1) * sizeof(rec));
    if (all) {
      memcpy(all, p->inflight, p->ninflight * sizeof(rec));
      memcpy(all + p->ninflight, p->recs, p->nrecs * sizeof(rec));
      free(p->recs);
      free(p->inflight);
      p->recs = all;
      p->nrecs = p->caprecs = n;
    } else {
      p->records_dropped += p->ninflight;
      free(p->inflight);
    }
  }
  p->inflight = NULL;
  p->ninflight = 0;
  if (p->stopping) {
    if (status == GDX_OK && p->nrecs > 0) {
      flush_now(p);
    } else {
      if (p->nrecs > 0) { /* the database is gone: stopping must not hang on it */
        gdx_log_error("proxy", "%zu call records could not be written before stopping: %s",
                      p->nrecs, gdx_strerror(status));
        p->records_dropped += p->nrecs;
        p->nrecs = 0;
      }
      maybe_stopped(p);
    }
  }
}

static void flush_now(proxy *p) {
  if (p->inflight || p->nrecs == 0)
    return;
  size_t n = p->nrecs < BATCH_MAX ? p->nrecs : BATCH_MAX;
  p->inflight = malloc(n * sizeof(rec));
  if (p->inflight == NULL)
    return;
  memcpy(p->inflight, p->recs, n * sizeof(rec));
  memmove(p->recs, p->recs + n, (p->nrecs - n) * sizeof(rec));
  p->nrecs -= n;
  p->ninflight = n;
  flush_job *j = calloc(1, sizeof(*j));
  if (j) {
    j->p = p;
    if (gdx_db_submit(p->db, flush_work, flush_done, j) == GDX_OK) {
      p->jobs++;
      return;
    }
    free(j);
  }
  /* queue full: put the batch back and try on the next tick */
  rec *all = malloc((p->nrecs + n) * sizeof(rec));
  if (all) {
    memcpy(all, p->inflight, n * sizeof(rec));
    memcpy(all + n, p->recs, p->nrecs * sizeof(rec));
    free(p->recs);
    p->recs = all;
    p->nrecs = p->caprecs = p->nrecs + n;
  }
  free(p->inflight);
  p->inflight = NULL;
  p->ninflight = 0;
}

static void on_flush_timer(uv_timer_t *t) { flush_now(t->data); }

/* ------------------------------------------------------------------ */
/* invalidation log                                                    */

typedef struct {
  proxy *p;
  long long after;
  gdx_db_result r;
  int init;
} poll_job;

static int poll_work(gdx_db_conn *c, void *arg) {
  poll_job *j = arg;
  if (j->init)
    return gdx_db_query(c, "SELECT IFNULL(MAX(id), 0) FROM cache_invalidations", NULL, 0, 1,
                        &j->r);
  gdx_db_param p[] = {GDX_DB_P_INT(j->after)};
  return gdx_db_query(c,
                      "SELECT id, kind, ref_id FROM cache_invalidations WHERE id > ? "
                      "ORDER BY id LIMIT 1000",
                      p, 1, 1000, &j->r);
}

static void poll_start(proxy *p);

static void apply_invalidation(proxy *p, const char *kind, long long ref) {
  if (strcmp(kind, "authorization") == 0) {
    aentry *e = entry_find(p, ref);
    if (e)
      entry_drop(p, e);
  } else if (strcmp(kind, "credential") == 0) {
    for (int b = 0; b < BUCKETS; b++)
      for (aentry *e = p->buckets[b], *next; e; e = next) {
        next = e->next;
        for (int k = 0; k < e->ncreds; k++)
          if (e->creds[k].id == ref) {
            entry_drop(p, e);
            break;
          }
      }
  } else {
    cache_drop_all(p); /* node, unit, account: rare; reload everything */
  }
}

static void poll_done(int status, void *arg) {
  poll_job *j = arg;
  proxy *p = j->p;
  p->jobs--;
  p->poll_busy = 0;
  if (status == GDX_OK && j->init) {
    p->last_inval = atoll(gdx_db_get(&j->r, 0, 0));
  } else if (status == GDX_OK) {
    for (size_t i = 0; i < j->r.nrows; i++) {
      long long id = atoll(gdx_db_get(&j->r, i, 0)), ref = atoll(gdx_db_get(&j->r, i, 2));
      const char *kind = gdx_db_get(&j->r, i, 1);
      p->last_inval = id;
      p->invalidations++;
      apply_invalidation(p, kind, ref);
    }
  } else if (status != GDX_OK && j->init) {
    p->last_inval = -1; /* try the start-up read again */
  }
  if (status == GDX_OK)
    gdx_db_result_free(&j->r);
  free(j);
  if (p->stopping) {
    maybe_stopped(p);
    return;
  }
  if (p->poll_again) {
    p->poll_again = 0;
    poll_start(p);
  }
}

static void poll_start(proxy *p) {
  if (p->stopping)
    return;
  if (p->poll_busy) {
    p->poll_again = 1;
    return;
  }
  poll_job *j = calloc(1, sizeof(*j));
  if (j == NULL)
    return;
  j->p = p;
  j->init = p->last_inval < 0;
  j->after = p->last_inval;
  if (gdx_db_submit(p->db, poll_work, poll_done, j) != GDX_OK) {
    free(j);
    return;
  }
  p->jobs++;
  p->poll_busy = 1;
}

static void on_poll_timer(uv_timer_t *t) { poll_start(t->data); }

void proxy_poke(void *arg, const char *kind, long long ref) {
  proxy *p = arg;
  if (kind && *kind)
    apply_invalidation(p, kind, ref);
  poll_start(p);
}

/* ------------------------------------------------------------------ */
/* node states for /metrics, and log lines when a node goes offline      */

typedef struct {
  proxy *p;
  gdx_db_result r, alarms, subs;
} nodes_job;

static int nodes_work(gdx_db_conn *c, void *arg) {
  nodes_job *j = arg;
  gdx_db_param p[] = {GDX_DB_P_INT(j->p->cfg->node_offline_after_s)};
  int rc = gdx_db_query(c, "SELECT kind, COUNT(*) FROM alarms WHERE state = 'open' GROUP BY kind "
                           "LIMIT 100", NULL, 0, 100, &j->alarms);
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
  nodes_job *j = arg;
  proxy *p = j->p;
  p->jobs--;
  p->nodes_busy = 0;
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
    for (size_t i = 0; i < j->r.nrows; i++)
      if (atoll(gdx_db_get(&j->r, i, 3)) > 0)
        gdx_buf_appendf(&b, "gdx_node_last_heartbeat_seconds{unit=\"%s\",node=\"%s\"} %s\n",
                        gdx_db_get(&j->r, i, 0), gdx_db_get(&j->r, i, 1),
                        gdx_db_get(&j->r, i, 3));
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
      gdx_buf_appendf(&b, "gdx_table_subscription_last_report_seconds{authorization=\"%s\"} "
                      "%s\n", gdx_db_get(&j->subs, i, 0), gdx_db_get(&j->subs, i, 3));
    free(p->nodes_metrics);
    p->nodes_metrics = gdx_buf_detach(&b, NULL);
  }
  gdx_db_result_free(&j->r);
  gdx_db_result_free(&j->alarms);
  gdx_db_result_free(&j->subs);
  free(j);
  if (p->stopping)
    maybe_stopped(p);
}

static void on_nodes_timer(uv_timer_t *t) {
  proxy *p = t->data;
  if (p->nodes_busy || p->stopping)
    return;
  nodes_job *j = calloc(1, sizeof(*j));
  if (j == NULL)
    return;
  j->p = p;
  if (gdx_db_submit(p->db, nodes_work, nodes_done, j) != GDX_OK) {
    free(j);
    return;
  }
  p->jobs++;
  p->nodes_busy = 1;
}

/* ------------------------------------------------------------------ */
/* the call                                                            */

static void finish_rec(pcall *k, int status, const char *type, const char *code) {
  rec *r = &k->r;
  r->status = status;
  r->units = 0; /* refused: nothing counted */
  snprintf(r->error_type, sizeof(r->error_type), "%s", type);
  snprintf(r->error_code, sizeof(r->error_code), "%s", code);
  r->ms_total = (int)(now_ms(k->p) - k->start_ms);
  r->ms_node = r->ms_upstream = -1;
  record(k->p, r);
}

static void refuse(pcall *k, int status, const char *code, int reason, const char *fmt, ...) {
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (reason >= 0 && reason < R_NRSN)
    k->p->refused[reason]++;
  const char *type = status >= 500 ? "broker" : "client";
  if (reason == R_NODE)
    type = "node";
  if (status == 429 && reason == R_RATE)
    gdx_http_add_header(k->req, "Retry-After", "1");
  gdx_http_req_set_data(k->req, NULL);
  gdx_http_req_on(k->req, NULL, NULL, NULL);
  gdx_relay_error(k->req, status, type, code, "%s", msg);
  if (k->paused)
    gdx_http_req_resume(k->req); /* the rest of the body is read and dropped */
  finish_rec(k, status, type, code);
  free(k);
}

static int want_buffer(const char *ctype, void *data) {
  (void)ctype;
  pcall *k = data;
  aentry *e = entry_find(k->p, k->r.auth_id);
  return e != NULL && e->ndeny > 0;
}

static int is_json(const char *ct) {
  if (ct == NULL)
    return 0;
  const char *semi = strchr(ct, ';');
  size_t n = semi ? (size_t)(semi - ct) : strlen(ct);
  while (n > 0 && ct[n - 1] == ' ')
    n--;
  return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
         (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

static void strip_fields(json_t *j, char **deny, int ndeny) {
  if (json_is_object(j)) {
    for (int i = 0; i < ndeny; i++)
      json_object_del(j, deny[i]);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) strip_fields(v, deny, ndeny);
  } else if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) strip_fields(v, deny, ndeny);
  }
}

/* Removes the fields named by data items the authorization does not cover,
 * at any depth. */
static int transform(gdx_buf *body, const char *ctype, void *data, char *why, size_t n) {
  pcall *k = data;
  aentry *e = entry_find(k->p, k->r.auth_id);
  if (body->len == 0)
    return 0;
  if (!is_json(ctype)) {
    snprintf(why, n,
             "the authorization covers only some data items, and a %s response cannot be "
             "filtered to them",
             ctype && *ctype ? ctype : "non-JSON");
    return -1;
  }
  json_t *j = json_loadb(body->data, body->len, 0, NULL);
  if (j == NULL) {
    snprintf(why, n, "the provider's JSON response does not parse, so it cannot be filtered");
    return -1;
  }
  if (e)
    strip_fields(j, e->deny, e->ndeny);
  else
    json_decref(j), j = NULL;
  if (j == NULL) {
    snprintf(why, n, "the authorization changed during the call");
    return -1;
  }
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(j);
  if (s == NULL) {
    snprintf(why, n, "out of memory");
    return -1;
  }
  body->len = 0;
  gdx_buf_append(body, s, strlen(s));
  free(s);
  return 0;
}

static void on_head(gdx_http_req *req, int status, const gdx_relay_result *res, void *data) {
  (void)status;
  char st[160];
  if (res->peer_upstream_ms >= 0)
    snprintf(st, sizeof(st), "node;dur=%llu, upstream;dur=%ld",
             (unsigned long long)(res->ms_head > (uint64_t)res->peer_upstream_ms
                                      ? res->ms_head - (uint64_t)res->peer_upstream_ms
                                      : 0),
             res->peer_upstream_ms);
  else
    snprintf(st, sizeof(st), "node;dur=%llu", (unsigned long long)res->ms_head);
  gdx_http_add_header(req, "Server-Timing", st);
  (void)data;
}

static void on_finish(const gdx_relay_result *res, void *data) {
  pcall *k = data;
  rec *r = &k->r;
  r->forwarded = 1;
  r->status = res->status;
  snprintf(r->error_type, sizeof(r->error_type), "%s", res->error_type);
  snprintf(r->error_code, sizeof(r->error_code), "%s", res->error_code);
  r->bytes_in = res->bytes_in;
  r->bytes_out = res->bytes_out;
  r->ms_total = (int)(now_ms(k->p) - k->start_ms);
  r->ms_upstream = (int)res->peer_upstream_ms;
  r->ms_node = res->ms_head && res->peer_upstream_ms >= 0
                   ? (int)(res->ms_head - (uint64_t)res->peer_upstream_ms)
                   : (res->ms_head ? (int)res->ms_head : -1);
  if (k->compare) { /* the records compared, as the provider's node counted them */
    r->units = res->status == 200 && res->peer_records > 0 ? (int)res->peer_records : 0;
    aentry *e = entry_find(k->p, r->auth_id);
    if (e)
      e->used += r->units;
  }
  record(k->p, r);
  free(k);
}

/* Relays k's request to the provider's node at url (API calls with JSON
 * field filtering when filter is set). On success k belongs to the relay. */
static int relay_to_node(pcall *k, aentry *e, const char *url, int filter, const char *extra) {
  proxy *p = k->p;
  if (e->fwd[0][0] == '\0') {
    snprintf(e->fwd[0], sizeof(e->fwd[0]), "X-Gdx-Consumer-Unit: %s", e->consumer);
    snprintf(e->fwd[1], sizeof(e->fwd[1]), "X-Gdx-Authorization: %lld", e->id);
    snprintf(e->fwd[2], sizeof(e->fwd[2]), "X-Gdx-Resource: %s", e->code);
  }
  const char *headers[] = {e->fwd[0], e->fwd[1], e->fwd[2], extra, NULL};
  static const char *const drop[] = {"Authorization", "X-Gdx-*", NULL};
  gdx_relay_opts o = {
      .client = p->httpc,
      .url = url,
      .headers = headers,
      .drop_headers = drop,
      .ca_file = p->pki->ca_file,
      .cert_file = p->pki->cert_file,
      .key_file = p->pki->key_file,
      .pinned_key = e->node_pin,
      .connect_timeout_ms = (long)p->cfg->proxy_connect_timeout_ms,
      .head_timeout_ms = (long)p->cfg->proxy_head_timeout_ms,
      .idle_timeout_s = (long)p->cfg->proxy_idle_timeout_s,
      .next_hop = "node",
      .native = 1, /* gdx's own keep-alive engine: the hop is gdx to gdx */
      .buffer_max = filter ? (size_t)p->cfg->proxy_filter_max_bytes : 0,
      .want_buffer = filter ? want_buffer : NULL,
      .transform = filter ? transform : NULL,
      .on_head = on_head,
      .on_finish = on_finish,
      .data = k,
  };
  gdx_http_req *req = k->req;
  int paused = k->paused;
  int rc = gdx_relay_start(req, &o);
  if (rc == GDX_OK && paused)
    gdx_http_req_resume(req); /* k may be gone after this */
  return rc;
}

static void decide_table(pcall *k, aentry *e);
static void start_table_read(pcall *k, aentry *e);

/* What a fetch authorization may read: a table's schema and snapshot, a
 * folder's listing, chunk hashes and bytes. */
static int fetch_op(const char *op) {
  static const char *const ops[] = {"schema", "snapshot", "files", "chunks", "data", NULL};
  for (int i = 0; ops[i]; i++)
    if (strcmp(op, ops[i]) == 0)
      return 1;
  return 0;
}

/* POST /svc/<code>/compare under a compare authorization (比对): relayed to
 * the provider's node with items= set to the authorized items, so only
 * they can be compared, and X-Gdx-Quota-Left so that a batch larger than
 * what the quota has left is refused there. Each record compared counts
 * as one call against the quota (the node reports X-Gdx-Records). */
static void start_compare(pcall *k, aentry *e) {
  k->compare = 1;
  gdx_buf u;
  gdx_buf_init(&u, 16384);
  int rc = gdx_buf_appendf(&u, "%s/r/%s/compare?items=%s", e->node_addr, e->target,
                           e->items_query ? e->items_query : "");
  char left[64] = "";
  if (e->quota >= 0)
    snprintf(left, sizeof(left), "X-Gdx-Quota-Left: %lld", e->quota - e->used);
  if (!rc)
    rc = relay_to_node(k, e, u.data, 0, left[0] ? left : NULL);
  gdx_buf_free(&u);
  if (rc != GDX_OK)
    refuse(k, 502, "relay_failed", -1, "the comparison could not be started");
}

static void decide(pcall *k, aentry *e) {
  if (k->table) {
    decide_table(k, e);
    return;
  }
  proxy *p = k->p;
  long long now = (long long)time(NULL);
  k->r.auth_id = e->id;
  copy_str(k->r.consumer, sizeof(k->r.consumer), e->consumer);
  int cred_ok = 0, cred_known = 0;
  for (int i = 0; i < e->ncreds; i++)
    if (e->creds[i].id == k->tok.credential_id) {
      cred_known = 1;
      cred_ok = e->creds[i].ok && e->creds[i].generation == k->tok.generation;
    }
  if (!e->exists || !cred_known || !cred_ok)
    return refuse(k, 401, "invalid_token", R_CREDENTIAL,
                  "the credential behind this token is revoked, rotated or unknown");
  if (!e->unit_active)
    return refuse(k, 403, "account_disabled", R_UNIT, "the consumer unit is disabled");
  if (!e->active)
    return refuse(k, 403, "authorization_revoked", R_AUTHZ, "the authorization is revoked");
  int compare = strcmp(e->method, "compare") == 0, fetch = strcmp(e->method, "fetch") == 0;
  if (!e->is_call && !compare && !fetch)
    return refuse(k, 403, "wrong_method", R_AUTHZ,
                  "the authorization is for %s; API calls need method call, comparisons "
                  "method compare, snapshots method fetch", e->method);
  if (now < e->valid_from)
    return refuse(k, 403, "authorization_not_yet_valid", R_EXPIRED,
                  "the authorization is not valid yet");
  if (now >= e->valid_end)
    return refuse(k, 403, "authorization_expired", R_EXPIRED, "the authorization has expired");
  if (strcmp(e->code, k->code) != 0)
    return refuse(k, 403, "wrong_resource", R_WRONG_RESOURCE,
                  "this token is for resource %s, not %s", e->code, k->code);
  char path[1024];
  snprintf(path, sizeof(path), "/%s", k->rest);
  int op = !compare && !fetch ? op_allowed(e, gdx_http_req_method(k->req), path)
           : compare ? (strcmp(k->rest, "compare") != 0 ? 404 : 0)
           : !fetch_op(k->rest) ? 404
           : strcmp(gdx_http_req_method(k->req), compare ? "POST" : "GET") != 0 ? 405
           : 0;
  if (op == 404)
    return refuse(k, 404, "path_not_allowed", R_OPERATION,
                  "%s is not an operation of resource %s", path, e->code);
  if (op == 405)
    return refuse(k, 405, "method_not_allowed", R_OPERATION,
                  "%s %s is not an operation of resource %s", gdx_http_req_method(k->req), path,
                  e->code);
  if (e->quota >= 0 && e->used >= e->quota)
    return refuse(k, 429, "quota_exhausted", R_QUOTA,
                  "the authorization's %lld calls are used up", e->quota);
  if (p->cfg->proxy_rate_limit_rps > 0) {
    double burst = p->cfg->proxy_rate_burst > 0 ? (double)p->cfg->proxy_rate_burst
                                                : (double)p->cfg->proxy_rate_limit_rps;
    uint64_t t = now_ms(p);
    e->tokens += (double)(t - e->tokens_ms) * (double)p->cfg->proxy_rate_limit_rps / 1000.0;
    if (e->tokens > burst)
      e->tokens = burst;
    e->tokens_ms = t;
    if (e->tokens < 1.0)
      return refuse(k, 429, "rate_limited", R_RATE,
                    "more than %lld calls per second for this authorization",
                    p->cfg->proxy_rate_limit_rps);
    e->tokens -= 1.0;
  }
  if (!e->node_ok)
    return refuse(k, 503, "node_unavailable", R_NODE,
                  "the provider's node %s/%s is not enrolled, revoked or has not reported "
                  "its address",
                  e->provider, e->node_name);
  if (compare) {
    start_compare(k, e);
    return;
  }
  if (fetch) { /* GET /svc/<code>/schema, snapshot?after=&limit=, files, chunks, data */
    e->used++;
    copy_str(k->op, sizeof(k->op), k->rest);
    start_table_read(k, e);
    return;
  }
  e->used++;
  size_t ulen = strlen(e->node_addr) + strlen(e->target) + strlen(k->rest) +
                strlen(gdx_http_req_query(k->req)) + 8;
  char *url = malloc(ulen);
  if (url == NULL)
    return refuse(k, 503, "busy", -1, "out of memory");
  const char *q = gdx_http_req_query(k->req);
  snprintf(url, ulen, "%s/r/%s/%s%s%s", e->node_addr, e->target, k->rest, *q ? "?" : "", q);
  int rc = relay_to_node(k, e, url, 1, NULL);
  free(url);
  if (rc != GDX_OK) {
    e->used--;
    refuse(k, 502, "relay_failed", -1, "the call could not be started: %s", gdx_strerror(rc));
  }
}

static void waiter_abort(gdx_http_req *req) {
  pcall *k = gdx_http_req_get_data(req);
  if (k)
    k->req = NULL; /* freed when the load finishes */
}

/* The cached decision inputs of authorization auth_id, loaded once for all
 * calls waiting on them; then decide(). */
static void with_entry(pcall *k, long long auth_id) {
  proxy *p = k->p;
  gdx_http_req *req = k->req;
  aentry *e = entry_find(p, auth_id);
  if (e && !e->loading && now_ms(p) - e->loaded_ms > ENTRY_TTL_MS) {
    entry_drop(p, e);
    e = NULL;
  }
  if (e && !e->loading) {
    p->cache_hits++;
    decide(k, e);
    return;
  }
  p->cache_misses++;
  if (e == NULL) {
    e = calloc(1, sizeof(*e));
    if (e == NULL)
      return refuse(k, 503, "busy", -1, "out of memory");
    e->id = auth_id;
    aentry **b = bucket_of(p, e->id);
    e->next = *b;
    *b = e;
    k->next_waiter = NULL;
    e->waiters = k;
    k->waiting_on = e;
    gdx_http_req_set_data(req, k);
    gdx_http_req_on(req, NULL, NULL, waiter_abort);
    gdx_http_req_pause(req); /* the body waits for the decision */
    k->paused = 1;
    submit_load(p, e);
    return;
  }
  k->next_waiter = e->waiters;
  e->waiters = k;
  k->waiting_on = e;
  gdx_http_req_set_data(req, k);
  gdx_http_req_on(req, NULL, NULL, waiter_abort);
  gdx_http_req_pause(req);
  k->paused = 1;
}

/* A call and its record, begun (503 answered when out of memory). */
static pcall *pcall_new(proxy *p, gdx_http_req *req) {
  pcall *k = calloc(1, sizeof(*k));
  if (k == NULL) {
    gdx_relay_error(req, 503, "broker", "busy", "out of memory");
    return NULL;
  }
  k->p = p;
  k->req = req;
  k->start_ms = now_ms(p);
  rec *r = &k->r;
  r->ts_us = wall_us();
  r->units = 1;
  copy_str(r->request_id, sizeof(r->request_id), gdx_http_req_id(req));
  copy_str(r->method, sizeof(r->method), gdx_http_req_method(req));
  copy_str(r->path, sizeof(r->path), gdx_http_req_path(req));
  copy_str(r->source, sizeof(r->source), gdx_http_req_remote_addr(req));
  char *colon = strrchr(r->source, ':');
  if (colon)
    *colon = '\0'; /* the address, not the ephemeral port */
  return k;
}

static void handle_svc(gdx_http_req *req, void *data) {
  proxy *p = data;
  pcall *k = pcall_new(p, req);
  if (k == NULL)
    return;
  rec *r = &k->r;
  const char *path = gdx_http_req_path(req);
  /* /svc/<category>/<sequence>/<rest> */
  const char *s = path + 5;
  const char *slash1 = strchr(s, '/');
  const char *slash2 = slash1 ? strchr(slash1 + 1, '/') : NULL;
  size_t clen = slash2 ? (size_t)(slash2 - s) : strlen(s);
  if (slash1 == NULL || clen >= sizeof(k->code) || clen < 3) {
    return refuse(k, 404, "unknown_resource", -1,
                  "call /svc/<resource code>/<path>, e.g. /svc/101/000001/persons");
  }
  memcpy(k->code, s, clen);
  k->code[clen] = '\0';
  copy_str(r->code, sizeof(r->code), k->code);
  k->rest = slash2 ? slash2 + 1 : "";
  const char *auth = gdx_http_req_header(req, "Authorization");
  if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
    return refuse(k, 401, "unauthenticated", R_TOKEN,
                  "send an access token: Authorization: Bearer <token from POST /api/v1/token>");
  int vr = verify_cached(p, auth + 7, &k->tok);
  if (vr == GDX_ETIMEDOUT)
    return refuse(k, 401, "token_expired", R_TOKEN,
                  "the access token has expired; get a new one from POST /api/v1/token");
  if (vr != GDX_OK)
    return refuse(k, 401, "invalid_token", R_TOKEN, "the access token is not valid");
  r->auth_id = k->tok.authorization_id;
  r->cred_id = k->tok.credential_id;
  with_entry(k, k->tok.authorization_id);
}

/* ------------------------------------------------------------------ */
/* table reads from a consumer's node                                  */

/* GET /node/v1/tables/<authorization>/<schema|snapshot|changes>?after=&limit=
 * on the node listener: the calling node's certificate (checked against
 * node_certs once per connection) must belong to the authorization's
 * consumer unit; the authorization must be active, valid and for subscribe
 * or fetch. The read goes to the provider's node with items= set to the
 * authorized items - whatever the consumer asked - so other columns never
 * leave the provider. Each read is a call record. */
static void decide_table(pcall *k, aentry *e) {
  long long now = (long long)time(NULL);
  k->r.auth_id = e->id;
  copy_str(k->r.consumer, sizeof(k->r.consumer), e->consumer);
  copy_str(k->r.code, sizeof(k->r.code), e->code);
  if (!e->exists)
    return refuse(k, 404, "unknown_authorization", R_AUTHZ, "no authorization %lld", e->id);
  if (strcmp(e->consumer, k->node_unit) != 0)
    return refuse(k, 403, "not_your_authorization", R_AUTHZ,
                  "authorization %lld is not of unit %s", e->id, k->node_unit);
  if (!e->unit_active)
    return refuse(k, 403, "account_disabled", R_UNIT, "the consumer unit is disabled");
  if (!e->active)
    return refuse(k, 403, "authorization_revoked", R_AUTHZ, "the authorization is revoked");
  if (strcmp(e->method, "subscribe") != 0 && strcmp(e->method, "fetch") != 0)
    return refuse(k, 403, "wrong_method", R_AUTHZ,
                  "the authorization is for %s, not for reading a table", e->method);
  if (strcmp(e->method, "fetch") == 0 && !fetch_op(k->op))
    return refuse(k, 403, "wrong_method", R_AUTHZ,
                  "authorization %lld is for fetch: a snapshot of the table or the folder's "
                  "files, not its %s", e->id, k->op);
  if (now < e->valid_from || now >= e->valid_end)
    return refuse(k, 403, "authorization_expired", R_EXPIRED,
                  "the authorization is not valid now");
  if (!e->node_ok)
    return refuse(k, 503, "node_unavailable", R_NODE,
                  "the provider's node %s/%s is not enrolled, revoked or has not reported "
                  "its address", e->provider, e->node_name);
  start_table_read(k, e);
}

/* The read k->op of the authorization's table at the provider's node. The
 * read's own parameters pass through as they came (numbers checked, a long
 * poll kept inside the broker's head timeout); items are the
 * authorization's, whatever was asked. */
static void start_table_read(pcall *k, aentry *e) {
  const char *q = gdx_http_req_query(k->req);
  char num[5][24] = {"", "", "", "", ""};
  static const char *const nums[] = {"limit", "chunk", "position", "wait_ms", "offset"};
  /* text parameters: table keys, a file's path, version and listing point */
  static const char *const texts[] = {"after", "upto", "path", "sha256", "since"};
  char text[5][2048];
  int bad = 0;
  for (int i = 0; i < 5; i++) {
    text[i][0] = '\0';
    bad |= gdx_http_query_param(q, texts[i], text[i], sizeof(text[i])) < 0;
  }
  for (int i = 0; i < 5; i++)
    bad |= gdx_http_query_param(q, nums[i], num[i], sizeof(num[i])) < 0 ||
           strspn(num[i], "0123456789") != strlen(num[i]) || strlen(num[i]) > 18;
  if (bad)
    return refuse(k, 400, "invalid_query", -1,
                  "after=, upto=, path=, sha256=, since=, limit=, chunk=, position=, "
                  "wait_ms= or offset= is malformed");
  long long wait_max = k->p->cfg->proxy_head_timeout_ms - 5000;
  if (num[3][0] && atoll(num[3]) > wait_max)
    snprintf(num[3], sizeof(num[3]), "%lld", wait_max > 0 ? wait_max : 0);
  gdx_buf u;
  gdx_buf_init(&u, 16384);
  int rc = gdx_buf_appendf(&u, "%s/r/%s/%s?items=%s", e->node_addr, e->target, k->op,
                           e->items_query ? e->items_query : "");
  for (int i = 0; i < 5; i++)
    if (!rc && num[i][0])
      rc = gdx_buf_appendf(&u, "&%s=%s", nums[i], num[i]);
  for (int i = 0; i < 5; i++)
    if (!rc && text[i][0]) {
      rc = gdx_buf_appendf(&u, "&%s=", texts[i]);
      if (!rc)
        rc = gdx_url_encode(&u, text[i]);
    }
  if (rc) {
    gdx_buf_free(&u);
    return refuse(k, 400, "invalid_query", -1, "the read is too long");
  }
  rc = relay_to_node(k, e, u.data, 0, NULL);
  gdx_buf_free(&u);
  if (rc != GDX_OK)
    refuse(k, 502, "relay_failed", R_NODE, "the read could not be started");
}

typedef struct {
  pcall *k;
  node_check nc;
} nodecheck_job;

static int nodecheck_work(gdx_db_conn *c, void *arg) {
  nodecheck_job *j = arg;
  return nodes_cert_check(c, j->k->node_unit, j->k->node_name, j->k->serial, &j->nc);
}

static void table_continue(pcall *k) {
  char *end;
  long long auth = strtoll(k->rest, &end, 10);
  k->r.auth_id = auth;
  with_entry(k, auth);
}

static void nodecheck_done(int status, void *arg) {
  nodecheck_job *j = arg;
  pcall *k = j->k;
  k->p->jobs--;
  if (k->req == NULL) { /* the node went away meanwhile */
    free(j);
    free(k);
    return;
  }
  gdx_http_req_on(k->req, NULL, NULL, NULL);
  gdx_http_req_set_data(k->req, NULL);
  if (status != GDX_OK) {
    free(j);
    return refuse(k, 503, "database_unavailable", -1, "the node could not be checked");
  }
  if (j->nc.status) {
    gdx_http_req_set_peer_tag(k->req, -1);
    int st = j->nc.status;
    const char *code = j->nc.code;
    char msg[200];
    snprintf(msg, sizeof(msg), "%s", j->nc.message);
    free(j);
    gdx_log_warn("proxy", "table read refused to node %s/%s: %s", k->node_unit, k->node_name,
                 msg);
    return refuse(k, st, code, -1, "%s", msg);
  }
  free(j);
  gdx_http_req_set_peer_tag(k->req, (int)(now_ms(k->p) / 1000) + 1);
  table_continue(k);
}

static void nodecheck_abort(gdx_http_req *req) {
  pcall *k = gdx_http_req_get_data(req);
  k->req = NULL;
}

static void handle_node_table(gdx_http_req *req, void *data) {
  proxy *p = data;
  pcall *k = pcall_new(p, req);
  if (k == NULL)
    return;
  k->table = 1;
  /* /node/v1/tables/<authorization>/<op> */
  const char *s = gdx_http_req_path(req) + strlen("/node/v1/tables/");
  const char *slash = strchr(s, '/');
  size_t digits = strspn(s, "0123456789");
  if (slash == NULL || digits == 0 || digits > 18 || s + digits != slash ||
      (!fetch_op(slash + 1) && strcmp(slash + 1, "changes") != 0 &&
       strcmp(slash + 1, "checksums") != 0 && strcmp(slash + 1, "rowsums") != 0))
    return refuse(k, 404, "not_found", -1,
                  "read /node/v1/tables/<authorization>/schema, snapshot, changes, checksums "
                  "or rowsums (a table), files, chunks or data (a folder)");
  copy_str(k->op, sizeof(k->op), slash + 1);
  k->rest = s;
  if (strcmp(gdx_http_req_method(req), "GET") != 0)
    return refuse(k, 405, "method_not_allowed", -1, "table reads are GET");
  X509 *peer = gdx_http_req_peer_cert(req);
  if (peer == NULL ||
      gdx_pki_identity(peer, k->node_unit, sizeof(k->node_unit), k->node_name,
                       sizeof(k->node_name)) != GDX_OK ||
      gdx_pki_serial(peer, k->serial) != GDX_OK)
    return refuse(k, 401, "certificate_required", -1,
                  "table reads are for front-end nodes with a platform certificate");
  /* the connection's verdict: -1 refused, else the second (loop clock) it
   * was checked; checked again after two seconds, so a revoked node stops
   * being served on connections it already has */
  int tag = gdx_http_req_peer_tag(req);
  int now_s = (int)(now_ms(p) / 1000) + 1;
  if (tag == -1)
    return refuse(k, 403, "node_refused", -1, "this connection's node was refused");
  if (tag > 0 && now_s - tag < 2) {
    table_continue(k);
    return;
  }
  nodecheck_job *j = calloc(1, sizeof(*j));
  if (j == NULL)
    return refuse(k, 503, "busy", -1, "out of memory");
  j->k = k;
  gdx_http_req_set_data(req, k);
  gdx_http_req_on(req, NULL, NULL, nodecheck_abort);
  if (gdx_db_submit(p->db, nodecheck_work, nodecheck_done, j) != GDX_OK) {
    gdx_http_req_on(req, NULL, NULL, NULL);
    gdx_http_req_set_data(req, NULL);
    free(j);
    return refuse(k, 503, "busy", -1, "the database queue is full");
  }
  p->jobs++;
}

/* ------------------------------------------------------------------ */
/* life cycle and metrics                                              */

int proxy_new(uv_loop_t *loop, const gdx_broker_config *cfg, const broker_pki *pki,
              gdx_db_pool *db, gdx_router *router, proxy **out, char *err, size_t errlen) {
  proxy *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return GDX_ENOMEM;
  p->loop = loop;
  p->cfg = cfg;
  p->pki = pki;
  p->db = db;
  p->last_inval = -1;
  p->node_state = json_object();
  p->tokcache = calloc(TOKCACHE, sizeof(tokslot)); /* without it, every call verifies */
  if (gdx_httpc_new(loop, &p->httpc) != GDX_OK) {
    snprintf(err, errlen, "cannot create the HTTP client");
    free(p->tokcache);
    free(p);
    return GDX_ENOMEM;
  }
  uv_timer_init(loop, &p->flush_timer);
  uv_timer_init(loop, &p->poll_timer);
  uv_timer_init(loop, &p->nodes_timer);
  p->flush_timer.data = p->poll_timer.data = p->nodes_timer.data = p;
  p->handles = 3;
  uv_timer_start(&p->flush_timer, on_flush_timer, (uint64_t)cfg->proxy_records_flush_ms,
                 (uint64_t)cfg->proxy_records_flush_ms);
  uv_timer_start(&p->poll_timer, on_poll_timer, 0, (uint64_t)cfg->proxy_cache_poll_ms);
  uv_timer_start(&p->nodes_timer, on_nodes_timer, 0, 2000);
  gdx_router_add(router, "*", "/svc/*", handle_svc, p);
  gdx_router_add(router, "*", "/node/v1/tables/*", handle_node_table, p);
  *out = p;
  return GDX_OK;
}

static void on_timer_closed(uv_handle_t *h) {
  proxy *p = h->data;
  if (--p->handles > 0)
    return;
  void (*cb)(void *) = p->stop_cb;
  void *data = p->stop_data;
  cache_drop_all(p);
  free(p->recs);
  free(p->nodes_metrics);
  json_decref(p->node_state);
  if (p->tokcache)
    OPENSSL_cleanse(p->tokcache, TOKCACHE * sizeof(tokslot));
  free(p->tokcache);
  free(p);
  if (cb)
    cb(data);
}

static void maybe_stopped(proxy *p) {
  if (p->jobs > 0 || p->handles != 3 || p->nrecs > 0 || p->inflight)
    return;
  gdx_httpc_close(p->httpc);
  p->httpc = NULL;
  uv_close((uv_handle_t *)&p->flush_timer, on_timer_closed);
  uv_close((uv_handle_t *)&p->poll_timer, on_timer_closed);
  uv_close((uv_handle_t *)&p->nodes_timer, on_timer_closed);
}

void proxy_stop(proxy *p, void (*cb)(void *), void *data) {
  p->stopping = 1;
  p->stop_cb = cb;
  p->stop_data = data;
  uv_timer_stop(&p->flush_timer);
  uv_timer_stop(&p->poll_timer);
  uv_timer_stop(&p->nodes_timer);
  if (p->nrecs > 0) {
    gdx_log_info("proxy", "writing %zu queued call records before stopping", p->nrecs);
    flush_now(p);
  }
  if (p->nrecs > 0 && p->inflight == NULL) /* could not even queue: give up on them */
    p->nrecs = 0;
  maybe_stopped(p);
}

void proxy_metrics(proxy *p, gdx_buf *out) {
  gdx_metrics_header(out, "gdx_proxy_calls_total", "counter",
                     "API calls through the broker by status class.");
  for (int i = 1; i < 6; i++)
    gdx_buf_appendf(out, "gdx_proxy_calls_total{class=\"%dxx\"} %llu\n", i,
                    (unsigned long long)p->calls_by_result[i]);
  gdx_metrics_header(out, "gdx_proxy_refused_total", "counter",
                     "Calls the broker refused, by reason.");
  for (int i = 0; i < R_NRSN; i++)
    gdx_buf_appendf(out, "gdx_proxy_refused_total{reason=\"%s\"} %llu\n", reason_names[i],
                    (unsigned long long)p->refused[i]);
  gdx_metrics_header(out, "gdx_proxy_cache_total", "counter",
                     "Authorization cache lookups by result.");
  gdx_buf_appendf(out, "gdx_proxy_cache_total{result=\"hit\"} %llu\n",
                  (unsigned long long)p->cache_hits);
  gdx_buf_appendf(out, "gdx_proxy_cache_total{result=\"miss\"} %llu\n",
                  (unsigned long long)p->cache_misses);
  gdx_metrics_header(out, "gdx_proxy_invalidations_total", "counter",
                     "Invalidation log entries applied to the cache.");
  gdx_buf_appendf(out, "gdx_proxy_invalidations_total %llu\n",
                  (unsigned long long)p->invalidations);
  gdx_metrics_header(out, "gdx_proxy_records_total", "counter",
                     "Call records written to the database, or dropped (queue full).");
  gdx_buf_appendf(out, "gdx_proxy_records_total{result=\"written\"} %llu\n",
                  (unsigned long long)p->records_written);
  gdx_buf_appendf(out, "gdx_proxy_records_total{result=\"dropped\"} %llu\n",
                  (unsigned long long)p->records_dropped);
  gdx_metrics_header(out, "gdx_proxy_node_connections_total", "counter",
                     "Connections opened to nodes (the rest of the calls reused one).");
  gdx_buf_appendf(out, "gdx_proxy_node_connections_total %ld\n",
                  p->httpc ? gdx_httpc_connects(p->httpc) : 0L);
  gdx_metrics_header(out, "gdx_proxy_records_queued", "gauge", "Call records not yet written.");
  gdx_buf_appendf(out, "gdx_proxy_records_queued %zu\n", p->nrecs + p->ninflight);
  if (p->nodes_metrics)
    gdx_buf_appends(out, p->nodes_metrics);
}
