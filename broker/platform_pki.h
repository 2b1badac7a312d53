/* The platform PKI as the broker holds it: the platform CA (made by the
 * first broker to start on a database and kept in platform_ca, so every
 * broker signs with the same one), the HMAC key of consumer access tokens
 * (broker_secrets), and this broker's own certificate for the mutual TLS
 * with nodes, issued afresh at every start into pki.dir.
 *
 * Read-only once booted: the nodes part signs node certificates with it,
 * the credentials part signs access tokens, the exchange verifies them and
 * calls nodes with the broker's certificate.
 */
#ifndef GDX_BROKER_PLATFORM_PKI_H
#define GDX_BROKER_PLATFORM_PKI_H

#include <uv.h>

#include "broker.h"
#include "db.h"
#include "digest.h"

#define BROKER_UNIT "gdx-broker" /* the unit its certificates name */

typedef struct broker_pki {
  char *ca_pem, *ca_key_pem;
  char ca_fingerprint[GDX_SHA256_HEX_SIZE];
  unsigned char token_key[32];                         /* HMAC key of consumer access tokens */
  char ca_file[1024], cert_file[1024], key_file[1024]; /* the broker's own */
  char nodes_url[300];                                 /* where nodes reach the broker */
} broker_pki;

/* Loads (or, first of all brokers, creates) the platform CA and the token
 * key, and issues this broker's own certificate into pki.dir. Blocking
 * (runs the loop until the database answers): start-up only. */
int platform_pki_boot(uv_loop_t *loop, gdx_db_pool *db, const gdx_broker_config *cfg,
                      const char *instance, broker_pki *pki, char *err, size_t errlen);
void platform_pki_free(broker_pki *pki);

#endif
