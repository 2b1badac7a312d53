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

size_t cli_collect(char *p, size_t s, size_t n, void *ud) {
  cli_buf *b = ud;
  if (b->len + s * n + 1 > b->cap) {
    b->cap = (b->len + s * n + 1) * 2;
    b->data = realloc(b->data, b->cap);
  }
  memcpy(b->data + b->len, p, s * n);
  b->len += s * n;
  b->data[b->len] = '\0';
  return s * n;
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

/* Calls the API (taking over `body`); on success returns CLI_EX_OK and *out;
 * otherwise prints the error and returns the exit status. */
int cli_call(const char *method, const char *path, json_t *body, json_t **out) {
  json_t *s = cli_session_load();
  const char *base = cli_broker_url(s);
  const char *token = json_string_value(json_object_get(s, "token"));
  char url[2048], auth[256];
  snprintf(url, sizeof(url), "%s%s", base, path);
  CURL *e = curl_easy_init();
  struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
  if (token) {
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    h = curl_slist_append(h, auth);
  }
  char *payload = NULL;
  if (body) {
    payload = json_dumps(body, JSON_COMPACT);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload);
  }
  cli_buf b = {0};
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, cli_collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
  CURLcode rc = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  if (payload)
    explicit_bzero(payload, strlen(payload)); /* may hold a password */
  free(payload);
  json_decref(body);
  json_decref(s);
  if (rc != CURLE_OK) {
    fprintf(stderr, "gdx: cannot reach the broker at %s: %s\n", base,
            errbuf[0] ? errbuf : curl_easy_strerror(rc));
    free(b.data);
    return CLI_EX_UNREACHABLE;
  }
  json_t *j = b.data ? json_loads(b.data, 0, NULL) : NULL;
  free(b.data);
  if (status >= 200 && status < 300) {
    *out = j ? j : json_object();
    return CLI_EX_OK;
  }
  json_t *err = json_object_get(j, "error");
  const char *code = json_string_value(json_object_get(err, "code"));
  const char *msg = json_string_value(json_object_get(err, "message"));
  const char *rid = json_string_value(json_object_get(err, "request_id"));
  if (cli_opts.json && j)
    json_dumpf(j, stderr, JSON_INDENT(2)), fputc('\n', stderr);
  else
    fprintf(stderr, "gdx: %s (%s, HTTP %ld%s%s)\n", msg ? msg : "the broker refused the request",
            code ? code : "?", status, rid ? ", request " : "", rid ? rid : "");
  if (code && status == 401)
    fprintf(stderr, "gdx: log in with: gdx login USER\n");
  if (code && strcmp(code, "password_change_required") == 0)
    fprintf(stderr, "gdx: change it with: gdx passwd\n");
  json_decref(j);
  return cli_exit_for(status);
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

static size_t call_header(char *p, size_t s, size_t n, void *ud) {
  cli_call_meta *m = ud;
  size_t len = s * n;
  if (len > 14 && strncasecmp(p, "X-Request-Id: ", 14) == 0)
    snprintf(m->request_id, sizeof(m->request_id), "%.*s", (int)strcspn(p + 14, "\r\n"), p + 14);
  if (len > 18 && strncasecmp(p, "X-Gdx-Error-Type: ", 18) == 0)
    snprintf(m->error_type, sizeof(m->error_type), "%.*s", (int)strcspn(p + 18, "\r\n"), p + 18);
  return len;
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
  snprintf(out, n, "%s", at ? at : "");
  json_decref(res);
  return CLI_EX_OK;
}

CURLcode cli_svc_perform(const char *method, const char *url, struct curl_slist *h,
                         const char *body, size_t blen, int decode, cli_buf *b,
                         cli_call_meta *meta, long *status) {
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, cli_collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, call_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, meta);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
  if (decode)
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* whatever curl can decode */
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
  }
  CURLcode cr = curl_easy_perform(e);
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
  curl_easy_cleanup(e);
  return cr;
}


json_t *cli_svc_get(const char *url, const char *token, int *ex) {
  char auth[600];
  snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
  struct curl_slist *h = curl_slist_append(NULL, auth);
  cli_buf b = {0};
  cli_call_meta meta = {"", ""};
  long status = 0;
  CURLcode cr = cli_svc_perform("GET", url, h, NULL, 0, 1, &b, &meta, &status);
  curl_slist_free_all(h);
  json_t *j = cr == CURLE_OK && b.data ? json_loads(b.data, 0, NULL) : NULL;
  free(b.data);
  if (cr != CURLE_OK) {
    fprintf(stderr, "\ngdx: the broker cannot be reached: %s\n", curl_easy_strerror(cr));
    *ex = CLI_EX_UNREACHABLE;
  } else if (status != 200 || !json_is_object(j)) {
    json_t *err = json_object_get(j, "error");
    fprintf(stderr, "\ngdx: %s (%s, HTTP %ld%s%s, request %s)\n",
            json_string_value(json_object_get(err, "message"))
                ? json_string_value(json_object_get(err, "message"))
                : "the fetch failed",
            json_string_value(json_object_get(err, "code"))
                ? json_string_value(json_object_get(err, "code"))
                : "?",
            status, meta.error_type[0] ? ", failed at: " : "", meta.error_type, meta.request_id);
    *ex = cli_exit_for(status);
  } else {
    return j;
  }
  json_decref(j);
  return NULL;
}

