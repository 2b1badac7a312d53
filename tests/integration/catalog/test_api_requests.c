/* Requests, authorizations and demands against the real broker and MariaDB:
 * every R-AUTH rule, approval narrower than asked, automatic approval,
 * revocation, supervision by management, and the demand path for a resource
 * not yet in the catalog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apiclient.h"
#include "harness.h"

#define MGMT "91110000MA01ABCD2Q"
#define PROV "91310115MA1H7GXY1E"
#define CONS "121000004000000010"
#define CONS2 "91440300MA5FXXXX0U"

static tb_broker tb;
static char t_ops[80], t_rev[80], t_pa[80], t_ps[80], t_ca[80], t_cs[80], t_c2[80];
static char e_table[32], e_api[32], e_none[32], e_draft[32];
static char next_year[16], far_future[16], next_month[16];

static void publish_entry(const char *body, char *code, size_t n, int publish) {
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/catalog", t_ps, body, &j);
  if (st != 201)
    fail_msg("create entry -> %ld %s", st, tb_err_code(j) ? tb_err_code(j) : "");
  snprintf(code, n, "%s", json_string_value(json_object_get(j, "resource_code")));
  json_decref(j);
  if (!publish)
    return;
  char p[128];
  snprintf(p, sizeof(p), "/api/v1/catalog/%s/submit", code);
  tb_expect(200, "POST", p, t_ps, NULL);
  snprintf(p, sizeof(p), "/api/v1/catalog/%s/review", code);
  tb_expect(200, "POST", p, t_rev, "{\"decision\":\"publish\"}");
}

static const char *entry_body(const char *name, const char *type, const char *format,
                              const char *kind, const char *share, int autoap) {
  static char b[2048];
  snprintf(
      b, sizeof(b),
      "{\"name\":\"%s\",\"summary\":\"s\",\"category\":\"201001\",\"resource_type\":\"%s\","
      "\"format\":\"%s\",\"data_items\":[{\"name\":\"uscc\",\"type\":\"string\",\"length\":18},"
      "{\"name\":\"name\",\"type\":\"string\",\"length\":200},"
      "{\"name\":\"id_number\",\"type\":\"string\",\"length\":18,\"sharing_type\":\"none\"}],"
      "\"sharing_type\":\"%s\",\"sharing_condition\":\"%s\",\"sharing_method\":\"%s\","
      "\"open_to_public\":false,\"update_cycle\":\"daily\",\"auto_approve\":%s,"
      "\"attachment\":{\"kind\":\"%s\",\"node\":\"n1\",\"target\":\"t\"%s}}",
      name, type, format, share, strcmp(share, "conditional") == 0 ? "行政审批" : "", kind,
      autoap ? "true" : "false", kind,
      strcmp(kind, "api") == 0 ? ",\"openapi\":\"openapi: 3.0.3\\npaths: {/x: {get: {}}}\"" : "");
  return b;
}

static const char *apply_body(const char *code, const char *items, const char *method,
                              const char *until, const char *extra) {
  static char b[1024];
  snprintf(b, sizeof(b),
           "{\"resource_code\":\"%s\",\"purpose\":\"办理企业开办审批\",\"data_items\":%s,"
           "\"method\":\"%s\",\"valid_until\":\"%s\"%s}",
           code, items, method, until, extra);
  return b;
}

/* Applies; returns the new request's id (or -status on refusal). */
static long long apply(const char *token, const char *body, json_t **out) {
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/requests", token, body, &j);
  long long id = st == 201 ? json_integer_value(json_object_get(j, "id")) : -st;
  if (out)
    *out = j;
  else
    json_decref(j);
  return id;
}

