/* The reconciliation ledger (对账): what consumer nodes report about the
 * rows and files they received, kept by the broker as counts, checksums
 * and hashes (never the data itself), and the alarms it raises.
 *
 * Two parts share it: ledger.c takes what nodes post over mutual TLS
 * (batches, files, reconciliation runs, and events in heartbeats), and
 * reports.c serves people (subscriptions, daily reports, runs, alarms).
 */
#ifndef GDX_BROKER_LEDGER_H
#define GDX_BROKER_LEDGER_H

#include <jansson.h>

#include "db.h"
#include "ids.h"
#include "rest.h"

/* An authorization seen as a subscription: both units and where the
 * provider's resource is. */
typedef struct {
  long long consumer_id, provider_id;
  char consumer[GDX_UNIT_CODE_SIZE], provider[GDX_UNIT_CODE_SIZE];
  char method[16], node[GDX_NAME_SIZE], resource[GDX_NAME_SIZE], code[GDX_RESOURCE_CODE_SIZE];
  int active;
} ledger_sub;

/* Authorization aid as a subscription: GDX_OK with *found (0: no such
 * authorization), or a database error. */
int ledger_load_sub(gdx_db_conn *c, long long aid, ledger_sub *s, int *found);
/* Raises an alarm of `kind` on authorization aid for both its units, or
 * counts it again while the same one is open. */
int ledger_raise_alarm(gdx_db_conn *c, const char *kind, long long aid, const ledger_sub *s,
                       const char *msg);

/* For a node's heartbeat answer: "purge" (its table resources -> the lowest
 * position all their subscribers applied) and "reconcile" (its
 * subscriptions someone asked a reconciliation run of). */
int ledger_heartbeat(gdx_db_conn *c, long long node_row, const char *node_name, json_t *out);
/* The events in a provider node's heartbeat (a file its folder adapter
 * refused): an audit record and an alarm for the provider's unit. */
int ledger_node_events(gdx_db_conn *c, rest_ctx *x, const json_t *events);

#endif
