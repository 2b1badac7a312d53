/* Certificate renewal, when a heartbeat's answer asks for it: a new key
 * made here (never sent), its CSR to POST /node/v1/renew, the certificate
 * that comes back checked against the platform CA, then key and
 * certificate replaced in node.state_dir and the listener's TLS context
 * reloaded (gdx_http_reload_tls) - connections in progress keep theirs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "node_int.h"
#include "pki.h"
#include "state_dir.h"

#define RENEW_TIMEOUT_MS 30000
#define ANSWER_MAX (1 << 20)

void gdx__node_renew_load_expiry(gdx_node *n) {
  char *pem = gdx__node_file_read(n->cert_file);
  X509 *x = pem ? gdx_pki_parse_cert(pem) : NULL;
  time_t nb;
  if (x)
    gdx_pki_validity(x, &nb, &n->renew.not_after);
  X509_free(x);
  free(pem);
}

/* The new key next to the old, then the certificate, then the key over
 * the old one; the listener takes them. */
static int install(gdx_node *n, const char *key, const char *cert, char *err, size_t errlen) {
  char *ca = gdx__node_file_read(n->ca_file);
  int rc = ca ? gdx_pki_verify(ca, cert, err, errlen) : GDX_EIO;
  free(ca);
  char newkey[1100];
  snprintf(newkey, sizeof(newkey), "%s.new", n->key_file);
  if (!rc)
    rc = gdx_pki_write_private(newkey, key, err, errlen);
  if (!rc)
    rc = gdx__node_file_write(n->cert_file, cert, err, errlen);
  if (!rc && rename(newkey, n->key_file) != 0) {
    snprintf(err, errlen, "cannot move %s into place: %s", newkey, strerror(errno));
    rc = GDX_EIO;
  }
  gdx_tls_options tls = {n->cert_file, n->key_file, n->ca_file, GDX_TLS_VERIFY_REQUIRE};
  if (!rc && !n->stopping)
    rc = gdx_http_reload_tls(n->http, 0, &tls, err, errlen);
  return rc;
}

static void renewed(int status, long http, const char *why, void *data) {
  gdx_node *n = data;
  gdx__node_renewal *rn = &n->renew;
  rn->busy = 0;
  char *key = rn->key;
  rn->key = NULL;
  json_t *j = rn->answer.len ? json_loadb(rn->answer.data, rn->answer.len, 0, NULL) : NULL;
  const char *cert = json_string_value(json_object_get(j, "certificate"));
  char err[300] = "";
  if (status != GDX_OK || http != 200 || cert == NULL) {
    gdx_log_error("node", "certificate renewal failed (%ld): %s", http,
                  status != GDX_OK ? why : "refused");
  } else if (install(n, key, cert, err, sizeof(err)) != GDX_OK) {
    gdx_log_error("node", "cannot install the renewed certificate: %s", err);
  } else {
    rn->done++;
    gdx__node_renew_load_expiry(n);
    gdx_log_info("node", "certificate renewed; valid until %lld", (long long)rn->not_after);
  }
  json_decref(j);
  gdx_pki_free_secret(key);
}

void gdx__node_renew_start(gdx_node *n) {
  gdx__node_renewal *rn = &n->renew;
  char err[256];
  char *key = NULL, *csr = NULL;
  if (gdx_pki_key_create(&key, err, sizeof(err)) != GDX_OK ||
      gdx_pki_csr_create(key, n->cfg->unit, n->cfg->id, &csr, err, sizeof(err)) != GDX_OK) {
    gdx_log_error("node", "cannot make a renewal request: %s", err);
    gdx_pki_free_secret(key);
    return;
  }
  json_t *j = json_pack("{s:s}", "csr", csr);
  free(csr);
  if (rn->answer.cap == 0)
    gdx_buf_init(&rn->answer, ANSWER_MAX);
  /* libcurl's engine, as ever for renewals */
  gdx_broker_req r = {.method = "POST",
                      .path = "/node/v1/renew",
                      .json = j,
                      .timeout_ms = RENEW_TIMEOUT_MS,
                      .curl = 1};
  rn->key = key;
  rn->busy = 1;
  if (gdx_broker_call(n->broker, &r, &rn->answer, 0, renewed, n, NULL) != GDX_OK) {
    rn->busy = 0;
    rn->key = NULL;
    gdx_pki_free_secret(key);
  }
  json_decref(j);
}

void gdx__node_renew_free(gdx_node *n) {
  gdx_buf_free(&n->renew.answer);
  gdx_pki_free_secret(n->renew.key);
}