static void apply_rules(void **state) {
  /* R-AUTH-1: a published resource, a purpose, items that are shared */
  static const struct {
    const char *what;
    const char *token;
    int code_slot; /* 0 table 1 api 2 none 3 draft 4 nonexistent */
    const char *items, *method, *until, *extra;
    long status;
    const char *err;
  } rows[] = {
      {"no purpose", NULL, 0, NULL, NULL, NULL, NULL, 400, "invalid_field"},
      {"unpublished", "cs", 3, "[\"uscc\"]", "fetch", "Y", "", 409, "not_published"},
      {"unknown resource", "cs", 4, "[\"uscc\"]", "fetch", "Y", "", 404, "not_found"},
      {"not shared", "cs", 2, "[\"uscc\"]", "fetch", "Y", "", 403, "not_shared"},
      {"item not shared", "cs", 0, "[\"uscc\",\"id_number\"]", "fetch", "Y", "", 400, "item_not_shared"},
      {"unknown item", "cs", 0, "[\"salary\"]", "fetch", "Y", "", 400, "invalid_field"},
      {"API method on a table", "cs", 0, "[\"uscc\"]", "call", "Y", ",\"call_quota\":10", 400, "invalid_field"},
      {"quota on a table", "cs", 0, "[\"uscc\"]", "fetch", "Y", ",\"call_quota\":10", 400, "invalid_field"},
      {"compare without a quota", "cs", 0, "[\"uscc\"]", "compare", "Y", "", 400, "invalid_field"},
      {"API without quota", "cs", 1, "[\"uscc\"]", "call", "Y", "", 400, "invalid_field"},
      {"past end", "cs", 0, "[\"uscc\"]", "fetch", "2020-01-01", "", 400, "invalid_field"},
      {"impossible date", "cs", 0, "[\"uscc\"]", "fetch", "2027-02-30", "", 400, "invalid_field"},
      {"more than three years", "cs", 0, "[\"uscc\"]", "fetch", "F", "", 400, "invalid_field"},
      {"own resource", "ps", 0, "[\"uscc\"]", "fetch", "Y", "", 409, "own_resource"},
      {"not a consumer unit", "rev", 0, "[\"uscc\"]", "fetch", "Y", "", 403, "forbidden"},
  };
  const char *codes[] = {e_table, e_api, e_none, e_draft, "999999/000001"};
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    const char *tok = !rows[i].token || strcmp(rows[i].token, "cs") == 0 ? t_cs
                      : strcmp(rows[i].token, "ps") == 0                  ? t_ps
                                                                          : t_rev;
    const char *until = !rows[i].until ? "" : strcmp(rows[i].until, "Y") == 0 ? next_year
                                          : strcmp(rows[i].until, "F") == 0   ? far_future
                                                                             : rows[i].until;
    const char *body = rows[i].items
                           ? apply_body(codes[rows[i].code_slot], rows[i].items, rows[i].method,
                                        until, rows[i].extra)
                           : "{\"resource_code\":\"201001/000001\",\"data_items\":[\"uscc\"],"
                             "\"method\":\"fetch\",\"valid_until\":\"2027-01-01\"}";
    json_t *j = NULL;
    long st = tb_call("POST", "/api/v1/requests", tok, body, &j);
    const char *err = tb_err_code(j);
    if (st != rows[i].status || err == NULL || strcmp(err, rows[i].err) != 0)
      fail_msg("%s: %ld %s, expected %ld %s", rows[i].what, st, err ? err : "", rows[i].status,
               rows[i].err);
    json_decref(j);
  }
  char n[16];
  tdb_scalar(tb.dbname, "SELECT COUNT(*) FROM requests", n, sizeof(n));
  assert_string_equal(n, "0"); /* nothing was filed */
}

