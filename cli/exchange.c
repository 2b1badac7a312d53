/* gdx — the command-line client of the gdx broker's REST API.
 *
 *   gdx login USER            gdx units list|show|create|disable|enable
 *   gdx logout | whoami       gdx users list|show|create|disable|enable|reset-password
 *   gdx passwd                gdx audit list|verify
 *   gdx catalog search|show|history|create|update|submit|review|withdraw
 *   gdx requests apply|list|show|approve|reject|cancel
 *   gdx authorizations list|revoke      gdx demands create|list|decide|fulfil
 *   gdx nodes …  gdx credentials …      gdx call RES PATH   gdx fetch RES
 *   gdx subscriptions list|report|reconcile   gdx reconciliations   gdx alarms list|ack
 *
 * The session (broker address and token) is kept in
 * $XDG_CONFIG_HOME/gdx/session.json (or ~/.config/gdx/), mode 0600. Output is
 * a human table by default and the API's JSON with --json. Exit status:
 * 0 ok, 1 refused by the broker, 2 usage, 3 broker unreachable, 4 not logged
 * in, 5 forbidden, 6 not found, 7 conflict.
 */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <locale.h>
#include <wchar.h>

enum { EX_OK = 0, EX_REFUSED = 1, EX_USAGE = 2, EX_UNREACHABLE = 3, EX_AUTH = 4,
       EX_FORBIDDEN = 5, EX_NOTFOUND = 6, EX_CONFLICT = 7 };

static int opt_json;
static const char *opt_broker;
static int opt_stdin; /* read passwords from standard input, one per line */

/* ------------------------------------------------------------------ */
/* session file                                                        */

static void session_path(char *out, size_t n, int mkdirs) {
  const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
  char dir[1024];
  if (xdg && *xdg)
    snprintf(dir, sizeof(dir), "%s/gdx", xdg);
  else
    snprintf(dir, sizeof(dir), "%s/.config/gdx", home ? home : ".");
  if (mkdirs) { /* mkdir -p, private */
    for (char *p = dir + 1; *p; p++) {
      if (*p == '/') {
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
      }
    }
    mkdir(dir, 0700);
  }
  snprintf(out, n, "%s/session.json", dir);
}

static json_t *session_load(void) {
  char p[1100];
  session_path(p, sizeof(p), 0);
  return json_load_file(p, 0, NULL);
}

static int session_save(json_t *s) {
  char p[1100];
  session_path(p, sizeof(p), 1);
  mode_t old = umask(077);
  int rc = json_dump_file(s, p, JSON_INDENT(2));
  umask(old);
  chmod(p, 0600);
  return rc;
}

static const char *broker_url(json_t *s) {
  if (opt_broker)
    return opt_broker;
  const char *env = getenv("GDX_BROKER");
  if (env && *env)
    return env;
  const char *saved = json_string_value(json_object_get(s, "broker"));
  return saved ? saved : "http://127.0.0.1:8080";
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

typedef struct {
  char *data;
  size_t len, cap;
} buf;

static size_t collect(char *p, size_t s, size_t n, void *ud) {
  buf *b = ud;
  if (b->len + s * n + 1 > b->cap) {
    b->cap = (b->len + s * n + 1) * 2;
    b->data = realloc(b->data, b->cap);
  }
  memcpy(b->data + b->len, p, s * n);
  b->len += s * n;
  b->data[b->len] = '\0';
  return s * n;
}

/* The exit status of a refusal with this HTTP status. */
static int exit_for(long status) {
  switch (status) {
  case 401: return EX_AUTH;
  case 403: return EX_FORBIDDEN;
  case 404: return EX_NOTFOUND;
  case 409: return EX_CONFLICT;
  default: return EX_REFUSED;
  }
}

/* Calls the API (taking over `body`); on success returns EX_OK and *out;
 * otherwise prints the error and returns the exit status. */
static int call(const char *method, const char *path, json_t *body, json_t **out) {
  json_t *s = session_load();
  const char *base = broker_url(s);
  const char *token = json_string_value(json_object_get(s, "token"));
  char url[2048], auth[256];
  snprintf(url, sizeof(url), "%s%s", base, path);
  CURL *e = curl_easy_init();
  struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
  if (token) {
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    h = curl_slist_append(h, auth);
  }
  char *payload = NULL;
  if (body) {
    payload = json_dumps(body, JSON_COMPACT);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload);
  }
  buf b = {0};
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
  CURLcode rc = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  if (payload)
    explicit_bzero(payload, strlen(payload)); /* may hold a password */
  free(payload);
  json_decref(body);
  json_decref(s);
  if (rc != CURLE_OK) {
    fprintf(stderr, "gdx: cannot reach the broker at %s: %s\n", base,
            errbuf[0] ? errbuf : curl_easy_strerror(rc));
    free(b.data);
    return EX_UNREACHABLE;
  }
  json_t *j = b.data ? json_loads(b.data, 0, NULL) : NULL;
  free(b.data);
  if (status >= 200 && status < 300) {
    *out = j ? j : json_object();
    return EX_OK;
  }
  json_t *err = json_object_get(j, "error");
  const char *code = json_string_value(json_object_get(err, "code"));
  const char *msg = json_string_value(json_object_get(err, "message"));
  const char *rid = json_string_value(json_object_get(err, "request_id"));
  if (opt_json && j)
    json_dumpf(j, stderr, JSON_INDENT(2)), fputc('\n', stderr);
  else
    fprintf(stderr, "gdx: %s (%s, HTTP %ld%s%s)\n", msg ? msg : "the broker refused the request",
            code ? code : "?", status, rid ? ", request " : "", rid ? rid : "");
  if (code && status == 401)
    fprintf(stderr, "gdx: log in with: gdx login USER\n");
  if (code && strcmp(code, "password_change_required") == 0)
    fprintf(stderr, "gdx: change it with: gdx passwd\n");
  json_decref(j);
  return exit_for(status);
}

/* ------------------------------------------------------------------ */
/* output                                                              */

/* Display width of UTF-8 text (CJK counts 2). */
static int text_width(const char *s) {
  mbstate_t st;
  memset(&st, 0, sizeof(st));
  int w = 0;
  size_t n = strlen(s);
  while (n > 0) {
    wchar_t wc;
    size_t k = mbrtowc(&wc, s, n, &st);
    if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
      w++, s++, n--;
      memset(&st, 0, sizeof(st));
      continue;
    }
    int cw = wcwidth(wc);
    w += cw > 0 ? cw : 1;
    s += k;
    n -= k;
  }
  return w;
}

static void cell_text(json_t *v, char *out, size_t n) {
  if (json_is_string(v))
    snprintf(out, n, "%s", json_string_value(v));
  else if (json_is_true(v))
    snprintf(out, n, "yes");
  else if (json_is_false(v))
    snprintf(out, n, "no");
  else if (json_is_integer(v))
    snprintf(out, n, "%lld", (long long)json_integer_value(v));
  else if (json_is_array(v)) {
    out[0] = '\0';
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      size_t used = strlen(out);
      snprintf(out + used, n - used, "%s%s", i ? "," : "",
               json_is_string(e) ? json_string_value(e) : "…");
    }
  } else if (json_is_null(v) || v == NULL)
    snprintf(out, n, "-");
  else {
    char *d = json_dumps(v, JSON_COMPACT);
    snprintf(out, n, "%s", d ? d : "");
    free(d);
  }
  for (char *p = out; *p; p++)
    if ((unsigned char)*p < 0x20)
      *p = ' ';
}

/* Prints items as a table with the given columns ("key:Heading"). */
static void table(json_t *items, const char *const *cols, size_t ncols) {
  size_t nrows = json_array_size(items);
  int width[16] = {0};
  char head[16][64];
  for (size_t c = 0; c < ncols; c++) {
    const char *colon = strchr(cols[c], ':');
    snprintf(head[c], sizeof(head[c]), "%s", colon + 1);
    width[c] = text_width(head[c]);
  }
  char cell[512];
  for (size_t r = 0; r < nrows; r++)
    for (size_t c = 0; c < ncols; c++) {
      char key[64];
      snprintf(key, sizeof(key), "%.*s", (int)(strchr(cols[c], ':') - cols[c]), cols[c]);
      cell_text(json_object_get(json_array_get(items, r), key), cell, sizeof(cell));
      int w = text_width(cell);
      if (w > width[c])
        width[c] = w > 60 ? 60 : w;
    }
  for (size_t c = 0; c < ncols; c++)
    printf("%s%-*s", c ? "  " : "", width[c], head[c]);
  printf("\n");
  for (size_t r = 0; r < nrows; r++) {
    for (size_t c = 0; c < ncols; c++) {
      char key[64];
      snprintf(key, sizeof(key), "%.*s", (int)(strchr(cols[c], ':') - cols[c]), cols[c]);
      cell_text(json_object_get(json_array_get(items, r), key), cell, sizeof(cell));
      int pad = width[c] - text_width(cell);
      printf("%s%s%*s", c ? "  " : "", cell, c + 1 < ncols && pad > 0 ? pad : 0, "");
    }
    printf("\n");
  }
  printf("(%zu)\n", nrows);
}

static void fields(json_t *o, const char *const *cols, size_t ncols) {
  char cell[1024];
  for (size_t c = 0; c < ncols; c++) {
    const char *colon = strchr(cols[c], ':');
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)(colon - cols[c]), cols[c]);
    cell_text(json_object_get(o, key), cell, sizeof(cell));
    printf("%-22s %s\n", colon + 1, cell);
  }
}

static int emit(json_t *j, const char *const *cols, size_t ncols, int is_list) {
  if (opt_json) {
    json_dumpf(j, stdout, JSON_INDENT(2));
    printf("\n");
  } else if (is_list) {
    table(json_object_get(j, "items"), cols, ncols);
  } else {
    fields(j, cols, ncols);
  }
  json_decref(j);
  return EX_OK;
}

/* ------------------------------------------------------------------ */
/* passwords                                                           */

static int read_secret(const char *prompt, char *out, size_t n) {
  int tty = !opt_stdin && isatty(0);
  struct termios old, quiet;
  if (tty) {
    fprintf(stderr, "%s", prompt);
    tcgetattr(0, &old);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(0, TCSAFLUSH, &quiet);
  }
  char *got = fgets(out, (int)n, stdin);
  if (tty) {
    tcsetattr(0, TCSAFLUSH, &old);
    fprintf(stderr, "\n");
  }
  if (got == NULL)
    return -1;
  out[strcspn(out, "\r\n")] = '\0';
  return 0;
}

