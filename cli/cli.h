/* gdx, the command-line client of the broker's REST API: what its parts
 * share.
 *
 * main.c reads the global options and dispatches to a command; the commands
 * live in one file per area (accounts.c, catalog.c, exchange.c, fetch.c),
 * each exporting a table of them. They talk to the broker through client.h,
 * print through output.h and read their arguments through args.h.
 *
 * Exit statuses are part of the interface (scripts and tests rely on them):
 * 0 ok, 1 refused by the broker (and the CLI's own failures), 2 usage,
 * 3 broker unreachable, 4 not logged in, 5 forbidden, 6 not found,
 * 7 conflict.
 */
#ifndef GDX_CLI_H
#define GDX_CLI_H

enum {
  CLI_EX_OK = 0,
  CLI_EX_REFUSED = 1,
  CLI_EX_USAGE = 2,
  CLI_EX_UNREACHABLE = 3,
  CLI_EX_AUTH = 4,
  CLI_EX_FORBIDDEN = 5,
  CLI_EX_NOTFOUND = 6,
  CLI_EX_CONFLICT = 7
};

/* The global options, accepted before or after the command. */
typedef struct {
  int json;             /* --json: the API's JSON instead of tables */
  const char *broker;   /* --broker URL (else $GDX_BROKER, else the saved one) */
  int password_stdin;   /* --password-stdin: secrets from standard input, one a line */
} cli_options;

extern cli_options cli_opts;

/* One command: run() gets the arguments after its name (global options
 * taken out) and returns the exit status; help is printed for --help. */
typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} cli_command;

/* Each area's commands, ended by an entry whose name is NULL. */
extern const cli_command cli_account_commands[];  /* login … passwd, units, users, audit */
extern const cli_command cli_catalog_commands[];  /* catalog, requests, authorizations, demands */
extern const cli_command cli_exchange_commands[]; /* nodes, credentials, call, subscriptions, … */
extern const cli_command cli_fetch_commands[];    /* fetch */

#endif
