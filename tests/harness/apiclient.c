#include "apiclient.h"

#include <setjmp.h>
#include <stdarg.h>
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
#include <unistd.h>

#include "harness.h"

static int port;

long tb_call_raw(const char *method, const char *path, const char *token, const char *ctype,
                 const char *body, size_t blen, json_t **out) {
  CURL *e = curl_easy_init();
  char url[1024], auth[160], ct[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
  struct curl_slist *h = NULL;
  if (token && *token) {
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    h = curl_slist_append(h, auth);
  }
  if (ctype) {
    snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
    h = curl_slist_append(h, ct);
  }
  th_body b = {0};
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, th_collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)blen);
  }
  long code = 0;
  if (curl_easy_perform(e) == CURLE_OK)
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  if (out)
    *out = b.data ? json_loads(b.data, 0, NULL) : NULL;
  free(b.data);
  return code;
}

long tb_call(const char *method, const char *path, const char *token, const char *body,
             json_t **out) {
  return tb_call_raw(method, path, token, body ? "application/json" : NULL, body,
                     body ? strlen(body) : 0, out);
}

const char *tb_err_code(json_t *j) {
  return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

const char *tb_expect(long want, const char *method, const char *path, const char *token,
                      const char *body) {
  static char code[64];
  json_t *j = NULL;
  long st = tb_call(method, path, token, body, &j);
  snprintf(code, sizeof(code), "%s", tb_err_code(j) ? tb_err_code(j) : "");
  char msg[300] = "";
  const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
  snprintf(msg, sizeof(msg), "%s", m ? m : "");
  json_decref(j);
  if (st != want)
    fail_msg("%s %s -> %ld (%s: %s), expected %ld", method, path, st, code, msg, want);
  return code;
}

void tb_login(const char *user, const char *pw, char *token, size_t n) {
  char body[256];
  snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", user, pw);
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/auth/login", NULL, body, &j);
  if (st != 200)
    fail_msg("login %s -> %ld (%s)", user, st, tb_err_code(j) ? tb_err_code(j) : "");
  snprintf(token, n, "%s", json_string_value(json_object_get(j, "token")));
  json_decref(j);
}

void tb_change_pw(const char *token, const char *old, const char *nw) {
  char body[256];
  snprintf(body, sizeof(body), "{\"old_password\":\"%s\",\"new_password\":\"%s\"}", old, nw);
  tb_expect(200, "POST", "/api/v1/auth/password", token, body);
}

void tb_create_unit(const char *ops_token, const char *code, const char *name,
                    const char *roles) {
  char body[512], list[128] = "";
  char copy[96];
  snprintf(copy, sizeof(copy), "%s", roles);
  for (char *t = strtok(copy, ","); t; t = strtok(NULL, ",")) {
    size_t used = strlen(list);
    snprintf(list + used, sizeof(list) - used, "%s\"%s\"", used ? "," : "", t);
  }
  snprintf(body, sizeof(body), "{\"code\":\"%s\",\"name\":\"%s\",\"roles\":[%s]}", code, name,
           list);
  tb_expect(201, "POST", "/api/v1/units", ops_token, body);
}

void tb_make_user(const char *creator, const char *user, const char *role, const char *unit,
                  char *token, size_t n) {
  char body[512];
  snprintf(body, sizeof(body),
           "{\"username\":\"%s\",\"display_name\":\"测试 %s\",\"role\":\"%s\","
           "\"unit_code\":\"%s\",\"initial_password\":\"Start-2026-pw\"}",
           user, user, role, unit);
  tb_expect(201, "POST", "/api/v1/accounts", creator, body);
  char t[80];
  tb_login(user, "Start-2026-pw", t, sizeof(t));
  tb_change_pw(t, "Start-2026-pw", "Good-2026-pw!");
  snprintf(token, n, "%s", t);
}

/* 1 once the broker answers HTTP on its port; fails the test if it exited. */
static int broker_answers(tb_broker *b) {
  int st;
  if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
    b->pid = 0;
    fail_msg("the broker exited (status %d) before it answered on port %d; see %s",
             WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), b->port, b->logpath);
  }
  return tc_hello(b->port) != -1;
}