/* ------------------------------------------------------------------ */
/* commands                                                            */

#define NCOLS(a) (sizeof(a) / sizeof(a[0]))
static const char *const unit_cols[] = {"code:CODE", "name:NAME", "roles:ROLES", "status:STATUS",
                                        "created_at:CREATED"};
static const char *const user_cols[] = {"username:USER", "display_name:NAME", "role:ROLE",
                                        "unit_code:UNIT", "status:STATUS", "locked:LOCKED",
                                        "must_change_password:MUST CHANGE PW"};
static const char *const audit_cols[] = {"id:ID", "ts:TIME", "actor:ACTOR", "unit_code:UNIT",
                                         "action:ACTION", "object:OBJECT", "result:RESULT",
                                         "source:SOURCE"};

static json_t *csv_array(const char *csv);

/* "show ID" -> GET base/ID; any other verb -> POST base/ID/verb (no body). */
static int item_verb(const char *base, const char *verb, const char *id, const char *const *cols,
                     size_t ncols) {
  char path[512];
  json_t *out;
  if (strcmp(verb, "show") == 0)
    snprintf(path, sizeof(path), "%s/%s", base, id);
  else
    snprintf(path, sizeof(path), "%s/%s/%s", base, id, verb);
  int rc = call(strcmp(verb, "show") == 0 ? "GET" : "POST", path, NULL, &out);
  return rc ? rc : emit(out, cols, ncols, 0);
}

static int usage_error(const char *msg, const char *help) {
  fprintf(stderr, "gdx: %s\n\n%s", msg, help);
  return EX_USAGE;
}

static const char help_login[] =
    "Usage: gdx login [--broker URL] [--password-stdin] USER\n"
    "Logs in and keeps the session token in ~/.config/gdx/session.json (mode 0600).\n";

static int cmd_login(int argc, char **argv) {
  if (argc != 1)
    return usage_error("login takes one user name", help_login);
  char pw[512];
  if (read_secret("password: ", pw, sizeof(pw)))
    return usage_error("no password given", help_login);
  json_t *s = session_load();
  if (s == NULL)
    s = json_object();
  json_object_set_new(s, "broker", json_string(broker_url(s)));
  json_object_del(s, "token");
  session_save(s);
  json_t *out;
  int rc = call("POST", "/api/v1/auth/login", json_pack("{s:s, s:s}", "username", argv[0],
                                                        "password", pw), &out);
  explicit_bzero(pw, sizeof(pw));
  if (rc) {
    json_decref(s);
    return rc;
  }
  json_object_set(s, "token", json_object_get(out, "token"));
  json_object_set_new(s, "username", json_string(argv[0]));
  session_save(s);
  json_decref(s);
  if (opt_json) {
    json_object_del(out, "token");
    return emit(out, NULL, 0, 0);
  }
  printf("logged in as %s (%s, unit %s)\n", argv[0],
         json_string_value(json_object_get(out, "role")),
         json_string_value(json_object_get(out, "unit_code")));
  if (json_is_true(json_object_get(out, "must_change_password")))
    printf("the initial password must be changed before anything else: gdx passwd\n");
  if (json_is_true(json_object_get(out, "password_expired")))
    printf("the password has expired: gdx passwd\n");
  json_decref(out);
  return EX_OK;
}

static int cmd_logout(int argc, char **argv) {
  json_t *out;
  int rc = call("POST", "/api/v1/auth/logout", NULL, &out);
  json_t *s = session_load();
  if (s) {
    json_object_del(s, "token");
    session_save(s);
    json_decref(s);
  }
  if (rc == EX_OK) {
    json_decref(out);
    printf("logged out\n");
  }
  return rc == EX_AUTH ? EX_OK : rc;
}

static int cmd_whoami(int argc, char **argv) {
  json_t *out;
  int rc = call("GET", "/api/v1/me", NULL, &out);
  static const char *const cols[] = {"username:user",           "display_name:name",
                                     "role:role",               "unit_code:unit",
                                     "unit_name:unit name",     "unit_roles:unit roles",
                                     "must_change_password:must change password",
                                     "password_changed_at:password changed"};
  return rc ? rc : emit(out, cols, NCOLS(cols), 0);
}

static int cmd_passwd(int argc, char **argv) {
  char old[512], nw[512], again[512];
  if (read_secret("current password: ", old, sizeof(old)) ||
      read_secret("new password: ", nw, sizeof(nw)))
    return usage_error("passwords missing", "Usage: gdx passwd [--password-stdin]\n");
  if (!opt_stdin && isatty(0)) {
    if (read_secret("new password again: ", again, sizeof(again)) || strcmp(nw, again) != 0) {
      fprintf(stderr, "gdx: the two new passwords differ\n");
      return EX_USAGE;
    }
  }
  json_t *out;
  int rc = call("POST", "/api/v1/auth/password",
                json_pack("{s:s, s:s}", "old_password", old, "new_password", nw), &out);
  explicit_bzero(old, sizeof(old));
  explicit_bzero(nw, sizeof(nw));
  if (rc == EX_OK) {
    json_decref(out);
    printf("password changed\n");
  }
  return rc;
}

static const char help_units[] =
    "Usage: gdx units list\n"
    "       gdx units show CODE\n"
    "       gdx units create --code CODE --name NAME --roles provider,consumer,...\n"
    "       gdx units disable CODE | enable CODE\n"
    "Units are identified by their unified social credit code (18 characters).\n";

static int cmd_units(int argc, char **argv) {
  if (argc < 1)
    return usage_error("units needs a subcommand", help_units);
  const char *sub = argv[0];
  json_t *out;
  int rc;
  if (strcmp(sub, "list") == 0) {
    rc = call("GET", "/api/v1/units", NULL, &out);
    return rc ? rc : emit(out, unit_cols, NCOLS(unit_cols), 1);
  }
  if (strcmp(sub, "show") == 0 || strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) {
    if (argc != 2)
      return usage_error("give one unit code", help_units);
    return item_verb("/api/v1/units", sub, argv[1], unit_cols, NCOLS(unit_cols));
  }
  if (strcmp(sub, "create") == 0) {
    const char *code = NULL, *name = NULL, *roles = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
      if (strcmp(argv[i], "--code") == 0) code = argv[i + 1];
      else if (strcmp(argv[i], "--name") == 0) name = argv[i + 1];
      else if (strcmp(argv[i], "--roles") == 0) roles = argv[i + 1];
      else return usage_error("unknown option", help_units);
    }
    if (!code || !name || !roles)
      return usage_error("create needs --code, --name and --roles", help_units);
    rc = call("POST", "/api/v1/units", json_pack("{s:s, s:s, s:o}", "code", code, "name", name,
                                                 "roles", csv_array(roles)), &out);
    return rc ? rc : emit(out, unit_cols, NCOLS(unit_cols), 0);
  }
  return usage_error("unknown units subcommand", help_units);
}

static const char help_users[] =
    "Usage: gdx users list [--unit CODE]\n"
    "       gdx users show USER\n"
    "       gdx users create --username USER --name NAME --role ROLE [--unit CODE]\n"
    "                        (the initial password is asked for, or read with --password-stdin)\n"
    "       gdx users disable USER | enable USER | reset-password USER\n"
    "Roles: ops_admin, mgmt_reviewer, unit_admin, staff. A unit admin creates staff of\n"
    "its own unit; the operations admin creates unit admins and reviewers.\n";

static int cmd_users(int argc, char **argv) {
  if (argc < 1)
    return usage_error("users needs a subcommand", help_users);
  const char *sub = argv[0];
  json_t *out;
  int rc;
  char path[512];
  if (strcmp(sub, "list") == 0) {
    if (argc == 3 && strcmp(argv[1], "--unit") == 0)
      snprintf(path, sizeof(path), "/api/v1/accounts?unit=%s", argv[2]);
    else if (argc == 1)
      snprintf(path, sizeof(path), "/api/v1/accounts");
    else
      return usage_error("list takes only --unit CODE", help_users);
    rc = call("GET", path, NULL, &out);
    return rc ? rc : emit(out, user_cols, NCOLS(user_cols), 1);
  }
  if (strcmp(sub, "show") == 0 || strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) {
    if (argc != 2)
      return usage_error("give one user name", help_users);
    return item_verb("/api/v1/accounts", sub, argv[1], user_cols, NCOLS(user_cols));
  }
  if (strcmp(sub, "reset-password") == 0) {
    if (argc != 2)
      return usage_error("give one user name", help_users);
    char pw[512];
    if (read_secret("new initial password: ", pw, sizeof(pw)))
      return usage_error("no password given", help_users);
    snprintf(path, sizeof(path), "/api/v1/accounts/%s/reset-password", argv[1]);
    rc = call("POST", path, json_pack("{s:s}", "new_password", pw), &out);
    explicit_bzero(pw, sizeof(pw));
    if (rc == EX_OK && !opt_json) {
      json_decref(out);
      printf("password of %s reset; it must be changed at the next login\n", argv[1]);
      return EX_OK;
    }
    return rc ? rc : emit(out, NULL, 0, 0);
  }
  if (strcmp(sub, "create") == 0) {
    const char *user = NULL, *name = NULL, *role = NULL, *unit = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
      if (strcmp(argv[i], "--username") == 0) user = argv[i + 1];
      else if (strcmp(argv[i], "--name") == 0) name = argv[i + 1];
      else if (strcmp(argv[i], "--role") == 0) role = argv[i + 1];
      else if (strcmp(argv[i], "--unit") == 0) unit = argv[i + 1];
      else return usage_error("unknown option", help_users);
    }
    if (!user || !name || !role)
      return usage_error("create needs --username, --name and --role", help_users);
    char pw[512];
    if (read_secret("initial password: ", pw, sizeof(pw)))
      return usage_error("no initial password given", help_users);
    json_t *b = json_pack("{s:s, s:s, s:s, s:s}", "username", user, "display_name", name, "role",
                          role, "initial_password", pw);
    explicit_bzero(pw, sizeof(pw));
    if (unit)
      json_object_set_new(b, "unit_code", json_string(unit));
    rc = call("POST", "/api/v1/accounts", b, &out);
    return rc ? rc : emit(out, user_cols, NCOLS(user_cols), 0);
  }
  return usage_error("unknown users subcommand", help_users);
}

