/* gdx-node command line: enrollment, configuration check, the daemon. */
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enroll.h"
#include "error.h"
#include "log.h"
#include "node.h"
#include "node_config.h"

enum { EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_START = 4 };

static const char usage[] =
    "Usage: gdx-node --config FILE [--check-config]\n"
    "       gdx-node --config FILE --enroll TOKEN\n"
    "\n"
    "The gdx front-end node (前置机) of one unit: serves the unit's resources to the\n"
    "broker over mutual TLS and reports heartbeats.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   configuration file (libconfig syntax; see docs/config.md, section gdx-node)\n"
    "      --enroll TOKEN  enroll with the one-time token from the unit admin\n"
    "                      (gdx nodes create): makes the key (mode 0600), gets the\n"
    "                      certificate, then exits; TOKEN - reads it from stdin\n"
    "      --check-config  check the configuration file and exit\n"
    "      --print-keys    list every configuration key with its default\n"
    "  -V, --version       print the version and exit\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 clean shutdown or enrolled, 2 usage, 3 configuration error\n"
    "(or not enrolled), 4 start-up or enrollment failure.\n";

static gdx_node *node;
static uv_signal_t sigterm, sigint;

static void on_stopped(void *data) {
  (void)data;
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  static int stopping;
  (void)s;
  if (stopping)
    _exit(1);
  stopping = 1;
  gdx_log_info("node", "%s received: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  gdx_node_stop(node, on_stopped, NULL);
}

static void print_keys(void) {
  for (size_t i = 0; i < gdx_node_config_nkeys; i++) {
    const gdx_cfg_key *k = &gdx_node_config_keys[i];
    if (k->type == GDX_CFG_STR)
      printf("%-26s %-12s %s%s\n", k->path, k->def_str ? k->def_str : "(unset)", k->help,
             k->required ? " [required]" : "");
    else if (k->type == GDX_CFG_BOOL)
      printf("%-26s %-12s %s\n", k->path, k->def_int ? "true" : "false", k->help);
    else if (k->type == GDX_CFG_LIST)
      printf("%-26s %-12s %s\n", k->path, "()", k->help);
    else
      printf("%-26s %-12lld %s\n", k->path, k->def_int, k->help);
  }
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
      {"enroll", required_argument, NULL, 'e'}, {"print-keys", no_argument, NULL, 'p'},
      {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *config = NULL, *token = NULL;
  int check_only = 0, c;
  /* libuv's pool runs file reads, hashing, chunk writes and virus scans (a
   * scan of a large file holds a thread for many seconds): more than the
   * default 4 threads, unless the operator chose */
  setenv("UV_THREADPOOL_SIZE", "16", 0);
  while ((c = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 'e': token = optarg; break;
    case 'k': check_only = 1; break;
    case 'p': print_keys(); return 0;
    case 'V': printf("gdx-node %s\n", GDX_VERSION); return 0;
    case 'h': fputs(usage, stdout); return 0;
    default: fputs(usage, stderr); return EXIT_USAGE;
    }
  }
  if (config == NULL || optind != argc) {
    fprintf(stderr, "gdx-node: %s\n\n%s", config ? "unexpected argument" : "--config is required",
            usage);
    return EXIT_USAGE;
  }
  char err[1024];
  gdx_node_config cfg;
  if (gdx_node_config_load(config, &cfg, err, sizeof(err)) != GDX_OK) {
    fprintf(stderr, "gdx-node: %s\n", err);
    return EXIT_CONFIG;
  }
  gdx_log_level level;
  gdx_log_format format;
  gdx_log_level_parse(cfg.log_level, &level);
  gdx_log_format_parse(cfg.log_format, &format);
  if (gdx_log_setup(level, format, cfg.log_file) != GDX_OK) {
    fprintf(stderr, "gdx-node: %s: log.file: cannot open %s\n", config, cfg.log_file);
    gdx_node_config_free(&cfg);
    return EXIT_CONFIG;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (token) {
    char line[256];
    if (strcmp(token, "-") == 0) {
      if (fgets(line, sizeof(line), stdin) == NULL)
        line[0] = '\0';
      line[strcspn(line, "\r\n")] = '\0';
      token = line;
    }
    int rc = gdx_node_enroll(&cfg, token, err, sizeof(err));
    if (rc) {
      fprintf(stderr, "gdx-node: enrollment failed: %s\n", err);
      gdx_node_config_free(&cfg);
      return rc == GDX_ECONFIG ? EXIT_CONFIG : EXIT_START;
    }
    printf("enrolled node %s of unit %s; key and certificate are in %s\n", cfg.id, cfg.unit,
           cfg.state_dir);
    gdx_node_config_free(&cfg);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t *loop = uv_default_loop();
  if (check_only) {
    /* the resources too: their settings are read by the adapters */
    if (gdx_node_config_check(&cfg, config, err, sizeof(err)) != GDX_OK) {
      fprintf(stderr, "gdx-node: %s\n", err);
      gdx_node_config_free(&cfg);
      return EXIT_CONFIG;
    }
    printf("%s: configuration is valid\n", config);
    gdx_node_config_free(&cfg);
    return 0;
  }
  gdx_log_info("node", "gdx-node %s starting with %s", GDX_VERSION, config);
  int rc = gdx_node_start(loop, &cfg, config, &node, err, sizeof(err));
  if (rc != GDX_OK) {
    gdx_log_error("node", "cannot start: %s", err);
    if (node) {
      gdx_node_stop(node, NULL, NULL);
      uv_run(loop, UV_RUN_DEFAULT);
    }
    gdx_node_config_free(&cfg);
    return rc == GDX_ECONFIG ? EXIT_CONFIG : EXIT_START;
  }
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  gdx_node_config_free(&cfg);
  gdx_log_info("node", "stopped");
  return 0;
}
