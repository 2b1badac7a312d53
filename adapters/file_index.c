/* A file resource's index (file_int.h): the sorted list of the folder's
 * files with their state - pending until stable, then hashed in the thread
 * pool one at a time (the format gate on the first 64 KiB, a SHA-256 per
 * chunk, the whole file's SHA-256 and SM3) into ready or refused. A scan
 * walks the tree (inotify watches every folder and asks for one 200 ms
 * later; a full scan runs every rescan_s) and is merged into the index; the
 * index is saved in the state folder so a restart does not hash unchanged
 * files again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "file_int.h"
#include "log.h"

#define HEAD_BYTES 65536
#define MAX_FILES 200000
#define MAX_DEPTH 32

/* ------------------------------------------------------------------ */
/* names and the index                                                 */

static int skip_name(const char *name) {
  size_t n = strlen(name);
  if (name[0] == '.' || strncmp(name, "~$", 2) == 0)
    return 1;
  static const char *const tails[] = {".tmp", ".part", ".swp", ".crdownload"};
  for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
    size_t t = strlen(tails[i]);
    if (n >= t && strcasecmp(name + n - t, tails[i]) == 0)
      return 1;
  }
  return 0;
}

static int ent_cmp(const void *a, const void *b) {
  return strcmp((*(fent *const *)a)->path, (*(fent *const *)b)->path);
}

fent *gdx__file_find(fres *r, const char *path) {
  fent key = {.path = (char *)path}, *kp = &key;
  fent **hit = r->n ? bsearch(&kp, r->ents, r->n, sizeof(*r->ents), ent_cmp) : NULL;
  return hit ? *hit : NULL;
}

void gdx__file_ent_free(fent *e) {
  if (e) {
    free(e->path);
    free(e->chunks);
    free(e);
  }
}

long long gdx__file_nchunks(const fres *r, int64_t size) {
  return size == 0 ? 0 : (size + r->chunk - 1) / r->chunk;
}

void gdx__file_index_save(fres *r) {
  json_t *files = json_array();
  for (size_t i = 0; i < r->n; i++) {
    fent *e = r->ents[i];
    if (e->state == F_PENDING)
      continue;
    json_array_append_new(
        files, json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "path",
                         e->path, "size", (json_int_t)e->size, "mtime_ns",
                         (json_int_t)e->mtime_ns, "ctime_ns", (json_int_t)e->ctime_ns, "ino",
                         (json_int_t)e->ino, "state",
                         e->state == F_READY ? "ready" : "refused", "sha256", e->sha256, "sm3",
                         e->sm3, "format", e->format, "chunks", e->chunks ? e->chunks : "",
                         "why", e->why));
  }
  json_t *j = json_pack("{s:I, s:o}", "chunk", (json_int_t)r->chunk, "files", files);
  char tmp[1200];
  snprintf(tmp, sizeof(tmp), "%s.tmp", r->index_file);
  if (json_dump_file(j, tmp, JSON_COMPACT) != 0 || rename(tmp, r->index_file) != 0)
    gdx_log_warn("file", "%s: cannot write the index %s: %s", r->a->name, r->index_file,
                 strerror(errno));
  json_decref(j);
}