static const char help_audit[] =
    "Usage: gdx audit list [--after ID] [--limit N] [--action ACTION] [--actor USER]\n"
    "       gdx audit verify\n"
    "verify checks the hash chain and names the first edited, inserted or deleted record\n"
    "(exit status 1 when the chain is broken).\n";

static int cmd_audit(int argc, char **argv) {
  if (argc < 1)
    return usage_error("audit needs a subcommand", help_audit);
  json_t *out;
  int rc;
  if (strcmp(argv[0], "verify") == 0) {
    rc = call("GET", "/api/v1/audit/verify", NULL, &out);
    if (rc)
      return rc;
    int ok = json_is_true(json_object_get(out, "ok"));
    if (opt_json) {
      emit(out, NULL, 0, 0);
    } else {
      if (ok)
        printf("audit chain intact: %lld records checked\n",
               (long long)json_integer_value(json_object_get(out, "records_checked")));
      else
        printf("AUDIT CHAIN BROKEN at record %lld: %s\n",
               (long long)json_integer_value(json_object_get(out, "first_bad_id")),
               json_string_value(json_object_get(out, "problem")));
      json_decref(out);
    }
    return ok ? EX_OK : EX_REFUSED;
  }
  if (strcmp(argv[0], "list") == 0) {
    char path[1024] = "/api/v1/audit?";
    for (int i = 1; i < argc; i += 2) {
      if (i + 1 >= argc)
        return usage_error("option without a value", help_audit);
      const char *key = strcmp(argv[i], "--after") == 0    ? "after_id"
                        : strcmp(argv[i], "--limit") == 0  ? "limit"
                        : strcmp(argv[i], "--action") == 0 ? "action"
                        : strcmp(argv[i], "--actor") == 0  ? "actor"
                                                           : NULL;
      if (key == NULL)
        return usage_error("unknown option", help_audit);
      char *esc = curl_easy_escape(NULL, argv[i + 1], 0);
      size_t used = strlen(path);
      snprintf(path + used, sizeof(path) - used, "%s=%s&", key, esc);
      curl_free(esc);
    }
    rc = call("GET", path, NULL, &out);
    return rc ? rc : emit(out, audit_cols, NCOLS(audit_cols), 1);
  }
  return usage_error("unknown audit subcommand", help_audit);
}

/* --- options of the form --key value, and flags --------------------- */

static const char *opt(int argc, char **argv, const char *key) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], key) == 0)
      return argv[i + 1];
  return NULL;
}

static int flag(int argc, char **argv, const char *key) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], key) == 0)
      return 1;
  return 0;
}

/* "a,b,c" -> ["a","b","c"] */
static json_t *csv_array(const char *csv) {
  json_t *a = json_array();
  char copy[2048];
  snprintf(copy, sizeof(copy), "%s", csv);
  for (char *t = strtok(copy, ","); t; t = strtok(NULL, ","))
    json_array_append_new(a, json_string(t));
  return a;
}

static void query_add(char *q, size_t n, const char *key, const char *val) {
  if (val == NULL)
    return;
  char *esc = curl_easy_escape(NULL, val, 0);
  size_t used = strlen(q);
  snprintf(q + used, n - used, "%s%s=%s", strchr(q, '?') ? "&" : "?", key, esc);
  curl_free(esc);
}

static const char *const catalog_cols[] = {"resource_code:CODE", "name:NAME",
                                           "provider_name:PROVIDER", "resource_type:TYPE",
                                           "sharing_type:SHARING", "version:VER",
                                           "status:STATUS", "publish_date:PUBLISHED"};
static const char *const request_cols[] = {"id:ID", "resource_code:RESOURCE", "consumer_code:CONSUMER",
                                           "applicant:APPLICANT", "method:METHOD",
                                           "data_items:ITEMS", "valid_until:UNTIL",
                                           "status:STATUS", "decided_by:DECIDED BY"};
static const char *const auth_cols[] = {"id:ID", "resource_code:RESOURCE", "consumer_code:CONSUMER",
                                        "data_items:ITEMS", "method:METHOD",
                                        "valid_until:UNTIL", "call_quota:QUOTA",
                                        "status:STATUS"};
static const char *const demand_cols[] = {"id:ID", "consumer_code:CONSUMER", "provider_code:PROVIDER",
                                          "description:DESCRIPTION", "status:STATUS",
                                          "resource_code:RESOURCE"};

static json_t *load_json_file(const char *path) {
  json_error_t e;
  json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
  if (j == NULL)
    fprintf(stderr, "gdx: %s:%d: %s\n", path, e.line, e.text);
  return j;
}

static const char help_catalog[] =
    "Usage: gdx catalog search [--q TEXT] [--provider CODE] [--category DIGITS] [--type T]\n"
    "                          [--sharing S] [--format F] [--sort newest|name|code|publish_date]\n"
    "                          [--order asc|desc] [--limit N] [--offset N] [--mine]\n"
    "       gdx catalog show CODE | history CODE\n"
    "       gdx catalog create --file ENTRY.json | update CODE --file ENTRY.json\n"
    "       gdx catalog submit CODE\n"
    "       gdx catalog review CODE (--publish | --return) [--opinion TEXT]   (reviewers)\n"
    "       gdx catalog withdraw CODE --opinion TEXT\n"
    "Resource codes look like 101001/000001. An entry file holds the national catalog\n"
    "fields (schemas/json/catalog_entry.json).\n";

static int cmd_catalog(int argc, char **argv) {
  if (argc < 1)
    return usage_error("catalog needs a subcommand", help_catalog);
  const char *sub = argv[0];
  json_t *out, *body;
  char path[1024];
  int rc;
  if (strcmp(sub, "search") == 0) {
    snprintf(path, sizeof(path), "/api/v1/catalog");
    static const char *const keys[] = {"q", "provider", "category", "type", "sharing", "format",
                                       "sort", "order", "limit", "offset"};
    for (size_t i = 0; i < NCOLS(keys); i++) {
      char k[32];
      snprintf(k, sizeof(k), "--%s", keys[i]);
      query_add(path, sizeof(path), keys[i], opt(argc, argv, k));
    }
    if (flag(argc, argv, "--mine"))
      query_add(path, sizeof(path), "mine", "1");
    rc = call("GET", path, NULL, &out);
    if (rc == EX_OK && !opt_json)
      printf("%lld%s found\n", (long long)json_integer_value(json_object_get(out, "total")),
             json_is_true(json_object_get(out, "total_is_exact")) ? "" : "+");
    return rc ? rc : emit(out, catalog_cols, NCOLS(catalog_cols), 1);
  }
  if (argc >= 2 && strcmp(sub, "show") == 0) {
    snprintf(path, sizeof(path), "/api/v1/catalog/%s", argv[1]);
    rc = call("GET", path, NULL, &out);
    if (rc == EX_OK && !opt_json) {
      json_t *pub = json_object_get(out, "published");
      if (json_is_null(pub) || pub == NULL)
        pub = json_object_get(out, "working_copy");
      printf("%-22s %s\n%-22s %s (%s)\n%-22s %s, version %lld\n", "resource code",
             json_string_value(json_object_get(out, "resource_code")), "provider",
             json_string_value(json_object_get(json_object_get(out, "provider"), "name")),
             json_string_value(json_object_get(json_object_get(out, "provider"), "code")),
             "status", json_string_value(json_object_get(out, "status")),
             (long long)json_integer_value(json_object_get(out, "version")));
      static const char *const cols[] = {"name:name", "summary:summary", "category:category",
                                         "resource_type:type", "format:format",
                                         "sharing_type:sharing", "sharing_condition:condition",
                                         "sharing_method:method", "update_cycle:update cycle"};
      fields(pub, cols, NCOLS(cols));
      json_t *it;
      size_t i;
      printf("data items:\n");
      json_array_foreach(json_object_get(pub, "data_items"), i, it)
          printf("  %-20s %-10s %5lld  %s\n", json_string_value(json_object_get(it, "name")),
                 json_string_value(json_object_get(it, "type")),
                 (long long)json_integer_value(json_object_get(it, "length")),
                 json_string_value(json_object_get(it, "sharing_type"))
                     ? json_string_value(json_object_get(it, "sharing_type"))
                     : "");
      json_decref(out);
      return EX_OK;
    }
    return rc ? rc : emit(out, NULL, 0, 0);
  }
  if (argc >= 2 && strcmp(sub, "history") == 0) {
    snprintf(path, sizeof(path), "/api/v1/catalog/%s/history", argv[1]);
    rc = call("GET", path, NULL, &out);
    if (rc)
      return rc;
    if (opt_json)
      return emit(out, NULL, 0, 0);
    json_t *events = json_object_get(out, "events"), *e;
    size_t i;
    json_array_foreach(events, i, e)
        printf("%s  %-10s v%-3lld %-12s %s\n", json_string_value(json_object_get(e, "ts")),
               json_string_value(json_object_get(e, "event")),
               (long long)json_integer_value(json_object_get(e, "version")),
               json_string_value(json_object_get(e, "actor")),
               json_string_value(json_object_get(e, "opinion")));
    printf("%zu published version(s)\n", json_array_size(json_object_get(out, "versions")));
    json_decref(out);
    return EX_OK;
  }
  if (strcmp(sub, "create") == 0 || (argc >= 2 && strcmp(sub, "update") == 0)) {
    const char *file = opt(argc, argv, "--file");
    if (file == NULL)
      return usage_error("give the entry with --file ENTRY.json", help_catalog);
    if ((body = load_json_file(file)) == NULL)
      return EX_USAGE;
    if (strcmp(sub, "create") == 0) {
      rc = call("POST", "/api/v1/catalog", body, &out);
    } else {
      snprintf(path, sizeof(path), "/api/v1/catalog/%s", argv[1]);
      rc = call("PUT", path, body, &out);
    }
    static const char *const cols[] = {"resource_code:resource code", "status:status",
                                       "version:version"};
    return rc ? rc : emit(out, cols, NCOLS(cols), 0);
  }
  if (argc >= 2 && (strcmp(sub, "submit") == 0 || strcmp(sub, "review") == 0 ||
                    strcmp(sub, "withdraw") == 0)) {
    snprintf(path, sizeof(path), "/api/v1/catalog/%s/%s", argv[1], sub);
    body = NULL;
    const char *opinion = opt(argc, argv, "--opinion");
    if (strcmp(sub, "review") == 0) {
      int pub = flag(argc, argv, "--publish"), ret = flag(argc, argv, "--return");
      if (pub == ret)
        return usage_error("review takes --publish or --return", help_catalog);
      body = json_pack("{s:s}", "decision", pub ? "publish" : "return");
      if (opinion)
        json_object_set_new(body, "opinion", json_string(opinion));
    } else if (strcmp(sub, "withdraw") == 0) {
      if (opinion == NULL)
        return usage_error("withdraw needs --opinion", help_catalog);
      body = json_pack("{s:s}", "opinion", opinion);
    }
    rc = call("POST", path, body, &out);
    static const char *const cols[] = {"resource_code:resource code", "status:status",
                                       "version:version", "opinion:opinion"};
    return rc ? rc : emit(out, cols, NCOLS(cols), 0);
  }
  return usage_error("unknown catalog subcommand", help_catalog);
}