static int tb_spawn(tb_broker *b, const char *broker_bin, int append) {
  b->pid = fork();
  if (b->pid == 0) {
    int fd = open(b->logpath, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(broker_bin, "gdx-broker", "--config", b->conf, (char *)NULL);
    _exit(127);
  }
  TH_WAIT_UNTIL(broker_answers(b), 60000, "the broker to answer on port %d", b->port);
  return 0;
}

/* SIGTERM and wait, unless tb_kill9 has already ended it: its exit status. */
static int tb_end(tb_broker *b) {
  int st = 0;
  if (b->pid > 0) {
    kill(b->pid, SIGTERM);
    waitpid(b->pid, &st, 0);
  }
  b->pid = 0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void tb_kill9(tb_broker *b) {
  if (b->pid > 0) {
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
  }
  b->pid = 0;
}

int tb_restart(tb_broker *b, const char *broker_bin) {
  tb_end(b);
  port = b->port;
  return tb_spawn(b, broker_bin, 1);
}

int tb_start(tb_broker *b, const char *prefix, const char *broker_bin, char *ops_token,
             size_t n) {
  return tb_start_ex(b, prefix, broker_bin, "", ops_token, n);
}

int tb_start_ex(tb_broker *b, const char *prefix, const char *broker_bin, const char *extra,
                char *ops_token, size_t n) {
  gdx_db_options o;
  tdb_options(&o, prefix, b->dbname, sizeof(b->dbname));
  snprintf(b->dir, sizeof(b->dir), "/tmp/gdx-test-%s-%d", prefix, (int)getpid());
  mkdir(b->dir, 0700);
  snprintf(b->conf, sizeof(b->conf), "%s/broker.conf", b->dir);
  snprintf(b->logpath, sizeof(b->logpath), "%s/broker.log", b->dir);
  b->port = port = th_free_port();
  FILE *f = fopen(b->conf, "w");
  fprintf(f,
          "listen = { port = %d; };\n"
          "db = { socket = \"%s\"; user = \"root\"; name = \"%s\"; pool_size = 4; };\n"
          "auth = { argon2_memory_kib = 1024; argon2_iterations = 1; session_idle_s = 3600; };\n"
          "schema_dir = \"%s/schemas\";\nlog = { level = \"debug\"; };\n"
          "pki = { dir = \"%s/pki\"; };\n%s%s\n",
          b->port, tdb_socket(), b->dbname, getenv("GDX_SOURCE_DIR"), b->dir,
          strstr(extra, "nodes") ? "" : "nodes = { port = -1; };\n", extra);
  fclose(f);
  char cmd[1024];
  snprintf(cmd, sizeof(cmd),
           "echo 'Init-2026-pw!' | %s --config %s --init-admin ops.admin --unit-code %s "
           "--unit-name '运维单位' >%s/init.out 2>&1",
           broker_bin, b->conf, TB_OPS_UNIT, b->dir);
  if (system(cmd) != 0)
    return -1;
  if (tb_spawn(b, broker_bin, 0) != 0)
    return -1;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  char t[80];
  tb_login("ops.admin", "Init-2026-pw!", t, sizeof(t));
  tb_change_pw(t, "Init-2026-pw!", TB_OPS_PASSWORD);
  snprintf(ops_token, n, "%s", t);
  return 0;
}

int tb_stop(tb_broker *b) {
  int status = tb_end(b);
  char sql[256];
  snprintf(sql, sizeof(sql), "DROP DATABASE %s", b->dbname);
  tdb_exec(NULL, sql);
  /* GDX_TEST_KEEP=1 keeps the folder (logs, configuration) for a post-mortem. */
  snprintf(sql, sizeof(sql), "rm -rf %s", b->dir);
  if (getenv("GDX_TEST_KEEP") == NULL && system(sql) != 0)
    return -1;
  return status;
}
