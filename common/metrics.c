#include "metrics.h"

static const double bounds[GDX_HIST_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                0.025,  0.05,  0.1,    0.25,  0.5,
                                                1,      2.5,   5,      10};

void gdx_histogram_observe(gdx_histogram *h, double seconds) {
  int i = 0;
  while (i < GDX_HIST_BUCKETS && seconds > bounds[i])
    i++;
  h->counts[i]++;
  h->count++;
  h->sum += seconds;
}

int gdx_metrics_header(gdx_buf *b, const char *name, const char *type, const char *help) {
  return gdx_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int gdx_metrics_histogram(gdx_buf *b, const char *name, const char *help,
                          const gdx_histogram *h) {
  int err = gdx_metrics_header(b, name, "histogram", help);
  uint64_t cum = 0;
  for (int i = 0; i < GDX_HIST_BUCKETS && !err; i++) {
    cum += h->counts[i];
    err = gdx_buf_appendf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                          (unsigned long long)cum);
  }
  if (!err)
    err = gdx_buf_appendf(b,
                          "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                          name, (unsigned long long)h->count, name, h->sum, name,
                          (unsigned long long)h->count);
  return err;
}
