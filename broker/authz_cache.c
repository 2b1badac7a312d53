#include "authz_cache.h"

#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "error.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

#define BUCKETS 4096
#define ENTRY_TTL_MS 60000

/* Tokens already verified, so that a busy client's calls skip the HMAC:
 * direct-mapped by a hash of the token, compared whole; the expiry is
 * still checked on every call, everything else is decided from the
 * entries. */
#define TOKCACHE 1024
typedef struct {
  char token[ACCESS_TOKEN_MAX];
  access_token tok;
} tokslot;

struct authz_cache {
  authz_cache_opts o;
  authz_entry *buckets[BUCKETS];
  tokslot *tokcache;
  uv_timer_t poll_timer;
  long long last_inval; /* -1: read the log's end first */
  int poll_busy, poll_again;
  int jobs, stopping, timer_closed;
  void (*stop_cb)(void *);
  void *stop_data;
  uint64_t hits, misses, invalidations;
};

int authz_token(authz_cache *c, const char *s, access_token *t) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const char *ch = s; *ch; ch++)
    h = (h ^ (unsigned char)*ch) * 16777619u;
  tokslot *slot = c->tokcache ? &c->tokcache[h % TOKCACHE] : NULL;
  if (slot && strcmp(slot->token, s) == 0) {
    *t = slot->tok;
    return t->expires <= (long long)time(NULL) ? GDX_ETIMEDOUT : GDX_OK;
  }
  int rc = token_verify(c->o.pki, s, t);
  if (rc == GDX_OK && slot && strlen(s) < sizeof(slot->token)) {
    gdx_str_copy(slot->token, sizeof(slot->token), s);
    slot->tok = *t;
  }
  return rc;
}

/* ------------------------------------------------------------------ */
/* entries                                                             */

static authz_entry **bucket_of(authz_cache *c, long long id) {
  return &c->buckets[(unsigned long long)id * 2654435761u % BUCKETS];
}

authz_entry *authz_find(authz_cache *c, long long id) {
  for (authz_entry *e = *bucket_of(c, id); e; e = e->next)
    if (e->id == id)
      return e;
  return NULL;
}

static void entry_clear(authz_entry *e) {
  for (int i = 0; i < e->ndeny; i++)
    free(e->deny[i]);
  free(e->deny);
  gdx_openapi_free(e->ops);
  free(e->items_query);
  e->items_query = NULL;
  e->deny = NULL;
  e->ops = NULL;
  e->ndeny = 0;
  e->fwd[0][0] = '\0';
}

static void entry_unlink(authz_cache *c, authz_entry *e) {
  for (authz_entry **pp = bucket_of(c, e->id); *pp; pp = &(*pp)->next)
    if (*pp == e) {
      *pp = e->next;
      break;
    }
}

/* Drops an entry, or marks it to be reloaded when a load is running. */
static void entry_drop(authz_cache *c, authz_entry *e) {
  if (e->loading) {
    e->stale = 1;
    return;
  }
  entry_unlink(c, e);
  entry_clear(e);
  free(e);
}

static void drop_all(authz_cache *c) {
  for (int b = 0; b < BUCKETS; b++) {
    authz_entry *e = c->buckets[b];
    while (e) {
      authz_entry *next = e->next;
      entry_drop(c, e);
      e = next;
    }
  }
}

/* The operations of a published API entry: stored parsed at publishing
 * (catalog_entries.openapi_ops); an entry published before that column
 * existed has its text parsed here. Not readable: ops stays NULL and calls
 * are refused with the reason - never every path allowed. */
static void load_ops(authz_entry *t, const char *stored, const char *text) {
  int rc = stored
               ? gdx_openapi_load(stored, strlen(stored), &t->ops, t->ops_err, sizeof(t->ops_err))
               : gdx_openapi_parse(text ? text : "", text ? strlen(text) : 0, &t->ops, t->ops_err,
                                   sizeof(t->ops_err));
  if (rc)
    t->ops = NULL;
}

