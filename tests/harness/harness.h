/* Test harness: a gdx HTTP server on its own thread and loop, blocking raw
 * socket clients, the private MariaDB of the ctest fixture, and small helpers.
 * Every integration test talks to real sockets and a real mariadbd.
 */
#ifndef GDX_TEST_HARNESS_H
#define GDX_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "db.h"
#include "http.h"
#include "router.h"

typedef struct {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wake;
  gdx_http_server *srv;
  gdx_router *router;
  int port;       /* first listener */
  int tls_port;   /* second listener, when TLS options were given */
  int stopped;    /* set by the shutdown callback */
  uv_sem_t ready;
  void (*on_loop)(void *); /* run on the server thread by ts_call */
  void *on_loop_arg;
  uv_sem_t called;
} test_server;

/* Starts a server with the test routes (see harness.c) on 127.0.0.1. */
void ts_start(test_server *ts, const gdx_http_limits *lim, const gdx_tls_options *tls);
/* Runs fn(arg) on the server thread and waits for it. */
void ts_call(test_server *ts, void (*fn)(void *), void *arg);
/* Graceful shutdown; waits for it to finish and joins the thread. */
void ts_stop(test_server *ts);
/* A copy of the server's stats, taken on its thread. */
void ts_stats(test_server *ts, gdx_http_stats *out);

/* Blocking clients. All fail the test on unexpected socket errors. */
int tc_connect(int port);
void tc_send(int fd, const void *data, size_t len);
void tc_sends(int fd, const char *s);
/* Reads until the peer closes or timeout_ms passes; returns bytes read. */
size_t tc_read_all(int fd, char *buf, size_t cap, int timeout_ms);
/* Reads one response: status (or -1 on close/timeout), headers in hdrs
 * (NUL-terminated), body per Content-Length or chunked into body. */
typedef struct {
  int status;
  char hdrs[8192];
  char *body;
  size_t body_len;
  int closed; /* the server closed the connection after it */
} tc_response;
int tc_read_response(int fd, tc_response *r, int timeout_ms);
void tc_response_free(tc_response *r);
/* Header value from tc_response (case-insensitive), copied into out. */
int tc_header(const tc_response *r, const char *name, char *out, size_t n);
/* 1 when the server closed the connection within timeout_ms. */
int tc_wait_closed(int fd, int timeout_ms);
/* One GET /hello on a fresh connection: the status. */
int tc_hello(int port);

/* The fixture's MariaDB (GDX_TEST_DB_ENV names its env file). Without it
 * the test fails (exit 1, saying so): a broken fixture must not pass as a
 * skip. Creates a fresh database named prefix_<pid>. */
void tdb_options(gdx_db_options *o, const char *prefix, char *dbname, size_t n);
/* Runs SQL as root on the fixture server (blocking); returns 0 or the
 * MariaDB error number. */
int tdb_exec(const char *db, const char *sql);
/* First column of the first row, or "" ; for checks. */
void tdb_scalar(const char *db, const char *sql, char *out, size_t n);
const char *tdb_socket(void);
/* The same on the server at socket sock (NULL: the fixture's). */
int tdb_exec_at(const char *sock, const char *db, const char *sql);
void tdb_scalar_at(const char *sock, const char *db, const char *sql, char *out, size_t n);
/* A connection of the test's own to the fixture's server (as root, on db),
 * for a transaction held open across other calls: tdb_exec connects anew
 * each time. tdb_query answers 0 or the MariaDB error number; tdb_conn_id
 * the connection's id (CONNECTION_ID()). */
struct st_mysql;
struct st_mysql *tdb_open(const char *db);
int tdb_query(struct st_mysql *my, const char *sql);
unsigned long tdb_conn_id(struct st_mysql *my);
void tdb_close(struct st_mysql *my);
/* Polls db (on the server at sock, NULL: the fixture's) with sql until it
 * answers want (up to seconds): 1, or 0 with the last answer in out. */
int tdb_wait_scalar(const char *sock, const char *db, const char *sql, const char *want,
                    double seconds, char *out, size_t n);

/* A growing buffer for libcurl's CURLOPT_WRITEFUNCTION (with WRITEDATA a
 * th_body); NUL-terminated; the caller frees data. */
typedef struct {
  char *data;
  size_t len, cap;
} th_body;
size_t th_collect(char *p, size_t size, size_t n, void *body);

/* SHA-256 hex of a buffer. */
void th_sha256_hex(const void *data, size_t len, char out[65]);
/* The byte at offset i of the test pattern served by /stream. */
static inline char th_pattern(uint64_t i) { return (char)('a' + (i * 7 + i / 65536) % 26); }
uint64_t th_now_ms(void);
/* A free TCP port on 127.0.0.1 (bound and released). */
int th_free_port(void);
/* Runs cmd with sh; its standard output (up to n - 1 bytes) into out,
 * NUL-terminated; its exit status, or -1 when it did not exit. */
int th_run(const char *cmd, char *out, size_t n);

/* Waiting on a condition instead of sleeping a fixed time: the condition is
 * looked at again and again, 1 ms apart at first and at most TH_POLL_MAX_MS
 * apart (or as long apart as one look takes, if that is longer), until it
 * holds or a deadline passes; then the test fails naming what it waited
 * for. Give generous deadlines (the sanitizer build on a loaded 2-core
 * machine is slow): a condition met early costs nothing. */
#define TH_POLL_MAX_MS 25
typedef struct {
  uint64_t start, end;
  uint64_t looked; /* when the last look began */
  unsigned pause_ms;
} th_deadline;
th_deadline th_deadline_in(int ms);
/* Pauses before the next look; 0, without pausing, once the deadline has
 * passed. For waits that answer instead of failing (see tdb_wait_scalar). */
int th_poll(th_deadline *d);
/* Fails the test: "waited N ms for <what>", or with stayed (a TH_STAYS
 * condition broke) "<what>: broke after N ms". */
void th_wait_failed(const th_deadline *d, int stayed, const char *what_fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* Waits until cond (an expression, evaluated again at each look) holds, for
 * up to deadline_ms; then fails with the message (a printf format and its
 * arguments, evaluated after the last look, so they can show what was seen):
 *   TH_WAIT_UNTIL(tc_hello(port) == 200, 30000, "the server on port %d", port); */
#define TH_WAIT_UNTIL(cond, deadline_ms, ...)                                                  \
  do {                                                                                         \
    th_deadline th_d_ = th_deadline_in(deadline_ms);                                           \
    while (!(cond))                                                                            \
      if (!th_poll(&th_d_))                                                                    \
        th_wait_failed(&th_d_, 0, __VA_ARGS__);                                                \
  } while (0)

/* A "nothing happens" check: cond must hold at every look for the whole of
 * ms (a bounded observation, not a wait for something); fails as soon as it
 * does not, with the message. */
#define TH_STAYS(cond, ms, ...)                                                                \
  do {                                                                                         \
    th_deadline th_d_ = th_deadline_in(ms);                                                    \
    do                                                                                         \
      if (!(cond))                                                                             \
        th_wait_failed(&th_d_, 1, __VA_ARGS__);                                                \
    while (th_poll(&th_d_));                                                                   \
  } while (0)

#endif
