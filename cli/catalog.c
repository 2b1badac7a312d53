/* gdx commands of the catalog and of access to its resources: catalog,
 * requests, authorizations and demands. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "client.h"
#include "output.h"

/* The most calls (or records compared) a request may ask for: call_quota in
 * schemas/json/request_create.json and request_approve.json. */
#define QUOTA_MAX 1000000000000LL

static const char *const catalog_cols[] = {"resource_code:CODE", "name:NAME",
                                           "provider_name:PROVIDER", "resource_type:TYPE",
                                           "sharing_type:SHARING", "version:VER",
                                           "status:STATUS", "publish_date:PUBLISHED"};
static const char *const request_cols[] = {"id:ID", "resource_code:RESOURCE", "consumer_code:CONSUMER",
                                           "applicant:APPLICANT", "method:METHOD",
                                           "data_items:ITEMS", "valid_until:UNTIL",
                                           "status:STATUS", "decided_by:DECIDED BY"};
static const char *const auth_cols[] = {"id:ID", "resource_code:RESOURCE", "consumer_code:CONSUMER",
                                        "data_items:ITEMS", "method:METHOD",
                                        "valid_until:UNTIL", "call_quota:QUOTA",
                                        "status:STATUS"};
static const char *const demand_cols[] = {"id:ID", "consumer_code:CONSUMER", "provider_code:PROVIDER",
                                          "description:DESCRIPTION", "status:STATUS",
                                          "resource_code:RESOURCE"};

static json_t *load_json_file(const char *path) {
  json_error_t e;
  json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
  if (j == NULL)
    fprintf(stderr, "gdx: %s:%d: %s\n", path, e.line, e.text);
  return j;
}

static const char help_catalog[] =
    "Usage: gdx catalog search [--q TEXT] [--provider CODE] [--category DIGITS] [--type T]\n"
    "                          [--sharing S] [--format F] [--sort newest|name|code|publish_date]\n"
    "                          [--order asc|desc] [--limit N] [--offset N] [--mine]\n"
    "       gdx catalog show CODE | history CODE\n"
    "       gdx catalog create --file ENTRY.json | update CODE --file ENTRY.json\n"
    "       gdx catalog submit CODE\n"
    "       gdx catalog review CODE (--publish | --return) [--opinion TEXT]   (reviewers)\n"
    "       gdx catalog withdraw CODE --opinion TEXT\n"
    "Resource codes look like 101001/000001. An entry file holds the national catalog\n"
    "fields (schemas/json/catalog_entry.json).\n";