/* ------------------------------------------------------------------ */
/* loads                                                               */

typedef struct {
  authz_cache *c;
  authz_entry *e;
  authz_entry tmp; /* filled on the worker */
} load_job;

static const char *str_or(const json_t *j) {
  const char *s = json_string_value(j);
  return s ? s : "";
}

/* The entry's data items the authorization leaves out, and the granted
 * ones URL-encoded for a provider read's items=. */
static void load_items(authz_entry *t, const json_t *allowed, const json_t *body) {
  json_t *items = json_object_get(body, "data_items");
  size_t i;
  json_t *it;
  t->deny = calloc(json_array_size(items) + 1, sizeof(char *));
  json_array_foreach(items, i, it) {
    const char *name = json_string_value(json_object_get(it, "name"));
    int ok = 0;
    size_t k;
    json_t *a;
    json_array_foreach(allowed, k, a) ok |=
        name && json_is_string(a) && strcmp(json_string_value(a), name) == 0;
    if (name && !ok && t->deny)
      t->deny[t->ndeny++] = strdup(name);
  }
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
}

static int load_node(gdx_db_conn *c, authz_entry *t, long long provider_id) {
  gdx_db_param pn[] = {GDX_DB_P_INT(provider_id), GDX_DB_P_STR(t->node_name)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT status, address, IFNULL(pubkey_pin, '') FROM nodes "
                        "WHERE unit_id = ? AND node_id = ?",
                        pn, 2, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 1) {
    t->node_ok = strcmp(gdx_db_get(&r, 0, 0), "active") == 0 && gdx_db_get(&r, 0, 1)[0] &&
                 gdx_db_get(&r, 0, 2)[0];
    gdx_str_copy(t->node_addr, sizeof(t->node_addr), gdx_db_get(&r, 0, 1));
    gdx_str_copy(t->node_pin, sizeof(t->node_pin), gdx_db_get(&r, 0, 2));
  }
  gdx_db_result_free(&r);
  return GDX_OK;
}

/* The newest AUTHZ_MAX_CREDS credentials of the authorization. */
static int load_creds(gdx_db_conn *c, authz_entry *t) {
  gdx_db_param p[] = {GDX_DB_P_INT(t->id), GDX_DB_P_INT(AUTHZ_MAX_CREDS)};
  gdx_db_result r;
  int rc = gdx_db_query(c,
                        "SELECT c.id, c.generation, c.status = 'active' AND o.status = 'active' "
                        "FROM credentials c JOIN accounts o ON o.id = c.owner_account_id "
                        "WHERE c.authorization_id = ? ORDER BY c.id DESC LIMIT ?",
                        p, 2, AUTHZ_MAX_CREDS, &r);
  if (rc)
    return rc;
  for (size_t k = 0; k < r.nrows && rc == GDX_OK; k++) {
    gdx_db_row w = gdx_db_row_at(&r, k);
    t->creds[t->ncreds].id = gdx_db_i64(&w, 0, 1, GDX_DB_ID_MAX);
    t->creds[t->ncreds].generation = gdx_db_i64(&w, 1, 0, LLONG_MAX);
    t->creds[t->ncreds].ok = gdx_db_flag(&w, 2);
    if (w.rc)
      rc = gdx_db_row_fail(&w, "credentials");
    else
      t->ncreds++;
  }
  gdx_db_result_free(&r);
  return rc;
}

