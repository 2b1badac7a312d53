#include "num.h"

#include <limits.h>
#include <string.h>

#include "error.h"

int gdx_num_parse_n(const char *s, size_t n, long long min, long long max, long long *out) {
  if (s == NULL || n == 0)
    return GDX_EINVAL;
  size_t i = 0;
  int neg = s[0] == '-';
  if (neg && ++i == n)
    return GDX_EINVAL;
  /* accumulate towards the negative side: |LLONG_MIN| > LLONG_MAX */
  long long v = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return GDX_EINVAL;
    int d = s[i] - '0';
    if (v < (LLONG_MIN + d) / 10)
      return GDX_EINVAL;
    v = v * 10 - d;
  }
  if (!neg) {
    if (v == LLONG_MIN)
      return GDX_EINVAL;
    v = -v;
  }
  if (v < min || v > max)
    return GDX_EINVAL;
  *out = v;
  return GDX_OK;
}

int gdx_num_parse(const char *s, long long min, long long max, long long *out) {
  return s ? gdx_num_parse_n(s, strlen(s), min, max, out) : GDX_EINVAL;
}

int gdx_num_parse_u64(const char *s, size_t n, uint64_t *out) {
  if (s == NULL || n == 0)
    return GDX_EINVAL;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return GDX_EINVAL;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return GDX_EINVAL;
    v = v * 10 + d;
  }
  *out = v;
  return GDX_OK;
}
