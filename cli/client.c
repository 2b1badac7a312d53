#include "client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "error.h"
#include "output.h"

static void session_path(char *out, size_t n, int mkdirs) {
  const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
  char dir[1024];
  if (xdg && *xdg)
    snprintf(dir, sizeof(dir), "%s/gdx", xdg);
  else
    snprintf(dir, sizeof(dir), "%s/.config/gdx", home ? home : ".");
  if (mkdirs) { /* mkdir -p, private */
    for (char *p = dir + 1; *p; p++) {
      if (*p == '/') {
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
      }
    }
    mkdir(dir, 0700);
  }
  snprintf(out, n, "%s/session.json", dir);
}

json_t *cli_session_load(void) {
  char p[1100];
  session_path(p, sizeof(p), 0);
  return json_load_file(p, 0, NULL);
}

int cli_session_save(json_t *s) {
  char p[1100];
  session_path(p, sizeof(p), 1);
  mode_t old = umask(077);
  int rc = json_dump_file(s, p, JSON_INDENT(2));
  umask(old);
  chmod(p, 0600);
  return rc;
}

const char *cli_broker_url(json_t *s) {
  if (cli_opts.broker)
    return cli_opts.broker;
  const char *env = getenv("GDX_BROKER");
  if (env && *env)
    return env;
  const char *saved = json_string_value(json_object_get(s, "broker"));
  return saved ? saved : "http://127.0.0.1:8080";
}

/* "Authorization: Bearer " and a token: the broker's session and access
 * tokens are about a hundred characters. */
#define BEARER_LINE_MAX 1024

void cli_size_text(size_t n, char *out, size_t outlen) {
  static const char *const units[] = {"GiB", "MiB", "KiB"};
  for (int i = 0; i < 3; i++) {
    size_t unit = (size_t)1 << (10 * (3 - i));
    if (n >= unit && n % unit == 0) {
      snprintf(out, outlen, "%zu %s", n / unit, units[i]);
      return;
    }
  }
  snprintf(out, outlen, "%zu bytes", n);
}

int cli_exit_for(long status) {
  switch (status) {
  case 401: return CLI_EX_AUTH;
  case 403: return CLI_EX_FORBIDDEN;
  case 404: return CLI_EX_NOTFOUND;
  case 409: return CLI_EX_CONFLICT;
  default: return CLI_EX_REFUSED;
  }
}

int cli_out_of_memory(void) {
  fprintf(stderr, "gdx: out of memory\n");
  return CLI_EX_REFUSED;
}

int cli_header_add(struct curl_slist **h, const char *line) {
  struct curl_slist *longer = curl_slist_append(*h, line);
  if (longer == NULL)
    return GDX_ENOMEM;
  *h = longer;
  return GDX_OK;
}

int cli_header_bearer(struct curl_slist **h, const char *token) {
  char line[BEARER_LINE_MAX];
  int n = snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
  if (n < 0 || (size_t)n >= sizeof(line))
    return GDX_ETOOBIG;
  return cli_header_add(h, line);
}

int cli_header_failed(int err, const char *lead) {
  if (err != GDX_ETOOBIG) {
    fprintf(stderr, "%s", lead);
    return cli_out_of_memory();
  }
  fprintf(stderr, "%sgdx: the token is longer than any the broker issues\n", lead);
  return CLI_EX_USAGE;
}

void cli_body_init(cli_body *b, size_t cap, size_t refusal_cap) {
  memset(b, 0, sizeof(*b));
  gdx_buf_init(&b->buf, cap);
  b->refusal_cap = refusal_cap;
}

void cli_body_free(cli_body *b) {
  gdx_buf_free(&b->buf);
}

int cli_body_failed(const cli_body *b, const char *what, const char *lead) {
  int ex = b->status >= 400 ? cli_exit_for(b->status) : CLI_EX_REFUSED;
  if (b->err != GDX_ETOOBIG) {
    fprintf(stderr, "%s", lead);
    cli_out_of_memory();
    return ex;
  }
  char size[32];
  cli_size_text(b->buf.cap, size, sizeof(size));
  if (b->status >= 400)
    fprintf(stderr, "%sgdx: %s is larger than %s (HTTP %ld)\n", lead, what, size, b->status);
  else
    fprintf(stderr, "%sgdx: %s is larger than %s\n", lead, what, size);
  return ex;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  cli_body *b = ud;
  if (!b->status_seen) { /* a refusal only needs room for its JSON error */
    b->status_seen = 1;
    curl_easy_getinfo(b->easy, CURLINFO_RESPONSE_CODE, &b->status);
    if (b->status >= 400 && b->refusal_cap && b->refusal_cap < b->buf.cap)
      b->buf.cap = b->refusal_cap;
  }
  int err = gdx_buf_append(&b->buf, p, size * n);
  if (err) {
    b->err = err;
    return 0; /* curl stops with CURLE_WRITE_ERROR */
  }
  return size * n;
}

