/* The file adapter: a folder (recursive) is a file resource (R-EX-2).
 *
 *   { name = "reports"; kind = "file"; folder = "/srv/share/reports";
 *     formats = ["docx", "xls", "csv"];  # of the allowed ten (default: all)
 *     stable_ms = 2000;     # a file is taken once unchanged this long
 *     rescan_s = 30;        # full rescan, the safety net under inotify
 *     chunk_mib = 8;        # the unit of verification and resumption
 *     max_mibps = 0;        # each read's rate limit (0: none)
 *     max_file_mib = 2047; } # libclamav scans files up to 2 GiB
 *
 * Finding files. inotify watches every folder of the tree (close-after-
 * write, rename into place, create, delete, attribute changes); an event
 * schedules a scan 200 ms later, and a full scan runs every rescan_s
 * anyway. A scan (in the thread pool) lists regular files - not symbolic
 * links, not names starting with "." or "~$" and not ending in ".tmp",
 * ".part" or ".swp", so a writer may write under such a name and rename
 * into place - with size, mtime, ctime and inode.
 *
 * When a file counts. A new or changed file is pending until it has been
 * seen unchanged for stable_ms and its mtime is that old; then it is
 * hashed (one file at a time, in the thread pool): its first 64 KiB must
 * be an allowed format by extension and content (fileguard.h) - a
 * disguised file is refused, logged, kept out of the listing and reported
 * to the broker with the next heartbeat (audit record and alarm there) -
 * and the whole file gives a SHA-256 per chunk, its SHA-256 and its SM3
 * (for the record). A file that changed while hashed is pending again.
 * The results are kept in <state_dir>/file-<name>.index (written at most
 * once a second, and at the end), so a restart does not hash unchanged
 * files again.
 *
 * Reads from the broker (/r/<name>/...):
 *   files?since=<epoch>.<gen>&limit=&wait_ms=  ready files in the order
 *       they became ready; since= from the last answer gives only newer
 *       ones (a new epoch - the node restarted - starts over); a caught-up
 *       read with wait_ms waits for the next file (long poll)
 *   chunks?path=[&sha256=] the chunk hashes of that version (or the current)
 *   data?path=&sha256=&offset=  its bytes from offset to the end
 * A version that is no longer the file on disk is 409 file_changed: the
 * file is stat'ed when a read opens it (and the read rescans when it
 * differs); a change during the read is caught by the consumer's chunk
 * hashes, so nothing half old, half new is ever delivered.
 *
 * This file is the adapter and its reads; finding, gating and hashing the
 * files is file_index.c (file_int.h).
 */
#include <fcntl.h>
#include <limits.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter.h"
#include "error.h"
#include "file_int.h"
#include "log.h"
#include "num.h"

#define MAX_WAITERS 1000
#define LIST_MAX 1000

typedef struct waiter {
  struct waiter *next;
  gdx_http_req *req;
  fres *r;
  long long since;
  long limit;
  uint64_t deadline;
} waiter;

typedef struct stream {
  fres *r;
  gdx_http_req *req;
  uv_fs_t fs;
  int fd, reading, waiting_drain, gone, paced;
  size_t held;               /* bytes read ahead, waiting for the drain */
  int64_t pos, end, start;
  uint64_t t0;               /* loop ms the read began (pacing) */
  struct stream *next_paced; /* waiting for its time under max_mibps */
  char *buf;
  char path[1100];
  fent snap; /* the stat the read began with */
} stream;

static int pace(struct stream *s);
static void stream_read(struct stream *s);

/* The resource's 100 ms timer: the index's work, then the reads whose
 * time has come under max_mibps. */
static void on_timer(uv_timer_t *t) {
  fres *r = t->data;
  gdx__file_index_tick(r);
  stream *paced = r->paced; /* reads whose time has come */
  r->paced = NULL;
  while (paced) {
    stream *s = paced;
    paced = s->next_paced;
    s->paced = 0;
    if (!pace(s))
      stream_read(s);
  }
}

/* ------------------------------------------------------------------ */
/* reads from the broker                                               */

static int gen_cmp(const void *a, const void *b) {
  long long x = (*(fent *const *)a)->gen, y = (*(fent *const *)b)->gen;
  return x < y ? -1 : x > y;
}

static void reply_json(gdx_http_req *req, int status, json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  gdx_http_respond(req, status, "application/json", s, s ? strlen(s) : 0);
  free(s);
}

