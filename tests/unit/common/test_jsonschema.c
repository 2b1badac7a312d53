/* The JSON Schema validator: every supported keyword, the failing field's
 * path in the message, and unsupported keywords refused at load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "jsonschema.h"

static const char schema_text[] =
    "{\"type\":\"object\",\"required\":[\"name\",\"items\"],\"additionalProperties\":false,"
    "\"properties\":{"
    "\"name\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":4,\"pattern\":\"^[a-z中文]+$\"},"
    "\"kind\":{\"enum\":[\"a\",\"b\"]},"
    "\"n\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10},"
    "\"flag\":{\"type\":[\"boolean\",\"null\"]},"
    "\"fixed\":{\"const\":\"x\"},"
    "\"items\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":2,\"uniqueItems\":true,"
    "  \"items\":{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{\"id\":{\"type\":\"integer\"}}}},"
    "\"extra\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}}}";

static const struct {
  const char *doc, *field, *msg; /* field NULL: valid */
} cases[] = {
    {"{\"name\":\"ab\",\"items\":[{\"id\":1}]}", NULL, NULL},
    {"{\"name\":\"中文\",\"items\":[{\"id\":1}],\"flag\":null,\"kind\":\"b\",\"n\":10,\"fixed\":\"x\","
     "\"extra\":{\"k\":\"v\"}}", NULL, NULL},
    {"{\"items\":[{\"id\":1}]}", "name", "is required"},
    {"{\"name\":5,\"items\":[{\"id\":1}]}", "name", "must be of type string"},
    {"{\"name\":\"a\",\"items\":[{\"id\":1}]}", "name", "at least 2 characters"},
    {"{\"name\":\"abcde\",\"items\":[{\"id\":1}]}", "name", "at most 4 characters"},
    {"{\"name\":\"中文中文\",\"items\":[{\"id\":1}]}", NULL, NULL}, /* 4 characters, 12 bytes */
    {"{\"name\":\"AB\",\"items\":[{\"id\":1}]}", "name", "required form"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":1}],\"kind\":\"c\"}", "kind", "one of: a, b"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":1}],\"n\":0}", "n", "at least 1"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":1}],\"n\":11}", "n", "at most 10"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":1}],\"n\":1.5}", "n", "type integer"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":1}],\"flag\":1}", "flag", "wrong type"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":1}],\"fixed\":\"y\"}", "fixed", "not allowed"},
    {"{\"name\":\"ab\",\"items\":[]}", "items", "at least 1 items"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":1},{\"id\":2},{\"id\":3}]}", "items", "at most 2 items"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":1},{\"id\":1}]}", "items[1]", "repeats"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":\"x\"}]}", "items[0].id", "type integer"},
    {"{\"name\":\"ab\",\"items\":[{}]}", "items[0].id", "is required"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":1}],\"admin\":true}", "admin", "not a known field"},
    {"{\"name\":\"ab\",\"items\":[{\"id\":1}],\"extra\":{\"k\":1}}", "extra.k", "type string"},
};

static void keywords_and_paths(void **state) {
  json_t *schema = json_loads(schema_text, 0, NULL);
  assert_non_null(schema);
  char err[128];
  assert_int_equal(gdx_schema_check(schema, err, sizeof(err)), GDX_OK);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    json_t *doc = json_loads(cases[i].doc, 0, NULL);
    assert_non_null(doc);
    char field[128], msg[256];
    int rc = gdx_schema_validate(schema, doc, field, sizeof(field), msg, sizeof(msg));
    if (cases[i].field == NULL && rc != GDX_OK)
      fail_msg("case %zu should be valid: %s: %s", i, field, msg);
    if (cases[i].field && (rc != GDX_EINVAL || strcmp(field, cases[i].field) != 0 ||
                           strstr(msg, cases[i].msg) == NULL))
      fail_msg("case %zu: got \"%s: %s\", expected \"%s: …%s…\"", i, field, msg, cases[i].field,
               cases[i].msg);
    json_decref(doc);
  }
  json_decref(schema);
}

static void unsupported_keywords_refused(void **state) {
  json_t *s = json_loads("{\"type\":\"object\",\"properties\":{\"a\":{\"format\":\"email\"}}}", 0, NULL);
  char err[128];
  assert_int_equal(gdx_schema_check(s, err, sizeof(err)), GDX_EINVAL);
  assert_non_null(strstr(err, "format"));
  json_decref(s);
  s = json_loads("{\"pattern\":\"([a\"}", 0, NULL);
  assert_int_equal(gdx_schema_check(s, err, sizeof(err)), GDX_EINVAL);
  json_decref(s);
}

static void every_shipped_schema_loads(void **state) {
  const char *names[] = {"login", "password_change", "password_reset", "unit_create",
                         "account_create", "audit_purge", "catalog_entry", "catalog_review",
                         "catalog_withdraw", "request_create", "request_approve", "opinion",
                         "demand_create", "demand_decide", "demand_fulfil"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    char path[512], err[256];
    snprintf(path, sizeof(path), "%s/schemas/json/%s.json", getenv("GDX_SOURCE_DIR"), names[i]);
    json_t *s = NULL;
    if (gdx_schema_load(path, &s, err, sizeof(err)) != GDX_OK)
      fail_msg("%s", err);
    json_decref(s);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(keywords_and_paths),
      cmocka_unit_test(unsupported_keywords_refused),
      cmocka_unit_test(every_shipped_schema_loads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