static const char help_requests[] =
    "Usage: gdx requests apply --resource CODE --purpose TEXT --items a,b --method M\n"
    "                          --until YYYY-MM-DD [--quota N]\n"
    "       gdx requests list [--status S] [--side consumer|provider]\n"
    "       gdx requests show ID\n"
    "       gdx requests approve ID [--items a] [--until DATE] [--quota N] [--opinion TEXT]\n"
    "       gdx requests reject ID --opinion TEXT\n"
    "       gdx requests cancel ID\n"
    "Methods: fetch, subscribe (tables and files), compare (tables, with --quota: records\n"
    "compared), call (APIs, with --quota: calls).\n"
    "Approval may be narrower than asked: fewer items, an earlier end, a lower quota.\n";

static int cmd_requests(int argc, char **argv) {
  if (argc < 1)
    return usage_error("requests needs a subcommand", help_requests);
  const char *sub = argv[0];
  json_t *out, *body = NULL;
  char path[512];
  int rc;
  if (strcmp(sub, "apply") == 0) {
    const char *res = opt(argc, argv, "--resource"), *purpose = opt(argc, argv, "--purpose"),
               *items = opt(argc, argv, "--items"), *method = opt(argc, argv, "--method"),
               *until = opt(argc, argv, "--until"), *quota = opt(argc, argv, "--quota");
    if (!res || !purpose || !items || !method || !until)
      return usage_error("apply needs --resource, --purpose, --items, --method, --until",
                         help_requests);
    body = json_pack("{s:s, s:s, s:o, s:s, s:s}", "resource_code", res, "purpose", purpose,
                     "data_items", csv_array(items), "method", method, "valid_until", until);
    if (quota)
      json_object_set_new(body, "call_quota", json_integer(atoll(quota)));
    rc = call("POST", "/api/v1/requests", body, &out);
    return rc ? rc : emit(out, request_cols, NCOLS(request_cols), 0);
  }
  if (strcmp(sub, "list") == 0) {
    snprintf(path, sizeof(path), "/api/v1/requests");
    query_add(path, sizeof(path), "status", opt(argc, argv, "--status"));
    query_add(path, sizeof(path), "side", opt(argc, argv, "--side"));
    rc = call("GET", path, NULL, &out);
    return rc ? rc : emit(out, request_cols, NCOLS(request_cols), 1);
  }
  if (argc < 2)
    return usage_error("give a request id", help_requests);
  const char *opinion = opt(argc, argv, "--opinion");
  if (strcmp(sub, "show") == 0) {
    snprintf(path, sizeof(path), "/api/v1/requests/%s", argv[1]);
    rc = call("GET", path, NULL, &out);
    static const char *const cols[] = {
        "id:id", "resource_code:resource", "resource_name:name", "provider_code:provider",
        "consumer_code:consumer", "applicant:applicant", "purpose:purpose", "data_items:items",
        "method:method", "valid_until:valid until", "call_quota:call quota", "status:status",
        "decided_by:decided by", "opinion:opinion", "authorization_id:authorization"};
    return rc ? rc : emit(out, cols, NCOLS(cols), 0);
  }
  if (strcmp(sub, "approve") == 0) {
    body = json_object();
    if (opt(argc, argv, "--items"))
      json_object_set_new(body, "data_items", csv_array(opt(argc, argv, "--items")));
    if (opt(argc, argv, "--until"))
      json_object_set_new(body, "valid_until", json_string(opt(argc, argv, "--until")));
    if (opt(argc, argv, "--quota"))
      json_object_set_new(body, "call_quota", json_integer(atoll(opt(argc, argv, "--quota"))));
    if (opinion)
      json_object_set_new(body, "opinion", json_string(opinion));
  } else if (strcmp(sub, "reject") == 0) {
    if (opinion == NULL)
      return usage_error("reject needs --opinion", help_requests);
    body = json_pack("{s:s}", "opinion", opinion);
  } else if (strcmp(sub, "cancel") != 0) {
    return usage_error("unknown requests subcommand", help_requests);
  }
  snprintf(path, sizeof(path), "/api/v1/requests/%s/%s", argv[1], sub);
  rc = call("POST", path, body, &out);
  return rc ? rc : emit(out, request_cols, NCOLS(request_cols), 0);
}

static const char help_auth[] =
    "Usage: gdx authorizations list\n"
    "       gdx authorizations revoke ID --opinion TEXT\n";

static int cmd_authorizations(int argc, char **argv) {
  json_t *out;
  int rc;
  if (argc >= 1 && strcmp(argv[0], "list") == 0) {
    rc = call("GET", "/api/v1/authorizations", NULL, &out);
    return rc ? rc : emit(out, auth_cols, NCOLS(auth_cols), 1);
  }
  if (argc >= 2 && strcmp(argv[0], "revoke") == 0) {
    const char *opinion = opt(argc, argv, "--opinion");
    if (opinion == NULL)
      return usage_error("revoke needs --opinion", help_auth);
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/authorizations/%s/revoke", argv[1]);
    rc = call("POST", path, json_pack("{s:s}", "opinion", opinion), &out);
    static const char *const cols[] = {"id:authorization", "status:status"};
    return rc ? rc : emit(out, cols, NCOLS(cols), 0);
  }
  return usage_error("authorizations takes list or revoke", help_auth);
}

static const char help_demands[] =
    "Usage: gdx demands create --provider CODE --description TEXT --purpose TEXT\n"
    "       gdx demands list\n"
    "       gdx demands decide ID (--approve | --reject) [--opinion TEXT]   (reviewers)\n"
    "       gdx demands fulfil ID --resource CODE --items a,b --method M --until DATE\n"
    "A demand asks for a resource that is not in the catalog; management decides, then\n"
    "the provider publishes it and fulfils the demand, which files the request.\n";

static int cmd_demands(int argc, char **argv) {
  json_t *out, *body;
  char path[256];
  int rc;
  if (argc >= 1 && strcmp(argv[0], "list") == 0) {
    rc = call("GET", "/api/v1/demands", NULL, &out);
    return rc ? rc : emit(out, demand_cols, NCOLS(demand_cols), 1);
  }
  if (argc >= 1 && strcmp(argv[0], "create") == 0) {
    const char *p = opt(argc, argv, "--provider"), *d = opt(argc, argv, "--description"),
               *u = opt(argc, argv, "--purpose");
    if (!p || !d || !u)
      return usage_error("create needs --provider, --description, --purpose", help_demands);
    rc = call("POST", "/api/v1/demands",
              json_pack("{s:s, s:s, s:s}", "provider_unit_code", p, "description", d, "purpose", u),
              &out);
    return rc ? rc : emit(out, demand_cols, NCOLS(demand_cols), 0);
  }
  if (argc >= 2 && strcmp(argv[0], "decide") == 0) {
    int a = flag(argc, argv, "--approve"), r = flag(argc, argv, "--reject");
    if (a == r)
      return usage_error("decide takes --approve or --reject", help_demands);
    body = json_pack("{s:s}", "decision", a ? "approve" : "reject");
    if (opt(argc, argv, "--opinion"))
      json_object_set_new(body, "opinion", json_string(opt(argc, argv, "--opinion")));
    snprintf(path, sizeof(path), "/api/v1/demands/%s/decide", argv[1]);
    rc = call("POST", path, body, &out);
    return rc ? rc : emit(out, demand_cols, NCOLS(demand_cols), 0);
  }
  if (argc >= 2 && strcmp(argv[0], "fulfil") == 0) {
    const char *res = opt(argc, argv, "--resource"), *items = opt(argc, argv, "--items"),
               *method = opt(argc, argv, "--method"), *until = opt(argc, argv, "--until");
    if (!res || !items || !method || !until)
      return usage_error("fulfil needs --resource, --items, --method, --until", help_demands);
    snprintf(path, sizeof(path), "/api/v1/demands/%s/fulfil", argv[1]);
    rc = call("POST", path,
              json_pack("{s:s, s:o, s:s, s:s}", "resource_code", res, "data_items",
                        csv_array(items), "method", method, "valid_until", until),
              &out);
    static const char *const cols[] = {"id:demand", "status:status", "request_id:request filed"};
    return rc ? rc : emit(out, cols, NCOLS(cols), 0);
  }
  return usage_error("unknown demands subcommand", help_demands);
}

/* ------------------------------------------------------------------ */
/* nodes, credentials, calls                                           */

static const char *const node_cols[] = {"id:ID", "unit_code:UNIT", "node_id:NODE",
                                        "state:STATE", "address:ADDRESS", "version:VERSION",
                                        "last_heartbeat:LAST HEARTBEAT",
                                        "cert_not_after:CERT UNTIL"};
static const char *const node_detail_cols[] = {
    "id:id", "unit_code:unit", "node_id:node", "description:description", "status:status",
    "state:state", "address:address", "version:version", "last_heartbeat:last heartbeat",
    "heartbeat_age_s:seconds since", "cert_serial:certificate serial",
    "cert_not_after:certificate until", "resources:resources"};
static const char *const cred_cols[] = {"client_id:CLIENT ID", "authorization_id:AUTHORIZATION",
                                        "resource_code:RESOURCE", "owner:OWNER",
                                        "generation:GEN", "status:STATUS",
                                        "rotated_at:ROTATED"};

static const char *str_or_empty(json_t *j) {
  const char *s = json_string_value(j);
  return s ? s : "";
}

static const char help_nodes[] =
    "Usage: gdx nodes enroll NODE_ID [--description TEXT]   (unit admins)\n"
    "       gdx nodes list\n"
    "       gdx nodes status ID\n"
    "       gdx nodes token ID          a new one-time enrollment token\n"
    "       gdx nodes revoke ID --opinion TEXT\n"
    "`enroll` registers a front-end node of your unit and prints its one-time token;\n"
    "on the node run: gdx-node --config node.conf --enroll TOKEN\n";