static int load_work(gdx_db_conn *c, void *arg) {
  load_job *j = arg;
  authz_entry *t = &j->tmp;
  t->id = j->e->id;
  gdx_db_param p[] = {GDX_DB_P_INT(t->id)};
  gdx_db_result r;
  int rc = gdx_db_query(
      c,
      "SELECT a.status, a.method, TIMESTAMPDIFF(SECOND, '1970-01-01', a.valid_from), "
      "TIMESTAMPDIFF(SECOND, '1970-01-01', a.valid_until + INTERVAL 1 DAY), a.call_quota, "
      "a.data_items, cu.code, cu.status, e.resource_code, e.published_body, pu.code, "
      "IFNULL(ua.calls, 0), e.provider_unit_id, e.openapi_ops "
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
  gdx_db_row w = gdx_db_row_at(&r, 0);
  t->valid_from = gdx_db_i64(&w, 2, LLONG_MIN, LLONG_MAX);
  t->valid_end = gdx_db_i64(&w, 3, LLONG_MIN, LLONG_MAX);
  t->quota = gdx_db_i64_or(&w, 4, 0, LLONG_MAX, -1);
  t->used = gdx_db_i64(&w, 11, 0, LLONG_MAX);
  long long provider_id = gdx_db_i64(&w, 12, 1, GDX_DB_ID_MAX);
  if (w.rc) {
    gdx_db_result_free(&r);
    return gdx_db_row_fail(&w, "authorizations");
  }
  t->exists = 1;
  t->active = strcmp(gdx_db_get(&r, 0, 0), "active") == 0;
  t->is_call = strcmp(gdx_db_get(&r, 0, 1), "call") == 0;
  gdx_str_copy(t->method, sizeof(t->method), gdx_db_get(&r, 0, 1));
  gdx_str_copy(t->consumer, sizeof(t->consumer), gdx_db_get(&r, 0, 6));
  t->unit_active = strcmp(gdx_db_get(&r, 0, 7), "active") == 0;
  gdx_str_copy(t->code, sizeof(t->code), gdx_db_get(&r, 0, 8));
  gdx_str_copy(t->provider, sizeof(t->provider), gdx_db_get(&r, 0, 10));
  json_t *allowed = json_loads(gdx_db_get(&r, 0, 5), 0, NULL);
  json_t *body = gdx_db_get(&r, 0, 9) ? json_loads(gdx_db_get(&r, 0, 9), 0, NULL) : NULL;
  json_t *att = json_object_get(body, "attachment");
  if (t->is_call)
    load_ops(t, gdx_db_get(&r, 0, 13), json_string_value(json_object_get(att, "openapi")));
  gdx_db_result_free(&r);
  gdx_str_copy(t->node_name, sizeof(t->node_name), str_or(json_object_get(att, "node")));
  gdx_str_copy(t->target, sizeof(t->target), str_or(json_object_get(att, "target")));
  load_items(t, allowed, body);
  json_decref(allowed);
  json_decref(body);
  rc = load_node(c, t, provider_id);
  return rc ? rc : load_creds(c, t);
}

static void submit_load(authz_cache *c, authz_entry *e);
static void maybe_stopped(authz_cache *c);

/* Answers every waiter of e: with it (status GDX_OK) or without. */
static void answer_waiters(authz_entry *e, int status) {
  authz_waiter *w = e->waiters;
  e->waiters = NULL;
  while (w) {
    authz_waiter *next = w->next;
    w->ready(w, status == GDX_OK ? e : NULL, status);
    w = next;
  }
}

static void load_done(int status, void *arg) {
  load_job *j = arg;
  authz_cache *c = j->c;
  authz_entry *e = j->e;
  c->jobs--;
  e->loading = 0;
  if (status == GDX_OK && e->stale && !c->stopping) {
    e->stale = 0; /* invalidated while loading: the result may be old already */
    entry_clear(&j->tmp);
    free(j);
    submit_load(c, e);
    return;
  }
  if (status == GDX_OK) {
    entry_clear(e);
    authz_entry saved = *e;
    *e = j->tmp;
    e->next = saved.next;
    e->waiters = saved.waiters;
    e->loaded_ms = uv_now(c->o.loop);
    if (c->o.pending_units)
      e->used += c->o.pending_units(c->o.pending_data, e->id);
    e->tokens = c->o.cfg->proxy_rate_burst > 0 ? (double)c->o.cfg->proxy_rate_burst
                                               : (double)c->o.cfg->proxy_rate_limit_rps;
    e->tokens_ms = uv_now(c->o.loop);
  } else {
    entry_clear(&j->tmp);
  }
  free(j);
  answer_waiters(e, status);
  if (status != GDX_OK) /* not cached: the next call tries again */
    entry_drop(c, e);
  maybe_stopped(c);
}

static void submit_load(authz_cache *c, authz_entry *e) {
  load_job *j = calloc(1, sizeof(*j));
  if (j != NULL) {
    j->c = c;
    j->e = e;
    e->loading = 1;
    if (gdx_db_submit(c->o.db, load_work, load_done, j) == GDX_OK) {
      c->jobs++;
      return;
    }
    free(j);
  }
  e->loading = 0;
  answer_waiters(e, GDX_EBUSY);
  entry_drop(c, e);
}

authz_entry *authz_fresh(authz_cache *c, long long id) {
  authz_entry *e = authz_find(c, id);
  if (e && !e->loading && uv_now(c->o.loop) - e->loaded_ms > ENTRY_TTL_MS) {
    entry_drop(c, e);
    e = NULL;
  }
  if (e == NULL || e->loading)
    return NULL;
  c->hits++;
  return e;
}

void authz_wait(authz_cache *c, long long id, authz_waiter *w) {
  c->misses++;
  authz_entry *e = authz_find(c, id);
  if (e) { /* a load is on its way */
    w->next = e->waiters;
    e->waiters = w;
    return;
  }
  e = calloc(1, sizeof(*e));
  if (e == NULL) {
    w->ready(w, NULL, GDX_ENOMEM);
    return;
  }
  e->id = id;
  authz_entry **b = bucket_of(c, id);
  e->next = *b;
  *b = e;
  w->next = NULL;
  e->waiters = w;
  submit_load(c, e);
}

/* ------------------------------------------------------------------ */
/* the invalidation log                                                */

typedef struct {
  authz_cache *c;
  long long after;
  gdx_db_result r;
  int init;
} poll_job;

static int poll_work(gdx_db_conn *conn, void *arg) {
  poll_job *j = arg;
  if (j->init)
    return gdx_db_query(conn, "SELECT IFNULL(MAX(id), 0) FROM cache_invalidations", NULL, 0, 1,
                        &j->r);
  gdx_db_param p[] = {GDX_DB_P_INT(j->after)};
  return gdx_db_query(conn,
                      "SELECT id, kind, ref_id FROM cache_invalidations WHERE id > ? "
                      "ORDER BY id LIMIT 1000",
                      p, 1, 1000, &j->r);
}

static void poll_start(authz_cache *c);

static void apply_invalidation(authz_cache *c, const char *kind, long long ref) {
  if (strcmp(kind, "authorization") == 0) {
    authz_entry *e = authz_find(c, ref);
    if (e)
      entry_drop(c, e);
  } else if (strcmp(kind, "credential") == 0) {
    for (int b = 0; b < BUCKETS; b++)
      for (authz_entry *e = c->buckets[b], *next; e; e = next) {
        next = e->next;
        for (int k = 0; k < e->ncreds; k++)
          if (e->creds[k].id == ref) {
            entry_drop(c, e);
            break;
          }
      }
  } else {
    drop_all(c); /* node, unit, account: rare; reload everything */
  }
}

static void poll_done(int status, void *arg) {
  poll_job *j = arg;
  authz_cache *c = j->c;
  c->jobs--;
  c->poll_busy = 0;
  for (size_t i = 0; status == GDX_OK && i < j->r.nrows; i++) {
    gdx_db_row w = gdx_db_row_at(&j->r, i);
    long long id = gdx_db_i64(&w, 0, 0, GDX_DB_ID_MAX);
    if (j->init) {
      c->last_inval = w.rc ? -1 : id;
      break;
    }
    long long ref = gdx_db_i64(&w, 2, LLONG_MIN, LLONG_MAX);
    if (w.rc) { /* a damaged row: nothing cached can be trusted */
      gdx_db_row_fail(&w, "cache_invalidations");
      drop_all(c);
    } else {
      apply_invalidation(c, gdx_db_get(&j->r, i, 1), ref);
    }
    c->last_inval = id;
    c->invalidations++;
  }
  if (status != GDX_OK && j->init)
    c->last_inval = -1; /* try the start-up read again */
  if (status == GDX_OK)
    gdx_db_result_free(&j->r);
  free(j);
  if (c->stopping) {
    maybe_stopped(c);
    return;
  }
  if (c->poll_again) {
    c->poll_again = 0;
    poll_start(c);
  }
}

static void poll_start(authz_cache *c) {
  if (c->stopping)
    return;
  if (c->poll_busy) {
    c->poll_again = 1;
    return;
  }
  poll_job *j = calloc(1, sizeof(*j));
  if (j == NULL)
    return;
  j->c = c;
  j->init = c->last_inval < 0;
  j->after = c->last_inval;
  if (gdx_db_submit(c->o.db, poll_work, poll_done, j) != GDX_OK) {
    free(j);
    return;
  }
  c->jobs++;
  c->poll_busy = 1;
}

static void on_poll_timer(uv_timer_t *t) { poll_start(t->data); }

void authz_invalidate(authz_cache *c, const char *kind, long long ref) {
  if (kind && *kind)
    apply_invalidation(c, kind, ref);
  poll_start(c);
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

int authz_cache_new(const authz_cache_opts *o, authz_cache **out) {
  authz_cache *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return GDX_ENOMEM;
  c->o = *o;
  c->last_inval = -1;
  c->tokcache = calloc(TOKCACHE, sizeof(tokslot)); /* without it, every call verifies */
  uv_timer_init(o->loop, &c->poll_timer);
  c->poll_timer.data = c;
  uv_timer_start(&c->poll_timer, on_poll_timer, 0, (uint64_t)o->cfg->proxy_cache_poll_ms);
  *out = c;
  return GDX_OK;
}

static void on_timer_closed(uv_handle_t *h) {
  authz_cache *c = h->data;
  c->timer_closed = 1;
  maybe_stopped(c);
}

static void maybe_stopped(authz_cache *c) {
  if (!c->stopping || c->jobs > 0 || !c->timer_closed)
    return;
  void (*cb)(void *) = c->stop_cb;
  void *data = c->stop_data;
  drop_all(c);
  if (c->tokcache)
    OPENSSL_cleanse(c->tokcache, TOKCACHE * sizeof(tokslot));
  free(c->tokcache);
  free(c);
  if (cb)
    cb(data);
}

void authz_cache_stop(authz_cache *c, void (*cb)(void *), void *data) {
  c->stopping = 1;
  c->stop_cb = cb;
  c->stop_data = data;
  uv_timer_stop(&c->poll_timer);
  uv_close((uv_handle_t *)&c->poll_timer, on_timer_closed);
}

void authz_cache_metrics(authz_cache *c, gdx_buf *out) {
  gdx_metrics_header(out, "gdx_proxy_cache_total", "counter",
                     "Authorization cache lookups by result.");
  gdx_buf_appendf(out, "gdx_proxy_cache_total{result=\"hit\"} %llu\n", (unsigned long long)c->hits);
  gdx_buf_appendf(out, "gdx_proxy_cache_total{result=\"miss\"} %llu\n",
                  (unsigned long long)c->misses);
  gdx_metrics_header(out, "gdx_proxy_invalidations_total", "counter",
                     "Invalidation log entries applied to the cache.");
  gdx_buf_appendf(out, "gdx_proxy_invalidations_total %llu\n",
                  (unsigned long long)c->invalidations);
}