static void approve_narrower(void **state) {
  /* R-AUTH-1, R-AUTH-2, R-AUTH-5 */
  long long id = apply(t_cs, apply_body(e_table, "[\"uscc\",\"name\"]", "subscribe", next_year, ""), NULL);
  assert_true(id > 0);
  char p[128];
  snprintf(p, sizeof(p), "/api/v1/requests/%lld/approve", id);
  tb_expect(403, "POST", p, t_ps, "{}");  /* staff do not decide */
  tb_expect(403, "POST", p, t_ca, "{}");  /* nor the consumer's admin */
  assert_string_equal(tb_expect(400, "POST", p, t_pa, "{\"data_items\":[\"uscc\",\"id_number\"]}"),
                      "wider_than_requested");
  assert_string_equal(tb_expect(400, "POST", p, t_pa, "{\"valid_until\":\"2099-01-01\"}"),
                      "invalid_field");
  char body[256];
  snprintf(body, sizeof(body), "{\"data_items\":[\"uscc\"],\"valid_until\":\"%s\","
                               "\"opinion\":\"仅限统一社会信用代码\"}", next_month);
  json_t *j = NULL;
  assert_int_equal(tb_call("POST", p, t_pa, body, &j), 200);
  assert_string_equal(json_string_value(json_object_get(j, "status")), "approved");
  assert_string_equal(json_string_value(json_object_get(j, "decided_by")), "prov.admin");
  assert_int_equal(json_array_size(json_object_get(j, "data_items")), 1);
  long long auth_id = json_integer_value(json_object_get(j, "authorization_id"));
  assert_true(auth_id > 0);
  json_decref(j);
  tb_expect(409, "POST", p, t_pa, "{}"); /* decided once */
  /* the authorization carries the narrowed grant */
  assert_int_equal(tb_call("GET", "/api/v1/authorizations", t_cs, NULL, &j), 200);
  json_t *a = json_array_get(json_object_get(j, "items"), 0);
  assert_int_equal(json_integer_value(json_object_get(a, "id")), auth_id);
  assert_string_equal(json_string_value(json_object_get(a, "valid_until")), next_month);
  assert_string_equal(json_string_value(json_array_get(json_object_get(a, "data_items"), 0)), "uscc");
  assert_string_equal(json_string_value(json_object_get(a, "status")), "active");
  assert_string_equal(json_string_value(json_object_get(a, "purpose")), "办理企业开办审批");
  json_decref(j);
  /* revocation (R-AUTH-5) */
  snprintf(p, sizeof(p), "/api/v1/authorizations/%lld/revoke", auth_id);
  tb_expect(403, "POST", p, t_ca, "{\"opinion\":\"x\"}");
  tb_expect(400, "POST", p, t_pa, "{}");
  tb_expect(200, "POST", p, t_pa, "{\"opinion\":\"用途已结束\"}");
  tb_expect(409, "POST", p, t_pa, "{\"opinion\":\"again\"}");
  tb_call("GET", "/api/v1/authorizations", t_cs, NULL, &j);
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "items"), 0), "status")),
                      "revoked");
  json_decref(j);
}

static void reject_and_cancel(void **state) {
  long long id = apply(t_cs, apply_body(e_table, "[\"name\"]", "fetch", next_year, ""), NULL);
  char p[128];
  snprintf(p, sizeof(p), "/api/v1/requests/%lld/reject", id);
  tb_expect(400, "POST", p, t_pa, "{}");
  json_t *j = NULL;
  assert_int_equal(tb_call("POST", p, t_pa, "{\"opinion\":\"用途与条件不符\"}", &j), 200);
  assert_string_equal(json_string_value(json_object_get(j, "status")), "rejected");
  assert_string_equal(json_string_value(json_object_get(j, "opinion")), "用途与条件不符");
  assert_true(json_is_null(json_object_get(j, "authorization_id")));
  json_decref(j);
  id = apply(t_cs, apply_body(e_table, "[\"name\"]", "compare", next_year, ",\"call_quota\":1000"), NULL);
  snprintf(p, sizeof(p), "/api/v1/requests/%lld/cancel", id);
  tb_expect(403, "POST", p, t_ps, NULL);
  tb_expect(200, "POST", p, t_cs, NULL);
  tb_expect(409, "POST", p, t_cs, NULL);
}

