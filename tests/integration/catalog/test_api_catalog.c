/* The catalog against the real broker and MariaDB: every R-CAT rule - kinds
 * of resources and how they attach, the national fields, the lifecycle with
 * versions and history, search with filters, sorting and paging, the allowed
 * file formats - and who may do each step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiclient.h"
#include "harness.h"

#define MGMT "91110000MA01ABCD2Q"
#define PROV "91310115MA1H7GXY1E"
#define CONS "121000004000000010"

static tb_broker tb;
static char t_ops[80], t_rev[80], t_pa[80], t_ps[80], t_ca[80];

/* An entry body; %s slots: name, summary, category, type, format, kind, extra attachment */
static char *entry(const char *name, const char *summary, const char *category, const char *type,
                   const char *format, const char *kind, const char *att_extra,
                   const char *sharing) {
  static char b[4096];
  snprintf(b, sizeof(b),
           "{\"name\":\"%s\",\"summary\":\"%s\",\"category\":\"%s\",\"resource_type\":\"%s\","
           "\"format\":\"%s\",\"data_items\":[{\"name\":\"uscc\",\"title\":\"统一社会信用代码\","
           "\"type\":\"string\",\"length\":18,\"sharing_type\":\"unconditional\"},"
           "{\"name\":\"reg_date\",\"type\":\"date\"}],\"sharing_type\":\"%s\","
           "\"sharing_condition\":\"%s\",\"sharing_method\":\"%s\",\"open_to_public\":false,"
           "\"update_cycle\":\"daily\",\"related_codes\":[],"
           "\"attachment\":{\"kind\":\"%s\",\"node\":\"scjg-node-1\",\"target\":\"t\"%s}}",
           name, summary, category, type, format, sharing,
           strcmp(sharing, "conditional") == 0 ? "用于行政审批" : "", kind, kind, att_extra);
  return b;
}

static char *create(const char *token, const char *body, char *code, size_t n) {
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/catalog", token, body, &j);
  if (st != 201)
    fail_msg("create -> %ld (%s)", st, tb_err_code(j) ? tb_err_code(j) : "");
  snprintf(code, n, "%s", json_string_value(json_object_get(j, "resource_code")));
  json_decref(j);
  return code;
}

static void path(char *out, size_t n, const char *code, const char *suffix) {
  snprintf(out, n, "/api/v1/catalog/%s%s", code, suffix);
}

static void publish(const char *code) {
  char p[128];
  path(p, sizeof(p), code, "/submit");
  tb_expect(200, "POST", p, t_pa, NULL);
  path(p, sizeof(p), code, "/review");
  tb_expect(200, "POST", p, t_rev, "{\"decision\":\"publish\",\"opinion\":\"同意发布\"}");
}

static void kinds_and_attachments(void **state) {
  /* R-CAT-1, R-CAT-2: how each kind of resource attaches its data */
  static const struct {
    const char *type, *format, *kind, *extra;
    long status;
  } rows[] = {
      {"structured", "database", "table", "", 201},
      {"structured", "spreadsheet", "file", ",\"formats\":[\"xls\",\"csv\"]", 201},
      {"unstructured", "electronic_file", "file", ",\"formats\":[\"docx\",\"wps\",\"txt\"]", 201},
      {"service", "service_interface", "api",
       ",\"openapi\":\"openapi: 3.1.0\\npaths: {/x: {get: {}}}\"", 201},
      /* an API says its operations in a text that reads */
      {"service", "service_interface", "api", "", 400},
      {"service", "service_interface", "api", ",\"openapi\":\"openapi: 3.1.0\"", 400},
      {"service", "service_interface", "api", ",\"openapi\":\"paths: {/x: [\"", 400},
      {"service", "service_interface", "table", "", 400},
      {"unstructured", "electronic_file", "table", "", 400},
      {"structured", "database", "api", "", 400},
      {"structured", "database", "table", ",\"formats\":[\"csv\"]", 400},
      {"unstructured", "electronic_file", "file", "", 400},
  };
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    json_t *j = NULL;
    long st = tb_call("POST", "/api/v1/catalog", t_ps,
                      entry("资源", "kinds", "101001", rows[i].type, rows[i].format, rows[i].kind,
                            rows[i].extra, "unconditional"),
                      &j);
    if (st != rows[i].status)
      fail_msg("row %zu: %ld (%s), expected %ld", i, st, tb_err_code(j) ? tb_err_code(j) : "",
               rows[i].status);
    json_decref(j);
  }
  /* an OpenAPI text that does not read is refused with its line and the reason */
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/catalog", t_ps,
                    entry("资源", "kinds", "101001", "service", "service_interface", "api",
                          ",\"openapi\":\"openapi: 3.0.3\\npaths:\\n  /x:\\n    get: a: b\\n\"",
                          "unconditional"),
                    &j);
  assert_int_equal(st, 400);
  const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
  if (msg == NULL || strncmp(msg, "attachment.openapi: line 4", 26) != 0)
    fail_msg("the refusal names no line: %s", msg ? msg : "(none)");
  json_decref(j);
}