static int cmd_nodes(int argc, char **argv) {
  json_t *out;
  char path[256];
  int rc;
  if (argc >= 1 && strcmp(argv[0], "list") == 0) {
    rc = call("GET", "/api/v1/nodes", NULL, &out);
    return rc ? rc : emit(out, node_cols, NCOLS(node_cols), 1);
  }
  if (argc >= 2 && (strcmp(argv[0], "enroll") == 0 || strcmp(argv[0], "create") == 0)) {
    json_t *body = json_pack("{s:s}", "node_id", argv[1]);
    if (opt(argc, argv, "--description"))
      json_object_set_new(body, "description", json_string(opt(argc, argv, "--description")));
    rc = call("POST", "/api/v1/nodes", body, &out);
    static const char *const cols[] = {"id:id", "unit_code:unit", "node_id:node",
                                       "enrollment_token:enrollment token",
                                       "token_expires_in_s:expires in (s)",
                                       "ca_fingerprint:platform CA (SHA-256)"};
    return rc ? rc : emit(out, cols, NCOLS(cols), 0);
  }
  if (argc >= 2 && (strcmp(argv[0], "status") == 0 || strcmp(argv[0], "show") == 0)) {
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", argv[1]);
    rc = call("GET", path, NULL, &out);
    if (rc)
      return rc;
    if (!opt_json) { /* "enterprise-api (api): up - /health answered 200; …" */
      char text[2048] = "";
      size_t i, used = 0;
      json_t *r;
      json_array_foreach(json_object_get(out, "resources"), i, r) {
        used += (size_t)snprintf(text + used, used < sizeof(text) ? sizeof(text) - used : 0,
                                 "%s%s (%s): %s%s%s", i ? "; " : "",
                                 json_string_value(json_object_get(r, "name")),
                                 json_string_value(json_object_get(r, "kind")),
                                 json_string_value(json_object_get(r, "health")),
                                 json_string_length(json_object_get(r, "detail")) ? " - " : "",
                                 str_or_empty(json_object_get(r, "detail")));
        if (used >= sizeof(text))
          break;
      }
      json_object_set_new(out, "resources", json_string(text[0] ? text : "(none)"));
    }
    return emit(out, node_detail_cols, NCOLS(node_detail_cols), 0);
  }
  if (argc >= 2 && strcmp(argv[0], "token") == 0) {
    static const char *const cols[] = {"id:id", "enrollment_token:enrollment token",
                                       "token_expires_in_s:expires in (s)"};
    return item_verb("/api/v1/nodes", "token", argv[1], cols, NCOLS(cols));
  }
  if (argc >= 2 && strcmp(argv[0], "revoke") == 0) {
    const char *opinion = opt(argc, argv, "--opinion");
    if (opinion == NULL)
      return usage_error("revoke needs --opinion", help_nodes);
    snprintf(path, sizeof(path), "/api/v1/nodes/%s/revoke", argv[1]);
    rc = call("POST", path, json_pack("{s:s}", "opinion", opinion), &out);
    static const char *const cols[] = {"id:node", "status:status"};
    return rc ? rc : emit(out, cols, NCOLS(cols), 0);
  }
  return usage_error("nodes takes enroll, list, status, token or revoke", help_nodes);
}

static const char help_credentials[] =
    "Usage: gdx credentials create --authorization ID   (the consumer's unit admin)\n"
    "       gdx credentials list\n"
    "       gdx credentials rotate CLIENT_ID\n"
    "       gdx credentials revoke CLIENT_ID\n"
    "An application credential (client id + secret, the secret shown once) lets a\n"
    "consumer system call the API resource of an authorization through the broker.\n";

static int cmd_credentials(int argc, char **argv) {
  json_t *out;
  int rc;
  static const char *const secret_cols[] = {"client_id:client id", "client_secret:client secret",
                                            "authorization_id:authorization",
                                            "resource_code:resource", "note:note"};
  if (argc >= 1 && strcmp(argv[0], "list") == 0) {
    rc = call("GET", "/api/v1/credentials", NULL, &out);
    return rc ? rc : emit(out, cred_cols, NCOLS(cred_cols), 1);
  }
  if (argc >= 1 && strcmp(argv[0], "create") == 0) {
    const char *a = opt(argc, argv, "--authorization");
    if (a == NULL || atoll(a) <= 0)
      return usage_error("create needs --authorization ID", help_credentials);
    rc = call("POST", "/api/v1/credentials",
              json_pack("{s:I}", "authorization_id", (json_int_t)atoll(a)), &out);
    return rc ? rc : emit(out, secret_cols, NCOLS(secret_cols), 0);
  }
  if (argc >= 2 && strcmp(argv[0], "rotate") == 0)
    return item_verb("/api/v1/credentials", "rotate", argv[1], secret_cols, NCOLS(secret_cols));
  if (argc >= 2 && strcmp(argv[0], "revoke") == 0) {
    static const char *const cols[] = {"client_id:client id", "status:status"};
    return item_verb("/api/v1/credentials", "revoke", argv[1], cols, NCOLS(cols));
  }
  return usage_error("credentials takes create, list, rotate or revoke", help_credentials);
}

static const char help_call[] =
    "Usage: gdx call [-X METHOD] [--data TEXT | --data-file FILE] [-H 'Name: value']...\n"
    "                (--client-id ID [--password-stdin] | --token TOKEN) RESOURCE PATH\n"
    "Calls an API resource through the broker: /svc/RESOURCE/PATH. With --client-id the\n"
    "secret comes from $GDX_CLIENT_SECRET or standard input (--password-stdin) and is\n"
    "exchanged for a token first. The body goes to standard output; the status and the\n"
    "request id to standard error (with --json: one JSON object with all three).\n"
    "Example: gdx call --client-id gdxc_… 101/000001 persons/42\n";

typedef struct {
  char request_id[64];
  char error_type[16];
} call_meta;

static size_t call_header(char *p, size_t s, size_t n, void *ud) {
  call_meta *m = ud;
  size_t len = s * n;
  if (len > 14 && strncasecmp(p, "X-Request-Id: ", 14) == 0)
    snprintf(m->request_id, sizeof(m->request_id), "%.*s", (int)strcspn(p + 14, "\r\n"), p + 14);
  if (len > 18 && strncasecmp(p, "X-Gdx-Error-Type: ", 18) == 0)
    snprintf(m->error_type, sizeof(m->error_type), "%.*s", (int)strcspn(p + 18, "\r\n"), p + 18);
  return len;
}

/* An access token for application credential `client`: the secret from
 * $GDX_CLIENT_SECRET or standard input, exchanged at POST /api/v1/token. */
static int access_token(const char *client, char *out, size_t n) {
  char secret[256] = "";
  const char *env = getenv("GDX_CLIENT_SECRET");
  if (env)
    snprintf(secret, sizeof(secret), "%s", env);
  else if (read_secret("client secret: ", secret, sizeof(secret)) != 0)
    return EX_USAGE;
  json_t *res;
  int rc = call("POST", "/api/v1/token",
                json_pack("{s:s, s:s}", "client_id", client, "client_secret", secret), &res);
  explicit_bzero(secret, sizeof(secret));
  if (rc)
    return rc;
  const char *at = json_string_value(json_object_get(res, "access_token"));
  snprintf(out, n, "%s", at ? at : "");
  json_decref(res);
  return EX_OK;
}

/* One request to /svc (headers h, the bearer token among them): the body
 * into b, the request id and failing hop into meta. With decode, curl asks
 * for compressed answers and inflates them (table reads; API calls pass
 * what the caller asked for, since the broker may filter their bodies). */
static CURLcode svc_perform(const char *method, const char *url, struct curl_slist *h,
                            const char *body, size_t blen, int decode, buf *b,
                            call_meta *meta, long *status) {
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, call_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, meta);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
  if (decode)
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* whatever curl can decode */
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
  }
  CURLcode cr = curl_easy_perform(e);
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
  curl_easy_cleanup(e);
  return cr;
}

