/* Batch checksums for the table exchange's ledger (对账): FNV-1a 64 over
 * every value of every row of a batch, in order. The provider node computes
 * it over the batch it serves, the consumer node over the batch it applied;
 * both go into the broker's ledger, where a difference raises an alarm.
 *
 * A value is hashed as 0x01 <bytes> 0x1f, a null as 0x02 0x1f, the end of
 * a row as 0x1e; a change as its op byte, then its row or key. */
#ifndef GDX_ROWSUM_H
#define GDX_ROWSUM_H

#include <jansson.h>
#include <stdint.h>

#define GDX_ROWSUM_INIT 0xcbf29ce484222325ULL

uint64_t gdx_rowsum_row(uint64_t h, const json_t *row);
/* The same value by value, for rows that are not JSON: v NULL is a null. */
uint64_t gdx_rowsum_value(uint64_t h, const char *v, size_t n);
uint64_t gdx_rowsum_end_row(uint64_t h);
uint64_t gdx_rowsum_op(uint64_t h, char op); /* a change's op, before its values */
/* A snapshot page ({"rows": …}) or a change batch ({"changes": …}). */
uint64_t gdx_rowsum_batch(const json_t *batch, size_t *nrows);
void gdx_rowsum_hex(uint64_t h, char out[17]);

/* Reconciliation compares tables by chunked checksums computed inside
 * MariaDB on both sides with the same expression: per row the first 64
 * bits of MD5 over CONCAT_WS('#', the columns, their null flags) in
 * utf8mb4, as an unsigned integer; per chunk COUNT(*) and the BIT_XOR of
 * those (the method of pt-table-checksum). Appends the row expression for
 * the (checked, plain) column names. */
struct gdx_buf;
int gdx_rowsum_sql(struct gdx_buf *b, const char *const *cols, int n);

#endif