static void file_formats_are_checked(void **state) {
  /* R-CAT-6: only wps, doc, xml, txt, docx, html, ppt, et, xls, csv */
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/catalog", t_ps,
                    entry("文件", "f", "101001", "unstructured", "electronic_file", "file",
                          ",\"formats\":[\"docx\",\"exe\"]", "unconditional"),
                    &j);
  assert_int_equal(st, 400);
  const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
  assert_non_null(strstr(msg, "attachment.formats[1]"));
  assert_non_null(strstr(msg, "wps, doc, xml, txt, docx, html, ppt, et, xls, csv"));
  json_decref(j);
}

static void field_rules(void **state) {
  /* conditional sharing states its condition; auto approval only when unconditional */
  char *b = entry("条件", "c", "101001", "structured", "database", "table", "", "conditional");
  char *cond = strstr(b, "\"sharing_condition\":\"");
  memmove(cond + 21, cond + 21 + strlen("用于行政审批"), strlen(cond + 21 + strlen("用于行政审批")) + 1);
  assert_string_equal(tb_expect(400, "POST", "/api/v1/catalog", t_ps, b), "invalid_field");
  char auto_cond[4096];
  snprintf(auto_cond, sizeof(auto_cond), "%s",
           entry("条件", "c", "101001", "structured", "database", "table", "", "conditional"));
  memcpy(strrchr(auto_cond, '}'), ",\"auto_approve\":true}", 22);
  tb_expect(400, "POST", "/api/v1/catalog", t_ps, auto_cond);
  /* the category is a classification code: 1, 3, 6 or 9 digits */
  tb_expect(400, "POST", "/api/v1/catalog", t_ps,
            entry("x", "c", "10100", "structured", "database", "table", "", "unconditional"));
}

static void who_may_catalog(void **state) {
  char *b = entry("权限", "r", "101001", "structured", "database", "table", "", "unconditional");
  tb_expect(403, "POST", "/api/v1/catalog", t_ca, b);  /* a consumer-only unit */
  tb_expect(403, "POST", "/api/v1/catalog", t_rev, b); /* management reviews, does not catalog */
  tb_expect(403, "POST", "/api/v1/catalog", t_ops, b);
  char code[64], p[128];
  create(t_ps, b, code, sizeof(code));
  path(p, sizeof(p), code, "/submit");
  tb_expect(403, "POST", p, t_ca, NULL);
  tb_expect(200, "POST", p, t_ps, NULL); /* staff submit */
  path(p, sizeof(p), code, "/review");
  tb_expect(403, "POST", p, t_pa, "{\"decision\":\"publish\"}"); /* not one's own review */
  tb_expect(200, "POST", p, t_rev, "{\"decision\":\"publish\"}");
  path(p, sizeof(p), code, "/withdraw");
  tb_expect(403, "POST", p, t_ps, "{\"opinion\":\"no\"}"); /* staff do not withdraw */
  tb_expect(403, "POST", p, t_ca, "{\"opinion\":\"no\"}"); /* nor another unit */
  tb_expect(200, "POST", p, t_pa, "{\"opinion\":\"数据停止更新\"}");
}