static json_t *file_json(const fres *r, const fent *e) {
  return json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:I, s:I}", "path", e->path, "size",
                   (json_int_t)e->size, "mtime", (json_int_t)(e->mtime_ns / 1000000), "sha256",
                   e->sha256, "sm3", e->sm3, "format", e->format, "chunk", (json_int_t)r->chunk,
                   "gen", (json_int_t)e->gen);
}

/* The ready files newer than since (all of them for since = -1); NULL
 * when there are none. */
static json_t *listing(fres *r, long long since, long limit) {
  if (r->by_gen_stale) { /* once per change, not once per read or waiter */
    free(r->by_gen);
    r->by_gen = malloc((r->n + 1) * sizeof(*r->by_gen));
    r->nby = 0;
    for (size_t i = 0; i < r->n; i++)
      if (r->ents[i]->state == F_READY)
        r->by_gen[r->nby++] = r->ents[i];
    qsort(r->by_gen, r->nby, sizeof(*r->by_gen), gen_cmp);
    r->by_gen_stale = 0;
  }
  size_t lo = 0, hi = r->nby; /* the first newer than since */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->by_gen[mid]->gen > since)
      hi = mid;
    else
      lo = mid + 1;
  }
  fent **sel = r->by_gen + lo;
  size_t k = r->nby - lo;
  if (k == 0)
    return NULL;
  json_t *files = json_array();
  size_t m = k < (size_t)limit ? k : (size_t)limit;
  for (size_t i = 0; i < m; i++)
    json_array_append_new(files, file_json(r, sel[i]));
  long long upto = m < k ? sel[m - 1]->gen : r->gen;
  return json_pack("{s:s, s:I, s:b, s:o}", "epoch", r->epoch, "gen", (json_int_t)upto, "more",
                   m < k, "files", files);
}

static void waiter_unlink(fres *r, waiter *w) {
  for (waiter **pp = &r->waiters; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      r->nwaiters--;
      break;
    }
}

static void waiter_abort(gdx_http_req *req) {
  waiter *w = gdx_http_req_get_data(req);
  waiter_unlink(w->r, w);
  free(w);
}

static void waiter_answer(fres *r, waiter *w, json_t *j) {
  waiter_unlink(r, w);
  gdx_http_req_on(w->req, NULL, NULL, NULL);
  gdx_http_req_set_data(w->req, NULL);
  if (j == NULL)
    j = json_pack("{s:s, s:I, s:b, s:[]}", "epoch", r->epoch, "gen", (json_int_t)r->gen,
                  "more", 0, "files");
  reply_json(w->req, 200, j);
  free(w);
}

void gdx__file_notify_waiters(fres *r) {
  waiter *w = r->waiters;
  while (w) {
    waiter *next = w->next;
    json_t *j = listing(r, w->since, w->limit);
    if (j)
      waiter_answer(r, w, j);
    w = next;
  }
}

static void on_wtimer(uv_timer_t *t) {
  fres *r = t->data;
  uint64_t now = uv_now(r->a->env->loop);
  waiter *w = r->waiters;
  while (w) {
    waiter *next = w->next;
    if (now >= w->deadline)
      waiter_answer(r, w, NULL);
    w = next;
  }
}

static void serve_files(fres *r, gdx_http_req *req, const char *q) {
  char since[64] = "", lim[16] = "", wait[16] = "";
  long long limit = LIST_MAX, wait_ms = 0;
  if (gdx_http_query_param(q, "since", since, sizeof(since)) < 0 ||
      gdx_http_query_param(q, "limit", lim, sizeof(lim)) < 0 ||
      gdx_http_query_param(q, "wait_ms", wait, sizeof(wait)) < 0 ||
      (lim[0] && gdx_num_parse(lim, 0, LLONG_MAX, &limit) != GDX_OK) ||
      (wait[0] && gdx_num_parse(wait, 0, LLONG_MAX, &wait_ms) != GDX_OK))
    return (void)gdx_http_respond_error(req, 400, "invalid_query",
                                        "files?since=<epoch>.<gen>&limit=1..1000&wait_ms=N");
  if (limit < 1 || limit > LIST_MAX)
    limit = LIST_MAX;
  long long from = -1; /* another epoch, or none: every file */
  char *dot = strchr(since, '.');
  if (dot && (size_t)(dot - since) == strlen(r->epoch) &&
      strncmp(since, r->epoch, strlen(r->epoch)) == 0 &&
      gdx_num_parse(dot + 1, 0, LLONG_MAX, &from) != GDX_OK)
    from = -1;
  json_t *j = listing(r, from, (long)limit);
  if (j || wait_ms <= 0 || r->nwaiters >= MAX_WAITERS) {
    if (j == NULL)
      j = json_pack("{s:s, s:I, s:b, s:[]}", "epoch", r->epoch, "gen", (json_int_t)r->gen,
                    "more", 0, "files");
    return reply_json(req, 200, j);
  }
  waiter *w = calloc(1, sizeof(*w));
  w->req = req;
  w->r = r;
  w->since = from;
  w->limit = (long)limit;
  w->deadline = uv_now(r->a->env->loop) + (uint64_t)(wait_ms > 60000 ? 60000 : wait_ms);
  w->next = r->waiters;
  r->waiters = w;
  r->nwaiters++;
  gdx_http_req_set_data(req, w);
  gdx_http_req_on(req, NULL, NULL, waiter_abort);
}