/* The value of the header line p (len bytes, which curl does not end with a
 * NUL) into out when the line is `name` ("Name: "). */
static void header_value(const char *p, size_t len, const char *name, char *out, size_t n) {
  size_t k = strlen(name), end = k;
  if (len <= k || strncasecmp(p, name, k) != 0)
    return;
  while (end < len && p[end] != '\r' && p[end] != '\n')
    end++;
  snprintf(out, n, "%.*s", (int)(end - k), p + k);
}

static size_t on_header(char *p, size_t s, size_t n, void *ud) {
  cli_answer_meta *m = ud;
  header_value(p, s * n, "X-Request-Id: ", m->request_id, sizeof(m->request_id));
  header_value(p, s * n, "X-Gdx-Error-Type: ", m->error_type, sizeof(m->error_type));
  return s * n;
}

CURLcode cli_perform(const cli_request *rq, cli_body *b, cli_answer_meta *meta) {
  memset(meta, 0, sizeof(*meta));
  CURL *e = curl_easy_init();
  if (e == NULL) {
    b->err = GDX_ENOMEM;
    return CURLE_OUT_OF_MEMORY;
  }
  b->easy = e;
  curl_easy_setopt(e, CURLOPT_URL, rq->url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, rq->headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, meta);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, meta->curl_error);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, rq->timeout_s);
  if (rq->decode)
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* whatever curl can decode */
  if (strcmp(rq->method, "HEAD") == 0)
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  if (rq->body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
  }
  CURLcode cr = curl_easy_perform(e);
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &b->status);
  curl_easy_cleanup(e);
  b->easy = NULL;
  return cr;
}

/* The REST API's answer in b: *out for a success, else the refusal printed. */
static int read_api_answer(const cli_body *b, json_t **out) {
  json_t *j = b->buf.data ? json_loads(b->buf.data, 0, NULL) : NULL;
  if (b->status >= 200 && b->status < 300) {
    *out = j ? j : json_object();
    return *out ? CLI_EX_OK : cli_out_of_memory();
  }
  json_t *err = json_object_get(j, "error");
  const char *code = json_string_value(json_object_get(err, "code"));
  const char *msg = json_string_value(json_object_get(err, "message"));
  const char *rid = json_string_value(json_object_get(err, "request_id"));
  if (cli_opts.json && j)
    json_dumpf(j, stderr, JSON_INDENT(2)), fputc('\n', stderr);
  else
    fprintf(stderr, "gdx: %s (%s, HTTP %ld%s%s)\n", msg ? msg : "the broker refused the request",
            code ? code : "?", b->status, rid ? ", request " : "", rid ? rid : "");
  if (code && b->status == 401)
    fprintf(stderr, "gdx: log in with: gdx login USER\n");
  if (code && strcmp(code, "password_change_required") == 0)
    fprintf(stderr, "gdx: change it with: gdx passwd\n");
  json_decref(j);
  return cli_exit_for(b->status);
}

/* One request to the REST API with the session's token; payload may be NULL. */
static int api_request(const char *method, const char *base, const char *path,
                       const char *token, const char *payload, json_t **out) {
  char url[4096];
  int n = snprintf(url, sizeof(url), "%s%s", base, path);
  if (n < 0 || (size_t)n >= sizeof(url)) {
    fprintf(stderr, "gdx: the request's address is longer than %zu bytes\n", sizeof(url) - 1);
    return CLI_EX_USAGE;
  }
  struct curl_slist *h = NULL;
  int err = cli_header_add(&h, "Accept: application/json");
  if (!err && token)
    err = cli_header_bearer(&h, token);
  if (!err && payload)
    err = cli_header_add(&h, "Content-Type: application/json");
  if (err) {
    curl_slist_free_all(h);
    return cli_header_failed(err, "");
  }
  cli_request rq = {.method = method, .url = url, .headers = h, .body = payload,
                    .body_len = payload ? strlen(payload) : 0, .timeout_s = 60};
  cli_body b;
  cli_body_init(&b, CLI_CAP_API_ANSWER, CLI_CAP_REFUSAL);
  cli_answer_meta meta;
  CURLcode cr = cli_perform(&rq, &b, &meta);
  curl_slist_free_all(h);
  int ex;
  if (b.err) {
    ex = cli_body_failed(&b, "the broker's answer", "");
  } else if (cr != CURLE_OK) {
    fprintf(stderr, "gdx: cannot reach the broker at %s: %s\n", base,
            meta.curl_error[0] ? meta.curl_error : curl_easy_strerror(cr));
    ex = CLI_EX_UNREACHABLE;
  } else {
    ex = read_api_answer(&b, out);
  }
  cli_body_free(&b);
  return ex;
}

