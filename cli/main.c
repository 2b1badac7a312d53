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
 * This file reads the global options and hands the rest to one command of
 * the areas' tables (cli.h). The session (broker address and token) is kept
 * in $XDG_CONFIG_HOME/gdx/session.json (or ~/.config/gdx/), mode 0600.
 * Output is a human table by default and the API's JSON with --json.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

cli_options cli_opts;

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

/* The command called `name`, or NULL. */
static const cli_command *find_command(const char *name) {
  static const cli_command *const areas[] = {cli_account_commands, cli_catalog_commands,
                                             cli_exchange_commands, cli_fetch_commands};
  for (size_t a = 0; a < sizeof(areas) / sizeof(areas[0]); a++)
    for (const cli_command *c = areas[a]; c->name; c++)
      if (strcmp(c->name, name) == 0)
        return c;
  return NULL;
}

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
  int want_help = 0;
  while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (c) {
    case 'b': cli_opts.broker = optarg; break;
    case 'j': cli_opts.json = 1; break;
    case 's': cli_opts.password_stdin = 1; break;
    case 'h': want_help = 1; break;
    case 'V': printf("gdx %s\n", GDX_VERSION); return 0;
    default: fputs(help, stderr); return CLI_EX_USAGE;
    }
  }
  if (optind >= argc) {
    fputs(help, want_help ? stdout : stderr);
    return want_help ? CLI_EX_OK : CLI_EX_USAGE;
  }
  const char *name = argv[optind];
  /* collect the command's own arguments, taking global options anywhere */
  char *rest[64];
  int nrest = 0;
  for (int i = optind + 1; i < argc && nrest < 64; i++) {
    if (strcmp(argv[i], "--json") == 0) cli_opts.json = 1;
    else if (strcmp(argv[i], "--password-stdin") == 0) cli_opts.password_stdin = 1;
    else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) want_help = 1;
    else if (strcmp(argv[i], "--broker") == 0 && i + 1 < argc) cli_opts.broker = argv[++i];
    else rest[nrest++] = argv[i];
  }
  const cli_command *cmd = find_command(name);
  if (cmd == NULL) {
    fprintf(stderr, "gdx: unknown command '%s'\n\n%s", name, help);
    return CLI_EX_USAGE;
  }
  if (want_help) {
    fputs(cmd->help, stdout);
    return CLI_EX_OK;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = cmd->run(nrest, rest);
  curl_global_cleanup();
  return rc;
}