static int cmd_call(int argc, char **argv) {
  const char *method = "GET", *data = NULL, *data_file = NULL, *client = NULL, *token = NULL;
  const char *pos[2] = {NULL, NULL};
  int npos = 0;
  struct curl_slist *h = NULL;
  for (int i = 0; i < argc; i++) {
    int more = i + 1 < argc;
    if ((strcmp(argv[i], "-X") == 0 || strcmp(argv[i], "--method") == 0) && more) method = argv[++i];
    else if (strcmp(argv[i], "--data") == 0 && more) data = argv[++i];
    else if (strcmp(argv[i], "--data-file") == 0 && more) data_file = argv[++i];
    else if ((strcmp(argv[i], "-H") == 0 || strcmp(argv[i], "--header") == 0) && more)
      h = curl_slist_append(h, argv[++i]);
    else if (strcmp(argv[i], "--client-id") == 0 && more) client = argv[++i];
    else if (strcmp(argv[i], "--token") == 0 && more) token = argv[++i];
    else if (npos < 2 && argv[i][0] != '-') pos[npos++] = argv[i];
    else {
      curl_slist_free_all(h);
      return usage_error("unexpected argument", help_call);
    }
  }
  if (npos < 1 || (!client && !token)) {
    curl_slist_free_all(h);
    return usage_error("call needs RESOURCE [PATH] and --client-id or --token", help_call);
  }
  char tokbuf[512];
  if (client) {
    int rc = access_token(client, tokbuf, sizeof(tokbuf));
    if (rc) {
      curl_slist_free_all(h);
      return rc;
    }
    token = tokbuf;
  }
  json_t *s = session_load();
  char url[4096], auth[600];
  const char *path = pos[1] ? pos[1] : "";
  snprintf(url, sizeof(url), "%s/svc/%s/%s", broker_url(s), pos[0], path[0] == '/' ? path + 1 : path);
  json_decref(s);
  snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
  h = curl_slist_append(h, auth);
  char *body = NULL;
  size_t blen = 0;
  if (data_file) {
    FILE *f = fopen(data_file, "rb");
    if (f == NULL) {
      fprintf(stderr, "gdx: cannot read %s\n", data_file);
      curl_slist_free_all(h);
      return EX_USAGE;
    }
    buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
      collect(chunk, 1, n, &b);
    fclose(f);
    body = b.data;
    blen = b.len;
  } else if (data) {
    body = strdup(data);
    blen = strlen(data);
  }
  buf b = {0};
  call_meta meta = {"", ""};
  long status = 0;
  CURLcode cr = svc_perform(method, url, h, body, blen, 0, &b, &meta, &status);
  curl_slist_free_all(h);
  free(body);
  if (cr != CURLE_OK) {
    fprintf(stderr, "gdx: the call failed: %s\n", curl_easy_strerror(cr));
    free(b.data);
    return EX_UNREACHABLE;
  }
  if (opt_json) {
    json_t *parsed = b.data ? json_loads(b.data, 0, NULL) : NULL;
    json_t *o = json_pack("{s:I, s:s, s:o}", "status", (json_int_t)status, "request_id",
                          meta.request_id, "body",
                          parsed ? parsed : json_string(b.data ? b.data : ""));
    json_dumpf(o, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(o);
  } else {
    if (b.data)
      fwrite(b.data, 1, b.len, stdout);
    fprintf(stderr, "HTTP %ld%s%s, request %s\n", status, meta.error_type[0] ? ", failed at: " : "",
            meta.error_type, meta.request_id);
  }
  free(b.data);
  return status >= 200 && status < 300 ? EX_OK : exit_for(status);
}

/* ------------------------------------------------------------------ */
/* table exchange: subscriptions, reconciliation, alarms, fetch        */

static const char help_subscriptions[] =
    "Usage: gdx subscriptions [list]\n"
    "       gdx subscriptions report AUTHORIZATION [--date YYYY-MM-DD]\n"
    "       gdx subscriptions reconcile AUTHORIZATION\n"
    "       gdx subscriptions files AUTHORIZATION [--status delivered|quarantined] [--path P]\n"
    "Table and folder subscriptions of one's unit (as consumer or provider; all of them for the\n"
    "operations and management roles): where each stands, its ledger of batches sent and\n"
    "applied, reconciliation runs (对账) and alarms. `report` is the daily report (UTC day,\n"
    "today by default) with a verdict: consistent, repaired, discrepancies or\n"
    "not_reconciled. `reconcile` asks the consumer's node for a run now. `files` is a folder\n"
    "subscription's file ledger: each file version with its size, SHA-256, the SM3 listed and\n"
    "received, bytes received, where a resumed transfer began, delivered or quarantined.\n";

static const char *const sub_cols[] = {
    "authorization_id:AUTH", "resource_code:RESOURCE", "consumer:CONSUMER", "target:TARGET",
    "phase:PHASE", "position:POSITION", "rows_applied:ROWS APPLIED",
    "mismatched_batches:MISMATCHED", "last_reconciliation:LAST RUN", "open_alarms:ALARMS",
    "last_ack_at:LAST REPORT"};
static const char *const recon_cols[] = {
    "id:RUN", "authorization_id:AUTH", "status:STATUS", "chunks:CHUNKS",
    "chunks_differing:DIFFERING", "rows_source:SOURCE ROWS", "rows_target:TARGET ROWS",
    "rows_missing:MISSING", "rows_extra:EXTRA", "rows_different:DIFFERENT",
    "rows_repaired:REPAIRED", "finished_at:FINISHED"};
static const char *const alarm_cols[] = {"id:ID", "kind:KIND", "authorization_id:AUTH",
                                         "state:STATE", "occurrences:TIMES",
                                         "last_seen_at:LAST SEEN", "message:MESSAGE"};

static int print_report(json_t *r) {
  if (opt_json)
    return emit(r, NULL, 0, 0);
  static const char *const head[] = {"authorization_id:Subscription", "date:Day (UTC)",
                                     "resource_code:Resource", "provider:Provider",
                                     "consumer:Consumer", "verdict:Verdict"};
  fields(r, head, NCOLS(head));
  json_t *st = json_object_get(r, "state");
  const char *phase = json_string_value(json_object_get(st, "phase"));
  if (phase && strcmp(phase, "files") == 0) { /* a folder subscription */
    static const char *const state[] = {"target:Folder", "last_ack_at:Last report"};
    fields(st, state, NCOLS(state));
    static const char *const files[] = {
        "files:Files today", "delivered:  delivered (hash verified)",
        "bytes_delivered:  bytes delivered", "quarantined:  quarantined",
        "unverified:  SM3 not matching", "resumed:  resumed transfers",
        "bytes_received:Bytes received"};
    fields(json_object_get(json_object_get(r, "ledger"), "files"), files, NCOLS(files));
  } else {
    if (json_is_object(st)) {
      static const char *const state[] = {"target:Target table", "phase:Phase",
                                          "position:Position",
                                          "rows_applied:Rows applied (all)",
                                          "last_ack_at:Last report"};
      fields(st, state, NCOLS(state));
    }
    static const char *const ledger[] = {
        "batches:Batches today", "snapshot_pages:  snapshot pages",
        "change_batches:  change batches", "rows_sent:Rows sent", "rows_applied:Rows applied",
        "mismatched_batches:Mismatched batches"};
    fields(json_object_get(r, "ledger"), ledger, NCOLS(ledger));
    printf("\nReconciliation runs\n");
    table(json_object_get(r, "reconciliations"), recon_cols, NCOLS(recon_cols));
  }
  printf("\nAlarms\n");
  table(json_object_get(r, "alarms"), alarm_cols, NCOLS(alarm_cols));
  json_decref(r);
  return EX_OK;
}

static int cmd_subscriptions(int argc, char **argv) {
  json_t *out;
  int rc;
  if (argc == 0 || strcmp(argv[0], "list") == 0) {
    rc = call("GET", "/api/v1/subscriptions", NULL, &out);
    return rc ? rc : emit(out, sub_cols, NCOLS(sub_cols), 1);
  }
  if (argc >= 2 && strcmp(argv[0], "report") == 0) {
    if (atoll(argv[1]) <= 0)
      return usage_error("report needs an authorization id", help_subscriptions);
    const char *date = opt(argc, argv, "--date");
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/subscriptions/%lld/report%s%s", atoll(argv[1]),
             date ? "?date=" : "", date && strlen(date) == 10 ? date : "");
    rc = call("GET", path, NULL, &out);
    return rc ? rc : print_report(out);
  }
  if (argc >= 2 && strcmp(argv[0], "reconcile") == 0) {
    if (atoll(argv[1]) <= 0)
      return usage_error("reconcile needs an authorization id", help_subscriptions);
    static const char *const cols[] = {"authorization_id:Subscription", "note:Note"};
    return item_verb("/api/v1/subscriptions", "reconcile", argv[1], cols, NCOLS(cols));
  }
  if (argc >= 2 && strcmp(argv[0], "files") == 0) {
    if (atoll(argv[1]) <= 0)
      return usage_error("files needs an authorization id", help_subscriptions);
    const char *st = opt(argc, argv, "--status");
    if (st && strcmp(st, "delivered") != 0 && strcmp(st, "quarantined") != 0)
      return usage_error("--status is delivered or quarantined", help_subscriptions);
    const char *fp = opt(argc, argv, "--path");
    char *efp = fp ? curl_easy_escape(NULL, fp, 0) : NULL;
    char path[4096];
    snprintf(path, sizeof(path), "/api/v1/subscriptions/%lld/files?status=%s&path=%s",
             atoll(argv[1]), st ? st : "", efp ? efp : "");
    curl_free(efp);
    static const char *const cols[] = {"path:PATH", "size:BYTES", "status:STATUS",
                                       "verified:VERIFIED", "resumed_from:RESUMED AT",
                                       "sha256:SHA-256", "verified_at:AT", "detail:DETAIL"};
    rc = call("GET", path, NULL, &out);
    return rc ? rc : emit(out, cols, NCOLS(cols), 1);
  }
  return usage_error("subscriptions takes list, report, reconcile or files", help_subscriptions);
}

static const char help_reconciliations[] =
    "Usage: gdx reconciliations [--authorization ID]\n"
    "Reconciliation runs (对账), newest first: chunks compared by checksum, rows missing,\n"
    "extra or different at the consumer, and rows repaired.\n";

static int cmd_reconciliations(int argc, char **argv) {
  const char *a = NULL;
  for (int i = 0; i + 1 < argc; i++)
    if (strcmp(argv[i], "--authorization") == 0)
      a = argv[i + 1];
  char path[128] = "/api/v1/reconciliations";
  if (a)
    snprintf(path, sizeof(path), "/api/v1/reconciliations?authorization=%lld", atoll(a));
  json_t *out;
  int rc = call("GET", path, NULL, &out);
  return rc ? rc : emit(out, recon_cols, NCOLS(recon_cols), 1);
}

static const char help_alarms[] =
    "Usage: gdx alarms [list] [--all]\n"
    "       gdx alarms ack ID\n"
    "Alarms of table exchange (a batch whose applied rows or checksum differ from what was\n"
    "sent, a reconciliation that found differences or failed): open ones, or all with\n"
    "--all. A unit admin acknowledges one with `ack` (audited).\n";

static int cmd_alarms(int argc, char **argv) {
  json_t *out;
  if (argc >= 2 && strcmp(argv[0], "ack") == 0) {
    static const char *const cols[] = {"id:Alarm", "state:State"};
    return item_verb("/api/v1/alarms", "ack", argv[1], cols, NCOLS(cols));
  }
  int all = 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--all") == 0)
      all = 1;
    else if (strcmp(argv[i], "list") != 0)
      return usage_error("alarms takes list [--all] or ack ID", help_alarms);
  }
  int rc = call("GET", all ? "/api/v1/alarms?state=all" : "/api/v1/alarms", NULL, &out);
  return rc ? rc : emit(out, alarm_cols, NCOLS(alarm_cols), 1);
}

static const char help_fetch[] =
    "Usage: gdx fetch (--client-id ID [--password-stdin] | --token TOKEN) RESOURCE\n"
    "                 [--format csv|jsonl] [-o FILE] [--page ROWS]\n"
    "       gdx fetch (--client-id ID | --token TOKEN) RESOURCE --list\n"
    "       gdx fetch (--client-id ID | --token TOKEN) RESOURCE --file PATH [-o FILE]\n"
    "A file resource (a folder): --list shows its files (path, size, format, SHA-256);\n"
    "--file downloads one into FILE (default: its name) with a progress bar, checking\n"
    "every chunk against the provider's SHA-256; an interrupted download run again\n"
    "resumes after the chunks of FILE.part that still match.\n"
    "\n"
    "Fetches (获取) a snapshot of a table resource under a fetch authorization: the\n"
    "authorized columns only, in key order, page by page through the broker. CSV (the\n"
    "default; a header line, RFC 4180 quoting, NULL as an empty field) or JSON Lines (one\n"
    "object per row). Output to FILE (written as FILE.part, renamed when complete) or\n"
    "standard output; progress on standard error. The credential is one made for the\n"
    "fetch authorization (gdx credentials create --authorization ID).\n";

