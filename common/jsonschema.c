#include "jsonschema.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static const char *const known[] = {
    "$schema", "$id", "title", "description", "type", "enum", "const", "properties",
    "required", "additionalProperties", "minLength", "maxLength", "pattern", "minimum",
    "maximum", "items", "minItems", "maxItems", "uniqueItems", "examples", NULL};

int gdx_schema_check(const json_t *s, char *err, size_t errlen) {
  if (!json_is_object(s)) {
    snprintf(err, errlen, "a schema must be an object");
    return GDX_EINVAL;
  }
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)s, k, v) {
    int ok = 0;
    for (int i = 0; known[i]; i++)
      ok |= strcmp(known[i], k) == 0;
    if (!ok) {
      snprintf(err, errlen, "unsupported schema keyword \"%s\"", k);
      return GDX_EINVAL;
    }
  }
  json_t *props = json_object_get(s, "properties");
  json_object_foreach(props, k, v) {
    if (gdx_schema_check(v, err, errlen))
      return GDX_EINVAL;
  }
  json_t *items = json_object_get(s, "items");
  if (items && gdx_schema_check(items, err, errlen))
    return GDX_EINVAL;
  json_t *ap = json_object_get(s, "additionalProperties");
  if (json_is_object(ap) && gdx_schema_check(ap, err, errlen))
    return GDX_EINVAL;
  const char *pat = json_string_value(json_object_get(s, "pattern"));
  if (pat) {
    regex_t re;
    if (regcomp(&re, pat, REG_EXTENDED | REG_NOSUB) != 0) {
      snprintf(err, errlen, "invalid pattern \"%s\"", pat);
      return GDX_EINVAL;
    }
    regfree(&re);
  }
  return GDX_OK;
}

int gdx_schema_load(const char *path, json_t **out, char *err, size_t errlen) {
  json_error_t je;
  json_t *s = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (s == NULL) {
    snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
    return GDX_ECONFIG;
  }
  char why[256];
  if (gdx_schema_check(s, why, sizeof(why))) {
    snprintf(err, errlen, "%s: %s", path, why);
    json_decref(s);
    return GDX_ECONFIG;
  }
  *out = s;
  return GDX_OK;
}

static int type_matches(const char *t, const json_t *d) {
  if (strcmp(t, "object") == 0) return json_is_object(d);
  if (strcmp(t, "array") == 0) return json_is_array(d);
  if (strcmp(t, "string") == 0) return json_is_string(d);
  if (strcmp(t, "integer") == 0) return json_is_integer(d);
  if (strcmp(t, "number") == 0) return json_is_number(d);
  if (strcmp(t, "boolean") == 0) return json_is_boolean(d);
  if (strcmp(t, "null") == 0) return json_is_null(d);
  return 0;
}

static size_t utf8_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += ((unsigned char)s[i] & 0xC0) != 0x80;
  return c;
}

typedef struct {
  char *field;
  size_t fieldlen;
  char *msg;
  size_t msglen;
} ctx;

static int fail(ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, const char *path, const char *fmt, ...) {
  snprintf(c->field, c->fieldlen, "%s", path);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->msg, c->msglen, fmt, ap);
  va_end(ap);
  return GDX_EINVAL;
}

