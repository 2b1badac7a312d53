#include "platform_pki.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "pki.h"

/* ------------------------------------------------------------------ */
/* start-up: CA, token key, the broker's own certificate                */

typedef struct {
  broker_pki *pki;
  char err[512];
  int done, rc;
} boot_job;

static int load_ca(gdx_db_conn *c, broker_pki *pki) {
  gdx_db_result r;
  int rc = gdx_db_query(c, "SELECT cert_pem, key_pem, fingerprint FROM platform_ca WHERE id = 1",
                        NULL, 0, 1, &r);
  if (rc)
    return rc;
  if (r.nrows == 1) {
    pki->ca_pem = strdup(gdx_db_get(&r, 0, 0));
    pki->ca_key_pem = strdup(gdx_db_get(&r, 0, 1));
    snprintf(pki->ca_fingerprint, sizeof(pki->ca_fingerprint), "%s", gdx_db_get(&r, 0, 2));
  }
  gdx_db_result_free(&r);
  return GDX_OK;
}

static int boot_work(gdx_db_conn *c, void *arg) {
  boot_job *j = arg;
  broker_pki *pki = j->pki;
  int rc = load_ca(c, pki);
  if (!rc && pki->ca_pem == NULL) {
    char *cert = NULL, *key = NULL, fp[GDX_SHA256_HEX_SIZE];
    rc = gdx_pki_ca_create("gdx platform CA", 3650, &cert, &key, j->err, sizeof(j->err));
    if (!rc)
      rc = gdx_pki_fingerprint(cert, fp);
    gdx_db_param p[] = {GDX_DB_P_STR(cert ? cert : ""), GDX_DB_P_STR(key ? key : ""),
                        GDX_DB_P_STR(fp)};
    uint64_t n = 0;
    /* IGNORE: another broker starting at the same moment may win; then its
     * CA is the one, and we read it back. */
    if (!rc)
      rc = gdx_db_exec(c,
                       "INSERT IGNORE INTO platform_ca (id, cert_pem, key_pem, fingerprint, "
                       "created_at) VALUES (1, ?, ?, ?, UTC_TIMESTAMP(6))",
                       p, 3, &n, NULL);
    if (!rc && n == 1)
      gdx_log_info("pki", "created the platform CA (fingerprint %s)", fp);
    free(cert);
    gdx_pki_free_secret(key);
    if (!rc)
      rc = load_ca(c, pki);
  }
  unsigned char key[32];
  if (!rc && RAND_bytes(key, sizeof(key)) != 1)
    rc = GDX_EIO;
  gdx_db_param pk[] = {GDX_DB_P_BIN((const char *)key, sizeof(key))};
  if (!rc)
    rc = gdx_db_exec(c,
                     "INSERT IGNORE INTO broker_secrets (name, value, created_at) "
                     "VALUES ('token_hmac', ?, UTC_TIMESTAMP(6))",
                     pk, 1, NULL, NULL);
  OPENSSL_cleanse(key, sizeof(key));
  gdx_db_result r;
  if (!rc && (rc = gdx_db_query(c, "SELECT value FROM broker_secrets WHERE name = 'token_hmac'",
                                NULL, 0, 1, &r)) == GDX_OK) {
    if (r.nrows == 1 && r.lens[0] == 32)
      memcpy(pki->token_key, r.cells[0], 32);
    else
      rc = GDX_EINVAL;
    gdx_db_result_free(&r);
  }
  if (rc && j->err[0] == '\0')
    snprintf(j->err, sizeof(j->err), "cannot load the platform CA: %s", gdx_db_error(c));
  return rc;
}

static void boot_done(int status, void *arg) {
  boot_job *j = arg;
  j->rc = status;
  j->done = 1;
}

static int write_public(const char *path, const char *pem, char *err, size_t errlen) {
  char tmp[1100];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL || fputs(pem, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write %s", path);
    return GDX_EIO;
  }
  return GDX_OK;
}

int platform_pki_boot(uv_loop_t *loop, gdx_db_pool *db, const gdx_broker_config *cfg,
                      const char *instance, broker_pki *pki, char *err, size_t errlen) {
  boot_job j = {.pki = pki};
  int rc = gdx_db_submit(db, boot_work, boot_done, &j);
  while (!rc && !j.done)
    uv_run(loop, UV_RUN_ONCE);
  if (!rc)
    rc = j.rc;
  if (rc) {
    snprintf(err, errlen, "%s", j.err[0] ? j.err : "cannot load the platform CA");
    return rc;
  }
  const char *dir = cfg->pki_dir;
  if (mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0) {
    snprintf(err, errlen, "pki.dir: cannot create or write %s", dir);
    return GDX_ECONFIG;
  }
  snprintf(pki->ca_file, sizeof(pki->ca_file), "%s/ca.crt", dir);
  snprintf(pki->cert_file, sizeof(pki->cert_file), "%s/broker.crt", dir);
  snprintf(pki->key_file, sizeof(pki->key_file), "%s/broker.key", dir);
  /* A fresh key and certificate at every start: nothing to renew, and a
   * copied pki.dir is worth little. */
  char *key = NULL, *csr = NULL, *cert = NULL, serial[GDX_PKI_SERIAL_HEX];
  rc = gdx_pki_key_create(&key, err, errlen);
  if (!rc)
    rc = gdx_pki_csr_create(key, BROKER_UNIT, instance, &csr, err, errlen);
  if (!rc)
    rc = gdx_pki_csr_sign_san(pki->ca_pem, pki->ca_key_pem, csr, BROKER_UNIT, instance,
                              cfg->pki_broker_names, 3650, &cert, serial, err, errlen);
  if (!rc)
    rc = gdx_pki_write_private(pki->key_file, key, err, errlen);
  if (!rc)
    rc = write_public(pki->cert_file, cert, err, errlen);
  if (!rc)
    rc = write_public(pki->ca_file, pki->ca_pem, err, errlen);
  gdx_pki_free_secret(key);
  free(csr);
  free(cert);
  if (cfg->nodes_url)
    snprintf(pki->nodes_url, sizeof(pki->nodes_url), "%s", cfg->nodes_url);
  return rc;
}

void platform_pki_free(broker_pki *pki) {
  free(pki->ca_pem);
  gdx_pki_free_secret(pki->ca_key_pem);
  OPENSSL_cleanse(pki->token_key, sizeof(pki->token_key));
  memset(pki, 0, sizeof(*pki));
}
