/* common/openapi.c: OpenAPI texts (JSON, YAML block and flow style) read
 * into operation lists, checked against the expected list in its stored
 * form; bad texts refused with the expected line and reason; the stored
 * form loaded back strictly; calls matched as the proxy matches them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "openapi.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The layout tests/integration/test_exchange.c gives its API entries, with
 * the path parameter declared (see the bad case below for it without). */
#define EXCHANGE_TEXT(uscc_params)                                                                 \
  "openapi: 3.0.3\ninfo:\n  title: test\n  version: \"1\"\npaths:\n"                               \
  "  /enterprises:\n    get:\n      summary: list\n"                                               \
  "  /enterprises/{uscc}:\n    get:\n      summary: one\n" uscc_params                             \
  "  /headers:\n    get:\n      summary: headers\n"                                                \
  "  /echo:\n    post:\n      summary: echo\n"                                                     \
  "  /big:\n    get:\n      summary: big\n"                                                        \
  "  /slow:\n    get:\n      summary: slow\n"

/* docs/examples/catalog-api.json's attachment.openapi (the demo's API). */
#define DEMO_TEXT                                                                                  \
  "openapi: 3.0.3\ninfo:\n  title: 企业信息查询接口\n  version: \"1.0\"\npaths:\n"         \
  "  /enterprises:\n    get:\n      summary: 企业列表\n  /enterprises/{uscc}:\n"               \
  "    get:\n      summary: 按统一社会信用代码查询企业\n      parameters:\n"          \
  "        - name: uscc\n          in: path\n          required: true\n"                           \
  "          schema: { type: string }\n"