/* The version named by path= and sha256= (without sha256, when any_version
 * is set: the current one), or NULL with an answer already sent. */
static fent *version(fres *r, gdx_http_req *req, const char *q, int any_version) {
  char path[1100], sha[80] = "";
  char why[200];
  int has_sha = gdx_http_query_param(q, "sha256", sha, sizeof(sha));
  if (gdx_http_query_param(q, "path", path, sizeof(path)) != 1 || has_sha < 0 ||
      (has_sha == 0 && !any_version)) {
    gdx_http_respond_error(req, 400, "invalid_query",
                           any_version ? "path= is required (sha256= optional)"
                                       : "path= and sha256= are required");
    return NULL;
  }
  if (gdx_file_name_check(path, why, sizeof(why)) != GDX_OK) {
    gdx_http_respond_error(req, 400, "invalid_path", why);
    return NULL;
  }
  fent *e = gdx__file_find(r, path);
  if (e == NULL || e->state == F_REFUSED) {
    gdx_http_respond_error(req, 404, "file_not_found", "no such file in this resource");
    return NULL;
  }
  if (e->state != F_READY || (has_sha && strcmp(e->sha256, sha) != 0)) {
    gdx_http_respond_error(req, 409, "file_changed",
                           "the file has changed since it was listed: list it again");
    return NULL;
  }
  return e;
}

static void serve_chunks(fres *r, gdx_http_req *req, const char *q) {
  fent *e = version(r, req, q, 1);
  if (e == NULL)
    return;
  json_t *j = file_json(r, e);
  json_t *list = json_array();
  for (long long i = 0; i < gdx__file_nchunks(r, e->size); i++)
    json_array_append_new(list, json_stringn(e->chunks + i * HASH_HEX, HASH_HEX));
  json_object_set_new(j, "chunks", list);
  reply_json(req, 200, j);
}

static void stream_free(stream *s) {
  fres *r = s->r;
  for (stream **pp = &r->paced; *pp; pp = &(*pp)->next_paced)
    if (*pp == s) {
      *pp = s->next_paced;
      break;
    }
  if (s->fd >= 0)
    close(s->fd);
  r->streams--;
  free(s->buf);
  free(s);
  if (r->closing)
    gdx__file_maybe_free(r);
}

static void stream_abort(gdx_http_req *req) {
  stream *s = gdx_http_req_get_data(req);
  s->gone = 1;
  s->req = NULL;
  if (!s->reading)
    stream_free(s);
}

/* max_mibps: a read ahead of its rate waits for the resource's timer
 * (every 100 ms), so the rate holds on average. 1 when it waits. */
static int pace(stream *s) {
  fres *r = s->r;
  if (r->max_mibps <= 0)
    return 0;
  uint64_t due = s->t0 + (uint64_t)((s->pos - s->start) * 1000 / (r->max_mibps << 20));
  if (uv_now(r->a->env->loop) >= due)
    return 0;
  s->paced = 1;
  s->next_paced = r->paced;
  r->paced = s;
  return 1;
}

static void send_block(stream *s, size_t got);

static void stream_drain(gdx_http_req *req) {
  stream *s = gdx_http_req_get_data(req);
  s->waiting_drain = 0;
  if (s->held) { /* the block read meanwhile */
    size_t got = s->held;
    s->held = 0;
    send_block(s, got);
  }
}

