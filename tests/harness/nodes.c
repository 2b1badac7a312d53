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

static void make_units(tn_people *p) {
  tb_create_unit(p->ops, MGMT, "市大数据管理局", "management");
  tb_create_unit(p->ops, PROV, "市市场监督管理局", "provider,consumer");
  tb_create_unit(p->ops, CONS, "市公安局", "consumer");
  tb_create_unit(p->ops, CONS2, "市税务局", "consumer");
  tb_make_user(p->ops, "rev", "mgmt_reviewer", MGMT, p->reviewer, sizeof(p->reviewer));
  tb_make_user(p->ops, "prov.admin", "unit_admin", PROV, p->prov_admin, sizeof(p->prov_admin));
  tb_make_user(p->ops, "cons.admin", "unit_admin", CONS, p->cons_admin, sizeof(p->cons_admin));
  tb_make_user(p->ops, "cons2.admin", "unit_admin", CONS2, p->cons2_admin,
               sizeof(p->cons2_admin));
}

int tn_start_exchange(tb_broker *b, tn_people *p, const char *prefix, const char *broker_bin,
                      const char *nb, const char *extra) {
  B = b;
  node_bin = nb;
  nodes_port = th_free_port();
  ops = p->ops;
  reviewer = p->reviewer;
  prov_admin = p->prov_admin;
  char conf[2048];
  snprintf(conf, sizeof(conf), "nodes = { port = %d; offline_after_s = 3; };\n%s", nodes_port,
           extra);
  if (tb_start_ex(b, prefix, broker_bin, conf, p->ops, sizeof(p->ops)) != 0)
    return -1;
  make_units(p);
  return nodes_port;
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

void tn_kill9(pid_t pid) {
  if (pid <= 0)
    return;
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* 1 when child i has ended (reaped now or before). */
static int child_ended(int i) { return waitpid(children[i], NULL, WNOHANG) != 0; }

void tn_stop_all(void) {
  for (int i = 0; i < nchildren; i++) /* still ours and not reaped: left running */
    if (!child_ended(i))
      kill(children[i], SIGTERM);
  th_deadline d = th_deadline_in(30000);
  for (int i = 0; i < nchildren; i++)
    while (!child_ended(i) && th_poll(&d))
      ;
  for (int i = 0; i < nchildren; i++)
    if (!child_ended(i)) {
      kill(children[i], SIGKILL);
      waitpid(children[i], NULL, 0);
    }
  nchildren = 0;
}

int tn_stop_exchange(tb_broker *b) {
  tn_stop_all();
  return tb_stop(b);
}

json_t *tn_node_state(long long row) {
  char path[64];
  snprintf(path, sizeof(path), "/api/v1/nodes/%lld", row);
  json_t *j = NULL;
  assert_int_equal(tb_call("GET", path, ops, NULL, &j), 200);
  return j;
}

/* 1 when node row is in state want; the state it is in into now. */
static int node_in_state(long long row, const char *want, char *now, size_t n) {
  json_t *j = tn_node_state(row);
  snprintf(now, n, "%s", json_string_value(json_object_get(j, "state")));
  json_decref(j);
  return strcmp(now, want) == 0;
}

void tn_wait_state(long long row, const char *state) {
  char now[32] = "";
  TH_WAIT_UNTIL(node_in_state(row, state, now, sizeof(now)), 30000,
                "node %lld to become %s (it is %s)", row, state, now);
}

void tn_node_log(const char *id, char *out) { snprintf(out, 256, "%s/%s.log", B->dir, id); }

pid_t tn_restart_node(const char *conf, const char *id) {
  char log[256];
  tn_node_log(id, log);
  char *const argv[] = {(char *)node_bin, "--config", (char *)conf, NULL};
  return tn_spawn(log, argv);
}

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

/* 1 when the node reports resource name with health want and a detail
 * containing in_detail; what it reports into health (32 bytes) and detail
 * (n bytes). */
static int resource_in_health(long long row, const char *name, const char *want,
                              const char *in_detail, char health[32], char *detail, size_t n) {
  json_t *j = tn_node_state(row), *res = json_object_get(j, "resources"), *r;
  size_t i;
  snprintf(health, 32, "absent");
  detail[0] = '\0';
  json_array_foreach(res, i, r) {
    if (strcmp(json_string_value(json_object_get(r, "name")), name) != 0)
      continue;
    const char *d = json_string_value(json_object_get(r, "detail"));
    snprintf(health, 32, "%s", json_string_value(json_object_get(r, "health")));
    snprintf(detail, n, "%s", d ? d : "");
  }
  json_decref(j);
  return strcmp(health, want) == 0 && strstr(detail, in_detail) != NULL;
}

void tn_wait_health(long long row, const char *name, const char *want, const char *in_detail) {
  char health[32], detail[512];
  TH_WAIT_UNTIL(resource_in_health(row, name, want, in_detail, health, detail, sizeof(detail)),
                30000, "resource %s to be %s with \"%s\" (it is %s: %s)", name, want,
                in_detail, health, detail);
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

/* Creates the catalog entry described by body (JSON), submits it and has
 * the reviewer publish it; its code into code. */
static void publish(const char *admin, const char *body, char *code, size_t n) {
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
  publish(admin, body, code, n);
}

void tn_publish_api(const char *admin, const char *node, const char *target,
                    const char *items_json, const char *openapi_json, char *code, size_t n) {
  char body[8192];
  snprintf(body, sizeof(body),
           "{\"name\":\"企业信息接口 %s\",\"summary\":\"测试\",\"category\":\"101002\","
           "\"resource_type\":\"service\",\"format\":\"service_interface\",\"data_items\":[%s],"
           "\"sharing_type\":\"conditional\",\"sharing_condition\":\"仅用于审批\","
           "\"sharing_method\":\"api\",\"open_to_public\":false,\"update_cycle\":\"realtime\","
           "\"attachment\":{\"kind\":\"api\",\"node\":\"%s\",\"target\":\"%s\","
           "\"openapi\":\"%s\"}}",
           target, items_json, node, target, openapi_json);
  publish(admin, body, code, n);
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

int tn_cli(const char *cli_bin, const char *token, const char *env, const char *args, char *out,
           size_t n) {
  char dir[300], cmd[2000];
  snprintf(dir, sizeof(dir), "%s/cli", B->dir);
  snprintf(cmd, sizeof(cmd), "mkdir -p %s/gdx && printf '{\"broker\":\"http://127.0.0.1:%d\","
           "\"token\":\"%s\"}' > %s/gdx/session.json", dir, B->port, token, dir);
  assert_int_equal(system(cmd), 0);
  snprintf(cmd, sizeof(cmd), "cd %s && XDG_CONFIG_HOME=%s %s %s %s 2>>%s/cli.err", B->dir, dir,
           env, cli_bin, args, B->dir);
  return th_run(cmd, out, n);
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