static void lifecycle_versions_and_history(void **state) {
  /* R-CAT-4 */
  char code[64], p[128];
  create(t_ps, entry("企业登记信息", "市场主体登记 enterprise registration", "101001",
                     "structured", "database", "table", "", "conditional"),
         code, sizeof(code));
  assert_memory_equal(code, "101001/", 7);
  path(p, sizeof(p), code, "");
  tb_expect(404, "GET", p, t_ca, NULL); /* a draft is the provider's own */
  tb_expect(200, "GET", p, t_rev, NULL);
  path(p, sizeof(p), code, "/submit");
  tb_expect(200, "POST", p, t_ps, NULL);
  tb_expect(409, "POST", p, t_ps, NULL);
  path(p, sizeof(p), code, "");
  assert_string_equal(tb_expect(409, "PUT", p, t_ps,
                                entry("改名", "x", "101001", "structured", "database", "table", "",
                                      "unconditional")),
                      "under_review");
  /* returned with an opinion */
  path(p, sizeof(p), code, "/review");
  tb_expect(400, "POST", p, t_rev, "{\"decision\":\"return\"}");
  tb_expect(200, "POST", p, t_rev, "{\"decision\":\"return\",\"opinion\":\"请补充数据项说明\"}");
  path(p, sizeof(p), code, "");
  json_t *j = NULL;
  tb_call("GET", p, t_ps, NULL, &j);
  assert_string_equal(json_string_value(json_object_get(j, "status")), "draft");
  assert_string_equal(json_string_value(json_object_get(j, "review_opinion")), "请补充数据项说明");
  json_decref(j);
  /* published as version 1 */
  publish(code);
  tb_call("GET", p, t_ca, NULL, &j);
  assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
  json_t *pub = json_object_get(j, "published");
  assert_string_equal(json_string_value(json_object_get(pub, "name")), "企业登记信息");
  assert_string_equal(json_string_value(json_object_get(pub, "sharing_condition")), "用于行政审批");
  assert_int_equal(json_array_size(json_object_get(pub, "data_items")), 2);
  assert_null(json_object_get(j, "working_copy")); /* not for a consumer */
  assert_non_null(json_object_get(j, "publish_date"));
  json_decref(j);
  /* edited: version 1 stays visible until version 2 is published */
  tb_expect(200, "PUT", p, t_ps,
            entry("企业登记信息（含注销）", "市场主体登记与注销", "101001", "structured", "database",
                  "table", "", "conditional"));
  tb_call("GET", p, t_ca, NULL, &j);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "published"), "name")),
                      "企业登记信息");
  json_decref(j);
  publish(code);
  tb_call("GET", p, t_ca, NULL, &j);
  assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "published"), "name")),
                      "企业登记信息（含注销）");
  json_decref(j);
  /* history: both versions and every step */
  path(p, sizeof(p), code, "/history");
  tb_call("GET", p, t_ca, NULL, &j);
  json_t *versions = json_object_get(j, "versions"), *events = json_object_get(j, "events");
  assert_int_equal(json_array_size(versions), 2);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_array_get(versions, 0), "entry"), "name")),
                      "企业登记信息");
  const char *steps[] = {"created", "submitted", "returned", "submitted", "published",
                         "updated", "submitted", "published"};
  assert_int_equal(json_array_size(events), 8);
  for (size_t i = 0; i < 8; i++)
    assert_string_equal(json_string_value(json_object_get(json_array_get(events, i), "event")),
                        steps[i]);
  json_decref(j);
  /* withdrawn: gone for consumers */
  path(p, sizeof(p), code, "/withdraw");
  tb_expect(200, "POST", p, t_rev, "{\"opinion\":\"口径调整\"}");
  path(p, sizeof(p), code, "");
  tb_expect(404, "GET", p, t_ca, NULL);
  tb_expect(409, "PUT", p, t_ps,
            entry("xx", "y", "101001", "structured", "database", "table", "", "unconditional"));
  char n[16];
  tdb_scalar(tb.dbname, "SELECT COUNT(*) FROM audit_log WHERE action='catalog.review' AND result='success'",
             n, sizeof(n));
  assert_string_equal(n, "4"); /* a publish in who_may_catalog, a return and two publishes here */
}

static long search(const char *query, json_t **j) {
  char p[512];
  snprintf(p, sizeof(p), "/api/v1/catalog?%s", query);
  return tb_call("GET", p, t_ca, NULL, j);
}