static int validate(const json_t *s, const json_t *d, const char *path, ctx *c) {
  json_t *type = json_object_get(s, "type");
  if (json_is_string(type) && !type_matches(json_string_value(type), d))
    return fail(c, path, "must be of type %s", json_string_value(type));
  if (json_is_array(type)) {
    size_t i;
    json_t *t;
    int any = 0;
    json_array_foreach(type, i, t) any |= type_matches(json_string_value(t), d);
    if (!any)
      return fail(c, path, "has the wrong type");
  }
  json_t *en = json_object_get(s, "enum");
  if (en) {
    size_t i;
    json_t *e;
    int any = 0;
    json_array_foreach(en, i, e) any |= json_equal(e, (json_t *)d);
    if (!any) {
      char words[200] = "";
      json_array_foreach(en, i, e) {
        size_t used = strlen(words);
        snprintf(words + used, sizeof(words) - used, "%s%s", used ? ", " : "",
                 json_is_string(e) ? json_string_value(e) : "…");
      }
      return fail(c, path, "must be one of: %s", words);
    }
  }
  json_t *cn = json_object_get(s, "const");
  if (cn && !json_equal(cn, (json_t *)d))
    return fail(c, path, "has a value that is not allowed");

  if (json_is_string(d)) {
    const char *v = json_string_value(d);
    size_t chars = utf8_chars(v, json_string_length(d));
    json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
    if (mn && (long long)chars < json_integer_value(mn))
      return fail(c, path, "must be at least %lld characters", json_integer_value(mn));
    if (mx && (long long)chars > json_integer_value(mx))
      return fail(c, path, "must be at most %lld characters", json_integer_value(mx));
    if (strlen(v) != json_string_length(d))
      return fail(c, path, "must not contain NUL characters");
    const char *pat = json_string_value(json_object_get(s, "pattern"));
    if (pat) {
      regex_t re;
      int bad = regcomp(&re, pat, REG_EXTENDED | REG_NOSUB) != 0 || regexec(&re, v, 0, NULL, 0) != 0;
      regfree(&re);
      if (bad)
        return fail(c, path, "does not have the required form (%s)", pat);
    }
  }
  if (json_is_number(d)) {
    double v = json_number_value(d);
    json_t *mn = json_object_get(s, "minimum"), *mx = json_object_get(s, "maximum");
    if (mn && v < json_number_value(mn))
      return fail(c, path, "must be at least %lld", (long long)json_number_value(mn));
    if (mx && v > json_number_value(mx))
      return fail(c, path, "must be at most %lld", (long long)json_number_value(mx));
  }
  if (json_is_array(d)) {
    size_t n = json_array_size(d), i;
    json_t *mn = json_object_get(s, "minItems"), *mx = json_object_get(s, "maxItems");
    if (mn && (long long)n < json_integer_value(mn))
      return fail(c, path, "must have at least %lld items", json_integer_value(mn));
    if (mx && (long long)n > json_integer_value(mx))
      return fail(c, path, "must have at most %lld items", json_integer_value(mx));
    json_t *items = json_object_get(s, "items"), *e;
    json_array_foreach((json_t *)d, i, e) {
      char sub[256];
      snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
      if (items && validate(items, e, sub, c))
        return GDX_EINVAL;
      if (json_is_true(json_object_get(s, "uniqueItems")))
        for (size_t k = 0; k < i; k++)
          if (json_equal(json_array_get(d, k), e))
            return fail(c, sub, "repeats an earlier item");
    }
  }
  if (json_is_object(d)) {
    json_t *req = json_object_get(s, "required"), *r;
    size_t i;
    json_array_foreach(req, i, r) {
      if (json_object_get(d, json_string_value(r)) == NULL) {
        char sub[256];
        snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", json_string_value(r));
        return fail(c, sub, "is required");
      }
    }
    json_t *props = json_object_get(s, "properties");
    json_t *ap = json_object_get(s, "additionalProperties");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)d, k, v) {
      char sub[256];
      snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", k);
      json_t *ps = json_object_get(props, k);
      if (ps) {
        if (validate(ps, v, sub, c))
          return GDX_EINVAL;
      } else if (json_is_false(ap)) {
        return fail(c, sub, "is not a known field");
      } else if (json_is_object(ap) && validate(ap, v, sub, c)) {
        return GDX_EINVAL;
      }
    }
  }
  return GDX_OK;
}

int gdx_schema_validate(const json_t *schema, const json_t *doc, char *field, size_t fieldlen,
                        char *msg, size_t msglen) {
  ctx c = {field, fieldlen, msg, msglen};
  field[0] = msg[0] = '\0';
  return validate(schema, doc, "", &c);
}
