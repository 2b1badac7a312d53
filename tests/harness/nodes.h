/* Front-end nodes for integration tests: real gdx-node processes enrolled
 * with one-time tokens on the broker started by tb_start_ex (apiclient.h),
 * and the requests and authorizations that connect units through them. */
#ifndef GDX_TEST_NODES_H
#define GDX_TEST_NODES_H

#include <jansson.h>
#include <sys/types.h>

#include "apiclient.h"

/* The units of the exchange tests: management, a provider, two consumers. */
#define PROV "91310115MA1H7GXY1E"
#define CONS "121000004000000010"
#define CONS2 "91440300MA5FXXXX0U"
#define MGMT "91110000MA01ABCD2Q"
/* The session tokens of their people: the operations admin, a catalog
 * reviewer (MGMT), and the admins prov.admin, cons.admin, cons2.admin. */
typedef struct {
  char ops[80], reviewer[80], prov_admin[80], cons_admin[80], cons2_admin[80];
} tn_people;

/* Starts the broker of an exchange test (tb_start_ex: database and folder
 * named after prefix) with its node listener on a free port - a node is
 * offline 3 s after its last heartbeat - and the settings in extra;
 * registers the four units and their people into p, and has tn_* start
 * nodes from node_bin. b and p must live as long as the tests. Returns the
 * node listener's port, or -1. */
int tn_start_exchange(tb_broker *b, tn_people *p, const char *prefix, const char *broker_bin,
                      const char *node_bin, const char *extra);
/* Ends every process tn_spawn started that is still running (SIGTERM, then
 * SIGKILL what has not stopped after 30 s). */
void tn_stop_all(void);
/* tn_stop_all, then the broker: tb_stop's answer. */
int tn_stop_exchange(tb_broker *b);

/* Forks argv[0] with stdout and stderr appended to log; remembered so
 * tn_stop_exchange can stop what a test left running. */
pid_t tn_spawn(const char *log, char *const argv[]);
void tn_stop(pid_t pid);  /* SIGTERM and wait */
void tn_kill9(pid_t pid); /* kill -9 and reap: a crash, for the fault tests */

/* Top-level configuration added to the next node tn_start_node writes. */
extern char tn_extra_conf[2048];
/* Registers node `id` of `unit` (its admin's token), enrolls gdx-node with
 * the token, starts it and waits until it is online. conf and state get
 * the config file and state folder (256 bytes each). */
pid_t tn_start_node(const char *admin, const char *unit, const char *id, const char *resources,
                    char *conf, char *state, long long *row);
/* Starts node `id` again with its configuration file (after tn_stop or
 * tn_kill9), without waiting for it. */
pid_t tn_restart_node(const char *conf, const char *id);
/* The node's log file path (256 bytes). */
void tn_node_log(const char *id, char *out);
json_t *tn_node_state(long long row);
void tn_wait_state(long long row, const char *state);
/* Waits until the node reports resource `name` with health `want` and a
 * detail containing in_detail. */
void tn_wait_health(long long row, const char *name, const char *want, const char *in_detail);

/* consumer requests (method, optional quota), the provider approves
 * (approve_items narrows); the authorization id. */
long long tn_authorize(const char *consumer, const char *code, const char *items,
                       const char *method, const char *quota, const char *approve_items);
/* An application credential for authorization auth (client 40 bytes,
 * secret 64), and an access token for it. */
void tn_credential(const char *admin, long long auth, char *client, char *secret);
void tn_token(const char *client, const char *secret, char *out, size_t n);
/* Creates and publishes a table entry for resource `target` on node
 * `node` with the given data items (JSON objects); its code into code. */
void tn_publish_table(const char *prov_admin, const char *node, const char *target,
                      const char *items_json, char *code, size_t n);
/* The same for an API entry, with its OpenAPI text (escaped for a JSON
 * string). */
void tn_publish_api(const char *prov_admin, const char *node, const char *target,
                    const char *items_json, const char *openapi_json, char *code, size_t n);

/* Runs the gdx command cli_bin with the session of token on the broker
 * (its own configuration folder), more environment in env ("" or
 * "NAME=value ...") and args, from the broker's folder; its standard output
 * into out (n bytes), its standard error appended to <folder>/cli.err. The
 * exit status. */
int tn_cli(const char *cli_bin, const char *token, const char *env, const char *args, char *out,
           size_t n);

/* GET with a client certificate: the JSON answer or NULL, and the status. */
json_t *tn_curl_get(const char *crt, const char *key, const char *url, long *status);
/* GET from a node as the broker (its certificate). */
json_t *tn_node_get(long long row, const char *path, long *status);
/* GET on the broker's node listener with a node's certificate. */
json_t *tn_broker_get_as(const char *state, const char *path, long *status);
char *tn_dump(json_t *j);
/* The value of a Prometheus sample line starting with `prefix` in the
 * node's /metrics (admin listener on admin_port); -1 if absent. */
double tn_metric(int admin_port, const char *prefix);

#endif
