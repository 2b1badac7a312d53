#include "pki.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

static int fail(char *err, size_t n, const char *what) {
  char why[200] = "";
  unsigned long e = ERR_get_error();
  if (e)
    ERR_error_string_n(e, why, sizeof(why));
  ERR_clear_error();
  snprintf(err, n, "%s%s%s", what, why[0] ? ": " : "", why);
  return GDX_ETLS;
}

static char *bio_string(BIO *b) {
  char *p;
  long n = BIO_get_mem_data(b, &p);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (s) {
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
  }
  return s;
}

static char *key_to_pem(EVP_PKEY *k) {
  BIO *b = BIO_new(BIO_s_mem());
  char *s = NULL;
  if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
    s = bio_string(b);
  BIO_free(b);
  return s;
}

static char *cert_to_pem(X509 *x) {
  BIO *b = BIO_new(BIO_s_mem());
  char *s = NULL;
  if (b && PEM_write_bio_X509(b, x))
    s = bio_string(b);
  BIO_free(b);
  return s;
}

static EVP_PKEY *parse_key(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  return k;
}

X509 *gdx_pki_parse_cert(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  return x;
}

void gdx_pki_free_secret(char *s) {
  if (s) {
    OPENSSL_cleanse(s, strlen(s));
    free(s);
  }
}

int gdx_pki_key_create(char **key_pem, char *err, size_t errlen) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  if (k == NULL)
    return fail(err, errlen, "cannot generate an EC P-256 key");
  *key_pem = key_to_pem(k);
  EVP_PKEY_free(k);
  return *key_pem ? GDX_OK : GDX_ENOMEM;
}

static int random_serial(X509 *x) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof(raw)) != 1)
    return 0;
  raw[0] &= 0x7f; /* positive */
  raw[0] |= 0x40; /* and always 16 bytes long */
  BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
  int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
  BN_free(bn);
  return ok;
}

static int add_ext(X509 *issuer, X509 *x, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  int ok = e && X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  return ok;
}

int gdx_pki_ca_create(const char *cn, int days, char **cert_pem, char **key_pem, char *err,
                      size_t errlen) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  int rc = GDX_OK;
  if (!k || !x || !random_serial(x) || !X509_set_version(x, 2) ||
      !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), 86400L * days) || !X509_set_pubkey(x, k)) {
    rc = fail(err, errlen, "cannot build the CA certificate");
    goto done;
  }
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"gdx", -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, name);
  if (!add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !add_ext(x, x, NID_subject_key_identifier, "hash") || !X509_sign(x, k, EVP_sha256())) {
    rc = fail(err, errlen, "cannot sign the CA certificate");
    goto done;
  }
  *cert_pem = cert_to_pem(x);
  *key_pem = key_to_pem(k);
  if (!*cert_pem || !*key_pem)
    rc = GDX_ENOMEM;
done:
  X509_free(x);
  EVP_PKEY_free(k);
  return rc;
}

/* The identity strings become part of certificate names: keep them plain. */
static int plain_id(const char *s, size_t max) {
  size_t n = 0;
  for (; s[n]; n++)
    if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
          (s[n] >= '0' && s[n] <= '9') || s[n] == '-' || s[n] == '.' || s[n] == '_'))
      return 0;
  return n > 0 && n <= max;
}

int gdx_pki_csr_create(const char *key_pem, const char *unit_code, const char *node_id,
                       char **csr_pem, char *err, size_t errlen) {
  if (!plain_id(unit_code, 18) || !plain_id(node_id, 64)) {
    snprintf(err, errlen, "unit code and node id must be plain identifiers");
    return GDX_EINVAL;
  }
  EVP_PKEY *k = parse_key(key_pem);
  X509_REQ *req = X509_REQ_new();
  int rc = GDX_OK;
  if (!k || !req) {
    rc = fail(err, errlen, "cannot read the private key");
    goto done;
  }
  X509_NAME *name = X509_REQ_get_subject_name(req);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)unit_code, -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)node_id, -1, -1, 0);
  if (!X509_REQ_set_pubkey(req, k) || !X509_REQ_sign(req, k, EVP_sha256())) {
    rc = fail(err, errlen, "cannot sign the certificate request");
    goto done;
  }
  BIO *b = BIO_new(BIO_s_mem());
  if (b && PEM_write_bio_X509_REQ(b, req))
    *csr_pem = bio_string(b);
  BIO_free(b);
  if (*csr_pem == NULL)
    rc = GDX_ENOMEM;
