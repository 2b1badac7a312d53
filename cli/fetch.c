/* gdx fetch (获取): a table resource's snapshot as CSV or JSON Lines, page
 * by page, and a folder resource's files, listed or downloaded with every
 * chunk checked against the provider's SHA-256 and resumed after the
 * chunks that still match. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "digest.h"
#include "error.h"
#include "output.h"

#define PAGE_MAX 10000   /* rows a snapshot page may ask for (the adapter's READ_MAX_ROWS) */
#define PAGE_DEFAULT 5000
/* The chunk sizes a provider may announce, as a consumer node accepts them;
 * one chunk is read into memory when a download resumes. */
#define CHUNK_MIN 4096
#define CHUNK_MAX (64 << 20)

static const char help_fetch[] =
    "Usage: gdx fetch (--client-id ID [--password-stdin] | --token TOKEN) RESOURCE\n"
    "                 [--format csv|jsonl] [-o FILE] [--page ROWS]\n"
    "       gdx fetch (--client-id ID | --token TOKEN) RESOURCE --list\n"
    "       gdx fetch (--client-id ID | --token TOKEN) RESOURCE --file PATH [-o FILE]\n"
    "A file resource (a folder): --list shows its files (path, size, format, SHA-256);\n"
    "--file downloads one into FILE (default: its name) with a progress bar, checking\n"
    "every chunk against the provider's SHA-256; an interrupted download run again\n"
    "resumes after the chunks of FILE.part that still match.\n"
    "\n"
    "Fetches (获取) a snapshot of a table resource under a fetch authorization: the\n"
    "authorized columns only, in key order, page by page through the broker. CSV (the\n"
    "default; a header line, RFC 4180 quoting, NULL as an empty field) or JSON Lines (one\n"
    "object per row). Output to FILE (written as FILE.part, renamed when complete) or\n"
    "standard output; progress on standard error. The credential is one made for the\n"
    "fetch authorization (gdx credentials create --authorization ID).\n";

static void csv_field(FILE *f, json_t *v) {
  if (json_is_null(v))
    return;
  char num[64];
  const char *t = num;
  if (json_is_string(v))
    t = json_string_value(v);
  else if (json_is_integer(v))
    snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else if (json_is_real(v))
    snprintf(num, sizeof(num), "%.17g", json_real_value(v));
  else
    snprintf(num, sizeof(num), "%d", json_is_true(v));
  if (t[0] != '\0' && strpbrk(t, ",\"\r\n") == NULL) {
    fputs(t, f);
    return;
  }
  fputc('"', f); /* also "" for an empty string, unlike NULL */
  for (; *t; t++) {
    if (*t == '"')
      fputc('"', f);
    fputc(*t, f);
  }
  fputc('"', f);
}

/* ---- files of a folder resource ---- */

static const char *const file_cols[] = {"path:PATH", "size:BYTES", "format:FORMAT",
                                        "sha256:SHA-256"};

/* Every ready file of the folder, {"items": [...]}, or NULL after printing
 * why. */
static json_t *list_files(const char *base, const char *token, int *ex) {
  json_t *all = json_array();
  if (all == NULL) {
    *ex = cli_out_of_memory();
    return NULL;
  }
  char since[128] = "";
  for (;;) {
    char url[4096];
    snprintf(url, sizeof(url), "%s/files?limit=1000%s%s", base, since[0] ? "&since=" : "",
             since);
    json_t *j = cli_svc_get(url, token, CLI_CAP_FILE_LIST, ex);
    if (j == NULL) {
      json_decref(all);
      return NULL;
    }
    json_array_extend(all, json_object_get(j, "files"));
    const char *epoch = json_string_value(json_object_get(j, "epoch"));
    int len = snprintf(since, sizeof(since), "%s.%lld", epoch ? epoch : "",
                       (long long)json_integer_value(json_object_get(j, "gen")));
    int more = json_is_true(json_object_get(j, "more"));
    json_decref(j);
    if (more && (epoch == NULL || len < 0 || (size_t)len >= sizeof(since))) {
      /* the next page could not be asked for: better no listing than a short one */
      fprintf(stderr, "gdx: the provider's listing has no usable position to go on from\n");
      json_decref(all);
      *ex = CLI_EX_REFUSED;
      return NULL;
    }
    if (!more)
      break;
  }
  json_t *items = json_pack("{s:o}", "items", all);
  if (items == NULL)
    *ex = cli_out_of_memory();
  return items;
}