static int cmd_catalog(int argc, char **argv) {
  if (argc < 1)
    return cli_usage_error("catalog needs a subcommand", help_catalog);
  const char *sub = argv[0];
  json_t *out, *body;
  char path[1024];
  int rc;
  if (strcmp(sub, "search") == 0) {
    snprintf(path, sizeof(path), "/api/v1/catalog");
    static const char *const keys[] = {"q", "provider", "category", "type", "sharing", "format",
                                       "sort", "order", "limit", "offset"};
    for (size_t i = 0; i < CLI_NCOLS(keys); i++) {
      char k[32];
      snprintf(k, sizeof(k), "--%s", keys[i]);
      const char *v = cli_opt(argc, argv, k);
      /* the broker has the last word on the range; a typo is caught here */
      int is_limit = strcmp(keys[i], "limit") == 0;
      if (v && (is_limit || strcmp(keys[i], "offset") == 0) &&
          (rc = cli_num_arg(k, v, is_limit ? 1 : 0, LLONG_MAX, help_catalog, NULL)) != CLI_EX_OK)
        return rc;
      if ((rc = cli_query_add(path, sizeof(path), keys[i], v)) != CLI_EX_OK)
        return rc;
    }
    if (cli_flag(argc, argv, "--mine") &&
        (rc = cli_query_add(path, sizeof(path), "mine", "1")) != CLI_EX_OK)
      return rc;
    rc = cli_call("GET", path, NULL, &out);
    if (rc == CLI_EX_OK && !cli_opts.json)
      printf("%lld%s found\n", (long long)json_integer_value(json_object_get(out, "total")),
             json_is_true(json_object_get(out, "total_is_exact")) ? "" : "+");
    return rc ? rc : cli_emit(out, catalog_cols, CLI_NCOLS(catalog_cols), 1);
  }
  if (argc >= 2 && strcmp(sub, "show") == 0) {
    snprintf(path, sizeof(path), "/api/v1/catalog/%s", argv[1]);
    rc = cli_call("GET", path, NULL, &out);
    if (rc == CLI_EX_OK && !cli_opts.json) {
      json_t *pub = json_object_get(out, "published");
      if (json_is_null(pub) || pub == NULL)
        pub = json_object_get(out, "working_copy");
      printf("%-22s %s\n%-22s %s (%s)\n%-22s %s, version %lld\n", "resource code",
             json_string_value(json_object_get(out, "resource_code")), "provider",
             json_string_value(json_object_get(json_object_get(out, "provider"), "name")),
             json_string_value(json_object_get(json_object_get(out, "provider"), "code")),
             "status", json_string_value(json_object_get(out, "status")),
             (long long)json_integer_value(json_object_get(out, "version")));
      static const char *const cols[] = {"name:name", "summary:summary", "category:category",
                                         "resource_type:type", "format:format",
                                         "sharing_type:sharing", "sharing_condition:condition",
                                         "sharing_method:method", "update_cycle:update cycle"};
      cli_fields(pub, cols, CLI_NCOLS(cols));
      json_t *it;
      size_t i;
      printf("data items:\n");
      json_array_foreach(json_object_get(pub, "data_items"), i, it)
          printf("  %-20s %-10s %5lld  %s\n", json_string_value(json_object_get(it, "name")),
                 json_string_value(json_object_get(it, "type")),
                 (long long)json_integer_value(json_object_get(it, "length")),
                 json_string_value(json_object_get(it, "sharing_type"))
                     ? json_string_value(json_object_get(it, "sharing_type"))
                     : "");
      json_decref(out);
      return CLI_EX_OK;
    }
    return rc ? rc : cli_emit(out, NULL, 0, 0);
  }
  if (argc >= 2 && strcmp(sub, "history") == 0) {
    snprintf(path, sizeof(path), "/api/v1/catalog/%s/history", argv[1]);
    rc = cli_call("GET", path, NULL, &out);
    if (rc)
      return rc;
    if (cli_opts.json)
      return cli_emit(out, NULL, 0, 0);
    json_t *events = json_object_get(out, "events"), *e;
    size_t i;
    json_array_foreach(events, i, e)
        printf("%s  %-10s v%-3lld %-12s %s\n", json_string_value(json_object_get(e, "ts")),
               json_string_value(json_object_get(e, "event")),
               (long long)json_integer_value(json_object_get(e, "version")),
               json_string_value(json_object_get(e, "actor")),
               json_string_value(json_object_get(e, "opinion")));
    printf("%zu published version(s)\n", json_array_size(json_object_get(out, "versions")));
    json_decref(out);
    return CLI_EX_OK;
  }
  if (strcmp(sub, "create") == 0 || (argc >= 2 && strcmp(sub, "update") == 0)) {
    const char *file = cli_opt(argc, argv, "--file");
    if (file == NULL)
      return cli_usage_error("give the entry with --file ENTRY.json", help_catalog);
    if ((body = load_json_file(file)) == NULL)
      return CLI_EX_USAGE;
    if (strcmp(sub, "create") == 0) {
      rc = cli_call("POST", "/api/v1/catalog", body, &out);
    } else {
      snprintf(path, sizeof(path), "/api/v1/catalog/%s", argv[1]);
      rc = cli_call("PUT", path, body, &out);
    }
    static const char *const cols[] = {"resource_code:resource code", "status:status",
                                       "version:version"};
    return rc ? rc : cli_emit(out, cols, CLI_NCOLS(cols), 0);
  }
  if (argc >= 2 && (strcmp(sub, "submit") == 0 || strcmp(sub, "review") == 0 ||
                    strcmp(sub, "withdraw") == 0)) {
    snprintf(path, sizeof(path), "/api/v1/catalog/%s/%s", argv[1], sub);
    body = NULL;
    const char *opinion = cli_opt(argc, argv, "--opinion");
    if (strcmp(sub, "review") == 0) {
      int pub = cli_flag(argc, argv, "--publish"), ret = cli_flag(argc, argv, "--return");
      if (pub == ret)
        return cli_usage_error("review takes --publish or --return", help_catalog);
      body = json_pack("{s:s}", "decision", pub ? "publish" : "return");
      if (opinion)
        json_object_set_new(body, "opinion", json_string(opinion));
    } else if (strcmp(sub, "withdraw") == 0) {
      if (opinion == NULL)
        return cli_usage_error("withdraw needs --opinion", help_catalog);
      body = json_pack("{s:s}", "opinion", opinion);
    }
    rc = cli_call("POST", path, body, &out);
    static const char *const cols[] = {"resource_code:resource code", "status:status",
                                       "version:version", "opinion:opinion"};
    return rc ? rc : cli_emit(out, cols, CLI_NCOLS(cols), 0);
  }
  return cli_usage_error("unknown catalog subcommand", help_catalog);
}

