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
 * n; nothing when val is NULL. */
void cli_query_add(char *q, size_t n, const char *key, const char *val);

/* Prints "gdx: msg" and the command's help; returns CLI_EX_USAGE. */
int cli_usage_error(const char *msg, const char *help);
/* A secret, asked for without echo on a terminal, else one line of
 * standard input (--password-stdin); -1 when there is none. */
int cli_read_secret(const char *prompt, char *out, size_t n);

#endif
