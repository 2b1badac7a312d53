#include "httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "httpc_int.h"
#include "log.h"

typedef struct sock_ctx {
  uv_poll_t poll;
  curl_socket_t fd;
  gdx_httpc *client;
  struct sock_ctx *prev, *next;
} sock_ctx;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

void gdx__httpc_req_free(gdx_httpc_req *r) {
  gdx_httpc *c = r->client;
  if (r->native) {
    free(r->h1.host); /* with port, target, Host header and key */
    free(r->h1.hdrs);
    gdx_buf_free(&r->h1.pending);
  } else if (c->multi && !c->closing &&
             c->nspare < (int)(sizeof(c->spare) / sizeof(c->spare[0]))) {
    /* Reusing an easy handle saves its allocation and set-up on the next
     * request; the connections themselves live in the multi handle. */
    curl_easy_reset(r->easy);
    c->spare[c->nspare++] = r->easy;
  } else {
    curl_easy_cleanup(r->easy);
  }
  curl_slist_free_all(r->headers);
  free((char *)r->opts.method);
  free((char *)r->opts.url);
  free((char *)r->opts.ca_file);
  free((char *)r->opts.cert_file);
  free((char *)r->opts.key_file);
  free((char *)r->opts.pinned_key);
  free(r);
}

static void check_done(gdx_httpc *c) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE)
      continue;
    CURL *e = m->easy_handle;
    CURLcode res = m->data.result;
    gdx_httpc_req *r;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
    long code = 0, nconn = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &nconn);
    c->connects += nconn;
    curl_multi_remove_handle(c->multi, e);
    int status = GDX_OK;
    if (res == CURLE_OPERATION_TIMEDOUT)
      status = GDX_ETIMEDOUT;
    else if (res == CURLE_WRITE_ERROR || res == CURLE_ABORTED_BY_CALLBACK)
      status = GDX_ECLOSED;
    else if (res == CURLE_SSL_CONNECT_ERROR || res == CURLE_PEER_FAILED_VERIFICATION ||
             res == CURLE_SSL_CERTPROBLEM)
      status = GDX_ETLS;
    else if (res != CURLE_OK)
      status = GDX_EIO;
    if (res != CURLE_OK && r->errbuf[0] == '\0')
      snprintf(r->errbuf, sizeof(r->errbuf), "%s", curl_easy_strerror(res));
    if (r->prev)
      r->prev->next = r->next;
    else
      c->reqs = r->next;
    if (r->next)
      r->next->prev = r->prev;
    if (r->opts.on_done)
      r->opts.on_done(r, status, code, r->opts.data);
    gdx__httpc_req_free(r);
  }
}

static void on_poll(uv_poll_t *p, int status, int events) {
  sock_ctx *s = p->data;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  int running;
  gdx_httpc *c = s->client;
  curl_multi_socket_action(c->multi, s->fd, flags, &running);
  check_done(c);
}

static void on_timeout(uv_timer_t *t) {
  gdx_httpc *c = t->data;
  int running;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(c);
}

static int timer_cb(CURLM *multi, long ms, void *userp) {
  gdx_httpc *c = userp;
  if (c->closing)
    return 0;
  if (ms < 0)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
  return 0;
}

static void sock_closed(uv_handle_t *h);

static void sock_forget(gdx_httpc *c, sock_ctx *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    c->socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void sock_closed(uv_handle_t *h) {
  sock_ctx *s = h->data;
  gdx_httpc *c = s->client;
  free(s);
  if (--c->open_handles == 0 && c->closing)
    free(c);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp) {
  gdx_httpc *c = userp;
  sock_ctx *s = sockp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(c->multi, fd, NULL);
      sock_forget(c, s);
    }
    return 0;
  }
  if (s == NULL) {
    s = calloc(1, sizeof(*s));
    if (s == NULL)
      return -1;
    s->fd = fd;
    s->client = c;
    if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    c->open_handles++;
    s->next = c->socks;
    if (c->socks)
      c->socks->prev = s;
    c->socks = s;
    curl_multi_assign(c->multi, fd, s);
  }
  int events = 0;
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

int gdx_httpc_new(uv_loop_t *loop, gdx_httpc **out) {
  pthread_once(&curl_once, curl_init_once);
  gdx_httpc *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return GDX_ENOMEM;
  c->loop = loop;
  c->multi = curl_multi_init();
  if (c->multi == NULL) {
    free(c);
    return GDX_ENOMEM;
  }
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 64L);
  uv_timer_init(loop, &c->timer);
  uv_timer_init(loop, &c->h1_timer);
  c->timer.data = c->h1_timer.data = c;
  c->open_handles = 2;
  *out = c;
  return GDX_OK;
}

static size_t write_cb(char *ptr, size_t size, size_t n, void *ud) {
  gdx_httpc_req *r = ud;
  size_t len = size * n;
  if (r->opts.on_data == NULL)
    return len;
  int rc = r->opts.on_data(r, ptr, len, r->opts.data);
  if (rc == 1) {
    r->paused = 1;
    return CURL_WRITEFUNC_PAUSE;
  }
  return rc == 0 ? len : 0;
}

static size_t header_cb(char *ptr, size_t size, size_t n, void *ud) {
  gdx_httpc_req *r = ud;
  size_t len = size * n;
  size_t l = len;
  while (l > 0 && (ptr[l - 1] == '\n' || ptr[l - 1] == '\r'))
    l--;
  if (r->opts.on_header && l > 0)
    r->opts.on_header(r, ptr, l, r->opts.data);
  return len;
}