static const struct {
  const char *name, *text, *ops; /* ops: the expected stored form */
} good[] = {
    {"test_exchange's layout, uscc declared",
     EXCHANGE_TEXT("      parameters: [{name: uscc, in: path, required: true}]\n"),
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/enterprises\",\"params\":[]},"
     "{\"m\":\"GET\",\"p\":\"/enterprises/{uscc}\",\"params\":[{\"n\":\"uscc\",\"in\":\"path\","
     "\"req\":true}]},{\"m\":\"GET\",\"p\":\"/headers\",\"params\":[]},"
     "{\"m\":\"POST\",\"p\":\"/echo\",\"params\":[]},{\"m\":\"GET\",\"p\":\"/big\",\"params\":[]},"
     "{\"m\":\"GET\",\"p\":\"/slow\",\"params\":[]}]}"},
    {"the demo's text", DEMO_TEXT,
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/enterprises\",\"params\":[]},"
     "{\"m\":\"GET\",\"p\":\"/enterprises/{uscc}\",\"params\":[{\"n\":\"uscc\",\"in\":\"path\","
     "\"req\":true,\"t\":\"string\"}]}]}"},
    {"JSON: path-level parameters, $refs, enum, array, query",
     "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"t\",\"version\":\"1\"},\"paths\":{"
     "\"/persons/{id}\":{\"parameters\":[{\"$ref\":\"#/components/parameters/Id\"},"
     "  {\"name\":\"lang\",\"in\":\"query\",\"schema\":{\"type\":\"string\","
     "   \"enum\":[\"zh\",\"en\"]}}],"
     " \"get\":{\"parameters\":[{\"name\":\"fields\",\"in\":\"query\","
     "   \"schema\":{\"type\":\"array\","
     "   \"items\":{\"$ref\":\"#/components/schemas/Field\"}}},"
     "   {\"name\":\"X-Trace\",\"in\":\"header\",\"schema\":{\"type\":\"string\"}}]},"
     " \"delete\":{\"parameters\":[{\"name\":\"lang\",\"in\":\"query\",\"required\":true,"
     "   \"schema\":{\"type\":\"integer\",\"enum\":[1,2.5,true,null]}}]}}},"
     "\"components\":{\"parameters\":{\"Id\":{\"name\":\"id\",\"in\":\"path\",\"required\":true,"
     "  \"schema\":{\"$ref\":\"#/components/schemas/Uscc\"}}},"
     " \"schemas\":{\"Uscc\":{\"type\":\"string\",\"maxLength\":18,\"pattern\":\"^[0-9A-Z]{18}$\"},"
     "  \"Field\":{\"type\":\"string\"}}}}",
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/persons/{id}\",\"params\":["
     "{\"n\":\"id\",\"in\":\"path\",\"req\":true,\"t\":\"string\",\"max\":18,"
     "\"pat\":\"^[0-9A-Z]{18}$\"},{\"n\":\"lang\",\"in\":\"query\",\"t\":\"string\",\"e\":[\"zh\","
     "\"en\"]},{\"n\":\"fields\",\"in\":\"query\",\"t\":\"array\",\"it\":\"string\"}]},"
     "{\"m\":\"DELETE\",\"p\":\"/persons/{id}\",\"params\":[{\"n\":\"id\",\"in\":\"path\","
     "\"req\":true,\"t\":\"string\",\"max\":18,\"pat\":\"^[0-9A-Z]{18}$\"},{\"n\":\"lang\","
     "\"in\":\"query\",\"req\":true,\"t\":\"integer\",\"e\":[\"1\",\"2.5\",\"true\"]}]}]}"},
    {"YAML: the same in block style, comments, quoted keys, multi-line strings",
     "# the registry of persons\n"
     "openapi: \"3.0.3\"\n"
     "info:\n"
     "  title: persons   # inline comment\n"
     "  description: |\n"
     "    Two lines: with a colon,\n"
     "    and - a dash\n"
     "  version: '1'\n"
     "paths:\n"
     "  '/persons/{id}':\n"
     "    summary: >\n"
     "      folded text\n"
     "      over lines\n"
     "    parameters:\n"
     "      - $ref: '#/components/parameters/Id'\n"
     "      - name: lang\n"
     "        in: query\n"
     "        schema:\n"
     "          type: string\n"
     "          enum: [zh, en]\n"
     "    \"get\":\n"
     "      parameters:\n"
     "        - name: fields\n"
     "          in: query\n"
     "          schema:\n"
     "            type: array\n"
     "            items: {$ref: \"#/components/schemas/Field\"}\n"
     "    delete:\n"
     "      parameters:\n"
     "        - {name: lang, in: query, required: true,\n"
     "           schema: {type: integer, enum: [1, 2.5, true, ~]}}\n"
     "components:\n"
     "  parameters:\n"
     "    Id:\n"
     "      name: id\n"
     "      in: path\n"
     "      required: true\n"
     "      schema:\n"
     "        $ref: '#/components/schemas/Uscc'\n"
     "  schemas:\n"
     "    Uscc: {type: string, maxLength: 18, pattern: '^[0-9A-Z]{18}$'}\n"
     "    Field:\n"
     "      type: string\n",
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/persons/{id}\",\"params\":["
     "{\"n\":\"id\",\"in\":\"path\",\"req\":true,\"t\":\"string\",\"max\":18,"
     "\"pat\":\"^[0-9A-Z]{18}$\"},{\"n\":\"lang\",\"in\":\"query\",\"t\":\"string\",\"e\":[\"zh\","
     "\"en\"]},{\"n\":\"fields\",\"in\":\"query\",\"t\":\"array\",\"it\":\"string\"}]},"
     "{\"m\":\"DELETE\",\"p\":\"/persons/{id}\",\"params\":[{\"n\":\"id\",\"in\":\"path\","
     "\"req\":true,\"t\":\"string\",\"max\":18,\"pat\":\"^[0-9A-Z]{18}$\"},{\"n\":\"lang\","
     "\"in\":\"query\",\"req\":true,\"t\":\"integer\",\"e\":[\"1\",\"2.5\",\"true\"]}]}]}"},
    {"YAML flow style, not JSON (unquoted)",
     "{openapi: 3.0.0, paths: {/a: {get: {}, put: {}}, '/b/{x}': {parameters: [{name: x, in: path, "
     "required: true, schema: {type: number}}], post: {}}}}",
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/a\",\"params\":[]},{\"m\":\"PUT\",\"p\":\"/a\","
     "\"params\":[]},{\"m\":\"POST\",\"p\":\"/b/{x}\",\"params\":[{\"n\":\"x\",\"in\":\"path\","
     "\"req\":true,\"t\":\"number\"}]}]}"},
    {"an operation's parameter replaces the path item's of the same name and in",
     "openapi: 3.1.0\npaths:\n  /p/{id}:\n    parameters:\n"
     "      - {name: id, in: path, required: true, schema: {type: string}}\n"
     "      - {name: q, in: query, schema: {type: string}}\n"
     "      - {name: q, in: header}\n"
     "    get:\n      parameters:\n"
     "        - {name: id, in: path, required: true, schema: {type: integer}}\n"
     "        - {name: q, in: query, required: true}\n"
     "    head: {}\n",
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/p/{id}\",\"params\":[{\"n\":\"id\",\"in\":\"path\","
     "\"req\":true,\"t\":\"integer\"},{\"n\":\"q\",\"in\":\"query\",\"req\":true}]},"
     "{\"m\":\"HEAD\",\"p\":\"/p/{id}\",\"params\":[{\"n\":\"id\",\"in\":\"path\",\"req\":true,"
     "\"t\":\"string\"},{\"n\":\"q\",\"in\":\"query\",\"t\":\"string\"}]}]}"},
    {"method keys in any case, trace dropped, extensions and other fields skipped",
     "openapi: 3.0.1\nx-gdx: {a: 1}\npaths:\n  x-internal: {get: {}}\n  /a:\n    summary: s\n"
     "    servers: [{url: 'http://x'}]\n    GET: {}\n    Options: {}\n    trace: {}\n"
     "    patch: {}\n    x-rate: 5\n",
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/a\",\"params\":[]},{\"m\":\"OPTIONS\",\"p\":\"/a\","
     "\"params\":[]},{\"m\":\"PATCH\",\"p\":\"/a\",\"params\":[]}]}"},
    {"OpenAPI 3.1: a list of types, boolean schemas, an unquoted version number",
     "openapi: 3.1\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - {name: a, in: query, schema: {type: [string, 'null'], maxLength: 3}}\n"
     "        - {name: b, in: query, schema: {type: [string, integer]}}\n"
     "        - {name: c, in: query, schema: true}\n"
     "        - {name: d, in: query, content: {application/json: {schema: {type: object}}}}\n"
     "        - {name: e, in: query, schema: {type: array, items: true}}\n",
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/a\",\"params\":[{\"n\":\"a\",\"in\":\"query\","
     "\"t\":\"string\",\"max\":3},{\"n\":\"b\",\"in\":\"query\"},{\"n\":\"c\",\"in\":\"query\"},"
     "{\"n\":\"d\",\"in\":\"query\",\"t\":\"object\"},{\"n\":\"e\",\"in\":\"query\","
     "\"t\":\"array\"}]}]}"},
    {"a BOM, CRLF line ends, a document start marker, scalars of every kind",
     "\xef\xbb\xbf%YAML 1.1\r\n---\r\nopenapi: 3.0.3\r\npaths:\r\n  /a/{x}.{ext}:\r\n    get:\r\n"
     "      parameters:\r\n        - {name: x, in: path}\r\n"
     "        - {name: ext, in: path, schema: {enum: [0x1F, 0o17, -3, +4, 1e3, .5, 'yes', "
     "yes, 中文, \"a\\tb\", !!str 12]}}\r\n...\r\n",
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/a/{x}.{ext}\",\"params\":[{\"n\":\"x\","
     "\"in\":\"path\",\"req\":true},{\"n\":\"ext\",\"in\":\"path\",\"req\":true,\"e\":[\"31\","
     "\"15\",\"-3\",\"4\",\"1000\",\"0.5\",\"yes\",\"yes\",\"中文\",\"a\\tb\",\"12\"]}]}]}"},
    {"a few anchors and aliases",
     "openapi: 3.0.3\npaths:\n  /a/{id}:\n    get:\n      parameters: &p\n"
     "        - &id {name: id, in: path, schema: &s {type: string, maxLength: 9}}\n"
     "    put:\n      parameters: *p\n"
     "  /b/{id}/c:\n    get:\n      parameters: [*id, {name: q, in: query, schema: *s}]\n",
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/a/{id}\",\"params\":[{\"n\":\"id\",\"in\":\"path\","
     "\"req\":true,\"t\":\"string\",\"max\":9}]},{\"m\":\"PUT\",\"p\":\"/a/{id}\",\"params\":[{"
     "\"n\":\"id\",\"in\":\"path\",\"req\":true,\"t\":\"string\",\"max\":9}]},{\"m\":\"GET\","
     "\"p\":\"/b/{id}/c\",\"params\":[{\"n\":\"id\",\"in\":\"path\",\"req\":true,\"t\":\"string\","
     "\"max\":9},{\"n\":\"q\",\"in\":\"query\",\"t\":\"string\",\"max\":9}]}]}"},
    {"the root path, a trailing slash, JSON with spaces first",
     " \n\t{\"openapi\":\"3.0.2\",\"paths\":{\"/\":{\"get\":{}},\"/list/\":{\"get\":{}}}}",
     "{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[]},{\"m\":\"GET\",\"p\":\"/list/\","
     "\"params\":[]}]}"},
};

