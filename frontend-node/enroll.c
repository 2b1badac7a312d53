#include "enroll.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "digest.h"
#include "error.h"
#include "pki.h"
#include "state_dir.h"

#define ANSWER_MAX (1 << 20) /* two certificates and a URL */
#define TOKEN_LEN 105        /* 40 hex digits, '.', the CA's SHA-256 in hex */
#define TOKEN_DOT 40

static size_t collect(char *p, size_t s, size_t n, void *ud) {
  gdx_buf *b = ud;
  return gdx_buf_append(b, p, s * n) == GDX_OK ? s * n : 0;
}

/* POSTs the token and the CSR to the broker's API: its JSON answer, or
 * NULL and an error. */
static int post_csr(const gdx_node_config *cfg, const char *token, const char *csr, json_t **out,
                    char *err, size_t errlen) {
  json_t *body = json_pack("{s:s, s:s}", "token", token, "csr", csr);
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  char url[1024];
  snprintf(url, sizeof(url), "%s/api/v1/nodes/enroll", cfg->broker_url);
  CURL *e = curl_easy_init();
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  gdx_buf resp;
  gdx_buf_init(&resp, ANSWER_MAX);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, text);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
  CURLcode cr = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  free(text);
  json_t *j = resp.len ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
  gdx_buf_free(&resp);
  int rc = GDX_OK;
  if (cr != CURLE_OK) {
    snprintf(err, errlen, "cannot reach the broker at %s: %s", url, curl_easy_strerror(cr));
    rc = GDX_EIO;
  } else if (status != 201) {
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    snprintf(err, errlen, "the broker refused the enrollment (%ld): %s", status,
             m ? m : "no message");
    rc = GDX_EINVAL;
  }
  if (rc)
    json_decref(j);
  else
    *out = j;
  return rc;
}

/* The CA must be the token's, the certificate the CA's and this node's. */
static int check_answer(const gdx_node_config *cfg, const char *fingerprint, const char *cert,
                        const char *ca, char *err, size_t errlen) {
  char fp[GDX_SHA256_HEX_SIZE] = "";
  if (cert == NULL || ca == NULL || gdx_pki_fingerprint(ca, fp) != GDX_OK) {
    snprintf(err, errlen, "the broker's answer lacks the certificates");
    return GDX_EINVAL;
  }
  if (strcmp(fp, fingerprint) != 0) {
    snprintf(err, errlen,
             "the broker sent a CA whose fingerprint %s is not the token's: "
             "refusing to trust it",
             fp);
    return GDX_ETLS;
  }
  int rc = gdx_pki_verify(ca, cert, err, errlen);
  if (rc)
    return rc;
  X509 *x = gdx_pki_parse_cert(cert);
  char unit[32], node[80];
  if (x == NULL || gdx_pki_identity(x, unit, sizeof(unit), node, sizeof(node)) != GDX_OK ||
      strcmp(unit, cfg->unit) != 0 || strcmp(node, cfg->id) != 0) {
    snprintf(err, errlen,
             "the certificate is for another node than node.unit/node.id "
             "(%s/%s): the token belongs to a different node",
             cfg->unit, cfg->id);
    rc = GDX_EINVAL;
  }
  X509_free(x);
  return rc;
}

static int write_state(const gdx_node_config *cfg, const char *key, const char *cert,
                       const char *ca, const char *nodes_url, char *err, size_t errlen) {
  char path[1024];
  gdx__node_state_path(cfg, "node.key", path, sizeof(path));
  int rc = gdx_pki_write_private(path, key, err, errlen);
  if (!rc) {
    gdx__node_state_path(cfg, "node.crt", path, sizeof(path));
    rc = gdx__node_file_write(path, cert, err, errlen);
  }
  if (!rc) {
    gdx__node_state_path(cfg, "ca.crt", path, sizeof(path));
    rc = gdx__node_file_write(path, ca, err, errlen);
  }
  if (!rc && nodes_url) {
    gdx__node_state_path(cfg, "broker_url", path, sizeof(path));
    rc = gdx__node_file_write(path, nodes_url, err, errlen);
  }
  return rc;
}

int gdx_node_enroll(const gdx_node_config *cfg, const char *token, char *err, size_t errlen) {
  if (cfg->broker_url == NULL) {
    snprintf(err, errlen, "broker.url: required for enrollment");
    return GDX_ECONFIG;
  }
  const char *dot = strchr(token, '.');
  if (strlen(token) != TOKEN_LEN || dot == NULL || dot - token != TOKEN_DOT) {
    snprintf(err, errlen, "the token is malformed (expected 40 hex digits, a dot, 64 hex digits)");
    return GDX_EINVAL;
  }
  if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "node.state_dir: cannot create %s: %s", cfg->state_dir, strerror(errno));
    return GDX_ECONFIG;
  }
  char *key = NULL, *csr = NULL;
  json_t *j = NULL;
  int rc = gdx_pki_key_create(&key, err, errlen);
  if (!rc)
    rc = gdx_pki_csr_create(key, cfg->unit, cfg->id, &csr, err, errlen);
  if (!rc)
    rc = post_csr(cfg, token, csr, &j, err, errlen);
  free(csr);
  const char *cert = json_string_value(json_object_get(j, "certificate"));
  const char *ca = json_string_value(json_object_get(j, "ca_certificate"));
  const char *nodes_url = json_string_value(json_object_get(j, "broker_url"));
  if (!rc)
    rc = check_answer(cfg, dot + 1, cert, ca, err, errlen);
  if (!rc)
    rc = write_state(cfg, key, cert, ca, nodes_url, err, errlen);
  gdx_pki_free_secret(key);
  json_decref(j);
  return rc;
}