/* A file version as its provider describes it. */
typedef struct {
  char sha256[GDX_SHA256_HEX_SIZE];
  long long size, chunk, nchunks;
  char *hashes; /* nchunks SHA-256s in hex, 64 characters each, no NULs */
} file_version;

/* The current version's size, SHA-256 and chunk hashes in one read;
 * CLI_EX_OK, or the exit status after saying why. */
static int read_version(const char *base, const char *token, const char *esc_path,
                        file_version *v) {
  int ex = CLI_EX_OK;
  char url[8192];
  snprintf(url, sizeof(url), "%s/chunks?path=%s", base, esc_path);
  json_t *meta = cli_svc_get(url, token, CLI_CAP_FILE_CHUNKS, &ex);
  if (meta == NULL)
    return ex;
  const char *sha = json_string_value(json_object_get(meta, "sha256"));
  snprintf(v->sha256, sizeof(v->sha256), "%s", sha ? sha : "");
  v->size = json_integer_value(json_object_get(meta, "size"));
  v->chunk = json_integer_value(json_object_get(meta, "chunk"));
  json_t *cl = json_object_get(meta, "chunks");
  int fits = v->chunk >= CHUNK_MIN && v->chunk <= CHUNK_MAX && strlen(v->sha256) == 64 &&
             v->size >= 0 && v->size <= LLONG_MAX - v->chunk;
  v->nchunks = fits ? (v->size + v->chunk - 1) / v->chunk : -1;
  fits = fits && (long long)json_array_size(cl) == v->nchunks;
  json_t *e;
  size_t i;
  json_array_foreach(cl, i, e) fits = fits && json_string_length(e) == 64;
  if (!fits) {
    fprintf(stderr, "gdx: the provider's chunk list does not fit the file\n");
    json_decref(meta);
    return CLI_EX_REFUSED;
  }
  v->hashes = malloc((size_t)v->nchunks * 64 + 1);
  if (v->hashes == NULL) {
    json_decref(meta);
    return cli_out_of_memory();
  }
  json_array_foreach(cl, i, e) memcpy(v->hashes + i * 64, json_string_value(e), 64);
  json_decref(meta);
  return CLI_EX_OK;
}

/* Resume: how many bytes at the start of the part file f are whole chunks
 * that still match v, into *have. */
static int verified_prefix(FILE *f, const file_version *v, long long *have) {
  char *blk = malloc((size_t)v->chunk);
  if (blk == NULL)
    return cli_out_of_memory();
  *have = 0;
  rewind(f);
  for (long long k = 0; k < v->nchunks; k++) {
    long long want = v->size - *have < v->chunk ? v->size - *have : v->chunk;
    if (fread(blk, 1, (size_t)want, f) != (size_t)want)
      break;
    char hex[GDX_SHA256_HEX_SIZE];
    gdx_sha256_hex(blk, (size_t)want, hex);
    if (memcmp(hex, v->hashes + k * 64, 64) != 0)
      break;
    *have += want;
  }
  free(blk);
  return CLI_EX_OK;
}

typedef struct {
  FILE *f;
  gdx_digest *md; /* of the chunk being received */
  const file_version *v;
  long long pos, verified, started, shown;
  int mismatch, out_of_memory, tty;
  struct timespec t0;
} dl_state;

static void dl_progress(dl_state *d, int last) {
  if (!d->tty)
    return;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  double secs = (double)(t.tv_sec - d->t0.tv_sec) + (double)(t.tv_nsec - d->t0.tv_nsec) / 1e9;
  long long size = d->v->size;
  double pct = size ? 100.0 * (double)d->pos / (double)size : 100.0;
  int bar = (int)(pct / 5);
  fprintf(stderr, "\r[%-20.*s] %5.1f%% %lld/%lld MiB %.0f MiB/s%s", bar, "####################",
          pct, d->pos >> 20, size >> 20,
          secs > 0 ? (double)(d->pos - d->started) / 1048576.0 / secs : 0.0, last ? "\n" : "");
}