void gdx__file_index_load(fres *r) {
  json_t *j = json_load_file(r->index_file, 0, NULL);
  if (j == NULL)
    return;
  if (json_integer_value(json_object_get(j, "chunk")) != r->chunk) { /* chunk size changed */
    json_decref(j);
    return;
  }
  size_t i;
  json_t *f;
  json_array_foreach(json_object_get(j, "files"), i, f) {
    const char *path = json_string_value(json_object_get(f, "path"));
    const char *st = json_string_value(json_object_get(f, "state"));
    const char *sha = json_string_value(json_object_get(f, "sha256"));
    const char *sm3 = json_string_value(json_object_get(f, "sm3"));
    const char *fmt = json_string_value(json_object_get(f, "format"));
    const char *ch = json_string_value(json_object_get(f, "chunks"));
    const char *why = json_string_value(json_object_get(f, "why"));
    char w[200];
    if (!path || !st || !sha || !sm3 || !fmt || !ch || !why || r->n >= MAX_FILES ||
        gdx_file_name_check(path, w, sizeof(w)) != GDX_OK)
      continue;
    fent *e = calloc(1, sizeof(*e));
    e->path = strdup(path);
    e->size = json_integer_value(json_object_get(f, "size"));
    e->mtime_ns = json_integer_value(json_object_get(f, "mtime_ns"));
    e->ctime_ns = json_integer_value(json_object_get(f, "ctime_ns"));
    e->ino = (uint64_t)json_integer_value(json_object_get(f, "ino"));
    e->state = strcmp(st, "ready") == 0 ? F_READY : F_REFUSED;
    snprintf(e->sha256, sizeof(e->sha256), "%s", sha);
    snprintf(e->sm3, sizeof(e->sm3), "%s", sm3);
    snprintf(e->format, sizeof(e->format), "%s", fmt);
    snprintf(e->why, sizeof(e->why), "%s", why);
    e->chunks = strdup(ch);
    if (e->state == F_READY && (long long)strlen(ch) != HASH_HEX * gdx__file_nchunks(r, e->size)) {
      gdx__file_ent_free(e);
      continue;
    }
    e->gen = ++r->gen;
    if (r->n == r->cap) {
      r->cap = r->cap ? r->cap * 2 : 64;
      r->ents = realloc(r->ents, r->cap * sizeof(*r->ents));
    }
    r->ents[r->n++] = e;
  }
  json_decref(j);
  qsort(r->ents, r->n, sizeof(*r->ents), ent_cmp);
}

/* ------------------------------------------------------------------ */
/* scanning (thread pool)                                              */

typedef struct {
  uv_work_t w;
  fres *r;
  fent **items;
  size_t n, cap;
  int ifd, truncated;
  char err[200];
} scan_job;

static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

/* What tells one version of a file from another. */
void gdx__file_stat_into(fent *e, const struct stat *st) {
  e->size = st->st_size;
  e->mtime_ns = ns_of(st->st_mtim);
  e->ctime_ns = ns_of(st->st_ctim);
  e->ino = st->st_ino;
}

static void walk(scan_job *j, int dfd, const char *rel, int depth) {
  if (j->ifd >= 0) {
    char abs[2100];
    snprintf(abs, sizeof(abs), "%s%s%s", j->r->folder, *rel ? "/" : "", rel);
    inotify_add_watch(j->ifd, abs,
                      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                          IN_ATTRIB | IN_DELETE_SELF | IN_ONLYDIR);
  }
  DIR *d = fdopendir(dfd);
  if (d == NULL) {
    close(dfd);
    return;
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (skip_name(de->d_name))
      continue;
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    char sub[1100];
    int len = snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
    if (len <= 0 || (size_t)len >= sizeof(sub))
      continue;
    if (S_ISDIR(st.st_mode)) {
      if (depth >= MAX_DEPTH)
        continue;
      int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0)
        walk(j, fd, sub, depth + 1);
    } else if (S_ISREG(st.st_mode)) {
      if (j->n >= MAX_FILES) {
        j->truncated = 1;
        continue;
      }
      if (j->n == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 256;
        j->items = realloc(j->items, j->cap * sizeof(*j->items));
      }
      fent *e = calloc(1, sizeof(*e));
      e->path = strdup(sub);
      gdx__file_stat_into(e, &st);
      j->items[j->n++] = e;
    }
  }
  closedir(d);
}

static void scan_work(uv_work_t *w) {
  scan_job *j = w->data;
  int fd = open(j->r->folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(j->err, sizeof(j->err), "cannot open the folder %s: %s", j->r->folder,
             strerror(errno));
    return;
  }
  walk(j, fd, "", 0);
  if (j->n)
    qsort(j->items, j->n, sizeof(*j->items), ent_cmp);
}