/* Parses, compares the stored form, loads it back and stores it again. */
static void good_documents(void **state) {
  (void)state;
  for (size_t i = 0; i < N(good); i++) {
    gdx_openapi *o = NULL;
    char err[300];
    int rc = gdx_openapi_parse(good[i].text, strlen(good[i].text), &o, err, sizeof(err));
    if (rc != GDX_OK)
      fail_msg("good[%zu] (%s): %s", i, good[i].name, err);
    char *stored;
    size_t len;
    assert_int_equal(gdx_openapi_store(o, &stored, &len), GDX_OK);
    if (strcmp(stored, good[i].ops) != 0)
      fail_msg("good[%zu] (%s):\n got  %s\n want %s", i, good[i].name, stored, good[i].ops);
    assert_int_equal(len, strlen(stored));
    gdx_openapi *back = NULL;
    if (gdx_openapi_load(stored, len, &back, err, sizeof(err)) != GDX_OK)
      fail_msg("good[%zu] (%s): the stored form does not load: %s", i, good[i].name, err);
    char *again;
    assert_int_equal(gdx_openapi_store(back, &again, NULL), GDX_OK);
    assert_string_equal(again, stored);
    free(again);
    free(stored);
    gdx_openapi_free(back);
    gdx_openapi_free(o);
  }
}

/* The typed view of one list, as the proxy will read it. */
static void typed_operations(void **state) {
  (void)state;
  gdx_openapi *o;
  char err[300];
  assert_int_equal(gdx_openapi_parse(good[2].text, strlen(good[2].text), &o, err, sizeof(err)),
                   GDX_OK);
  assert_int_equal(o->nops, 2);
  const gdx_openapi_op *get = &o->ops[0], *del = &o->ops[1];
  assert_int_equal(get->method, GDX_OPENAPI_GET);
  assert_int_equal(del->method, GDX_OPENAPI_DELETE);
  assert_string_equal(get->path, "/persons/{id}");
  assert_int_equal(get->nparams, 3);
  const gdx_openapi_param *id = &get->params[0];
  assert_string_equal(id->name, "id");
  assert_int_equal(id->in, GDX_OPENAPI_IN_PATH);
  assert_true(id->required);
  assert_int_equal(id->type, GDX_OPENAPI_T_STRING);
  assert_int_equal(id->max_length, 18);
  assert_string_equal(id->pattern, "^[0-9A-Z]{18}$");
  assert_int_equal(id->nenum, 0);
  const gdx_openapi_param *lang = gdx_openapi_query_param(get, "lang", 4);
  assert_non_null(lang);
  assert_false(lang->required);
  assert_int_equal(lang->nenum, 2);
  assert_string_equal(lang->enums[1], "en");
  assert_int_equal(lang->max_length, -1);
  assert_null(lang->pattern);
  const gdx_openapi_param *fields = gdx_openapi_query_param(get, "fieldsXX", 6);
  assert_non_null(fields);
  assert_int_equal(fields->type, GDX_OPENAPI_T_ARRAY);
  assert_int_equal(fields->items, GDX_OPENAPI_T_STRING);
  /* a path parameter is no query parameter; header ones are not kept */
  assert_null(gdx_openapi_query_param(get, "id", 2));
  assert_null(gdx_openapi_query_param(get, "X-Trace", 7));
  assert_int_equal(gdx_openapi_query_param(del, "lang", 4)->type, GDX_OPENAPI_T_INTEGER);
  assert_string_equal(gdx_openapi_method_name(del->method), "DELETE");
  assert_string_equal(gdx_openapi_type_name(GDX_OPENAPI_T_BOOLEAN), "boolean");
  assert_string_equal(gdx_openapi_type_name(GDX_OPENAPI_T_ANY), "");
  gdx_openapi_free(o);
}