/* A chunk received whole: it must match the provider's hash. */
static int dl_chunk_done(dl_state *d) {
  char hex[GDX_SHA256_HEX_SIZE];
  gdx_digest_final(d->md, hex, NULL);
  gdx_digest_free(d->md);
  d->md = NULL;
  if (memcmp(hex, d->v->hashes + (d->pos - 1) / d->v->chunk * 64, 64) != 0) {
    d->mismatch = 1;
    return -1;
  }
  d->verified = d->pos;
  if (d->pos < d->v->size && gdx_digest_new(GDX_DIGEST_SHA256, &d->md) != GDX_OK) {
    d->out_of_memory = 1;
    return -1;
  }
  if (d->pos - d->shown >= (4 << 20) || d->pos == d->v->size) {
    d->shown = d->pos;
    dl_progress(d, 0);
  }
  return 0;
}

static size_t dl_write(char *p, size_t size, size_t n, void *ud) {
  dl_state *d = ud;
  size_t len = size * n, done = 0;
  while (done < len) {
    long long end = (d->pos / d->v->chunk + 1) * d->v->chunk;
    if (end > d->v->size)
      end = d->v->size;
    size_t take = len - done;
    if ((long long)take > end - d->pos)
      take = (size_t)(end - d->pos);
    if (take == 0 || fwrite(p + done, 1, take, d->f) != take)
      return 0;
    gdx_digest_update(d->md, p + done, take);
    d->pos += (long long)take;
    done += take;
    if (d->pos == end && dl_chunk_done(d) != 0)
      return 0;
  }
  return len;
}