static void automatic_approval_is_recorded(void **state) {
  json_t *j = NULL;
  long long id = apply(t_cs, apply_body(e_api, "[\"uscc\",\"name\"]", "call", next_year,
                                        ",\"call_quota\":100000"), &j);
  assert_true(id > 0);
  assert_string_equal(json_string_value(json_object_get(j, "status")), "approved");
  assert_string_equal(json_string_value(json_object_get(j, "decided_by")), "auto");
  assert_true(json_integer_value(json_object_get(j, "authorization_id")) > 0);
  json_decref(j);
  char sql[256], v[256];
  snprintf(sql, sizeof(sql), "SELECT detail FROM audit_log WHERE action='request.create' AND object='request:%lld'", id);
  tdb_scalar(tb.dbname, sql, v, sizeof(v));
  assert_non_null(strstr(v, "\"auto_approved\":true"));
  tdb_scalar(tb.dbname, "SELECT COUNT(*) FROM authorizations WHERE auto_approved = 1", v, sizeof(v));
  assert_string_equal(v, "1");
}

static void supervision_and_visibility(void **state) {
  /* R-AUTH-4: management sees every request; units see their own */
  json_t *j = NULL;
  tb_call("GET", "/api/v1/requests", t_rev, NULL, &j);
  size_t all = json_array_size(json_object_get(j, "items"));
  json_decref(j);
  assert_true(all >= 4);
  tb_call("GET", "/api/v1/requests", t_c2, NULL, &j);
  assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
  json_decref(j);
  tb_call("GET", "/api/v1/requests?side=provider", t_pa, NULL, &j);
  assert_int_equal(json_array_size(json_object_get(j, "items")), all);
  json_decref(j);
  tb_call("GET", "/api/v1/requests?side=provider", t_ca, NULL, &j);
  assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
  json_decref(j);
  tb_call("GET", "/api/v1/requests?status=rejected", t_cs, NULL, &j);
  assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
  long long id = json_integer_value(json_object_get(json_array_get(json_object_get(j, "items"), 0), "id"));
  json_decref(j);
  char p[64];
  snprintf(p, sizeof(p), "/api/v1/requests/%lld", id);
  tb_expect(404, "GET", p, t_c2, NULL);
  tb_expect(200, "GET", p, t_rev, NULL);
  tb_expect(200, "GET", p, t_pa, NULL);
  tb_expect(400, "GET", "/api/v1/requests?side=everyone", t_cs, NULL);
}

static void demand_for_an_unpublished_resource(void **state) {
  /* R-AUTH-3 */
  json_t *j = NULL;
  assert_int_equal(tb_call("POST", "/api/v1/demands", t_ca,
                           "{\"provider_unit_code\":\"" PROV "\",\"description\":\"需要企业年报数据\","
                           "\"purpose\":\"信用监管分析\"}", &j), 201);
  long long id = json_integer_value(json_object_get(j, "id"));
  json_decref(j);
  tb_expect(400, "POST", "/api/v1/demands", t_ca,
            "{\"provider_unit_code\":\"" CONS2 "\",\"description\":\"xxxx\",\"purpose\":\"yyyy\"}");
  /* the provider does not see it before management approves */
  tb_call("GET", "/api/v1/demands", t_pa, NULL, &j);
  assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
  json_decref(j);
  char p[128];
  snprintf(p, sizeof(p), "/api/v1/demands/%lld/decide", id);
  tb_expect(403, "POST", p, t_pa, "{\"decision\":\"approve\"}");
  tb_expect(400, "POST", p, t_rev, "{\"decision\":\"reject\"}");
  tb_expect(200, "POST", p, t_rev, "{\"decision\":\"approve\",\"opinion\":\"同意，请市场监管局编目发布\"}");
  tb_call("GET", "/api/v1/demands", t_pa, NULL, &j);
  assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
  json_decref(j);
  /* the provider catalogs and publishes it, then fulfils the demand */
  char code[32];
  publish_entry(entry_body("企业年报", "structured", "database", "table", "conditional", 0), code,
                sizeof(code), 1);
  snprintf(p, sizeof(p), "/api/v1/demands/%lld/fulfil", id);
  char body[256];
  snprintf(body, sizeof(body), "{\"resource_code\":\"%s\",\"data_items\":[\"uscc\",\"name\"],"
                               "\"method\":\"subscribe\",\"valid_until\":\"%s\"}", code, next_year);
  tb_expect(403, "POST", p, t_ps, body);
  assert_int_equal(tb_call("POST", p, t_pa, body, &j), 200);
  long long rid = json_integer_value(json_object_get(j, "request_id"));
  json_decref(j);
  tb_expect(409, "POST", p, t_pa, body);
  /* the consumer's request is there, for the provider to decide */
  snprintf(p, sizeof(p), "/api/v1/requests/%lld", rid);
  tb_call("GET", p, t_ca, NULL, &j);
  assert_string_equal(json_string_value(json_object_get(j, "status")), "pending");
  assert_string_equal(json_string_value(json_object_get(j, "purpose")), "信用监管分析");
  assert_string_equal(json_string_value(json_object_get(j, "resource_code")), code);
  json_decref(j);
  snprintf(p, sizeof(p), "/api/v1/requests/%lld/approve", rid);
  tb_expect(200, "POST", p, t_pa, "{}");
}