static size_t read_cb(char *buf, size_t size, size_t n, void *ud) {
  gdx_httpc_req *r = ud;
  size_t got = r->opts.read_body(buf, size * n, r->opts.data);
  if (got == GDX_HTTPC_READ_PAUSE) {
    r->paused = 1;
    return CURL_READFUNC_PAUSE;
  }
  return got == GDX_HTTPC_READ_ABORT ? CURL_READFUNC_ABORT : got;
}

static char *dup_opt(const char *s) { return s ? strdup(s) : NULL; }

int gdx_httpc_request(gdx_httpc *c, const gdx_httpc_opts *o, gdx_httpc_req **out) {
  if (c->closing)
    return GDX_ECLOSED;
  gdx_httpc_req *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return GDX_ENOMEM;
  r->client = c;
  r->opts = *o;
  r->opts.method = dup_opt(o->method ? o->method : "GET");
  r->opts.url = dup_opt(o->url);
  r->opts.ca_file = dup_opt(o->ca_file);
  r->opts.cert_file = dup_opt(o->cert_file);
  r->opts.key_file = dup_opt(o->key_file);
  r->opts.pinned_key = dup_opt(o->pinned_key);
  if (o->native) {
    r->native = 1;
    if (r->opts.url == NULL || r->opts.method == NULL) {
      gdx__httpc_req_free(r);
      return GDX_ENOMEM;
    }
    int rc = gdx__h1_request(c, r);
    if (rc != GDX_OK) {
      gdx__httpc_req_free(r);
      return rc;
    }
    if (out)
      *out = r;
    return GDX_OK;
  }
  CURL *e = r->easy = c->nspare > 0 ? c->spare[--c->nspare] : curl_easy_init();
  if (e == NULL || r->opts.url == NULL) {
    free(r);
    return GDX_ENOMEM;
  }
  for (const char *const *h = o->headers; h && *h; h++)
    r->headers = curl_slist_append(r->headers, *h);
  /* curl would otherwise wait a second for 100 Continue on larger bodies. */
  r->headers = curl_slist_append(r->headers, "Expect:");
  curl_easy_setopt(e, CURLOPT_URL, r->opts.url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY, ""); /* no proxy from the environment: gdx hops are direct */
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   o->connect_timeout_ms ? o->connect_timeout_ms : 10000L);
  if (o->idle_timeout_s > 0) {
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->idle_timeout_s);
  }
  if (r->opts.ca_file)
    curl_easy_setopt(e, CURLOPT_CAINFO, r->opts.ca_file);
  if (r->opts.cert_file)
    curl_easy_setopt(e, CURLOPT_SSLCERT, r->opts.cert_file);
  if (r->opts.key_file)
    curl_easy_setopt(e, CURLOPT_SSLKEY, r->opts.key_file);
  if (r->opts.pinned_key) {
    curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, r->opts.pinned_key);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  const char *m = r->opts.method;
  int has_body = o->body != NULL || o->read_body != NULL;
  if (strcmp(m, "GET") == 0 && !has_body) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(m, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    if (o->read_body) {
      curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
      curl_easy_setopt(e, CURLOPT_READDATA, r);
      if (o->stream_body_len >= 0)
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)o->stream_body_len);
    } else if (has_body) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body);
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    }
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
  }
  r->next = c->reqs;
  if (c->reqs)
    c->reqs->prev = r;
  c->reqs = r;
  if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
    c->reqs = r->next;
    if (c->reqs)
      c->reqs->prev = NULL;
    gdx__httpc_req_free(r);
    return GDX_EIO;
  }
  if (out)
    *out = r;
  return GDX_OK;
}

void gdx_httpc_resume(gdx_httpc_req *r) {
  if (r->native) {
    gdx__h1_resume(r);
    return;
  }
  if (!r->paused)
    return;
  r->paused = 0;
  curl_easy_pause(r->easy, CURLPAUSE_CONT);
}

void gdx_httpc_cancel(gdx_httpc_req *r) {
  gdx_httpc *c = r->client;
  if (r->native) {
    gdx__h1_cancel(r);
    return;
  }
  curl_multi_remove_handle(c->multi, r->easy);
  if (r->prev)
    r->prev->next = r->next;
  else
    c->reqs = r->next;
  if (r->next)
    r->next->prev = r->prev;
  if (r->opts.on_done)
    r->opts.on_done(r, GDX_ECLOSED, 0, r->opts.data);
  gdx__httpc_req_free(r);
}

long gdx_httpc_connects(gdx_httpc *c) { return c->connects; }

const char *gdx_httpc_error(gdx_httpc_req *r) { return r->errbuf; }

static void timer_closed(uv_handle_t *h) {
  gdx_httpc *c = h->data;
  if (--c->open_handles == 0)
    free(c);
}

void gdx_httpc_close(gdx_httpc *c) {
  c->closing = 1;
  gdx__h1_close_all(c);
  while (c->reqs) {
    gdx_httpc_req *r = c->reqs;
    c->reqs = r->next;
    curl_multi_remove_handle(c->multi, r->easy);
    if (r->opts.on_done)
      r->opts.on_done(r, GDX_ECLOSED, 0, r->opts.data);
    gdx__httpc_req_free(r);
  }
  /* Polls first: libuv wants a poll closed before its fd, and the multi
   * cleanup closes the cached connections' sockets. */
  while (c->socks) {
    curl_multi_assign(c->multi, c->socks->fd, NULL);
    sock_forget(c, c->socks);
  }
  while (c->nspare > 0)
    curl_easy_cleanup(c->spare[--c->nspare]);
  curl_multi_cleanup(c->multi);
  c->multi = NULL;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, timer_closed);
  uv_close((uv_handle_t *)&c->h1_timer, timer_closed);
}