/* GET data from offset `have` into d->f, each chunk checked as it ends. */
static CURLcode download(const char *base, const char *token, const char *esc_path,
                         dl_state *d, long *status) {
  char url[8192];
  snprintf(url, sizeof(url), "%s/data?path=%s&sha256=%s&offset=%lld", base, esc_path,
           d->v->sha256, d->pos);
  struct curl_slist *h = NULL;
  CURL *c = NULL;
  if (cli_header_bearer(&h, token) != GDX_OK || (c = curl_easy_init()) == NULL) {
    curl_slist_free_all(h);
    d->out_of_memory = 1; /* the token fitted its header for the chunk list */
    return CURLE_OUT_OF_MEMORY;
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dl_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* stalled for a minute: give up */
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  CURLcode cr = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  return cr;
}

/* Receives the rest of the file into part (opened for appending at have). */
static int receive(const char *base, const char *token, const char *esc_path,
                   const file_version *v, const char *part, long long have) {
  FILE *f = fopen(part, "ab");
  if (f == NULL) {
    fprintf(stderr, "gdx: cannot write %s: %s\n", part, strerror(errno));
    return CLI_EX_USAGE;
  }
  dl_state d = {.f = f, .v = v, .pos = have, .verified = have, .started = have,
                .tty = isatty(2)};
  clock_gettime(CLOCK_MONOTONIC, &d.t0);
  CURLcode cr = CURLE_OK;
  long status = 200;
  if (have < v->size) {
    if (gdx_digest_new(GDX_DIGEST_SHA256, &d.md) != GDX_OK)
      d.out_of_memory = 1;
    else
      cr = download(base, token, esc_path, &d, &status);
  }
  gdx_digest_free(d.md);
  int ok = fclose(f) == 0 && cr == CURLE_OK && !d.out_of_memory && d.verified == v->size;
  if (d.tty)
    dl_progress(&d, 1);
  if (ok)
    return CLI_EX_OK;
  if (truncate(part, d.verified) != 0) { /* keep only what was verified */
  }
  if (d.out_of_memory)
    return cli_out_of_memory();
  if (d.mismatch) {
    fprintf(stderr, "gdx: the file changed at the provider while it was fetched; run the "
                    "same command again to fetch the new version\n");
    return CLI_EX_CONFLICT;
  }
  fprintf(stderr, "gdx: the download stopped at %lld of %lld bytes (%s, HTTP %ld); run the "
                  "same command again to resume\n", d.verified, v->size,
          curl_easy_strerror(cr), status);
  return status >= 400 ? cli_exit_for(status) : CLI_EX_UNREACHABLE;
}

static int fetch_file(const char *base, const char *token, const char *path,
                      const char *outfile) {
  char *esc_path = curl_easy_escape(NULL, path, 0);
  if (esc_path == NULL)
    return cli_out_of_memory();
  file_version v = {.hashes = NULL};
  int ex = read_version(base, token, esc_path, &v);
  const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  char out[1100], part[1200];
  snprintf(out, sizeof(out), "%s", outfile ? outfile : name);
  snprintf(part, sizeof(part), "%s.part", out);
  FILE *f = NULL;
  long long have = 0;
  if (ex == CLI_EX_OK && (f = fopen(part, "a+b")) == NULL) {
    fprintf(stderr, "gdx: cannot write %s: %s\n", part, strerror(errno));
    ex = CLI_EX_USAGE;
  }
  if (ex == CLI_EX_OK) { /* resume: keep the whole chunks of the part file that still match */
    ex = verified_prefix(f, &v, &have);
    fclose(f);
  }
  if (ex == CLI_EX_OK && truncate(part, have) != 0) {
    fprintf(stderr, "gdx: cannot write %s: %s\n", part, strerror(errno));
    ex = CLI_EX_USAGE;
  }
  if (ex == CLI_EX_OK && have > 0)
    fprintf(stderr, "resuming %s at %lld of %lld bytes\n", path, have, v.size);
  if (ex == CLI_EX_OK)
    ex = receive(base, token, esc_path, &v, part, have);
  curl_free(esc_path);
  free(v.hashes);
  if (ex != CLI_EX_OK)
    return ex;
  if (rename(part, out) != 0) {
    fprintf(stderr, "gdx: cannot rename %s: %s\n", part, strerror(errno));
    return CLI_EX_REFUSED;
  }
  fprintf(stderr, "fetched %s (%lld bytes, SHA-256 %s, every chunk verified) into %s\n", path,
          v.size, v.sha256, out);
  return CLI_EX_OK;
}

/* ---- a table's snapshot ---- */

/* One page's rows to f: CSV (with the header line before the first page)
 * or JSON Lines. */
static int write_rows(FILE *f, json_t *cols, json_t *rows, int jsonl, int first) {
  size_t i, k;
  json_t *row, *v;
  if (first && !jsonl) {
    json_array_foreach(cols, k, v) {
      if (k)
        fputc(',', f);
      csv_field(f, v);
    }
    fputc('\n', f);
  }
  json_array_foreach(rows, i, row) {
    if (!jsonl) {
      json_array_foreach(row, k, v) {
        if (k)
          fputc(',', f);
        csv_field(f, v);
      }
      fputc('\n', f);
      continue;
    }
    json_t *o = json_object();
    json_array_foreach(cols, k, v) json_object_set(o, json_string_value(v),
                                                   json_array_get(row, k));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (line == NULL) /* a row left out would go unnoticed */
      return cli_out_of_memory();
    fprintf(f, "%s\n", line);
    free(line);
  }
  return CLI_EX_OK;
}

/* The position after a page ("&after=" and the URL-escaped key of its last
 * row) into *after (curl_free it), or NULL when the page was the last. */
static int next_position(json_t *pg, char **after) {
  *after = NULL;
  if (json_is_true(json_object_get(pg, "done")) || !json_is_array(json_object_get(pg, "last")))
    return CLI_EX_OK;
  char *key = json_dumps(json_object_get(pg, "last"), JSON_COMPACT);
  *after = key ? curl_easy_escape(NULL, key, 0) : NULL;
  free(key);
  return *after ? CLI_EX_OK : cli_out_of_memory();
}

/* The snapshot page by page into f; the rows written into *rows. */
static int fetch_pages(const char *base, const char *token, FILE *f, int jsonl, int tty,
                       long long *rows) {
  int ex = CLI_EX_OK;
  char *after = NULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    char url[8192];
    int len = snprintf(url, sizeof(url), "%s%s%s", base, after ? "&after=" : "",
                       after ? after : "");
    curl_free(after);
    after = NULL;
    if (len < 0 || (size_t)len >= sizeof(url)) {
      fprintf(stderr, "\ngdx: the broker's page position is too long to ask for the next page\n");
      return CLI_EX_REFUSED;
    }
    json_t *pg = cli_svc_get(url, token, CLI_CAP_FETCH_PAGE, &ex);
    if (pg == NULL)
      return ex;
    json_t *data = json_object_get(pg, "rows");
    ex = write_rows(f, json_object_get(pg, "columns"), data, jsonl, *rows == 0);
    *rows += (long long)json_array_size(data);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (tty)
      fprintf(stderr, "\rfetched %lld rows (%.0f rows/s)   ", *rows,
              secs > 0 ? *rows / secs : 0.0);
    if (ex == CLI_EX_OK)
      ex = next_position(pg, &after);
    json_decref(pg);
    if (ex != CLI_EX_OK || after == NULL)
      return ex;
  }
}