static void stream_finish(stream *s, int ok) {
  gdx_http_req *req = s->req;
  gdx_http_req_on(req, NULL, NULL, NULL);
  gdx_http_req_on_drain(req, NULL);
  gdx_http_req_set_data(req, NULL);
  if (ok) {
    gdx_http_end(req);
  } else {
    gdx_http_abort(req);
  }
  /* a change during the read: the consumer's hashes catch it; look again */
  struct stat st;
  fent now = {0};
  if (s->fd >= 0 && fstat(s->fd, &st) == 0)
    gdx__file_stat_into(&now, &st);
  if (!gdx__file_same_stat(&now, &s->snap)) {
    s->r->changed_during_read++;
    gdx__file_schedule(s->r, 0);
  }
  stream_free(s);
}

/* Sends the block in s->buf and reads the next one at once - ahead of the
 * drain when the connection is above its high-water mark, so a block is
 * ready the moment it drains (the buffer is free again: gdx_http_write
 * copies). */
static void send_block(stream *s, size_t got) {
  s->pos += (int64_t)got;
  s->r->bytes_sent += (unsigned long long)got;
  int w = gdx_http_write(s->req, s->buf, got);
  if (w < 0)
    return stream_finish(s, 0);
  if (s->pos >= s->end)
    return stream_finish(s, 1);
  if (w == 1)
    s->waiting_drain = 1;
  else if (pace(s))
    return;
  stream_read(s);
}

static void on_read(uv_fs_t *fs) {
  stream *s = fs->data;
  ssize_t got = fs->result;
  uv_fs_req_cleanup(fs);
  s->reading = 0;
  if (s->gone)
    return stream_free(s);
  if (got <= 0) {
    gdx_log_warn("file", "%s: %s became shorter while read", s->r->a->name, s->snap.path);
    return stream_finish(s, 0);
  }
  if (s->waiting_drain) { /* sent when it drains */
    s->held = (size_t)got;
    return;
  }
  send_block(s, (size_t)got);
}

static void stream_read(stream *s) {
  size_t want = READ_BLOCK;
  if ((int64_t)want > s->end - s->pos)
    want = (size_t)(s->end - s->pos);
  uv_buf_t b = uv_buf_init(s->buf, (unsigned)want);
  s->fs.data = s;
  s->reading = 1;
  if (uv_fs_read(s->r->a->env->loop, &s->fs, s->fd, &b, 1, s->pos, on_read) != 0) {
    s->reading = 0;
    stream_finish(s, 0);
  }
}

