/* The real gdx-broker binary against the fixture's mariadbd: it applies its
 * migrations, registers itself, serves /healthz and /metrics, reports the
 * database going away and coming back, refuses bad configuration files with
 * the file, line and key, never logs its database password, and shuts down
 * cleanly on SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char dir[128], dbname[64], user[64], conf[200], logpath[200], pwfile[200];
static const char password[] = "Pw-d0-not-LOG-me-7f3a";
static int port;

static pid_t spawn(const char *config, const char *out) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(GDX_BROKER_BIN, "gdx-broker", "--config", config, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static int wait_exit(pid_t pid, int timeout_ms) {
  th_deadline d = th_deadline_in(timeout_ms);
  int st;
  do
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  while (th_poll(&d));
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

static void write_text(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  chmod(path, mode);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  static char buf[1 << 16];
  size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
  if (f)
    fclose(f);
  buf[n] = '\0';
  return buf;
}

/* GET path: status, body into out. */
static int get(const char *path, char *out, size_t n) {
  int fd = tc_connect(port);
  if (fd < 0)
    return -1;
  char req[256];
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
  tc_sends(fd, req);
  tc_response r;
  int st = tc_read_response(fd, &r, 3000);
  if (out)
    snprintf(out, n, "%s", r.body ? r.body : "");
  tc_response_free(&r);
  close(fd);
  return st;
}

/* Polls /healthz until it answers `want`. */
static int wait_health(int want, char *body, size_t n) {
  th_deadline d = th_deadline_in(30000);
  int st = -1;
  do
    if ((st = get("/healthz", body, n)) == want)
      return st;
  while (th_poll(&d));
  return st;
}

static void write_config(const char *path, const char *extra) {
  char text[2048];
  snprintf(text, sizeof(text),
           "listen = { host = \"127.0.0.1\"; port = %d; };\n"
           "db = { socket = \"%s\"; user = \"%s\"; password_file = \"%s\"; name = \"%s\";\n"
           "       health_interval_ms = 200; pool_size = 2; };\n"
           "log = { level = \"debug\"; };\nnodes = { port = -1; };\npki = { dir = \"%s/pki\"; };\n%s",
           port, tdb_socket(), user, pwfile, dbname, dir, extra);
  write_text(path, text, 0644);
}

static void kill_sessions(void) {
  char sql[256], ids[4096];
  snprintf(sql, sizeof(sql),
           "SELECT GROUP_CONCAT(id) FROM information_schema.processlist WHERE user='%s'", user);
  tdb_scalar(NULL, sql, ids, sizeof(ids));
  for (char *id = strtok(ids, ","); id; id = strtok(NULL, ",")) {
    snprintf(sql, sizeof(sql), "KILL %s", id);
    tdb_exec(NULL, sql);
  }
}

static void serves_and_reports_the_database(void **state) {
  write_config(conf, "");
  pid_t pid = spawn(conf, logpath);
  char body[4096];
  assert_int_equal(wait_health(200, body, sizeof(body)), 200);
  assert_non_null(strstr(body, "\"status\":\"ok\""));
  assert_non_null(strstr(body, "\"db\":\"ok\""));

  /* migrations and the instance row are in the database */
  char v[256];
  tdb_scalar(dbname, "SELECT name FROM gdx_schema_migrations WHERE component='broker' AND version=1",
             v, sizeof(v));
  assert_string_equal(v, "001_init.sql");
  /* a health check after the start (every 200 ms) refreshes last_seen */
  tdb_wait_scalar(NULL, dbname, "SELECT COUNT(*) FROM broker_instance WHERE last_seen > started_at",
                  "1", 30, v, sizeof(v));
  assert_string_equal(v, "1");

  static char metrics[1 << 16];
  assert_int_equal(get("/metrics", metrics, sizeof(metrics)), 200);
  const char *series[] = {"gdx_http_connections_open ", "gdx_http_requests_total{status=\"200\"} ",
                          "gdx_http_request_duration_seconds_bucket{le=\"0.005\"} ",
                          "gdx_http_request_duration_seconds_count ", "gdx_db_up 1",
                          "gdx_db_pool_size 2", "gdx_build_info{component=\"broker\""};
  for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++)
    if (strstr(metrics, series[i]) == NULL)
      fail_msg("/metrics lacks %s", series[i]);

  /* the database goes away: locked account, sessions killed */
  char sql[256];
  snprintf(sql, sizeof(sql), "ALTER USER '%s'@'localhost' ACCOUNT LOCK", user);
  assert_int_equal(tdb_exec(NULL, sql), 0);
  kill_sessions();
  assert_int_equal(wait_health(503, body, sizeof(body)), 503);
  assert_non_null(strstr(body, "\"db\":\"down\""));
  assert_non_null(strstr(body, "\"db_error\":"));
  assert_int_equal(get("/metrics", metrics, sizeof(metrics)), 200);
  assert_non_null(strstr(metrics, "gdx_db_up 0"));

  /* and comes back */
  snprintf(sql, sizeof(sql), "ALTER USER '%s'@'localhost' ACCOUNT UNLOCK", user);
  assert_int_equal(tdb_exec(NULL, sql), 0);
  assert_int_equal(wait_health(200, body, sizeof(body)), 200);

  /* graceful stop */
  kill(pid, SIGTERM);
  assert_int_equal(wait_exit(pid, 15000), 0);
  char *log = slurp(logpath);
  assert_non_null(strstr(log, "database is unreachable"));
  assert_non_null(strstr(log, "database is reachable again"));
  assert_non_null(strstr(log, "INFO  broker stopped"));
  assert_null(strstr(log, password)); /* R-ACC-7: never a credential in a log */
}

