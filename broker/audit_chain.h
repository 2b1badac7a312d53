/* The audit trail's hash chain (R-OPS-4, R-ACC): every login, state change
 * and approval is a record chained to the one before it, so that an edited,
 * inserted or deleted record is found.
 *
 *   hash(n) = SHA-256(prev_hash | id | ts | actor | unit | action | object |
 *                     purpose | result | source | request_id | detail)
 * with '|' standing for the byte 0x1f. audit_head holds the last id and
 * hash (locked FOR UPDATE to append, which serialises writers across
 * brokers) and, after a purge, the first kept id and the prev_hash it must
 * start from. The REST core appends a record for every action; parts append
 * more where one action touches several units.
 */
#ifndef GDX_BROKER_AUDIT_CHAIN_H
#define GDX_BROKER_AUDIT_CHAIN_H

#include "db.h"

/* Appends a record in the caller's transaction (worker thread). */
int audit_append(gdx_db_conn *c, const char *actor, const char *unit, const char *action,
                 const char *object, const char *purpose, const char *result, const char *source,
                 const char *request_id, const char *detail);

/* Walks the whole chain: *count records checked; *bad_id the first record
 * that breaks it (0: none) and why. */
int audit_verify(gdx_db_conn *c, long long *count, long long *bad_id, char *why, size_t whylen);

#endif
