#include "response_filter.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int response_is_json(const char *ct) {
  if (ct == NULL)
    return 0;
  const char *semi = strchr(ct, ';');
  size_t n = semi ? (size_t)(semi - ct) : strlen(ct);
  while (n > 0 && ct[n - 1] == ' ')
    n--;
  return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
         (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

static void strip_fields(json_t *j, char *const *deny, int ndeny) {
  if (json_is_object(j)) {
    for (int i = 0; i < ndeny; i++)
      json_object_del(j, deny[i]);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) strip_fields(v, deny, ndeny);
  } else if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) strip_fields(v, deny, ndeny);
  }
}

int response_filter_json(gdx_buf *body, const char *ctype, char *const *deny, int ndeny, char *why,
                         size_t n) {
  if (body->len == 0)
    return 0;
  if (!response_is_json(ctype)) {
    snprintf(why, n,
             "the authorization covers only some data items, and a %s response cannot be "
             "filtered to them",
             ctype && *ctype ? ctype : "non-JSON");
    return -1;
  }
  json_t *j = json_loadb(body->data, body->len, 0, NULL);
  if (j == NULL) {
    snprintf(why, n, "the provider's JSON response does not parse, so it cannot be filtered");
    return -1;
  }
  strip_fields(j, deny, ndeny);
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(j);
  if (s == NULL) {
    snprintf(why, n, "out of memory");
    return -1;
  }
  body->len = 0;
  int rc = gdx_buf_append(body, s, strlen(s));
  free(s);
  if (rc) {
    snprintf(why, n, "the filtered response is larger than the filter's cap");
    return -1;
  }
  return 0;
}
