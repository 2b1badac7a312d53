/* The platform PKI: the broker's CA signs the certificates of front-end
 * nodes, binding each to its unit and node id, so that broker and nodes can
 * authenticate each other with mutual TLS.
 *
 * Keys are EC P-256 (OpenSSL 3). A node certificate carries
 *   subject  O=<unit code>, CN=<node id>
 *   SAN      URI gdx:unit:<unit code>:node:<node id>   (the identity gdx trusts)
 *   EKU      clientAuth, serverAuth; basicConstraints CA:FALSE
 *   serial   128 random bits (the revocation key)
 * The broker ignores everything in a CSR except its public key and its proof
 * of possession: the identity comes from the enrollment, never from the node.
 *
 * All PEM strings returned are heap-allocated; the caller frees them (and
 * wipes private keys with gdx_pki_free_secret).
 */
#ifndef GDX_PKI_H
#define GDX_PKI_H

#include <openssl/x509.h>
#include <stddef.h>
#include <time.h>

#define GDX_PKI_SERIAL_HEX 33 /* 128 bits in hex + NUL */

/* A self-signed CA certificate and its key. */
int gdx_pki_ca_create(const char *common_name, int days, char **cert_pem, char **key_pem,
                      char *err, size_t errlen);
/* A new EC P-256 private key. */
int gdx_pki_key_create(char **key_pem, char *err, size_t errlen);
/* A CSR signed with the key (proof of possession). */
int gdx_pki_csr_create(const char *key_pem, const char *unit_code, const char *node_id,
                       char **csr_pem, char *err, size_t errlen);
/* Signs a node certificate for the CSR's public key with the given identity.
 * GDX_EINVAL when the CSR does not parse or its signature does not verify. */
int gdx_pki_csr_sign(const char *ca_cert_pem, const char *ca_key_pem, const char *csr_pem,
                     const char *unit_code, const char *node_id, int days, char **cert_pem,
                     char serial_hex[GDX_PKI_SERIAL_HEX], char *err, size_t errlen);
/* The same with more subject alternative names in OpenSSL's syntax
 * ("DNS:broker.example,IP:10.0.0.1"), for a server that clients reach by
 * name or address (the broker). */
int gdx_pki_csr_sign_san(const char *ca_cert_pem, const char *ca_key_pem, const char *csr_pem,
                         const char *unit_code, const char *node_id, const char *extra_san,
                         int days, char **cert_pem, char serial_hex[GDX_PKI_SERIAL_HEX],
                         char *err, size_t errlen);
/* Verifies cert_pem against the CA (signature, validity period, purpose). */
int gdx_pki_verify(const char *ca_cert_pem, const char *cert_pem, char *err, size_t errlen);
/* The unit code and node id of a node certificate (from its SAN URI). */
int gdx_pki_identity(X509 *cert, char *unit, size_t unitlen, char *node, size_t nodelen);
/* The serial number in lower-case hex. */
int gdx_pki_serial(X509 *cert, char serial_hex[GDX_PKI_SERIAL_HEX]);
/* Parses one PEM certificate; the caller frees with X509_free. */
X509 *gdx_pki_parse_cert(const char *pem);
#define GDX_PKI_PIN_LEN 53 /* "sha256//" + 44 base64 characters + NUL */
/* The public-key pin of a certificate as libcurl takes it
 * (CURLOPT_PINNEDPUBLICKEY): "sha256//<base64 of SHA-256 of the SPKI>". */
int gdx_pki_pin(X509 *cert, char out[GDX_PKI_PIN_LEN]);
/* SHA-256 of the certificate's DER in lower-case hex (its fingerprint). */
int gdx_pki_fingerprint(const char *cert_pem, char out[65]);
/* notBefore and notAfter as Unix times. */
int gdx_pki_validity(X509 *cert, time_t *not_before, time_t *not_after);
/* Writes a private key file with mode 0600 (created new or replaced). */
int gdx_pki_write_private(const char *path, const char *pem, char *err, size_t errlen);
/* Wipes and frees a secret string. */
void gdx_pki_free_secret(char *s);

#endif
