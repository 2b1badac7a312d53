/* The parts of the broker's API that live in broker/ (the catalog's are in
 * catalog/catalog.h): each is one route table on the REST core, registered
 * by broker.c. A part's own data (rest_ctx.part) is noted where it has one.
 */
#ifndef GDX_BROKER_PARTS_H
#define GDX_BROKER_PARTS_H

#include "rest.h"

extern const rest_part sessions_part;    /* sessions.c: login, logout, password, me */
extern const rest_part units_part;       /* units.c */
extern const rest_part accounts_part;    /* accounts.c */
extern const rest_part audit_part;       /* audit.c: the trail, its check, its purge */
extern const rest_part nodes_part;       /* nodes.c; data: the broker_pki */
extern const rest_part credentials_part; /* credentials.c and /token; data: the broker_pki */
extern const rest_part ledger_part;      /* ledger.c: what nodes post about deliveries */
extern const rest_part reports_part;     /* reports.c: subscriptions, reports, alarms */

#endif