static const struct {
  const char *text;
  int rc;
  const char *err;
} bad[] = {
    /* empty and unreadable texts */
    {"", GDX_EINVAL, "the text is empty"},
    {" \n\t\r\n", GDX_EINVAL, "the text is empty"},
    {"# nothing but a comment\n\n", GDX_EINVAL, "the text is empty (only comments or blank lines)"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get: x: y\n", GDX_EINVAL,
     "line 4, column 11: mapping values are not allowed in this context"},
    {"openapi: 3.0.3\npaths:\n\t/a:\n", GDX_EINVAL,
     "line 3, column 1: found character that cannot start any token (while scanning for the "
     "next token)"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get: {}\n  /b: [\n", GDX_EINVAL,
     "line 6, column 1: did not find expected node content (while parsing a flow node)"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      summary: \"open\n", GDX_EINVAL,
     "line 6, column 1: found unexpected end of stream (while scanning a quoted scalar at line "
     "5)"},
    {"openapi: 3.0.3\ninfo:\n  title: \xff\n", GDX_EINVAL, "line 3: invalid leading UTF-8 octet"},
    /* JSON that YAML flow style cannot read either: JSON's complaint */
    {"{\"openapi\":\"3.0.3\",\n \"paths\":{\"/a\" \"get\"}}", GDX_EINVAL,
     "line 2, column 20: ':' expected near '\"get\"'"},
    {"{\"openapi\":\"3.0.3\",\"paths\":{\"/a\":{\"get\":{},\"get\":{}}}}", GDX_EINVAL,
     "line 1, column 48: duplicate object key near '\"get\"'"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get: {}\n    get: {}\n", GDX_EINVAL,
     "line 5, column 5: duplicate key \"get\""},
    {"openapi: 3.0.3\n---\nopenapi: 3.0.3\n", GDX_EINVAL,
     "line 2, column 1: a second document (gdx reads one)"},
    {"openapi: 3.0.0\npaths: {/a: {get: {}}, /b/{x}: {post: {}}}\n", GDX_EINVAL,
     "line 2, column 27: did not find expected ',' or '}' (while parsing a flow mapping)"},
    {"openapi: 3.0.3\npaths:\n  ? [a, b]\n  : x\n", GDX_EINVAL,
     "line 3, column 5: a mapping key must be a scalar, not a sequence"},
    {"openapi: 3.0.3\nbase: &b {x: 1}\npaths:\n  <<: *b\n", GDX_EINVAL,
     "line 4, column 3: merge keys (<<) are not read; write the keys out"},
    {"openapi: !!binary aGVsbG8=\n", GDX_EINVAL,
     "line 1, column 10: tag tag:yaml.org,2002:binary is not read (only !!str)"},
    {"openapi: 3.0.3\npaths: *nowhere\n", GDX_EINVAL,
     "line 2, column 8: alias *nowhere names no anchor before it"},
    {"openapi: 3.0.3\npaths: &p {/a: *p}\n", GDX_EINVAL,
     "line 2, column 16: alias *p inside its own anchor"},
    {"openapi: \"a\\0b\"\n", GDX_EINVAL, "line 1, column 10: a NUL character in a scalar"},
    /* the document */
    {"hello\n", GDX_EINVAL, "line 1: the document must be a mapping (openapi, info, paths, …)"},
    {"[1, 2]", GDX_EINVAL, "line 1: the document must be a mapping (openapi, info, paths, …)"},
    {"openapi: 3.1.0", GDX_EINVAL, "no operations: the document has no paths with methods"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    summary: no methods\n", GDX_EINVAL,
     "no operations: the document has no paths with methods"},
    {"swagger: \"2.0\"\npaths: {}\n", GDX_EINVAL,
     "line 1: swagger: Swagger 2.0 is not read; convert the document to OpenAPI 3.x"},
    {"info: {title: t}\npaths: {/a: {get: {}}}\n", GDX_EINVAL,
     "line 1: openapi: missing (an OpenAPI 3.x document starts with openapi: 3.0.3 or 3.1.0)"},
    {"{\"openapi\":\"2.0\",\"paths\":{\"/a\":{\"get\":{}}}}", GDX_EINVAL,
     "openapi: not an OpenAPI 3.x version"},
    {"openapi: 3.0.3\npaths: [/a]\n", GDX_EINVAL,
     "line 2: paths: must be a mapping of paths to path items"},
    {"openapi: 3.0.3\ncomponents:\n  parameters: []\npaths: {/a: {get: {}}}\n", GDX_EINVAL,
     "line 3: components.parameters: must be a mapping"},
    /* paths and operations */
    {"openapi: 3.0.3\npaths:\n  persons:\n    get: {}\n", GDX_EINVAL,
     "line 3: paths.persons: a path must start with /"},
    {"openapi: 3.0.3\npaths:\n  /a/{id:\n    get: {}\n", GDX_EINVAL,
     "line 3: paths./a/{id: a { without its }, or a / or { inside { }"},
    {"openapi: 3.0.3\npaths:\n  /a/{}:\n    get: {}\n", GDX_EINVAL,
     "line 3: paths./a/{}: an empty {} in the path template"},
    {"openapi: 3.0.3\npaths:\n  /a/{x}/{x}:\n    get: {}\n", GDX_EINVAL,
     "line 3: paths./a/{x}/{x}: a {variable} appears twice in the path template"},
    {"openapi: 3.0.3\npaths:\n  /a b:\n    get: {}\n", GDX_EINVAL,
     "line 3: paths./a b: a path template holds no spaces, control characters, ? or #"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    $ref: 'other.yaml#/paths/~1a'\n", GDX_EINVAL,
     "line 3: paths./a: \"$ref\": path items by reference are not read; write the operations "
     "here"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get: {}\n    GET: {}\n", GDX_EINVAL,
     "line 5: paths./a: the method GET appears twice"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get: []\n", GDX_EINVAL,
     "line 4: paths./a.get: an operation must be a mapping"},
    {"openapi: 3.0.3\npaths:\n  /p/{a}:\n    get: {parameters: [{name: a, in: path}]}\n"
     "  /p/{b}:\n    get: {parameters: [{name: b, in: path}]}\n",
     GDX_EINVAL,
     "line 5: paths./p/{b}: the same path as /p/{a} (only the names of the variables "
     "differ)"},
    /* path parameters against the template: test_exchange's text as it is */
    {EXCHANGE_TEXT(""), GDX_EINVAL,
     "line 10: paths./enterprises/{uscc}.get: the path parameter \"uscc\" of the template is not "
     "declared"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    parameters: [{name: id, in: path}]\n    get: {}\n",
     GDX_EINVAL,
     "line 5: paths./a.get: the path parameter \"id\" is declared but not in the "
     "template"},
    {"openapi: 3.0.3\npaths:\n  /a/{id}:\n    get:\n      parameters:\n"
     "        - {name: id, in: path, required: false}\n",
     GDX_EINVAL,
     "line 6: paths./a/{id}.get.parameters[0]: a path parameter is always required "
     "(\"required\": true)"},
    /* parameters */
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n        - name: x\n"
     "          in: query\n        - name: y\n          in: body\n",
     GDX_EINVAL,
     "line 9: paths./a.get.parameters[1]: \"in\" must be path, query, header or "
     "cookie"},
    {"{\"openapi\":\"3.0.3\",\"paths\":{\"/persons/{id}\":{\"get\":{\"parameters\":[{\"name\":"
     "\"id\",\"in\":\"path\"},{\"name\":\"x\",\"in\":\"form\"}]}}}}",
     GDX_EINVAL,
     "paths./persons/{id}.get.parameters[1]: \"in\" must be path, query, header or "
     "cookie"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n        - in: query\n",
     GDX_EINVAL, "line 6: paths./a.get.parameters[0]: \"name\" is missing"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n        - {name: 7, in: query}\n",
     GDX_EINVAL, "line 6: paths./a.get.parameters[0]: \"name\" must be a text of 1 to 128 bytes"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - {name: q, in: query, required: yes}\n",
     GDX_EINVAL, "line 6: paths./a.get.parameters[0]: \"required\" must be true or false"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - {name: q, in: query}\n        - {name: q, in: query}\n",
     GDX_EINVAL, "line 7: paths./a.get.parameters[1]: the query parameter \"q\" is declared twice"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters: {name: q}\n", GDX_EINVAL,
     "line 5: paths./a.get.parameters: must be a list of parameters"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - {name: q, in: query, schema: {type: string}, content: {}}\n",
     GDX_EINVAL,
     "line 6: paths./a.get.parameters[0]: has both \"schema\" and \"content\"; a "
     "parameter has one of them"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - {name: q, in: query, schema: {type: text}}\n",
     GDX_EINVAL, "line 6: paths./a.get.parameters[0].schema: \"type\": unknown type \"text\""},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - {name: q, in: query, schema: {type: string, maxLength: '9'}}\n",
     GDX_EINVAL,
     "line 6: paths./a.get.parameters[0].schema: \"maxLength\" must be a "
     "non-negative integer"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - name: q\n          in: query\n          schema:\n            enum:\n"
     "              - a\n              - {b: c}\n",
     GDX_EINVAL,
     "line 11: paths./a.get.parameters[0].schema: \"enum\"[1]: values must be "
     "strings, numbers or booleans"},
    /* $refs */
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - $ref: 'common.yaml#/components/parameters/Q'\n",
     GDX_EINVAL,
     "line 6: paths./a.get.parameters[0]: $ref \"common.yaml#/components/parameters/"
     "Q\": only #/components/parameters/<name> is read here (no references to other "
     "documents)"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - $ref: '#/components/schemas/Q'\n",
     GDX_EINVAL,
     "line 6: paths./a.get.parameters[0]: $ref \"#/components/schemas/Q\": only "
     "#/components/parameters/<name> is read here"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - $ref: '#/components/parameters/Q'\n",
     GDX_EINVAL,
     "line 6: paths./a.get.parameters[0]: $ref \"#/components/parameters/Q\": no "
     "such component"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - {name: q, in: query, schema: {$ref: '#/components/schemas/A'}}\n"
     "components:\n  schemas:\n    A: {$ref: '#/components/schemas/B'}\n"
     "    B: {$ref: '#/components/schemas/A'}\n",
     GDX_EINVAL,
     "line 10: paths./a.get.parameters[0].schema (#/components/schemas/B): more than "
     "8 $refs in a chain (a cycle?)"},
    {"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      parameters:\n"
     "        - $ref: '#/components/parameters/Q'\n"
     "components:\n  parameters:\n    Q:\n      name: q\n      in: body\n",
     GDX_EINVAL,
     "line 11: paths./a.get.parameters[0] (#/components/parameters/Q): \"in\" must be "
     "path, query, header or cookie"},
};