static const char help_requests[] =
    "Usage: gdx requests apply --resource CODE --purpose TEXT --items a,b --method M\n"
    "                          --until YYYY-MM-DD [--quota N]\n"
    "       gdx requests list [--status S] [--side consumer|provider]\n"
    "       gdx requests show ID\n"
    "       gdx requests approve ID [--items a] [--until DATE] [--quota N] [--opinion TEXT]\n"
    "       gdx requests reject ID --opinion TEXT\n"
    "       gdx requests cancel ID\n"
    "Methods: fetch, subscribe (tables and files), compare (tables, with --quota: records\n"
    "compared), call (APIs, with --quota: calls).\n"
    "Approval may be narrower than asked: fewer items, an earlier end, a lower quota.\n";

/* --quota, when given, into *q. */
static int quota_arg(const char *text, long long *q) {
  return text ? cli_num_arg("--quota", text, 1, QUOTA_MAX, help_requests, q) : CLI_EX_OK;
}

static int cmd_requests(int argc, char **argv) {
  if (argc < 1)
    return cli_usage_error("requests needs a subcommand", help_requests);
  const char *sub = argv[0];
  json_t *out, *body = NULL;
  char path[512];
  int rc;
  if (strcmp(sub, "apply") == 0) {
    const char *res = cli_opt(argc, argv, "--resource"),
               *purpose = cli_opt(argc, argv, "--purpose"),
               *items = cli_opt(argc, argv, "--items"), *method = cli_opt(argc, argv, "--method"),
               *until = cli_opt(argc, argv, "--until"), *quota = cli_opt(argc, argv, "--quota");
    if (!res || !purpose || !items || !method || !until)
      return cli_usage_error("apply needs --resource, --purpose, --items, --method, --until",
                             help_requests);
    long long q = 0;
    if ((rc = quota_arg(quota, &q)) != CLI_EX_OK)
      return rc;
    body = json_pack("{s:s, s:s, s:o, s:s, s:s}", "resource_code", res, "purpose", purpose,
                     "data_items", cli_csv_array(items), "method", method, "valid_until", until);
    if (quota)
      json_object_set_new(body, "call_quota", json_integer(q));
    rc = cli_call("POST", "/api/v1/requests", body, &out);
    return rc ? rc : cli_emit(out, request_cols, CLI_NCOLS(request_cols), 0);
  }
  if (strcmp(sub, "list") == 0) {
    snprintf(path, sizeof(path), "/api/v1/requests");
    if ((rc = cli_query_add(path, sizeof(path), "status", cli_opt(argc, argv, "--status"))) ||
        (rc = cli_query_add(path, sizeof(path), "side", cli_opt(argc, argv, "--side"))))
      return rc;
    rc = cli_call("GET", path, NULL, &out);
    return rc ? rc : cli_emit(out, request_cols, CLI_NCOLS(request_cols), 1);
  }
  if (argc < 2)
    return cli_usage_error("give a request id", help_requests);
  if (strcmp(sub, "show") != 0 && strcmp(sub, "approve") != 0 && strcmp(sub, "reject") != 0 &&
      strcmp(sub, "cancel") != 0)
    return cli_usage_error("unknown requests subcommand", help_requests);
  long long id;
  if ((rc = cli_id_arg("ID", argv[1], help_requests, &id)) != CLI_EX_OK)
    return rc;
  const char *opinion = cli_opt(argc, argv, "--opinion");
  if (strcmp(sub, "show") == 0) {
    snprintf(path, sizeof(path), "/api/v1/requests/%lld", id);
    rc = cli_call("GET", path, NULL, &out);
    static const char *const cols[] = {
        "id:id", "resource_code:resource", "resource_name:name", "provider_code:provider",
        "consumer_code:consumer", "applicant:applicant", "purpose:purpose", "data_items:items",
        "method:method", "valid_until:valid until", "call_quota:call quota", "status:status",
        "decided_by:decided by", "opinion:opinion", "authorization_id:authorization"};
    return rc ? rc : cli_emit(out, cols, CLI_NCOLS(cols), 0);
  }
  if (strcmp(sub, "approve") == 0) {
    const char *quota = cli_opt(argc, argv, "--quota");
    long long q = 0;
    if ((rc = quota_arg(quota, &q)) != CLI_EX_OK)
      return rc;
    body = json_object();
    if (cli_opt(argc, argv, "--items"))
      json_object_set_new(body, "data_items", cli_csv_array(cli_opt(argc, argv, "--items")));
    if (cli_opt(argc, argv, "--until"))
      json_object_set_new(body, "valid_until", json_string(cli_opt(argc, argv, "--until")));
    if (quota)
      json_object_set_new(body, "call_quota", json_integer(q));
    if (opinion)
      json_object_set_new(body, "opinion", json_string(opinion));
  } else if (strcmp(sub, "reject") == 0) {
    if (opinion == NULL)
      return cli_usage_error("reject needs --opinion", help_requests);
    body = json_pack("{s:s}", "opinion", opinion);
  }
  snprintf(path, sizeof(path), "/api/v1/requests/%lld/%s", id, sub);
  rc = cli_call("POST", path, body, &out);
  return rc ? rc : cli_emit(out, request_cols, CLI_NCOLS(request_cols), 0);
}

