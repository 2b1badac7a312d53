/* Prometheus text-format helpers.
 *
 * Components keep plain counters in their own structs (updated on the loop
 * thread, or atomically where a worker thread writes) and render them into a
 * gdx_buf on each scrape; nothing here allocates on the hot path.
 */
#ifndef GDX_METRICS_H
#define GDX_METRICS_H

#include <stdint.h>

#include "buf.h"

#define GDX_HIST_BUCKETS 14

/* Latency histogram in seconds with fixed buckets from 0.5 ms to 10 s. */
typedef struct {
  uint64_t counts[GDX_HIST_BUCKETS + 1]; /* last: +Inf */
  uint64_t count;
  double sum;
} gdx_histogram;

void gdx_histogram_observe(gdx_histogram *h, double seconds);

int gdx_metrics_header(gdx_buf *b, const char *name, const char *type, const char *help);
int gdx_metrics_histogram(gdx_buf *b, const char *name, const char *help,
                          const gdx_histogram *h);

#endif
