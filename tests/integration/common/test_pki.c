/* The platform PKI: a CA, node keys and CSRs, signed node certificates that
 * carry the unit and node identity; tampered requests, foreign CAs and expired
 * certificates refused; and the certificates working for mutual TLS with the
 * gdx server over a real socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "harness.h"
#include "pki.h"

#define UNIT "91310115MA1H7GXY1E"

static char *ca_cert, *ca_key, *node_key, *node_csr, *node_cert;
static char serial[GDX_PKI_SERIAL_HEX];

static int setup(void **state) {
  char err[256];
  if (gdx_pki_ca_create("gdx platform CA", 3650, &ca_cert, &ca_key, err, sizeof(err)) ||
      gdx_pki_key_create(&node_key, err, sizeof(err)) ||
      gdx_pki_csr_create(node_key, UNIT, "node-1", &node_csr, err, sizeof(err)) ||
      gdx_pki_csr_sign(ca_cert, ca_key, node_csr, UNIT, "node-1", 365, &node_cert, serial, err,
                       sizeof(err))) {
    fprintf(stderr, "setup: %s\n", err);
    return -1;
  }
  return 0;
}

static void node_certificate_carries_identity(void **state) {
  char err[256], unit[32], node[80], s2[GDX_PKI_SERIAL_HEX];
  assert_int_equal(gdx_pki_verify(ca_cert, node_cert, err, sizeof(err)), GDX_OK);
  X509 *x = gdx_pki_parse_cert(node_cert);
  assert_non_null(x);
  assert_int_equal(gdx_pki_identity(x, unit, sizeof(unit), node, sizeof(node)), GDX_OK);
  assert_string_equal(unit, UNIT);
  assert_string_equal(node, "node-1");
  assert_int_equal(gdx_pki_serial(x, s2), GDX_OK);
  assert_string_equal(s2, serial);
  assert_int_equal(strlen(serial), 32);
  X509_free(x);
  /* the CA certificate is no node certificate */
  x = gdx_pki_parse_cert(ca_cert);
  assert_int_equal(gdx_pki_identity(x, unit, sizeof(unit), node, sizeof(node)), GDX_ENOTFOUND);
  X509_free(x);
}

static void identity_comes_from_enrollment_not_csr(void **state) {
  /* the node asked for another unit in its CSR; the broker signs what the
   * enrollment says */
  char *csr, *cert, err[256], unit[32], node[80], sn[GDX_PKI_SERIAL_HEX];
  assert_int_equal(gdx_pki_csr_create(node_key, "121000004000000010", "evil", &csr, err, sizeof(err)), GDX_OK);
  assert_int_equal(gdx_pki_csr_sign(ca_cert, ca_key, csr, UNIT, "node-2", 30, &cert, sn, err, sizeof(err)), GDX_OK);
  X509 *x = gdx_pki_parse_cert(cert);
  gdx_pki_identity(x, unit, sizeof(unit), node, sizeof(node));
  assert_string_equal(unit, UNIT);
  assert_string_equal(node, "node-2");
  assert_string_not_equal(sn, serial); /* serials are random */
  X509_free(x);
  free(csr);
  free(cert);
}

static void tampered_or_garbage_csr_refused(void **state) {
  char *bad = strdup(node_csr), *cert = NULL, err[256], sn[GDX_PKI_SERIAL_HEX];
  char *body = strchr(bad, '\n') + 40; /* a byte inside the signed data */
  *body = *body == 'A' ? 'B' : 'A';
  assert_int_equal(gdx_pki_csr_sign(ca_cert, ca_key, bad, UNIT, "node-1", 30, &cert, sn, err, sizeof(err)),
                   GDX_EINVAL);
  assert_null(cert);
  assert_int_equal(gdx_pki_csr_sign(ca_cert, ca_key, "not a csr", UNIT, "n", 30, &cert, sn, err, sizeof(err)),
                   GDX_EINVAL);
  assert_int_equal(gdx_pki_csr_sign(ca_cert, ca_key, node_csr, "x y", "n", 30, &cert, sn, err, sizeof(err)),
                   GDX_EINVAL);
  assert_int_equal(gdx_pki_csr_sign(ca_cert, ca_key, node_csr, UNIT, "../n", 30, &cert, sn, err, sizeof(err)),
                   GDX_EINVAL);
  free(bad);
}