static int fetch_table(const char *broker, const char *res, const char *token,
                       const char *outfile, int jsonl, long long page) {
  char part[1100] = "";
  FILE *f = stdout;
  if (outfile) {
    snprintf(part, sizeof(part), "%s.part", outfile);
    f = fopen(part, "w");
    if (f == NULL) {
      fprintf(stderr, "gdx: cannot write %s: %s\n", part, strerror(errno));
      return CLI_EX_USAGE;
    }
  }
  char base[2048];
  snprintf(base, sizeof(base), "%s/svc/%s/snapshot?limit=%lld", broker, res, page);
  int tty = isatty(2);
  long long rows = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int ex = fetch_pages(base, token, f, jsonl, tty, &rows);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  if (f != stdout && fclose(f) != 0 && ex == CLI_EX_OK) {
    fprintf(stderr, "gdx: writing %s failed: %s\n", part, strerror(errno));
    ex = CLI_EX_REFUSED;
  }
  if (ex == CLI_EX_OK && outfile && rename(part, outfile) != 0) {
    fprintf(stderr, "gdx: cannot rename %s: %s\n", part, strerror(errno));
    ex = CLI_EX_REFUSED;
  }
  if (ex != CLI_EX_OK && outfile)
    unlink(part); /* nothing half-written under the real name */
  if (ex == CLI_EX_OK)
    fprintf(stderr, "%sfetched %lld rows in %.1f s%s%s\n", tty ? "\r" : "", rows, secs,
            outfile ? " into " : "", outfile ? outfile : "");
  return ex;
}

static int cmd_fetch(int argc, char **argv) {
  const char *client = NULL, *token = NULL, *format = "csv", *outfile = NULL, *res = NULL;
  const char *file = NULL, *page_text = NULL;
  int list = 0;
  for (int i = 0; i < argc; i++) {
    int more = i + 1 < argc;
    if (strcmp(argv[i], "--client-id") == 0 && more) client = argv[++i];
    else if (strcmp(argv[i], "--token") == 0 && more) token = argv[++i];
    else if (strcmp(argv[i], "--format") == 0 && more) format = argv[++i];
    else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && more)
      outfile = argv[++i];
    else if (strcmp(argv[i], "--page") == 0 && more) page_text = argv[++i];
    else if (strcmp(argv[i], "--list") == 0) list = 1;
    else if (strcmp(argv[i], "--file") == 0 && more) file = argv[++i];
    else if (res == NULL && argv[i][0] != '-') res = argv[i];
    else return cli_usage_error("unexpected argument", help_fetch);
  }
  int jsonl = strcmp(format, "jsonl") == 0;
  if (res == NULL || (!client && !token))
    return cli_usage_error("fetch needs RESOURCE and --client-id or --token", help_fetch);
  if (!jsonl && strcmp(format, "csv") != 0)
    return cli_usage_error("--format is csv or jsonl", help_fetch);
  long long page = PAGE_DEFAULT;
  int rc;
  if (page_text &&
      (rc = cli_num_arg("--page", page_text, 1, PAGE_MAX, help_fetch, &page)) != CLI_EX_OK)
    return rc;
  char tokbuf[512];
  if (client) {
    if ((rc = cli_access_token(client, tokbuf, sizeof(tokbuf))) != CLI_EX_OK)
      return rc;
    token = tokbuf;
  }
  json_t *sess = cli_session_load(); /* holds the broker's address: kept to the end */
  const char *broker = cli_broker_url(sess);
  if (list || file) {
    char base[2048];
    snprintf(base, sizeof(base), "%s/svc/%s", broker, res);
    json_decref(sess);
    if (file)
      return fetch_file(base, token, file, outfile);
    int ex = CLI_EX_OK;
    json_t *l = list_files(base, token, &ex);
    return l ? cli_emit(l, file_cols, CLI_NCOLS(file_cols), 1) : ex;
  }
  rc = fetch_table(broker, res, token, outfile, jsonl, page);
  json_decref(sess);
  return rc;
}

const cli_command cli_fetch_commands[] = {
    {"fetch", cmd_fetch, help_fetch},
    {NULL, NULL, NULL}};