/* Every row is tried; the mismatches are listed together. */
static void bad_documents(void **state) {
  (void)state;
  int wrong = 0;
  for (size_t i = 0; i < N(bad); i++) {
    gdx_openapi *o = (gdx_openapi *)1;
    char err[400];
    int rc = gdx_openapi_parse(bad[i].text, strlen(bad[i].text), &o, err, sizeof(err));
    if (rc != bad[i].rc || strcmp(err, bad[i].err) != 0) {
      print_error("bad[%zu]: %s\n got  %s\n want %s\n", i, gdx_errname(rc), err, bad[i].err);
      wrong++;
    }
    assert_null(o);
  }
  assert_int_equal(wrong, 0);
}

/* Texts that pass a cap: refused before they cost anything. */
static void caps(void **state) {
  (void)state;
  gdx_buf b;
  gdx_openapi *o;
  char err[300];
  /* operations */
  gdx_buf_init(&b, 1 << 20);
  assert_int_equal(gdx_buf_appends(&b, "openapi: 3.0.3\npaths:\n"), GDX_OK);
  for (int i = 0; i < GDX_OPENAPI_MAX_OPS; i++)
    assert_int_equal(gdx_buf_appendf(&b, "  /p%d: {get: {}}\n", i), GDX_OK);
  assert_int_equal(gdx_openapi_parse(b.data, b.len, &o, err, sizeof(err)), GDX_OK);
  assert_int_equal(o->nops, GDX_OPENAPI_MAX_OPS);
  gdx_openapi_free(o);
  assert_int_equal(gdx_buf_appends(&b, "  /last: {get: {}}\n"), GDX_OK);
  assert_int_equal(gdx_openapi_parse(b.data, b.len, &o, err, sizeof(err)), GDX_ETOOBIG);
  assert_string_equal(err, "line 259: paths./last.get: more than 256 operations");
  gdx_buf_free(&b);
  /* size */
  gdx_buf_init(&b, 2 << 20);
  assert_int_equal(gdx_buf_appends(&b, "openapi: 3.0.3\ninfo:\n  description: "), GDX_OK);
  while (b.len <= GDX_OPENAPI_MAX_TEXT)
    assert_int_equal(gdx_buf_appends(&b, "0123456789abcdef"), GDX_OK);
  assert_int_equal(gdx_openapi_parse(b.data, b.len, &o, err, sizeof(err)), GDX_ETOOBIG);
  assert_string_equal(err, "the text is larger than 1048576 bytes");
  gdx_buf_free(&b);
  /* nesting, in both formats: 64 levels of containers (the root one
   * included) read, 65 do not */
  gdx_buf_init(&b, 1 << 20);
  assert_int_equal(gdx_buf_appends(&b, "openapi: 3.0.3\nx: "), GDX_OK);
  for (int i = 0; i < GDX_OPENAPI_MAX_DEPTH - 1; i++)
    assert_int_equal(gdx_buf_appends(&b, "["), GDX_OK);
  assert_int_equal(gdx_buf_appends(&b, "1"), GDX_OK);
  for (int i = 0; i < GDX_OPENAPI_MAX_DEPTH - 1; i++)
    assert_int_equal(gdx_buf_appends(&b, "]"), GDX_OK);
  assert_int_equal(gdx_openapi_parse(b.data, b.len, &o, err, sizeof(err)), GDX_EINVAL);
  assert_string_equal(err, "no operations: the document has no paths with methods");
  gdx_buf_reset(&b);
  assert_int_equal(gdx_buf_appends(&b, "{\"openapi\":\"3.0.3\",\"x\":"), GDX_OK);
  for (int i = 0; i < GDX_OPENAPI_MAX_DEPTH - 1; i++)
    assert_int_equal(gdx_buf_appends(&b, "["), GDX_OK);
  assert_int_equal(gdx_buf_appends(&b, "1"), GDX_OK);
  for (int i = 0; i < GDX_OPENAPI_MAX_DEPTH - 1; i++)
    assert_int_equal(gdx_buf_appends(&b, "]"), GDX_OK);
  assert_int_equal(gdx_buf_appends(&b, "}"), GDX_OK);
  assert_int_equal(gdx_openapi_parse(b.data, b.len, &o, err, sizeof(err)), GDX_EINVAL);
  assert_string_equal(err, "no operations: the document has no paths with methods");
  gdx_buf_reset(&b);
  assert_int_equal(gdx_buf_appends(&b, "openapi: 3.0.3\nx: "), GDX_OK);
  for (int i = 0; i < GDX_OPENAPI_MAX_DEPTH; i++)
    assert_int_equal(gdx_buf_appends(&b, "["), GDX_OK);
  assert_int_equal(gdx_openapi_parse(b.data, b.len, &o, err, sizeof(err)), GDX_EINVAL);
  assert_string_equal(err, "line 2, column 67: nesting deeper than 64 levels");
  gdx_buf_reset(&b);
  assert_int_equal(gdx_buf_appends(&b, "{\"openapi\":\"3.0.3\",\"x\":"), GDX_OK);
  for (int i = 0; i < GDX_OPENAPI_MAX_DEPTH; i++)
    assert_int_equal(gdx_buf_appends(&b, "["), GDX_OK);
  for (int i = 0; i < GDX_OPENAPI_MAX_DEPTH; i++)
    assert_int_equal(gdx_buf_appends(&b, "]"), GDX_OK);
  assert_int_equal(gdx_buf_appends(&b, "}"), GDX_OK);
  assert_int_equal(gdx_openapi_parse(b.data, b.len, &o, err, sizeof(err)), GDX_EINVAL);
  assert_string_equal(err, "nesting deeper than 64 levels");
  gdx_buf_free(&b);
  /* billion laughs: too many aliases, or few aliases that expand too far */
  gdx_buf_init(&b, 1 << 20);
  assert_int_equal(gdx_buf_appends(&b, "openapi: 3.0.3\na: &a [x, x, x, x, x, x, x, x, x, x]\n"),
                   GDX_OK);
  for (char c = 'b'; c <= 'e'; c++)
    assert_int_equal(gdx_buf_appendf(&b, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n",
                                     c, c, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1,
                                     c - 1),
                     GDX_OK);
  assert_int_equal(gdx_openapi_parse(b.data, b.len, &o, err, sizeof(err)), GDX_EINVAL);
  assert_string_equal(err, "line 6, column 28: more than 32 aliases");
  gdx_buf_reset(&b);
  assert_int_equal(gdx_buf_appends(&b, "openapi: 3.0.3\nl0: &l0 ["), GDX_OK);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(gdx_buf_appends(&b, i ? ",x" : "x"), GDX_OK);
  assert_int_equal(gdx_buf_appends(&b, "]\n"), GDX_OK);
  for (int i = 1; i <= 16; i++)
    assert_int_equal(gdx_buf_appendf(&b, "l%d: &l%d [*l%d, *l%d]\n", i, i, i - 1, i - 1), GDX_OK);
  assert_int_equal(gdx_openapi_parse(b.data, b.len, &o, err, sizeof(err)), GDX_ETOOBIG);
  assert_string_equal(err, "line 12, column 12: the document has more than 1048576 nodes "
                           "(aliases counted where they appear)");
  /* $refs multiply a component: 3 operations × 64 parameters × a 16 KiB
   * enum from a 20 KiB text meet the cap on the list */
  gdx_buf_reset(&b);
  assert_int_equal(gdx_buf_appends(&b, "openapi: 3.0.3\npaths:\n"), GDX_OK);
  for (int op = 0; op < 3; op++) {
    assert_int_equal(gdx_buf_appendf(&b, "  /p%d:\n    get:\n      parameters:\n", op), GDX_OK);
    for (int i = 0; i < GDX_OPENAPI_MAX_PARAMS; i++)
      assert_int_equal(gdx_buf_appendf(&b, "        - $ref: '#/components/parameters/P%d'\n", i),
                       GDX_OK);
  }
  assert_int_equal(gdx_buf_appends(&b, "components:\n  parameters:\n"), GDX_OK);
  for (int i = 0; i < GDX_OPENAPI_MAX_PARAMS; i++)
    assert_int_equal(gdx_buf_appendf(&b,
                                     "    P%d: {name: q%d, in: query, schema: {$ref: "
                                     "'#/components/schemas/S'}}\n",
                                     i, i),
                     GDX_OK);
  assert_int_equal(gdx_buf_appends(&b, "  schemas:\n    S:\n      enum:\n"), GDX_OK);
  for (int i = 0; i < GDX_OPENAPI_MAX_ENUM; i++)
    assert_int_equal(gdx_buf_appendf(&b, "        - v%0*d\n", GDX_OPENAPI_MAX_ENUM_TEXT - 8, i),
                     GDX_OK);
  assert_true(b.len < 32 * 1024);
  assert_int_equal(gdx_openapi_parse(b.data, b.len, &o, err, sizeof(err)), GDX_ETOOBIG);
  assert_string_equal(err, "the operations take more than 2 MiB once read");
  gdx_buf_free(&b);
}

