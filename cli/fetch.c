/* gdx fetch (获取): a table resource's snapshot as CSV or JSON Lines, page
 * by page, and a folder resource's files, listed or downloaded with every
 * chunk checked against the provider's SHA-256 and resumed after the
 * chunks that still match. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "output.h"

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
  char since[128] = "";
  for (;;) {
    char url[4096];
    snprintf(url, sizeof(url), "%s/files?limit=1000%s%s", base, since[0] ? "&since=" : "",
             since);
    json_t *j = cli_svc_get(url, token, ex);
    if (j == NULL) {
      json_decref(all);
      return NULL;
    }
    json_array_extend(all, json_object_get(j, "files"));
    snprintf(since, sizeof(since), "%s.%lld", json_string_value(json_object_get(j, "epoch")),
             (long long)json_integer_value(json_object_get(j, "gen")));
    int more = json_is_true(json_object_get(j, "more"));
    json_decref(j);
    if (!more)
      break;
  }
  return json_pack("{s:o}", "items", all);
}

/* A SHA-256 digest as the provider's hex. */
static void md_hex(const unsigned char md[32], char hex[65]) {
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

typedef struct {
  FILE *f;
  EVP_MD_CTX *md;
  const char *chunks;   /* 64 hex each */
  long long chunk, size, pos, verified, started;
  long long in_chunk;
  int mismatch, tty;
  struct timespec t0;
} dl_state;

static void dl_progress(dl_state *d, int last) {
  if (!d->tty)
    return;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  double secs = (double)(t.tv_sec - d->t0.tv_sec) + (double)(t.tv_nsec - d->t0.tv_nsec) / 1e9;
  double pct = d->size ? 100.0 * (double)d->pos / (double)d->size : 100.0;
  int bar = (int)(pct / 5);
  fprintf(stderr, "\r[%-20.*s] %5.1f%% %lld/%lld MiB %.0f MiB/s%s", bar, "####################",
          pct, d->pos >> 20, d->size >> 20,
          secs > 0 ? (double)(d->pos - d->started) / 1048576.0 / secs : 0.0, last ? "\n" : "");
}

static size_t dl_write(char *p, size_t size, size_t n, void *ud) {
  dl_state *d = ud;
  size_t len = size * n, done = 0;
  while (done < len) {
    long long end = (d->pos / d->chunk + 1) * d->chunk;
    if (end > d->size)
      end = d->size;
    size_t take = len - done;
    if ((long long)take > end - d->pos)
      take = (size_t)(end - d->pos);
    if (take == 0 || fwrite(p + done, 1, take, d->f) != take)
      return 0;
    EVP_DigestUpdate(d->md, p + done, take);
    d->pos += (long long)take;
    done += take;
    if (d->pos == end) {
      unsigned char md[32];
      unsigned ml = 0;
      char hex[65];
      EVP_DigestFinal_ex(d->md, md, &ml);
      md_hex(md, hex);
      if (memcmp(hex, d->chunks + (d->pos - 1) / d->chunk * 64, 64) != 0) {
        d->mismatch = 1;
        return 0;
      }
      d->verified = d->pos;
      EVP_DigestInit_ex(d->md, EVP_sha256(), NULL);
      static long long shown;
      if (d->pos - shown >= (4 << 20) || d->pos == d->size) {
        shown = d->pos;
        dl_progress(d, 0);
      }
    }
  }
  return len;
}

static int fetch_file(const char *base, const char *token, const char *path,
                      const char *outfile) {
  /* the current version's size, SHA-256 and chunk hashes in one read */
  int ex = CLI_EX_OK;
  char *esc_path = curl_easy_escape(NULL, path, 0);
  char url[8192];
  snprintf(url, sizeof(url), "%s/chunks?path=%s", base, esc_path);
  json_t *meta = cli_svc_get(url, token, &ex);
  if (meta == NULL) {
    curl_free(esc_path);
    return ex;
  }
  json_t *e;
  size_t i;
  char sha[65];
  snprintf(sha, sizeof(sha), "%s", json_string_value(json_object_get(meta, "sha256")) ?
           json_string_value(json_object_get(meta, "sha256")) : "");
  long long size = json_integer_value(json_object_get(meta, "size"));
  long long chunk = json_integer_value(json_object_get(meta, "chunk"));
  json_t *cl = json_object_get(meta, "chunks");
  long long n = chunk > 0 ? (size + chunk - 1) / chunk : -1;
  if (chunk <= 0 || strlen(sha) != 64 || size < 0 || (long long)json_array_size(cl) != n) {
    fprintf(stderr, "gdx: the provider's chunk list does not fit the file\n");
    json_decref(meta);
    curl_free(esc_path);
    return CLI_EX_REFUSED;
  }
  char *chunks = calloc((size_t)n * 64 + 1, 1);
  json_array_foreach(cl, i, e) {
    const char *h = json_string_value(e);
    if (h && strlen(h) == 64)
      memcpy(chunks + i * 64, h, 64);
  }
  json_decref(meta);
  const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  char out[1100], part[1200];
  snprintf(out, sizeof(out), "%s", outfile ? outfile : name);
  snprintf(part, sizeof(part), "%s.part", out);
  /* resume: keep the whole chunks of the part file that still match */
  FILE *f = fopen(part, "a+b");
  if (f == NULL) {
    fprintf(stderr, "gdx: cannot write %s: %s\n", part, strerror(errno));
    free(chunks);
    curl_free(esc_path);
    return CLI_EX_USAGE;
  }
  long long have = 0;
  char *blk = malloc((size_t)chunk);
  rewind(f);
  for (long long k = 0; k < n; k++) {
    long long want = size - have < chunk ? size - have : chunk;
    if (fread(blk, 1, (size_t)want, f) != (size_t)want)
      break;
    unsigned char md[32];
    unsigned ml = 0;
    char hex[65];
    EVP_Digest(blk, (size_t)want, md, &ml, EVP_sha256(), NULL);
    md_hex(md, hex);
    if (memcmp(hex, chunks + k * 64, 64) != 0)
      break;
    have += want;
  }
  free(blk);
  fclose(f);
  if (truncate(part, have) != 0 || (f = fopen(part, "ab")) == NULL) {
    fprintf(stderr, "gdx: cannot write %s: %s\n", part, strerror(errno));
    free(chunks);
    curl_free(esc_path);
    return CLI_EX_USAGE;
  }
  if (have > 0)
    fprintf(stderr, "resuming %s at %lld of %lld bytes\n", path, have, size);
  dl_state d = {.f = f, .md = EVP_MD_CTX_new(), .chunks = chunks, .chunk = chunk, .size = size,
                .pos = have, .verified = have, .started = have, .tty = isatty(2)};
  EVP_DigestInit_ex(d.md, EVP_sha256(), NULL);
  clock_gettime(CLOCK_MONOTONIC, &d.t0);
  CURLcode cr = CURLE_OK;
  long status = 200;
  if (have < size) {
    snprintf(url, sizeof(url), "%s/data?path=%s&sha256=%s&offset=%lld", base, esc_path, sha,
             have);
    char auth[600];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* stalled for a minute: give up */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    cr = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
  }
  curl_free(esc_path);
  EVP_MD_CTX_free(d.md);
  free(chunks);
  int ok = fclose(f) == 0 && cr == CURLE_OK && d.verified == size;
  if (d.tty)
    dl_progress(&d, 1);
  if (!ok) {
    if (truncate(part, d.verified) != 0) { /* keep only what was verified */
    }
    if (d.mismatch)
      fprintf(stderr, "gdx: the file changed at the provider while it was fetched; run the "
                      "same command again to fetch the new version\n");
    else
      fprintf(stderr, "gdx: the download stopped at %lld of %lld bytes (%s, HTTP %ld); run the "
                      "same command again to resume\n", d.verified, size,
              curl_easy_strerror(cr), status);
    return d.mismatch ? CLI_EX_CONFLICT : status >= 400 ? cli_exit_for(status) : CLI_EX_UNREACHABLE;
  }
  if (rename(part, out) != 0) {
    fprintf(stderr, "gdx: cannot rename %s: %s\n", part, strerror(errno));
    return CLI_EX_REFUSED;
  }
  fprintf(stderr, "fetched %s (%lld bytes, SHA-256 %s, every chunk verified) into %s\n", path,
          size, sha, out);
  return CLI_EX_OK;
}

static int cmd_fetch(int argc, char **argv) {
  const char *client = NULL, *token = NULL, *format = "csv", *outfile = NULL, *res = NULL;
  const char *file = NULL;
  int list = 0;
  long page = 5000;
  for (int i = 0; i < argc; i++) {
    int more = i + 1 < argc;
    if (strcmp(argv[i], "--client-id") == 0 && more) client = argv[++i];
    else if (strcmp(argv[i], "--token") == 0 && more) token = argv[++i];
    else if (strcmp(argv[i], "--format") == 0 && more) format = argv[++i];
    else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && more)
      outfile = argv[++i];
    else if (strcmp(argv[i], "--page") == 0 && more) page = atol(argv[++i]);
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
  if (page < 1 || page > 10000)
    return cli_usage_error("--page is 1 to 10000 rows", help_fetch);
  char tokbuf[512];
  if (client) {
    int rc = cli_access_token(client, tokbuf, sizeof(tokbuf));
    if (rc)
      return rc;
    token = tokbuf;
  }
  if (list || file) {
    json_t *sess = cli_session_load();
    char base[2048];
    snprintf(base, sizeof(base), "%s/svc/%s", cli_broker_url(sess), res);
    json_decref(sess);
    if (file)
      return fetch_file(base, token, file, outfile);
    int ex = CLI_EX_OK;
    json_t *l = list_files(base, token, &ex);
    return l ? cli_emit(l, file_cols, CLI_NCOLS(file_cols), 1) : ex;
  }
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
  json_t *s = cli_session_load();
  char base[2048];
  snprintf(base, sizeof(base), "%s/svc/%s/snapshot?limit=%ld", cli_broker_url(s), res, page);
  json_decref(s);
  int tty = isatty(2), ex = CLI_EX_OK;
  long long rows = 0;
  char *after = NULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    char url[8192];
    snprintf(url, sizeof(url), "%s%s%s", base, after ? "&after=" : "", after ? after : "");
    json_t *pg = cli_svc_get(url, token, &ex);
    if (pg == NULL)
      break;
    json_t *cols = json_object_get(pg, "columns"), *data = json_object_get(pg, "rows");
    size_t i, k;
    json_t *row, *v;
    if (rows == 0 && !jsonl) {
      json_array_foreach(cols, k, v) {
        if (k)
          fputc(',', f);
        csv_field(f, v);
      }
      fputc('\n', f);
    }
    json_array_foreach(data, i, row) {
      if (jsonl) {
        json_t *o = json_object();
        json_array_foreach(cols, k, v) json_object_set(o, json_string_value(v),
                                                       json_array_get(row, k));
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fprintf(f, "%s\n", line ? line : "{}");
        free(line);
        json_decref(o);
      } else {
        json_array_foreach(row, k, v) {
          if (k)
            fputc(',', f);
          csv_field(f, v);
        }
        fputc('\n', f);
      }
    }
    rows += (long long)json_array_size(data);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (tty)
      fprintf(stderr, "\rfetched %lld rows (%.0f rows/s)   ", rows, secs > 0 ? rows / secs : 0.0);
    int done = json_is_true(json_object_get(pg, "done")) ||
               !json_is_array(json_object_get(pg, "last"));
    free(after);
    after = NULL;
    if (!done) {
      char *key = json_dumps(json_object_get(pg, "last"), JSON_COMPACT);
      after = key ? curl_easy_escape(NULL, key, 0) : NULL;
      free(key);
      if (after) { /* curl's allocation into ours */
        char *copy = strdup(after);
        curl_free(after);
        after = copy;
      }
    }
    json_decref(pg);
    if (done || after == NULL)
      break;
  }
  free(after);
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

const cli_command cli_fetch_commands[] = {
    {"fetch", cmd_fetch, help_fetch},
    {NULL, NULL, NULL}};
