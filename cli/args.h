/* What the user gives a command: options of the form --key value, flags,
 * comma-separated lists, secrets typed or piped, and the usage error that
 * a wrong argument earns. */
#ifndef GDX_CLI_ARGS_H
#define GDX_CLI_ARGS_H

#include <jansson.h>
#include <stddef.h>

/* The value after `key` among argv[1..] (argv[0] is the subcommand), or NULL. */
const char *cli_opt(int argc, char **argv, const char *key);
/* Whether the flag `key` is among argv[1..]. */
int cli_flag(int argc, char **argv, const char *key);
/* "a,b,c" -> ["a","b","c"] */
json_t *cli_csv_array(const char *csv);
/* Appends "?key=val" or "&key=val" (val URL-escaped) to the path q of size
 * n; nothing when val is NULL. CLI_EX_OK, or the exit status after saying
 * why (out of memory, or a path longer than n - 1, q then unchanged). */
int cli_query_add(char *q, size_t n, const char *key, const char *val);

/* Numbers on the command line are read whole and range-checked
 * (gdx_num_parse): "12x" is refused, not read as 12. */

/* `text`, given for `name` (an option such as "--quota", or an argument as
 * the help names it, such as "ID"), as a whole number in [min, max]:
 * CLI_EX_OK and *out (out may be NULL), or the usage error naming it
 * ("gdx: --quota: must be a whole number from 1 to 1000000000000 (got
 * "12x")") with the help, and CLI_EX_USAGE. */
int cli_num_arg(const char *name, const char *text, long long min, long long max,
                const char *help, long long *out);
/* The id of one of the broker's records (requests, authorizations, nodes,
 * alarms, ...): a whole number, 1 or more. */
int cli_id_arg(const char *name, const char *text, const char *help, long long *out);

/* Prints "gdx: msg" and the command's help; returns CLI_EX_USAGE. */
int cli_usage_error(const char *msg, const char *help);
/* A secret, asked for without echo on a terminal, else one line of
 * standard input (--password-stdin); -1 when there is none. */
int cli_read_secret(const char *prompt, char *out, size_t n);

#endif
