/* Call records: one row in api_calls per call through the exchange - who,
 * which authorization, status, bytes, where the time went - and the
 * per-authorization usage that the quota counts (authorization_usage,
 * which survives restarts).
 *
 * A record is queued in memory on the loop (bounded: RECORDS_MAX; beyond,
 * records are dropped and counted) and a timer (proxy.records_flush_ms)
 * writes the queue in batches of multi-row INSERTs with the usage upserts,
 * in one transaction. A batch that fails goes back in front of the queue.
 * A clean stop writes what is queued.
 */
#ifndef GDX_BROKER_CALL_RECORDS_H
#define GDX_BROKER_CALL_RECORDS_H

#include <stdint.h>
#include <uv.h>

#include "broker.h"
#include "buf.h"
#include "db.h"
#include "ids.h"

typedef struct {
  int64_t ts_us;
  char request_id[40];
  long long auth_id, cred_id;
  char consumer[GDX_UNIT_CODE_SIZE], code[GDX_RESOURCE_CODE_SIZE], method[10], path[256];
  int status;
  char error_type[12], error_code[40];
  uint64_t bytes_in, bytes_out;
  int ms_total, ms_node, ms_upstream; /* -1: not known */
  char source[64];
  int forwarded; /* reached the provider: counts against the quota */
  int units;     /* what it counts: 1, or the records of a compare batch */
} call_record;

typedef struct call_records call_records;

int call_records_new(uv_loop_t *loop, const gdx_broker_config *cfg, gdx_db_pool *db,
                     call_records **out);
/* Queues a copy of r. */
void call_record_add(call_records *q, const call_record *r);
/* The units of authorization auth queued and not yet written. */
long long call_records_pending(call_records *q, long long auth);
/* Writes what is queued, then frees q; cb runs when done (the database
 * pool must still run until then). */
void call_records_stop(call_records *q, void (*cb)(void *), void *data);
void call_records_metrics(call_records *q, gdx_buf *out);

#endif