int cli_call(const char *method, const char *path, json_t *body, json_t **out) {
  char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
  int failed = body && payload == NULL;
  json_decref(body);
  if (failed)
    return cli_out_of_memory();
  json_t *s = cli_session_load(); /* holds the broker's address: kept to the end */
  const char *token = json_string_value(json_object_get(s, "token"));
  int ex = api_request(method, cli_broker_url(s), path, token, payload, out);
  if (payload)
    explicit_bzero(payload, strlen(payload)); /* may hold a password */
  free(payload);
  json_decref(s);
  return ex;
}

int cli_item_verb(const char *base, const char *verb, const char *id, const char *const *cols,
                  size_t ncols) {
  char path[512];
  json_t *out;
  if (strcmp(verb, "show") == 0)
    snprintf(path, sizeof(path), "%s/%s", base, id);
  else
    snprintf(path, sizeof(path), "%s/%s/%s", base, id, verb);
  int rc = cli_call(strcmp(verb, "show") == 0 ? "GET" : "POST", path, NULL, &out);
  return rc ? rc : cli_emit(out, cols, ncols, 0);
}

int cli_access_token(const char *client, char *out, size_t n) {
  char secret[256] = "";
  const char *env = getenv("GDX_CLIENT_SECRET");
  if (env)
    snprintf(secret, sizeof(secret), "%s", env);
  else if (cli_read_secret("client secret: ", secret, sizeof(secret)) != 0)
    return CLI_EX_USAGE;
  json_t *res;
  int rc = cli_call("POST", "/api/v1/token",
                    json_pack("{s:s, s:s}", "client_id", client, "client_secret", secret), &res);
  explicit_bzero(secret, sizeof(secret));
  if (rc)
    return rc;
  const char *at = json_string_value(json_object_get(res, "access_token"));
  int len = snprintf(out, n, "%s", at ? at : "");
  json_decref(res);
  if (len < 0 || (size_t)len >= n) { /* a cut token would only be refused later, less clearly */
    fprintf(stderr, "gdx: the broker's access token is longer than %zu bytes\n", n - 1);
    return CLI_EX_REFUSED;
  }
  return CLI_EX_OK;
}

json_t *cli_svc_get(const char *url, const char *token, size_t cap, int *ex) {
  struct curl_slist *h = NULL;
  int err = cli_header_bearer(&h, token);
  if (err) {
    curl_slist_free_all(h);
    *ex = cli_header_failed(err, "\n");
    return NULL;
  }
  cli_request rq = {.method = "GET", .url = url, .headers = h, .timeout_s = 120, .decode = 1};
  cli_body b;
  cli_body_init(&b, cap, CLI_CAP_REFUSAL);
  cli_answer_meta meta;
  CURLcode cr = cli_perform(&rq, &b, &meta);
  curl_slist_free_all(h);
  json_t *j = NULL;
  if (b.err) {
    *ex = cli_body_failed(&b, "the broker's answer", "\n");
  } else if (cr != CURLE_OK) {
    fprintf(stderr, "\ngdx: the broker cannot be reached: %s\n", curl_easy_strerror(cr));
    *ex = CLI_EX_UNREACHABLE;
  } else {
    j = b.buf.data ? json_loads(b.buf.data, 0, NULL) : NULL;
    if (b.status != 200 || !json_is_object(j)) {
      json_t *e = json_object_get(j, "error");
      const char *msg = json_string_value(json_object_get(e, "message"));
      const char *code = json_string_value(json_object_get(e, "code"));
      fprintf(stderr, "\ngdx: %s (%s, HTTP %ld%s%s, request %s)\n",
              msg ? msg : "the fetch failed", code ? code : "?", b.status,
              meta.error_type[0] ? ", failed at: " : "", meta.error_type, meta.request_id);
      *ex = cli_exit_for(b.status);
      json_decref(j);
      j = NULL;
    }
  }
  cli_body_free(&b);
  return j;
}
