#include "frontdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "migrate.h"

#define QUEUE_MAX 1024
#define CONNECT_TIMEOUT_S 5

/* gdx_db_options.on_connect: the node's migrations on a new connection (a
 * worker thread). Cheap once applied: a lock, one SELECT and the files'
 * checksums. */
static int migrate_connection(MYSQL *my, void *dir, char *err, size_t errlen) {
  int applied = 0;
  int rc = gdx_migrate_on(my, "node", dir, &applied, err, errlen);
  if (rc == GDX_OK && applied > 0)
    gdx_log_info("node", "front-end database schema is current (%d migration%s applied now)",
                 applied, applied == 1 ? "" : "s");
  return rc;
}

int gdx__node_frontdb_start(uv_loop_t *loop, const gdx_node_config *cfg, const char *migrations_dir,
                            gdx_db_pool **out, char *err, size_t errlen) {
  if (cfg->fdb_user == NULL) {
    snprintf(err, errlen, "frontdb.user: required with frontdb.name");
    return GDX_ECONFIG;
  }
  char why[400];
  if (gdx_migrate_check(migrations_dir, why, sizeof(why)) != GDX_OK) {
    snprintf(err, errlen, "schema_dir: %s", why);
    return GDX_ECONFIG;
  }
  char *pw = NULL;
  if (cfg->fdb_password_file &&
      gdx_config_read_secret(cfg->fdb_password_file, &pw, err, errlen) != GDX_OK)
    return GDX_ECONFIG;
  gdx_db_options o = {.host = cfg->fdb_host,
                      .socket = cfg->fdb_socket,
                      .port = (unsigned)cfg->fdb_port,
                      .user = cfg->fdb_user,
                      .password = pw,
                      .database = cfg->fdb_name,
                      .pool_size = (unsigned)cfg->fdb_pool_size,
                      .queue_max = QUEUE_MAX,
                      .connect_timeout_s = CONNECT_TIMEOUT_S,
                      .on_connect = migrate_connection,
                      .on_connect_arg = (void *)migrations_dir};
  int rc = gdx_db_pool_start(loop, &o, out);
  if (pw)
    explicit_bzero(pw, strlen(pw));
  free(pw);
  if (rc)
    snprintf(err, errlen, "frontdb: cannot start the connection pool");
  return rc;
}