done:
  X509_REQ_free(req);
  EVP_PKEY_free(k);
  return rc;
}

int gdx_pki_csr_sign(const char *ca_cert_pem, const char *ca_key_pem, const char *csr_pem,
                     const char *unit_code, const char *node_id, int days, char **cert_pem,
                     char serial_hex[GDX_PKI_SERIAL_HEX], char *err, size_t errlen) {
  return gdx_pki_csr_sign_san(ca_cert_pem, ca_key_pem, csr_pem, unit_code, node_id, NULL, days,
                              cert_pem, serial_hex, err, errlen);
}

int gdx_pki_csr_sign_san(const char *ca_cert_pem, const char *ca_key_pem, const char *csr_pem,
                         const char *unit_code, const char *node_id, const char *extra_san,
                         int days, char **cert_pem, char serial_hex[GDX_PKI_SERIAL_HEX],
                         char *err, size_t errlen) {
  if (extra_san && (strlen(extra_san) > 300 || strpbrk(extra_san, "\r\n"))) {
    snprintf(err, errlen, "extra subject alternative names are malformed");
    return GDX_EINVAL;
  }
  if (!plain_id(unit_code, 18) || !plain_id(node_id, 64)) {
    snprintf(err, errlen, "unit code and node id must be plain identifiers");
    return GDX_EINVAL;
  }
  X509 *ca = gdx_pki_parse_cert(ca_cert_pem), *x = NULL;
  EVP_PKEY *ca_key = parse_key(ca_key_pem), *pub = NULL;
  BIO *b = BIO_new_mem_buf(csr_pem, -1);
  X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
  int rc = GDX_OK;
  if (!ca || !ca_key) {
    rc = fail(err, errlen, "cannot read the platform CA");
    goto done;
  }
  if (!req || !(pub = X509_REQ_get_pubkey(req)) || X509_REQ_verify(req, pub) != 1) {
    fail(err, errlen, "the certificate request is malformed or its signature does not verify");
    rc = GDX_EINVAL;
    goto done;
  }
  x = X509_new();
  char san[512];
  snprintf(san, sizeof(san), "URI:gdx:unit:%s:node:%s%s%s", unit_code, node_id,
           extra_san ? "," : "", extra_san ? extra_san : "");
  if (!x || !random_serial(x) || !X509_set_version(x, 2) ||
      !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), 86400L * days) || !X509_set_pubkey(x, pub) ||
      !X509_set_issuer_name(x, X509_get_subject_name(ca))) {
    rc = fail(err, errlen, "cannot build the node certificate");
    goto done;
  }
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)unit_code, -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)node_id, -1, -1, 0);
  if (!add_ext(ca, x, NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(ca, x, NID_key_usage, "critical,digitalSignature") ||
      !add_ext(ca, x, NID_ext_key_usage, "clientAuth,serverAuth") ||
      !add_ext(ca, x, NID_subject_alt_name, san) ||
      !add_ext(ca, x, NID_authority_key_identifier, "keyid") ||
      !X509_sign(x, ca_key, EVP_sha256())) {
    rc = fail(err, errlen, "cannot sign the node certificate");
    goto done;
  }
  *cert_pem = cert_to_pem(x);
  if (*cert_pem == NULL)
    rc = GDX_ENOMEM;
  else
    rc = gdx_pki_serial(x, serial_hex);
done:
  BIO_free(b);
  X509_REQ_free(req);
  EVP_PKEY_free(pub);
  EVP_PKEY_free(ca_key);
  X509_free(ca);
  X509_free(x);
  return rc;
}

