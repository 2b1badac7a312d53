/* What every adapter shares: the registry of kinds and the readers of a
 * resource's settings, whose errors name the resource and the key. */
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "error.h"

const gdx_adapter_ops *gdx_adapter_find(const char *kind) {
  static const gdx_adapter_ops *const all[] = {&gdx_adapter_api, &gdx_adapter_table, &gdx_adapter_file, NULL};
  for (int i = 0; all[i]; i++)
    if (strcmp(all[i]->kind, kind) == 0)
      return all[i];
  return NULL;
}

int gdx_adapter_str(const config_setting_t *s, const char *key, char *out, size_t n,
                    const char *def, const char *name, char *err, size_t errlen) {
  config_setting_t *m = config_setting_get_member(s, key);
  const char *v = def;
  if (m) {
    if (config_setting_type(m) != CONFIG_TYPE_STRING) {
      snprintf(err, errlen, "line %d: resources.%s.%s: must be a string",
               config_setting_source_line(m), name, key);
      return GDX_ECONFIG;
    }
    v = config_setting_get_string(m);
  }
  if (v == NULL) {
    snprintf(err, errlen, "resources.%s.%s: required", name, key);
    return GDX_ECONFIG;
  }
  if (strlen(v) >= n) {
    snprintf(err, errlen, "resources.%s.%s: longer than %zu bytes", name, key, n - 1);
    return GDX_ECONFIG;
  }
  snprintf(out, n, "%s", v);
  return GDX_OK;
}

long gdx_adapter_int(const config_setting_t *s, const char *key, long def, long min, long max,
                     int *bad, char *err, size_t errlen, const char *name) {
  config_setting_t *m = config_setting_get_member(s, key);
  if (m == NULL)
    return def;
  long long v = config_setting_get_int64(m);
  if ((config_setting_type(m) != CONFIG_TYPE_INT && config_setting_type(m) != CONFIG_TYPE_INT64) ||
      v < min || v > max) {
    snprintf(err, errlen, "line %d: resources.%s.%s: must be an integer from %ld to %ld",
             config_setting_source_line(m), name, key, min, max);
    *bad = 1;
  }
  return (long)v;
}
