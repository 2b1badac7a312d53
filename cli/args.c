#include "args.h"

#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "error.h"
#include "num.h"

const char *cli_opt(int argc, char **argv, const char *key) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], key) == 0)
      return argv[i + 1];
  return NULL;
}

int cli_flag(int argc, char **argv, const char *key) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], key) == 0)
      return 1;
  return 0;
}

/* "a,b,c" -> ["a","b","c"] */
json_t *cli_csv_array(const char *csv) {
  json_t *a = json_array();
  char copy[2048];
  snprintf(copy, sizeof(copy), "%s", csv);
  for (char *t = strtok(copy, ","); t; t = strtok(NULL, ","))
    json_array_append_new(a, json_string(t));
  return a;
}

int cli_query_add(char *q, size_t n, const char *key, const char *val) {
  if (val == NULL)
    return CLI_EX_OK;
  char *esc = curl_easy_escape(NULL, val, 0);
  if (esc == NULL) {
    fprintf(stderr, "gdx: out of memory\n");
    return CLI_EX_REFUSED;
  }
  size_t used = strlen(q);
  int len = snprintf(q + used, n - used, "%s%s=%s", strchr(q, '?') ? "&" : "?", key, esc);
  curl_free(esc);
  if (len < 0 || (size_t)len >= n - used) { /* a cut query would ask for something else */
    q[used] = '\0';
    fprintf(stderr, "gdx: the request's address is longer than %zu bytes\n", n - 1);
    return CLI_EX_USAGE;
  }
  return CLI_EX_OK;
}

int cli_num_arg(const char *name, const char *text, long long min, long long max,
                const char *help, long long *out) {
  long long v;
  if (gdx_num_parse(text, min, max, &v) == GDX_OK) {
    if (out)
      *out = v;
    return CLI_EX_OK;
  }
  char msg[256];
  if (max == LLONG_MAX)
    snprintf(msg, sizeof(msg), "%s: must be a whole number, %lld or more (got \"%.64s\")", name,
             min, text ? text : "");
  else
    snprintf(msg, sizeof(msg), "%s: must be a whole number from %lld to %lld (got \"%.64s\")",
             name, min, max, text ? text : "");
  return cli_usage_error(msg, help);
}

int cli_id_arg(const char *name, const char *text, const char *help, long long *out) {
  return cli_num_arg(name, text, 1, LLONG_MAX, help, out);
}

int cli_usage_error(const char *msg, const char *help) {
  fprintf(stderr, "gdx: %s\n\n%s", msg, help);
  return CLI_EX_USAGE;
}

int cli_read_secret(const char *prompt, char *out, size_t n) {
  int tty = !cli_opts.password_stdin && isatty(0);
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