static void serve_data(fres *r, gdx_http_req *req, const char *q) {
  fent *e = version(r, req, q, 0);
  if (e == NULL)
    return;
  char off[24] = "";
  long long offset = 0;
  if (gdx_http_query_param(q, "offset", off, sizeof(off)) < 0 ||
      (off[0] && gdx_num_parse(off, 0, e->size, &offset) != GDX_OK))
    return (void)gdx_http_respond_error(req, 400, "invalid_query",
                                        "offset= is a byte offset within the file");
  char abs[2200];
  snprintf(abs, sizeof(abs), "%s/%s", r->folder, e->path);
  int fd = open(abs, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  fent now = {0};
  if (fd >= 0 && fstat(fd, &st) == 0)
    gdx__file_stat_into(&now, &st);
  if (fd < 0 || !gdx__file_same_stat(&now, e)) {
    if (fd >= 0)
      close(fd);
    e->state = F_PENDING;
    r->by_gen_stale = 1;
    e->changed_at = uv_now(r->a->env->loop);
    gdx__file_schedule(r, 0);
    return (void)gdx_http_respond_error(req, 409, "file_changed",
                                        "the file has changed since it was listed: list it "
                                        "again");
  }
  stream *s = calloc(1, sizeof(*s));
  s->r = r;
  s->req = req;
  s->fd = fd;
  s->pos = s->start = offset;
  s->t0 = uv_now(r->a->env->loop);
  s->end = e->size;
  s->snap = *e;
  snprintf(s->path, sizeof(s->path), "%s", e->path);
  s->snap.path = s->path;
  s->snap.chunks = NULL;
  s->buf = malloc(READ_BLOCK);
  r->streams++;
  r->reads++;
  char h[32];
  snprintf(h, sizeof(h), "%lld", (long long)s->pos);
  gdx_http_add_header(req, "X-Gdx-Offset", h);
  gdx_http_add_header(req, "X-Gdx-Sha256", e->sha256);
  gdx_http_start(req, 200, "application/octet-stream", s->end - s->pos);
  if (s->pos == s->end) {
    s->req = req;
    return stream_finish(s, 1);
  }
  gdx_http_req_set_data(req, s);
  gdx_http_req_on(req, NULL, NULL, stream_abort);
  gdx_http_req_on_drain(req, stream_drain);
  stream_read(s);
}

static void file_serve(gdx_adapter *a, gdx_http_req *req, const char *rest) {
  fres *r = a->impl;
  const char *q = gdx_http_req_query(req);
  if (strcmp(gdx_http_req_method(req), "GET") != 0)
    return (void)gdx_http_respond_error(req, 405, "method_not_allowed", "file reads are GET");
  if (strcmp(rest, "files") == 0)
    return serve_files(r, req, q);
  if (strcmp(rest, "chunks") == 0)
    return serve_chunks(r, req, q);
  if (strcmp(rest, "data") == 0)
    return serve_data(r, req, q);
  gdx_http_respond_error(req, 404, "not_found",
                         "a file resource answers files?since=, chunks?path=[&sha256=] and "
                         "data?path=&sha256=&offset=");
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

static int file_open(gdx_adapter *a, const config_setting_t *s, char *err, size_t errlen) {
  fres *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return GDX_ENOMEM;
  a->impl = r;
  r->a = a;
  r->ifd = -1;
  r->events = json_array();
  const char *n = a->name;
  int bad = 0;
  int rc = gdx_adapter_str(s, "folder", r->folder, sizeof(r->folder), NULL, n, err, errlen);
  if (rc)
    return rc;
  size_t fl = strlen(r->folder);
  while (fl > 1 && r->folder[fl - 1] == '/')
    r->folder[--fl] = '\0';
  struct stat st;
  if (r->folder[0] != '/' || stat(r->folder, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "resource %s: folder: \"%s\" is not an absolute path to a folder", n,
             r->folder);
    return GDX_ECONFIG;
  }
  r->stable_ms = gdx_adapter_int(s, "stable_ms", 2000, 0, 3600000, &bad, err, errlen, n);
  if (!bad)
    r->rescan_s = gdx_adapter_int(s, "rescan_s", 30, 1, 86400, &bad, err, errlen, n);
  if (!bad)
    r->chunk = gdx_adapter_int(s, "chunk_mib", 8, 1, 64, &bad, err, errlen, n) << 20;
  if (!bad)
    r->max_mibps = gdx_adapter_int(s, "max_mibps", 0, 0, 100000, &bad, err, errlen, n);
  if (!bad)
    r->max_bytes = (long long)gdx_adapter_int(s, "max_file_mib", 2047, 1, 1 << 20, &bad, err,
                                              errlen, n)
                   << 20;
  if (bad)
    return GDX_ECONFIG;
  config_setting_t *f = config_setting_get_member(s, "formats");
  static const char *const known[] = {"wps", "doc", "xml", "txt", "docx",
                                      "html", "ppt", "et", "xls", "csv"};
  for (int i = 0; f && i < config_setting_length(f); i++) {
    const char *v = config_setting_get_string_elem(f, (unsigned)i);
    int ok = 0;
    for (size_t k = 0; v && k < sizeof(known) / sizeof(known[0]); k++)
      ok |= strcmp(v, known[k]) == 0;
    if (!ok || r->nformats >= 10) {
      snprintf(err, errlen, "resource %s: formats[%d]: one of wps doc xml txt docx html ppt et "
                            "xls csv", n, i);
      return GDX_ECONFIG;
    }
    snprintf(r->formats[r->nformats++], 8, "%s", v);
  }
  if (gdx_fileguard_new(&r->guard, err, errlen) != GDX_OK)
    return GDX_ECONFIG;
  if (a->env == NULL || a->env->loop == NULL) /* --check-config: nothing runs */
    return GDX_OK;
  snprintf(r->index_file, sizeof(r->index_file), "%s/file-%s.index",
           a->env->state_dir ? a->env->state_dir : ".", n);
  gdx__file_index_load(r);
  r->by_gen_stale = 1;
  unsigned char rnd[8];
  RAND_bytes(rnd, sizeof(rnd));
  for (int i = 0; i < 8; i++)
    snprintf(r->epoch + i * 2, 3, "%02x", rnd[i]);
  uv_loop_t *loop = a->env->loop;
  uv_timer_init(loop, &r->timer);
  uv_timer_init(loop, &r->wtimer);
  r->timer.data = r->wtimer.data = r;
  r->handles = 2;
  r->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (r->ifd >= 0 && uv_poll_init(loop, &r->ipoll, r->ifd) == 0) {
    r->ipoll.data = r;
    uv_poll_start(&r->ipoll, UV_READABLE, gdx__file_on_inotify);
    r->handles++;
  } else if (r->ifd >= 0) {
    close(r->ifd);
    r->ifd = -1;
  }
  uv_timer_start(&r->timer, on_timer, 0, 100);
  uv_timer_start(&r->wtimer, on_wtimer, 200, 200);
  snprintf(a->detail, sizeof(a->detail), "folder %s", r->folder);
  return GDX_OK;
}

static void count_states(const fres *r, size_t count[3]) {
  count[F_PENDING] = count[F_READY] = count[F_REFUSED] = 0;
  for (size_t i = 0; i < r->n; i++)
    count[r->ents[i]->state]++;
}

static void file_health(gdx_adapter *a, void (*done)(gdx_adapter *a)) {
  fres *r = a->impl;
  size_t count[3];
  count_states(r, count);
  size_t ready = count[F_READY], pending = count[F_PENDING], refused = count[F_REFUSED];
  if (r->last_error[0] && strncmp(r->last_error, "cannot open", 11) == 0) {
    snprintf(a->health, sizeof(a->health), "down");
    snprintf(a->detail, sizeof(a->detail), "%s", r->last_error);
  } else {
    snprintf(a->health, sizeof(a->health), "up");
    snprintf(a->detail, sizeof(a->detail), "%zu files ready, %zu pending, %zu refused%s%s",
             ready, pending, refused, r->last_error[0] ? "; " : "", r->last_error);
  }
  done(a);
}

static void file_events(gdx_adapter *a, json_t *out) {
  fres *r = a->impl;
  json_array_extend(out, r->events);
  json_array_clear(r->events);
}

static void file_metrics(gdx_adapter *a, gdx_buf *out) {
  fres *r = a->impl;
  size_t count[3];
  count_states(r, count);
  size_t ready = count[F_READY], pending = count[F_PENDING], refused = count[F_REFUSED];
  gdx_buf_appendf(out, "gdx_node_files{resource=\"%s\",state=\"ready\"} %zu\n", a->name, ready);
  gdx_buf_appendf(out, "gdx_node_files{resource=\"%s\",state=\"pending\"} %zu\n", a->name,
                  pending);
  gdx_buf_appendf(out, "gdx_node_files{resource=\"%s\",state=\"refused\"} %zu\n", a->name,
                  refused);
  gdx_buf_appendf(out, "gdx_node_file_bytes_sent_total{resource=\"%s\"} %llu\n", a->name,
                  r->bytes_sent);
  gdx_buf_appendf(out, "gdx_node_file_reads_total{resource=\"%s\"} %llu\n", a->name, r->reads);
  gdx_buf_appendf(out, "gdx_node_file_changed_during_read_total{resource=\"%s\"} %llu\n",
                  a->name, r->changed_during_read);
}

/* Freed when its handles are closed and no scan, hash or read is left. */
void gdx__file_maybe_free(fres *r) {
  if (r->handles > 0 || r->scanning || r->hashing || r->streams > 0)
    return;
  if (r->ifd >= 0)
    close(r->ifd);
  for (size_t i = 0; i < r->n; i++)
    gdx__file_ent_free(r->ents[i]);
  free(r->ents);
  free(r->by_gen);
  json_decref(r->events);
  gdx_fileguard_free(r->guard);
  free(r);
}

static void on_closed(uv_handle_t *h) {
  fres *r = h->data;
  r->handles--;
  gdx__file_maybe_free(r);
}

static void file_close(gdx_adapter *a) {
  fres *r = a->impl;
  if (r == NULL)
    return;
  if (r->index_dirty)
    gdx__file_index_save(r);
  r->closing = 1;
  while (r->waiters) {
    waiter *w = r->waiters;
    r->waiters = w->next;
    free(w);
  }
  if (r->handles == 0) /* never started: --check-config */
    return gdx__file_maybe_free(r);
  uv_close((uv_handle_t *)&r->timer, on_closed);
  uv_close((uv_handle_t *)&r->wtimer, on_closed);
  if (r->ifd >= 0)
    uv_close((uv_handle_t *)&r->ipoll, on_closed);
}

const gdx_adapter_ops gdx_adapter_file = {.kind = "file",
                                          .open = file_open,
                                          .serve = file_serve,
                                          .health = file_health,
                                          .events = file_events,
                                          .metrics = file_metrics,
                                          .close = file_close};

