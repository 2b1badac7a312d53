/* The API adapter: a resource is an internal HTTP service at base_url.
 *
 *   { name = "persons"; kind = "api"; base_url = "http://10.0.0.5:8080/v1";
 *     headers = ["X-Client: gdx"];             # fixed headers, added to every call
 *     credentials_file = "/etc/gdx/persons.hdr"; # one "Name: value" line, mode 0600
 *     health_path = "/health";                 # probed before each heartbeat
 *     ca_file = "/etc/gdx/internal-ca.pem";    # for an https base_url
 *     head_timeout_ms = 30000; idle_timeout_s = 60;
 *     client = "gdx"; }                        # or "curl": libcurl for this service
 *
 * client: "gdx" (the default) is the native keep-alive HTTP/1.1 engine of
 * httpc_native.c, much lighter per call; "curl" uses libcurl, for an
 * internal service that needs what only curl does.
 *
 * A call /r/persons/<rest>?<query> goes to <base_url>/<rest>?<query> with
 * the broker's end-to-end headers (X-Gdx-Consumer-Unit, X-Gdx-Authorization,
 * X-Request-Id among them), the fixed headers and the credentials; the
 * response streams back with X-Gdx-Upstream-Ms (time to the upstream's
 * response head) for the call record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "relay.h"

#define MAX_FIXED 16

typedef struct {
  char base_url[512];
  char *headers[MAX_FIXED + 2];
  int nheaders;
  char health_path[256];
  char ca_file[512];
  long head_timeout_ms, idle_timeout_s, connect_timeout_ms;
  int native; /* client = "gdx" */
  int last_ok; /* -1 unknown, 0 down, 1 up: outcome of the last call */
  void (*health_done)(gdx_adapter *);
  gdx_adapter *self;
} api_res;

static int valid_header(const char *h) {
  const char *colon = strchr(h, ':');
  if (colon == NULL || colon == h || strpbrk(h, "\r\n"))
    return 0;
  for (const char *p = h; p < colon; p++)
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_'))
      return 0;
  return 1;
}

static int api_open(gdx_adapter *a, const config_setting_t *s, char *err, size_t errlen) {
  api_res *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return GDX_ENOMEM;
  a->impl = r;
  r->self = a;
  r->last_ok = -1;
  const char *n = a->name;
  int rc = gdx_adapter_str(s, "base_url", r->base_url, sizeof(r->base_url), NULL, n, err, errlen);
  if (!rc && strncmp(r->base_url, "http://", 7) != 0 && strncmp(r->base_url, "https://", 8) != 0) {
    snprintf(err, errlen, "resources.%s.base_url: must start with http:// or https://", n);
    rc = GDX_ECONFIG;
  }
  size_t bl = strlen(r->base_url);
  while (!rc && bl > 0 && r->base_url[bl - 1] == '/')
    r->base_url[--bl] = '\0';
  if (!rc)
    rc = gdx_adapter_str(s, "health_path", r->health_path, sizeof(r->health_path), "", n, err,
                         errlen);
  if (!rc)
    rc = gdx_adapter_str(s, "ca_file", r->ca_file, sizeof(r->ca_file), "", n, err, errlen);
  char engine[16] = "";
  if (!rc)
    rc = gdx_adapter_str(s, "client", engine, sizeof(engine), "gdx", n, err, errlen);
  if (!rc && strcmp(engine, "gdx") != 0 && strcmp(engine, "curl") != 0) {
    snprintf(err, errlen, "resources.%s.client: \"gdx\" or \"curl\", not \"%s\"", n, engine);
    rc = GDX_ECONFIG;
  }
  r->native = strcmp(engine, "curl") != 0;
  int bad = 0;
  r->head_timeout_ms =
      gdx_adapter_int(s, "head_timeout_ms", 30000, 10, 3600000, &bad, err, errlen, n);
  if (!bad)
    r->idle_timeout_s = gdx_adapter_int(s, "idle_timeout_s", 60, 1, 3600, &bad, err, errlen, n);
  if (!bad)
    r->connect_timeout_ms =
        gdx_adapter_int(s, "connect_timeout_ms", 5000, 10, 600000, &bad, err, errlen, n);
  if (!rc && bad)
    rc = GDX_ECONFIG;
  config_setting_t *hs = config_setting_get_member(s, "headers");
  if (!rc && hs) {
    int count = config_setting_length(hs);
    if (!config_setting_is_aggregate(hs) || count > MAX_FIXED) {
      snprintf(err, errlen, "resources.%s.headers: a list of at most %d \"Name: value\" strings",
               n, MAX_FIXED);
      rc = GDX_ECONFIG;
    }
    for (int i = 0; !rc && i < count; i++) {
      const char *h = config_setting_get_string_elem(hs, i);
      if (h == NULL || !valid_header(h)) {
        snprintf(err, errlen, "resources.%s.headers[%d]: must be \"Name: value\"", n, i);
        rc = GDX_ECONFIG;
      } else {
        r->headers[r->nheaders++] = strdup(h);
      }
    }
  }
  char credfile[512];
  if (!rc)
    rc = gdx_adapter_str(s, "credentials_file", credfile, sizeof(credfile), "", n, err, errlen);
  if (!rc && credfile[0]) {
    char *secret = NULL, why[300];
    if (gdx_config_read_secret(credfile, &secret, why, sizeof(why)) != GDX_OK) {
      snprintf(err, errlen, "resources.%s.credentials_file: %s", n, why);
      rc = GDX_ECONFIG;
    } else if (!valid_header(secret)) {
      snprintf(err, errlen, "resources.%s.credentials_file: the file must hold one line "
                            "\"Name: value\"", n);
      rc = GDX_ECONFIG;
    } else {
      r->headers[r->nheaders++] = strdup(secret);
    }
    if (secret) {
      explicit_bzero(secret, strlen(secret));
      free(secret);
    }
  }
  return rc;
}