static void search_filters_sort_page(void **state) {
  /* R-CAT-5 */
  const struct {
    const char *name, *summary, *cat, *type, *format, *kind, *extra, *share;
  } seed[] = {
      {"人口基础信息", "户籍人口 population base", "201001", "structured", "database", "table", "",
       "conditional"},
      {"法人库", "legal persons 法人", "201002", "structured", "database", "table", "",
       "unconditional"},
      {"营业执照查询接口", "business licence API", "301001", "service", "service_interface", "api",
       ",\"openapi\":\"openapi: 3.0.3\\npaths: {/x: {get: {}}}\"", "unconditional"},
      {"政策文件汇编", "policy documents 100%", "401001", "unstructured", "electronic_file", "file",
       ",\"formats\":[\"doc\"]", "unconditional"},
  };
  char code[64];
  for (size_t i = 0; i < 4; i++) {
    create(t_ps, entry(seed[i].name, seed[i].summary, seed[i].cat, seed[i].type, seed[i].format,
                       seed[i].kind, seed[i].extra, seed[i].share),
           code, sizeof(code));
    publish(code);
  }
  json_t *j;
  const struct {
    const char *query;
    int total;
    const char *first;
  } q[] = {
      {"q=%E4%BA%BA%E5%8F%A3", 1, "人口基础信息"},          /* 人口 */
      {"q=%E4%BA%BA", 2, "人口基础信息"},                   /* 人: one character, no gram */
      {"q=%E5%8F%A3%E5%9F%BA", 1, "人口基础信息"},          /* 口基 spans words */
      {"q=POPULATION", 1, "人口基础信息"},                   /* Latin, any case */
      {"q=%E6%B3%95%E4%BA%BA", 1, "法人库"},               /* 法人 in name and summary */
      {"q=licence&type=service", 1, "营业执照查询接口"},
      {"q=licence&type=structured", 0, NULL},
      {"category=2010", 2, "人口基础信息"},                  /* prefix */
      {"sharing=conditional&category=2", 1, "人口基础信息"},
      {"format=electronic_file", 1, "政策文件汇编"},
      {"q=100%25", 1, "政策文件汇编"},                       /* % is literal */
      {"q=%25%25", 0, NULL},
      {"q=_", 0, NULL},
      {"provider=" PROV "&category=2&sort=name&order=desc", 2, "法人库"},
      {"category=2&sort=code&order=asc", 2, "人口基础信息"},
  };
  for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
    char qs[300];
    snprintf(qs, sizeof(qs), "%s%s", q[i].query, strstr(q[i].query, "sort=") ? "" : "&sort=name");
    assert_int_equal(search(qs, &j), 200);
    int total = (int)json_integer_value(json_object_get(j, "total"));
    if (total != q[i].total)
      fail_msg("%s: %d results, expected %d", q[i].query, total, q[i].total);
    if (q[i].first)
      assert_string_equal(json_string_value(json_object_get(
                              json_array_get(json_object_get(j, "items"), 0), "name")),
                          q[i].first);
    json_decref(j);
  }
  /* the default order is newest first */
  assert_int_equal(search("category=2", &j), 200);
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "items"), 0), "name")),
                      "法人库");
  assert_true(json_is_true(json_object_get(j, "total_is_exact")));
  json_decref(j);
  /* paging */
  assert_int_equal(search("category=&sort=code&limit=2&offset=0", &j), 200);
  int total = (int)json_integer_value(json_object_get(j, "total"));
  assert_int_equal(json_array_size(json_object_get(j, "items")), 2);
  char first[64];
  snprintf(first, sizeof(first), "%s",
           json_string_value(json_object_get(json_array_get(json_object_get(j, "items"), 0), "resource_code")));
  json_decref(j);
  char qs[64];
  snprintf(qs, sizeof(qs), "sort=code&limit=2&offset=%d", total - 1);
  assert_int_equal(search(qs, &j), 200);
  assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
  assert_string_not_equal(json_string_value(json_object_get(
                              json_array_get(json_object_get(j, "items"), 0), "resource_code")),
                          first);
  json_decref(j);
  /* bad paging and sorting */
  const char *bad[] = {"limit=0", "limit=101", "offset=-1", "sort=evil", "order=sideways",
                       "category=1%27%20OR%201=1", "limit=abc"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    long st = search(bad[i], &j);
    if (st != 400)
      fail_msg("%s -> %ld, expected 400", bad[i], st);
    assert_string_equal(tb_err_code(j), "invalid_query");
    json_decref(j);
  }
  /* a provider's own drafts with mine=1 */
  create(t_ps, entry("草稿资源", "draft only", "501001", "structured", "database", "table", "",
                     "unconditional"),
         code, sizeof(code));
  char p[256];
  snprintf(p, sizeof(p), "/api/v1/catalog?mine=1&q=draft");
  tb_call("GET", p, t_ps, NULL, &j);
  assert_int_equal(json_integer_value(json_object_get(j, "total")), 1);
  json_decref(j);
  assert_int_equal(search("q=draft", &j), 200);
  assert_int_equal(json_integer_value(json_object_get(j, "total")), 0);
  json_decref(j);
}

static int setup(void **state) {
  if (tb_start(&tb, "gdx_test_catalog", GDX_BROKER_BIN, t_ops, sizeof(t_ops)))
    return -1;
  tb_create_unit(t_ops, MGMT, "市大数据管理局", "management");
  tb_create_unit(t_ops, PROV, "市市场监管局", "provider,consumer");
  tb_create_unit(t_ops, CONS, "市公安局", "consumer");
  tb_make_user(t_ops, "reviewer", "mgmt_reviewer", MGMT, t_rev, sizeof(t_rev));
  tb_make_user(t_ops, "prov.admin", "unit_admin", PROV, t_pa, sizeof(t_pa));
  tb_make_user(t_pa, "prov.staff", "staff", PROV, t_ps, sizeof(t_ps));
  tb_make_user(t_ops, "cons.admin", "unit_admin", CONS, t_ca, sizeof(t_ca));
  return 0;
}

static int teardown(void **state) { return tb_stop(&tb) != 0; }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kinds_and_attachments),
      cmocka_unit_test(file_formats_are_checked),
      cmocka_unit_test(field_rules),
      cmocka_unit_test(who_may_catalog),
      cmocka_unit_test(lifecycle_versions_and_history),
      cmocka_unit_test(search_filters_sort_page),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