static const char help_auth[] =
    "Usage: gdx authorizations list\n"
    "       gdx authorizations revoke ID --opinion TEXT\n";

static int cmd_authorizations(int argc, char **argv) {
  json_t *out;
  int rc;
  if (argc >= 1 && strcmp(argv[0], "list") == 0) {
    rc = cli_call("GET", "/api/v1/authorizations", NULL, &out);
    return rc ? rc : cli_emit(out, auth_cols, CLI_NCOLS(auth_cols), 1);
  }
  if (argc >= 2 && strcmp(argv[0], "revoke") == 0) {
    const char *opinion = cli_opt(argc, argv, "--opinion");
    if (opinion == NULL)
      return cli_usage_error("revoke needs --opinion", help_auth);
    long long id;
    if ((rc = cli_id_arg("ID", argv[1], help_auth, &id)) != CLI_EX_OK)
      return rc;
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/authorizations/%lld/revoke", id);
    rc = cli_call("POST", path, json_pack("{s:s}", "opinion", opinion), &out);
    static const char *const cols[] = {"id:authorization", "status:status"};
    return rc ? rc : cli_emit(out, cols, CLI_NCOLS(cols), 0);
  }
  return cli_usage_error("authorizations takes list or revoke", help_auth);
}

static const char help_demands[] =
    "Usage: gdx demands create --provider CODE --description TEXT --purpose TEXT\n"
    "       gdx demands list\n"
    "       gdx demands decide ID (--approve | --reject) [--opinion TEXT]   (reviewers)\n"
    "       gdx demands fulfil ID --resource CODE --items a,b --method M --until DATE\n"
    "A demand asks for a resource that is not in the catalog; management decides, then\n"
    "the provider publishes it and fulfils the demand, which files the request.\n";

