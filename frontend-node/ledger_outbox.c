#include "ledger_outbox.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

#define ANSWER_MAX (64 * 1024) /* the broker's answer: a count, a flag or an error */
#define POST_TIMEOUT_MS 30000
#define RETRY_MS 5000
#define RETRY_BUSY_MS 1000 /* the database queue was full */

typedef enum { O_IDLE, O_READING, O_POSTING, O_FORGETTING } ostate;

struct gdx_ledger_outbox {
  uv_loop_t *loop;
  uv_timer_t retry;
  gdx_broker_client *broker;
  char *path;
  size_t batch;
  const gdx_ledger_source *src;
  void *data;
  ostate state;
  int more; /* another round after this one */
  int stopping, timer_closed;
  long long mark; /* of the entries posted */
  gdx_buf answer;
  gdx_httpc_req *post;
  void (*stop_cb)(void *);
  void *stop_data;
};

static void maybe_stopped(gdx_ledger_outbox *o) {
  if (!o->stopping || !o->timer_closed || o->state != O_IDLE)
    return;
  void (*cb)(void *) = o->stop_cb;
  void *data = o->stop_data;
  gdx_buf_free(&o->answer);
  free(o->path);
  free(o);
  if (cb)
    cb(data);
}

static void round_start(gdx_ledger_outbox *o) {
  o->state = O_READING;
  o->src->read(o, o->batch, o->data); /* may answer before it returns */
}

static void on_retry(uv_timer_t *t) { gdx_ledger_outbox_kick(t->data); }

/* The round failed: the next one a little later. */
static void retry_later(gdx_ledger_outbox *o, int status) {
  o->state = O_IDLE;
  if (!o->stopping)
    uv_timer_start(&o->retry, on_retry, status == GDX_EBUSY ? RETRY_BUSY_MS : RETRY_MS, 0);
  maybe_stopped(o);
}

/* The round is over: another one when more is known to wait. */
static void round_end(gdx_ledger_outbox *o) {
  o->state = O_IDLE;
  if (o->stopping) {
    maybe_stopped(o);
  } else if (o->more) {
    o->more = 0;
    round_start(o);
  }
}

int gdx_ledger_outbox_start(uv_loop_t *loop, const gdx_ledger_outbox_opts *opts,
                            gdx_ledger_outbox **out) {
  gdx_ledger_outbox *o = calloc(1, sizeof(*o));
  if (o == NULL || (o->path = strdup(opts->path)) == NULL) {
    free(o);
    return GDX_ENOMEM;
  }
  o->loop = loop;
  o->broker = opts->broker;
  o->batch = opts->batch;
  o->src = opts->source;
  o->data = opts->data;
  gdx_buf_init(&o->answer, ANSWER_MAX);
  uv_timer_init(loop, &o->retry);
  o->retry.data = o;
  *out = o;
  return GDX_OK;
}

void gdx_ledger_outbox_kick(gdx_ledger_outbox *o) {
  if (o->stopping)
    return;
  if (o->state != O_IDLE) {
    o->more = 1;
    return;
  }
  uv_timer_stop(&o->retry);
  o->more = 0;
  round_start(o);
}

static void posted(int status, long http, const char *why, void *data) {
  gdx_ledger_outbox *o = data;
  o->post = NULL;
  if (o->stopping) {
    o->state = O_IDLE;
    maybe_stopped(o);
    return;
  }
  if (status != GDX_OK || http != 200) {
    if (o->src->failed)
      o->src->failed(status, http, o->answer.data ? o->answer.data : "", o->answer.len, why,
                     o->data);
    retry_later(o, status);
    return;
  }
  if (o->src->accepted) {
    json_t *j = json_loadb(o->answer.data ? o->answer.data : "", o->answer.len, 0, NULL);
    o->src->accepted(j, o->data);
    json_decref(j);
  }
  o->state = O_FORGETTING;
  o->src->forget(o, o->mark, o->data);
}

void gdx_ledger_outbox_read_done(gdx_ledger_outbox *o, int status, json_t *entries, size_t count,
                                 long long mark) {
  if (status != GDX_OK || o->stopping || count == 0) {
    json_decref(entries);
    if (status != GDX_OK)
      retry_later(o, status);
    else
      round_end(o);
    return;
  }
  o->more |= count >= o->batch;
  o->mark = mark;
  json_t *body = o->src->body(entries ? entries : json_array(), o->data);
  gdx_broker_req r = {
      .method = "POST", .path = o->path, .json = body, .timeout_ms = POST_TIMEOUT_MS};
  o->state = O_POSTING;
  int rc = body ? gdx_broker_call(o->broker, &r, &o->answer, 0, posted, o, &o->post) : GDX_ENOMEM;
  json_decref(body);
  if (rc != GDX_OK)
    retry_later(o, rc);
}

void gdx_ledger_outbox_forget_done(gdx_ledger_outbox *o, int status) {
  if (status != GDX_OK)
    retry_later(o, status);
  else
    round_end(o);
}

static void on_timer_closed(uv_handle_t *h) {
  gdx_ledger_outbox *o = h->data;
  o->timer_closed = 1;
  maybe_stopped(o);
}

void gdx_ledger_outbox_stop(gdx_ledger_outbox *o, void (*cb)(void *), void *data) {
  o->stopping = 1;
  o->stop_cb = cb;
  o->stop_data = data;
  if (o->post)
    gdx_httpc_cancel(o->post); /* its entries are posted again at the next start */
  uv_timer_stop(&o->retry);
  uv_close((uv_handle_t *)&o->retry, on_timer_closed);
}