static void foreign_ca_and_expired_refused(void **state) {
  char *ca2, *key2, *cert, err[256], sn[GDX_PKI_SERIAL_HEX];
  assert_int_equal(gdx_pki_ca_create("rogue", 30, &ca2, &key2, err, sizeof(err)), GDX_OK);
  assert_int_equal(gdx_pki_csr_sign(ca2, key2, node_csr, UNIT, "node-1", 30, &cert, sn, err, sizeof(err)), GDX_OK);
  assert_int_equal(gdx_pki_verify(ca_cert, cert, err, sizeof(err)), GDX_ETLS);
  assert_non_null(strstr(err, "local issuer"));
  free(cert);
  assert_int_equal(gdx_pki_csr_sign(ca_cert, ca_key, node_csr, UNIT, "node-1", -1, &cert, sn, err, sizeof(err)), GDX_OK);
  assert_int_equal(gdx_pki_verify(ca_cert, cert, err, sizeof(err)), GDX_ETLS);
  assert_non_null(strstr(err, "expired"));
  free(cert);
  free(ca2);
  gdx_pki_free_secret(key2);
}

static void private_key_file_mode(void **state) {
  char path[64], err[128];
  snprintf(path, sizeof(path), "/tmp/gdx-test-pki-%d.key", (int)getpid());
  assert_int_equal(gdx_pki_write_private(path, node_key, err, sizeof(err)), GDX_OK);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  unlink(path);
}

static size_t sink(char *p, size_t s, size_t n, void *ud) {
  size_t len = strlen(ud);
  if (len + s * n < 255) {
    memcpy((char *)ud + len, p, s * n);
    ((char *)ud)[len + s * n] = '\0';
  }
  return s * n;
}

static void mutual_tls_with_platform_certificates(void **state) {
  /* the broker's server certificate and the node's client certificate both
   * come from the platform CA */
  char dir[64], err[256], path[6][128];
  snprintf(dir, sizeof(dir), "/tmp/gdx-test-pki-%d", (int)getpid());
  mkdir(dir, 0700);
  char *srv_key, *srv_csr, *srv_cert, sn[GDX_PKI_SERIAL_HEX];
  assert_int_equal(gdx_pki_key_create(&srv_key, err, sizeof(err)), GDX_OK);
  assert_int_equal(gdx_pki_csr_create(srv_key, "platform", "broker-1", &srv_csr, err, sizeof(err)), GDX_OK);
  assert_int_equal(gdx_pki_csr_sign(ca_cert, ca_key, srv_csr, "platform", "broker-1", 30, &srv_cert, sn, err, sizeof(err)), GDX_OK);
  const char *names[] = {"ca.crt", "server.crt", "server.key", "node.crt", "node.key"};
  const char *pems[] = {ca_cert, srv_cert, srv_key, node_cert, node_key};
  for (int i = 0; i < 5; i++) {
    snprintf(path[i], sizeof(path[i]), "%s/%s", dir, names[i]);
    assert_int_equal(gdx_pki_write_private(path[i], pems[i], err, sizeof(err)), GDX_OK);
  }
  test_server ts;
  gdx_http_limits l;
  gdx_http_limits_default(&l);
  gdx_tls_options tls = {path[1], path[2], path[0], GDX_TLS_VERIFY_REQUIRE};
  ts_start(&ts, &l, &tls);
  char url[128], body[256] = "";
  /* the server certificate names no host: the node pins the platform CA and
   * checks the broker's identity itself, so host-name matching is off */
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/peer", ts.tls_port);
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CAINFO, path[0]);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(e, CURLOPT_SSLCERT, path[3]);
  curl_easy_setopt(e, CURLOPT_SSLKEY, path[4]);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
  assert_int_equal(curl_easy_perform(e), CURLE_OK);
  curl_easy_cleanup(e);
  assert_string_equal(body, "CN=node-1,O=" UNIT);
  ts_stop(&ts);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  free(srv_csr);
  free(srv_cert);
  gdx_pki_free_secret(srv_key);
}

static int teardown(void **state) {
  free(ca_cert);
  gdx_pki_free_secret(ca_key);
  gdx_pki_free_secret(node_key);
  free(node_csr);
  free(node_cert);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(node_certificate_carries_identity),
      cmocka_unit_test(identity_comes_from_enrollment_not_csr),
      cmocka_unit_test(tampered_or_garbage_csr_refused),
      cmocka_unit_test(foreign_ca_and_expired_refused),
      cmocka_unit_test(private_key_file_mode),
      cmocka_unit_test(mutual_tls_with_platform_certificates),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