static void csv_field(FILE *f, json_t *v) {
  if (json_is_null(v))
    return;
  char num[64];
  const char *t = num;
  if (json_is_string(v))
    t = json_string_value(v);
  else if (json_is_integer(v))
    snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else if (json_is_real(v))
    snprintf(num, sizeof(num), "%.17g", json_real_value(v));
  else
    snprintf(num, sizeof(num), "%d", json_is_true(v));
  if (t[0] != '\0' && strpbrk(t, ",\"\r\n") == NULL) {
    fputs(t, f);
    return;
  }
  fputc('"', f); /* also "" for an empty string, unlike NULL */
  for (; *t; t++) {
    if (*t == '"')
      fputc('"', f);
    fputc(*t, f);
  }
  fputc('"', f);
}

/* GET url with a bearer token: the JSON, or NULL after printing why. */
static json_t *svc_get(const char *url, const char *token, int *ex) {
  char auth[600];
  snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
  struct curl_slist *h = curl_slist_append(NULL, auth);
  buf b = {0};
  call_meta meta = {"", ""};
  long status = 0;
  CURLcode cr = svc_perform("GET", url, h, NULL, 0, 1, &b, &meta, &status);
  curl_slist_free_all(h);
  json_t *j = cr == CURLE_OK && b.data ? json_loads(b.data, 0, NULL) : NULL;
  free(b.data);
  if (cr != CURLE_OK) {
    fprintf(stderr, "\ngdx: the broker cannot be reached: %s\n", curl_easy_strerror(cr));
    *ex = EX_UNREACHABLE;
  } else if (status != 200 || !json_is_object(j)) {
    json_t *err = json_object_get(j, "error");
    fprintf(stderr, "\ngdx: %s (%s, HTTP %ld%s%s, request %s)\n",
            json_string_value(json_object_get(err, "message"))
                ? json_string_value(json_object_get(err, "message"))
                : "the fetch failed",
            json_string_value(json_object_get(err, "code"))
                ? json_string_value(json_object_get(err, "code"))
                : "?",
            status, meta.error_type[0] ? ", failed at: " : "", meta.error_type, meta.request_id);
    *ex = exit_for(status);
  } else {
    return j;
  }
  json_decref(j);
  return NULL;
}

/* ---- files of a folder resource ---- */

static const char *const file_cols[] = {"path:PATH", "size:BYTES", "format:FORMAT",
                                        "sha256:SHA-256"};

/* Every ready file of the folder, {"items": [...]}, or NULL after printing
 * why. */
static json_t *list_files(const char *base, const char *token, int *ex) {
  json_t *all = json_array();
  char since[128] = "";
  for (;;) {
    char url[4096];
    snprintf(url, sizeof(url), "%s/files?limit=1000%s%s", base, since[0] ? "&since=" : "",
             since);
    json_t *j = svc_get(url, token, ex);
    if (j == NULL) {
      json_decref(all);
      return NULL;
    }
    json_array_extend(all, json_object_get(j, "files"));
    snprintf(since, sizeof(since), "%s.%lld", json_string_value(json_object_get(j, "epoch")),
             (long long)json_integer_value(json_object_get(j, "gen")));
    int more = json_is_true(json_object_get(j, "more"));
    json_decref(j);
    if (!more)
      break;
  }
  return json_pack("{s:o}", "items", all);
}

/* A SHA-256 digest as the provider's hex. */
static void md_hex(const unsigned char md[32], char hex[65]) {
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

typedef struct {
  FILE *f;
  EVP_MD_CTX *md;
  const char *chunks;   /* 64 hex each */
  long long chunk, size, pos, verified, started;
  long long in_chunk;
  int mismatch, tty;
  struct timespec t0;
} dl_state;

static void dl_progress(dl_state *d, int last) {
  if (!d->tty)
    return;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  double secs = (double)(t.tv_sec - d->t0.tv_sec) + (double)(t.tv_nsec - d->t0.tv_nsec) / 1e9;
  double pct = d->size ? 100.0 * (double)d->pos / (double)d->size : 100.0;
  int bar = (int)(pct / 5);
  fprintf(stderr, "\r[%-20.*s] %5.1f%% %lld/%lld MiB %.0f MiB/s%s", bar, "####################",
          pct, d->pos >> 20, d->size >> 20,
          secs > 0 ? (double)(d->pos - d->started) / 1048576.0 / secs : 0.0, last ? "\n" : "");
}

static size_t dl_write(char *p, size_t size, size_t n, void *ud) {
  dl_state *d = ud;
  size_t len = size * n, done = 0;
  while (done < len) {
    long long end = (d->pos / d->chunk + 1) * d->chunk;
    if (end > d->size)
      end = d->size;
    size_t take = len - done;
    if ((long long)take > end - d->pos)
      take = (size_t)(end - d->pos);
    if (take == 0 || fwrite(p + done, 1, take, d->f) != take)
      return 0;
    EVP_DigestUpdate(d->md, p + done, take);
    d->pos += (long long)take;
    done += take;
    if (d->pos == end) {
      unsigned char md[32];
      unsigned ml = 0;
      char hex[65];
      EVP_DigestFinal_ex(d->md, md, &ml);
      md_hex(md, hex);
      if (memcmp(hex, d->chunks + (d->pos - 1) / d->chunk * 64, 64) != 0) {
        d->mismatch = 1;
        return 0;
      }
      d->verified = d->pos;
      EVP_DigestInit_ex(d->md, EVP_sha256(), NULL);
      static long long shown;
      if (d->pos - shown >= (4 << 20) || d->pos == d->size) {
        shown = d->pos;
        dl_progress(d, 0);
      }
    }
  }
  return len;
}

static int fetch_file(const char *base, const char *token, const char *path,
                      const char *outfile) {
  /* the current version's size, SHA-256 and chunk hashes in one read */
  int ex = EX_OK;
  char *esc_path = curl_easy_escape(NULL, path, 0);
  char url[8192];
  snprintf(url, sizeof(url), "%s/chunks?path=%s", base, esc_path);
  json_t *meta = svc_get(url, token, &ex);
  if (meta == NULL) {
    curl_free(esc_path);
    return ex;
  }
  json_t *e;
  size_t i;
  char sha[65];
  snprintf(sha, sizeof(sha), "%s", json_string_value(json_object_get(meta, "sha256")) ?
           json_string_value(json_object_get(meta, "sha256")) : "");
  long long size = json_integer_value(json_object_get(meta, "size"));
  long long chunk = json_integer_value(json_object_get(meta, "chunk"));
  json_t *cl = json_object_get(meta, "chunks");
  long long n = chunk > 0 ? (size + chunk - 1) / chunk : -1;
  if (chunk <= 0 || strlen(sha) != 64 || size < 0 || (long long)json_array_size(cl) != n) {
    fprintf(stderr, "gdx: the provider's chunk list does not fit the file\n");
    json_decref(meta);
    curl_free(esc_path);
    return EX_REFUSED;
  }
  char *chunks = calloc((size_t)n * 64 + 1, 1);
  json_array_foreach(cl, i, e) {
    const char *h = json_string_value(e);
    if (h && strlen(h) == 64)
      memcpy(chunks + i * 64, h, 64);
  }
  json_decref(meta);
  const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  char out[1100], part[1200];
  snprintf(out, sizeof(out), "%s", outfile ? outfile : name);
  snprintf(part, sizeof(part), "%s.part", out);
  /* resume: keep the whole chunks of the part file that still match */
  FILE *f = fopen(part, "a+b");
  if (f == NULL) {
    fprintf(stderr, "gdx: cannot write %s: %s\n", part, strerror(errno));
    free(chunks);
    curl_free(esc_path);
    return EX_USAGE;
  }
  long long have = 0;
  char *blk = malloc((size_t)chunk);
  rewind(f);
  for (long long k = 0; k < n; k++) {
    long long want = size - have < chunk ? size - have : chunk;
    if (fread(blk, 1, (size_t)want, f) != (size_t)want)
      break;
    unsigned char md[32];
    unsigned ml = 0;
    char hex[65];
    EVP_Digest(blk, (size_t)want, md, &ml, EVP_sha256(), NULL);
    md_hex(md, hex);
    if (memcmp(hex, chunks + k * 64, 64) != 0)
      break;
    have += want;
  }
  free(blk);
  fclose(f);
  if (truncate(part, have) != 0 || (f = fopen(part, "ab")) == NULL) {
    fprintf(stderr, "gdx: cannot write %s: %s\n", part, strerror(errno));
    free(chunks);
    curl_free(esc_path);
    return EX_USAGE;
  }
  if (have > 0)
    fprintf(stderr, "resuming %s at %lld of %lld bytes\n", path, have, size);
  dl_state d = {.f = f, .md = EVP_MD_CTX_new(), .chunks = chunks, .chunk = chunk, .size = size,
                .pos = have, .verified = have, .started = have, .tty = isatty(2)};
  EVP_DigestInit_ex(d.md, EVP_sha256(), NULL);
  clock_gettime(CLOCK_MONOTONIC, &d.t0);
  CURLcode cr = CURLE_OK;
  long status = 200;
  if (have < size) {
    snprintf(url, sizeof(url), "%s/data?path=%s&sha256=%s&offset=%lld", base, esc_path, sha,
             have);
    char auth[600];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* stalled for a minute: give up */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    cr = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
  }
  curl_free(esc_path);
  EVP_MD_CTX_free(d.md);
  free(chunks);
  int ok = fclose(f) == 0 && cr == CURLE_OK && d.verified == size;
  if (d.tty)
    dl_progress(&d, 1);
  if (!ok) {
    if (truncate(part, d.verified) != 0) { /* keep only what was verified */
    }
    if (d.mismatch)
      fprintf(stderr, "gdx: the file changed at the provider while it was fetched; run the "
                      "same command again to fetch the new version\n");
    else
      fprintf(stderr, "gdx: the download stopped at %lld of %lld bytes (%s, HTTP %ld); run the "
                      "same command again to resume\n", d.verified, size,
              curl_easy_strerror(cr), status);
    return d.mismatch ? EX_CONFLICT : status >= 400 ? exit_for(status) : EX_UNREACHABLE;
  }
  if (rename(part, out) != 0) {
    fprintf(stderr, "gdx: cannot rename %s: %s\n", part, strerror(errno));
    return EX_REFUSED;
  }
  fprintf(stderr, "fetched %s (%lld bytes, SHA-256 %s, every chunk verified) into %s\n", path,
          size, sha, out);
  return EX_OK;
}

static int cmd_fetch(int argc, char **argv) {
  const char *client = NULL, *token = NULL, *format = "csv", *outfile = NULL, *res = NULL;
  const char *file = NULL;
  int list = 0;
  long page = 5000;
  for (int i = 0; i < argc; i++) {
    int more = i + 1 < argc;
    if (strcmp(argv[i], "--client-id") == 0 && more) client = argv[++i];
    else if (strcmp(argv[i], "--token") == 0 && more) token = argv[++i];
    else if (strcmp(argv[i], "--format") == 0 && more) format = argv[++i];
    else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && more)
      outfile = argv[++i];
    else if (strcmp(argv[i], "--page") == 0 && more) page = atol(argv[++i]);
    else if (strcmp(argv[i], "--list") == 0) list = 1;
    else if (strcmp(argv[i], "--file") == 0 && more) file = argv[++i];
    else if (res == NULL && argv[i][0] != '-') res = argv[i];
    else return usage_error("unexpected argument", help_fetch);
  }
  int jsonl = strcmp(format, "jsonl") == 0;
  if (res == NULL || (!client && !token))
    return usage_error("fetch needs RESOURCE and --client-id or --token", help_fetch);
  if (!jsonl && strcmp(format, "csv") != 0)
    return usage_error("--format is csv or jsonl", help_fetch);
  if (page < 1 || page > 10000)
    return usage_error("--page is 1 to 10000 rows", help_fetch);
  char tokbuf[512];
  if (client) {
    int rc = access_token(client, tokbuf, sizeof(tokbuf));
    if (rc)
      return rc;
    token = tokbuf;
  }
  if (list || file) {
    json_t *sess = session_load();
    char base[2048];
    snprintf(base, sizeof(base), "%s/svc/%s", broker_url(sess), res);
    json_decref(sess);
    if (file)
      return fetch_file(base, token, file, outfile);
    int ex = EX_OK;
    json_t *l = list_files(base, token, &ex);
    return l ? emit(l, file_cols, NCOLS(file_cols), 1) : ex;
  }
  char part[1100] = "";
  FILE *f = stdout;
  if (outfile) {
    snprintf(part, sizeof(part), "%s.part", outfile);
    f = fopen(part, "w");
    if (f == NULL) {
      fprintf(stderr, "gdx: cannot write %s: %s\n", part, strerror(errno));
      return EX_USAGE;
    }
  }
  json_t *s = session_load();
  char base[2048];
  snprintf(base, sizeof(base), "%s/svc/%s/snapshot?limit=%ld", broker_url(s), res, page);
  json_decref(s);
  int tty = isatty(2), ex = EX_OK;
  long long rows = 0;
  char *after = NULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    char url[8192];
    snprintf(url, sizeof(url), "%s%s%s", base, after ? "&after=" : "", after ? after : "");
    json_t *pg = svc_get(url, token, &ex);
    if (pg == NULL)
      break;
    json_t *cols = json_object_get(pg, "columns"), *data = json_object_get(pg, "rows");
    size_t i, k;
    json_t *row, *v;
    if (rows == 0 && !jsonl) {
      json_array_foreach(cols, k, v) {
        if (k)
          fputc(',', f);
        csv_field(f, v);
      }
      fputc('\n', f);
    }
    json_array_foreach(data, i, row) {
      if (jsonl) {
        json_t *o = json_object();
        json_array_foreach(cols, k, v) json_object_set(o, json_string_value(v),
                                                       json_array_get(row, k));
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fprintf(f, "%s\n", line ? line : "{}");
        free(line);
        json_decref(o);
      } else {
        json_array_foreach(row, k, v) {
          if (k)
            fputc(',', f);
          csv_field(f, v);
        }
        fputc('\n', f);
      }
    }
    rows += (long long)json_array_size(data);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (tty)
      fprintf(stderr, "\rfetched %lld rows (%.0f rows/s)   ", rows, secs > 0 ? rows / secs : 0.0);
    int done = json_is_true(json_object_get(pg, "done")) ||
               !json_is_array(json_object_get(pg, "last"));
    free(after);
    after = NULL;
    if (!done) {
      char *key = json_dumps(json_object_get(pg, "last"), JSON_COMPACT);
      after = key ? curl_easy_escape(NULL, key, 0) : NULL;
      free(key);
      if (after) { /* curl's allocation into ours */
        char *copy = strdup(after);
        curl_free(after);
        after = copy;
      }
    }
    json_decref(pg);
    if (done || after == NULL)
      break;
  }
  free(after);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  if (f != stdout && fclose(f) != 0 && ex == EX_OK) {
    fprintf(stderr, "gdx: writing %s failed: %s\n", part, strerror(errno));
    ex = EX_REFUSED;
  }
  if (ex == EX_OK && outfile && rename(part, outfile) != 0) {
    fprintf(stderr, "gdx: cannot rename %s: %s\n", part, strerror(errno));
    ex = EX_REFUSED;
  }
  if (ex != EX_OK && outfile)
    unlink(part); /* nothing half-written under the real name */
  if (ex == EX_OK)
    fprintf(stderr, "%sfetched %lld rows in %.1f s%s%s\n", tty ? "\r" : "", rows, secs,
            outfile ? " into " : "", outfile ? outfile : "");
  return ex;
}

