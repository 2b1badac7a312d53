/* Test client of the broker's REST API: starts a real gdx-broker on the
 * fixture's MariaDB (a fresh database, the operations admin created with
 * --init-admin) and calls it over HTTP with libcurl. */
#ifndef GDX_TEST_APICLIENT_H
#define GDX_TEST_APICLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
  char dir[128], dbname[64], conf[256], logpath[256];
  int port;
  pid_t pid;
} tb_broker;

#define TB_OPS_UNIT "91350100M000100Y43"
#define TB_OPS_PASSWORD "Ops-2026-pw!"

/* Starts the broker (binary GDX_BROKER_BIN) with ops.admin, whose password
 * is already changed to TB_OPS_PASSWORD; leaves its token in ops_token. */
int tb_start(tb_broker *b, const char *prefix, const char *broker_bin, char *ops_token, size_t n);
/* The same with more configuration text (libconfig) appended; without a
 * `nodes` group the node listener is off. */
int tb_start_ex(tb_broker *b, const char *prefix, const char *broker_bin, const char *extra,
                char *ops_token, size_t n);
/* SIGTERM, wait (unless tb_kill9 ended it), start again with the same
 * configuration and database; returns once it answers. */
int tb_restart(tb_broker *b, const char *broker_bin);
/* kill -9 and reap: a crash, for the fault tests. */
void tb_kill9(tb_broker *b);
/* SIGTERM, wait, drop the database; returns the broker's exit status. */
int tb_stop(tb_broker *b);

/* Calls on the broker started last. out (may be NULL) gets the JSON. */
long tb_call_raw(const char *method, const char *path, const char *token, const char *ctype,
                 const char *body, size_t blen, json_t **out);
long tb_call(const char *method, const char *path, const char *token, const char *body,
             json_t **out);
const char *tb_err_code(json_t *j);
/* Fails the test unless the call answers `want`; returns the error code. */
const char *tb_expect(long want, const char *method, const char *path, const char *token,
                      const char *body);
void tb_login(const char *user, const char *pw, char *token, size_t n);
void tb_change_pw(const char *token, const char *old, const char *nw);
/* Registers a unit (as the operations admin); roles like "provider,consumer". */
void tb_create_unit(const char *ops_token, const char *code, const char *name, const char *roles);
/* Creates an account with `creator`, logs it in and changes its password to
 * "Good-2026-pw!". */
void tb_make_user(const char *creator, const char *user, const char *role, const char *unit,
                  char *token, size_t n);

#endif