static void start_scan(fres *r);
static void start_hash(fres *r);

int gdx__file_same_stat(const fent *a, const fent *b) {
  return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
         a->ino == b->ino;
}

/* A scan in ms (the 100 ms timer starts it). */
void gdx__file_schedule(fres *r, uint64_t ms) {
  uint64_t now = uv_now(r->a->env->loop);
  if (!r->closing && (r->scan_at == 0 || now + ms < r->scan_at))
    r->scan_at = now + ms;
}

static void scan_done(uv_work_t *w, int status) {
  scan_job *j = w->data;
  fres *r = j->r;
  r->scanning = 0;
  uint64_t now = uv_now(r->a->env->loop);
  if (status != 0 || j->err[0] || r->closing) {
    if (j->err[0] && !r->closing) {
      if (strcmp(r->last_error, j->err) != 0)
        gdx_log_error("file", "%s: %s", r->a->name, j->err);
      snprintf(r->last_error, sizeof(r->last_error), "%s", j->err);
    }
    for (size_t i = 0; i < j->n; i++)
      gdx__file_ent_free(j->items[i]);
  } else {
    r->last_error[0] = '\0';
    if (j->truncated)
      snprintf(r->last_error, sizeof(r->last_error), "more than %d files: the rest are ignored",
               MAX_FILES);
    /* merge the sorted scan into the sorted index */
    fent **out = malloc((j->n + 1) * sizeof(*out));
    size_t a = 0, b = 0, k = 0;
    int removed = 0;
    while (a < r->n || b < j->n) {
      int c = a == r->n ? 1 : b == j->n ? -1 : strcmp(r->ents[a]->path, j->items[b]->path);
      if (c < 0) { /* gone from the folder */
        gdx__file_ent_free(r->ents[a++]);
        removed = 1;
      } else if (c > 0) { /* new */
        fent *e = j->items[b++];
        e->state = F_PENDING;
        e->changed_at = now;
        out[k++] = e;
      } else {
        fent *e = r->ents[a++], *s = j->items[b++];
        if (!gdx__file_same_stat(e, s)) {
          e->size = s->size;
          e->mtime_ns = s->mtime_ns;
          e->ctime_ns = s->ctime_ns;
          e->ino = s->ino;
          e->state = F_PENDING;
          e->changed_at = now;
          free(e->chunks);
          e->chunks = NULL;
        }
        gdx__file_ent_free(s);
        out[k++] = e;
      }
    }
    free(r->ents);
    r->ents = out;
    r->by_gen_stale = 1;
    r->n = k;
    r->cap = j->n + 1;
    if (removed)
      r->index_dirty = 1;
  }
  free(j->items);
  free(j);
  if (r->closing)
    return gdx__file_maybe_free(r);
  start_hash(r);
  if (r->scan_again) {
    r->scan_again = 0;
    gdx__file_schedule(r, 200);
  }
  /* a pending file is looked at again when it may have become stable */
  for (size_t i = 0; i < r->n; i++)
    if (r->ents[i]->state == F_PENDING) {
      gdx__file_schedule(r, (uint64_t)r->stable_ms + 50);
      break;
    }
}

static void start_scan(fres *r) {
  if (r->closing)
    return;
  if (r->scanning) {
    r->scan_again = 1;
    return;
  }
  scan_job *j = calloc(1, sizeof(*j));
  j->r = r;
  j->ifd = r->ifd;
  j->w.data = j;
  r->scanning = 1;
  if (uv_queue_work(r->a->env->loop, &j->w, scan_work, scan_done) != 0) {
    r->scanning = 0;
    free(j);
  }
}

/* ------------------------------------------------------------------ */
/* hashing (thread pool, one file at a time)                           */

typedef struct {
  uv_work_t w;
  fres *r;
  char *path;
  fent want;        /* the stat it was taken with */
  int result;       /* F_READY, F_REFUSED or F_PENDING (changed meanwhile) */
  char sha256[GDX_SHA256_HEX_SIZE], sm3[GDX_SHA256_HEX_SIZE], format[8], why[200];
  char *chunks;
} hash_job;