int gdx_pki_verify(const char *ca_cert_pem, const char *cert_pem, char *err, size_t errlen) {
  X509 *ca = gdx_pki_parse_cert(ca_cert_pem), *x = gdx_pki_parse_cert(cert_pem);
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  int rc = GDX_OK;
  if (!ca || !x || !store || !ctx || !X509_STORE_add_cert(store, ca) ||
      !X509_STORE_CTX_init(ctx, store, x, NULL)) {
    rc = fail(err, errlen, "cannot read the certificates");
    goto done;
  }
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx) != 1) {
    snprintf(err, errlen, "%s",
             X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    rc = GDX_ETLS;
  }
done:
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  X509_free(ca);
  X509_free(x);
  return rc;
}

int gdx_pki_identity(X509 *cert, char *unit, size_t unitlen, char *node, size_t nodelen) {
  GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  int rc = GDX_ENOTFOUND;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && rc; i++) {
    GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    if (g->type != GEN_URI)
      continue;
    const char *uri = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
    int len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
    char buf[200];
    if (len <= 0 || (size_t)len >= sizeof(buf))
      continue;
    memcpy(buf, uri, (size_t)len);
    buf[len] = '\0';
    if (strncmp(buf, "gdx:unit:", 9) != 0)
      continue;
    char *sep = strstr(buf + 9, ":node:");
    if (sep == NULL)
      continue;
    *sep = '\0';
    if (strlen(buf + 9) >= unitlen || strlen(sep + 6) >= nodelen)
      continue;
    snprintf(unit, unitlen, "%s", buf + 9);
    snprintf(node, nodelen, "%s", sep + 6);
    rc = GDX_OK;
  }
  GENERAL_NAMES_free(names);
  return rc;
}

int gdx_pki_serial(X509 *cert, char serial_hex[GDX_PKI_SERIAL_HEX]) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  int rc = GDX_EINVAL;
  if (hex && strlen(hex) < GDX_PKI_SERIAL_HEX) {
    for (size_t i = 0; hex[i]; i++)
      serial_hex[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
    serial_hex[strlen(hex)] = '\0';
    rc = GDX_OK;
  }
  OPENSSL_free(hex);
  BN_free(bn);
  return rc;
}

int gdx_pki_write_private(const char *path, const char *pem, char *err, size_t errlen) {
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    return GDX_EIO;
  }
  size_t n = strlen(pem);
  ssize_t w = write(fd, pem, n);
  int ok = w == (ssize_t)n && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    unlink(tmp);
    return GDX_EIO;
  }
  return GDX_OK;
}

int gdx_pki_pin(X509 *cert, char out[GDX_PKI_PIN_LEN]) {
  unsigned char *der = NULL;
  int n = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
  if (n <= 0)
    return GDX_EINVAL;
  unsigned char md[32];
  unsigned mdlen;
  EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
  OPENSSL_free(der);
  memcpy(out, "sha256//", 8);
  EVP_EncodeBlock((unsigned char *)out + 8, md, 32); /* 44 characters + NUL */
  return GDX_OK;
}

int gdx_pki_fingerprint(const char *cert_pem, char out[65]) {
  X509 *x = gdx_pki_parse_cert(cert_pem);
  if (x == NULL)
    return GDX_EINVAL;
  unsigned char md[32];
  unsigned mdlen = 0;
  int ok = X509_digest(x, EVP_sha256(), md, &mdlen);
  X509_free(x);
  if (!ok || mdlen != 32)
    return GDX_EINVAL;
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  return GDX_OK;
}

int gdx_pki_validity(X509 *cert, time_t *not_before, time_t *not_after) {
  struct tm tm;
  if (ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm) != 1)
    return GDX_EINVAL;
  *not_before = timegm(&tm);
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
    return GDX_EINVAL;
  *not_after = timegm(&tm);
  return GDX_OK;
}
