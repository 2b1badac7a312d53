/* The CLI's side of the broker: the session file, calls to the REST API
 * (/api/v1) and requests to /svc with an access token.
 *
 * Every function that reports a failure prints it to standard error and
 * returns the exit status (cli.h); a json_t * it hands out belongs to the
 * caller (json_decref).
 */
#ifndef GDX_CLI_CLIENT_H
#define GDX_CLI_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>

/* The session ($XDG_CONFIG_HOME/gdx/session.json): NULL when there is none. */
json_t *cli_session_load(void);
/* Writes the session, mode 0600; 0 or -1 as json_dump_file. */
int cli_session_save(json_t *s);
/* The broker's base URL: --broker, else $GDX_BROKER, else the session's. The
 * text lives as long as cli_opts and s. */
const char *cli_broker_url(json_t *s);

/* The exit status of a refusal with this HTTP status. */
int cli_exit_for(long status);

/* Calls the API (taking over `body`); on success returns CLI_EX_OK and *out;
 * otherwise prints the error and returns the exit status. */
int cli_call(const char *method, const char *path, json_t *body, json_t **out);
/* "show ID" -> GET base/ID; any other verb -> POST base/ID/verb (no body);
 * the answer printed with cols. */
int cli_item_verb(const char *base, const char *verb, const char *id, const char *const *cols,
                  size_t ncols);

/* An access token for application credential `client` into out: the
 * secret from $GDX_CLIENT_SECRET or standard input, exchanged at
 * POST /api/v1/token. */
int cli_access_token(const char *client, char *out, size_t n);

typedef struct {
  char *data;
  size_t len, cap;
} cli_buf;

size_t cli_collect(char *p, size_t s, size_t n, void *ud);

/* What the broker says about a /svc request besides its body. */
typedef struct {
  char request_id[64];
  char error_type[16]; /* the hop that failed (X-Gdx-Error-Type) */
} cli_call_meta;

/* One request to /svc (headers h, the bearer token among them): the body
 * into b, the request id and failing hop into meta. With decode, curl asks
 * for compressed answers and inflates them (table reads; API calls pass
 * what the caller asked for, since the broker may filter their bodies). */
CURLcode cli_svc_perform(const char *method, const char *url, struct curl_slist *h,
                         const char *body, size_t blen, int decode, cli_buf *b,
                         cli_call_meta *meta, long *status);
/* GET url with a bearer token: the JSON, or NULL after printing why (*ex
 * the exit status). */
json_t *cli_svc_get(const char *url, const char *token, int *ex);

#endif