static void on_head(gdx_http_req *req, int status, const gdx_relay_result *res, void *data) {
  (void)status;
  (void)data;
  char v[32];
  snprintf(v, sizeof(v), "%llu", (unsigned long long)res->ms_head);
  gdx_http_add_header(req, "X-Gdx-Upstream-Ms", v);
}

static void on_finish(const gdx_relay_result *res, void *data) {
  api_res *r = data;
  if (strcmp(res->error_type, "upstream") == 0)
    r->last_ok = 0;
  else if (res->status > 0 && res->status < 600 && res->status != 499)
    r->last_ok = 1;
}

static void api_serve(gdx_adapter *a, gdx_http_req *req, const char *rest) {
  api_res *r = a->impl;
  const char *q = gdx_http_req_query(req);
  size_t n = strlen(r->base_url) + strlen(rest) + strlen(q) + 4;
  char *url = malloc(n);
  if (url == NULL) {
    gdx_relay_error(req, 503, "node", "busy", "out of memory");
    return;
  }
  snprintf(url, n, "%s/%s%s%s", r->base_url, rest, *q ? "?" : "", q);
  const char *hv[MAX_FIXED + 3];
  int nh = 0;
  for (int i = 0; i < r->nheaders; i++)
    hv[nh++] = r->headers[i];
  hv[nh] = NULL;
  /* the client cannot set what the node sets from its configuration */
  static const char *const drop[] = {"Authorization", NULL};
  gdx_relay_opts o = {
      .client = a->env->httpc,
      .url = url,
      .headers = hv,
      .drop_headers = drop,
      .ca_file = r->ca_file[0] ? r->ca_file : NULL,
      .connect_timeout_ms = r->connect_timeout_ms,
      .head_timeout_ms = r->head_timeout_ms,
      .idle_timeout_s = r->idle_timeout_s,
      .next_hop = "upstream",
      .native = r->native,
      .on_head = on_head,
      .on_finish = on_finish,
      .data = r,
  };
  if (gdx_relay_start(req, &o) != GDX_OK)
    gdx_relay_error(req, 502, "node", "relay_failed", "the call could not be started");
  free(url);
}

static void health_done(gdx_httpc_req *u, int status, long http_status, void *data) {
  api_res *r = data;
  gdx_adapter *a = r->self;
  if (status == GDX_OK && http_status > 0 && http_status < 500) {
    snprintf(a->health, sizeof(a->health), "up");
    snprintf(a->detail, sizeof(a->detail), "%s answered %ld", r->health_path, http_status);
  } else {
    snprintf(a->health, sizeof(a->health), "down");
    snprintf(a->detail, sizeof(a->detail), "%s: %s", r->health_path,
             status == GDX_OK ? "server error" : gdx_httpc_error(u));
  }
  void (*done)(gdx_adapter *) = r->health_done;
  r->health_done = NULL;
  if (done)
    done(a);
}

static void api_health(gdx_adapter *a, void (*done)(gdx_adapter *)) {
  api_res *r = a->impl;
  if (r->health_path[0] == '\0') {
    snprintf(a->health, sizeof(a->health), "%s",
             r->last_ok < 0 ? "unknown" : r->last_ok ? "up" : "down");
    snprintf(a->detail, sizeof(a->detail), "%s",
             r->last_ok < 0 ? "no health_path and no call yet" : "outcome of the last call");
    done(a);
    return;
  }
  if (r->health_done) /* a probe is still running: report what we know */
    return done(a);
  char url[800];
  snprintf(url, sizeof(url), "%s%s", r->base_url, r->health_path);
  const char *hv[MAX_FIXED + 1];
  for (int i = 0; i < r->nheaders; i++)
    hv[i] = r->headers[i];
  hv[r->nheaders] = NULL;
  gdx_httpc_opts o = {.url = url, .headers = hv, .on_done = health_done, .data = r,
                      .timeout_ms = 5000, .connect_timeout_ms = 2000,
                      .ca_file = r->ca_file[0] ? r->ca_file : NULL};
  r->health_done = done;
  if (gdx_httpc_request(a->env->httpc, &o, NULL) != GDX_OK) {
    r->health_done = NULL;
    snprintf(a->health, sizeof(a->health), "unknown");
    done(a);
  }
}

static void api_close(gdx_adapter *a) {
  api_res *r = a->impl;
  if (r == NULL)
    return;
  for (int i = 0; i < r->nheaders; i++) {
    explicit_bzero(r->headers[i], strlen(r->headers[i]));
    free(r->headers[i]);
  }
  free(r);
  a->impl = NULL;
}

const gdx_adapter_ops gdx_adapter_api = {
    .kind = "api", .open = api_open, .serve = api_serve, .health = api_health, .close = api_close};