static int setup(void **state) {
  time_t now = time(NULL);
  struct tm tm;
  time_t t = now + 365 * 86400;
  gmtime_r(&t, &tm);
  strftime(next_year, sizeof(next_year), "%Y-%m-%d", &tm);
  t = now + 31 * 86400;
  gmtime_r(&t, &tm);
  strftime(next_month, sizeof(next_month), "%Y-%m-%d", &tm);
  t = now + 4 * 366 * 86400;
  gmtime_r(&t, &tm);
  strftime(far_future, sizeof(far_future), "%Y-%m-%d", &tm);
  if (tb_start(&tb, "gdx_test_requests", GDX_BROKER_BIN, t_ops, sizeof(t_ops)))
    return -1;
  tb_create_unit(t_ops, MGMT, "市大数据管理局", "management");
  tb_create_unit(t_ops, PROV, "市市场监管局", "provider,consumer");
  tb_create_unit(t_ops, CONS, "市公安局", "consumer");
  tb_make_user(t_ops, "reviewer", "mgmt_reviewer", MGMT, t_rev, sizeof(t_rev));
  tb_make_user(t_ops, "prov.admin", "unit_admin", PROV, t_pa, sizeof(t_pa));
  tb_make_user(t_pa, "prov.staff", "staff", PROV, t_ps, sizeof(t_ps));
  tb_make_user(t_ops, "cons.admin", "unit_admin", CONS, t_ca, sizeof(t_ca));
  tb_make_user(t_ca, "cons.staff", "staff", CONS, t_cs, sizeof(t_cs));
  tb_create_unit(t_ops, CONS2, "市税务局", "consumer");
  tb_make_user(t_ops, "cons2.admin", "unit_admin", CONS2, t_c2, sizeof(t_c2));
  publish_entry(entry_body("企业登记信息", "structured", "database", "table", "conditional", 0),
                e_table, sizeof(e_table), 1);
  publish_entry(entry_body("营业执照核验接口", "service", "service_interface", "api",
                           "unconditional", 1), e_api, sizeof(e_api), 1);
  publish_entry(entry_body("内部资料", "structured", "database", "table", "none", 0), e_none,
                sizeof(e_none), 1);
  publish_entry(entry_body("草稿", "structured", "database", "table", "unconditional", 0), e_draft,
                sizeof(e_draft), 0);
  return 0;
}

static int teardown(void **state) { return tb_stop(&tb) != 0; }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(apply_rules),
      cmocka_unit_test(approve_narrower),
      cmocka_unit_test(reject_and_cancel),
      cmocka_unit_test(automatic_approval_is_recorded),
      cmocka_unit_test(supervision_and_visibility),
      cmocka_unit_test(demand_for_an_unpublished_resource),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
