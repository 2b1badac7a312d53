/* The CLI's side of the broker: the session file, calls to the REST API
 * (/api/v1) and requests to /svc with an access token.
 *
 * Every answer is held whole in a gdx_buf with a cap named below, so that
 * a broken or hostile broker meets a clear error and not the OOM killer.
 * Functions that fail print why to standard error and return the exit
 * status (cli.h); a json_t * they hand out belongs to the caller
 * (json_decref).
 */
#ifndef GDX_CLI_CLIENT_H
#define GDX_CLI_CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>

#include "buf.h"

/* Caps on what the CLI holds in memory. */
#define CLI_CAP_API_ANSWER (64u << 20)  /* an answer of the REST API (a long audit list) */
#define CLI_CAP_REFUSAL (64u << 10)     /* the broker's JSON error when it refuses (4xx, 5xx) */
#define CLI_CAP_CALL_ANSWER (64u << 20) /* an API resource's answer to gdx call, any status */
#define CLI_CAP_CALL_DATA (1u << 30)    /* gdx call --data-file: the most a broker accepts
                                           (http.max_body_bytes is at most 1 GiB) */
#define CLI_CAP_FETCH_PAGE (64u << 20)  /* one page of a table's snapshot (up to 10,000 rows),
                                           as a consumer node's batch */
#define CLI_CAP_FILE_LIST (16u << 20)   /* one page of a folder's listing (up to 1,000 files) */
#define CLI_CAP_FILE_CHUNKS (4u << 20)  /* a file's size and chunk hashes */

/* A cap as the text of an error message: "64 MiB". */
void cli_size_text(size_t n, char *out, size_t outlen);

/* The session ($XDG_CONFIG_HOME/gdx/session.json): NULL when there is none. */
json_t *cli_session_load(void);
/* Writes the session, mode 0600; 0 or -1 as json_dump_file. */
int cli_session_save(json_t *s);
/* The broker's base URL: --broker, else $GDX_BROKER, else the session's. The
 * text lives as long as the process's environment and s. */
const char *cli_broker_url(json_t *s);

/* The exit status of a refusal with this HTTP status. */
int cli_exit_for(long status);
/* Prints "gdx: out of memory"; returns CLI_EX_REFUSED. */
int cli_out_of_memory(void);

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

/* Appends a header line to *h: GDX_OK, or GDX_ENOMEM with *h unchanged
 * (the caller still frees it with curl_slist_free_all). */
int cli_header_add(struct curl_slist **h, const char *line);
/* Appends "Authorization: Bearer <token>": GDX_OK, GDX_ENOMEM, or
 * GDX_ETOOBIG for a token longer than any gdx issues. */
int cli_header_bearer(struct curl_slist **h, const char *token);
/* Prints why a header could not be added (lead first); returns the exit
 * status. */
int cli_header_failed(int err, const char *lead);

/* One HTTP request. */
typedef struct {
  const char *method;
  const char *url;
  struct curl_slist *headers;
  const char *body; /* NULL: none */
  size_t body_len;
  long timeout_s;
  int decode; /* ask for compressed answers and inflate them (table reads; an API
                 call passes what its caller asked for, since the broker may filter
                 those bodies) */
} cli_request;

/* An answer's body as it arrives. */
typedef struct {
  gdx_buf buf;        /* its cap is the cap of a successful answer */
  size_t refusal_cap; /* the cap when the status is 400 or more; 0: the same */
  long status;        /* the HTTP status (0 when none came) */
  int err;            /* GDX_ETOOBIG or GDX_ENOMEM: the transfer was stopped */
  int status_seen;    /* the cap for the status was chosen */
  CURL *easy;         /* the transfer, while it runs */
} cli_body;

/* Starts an empty body with these caps (refusal_cap 0: cap for any status). */
void cli_body_init(cli_body *b, size_t cap, size_t refusal_cap);
void cli_body_free(cli_body *b);
/* Prints why the body was cut short ("gdx: <what> is larger than 64 MiB"),
 * lead first (a "\n" ends a progress line); returns the exit status. */
int cli_body_failed(const cli_body *b, const char *what, const char *lead);

/* What a /svc answer says besides its body. */
typedef struct {
  char request_id[64];
  char error_type[16];              /* the hop that failed (X-Gdx-Error-Type) */
  char curl_error[CURL_ERROR_SIZE]; /* curl's words when the transfer failed */
} cli_answer_meta;

/* Performs rq: the body into b (b->status set), the headers gdx reads into
 * meta. CURLE_WRITE_ERROR with b->err set is a body over its cap (or out
 * of memory): see cli_body_failed. */
CURLcode cli_perform(const cli_request *rq, cli_body *b, cli_answer_meta *meta);
/* GET url with a bearer token, the answer capped at cap: the JSON object,
 * or NULL after printing why (*ex the exit status). */
json_t *cli_svc_get(const char *url, const char *token, size_t cap, int *ex);

#endif