static int format_allowed(const fres *r, const char *fmt) {
  if (r->nformats == 0)
    return 1;
  for (int i = 0; i < r->nformats; i++)
    if (strcmp(r->formats[i], fmt) == 0)
      return 1;
  return 0;
}

static void hash_work(uv_work_t *w) {
  hash_job *j = w->data;
  fres *r = j->r;
  char abs[2200];
  snprintf(abs, sizeof(abs), "%s/%s", r->folder, j->path);
  j->result = F_PENDING;
  int fd = open(abs, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return;
  struct stat st;
  fent now = {0};
  if (fstat(fd, &st) != 0)
    goto out;
  gdx__file_stat_into(&now, &st);
  if (!gdx__file_same_stat(&now, &j->want))
    goto out;
  const char *fmt = NULL;
  char why[200];
  if (j->want.size > r->max_bytes) {
    j->result = F_REFUSED;
    snprintf(j->why, sizeof(j->why), "larger than max_file_mib (%lld MiB)",
             r->max_bytes >> 20);
    goto out;
  }
  char *buf = malloc(READ_BLOCK);
  ssize_t got = pread(fd, buf, HEAD_BYTES, 0);
  if (got < 0) {
    free(buf);
    goto out;
  }
  if (gdx_fileguard_check(r->guard, j->path, buf, (size_t)got, &fmt, why, sizeof(why)) !=
      GDX_OK) {
    j->result = F_REFUSED;
    snprintf(j->why, sizeof(j->why), "%s", why);
    free(buf);
    goto out;
  }
  snprintf(j->format, sizeof(j->format), "%s", fmt);
  if (!format_allowed(r, fmt)) {
    j->result = F_REFUSED;
    snprintf(j->why, sizeof(j->why), "%s files are not among this resource's formats", fmt);
    free(buf);
    goto out;
  }
  long long nc = gdx__file_nchunks(r, j->want.size);
  j->chunks = calloc((size_t)nc * HASH_HEX + 1, 1);
  gdx_digest *whole = NULL;
  EVP_MD_CTX *cx = EVP_MD_CTX_new();
  gdx_digest_new(GDX_DIGEST_SHA256 | GDX_DIGEST_SM3, &whole);
  int64_t off = 0, in_chunk = 0;
  long long ci = 0;
  int ok = whole && cx && EVP_DigestInit_ex(cx, EVP_sha256(), NULL);
  while (ok && off < j->want.size) {
    size_t want = READ_BLOCK;
    if ((int64_t)want > r->chunk - in_chunk)
      want = (size_t)(r->chunk - in_chunk);
    ssize_t k = pread(fd, buf, want, off);
    if (k <= 0) {
      ok = 0;
      break;
    }
    gdx_digest_update(whole, buf, (size_t)k);
    EVP_DigestUpdate(cx, buf, (size_t)k);
    off += k;
    in_chunk += k;
    if (in_chunk == r->chunk || off == j->want.size) {
      unsigned char md[32];
      unsigned mdlen = 0;
      EVP_DigestFinal_ex(cx, md, &mdlen);
      char h[GDX_SHA256_HEX_SIZE];
      gdx_hex(md, 32, h);
      memcpy(j->chunks + ci * HASH_HEX, h, HASH_HEX);
      ci++;
      in_chunk = 0;
      EVP_DigestInit_ex(cx, EVP_sha256(), NULL);
    }
  }
  free(buf);
  EVP_MD_CTX_free(cx);
  if (ok)
    ok = gdx_digest_final(whole, j->sha256, j->sm3) == GDX_OK;
  gdx_digest_free(whole);
  if (ok && fstat(fd, &st) == 0) {
    gdx__file_stat_into(&now, &st);
    if (gdx__file_same_stat(&now, &j->want) && ci == nc)
      j->result = F_READY;
  }
out:
  close(fd);
}

static void hash_done(uv_work_t *w, int status) {
  hash_job *j = w->data;
  fres *r = j->r;
  r->hashing = 0;
  fent *e = r->closing ? NULL : gdx__file_find(r, j->path);
  uint64_t now = uv_now(r->a->env->loop);
  if (e && status == 0 && gdx__file_same_stat(e, &j->want) && e->state == F_PENDING) {
    if (j->result == F_PENDING) { /* changed while hashed: wait again */
      e->changed_at = now;
      gdx__file_schedule(r, (uint64_t)r->stable_ms + 50);
    } else {
      e->state = j->result;
      r->by_gen_stale = 1;
      e->gen = ++r->gen;
      snprintf(e->sha256, sizeof(e->sha256), "%s", j->sha256);
      snprintf(e->sm3, sizeof(e->sm3), "%s", j->sm3);
      snprintf(e->format, sizeof(e->format), "%s", j->format);
      snprintf(e->why, sizeof(e->why), "%s", j->why);
      free(e->chunks);
      e->chunks = j->chunks;
      j->chunks = NULL;
      if (e->state == F_READY) {
        r->hashed_total++;
        gdx_log_info("file", "%s: %s ready (%lld bytes, %s, sha256 %.16s…)", r->a->name,
                     e->path, (long long)e->size, e->format, e->sha256);
        gdx__file_notify_waiters(r);
      } else {
        r->refused_total++;
        gdx_log_warn("file", "%s: %s refused: %s", r->a->name, e->path, e->why);
        if (json_array_size(r->events) < 1000)
          json_array_append_new(r->events,
                                json_pack("{s:s, s:s, s:s, s:s, s:I}", "kind", "file_refused",
                                          "resource", r->a->name, "path", e->path, "detail",
                                          e->why, "size", (json_int_t)e->size));
      }
      r->index_dirty = 1;
    }
  }
  free(j->path);
  free(j->chunks);
  free(j);
  if (r->closing)
    return gdx__file_maybe_free(r);
  start_hash(r);
}

static void start_hash(fres *r) {
  if (r->hashing || r->closing)
    return;
  uint64_t now = uv_now(r->a->env->loop);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t wall = ns_of(ts);
  for (size_t i = 0; i < r->n; i++) {
    fent *e = r->ents[i];
    if (e->state != F_PENDING || now - e->changed_at < (uint64_t)r->stable_ms ||
        wall - e->mtime_ns < r->stable_ms * 1000000LL)
      continue;
    hash_job *j = calloc(1, sizeof(*j));
    j->r = r;
    j->path = strdup(e->path);
    j->want = *e;
    j->want.path = NULL;
    j->want.chunks = NULL;
    j->w.data = j;
    r->hashing = 1;
    if (uv_queue_work(r->a->env->loop, &j->w, hash_work, hash_done) != 0) {
      r->hashing = 0;
      free(j->path);
      free(j);
    }
    return;
  }
}

/* ------------------------------------------------------------------ */
/* timers and inotify                                                  */

void gdx__file_index_tick(fres *r) {
  uint64_t now = uv_now(r->a->env->loop);
  if (r->index_dirty && now - r->index_saved >= 1000) { /* not once per file */
    r->index_dirty = 0;
    r->index_saved = now;
    gdx__file_index_save(r);
  }
  if (r->scan_at && now >= r->scan_at) {
    r->scan_at = 0;
    start_scan(r);
  }
  if (now >= r->next_full) {
    r->next_full = now + (uint64_t)r->rescan_s * 1000;
    start_scan(r);
  }
  start_hash(r);
}

void gdx__file_on_inotify(uv_poll_t *p, int status, int events) {
  fres *r = p->data;
  (void)events;
  if (status < 0)
    return;
  char buf[8192];
  while (read(r->ifd, buf, sizeof(buf)) > 0) {
  }
  if (r->scan_at == 0 || r->scan_at > uv_now(r->a->env->loop) + 200)
    r->scan_at = uv_now(r->a->env->loop) + 200;
}