static const char help[] =
    "Usage: gdx [--broker URL] [--json] [--password-stdin] COMMAND ...\n"
    "\n"
    "The command-line client of the gdx data exchange broker.\n"
    "\n"
    "Commands:\n"
    "  login USER        log in (the session is kept in ~/.config/gdx/session.json)\n"
    "  logout            end the session\n"
    "  whoami            the logged-in account\n"
    "  passwd            change one's password\n"
    "  units ...         units: list, show, create, disable, enable\n"
    "  users ...         accounts: list, show, create, disable, enable, reset-password\n"
    "  audit ...         the audit trail: list, verify\n"
    "  catalog ...       search, show, history, create, update, submit, review, withdraw\n"
    "  requests ...      apply, list, show, approve, reject, cancel\n"
    "  authorizations .. list, revoke\n"
    "  demands ...       create, list, decide, fulfil\n"
    "  nodes ...         front-end nodes: enroll, list, status, token, revoke\n"
    "  credentials ...   application credentials: create, list, rotate, revoke\n"
    "  call RES PATH     call an API resource (or compare records) through the broker\n"
    "  fetch RES         fetch a table's snapshot (CSV, JSON Lines) or a folder's files\n"
    "  subscriptions ..  table subscriptions: list, report, reconcile\n"
    "  reconciliations   reconciliation runs (对账)\n"
    "  alarms ...        exchange alarms: list, ack\n"
    "  COMMAND --help    help on one command\n"
    "\n"
    "Options:\n"
    "  --broker URL      broker address (else $GDX_BROKER, else the saved one)\n"
    "  --json            print the API's JSON instead of tables\n"
    "  --password-stdin  read passwords from standard input, one per line\n"
    "\n"
    "Exit status: 0 ok, 1 refused, 2 usage, 3 broker unreachable, 4 not logged in,\n"
    "5 forbidden, 6 not found, 7 conflict.\n";

int main(int argc, char **argv) {
  setlocale(LC_ALL, "");
  static const struct option opts[] = {{"broker", required_argument, NULL, 'b'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"password-stdin", no_argument, NULL, 's'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, 'V'},
                                       {NULL, 0, NULL, 0}};
  int c;
  /* options may come before or after the command */
  static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
  } cmds[] = {{"login", cmd_login, help_login},
              {"logout", cmd_logout, "Usage: gdx logout\n"},
              {"whoami", cmd_whoami, "Usage: gdx whoami\n"},
              {"passwd", cmd_passwd, "Usage: gdx passwd [--password-stdin]\n"},
              {"units", cmd_units, help_units},
              {"users", cmd_users, help_users},
              {"audit", cmd_audit, help_audit},
              {"catalog", cmd_catalog, help_catalog},
              {"requests", cmd_requests, help_requests},
              {"authorizations", cmd_authorizations, help_auth},
              {"demands", cmd_demands, help_demands},
              {"nodes", cmd_nodes, help_nodes},
              {"credentials", cmd_credentials, help_credentials},
              {"call", cmd_call, help_call},
              {"fetch", cmd_fetch, help_fetch},
              {"subscriptions", cmd_subscriptions, help_subscriptions},
              {"reconciliations", cmd_reconciliations, help_reconciliations},
              {"alarms", cmd_alarms, help_alarms}};
  int want_help = 0;
  while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (c) {
    case 'b': opt_broker = optarg; break;
    case 'j': opt_json = 1; break;
    case 's': opt_stdin = 1; break;
    case 'h': want_help = 1; break;
    case 'V': printf("gdx %s\n", GDX_VERSION); return 0;
    default: fputs(help, stderr); return EX_USAGE;
    }
  }
  if (optind >= argc) {
    fputs(help, want_help ? stdout : stderr);
    return want_help ? EX_OK : EX_USAGE;
  }
  const char *name = argv[optind];
  /* collect the command's own arguments, taking global options anywhere */
  char *rest[64];
  int nrest = 0;
  for (int i = optind + 1; i < argc && nrest < 64; i++) {
    if (strcmp(argv[i], "--json") == 0) opt_json = 1;
    else if (strcmp(argv[i], "--password-stdin") == 0) opt_stdin = 1;
    else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) want_help = 1;
    else if (strcmp(argv[i], "--broker") == 0 && i + 1 < argc) opt_broker = argv[++i];
    else rest[nrest++] = argv[i];
  }
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    if (strcmp(cmds[i].name, name) != 0)
      continue;
    if (want_help) {
      fputs(cmds[i].help, stdout);
      return EX_OK;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmds[i].fn(nrest, rest);
    curl_global_cleanup();
    return rc;
  }
  fprintf(stderr, "gdx: unknown command '%s'\n\n%s", name, help);
  return EX_USAGE;
}
