/* gdx-broker command line: reads the configuration, starts the broker and
 * runs the event loop until SIGTERM or SIGINT, then shuts down gracefully. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "error.h"
#include "log.h"

enum { EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_START = 4 };

static const char usage[] =
    "Usage: gdx-broker --config FILE [--check-config]\n"
    "       gdx-broker --config FILE --init-admin USER --unit-code CODE --unit-name NAME\n"
    "\n"
    "The gdx broker: catalog, accounts, requests and the data exchange between\n"
    "front-end nodes. Serves GET /healthz and GET /metrics.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   configuration file (libconfig syntax; see docs/config.md)\n"
    "      --check-config  check the configuration file and exit\n"
    "      --print-keys    list every configuration key with its default\n"
    "      --init-admin USER  create the operations unit (--unit-code, --unit-name)\n"
    "                      and its first operations admin, reading the initial\n"
    "                      password from standard input; it must be changed at\n"
    "                      the first login\n"
    "  -V, --version       print the version and exit\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 clean shutdown, 2 usage, 3 configuration error,\n"
    "4 start-up failure (database, migrations, listening socket).\n";

static gdx_broker *broker;
static uv_signal_t sigterm, sigint;

static void on_stopped(void *data) {
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  static int stopping;
  if (stopping) {
    gdx_log_warn("broker", "second signal: exiting at once");
    _exit(1);
  }
  stopping = 1;
  gdx_log_info("broker", "%s received: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  gdx_broker_stop(broker, on_stopped, NULL);
}

static void print_keys(void) {
  for (size_t i = 0; i < gdx_broker_config_nkeys; i++) {
    const gdx_cfg_key *k = &gdx_broker_config_keys[i];
    if (k->type == GDX_CFG_STR)
      printf("%-28s %-10s %s%s\n", k->path, k->def_str ? k->def_str : "(unset)", k->help,
             k->required ? " [required]" : "");
    else if (k->type == GDX_CFG_BOOL)
      printf("%-28s %-10s %s\n", k->path, k->def_int ? "true" : "false", k->help);
    else
      printf("%-28s %-10lld %s\n", k->path, k->def_int, k->help);
  }
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
      {"print-keys", no_argument, NULL, 'p'},   {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},         {"init-admin", required_argument, NULL, 'a'},
      {"unit-code", required_argument, NULL, 'u'}, {"unit-name", required_argument, NULL, 'n'},
      {NULL, 0, NULL, 0}};
  const char *init_user = NULL, *unit_code = NULL, *unit_name = NULL;
  const char *config = NULL;
  int check_only = 0, c;
  while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 'a': init_user = optarg; break;
    case 'u': unit_code = optarg; break;
    case 'n': unit_name = optarg; break;
    case 'k': check_only = 1; break;
    case 'p': print_keys(); return 0;
    case 'V': printf("gdx-broker %s\n", GDX_VERSION); return 0;
    case 'h': fputs(usage, stdout); return 0;
    default: fputs(usage, stderr); return EXIT_USAGE;
    }
  }
  if (config == NULL || optind != argc) {
    fprintf(stderr, "gdx-broker: %s\n\n%s", config ? "unexpected argument" : "--config is required", usage);
    return EXIT_USAGE;
  }

  char err[1024];
  gdx_broker_config cfg;
  if (gdx_broker_config_load(config, &cfg, err, sizeof(err)) != GDX_OK) {
    fprintf(stderr, "gdx-broker: %s\n", err);
    return EXIT_CONFIG;
  }
  gdx_log_level level;
  gdx_log_format format;
  gdx_log_level_parse(cfg.log_level, &level);
  gdx_log_format_parse(cfg.log_format, &format);
  if (gdx_log_setup(level, format, cfg.log_file) != GDX_OK) {
    fprintf(stderr, "gdx-broker: %s: log.file: cannot open %s\n", config, cfg.log_file);
    gdx_broker_config_free(&cfg);
    return EXIT_CONFIG;
  }
  if (check_only) {
    printf("%s: configuration is valid\n", config);
    gdx_broker_config_free(&cfg);
    return 0;
  }

  if (init_user) {
    if (!unit_code || !unit_name) {
      fprintf(stderr, "gdx-broker: --init-admin needs --unit-code and --unit-name\n");
      gdx_broker_config_free(&cfg);
      return EXIT_USAGE;
    }
    char pw[512];
    if (fgets(pw, sizeof(pw), stdin) == NULL)
      pw[0] = '\0';
    pw[strcspn(pw, "\r\n")] = '\0';
    int rc = gdx_broker_init_admin(&cfg, init_user, unit_code, unit_name, pw, err, sizeof(err));
    explicit_bzero(pw, sizeof(pw));
    gdx_broker_config_free(&cfg);
    if (rc) {
      fprintf(stderr, "gdx-broker: %s\n", err);
      return rc == GDX_ECONFIG || rc == GDX_EINVAL ? EXIT_CONFIG : EXIT_START;
    }
    printf("created operations admin %s in unit %s; change the password at the first login\n",
           init_user, unit_code);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t *loop = uv_default_loop();
  gdx_log_info("broker", "gdx-broker %s starting with %s", GDX_VERSION, config);
  int rc = gdx_broker_start(loop, &cfg, &broker, err, sizeof(err));
  if (rc != GDX_OK) {
    gdx_log_error("broker", "cannot start: %s", err);
    if (broker) {
      gdx_broker_stop(broker, NULL, NULL);
      uv_run(loop, UV_RUN_DEFAULT);
    }
    gdx_broker_config_free(&cfg);
    return rc == GDX_ECONFIG ? EXIT_CONFIG : EXIT_START;
  }
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sigint, on_signal, SIGINT);
  gdx_log_info("broker", "ready");
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  gdx_broker_config_free(&cfg);
  gdx_log_info("broker", "stopped");
  return 0;
}
