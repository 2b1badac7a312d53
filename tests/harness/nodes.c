#include "nodes.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static tb_broker *B;
static int nodes_port;
static const char *ops, *reviewer, *prov_admin, *node_bin;
static pid_t children[128];
static int nchildren;
char tn_extra_conf[2048];

void tn_init(tb_broker *b, int port, const char *nb, const char *o, const char *r,
             const char *p) {
  B = b;
  node_bin = nb;
  nodes_port = port;
  ops = o;
  reviewer = r;
  prov_admin = p;
}

pid_t tn_spawn(const char *log, char *const argv[]) {
  pid_t pid = fork();
  if (pid > 0 && nchildren < 128)
    children[nchildren++] = pid;
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

void tn_stop(pid_t pid) {
  if (pid <= 0)
    return;
  kill(pid, SIGTERM);
  int st;
  waitpid(pid, &st, 0);
}

void tn_reap_all(void) {
  for (int i = 0; i < nchildren; i++) /* still ours and not reaped: left by a failure */
    if (waitpid(children[i], NULL, WNOHANG) == 0) {
      kill(children[i], SIGKILL);
      waitpid(children[i], NULL, 0);
    }
  nchildren = 0;
}

json_t *tn_node_state(long long row) {
  char path[64];
  snprintf(path, sizeof(path), "/api/v1/nodes/%lld", row);
  json_t *j = NULL;
  assert_int_equal(tb_call("GET", path, ops, NULL, &j), 200);
  return j;
}

void tn_wait_state(long long row, const char *state) {
  for (int i = 0; i < 200; i++) {
    json_t *j = tn_node_state(row);
    int ok = strcmp(json_string_value(json_object_get(j, "state")), state) == 0;
    json_decref(j);
    if (ok)
      return;
    usleep(50000);
  }
  fail_msg("node %lld did not become %s", row, state);
}

void tn_node_log(const char *id, char *out) { snprintf(out, 256, "%s/%s.log", B->dir, id); }

pid_t tn_start_node(const char *admin, const char *unit, const char *id, const char *resources,
                    char *conf, char *state, long long *row) {
  char body[256];
  snprintf(body, sizeof(body), "{\"node_id\":\"%s\",\"description\":\"测试前置机\"}", id);
  json_t *j = NULL;
  assert_int_equal(tb_call("POST", "/api/v1/nodes", admin, body, &j), 201);
  *row = json_integer_value(json_object_get(j, "id"));
  char token[200];
  snprintf(token, sizeof(token), "%s", json_string_value(json_object_get(j, "enrollment_token")));
  json_decref(j);
  snprintf(state, 256, "%s/%s-state", B->dir, id);
  snprintf(conf, 256, "%s/%s.conf", B->dir, id);
  FILE *f = fopen(conf, "w");
  fprintf(f,
          "node = { unit = \"%s\"; id = \"%s\"; state_dir = \"%s\"; };\n"
          "broker = { url = \"http://127.0.0.1:%d\"; };\n"
          "listen = { port = 0; };\nheartbeat_interval_s = 1;\n"
          "log = { level = \"debug\"; };\n%s\nresources = (%s);\n",
          unit, id, state, B->port, tn_extra_conf, resources);
  fclose(f);
  char log[256], cmd[1200];
  tn_node_log(id, log);
  /* a token for another node is refused by the node before it trusts anything */
  snprintf(cmd, sizeof(cmd), "%s --config %s --enroll %s >>%s 2>&1", node_bin, conf, token,
           log);
  assert_int_equal(system(cmd), 0);
  struct stat st;
  char key[300];
  snprintf(key, sizeof(key), "%s/node.key", state);
  assert_int_equal(stat(key, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  /* the token is one-time */
  assert_int_not_equal(system(cmd), 0);
  char *const argv[] = {(char *)node_bin, "--config", conf, NULL};
  pid_t pid = tn_spawn(log, argv);
  tn_wait_state(*row, "online");
  return pid;
}

static const char *resource_health(json_t *node, const char *name, const char **detail) {
  json_t *res = json_object_get(node, "resources");
  for (size_t i = 0; i < json_array_size(res); i++) {
    json_t *r = json_array_get(res, i);
    if (strcmp(json_string_value(json_object_get(r, "name")), name) == 0) {
      *detail = json_string_value(json_object_get(r, "detail"));
      return json_string_value(json_object_get(r, "health"));
    }
  }
  return "absent";
}

void tn_wait_health(long long row, const char *name, const char *want, const char *in_detail) {
  for (int i = 0; i < 100; i++) {
    json_t *j = tn_node_state(row);
    const char *detail = "";
    const char *h = resource_health(j, name, &detail);
    int ok = strcmp(h, want) == 0 && strstr(detail ? detail : "", in_detail) != NULL;
    if (!ok && i == 99)
      fail_msg("resource %s: %s (%s), wanted %s with \"%s\"", name, h, detail, want, in_detail);
    json_decref(j);
    if (ok)
      return;
    usleep(100000);
  }
}

long long tn_authorize(const char *consumer, const char *code, const char *items,
                       const char *method, const char *quota, const char *approve_items) {
  char body[1024], until[16];
  time_t t = time(NULL) + 365 * 86400;
  strftime(until, sizeof(until), "%Y-%m-%d", gmtime(&t));
  snprintf(body, sizeof(body),
           "{\"resource_code\":\"%s\",\"purpose\":\"联合审批核验\",\"data_items\":[%s],"
           "\"method\":\"%s\",\"valid_until\":\"%s\"%s%s}",
           code, items, method, until, quota ? ",\"call_quota\":" : "", quota ? quota : "");
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/requests", consumer, body, &j);
  if (st != 201)
    fail_msg("request -> %ld %s: %s", st, tb_err_code(j),
             json_string_value(json_object_get(json_object_get(j, "error"), "message")));
  long long rid = json_integer_value(json_object_get(j, "id"));
  json_decref(j);
  char path[128];
  snprintf(path, sizeof(path), "/api/v1/requests/%lld/approve", rid);
  snprintf(body, sizeof(body), "{\"opinion\":\"同意\"%s%s%s}",
           approve_items ? ",\"data_items\":[" : "", approve_items ? approve_items : "",
           approve_items ? "]" : "");
  st = tb_call("POST", path, prov_admin, body, &j);
  if (st != 200)
    fail_msg("approve -> %ld %s", st, tb_err_code(j));
  json_decref(j);
  st = tb_call("GET", "/api/v1/authorizations", consumer, NULL, &j);
  json_t *items_arr = json_object_get(j, "items");
  long long id = 0;
  size_t i;
  json_t *a;
  json_array_foreach(items_arr, i, a) if (json_integer_value(json_object_get(a, "request_id")) ==
                                          rid) id = json_integer_value(json_object_get(a, "id"));
  json_decref(j);
  assert_true(id > 0);
  return id;
}

void tn_publish_table(const char *admin, const char *node, const char *target,
                      const char *items_json, char *code, size_t n) {
  char body[4096];
  snprintf(body, sizeof(body),
           "{\"name\":\"表 %s\",\"summary\":\"测试\",\"category\":\"101002\","
           "\"resource_type\":\"structured\",\"format\":\"database\",\"data_items\":[%s],"
           "\"sharing_type\":\"conditional\",\"sharing_condition\":\"仅用于审批\","
           "\"sharing_method\":\"table\",\"open_to_public\":false,\"update_cycle\":\"realtime\","
           "\"attachment\":{\"kind\":\"table\",\"node\":\"%s\",\"target\":\"%s\"}}",
           target, items_json, node, target);
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/catalog", admin, body, &j);
  if (st != 201)
    fail_msg("catalog create -> %ld %s", st, tb_err_code(j));
  snprintf(code, n, "%s", json_string_value(json_object_get(j, "resource_code")));
  json_decref(j);
  char path[128];
  snprintf(path, sizeof(path), "/api/v1/catalog/%s/submit", code);
  tb_expect(200, "POST", path, admin, NULL);
  snprintf(path, sizeof(path), "/api/v1/catalog/%s/review", code);
  tb_expect(200, "POST", path, reviewer, "{\"decision\":\"publish\",\"opinion\":\"同意\"}");
}

json_t *tn_curl_get(const char *crt, const char *key, const char *url, long *status) {
  char cmd[1500], out[300];
  snprintf(out, sizeof(out), "%s/curl-get-%d.json", B->dir, (int)getpid());
  snprintf(cmd, sizeof(cmd),
           "curl -gsk --cert %s --key %s -o %s -w '%%{http_code}' '%s' > %s.code", crt, key,
           out, url, out);
  assert_int_equal(system(cmd), 0);
  char codefile[320], code[8] = "";
  snprintf(codefile, sizeof(codefile), "%s.code", out);
  FILE *f = fopen(codefile, "r");
  assert_non_null(f);
  assert_non_null(fgets(code, sizeof(code), f));
  fclose(f);
  *status = atol(code);
  return json_load_file(out, 0, NULL);
}

json_t *tn_node_get(long long row, const char *path, long *status) {
  json_t *j = tn_node_state(row);
  char crt[300], key[300], url[800];
  snprintf(crt, sizeof(crt), "%s/pki/broker.crt", B->dir);
  snprintf(key, sizeof(key), "%s/pki/broker.key", B->dir);
  snprintf(url, sizeof(url), "%s%s", json_string_value(json_object_get(j, "address")), path);
  json_decref(j);
  return tn_curl_get(crt, key, url, status);
}

json_t *tn_broker_get_as(const char *state, const char *path, long *status) {
  char crt[300], key[300], url[800];
  snprintf(crt, sizeof(crt), "%s/node.crt", state);
  snprintf(key, sizeof(key), "%s/node.key", state);
  snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", nodes_port, path);
  return tn_curl_get(crt, key, url, status);
}

char *tn_dump(json_t *j) { return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY); }

double tn_metric(int admin_port, const char *prefix) {
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", admin_port);
  th_body body = {0};
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, th_collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
  double v = -1;
  if (curl_easy_perform(e) == CURLE_OK && body.data) {
    size_t n = strlen(prefix);
    for (char *line = body.data; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1
                                                                           : NULL)
      if (strncmp(line, prefix, n) == 0 && line[n] == ' ') {
        v = atof(line + n + 1);
        break;
      }
  }
  curl_easy_cleanup(e);
  free(body.data);
  return v;
}

int tn_wait_scalar(const char *sock, const char *db, const char *sql, const char *want,
                   double seconds, char *out, size_t n) {
  uint64_t end = th_now_ms() + (uint64_t)(seconds * 1000);
  do {
    out[0] = '\0';
    tdb_scalar_at(sock, db, sql, out, n);
    if (strcmp(out, want) == 0)
      return 1;
    usleep(100000);
  } while (th_now_ms() < end);
  return 0;
}

void tn_credential(const char *admin, long long auth, char *client, char *secret) {
  char body[64];
  snprintf(body, sizeof(body), "{\"authorization_id\":%lld}", auth);
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/credentials", admin, body, &j);
  if (st != 201)
    fail_msg("credential -> %ld %s", st, tb_err_code(j));
  snprintf(client, 40, "%s", json_string_value(json_object_get(j, "client_id")));
  snprintf(secret, 64, "%s", json_string_value(json_object_get(j, "client_secret")));
  json_decref(j);
}

void tn_token(const char *client, const char *secret, char *out, size_t n) {
  char body[256];
  snprintf(body, sizeof(body), "{\"client_id\":\"%s\",\"client_secret\":\"%s\"}", client,
           secret);
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/token", NULL, body, &j);
  if (st != 200)
    fail_msg("token -> %ld %s", st, tb_err_code(j) ? tb_err_code(j) : "");
  snprintf(out, n, "%s", json_string_value(json_object_get(j, "access_token")));
  json_decref(j);
}

void tn_make_units(const char *ops_token, char *rev, char *prov, char *cons, char *cons2) {
  tb_create_unit(ops_token, MGMT, "市大数据管理局", "management");
  tb_create_unit(ops_token, PROV, "市市场监督管理局", "provider,consumer");
  tb_create_unit(ops_token, CONS, "市公安局", "consumer");
  tb_create_unit(ops_token, CONS2, "市税务局", "consumer");
  tb_make_user(ops_token, "rev", "mgmt_reviewer", MGMT, rev, 80);
  tb_make_user(ops_token, "prov.admin", "unit_admin", PROV, prov, 80);
  tb_make_user(ops_token, "cons.admin", "unit_admin", CONS, cons, 80);
  tb_make_user(ops_token, "cons2.admin", "unit_admin", CONS2, cons2, 80);
}