static int cmd_demands(int argc, char **argv) {
  json_t *out, *body;
  char path[256];
  int rc;
  if (argc >= 1 && strcmp(argv[0], "list") == 0) {
    rc = cli_call("GET", "/api/v1/demands", NULL, &out);
    return rc ? rc : cli_emit(out, demand_cols, CLI_NCOLS(demand_cols), 1);
  }
  if (argc >= 1 && strcmp(argv[0], "create") == 0) {
    const char *p = cli_opt(argc, argv, "--provider"),
               *d = cli_opt(argc, argv, "--description"), *u = cli_opt(argc, argv, "--purpose");
    if (!p || !d || !u)
      return cli_usage_error("create needs --provider, --description, --purpose", help_demands);
    rc = cli_call("POST", "/api/v1/demands",
                  json_pack("{s:s, s:s, s:s}", "provider_unit_code", p, "description", d,
                            "purpose", u),
                  &out);
    return rc ? rc : cli_emit(out, demand_cols, CLI_NCOLS(demand_cols), 0);
  }
  if (argc >= 2 && strcmp(argv[0], "decide") == 0) {
    int a = cli_flag(argc, argv, "--approve"), r = cli_flag(argc, argv, "--reject");
    if (a == r)
      return cli_usage_error("decide takes --approve or --reject", help_demands);
    long long id;
    if ((rc = cli_id_arg("ID", argv[1], help_demands, &id)) != CLI_EX_OK)
      return rc;
    body = json_pack("{s:s}", "decision", a ? "approve" : "reject");
    if (cli_opt(argc, argv, "--opinion"))
      json_object_set_new(body, "opinion", json_string(cli_opt(argc, argv, "--opinion")));
    snprintf(path, sizeof(path), "/api/v1/demands/%lld/decide", id);
    rc = cli_call("POST", path, body, &out);
    return rc ? rc : cli_emit(out, demand_cols, CLI_NCOLS(demand_cols), 0);
  }
  if (argc >= 2 && strcmp(argv[0], "fulfil") == 0) {
    const char *res = cli_opt(argc, argv, "--resource"), *items = cli_opt(argc, argv, "--items"),
               *method = cli_opt(argc, argv, "--method"), *until = cli_opt(argc, argv, "--until");
    if (!res || !items || !method || !until)
      return cli_usage_error("fulfil needs --resource, --items, --method, --until", help_demands);
    long long id;
    if ((rc = cli_id_arg("ID", argv[1], help_demands, &id)) != CLI_EX_OK)
      return rc;
    snprintf(path, sizeof(path), "/api/v1/demands/%lld/fulfil", id);
    rc = cli_call("POST", path,
                  json_pack("{s:s, s:o, s:s, s:s}", "resource_code", res, "data_items",
                            cli_csv_array(items), "method", method, "valid_until", until),
                  &out);
    static const char *const cols[] = {"id:demand", "status:status", "request_id:request filed"};
    return rc ? rc : cli_emit(out, cols, CLI_NCOLS(cols), 0);
  }
  return cli_usage_error("unknown demands subcommand", help_demands);
}

const cli_command cli_catalog_commands[] = {
    {"catalog", cmd_catalog, help_catalog},
    {"requests", cmd_requests, help_requests},
    {"authorizations", cmd_authorizations, help_auth},
    {"demands", cmd_demands, help_demands},
    {NULL, NULL, NULL}};
