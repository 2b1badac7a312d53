/* gdx commands of accounts: login, logout, whoami, passwd, units, users
 * and the audit trail. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "output.h"

#define CLI_NCOLS(a) (sizeof(a) / sizeof(a[0]))
static const char *const unit_cols[] = {"code:CODE", "name:NAME", "roles:ROLES", "status:STATUS",
                                        "created_at:CREATED"};
static const char *const user_cols[] = {"username:USER", "display_name:NAME", "role:ROLE",
                                        "unit_code:UNIT", "status:STATUS", "locked:LOCKED",
                                        "must_change_password:MUST CHANGE PW"};
static const char *const audit_cols[] = {"id:ID", "ts:TIME", "actor:ACTOR", "unit_code:UNIT",
                                         "action:ACTION", "object:OBJECT", "result:RESULT",
                                         "source:SOURCE"};


static const char help_login[] =
    "Usage: gdx login [--broker URL] [--password-stdin] USER\n"
    "Logs in and keeps the session token in ~/.config/gdx/session.json (mode 0600).\n";

static int cmd_login(int argc, char **argv) {
  if (argc != 1)
    return cli_usage_error("login takes one user name", help_login);
  char pw[512];
  if (cli_read_secret("password: ", pw, sizeof(pw)))
    return cli_usage_error("no password given", help_login);
  json_t *s = cli_session_load();
  if (s == NULL)
    s = json_object();
  json_object_set_new(s, "broker", json_string(cli_broker_url(s)));
  json_object_del(s, "token");
  cli_session_save(s);
  json_t *out;
  int rc = cli_call("POST", "/api/v1/auth/login",
                    json_pack("{s:s, s:s}", "username", argv[0], "password", pw), &out);
  explicit_bzero(pw, sizeof(pw));
  if (rc) {
    json_decref(s);
    return rc;
  }
  json_object_set(s, "token", json_object_get(out, "token"));
  json_object_set_new(s, "username", json_string(argv[0]));
  cli_session_save(s);
  json_decref(s);
  if (cli_opts.json) {
    json_object_del(out, "token");
    return cli_emit(out, NULL, 0, 0);
  }
  printf("logged in as %s (%s, unit %s)\n", argv[0],
         json_string_value(json_object_get(out, "role")),
         json_string_value(json_object_get(out, "unit_code")));
  if (json_is_true(json_object_get(out, "must_change_password")))
    printf("the initial password must be changed before anything else: gdx passwd\n");
  if (json_is_true(json_object_get(out, "password_expired")))
    printf("the password has expired: gdx passwd\n");
  json_decref(out);
  return CLI_EX_OK;
}

static int cmd_logout(int argc, char **argv) {
  json_t *out;
  int rc = cli_call("POST", "/api/v1/auth/logout", NULL, &out);
  json_t *s = cli_session_load();
  if (s) {
    json_object_del(s, "token");
    cli_session_save(s);
    json_decref(s);
  }
  if (rc == CLI_EX_OK) {
    json_decref(out);
    printf("logged out\n");
  }
  return rc == CLI_EX_AUTH ? CLI_EX_OK : rc;
}

static int cmd_whoami(int argc, char **argv) {
  json_t *out;
  int rc = cli_call("GET", "/api/v1/me", NULL, &out);
  static const char *const cols[] = {"username:user",           "display_name:name",
                                     "role:role",               "unit_code:unit",
                                     "unit_name:unit name",     "unit_roles:unit roles",
                                     "must_change_password:must change password",
                                     "password_changed_at:password changed"};
  return rc ? rc : cli_emit(out, cols, CLI_NCOLS(cols), 0);
}

static int cmd_passwd(int argc, char **argv) {
  char old[512], nw[512], again[512];
  if (cli_read_secret("current password: ", old, sizeof(old)) ||
      cli_read_secret("new password: ", nw, sizeof(nw)))
    return cli_usage_error("passwords missing", "Usage: gdx passwd [--password-stdin]\n");
  if (!cli_opts.password_stdin && isatty(0)) {
    if (cli_read_secret("new password again: ", again, sizeof(again)) || strcmp(nw, again) != 0) {
      fprintf(stderr, "gdx: the two new passwords differ\n");
      return CLI_EX_USAGE;
    }
  }
  json_t *out;
  int rc = cli_call("POST", "/api/v1/auth/password",
                    json_pack("{s:s, s:s}", "old_password", old, "new_password", nw), &out);
  explicit_bzero(old, sizeof(old));
  explicit_bzero(nw, sizeof(nw));
  if (rc == CLI_EX_OK) {
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
    return cli_usage_error("units needs a subcommand", help_units);
  const char *sub = argv[0];
  json_t *out;
  int rc;
  if (strcmp(sub, "list") == 0) {
    rc = cli_call("GET", "/api/v1/units", NULL, &out);
    return rc ? rc : cli_emit(out, unit_cols, CLI_NCOLS(unit_cols), 1);
  }
  if (strcmp(sub, "show") == 0 || strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) {
    if (argc != 2)
      return cli_usage_error("give one unit code", help_units);
    return cli_item_verb("/api/v1/units", sub, argv[1], unit_cols, CLI_NCOLS(unit_cols));
  }
  if (strcmp(sub, "create") == 0) {
    const char *code = NULL, *name = NULL, *roles = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
      if (strcmp(argv[i], "--code") == 0) code = argv[i + 1];
      else if (strcmp(argv[i], "--name") == 0) name = argv[i + 1];
      else if (strcmp(argv[i], "--roles") == 0) roles = argv[i + 1];
      else return cli_usage_error("unknown option", help_units);
    }
    if (!code || !name || !roles)
      return cli_usage_error("create needs --code, --name and --roles", help_units);
    rc = cli_call("POST", "/api/v1/units",
                  json_pack("{s:s, s:s, s:o}", "code", code, "name", name, "roles",
                            cli_csv_array(roles)),
                  &out);
    return rc ? rc : cli_emit(out, unit_cols, CLI_NCOLS(unit_cols), 0);
  }
  return cli_usage_error("unknown units subcommand", help_units);
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
    return cli_usage_error("users needs a subcommand", help_users);
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
      return cli_usage_error("list takes only --unit CODE", help_users);
    rc = cli_call("GET", path, NULL, &out);
    return rc ? rc : cli_emit(out, user_cols, CLI_NCOLS(user_cols), 1);
  }
  if (strcmp(sub, "show") == 0 || strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) {
    if (argc != 2)
      return cli_usage_error("give one user name", help_users);
    return cli_item_verb("/api/v1/accounts", sub, argv[1], user_cols, CLI_NCOLS(user_cols));
  }
  if (strcmp(sub, "reset-password") == 0) {
    if (argc != 2)
      return cli_usage_error("give one user name", help_users);
    char pw[512];
    if (cli_read_secret("new initial password: ", pw, sizeof(pw)))
      return cli_usage_error("no password given", help_users);
    snprintf(path, sizeof(path), "/api/v1/accounts/%s/reset-password", argv[1]);
    rc = cli_call("POST", path, json_pack("{s:s}", "new_password", pw), &out);
    explicit_bzero(pw, sizeof(pw));
    if (rc == CLI_EX_OK && !cli_opts.json) {
      json_decref(out);
      printf("password of %s reset; it must be changed at the next login\n", argv[1]);
      return CLI_EX_OK;
    }
    return rc ? rc : cli_emit(out, NULL, 0, 0);
  }
  if (strcmp(sub, "create") == 0) {
    const char *user = NULL, *name = NULL, *role = NULL, *unit = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
      if (strcmp(argv[i], "--username") == 0) user = argv[i + 1];
      else if (strcmp(argv[i], "--name") == 0) name = argv[i + 1];
      else if (strcmp(argv[i], "--role") == 0) role = argv[i + 1];
      else if (strcmp(argv[i], "--unit") == 0) unit = argv[i + 1];
      else return cli_usage_error("unknown option", help_users);
    }
    if (!user || !name || !role)
      return cli_usage_error("create needs --username, --name and --role", help_users);
    char pw[512];
    if (cli_read_secret("initial password: ", pw, sizeof(pw)))
      return cli_usage_error("no initial password given", help_users);
    json_t *b = json_pack("{s:s, s:s, s:s, s:s}", "username", user, "display_name", name, "role",
                          role, "initial_password", pw);
    explicit_bzero(pw, sizeof(pw));
    if (unit)
      json_object_set_new(b, "unit_code", json_string(unit));
    rc = cli_call("POST", "/api/v1/accounts", b, &out);
    return rc ? rc : cli_emit(out, user_cols, CLI_NCOLS(user_cols), 0);
  }
  return cli_usage_error("unknown users subcommand", help_users);
}

static const char help_audit[] =
    "Usage: gdx audit list [--after ID] [--limit N] [--action ACTION] [--actor USER]\n"
    "       gdx audit verify\n"
    "verify checks the hash chain and names the first edited, inserted or deleted record\n"
    "(exit status 1 when the chain is broken).\n";

static int cmd_audit(int argc, char **argv) {
  if (argc < 1)
    return cli_usage_error("audit needs a subcommand", help_audit);
  json_t *out;
  int rc;
  if (strcmp(argv[0], "verify") == 0) {
    rc = cli_call("GET", "/api/v1/audit/verify", NULL, &out);
    if (rc)
      return rc;
    int ok = json_is_true(json_object_get(out, "ok"));
    if (cli_opts.json) {
      cli_emit(out, NULL, 0, 0);
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
    return ok ? CLI_EX_OK : CLI_EX_REFUSED;
  }
  if (strcmp(argv[0], "list") == 0) {
    char path[1024] = "/api/v1/audit";
    for (int i = 1; i < argc; i += 2) {
      if (i + 1 >= argc)
        return cli_usage_error("option without a value", help_audit);
      const char *key = strcmp(argv[i], "--after") == 0    ? "after_id"
                        : strcmp(argv[i], "--limit") == 0  ? "limit"
                        : strcmp(argv[i], "--action") == 0 ? "action"
                        : strcmp(argv[i], "--actor") == 0  ? "actor"
                                                           : NULL;
      if (key == NULL)
        return cli_usage_error("unknown option", help_audit);
      /* the broker has the last word on the range; a typo is caught here */
      int is_limit = strcmp(key, "limit") == 0;
      if (is_limit || strcmp(key, "after_id") == 0) {
        rc = cli_num_arg(argv[i], argv[i + 1], is_limit ? 1 : 0, LLONG_MAX, help_audit, NULL);
        if (rc)
          return rc;
      }
      if ((rc = cli_query_add(path, sizeof(path), key, argv[i + 1])) != CLI_EX_OK)
        return rc;
    }
    rc = cli_call("GET", path, NULL, &out);
    return rc ? rc : cli_emit(out, audit_cols, CLI_NCOLS(audit_cols), 1);
  }
  return cli_usage_error("unknown audit subcommand", help_audit);
}

const cli_command cli_account_commands[] = {
    {"login", cmd_login, help_login},
    {"logout", cmd_logout, "Usage: gdx logout\n"},
    {"whoami", cmd_whoami, "Usage: gdx whoami\n"},
    {"passwd", cmd_passwd, "Usage: gdx passwd [--password-stdin]\n"},
    {"units", cmd_units, help_units},
    {"users", cmd_users, help_users},
    {"audit", cmd_audit, help_audit},
    {NULL, NULL, NULL}};