static const struct {
  const char *extra; /* appended to a valid config (later keys override) */
  const char *expect;
} bad_configs[] = {
    {"http = { max_body_bytes = 5; };\n",
     ":7: http.max_body_bytes: must be an integer from 1024 to 1073741824 (got 5)"},
    {"http = { max_body_byte = 5000; };\n", ":7: http.max_body_byte: unknown key"},
    {"schema_dir = 5;\n", ":7: schema_dir: must be a string"},
    {"http = { access_log = 1; };\n", ":7: http.access_log: must be true or false"},
    {"tls = { port = 8443; };\n", "tls.cert and tls.key: required when tls.port is set"},
    {"listen = { port = 1; };\n", ":7: syntax error: duplicate setting name"},
    {"nonsense\n", "syntax error"},
};

static void bad_configuration_files(void **state) {
  char path[256], out[256];
  snprintf(path, sizeof(path), "%s/bad.conf", dir);
  snprintf(out, sizeof(out), "%s/bad.out", dir);
  for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
    write_config(path, bad_configs[i].extra);
    pid_t pid = spawn(path, out);
    int code = wait_exit(pid, 10000);
    char *msg = slurp(out);
    printf("%s", msg);
    if (code != 3)
      fail_msg("case %zu: exit %d, expected 3", i, code);
    if (strstr(msg, bad_configs[i].expect) == NULL || strstr(msg, "bad.conf") == NULL)
      fail_msg("case %zu: \"%s\" lacks \"%s\"", i, msg, bad_configs[i].expect);
  }
  /* a password file others can read is refused without showing it */
  write_config(path, "");
  chmod(pwfile, 0644);
  pid_t pid = spawn(path, out);
  int code = wait_exit(pid, 10000);
  chmod(pwfile, 0600);
  char *msg = slurp(out);
  assert_int_equal(code, 3);
  assert_non_null(strstr(msg, "chmod 600"));
  assert_null(strstr(msg, password));
}

static void wrong_password_fails_start(void **state) {
  char path[256], out[256], wrong[256];
  snprintf(path, sizeof(path), "%s/wrong.conf", dir);
  snprintf(out, sizeof(out), "%s/wrong.out", dir);
  snprintf(wrong, sizeof(wrong), "%s/wrong-pw", dir);
  write_text(wrong, "not-the-password\n", 0600);
  char text[1024];
  snprintf(text, sizeof(text),
           "listen = { port = %d; };\ndb = { socket = \"%s\"; user = \"%s\"; "
           "password_file = \"%s\"; name = \"%s\"; };\nnodes = { port = -1; };\n",
           port, tdb_socket(), user, wrong, dbname);
  write_text(path, text, 0644);
  pid_t pid = spawn(path, out);
  assert_int_equal(wait_exit(pid, 10000), 4);
  char *msg = slurp(out);
  assert_non_null(strstr(msg, "cannot connect to MariaDB"));
  assert_null(strstr(msg, "not-the-password"));
}

static int setup(void **state) {
  gdx_db_options o;
  tdb_options(&o, "gdx_test_broker", dbname, sizeof(dbname));
  snprintf(user, sizeof(user), "gdxb_%d", (int)getpid());
  snprintf(dir, sizeof(dir), "/tmp/gdx-test-broker-%d", (int)getpid());
  mkdir(dir, 0700);
  snprintf(conf, sizeof(conf), "%s/broker.conf", dir);
  snprintf(logpath, sizeof(logpath), "%s/broker.log", dir);
  snprintf(pwfile, sizeof(pwfile), "%s/db-password", dir);
  char text[128];
  snprintf(text, sizeof(text), "%s\n", password);
  write_text(pwfile, text, 0600);
  char sql[512];
  snprintf(sql, sizeof(sql),
           "DROP USER IF EXISTS '%s'@'localhost'; CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'; "
           "GRANT ALL ON %s.* TO '%s'@'localhost'",
           user, user, password, dbname, user);
  port = th_free_port();
  return tdb_exec(NULL, sql);
}

static int teardown(void **state) {
  char sql[256];
  snprintf(sql, sizeof(sql), "DROP USER IF EXISTS '%s'@'localhost'; DROP DATABASE %s", user, dbname);
  tdb_exec(NULL, sql);
  snprintf(sql, sizeof(sql), "rm -rf %s", dir);
  return system(sql);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(serves_and_reports_the_database),
      cmocka_unit_test(bad_configuration_files),
      cmocka_unit_test(wrong_password_fails_start),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