static const struct {
  const char *text, *err; /* err NULL: loads */
} stored[] = {
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/a/{x}\",\"params\":[{\"n\":\"x\",\"in\":\"path\","
     "\"req\":true,\"t\":\"string\",\"max\":3,\"pat\":\"^a\",\"e\":[\"a\"]},{\"n\":\"q\","
     "\"in\":\"query\",\"t\":\"array\",\"it\":\"integer\"}]}]}",
     NULL},
    {"", "line 1, column 0: '[' or '{' expected near end of file"},
    {"{\"v\":1,\"ops\":[]}", "\"ops\" is a list of 1 to 256 operations"},
    {"{\"v\":2,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[]}]}",
     "\"v\": not version 1 of the stored form"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[]}],\"x\":1}",
     "unknown member \"x\""},
    {"{\"v\":1,\"ops\":[{\"m\":\"get\",\"p\":\"/\",\"params\":[]}]}",
     "ops[0]: \"m\" is not a method"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\"}]}",
     "ops[0]: \"params\" is a list of at most 64"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"x\",\"params\":[]}]}",
     "ops[0]: a path must start with /"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[]},{\"m\":\"GET\",\"p\":\"/\","
     "\"params\":[]}]}",
     "ops[1]: GET / appears twice"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/{a}\",\"params\":[{\"n\":\"a\",\"in\":\"path\","
     "\"req\":true}]},{\"m\":\"PUT\",\"p\":\"/{b}\",\"params\":[{\"n\":\"b\",\"in\":\"path\","
     "\"req\":true}]}]}",
     "ops[1]: the same path as /{a}"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/{a}\",\"params\":[]}]}",
     "ops[0]: the path parameter \"a\" of the template is not declared"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[{\"n\":\"a\",\"in\":\"path\","
     "\"req\":true}]}]}",
     "ops[0]: the path parameter \"a\" is declared but not in the template"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/"
     "{a}\",\"params\":[{\"n\":\"a\",\"in\":\"path\"}]}]}",
     "ops[0].params[0]: a path parameter has \"req\": true"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[{\"n\":\"a\",\"in\":\"query\","
     "\"req\":false}]}]}",
     "ops[0].params[0]: \"req\" is true or absent"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[{\"n\":\"a\",\"in\":\"query\","
     "\"x\":1}]}]}",
     "ops[0].params[0]: unknown member \"x\""},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[{\"n\":\"a\",\"in\":\"header\"}]}]}",
     "ops[0].params[0]: \"in\" must be path or query"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[{\"n\":\"a\",\"in\":\"query\","
     "\"t\":\"integer\",\"max\":3}]}]}",
     "ops[0].params[0]: \"max\" is a length, only for strings"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[{\"n\":\"a\",\"in\":\"query\","
     "\"t\":\"string\",\"it\":\"string\"}]}]}",
     "ops[0].params[0]: \"it\" is an item type, only for arrays"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[{\"n\":\"a\",\"in\":\"query\","
     "\"t\":\"\"}]}]}",
     "ops[0].params[0]: \"t\" is not a type"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[{\"n\":\"a\",\"in\":\"query\","
     "\"e\":[1]}]}]}",
     "ops[0].params[0]: \"e\"[0] is not a value"},
    {"{\"v\":1,\"ops\":[{\"m\":\"GET\",\"p\":\"/\",\"params\":[{\"n\":\"a\",\"in\":\"query\"},"
     "{\"n\":\"a\",\"in\":\"query\"}]}]}",
     "ops[0]: the query parameter \"a\" is declared twice"},
    {"{\"v\":1,\"v\":1,\"ops\":[]}", "line 1, column 10: duplicate object key near '\"v\"'"},
};

static void stored_form(void **state) {
  (void)state;
  int wrong = 0;
  for (size_t i = 0; i < N(stored); i++) {
    gdx_openapi *o = (gdx_openapi *)1;
    char err[300];
    int rc = gdx_openapi_load(stored[i].text, strlen(stored[i].text), &o, err, sizeof(err));
    if (stored[i].err == NULL) {
      if (rc != GDX_OK)
        fail_msg("stored[%zu]: %s", i, err);
      char *again;
      assert_int_equal(gdx_openapi_store(o, &again, NULL), GDX_OK);
      assert_string_equal(again, stored[i].text);
      free(again);
      gdx_openapi_free(o);
      continue;
    }
    if (rc != GDX_EINVAL || strcmp(err, stored[i].err) != 0) {
      print_error("stored[%zu]: %s\n got  %s\n want %s\n", i, gdx_errname(rc), err, stored[i].err);
      wrong++;
    }
    assert_null(o);
  }
  assert_int_equal(wrong, 0);
}

static const char match_text[] =
    "openapi: 3.0.3\npaths:\n"
    "  /enterprises: {get: {}}\n"
    "  /enterprises/{uscc}:\n"
    "    parameters: [{name: uscc, in: path}]\n"
    "    get: {parameters: [{name: fields, in: query}]}\n"
    "    head: {}\n"
    "  /persons/{id}:\n"
    "    parameters: [{name: id, in: path}]\n"
    "    get: {}\n    delete: {}\n"
    "  /persons/me: {get: {parameters: [{name: me, in: query}]}}\n"
    "  /files/{name}.json: {get: {parameters: [{name: name, in: path}]}}\n"
    "  /v/{a}-{b}/x: {put: {parameters: [{name: a, in: path}, {name: b, in: path}]}}\n"
    "  /: {post: {}}\n";

static const struct {
  const char *method, *path;
  int status;
  const char *op; /* "METHOD template" of the operation matched */
} calls[] = {
    {"GET", "/enterprises", 0, "GET /enterprises"},
    {"HEAD", "/enterprises", 0, "GET /enterprises"},
    {"DELETE", "/enterprises", 405, NULL},
    {"get", "/enterprises", 405, NULL},
    {"GET", "/admin/users", 404, NULL},
    {"GET", "/enterprises/91350203MA2XK8UX3L", 0, "GET /enterprises/{uscc}"},
    {"HEAD", "/enterprises/91350203MA2XK8UX3L", 0, "HEAD /enterprises/{uscc}"},
    {"GET", "/enterprises/", 404, NULL},
    {"GET", "/enterprises/a/b", 404, NULL},
    {"GET", "/enterprises//", 404, NULL},
    {"GET", "/enterprise", 404, NULL},
    {"GET", "/persons/me", 0, "GET /persons/me"},
    {"DELETE", "/persons/me", 0, "DELETE /persons/{id}"},
    {"GET", "/persons/42", 0, "GET /persons/{id}"},
    {"POST", "/persons/42", 405, NULL},
    {"GET", "/files/report.json", 0, "GET /files/{name}.json"},
    {"GET", "/files/a.json.json", 0, "GET /files/{name}.json"},
    {"GET", "/files/.json", 404, NULL},
    {"GET", "/files/report.jso", 404, NULL},
    {"PUT", "/v/1-2/x", 0, "PUT /v/{a}-{b}/x"},
    {"PUT", "/v/1-2-3/x", 0, "PUT /v/{a}-{b}/x"},
    {"PUT", "/v/-2/x", 404, NULL},
    {"PUT", "/v/12/x", 404, NULL},
    {"POST", "/", 0, "POST /"},
    {"GET", "/", 405, NULL},
    {"GET", "", 404, NULL},
    {"GET", "enterprises", 404, NULL},
};

static void matching(void **state) {
  (void)state;
  gdx_openapi *o;
  char err[300];
  if (gdx_openapi_parse(match_text, strlen(match_text), &o, err, sizeof(err)) != GDX_OK)
    fail_msg("%s", err);
  for (size_t i = 0; i < N(calls); i++) {
    const gdx_openapi_op *op = (const gdx_openapi_op *)1;
    int st = gdx_openapi_match(o, calls[i].method, calls[i].path, &op);
    char got[600] = "";
    if (op)
      snprintf(got, sizeof(got), "%s %s", gdx_openapi_method_name(op->method), op->path);
    if (st != calls[i].status || (calls[i].op ? strcmp(got, calls[i].op) != 0 : op != NULL))
      fail_msg("calls[%zu] %s %s: %d %s, want %d %s", i, calls[i].method, calls[i].path, st, got,
               calls[i].status, calls[i].op ? calls[i].op : "(none)");
  }
  /* the matched operation's query parameters */
  const gdx_openapi_op *op;
  assert_int_equal(gdx_openapi_match(o, "GET", "/enterprises/x", &op), 0);
  assert_non_null(gdx_openapi_query_param(op, "fields", 6));
  assert_null(gdx_openapi_query_param(op, "uscc", 4));
  assert_int_equal(gdx_openapi_match(o, "GET", "/persons/me", &op), 0);
  assert_non_null(gdx_openapi_query_param(op, "me=1", 2));
  assert_int_equal(gdx_openapi_match(o, "GET", "/persons/you", NULL), 0);
  gdx_openapi_free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(good_documents), cmocka_unit_test(typed_operations),
      cmocka_unit_test(bad_documents),  cmocka_unit_test(caps),
      cmocka_unit_test(stored_form),    cmocka_unit_test(matching),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
