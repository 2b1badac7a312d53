/* gdx commands of exchange: front-end nodes, application credentials,
 * calls to API resources, and the table and folder subscriptions with
 * their reconciliation runs and alarms. Fetching is in fetch.c. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "buf.h"
#include "cli.h"
#include "client.h"
#include "error.h"
#include "output.h"

static const char *const node_cols[] = {"id:ID", "unit_code:UNIT", "node_id:NODE",
                                        "state:STATE", "address:ADDRESS", "version:VERSION",
                                        "last_heartbeat:LAST HEARTBEAT",
                                        "cert_not_after:CERT UNTIL"};
static const char *const node_detail_cols[] = {
    "id:id", "unit_code:unit", "node_id:node", "description:description", "status:status",
    "state:state", "address:address", "version:version", "last_heartbeat:last heartbeat",
    "heartbeat_age_s:seconds since", "cert_serial:certificate serial",
    "cert_not_after:certificate until", "resources:resources"};
static const char *const cred_cols[] = {"client_id:CLIENT ID", "authorization_id:AUTHORIZATION",
                                        "resource_code:RESOURCE", "owner:OWNER",
                                        "generation:GEN", "status:STATUS",
                                        "rotated_at:ROTATED"};

static const char *str_or_empty(json_t *j) {
  const char *s = json_string_value(j);
  return s ? s : "";
}

static const char help_nodes[] =
    "Usage: gdx nodes enroll NODE_ID [--description TEXT]   (unit admins)\n"
    "       gdx nodes list\n"
    "       gdx nodes status ID\n"
    "       gdx nodes token ID          a new one-time enrollment token\n"
    "       gdx nodes revoke ID --opinion TEXT\n"
    "`enroll` registers a front-end node of your unit and prints its one-time token;\n"
    "on the node run: gdx-node --config node.conf --enroll TOKEN\n";

static int cmd_nodes(int argc, char **argv) {
  json_t *out;
  char path[256];
  int rc;
  if (argc >= 1 && strcmp(argv[0], "list") == 0) {
    rc = cli_call("GET", "/api/v1/nodes", NULL, &out);
    return rc ? rc : cli_emit(out, node_cols, CLI_NCOLS(node_cols), 1);
  }
  if (argc >= 2 && (strcmp(argv[0], "enroll") == 0 || strcmp(argv[0], "create") == 0)) {
    json_t *body = json_pack("{s:s}", "node_id", argv[1]);
    if (cli_opt(argc, argv, "--description"))
      json_object_set_new(body, "description", json_string(cli_opt(argc, argv, "--description")));
    rc = cli_call("POST", "/api/v1/nodes", body, &out);
    static const char *const cols[] = {"id:id", "unit_code:unit", "node_id:node",
                                       "enrollment_token:enrollment token",
                                       "token_expires_in_s:expires in (s)",
                                       "ca_fingerprint:platform CA (SHA-256)"};
    return rc ? rc : cli_emit(out, cols, CLI_NCOLS(cols), 0);
  }
  if (argc >= 2 && (strcmp(argv[0], "status") == 0 || strcmp(argv[0], "show") == 0)) {
    long long id;
    if ((rc = cli_id_arg("ID", argv[1], help_nodes, &id)) != CLI_EX_OK)
      return rc;
    snprintf(path, sizeof(path), "/api/v1/nodes/%lld", id);
    rc = cli_call("GET", path, NULL, &out);
    if (rc)
      return rc;
    if (!cli_opts.json) { /* "enterprise-api (api): up - /health answered 200; …" */
      char text[2048] = "";
      size_t i, used = 0;
      json_t *r;
      json_array_foreach(json_object_get(out, "resources"), i, r) {
        used += (size_t)snprintf(text + used, used < sizeof(text) ? sizeof(text) - used : 0,
                                 "%s%s (%s): %s%s%s", i ? "; " : "",
                                 json_string_value(json_object_get(r, "name")),
                                 json_string_value(json_object_get(r, "kind")),
                                 json_string_value(json_object_get(r, "health")),
                                 json_string_length(json_object_get(r, "detail")) ? " - " : "",
                                 str_or_empty(json_object_get(r, "detail")));
        if (used >= sizeof(text))
          break;
      }
      json_object_set_new(out, "resources", json_string(text[0] ? text : "(none)"));
    }
    return cli_emit(out, node_detail_cols, CLI_NCOLS(node_detail_cols), 0);
  }
  if (argc >= 2 && strcmp(argv[0], "token") == 0) {
    static const char *const cols[] = {"id:id", "enrollment_token:enrollment token",
                                       "token_expires_in_s:expires in (s)"};
    if ((rc = cli_id_arg("ID", argv[1], help_nodes, NULL)) != CLI_EX_OK)
      return rc;
    return cli_item_verb("/api/v1/nodes", "token", argv[1], cols, CLI_NCOLS(cols));
  }
  if (argc >= 2 && strcmp(argv[0], "revoke") == 0) {
    const char *opinion = cli_opt(argc, argv, "--opinion");
    if (opinion == NULL)
      return cli_usage_error("revoke needs --opinion", help_nodes);
    long long id;
    if ((rc = cli_id_arg("ID", argv[1], help_nodes, &id)) != CLI_EX_OK)
      return rc;
    snprintf(path, sizeof(path), "/api/v1/nodes/%lld/revoke", id);
    rc = cli_call("POST", path, json_pack("{s:s}", "opinion", opinion), &out);
    static const char *const cols[] = {"id:node", "status:status"};
    return rc ? rc : cli_emit(out, cols, CLI_NCOLS(cols), 0);
  }
  return cli_usage_error("nodes takes enroll, list, status, token or revoke", help_nodes);
}

static const char help_credentials[] =
    "Usage: gdx credentials create --authorization ID   (the consumer's unit admin)\n"
    "       gdx credentials list\n"
    "       gdx credentials rotate CLIENT_ID\n"
    "       gdx credentials revoke CLIENT_ID\n"
    "An application credential (client id + secret, the secret shown once) lets a\n"
    "consumer system call the API resource of an authorization through the broker.\n";

static int cmd_credentials(int argc, char **argv) {
  json_t *out;
  int rc;
  static const char *const secret_cols[] = {"client_id:client id", "client_secret:client secret",
                                            "authorization_id:authorization",
                                            "resource_code:resource", "note:note"};
  if (argc >= 1 && strcmp(argv[0], "list") == 0) {
    rc = cli_call("GET", "/api/v1/credentials", NULL, &out);
    return rc ? rc : cli_emit(out, cred_cols, CLI_NCOLS(cred_cols), 1);
  }
  if (argc >= 1 && strcmp(argv[0], "create") == 0) {
    const char *a = cli_opt(argc, argv, "--authorization");
    if (a == NULL)
      return cli_usage_error("create needs --authorization ID", help_credentials);
    long long id;
    if ((rc = cli_id_arg("--authorization", a, help_credentials, &id)) != CLI_EX_OK)
      return rc;
    rc = cli_call("POST", "/api/v1/credentials",
                  json_pack("{s:I}", "authorization_id", (json_int_t)id), &out);
    return rc ? rc : cli_emit(out, secret_cols, CLI_NCOLS(secret_cols), 0);
  }
  if (argc >= 2 && strcmp(argv[0], "rotate") == 0)
    return cli_item_verb("/api/v1/credentials", "rotate", argv[1], secret_cols,
                         CLI_NCOLS(secret_cols));
  if (argc >= 2 && strcmp(argv[0], "revoke") == 0) {
    static const char *const cols[] = {"client_id:client id", "status:status"};
    return cli_item_verb("/api/v1/credentials", "revoke", argv[1], cols, CLI_NCOLS(cols));
  }
  return cli_usage_error("credentials takes create, list, rotate or revoke", help_credentials);
}

static const char help_call[] =
    "Usage: gdx call [-X METHOD] [--data TEXT | --data-file FILE] [-H 'Name: value']...\n"
    "                (--client-id ID [--password-stdin] | --token TOKEN) RESOURCE PATH\n"
    "Calls an API resource through the broker: /svc/RESOURCE/PATH. With --client-id the\n"
    "secret comes from $GDX_CLIENT_SECRET or standard input (--password-stdin) and is\n"
    "exchanged for a token first. The body goes to standard output; the status and the\n"
    "request id to standard error (with --json: one JSON object with all three).\n"
    "Example: gdx call --client-id gdxc_… 101/000001 persons/42\n";

/* The body of gdx call --data-file, read whole into b (capped). */
static int read_data_file(const char *path, gdx_buf *b) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "gdx: cannot read %s\n", path);
    return CLI_EX_USAGE;
  }
  char chunk[65536];
  size_t n;
  int err = GDX_OK;
  while (err == GDX_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    err = gdx_buf_append(b, chunk, n);
  int unreadable = ferror(f);
  fclose(f);
  if (err == GDX_ETOOBIG) {
    char size[32];
    cli_size_text(b->cap, size, sizeof(size));
    fprintf(stderr, "gdx: %s is larger than %s, the most a broker accepts\n", path, size);
    return CLI_EX_USAGE;
  }
  if (err)
    return cli_out_of_memory();
  if (unreadable) {
    fprintf(stderr, "gdx: cannot read %s\n", path);
    return CLI_EX_USAGE;
  }
  return CLI_EX_OK;
}

/* Performs a call and prints its answer: the body to standard output and
 * the status to standard error, or one JSON object with --json. */
static int call_and_print(const cli_request *rq) {
  cli_body b;
  cli_body_init(&b, CLI_CAP_CALL_ANSWER, 0); /* an API's refusal is its answer too */
  cli_answer_meta meta;
  CURLcode cr = cli_perform(rq, &b, &meta);
  int ex;
  if (b.err) {
    ex = cli_body_failed(&b, "the API's answer", "");
  } else if (cr != CURLE_OK) {
    fprintf(stderr, "gdx: the call failed: %s\n", curl_easy_strerror(cr));
    ex = CLI_EX_UNREACHABLE;
  } else {
    const char *data = b.buf.data;
    if (cli_opts.json) {
      json_t *parsed = data ? json_loads(data, 0, NULL) : NULL;
      json_t *o = json_pack("{s:I, s:s, s:o}", "status", (json_int_t)b.status, "request_id",
                            meta.request_id, "body",
                            parsed ? parsed : json_string(data ? data : ""));
      json_dumpf(o, stdout, JSON_INDENT(2));
      fputc('\n', stdout);
      json_decref(o);
    } else {
      if (data)
        fwrite(data, 1, b.buf.len, stdout);
      fprintf(stderr, "HTTP %ld%s%s, request %s\n", b.status,
              meta.error_type[0] ? ", failed at: " : "", meta.error_type, meta.request_id);
    }
    ex = b.status >= 200 && b.status < 300 ? CLI_EX_OK : cli_exit_for(b.status);
  }
  cli_body_free(&b);
  return ex;
}

static int cmd_call(int argc, char **argv) {
  const char *method = "GET", *data = NULL, *data_file = NULL, *client = NULL, *token = NULL;
  const char *pos[2] = {NULL, NULL};
  int npos = 0, err = GDX_OK;
  struct curl_slist *h = NULL;
  for (int i = 0; i < argc && err == GDX_OK; i++) {
    int more = i + 1 < argc;
    if ((strcmp(argv[i], "-X") == 0 || strcmp(argv[i], "--method") == 0) && more) method = argv[++i];
    else if (strcmp(argv[i], "--data") == 0 && more) data = argv[++i];
    else if (strcmp(argv[i], "--data-file") == 0 && more) data_file = argv[++i];
    else if ((strcmp(argv[i], "-H") == 0 || strcmp(argv[i], "--header") == 0) && more)
      err = cli_header_add(&h, argv[++i]);
    else if (strcmp(argv[i], "--client-id") == 0 && more) client = argv[++i];
    else if (strcmp(argv[i], "--token") == 0 && more) token = argv[++i];
    else if (npos < 2 && argv[i][0] != '-') pos[npos++] = argv[i];
    else {
      curl_slist_free_all(h);
      return cli_usage_error("unexpected argument", help_call);
    }
  }
  if (err) {
    curl_slist_free_all(h);
    return cli_out_of_memory();
  }
  if (npos < 1 || (!client && !token)) {
    curl_slist_free_all(h);
    return cli_usage_error("call needs RESOURCE [PATH] and --client-id or --token", help_call);
  }
  char tokbuf[512];
  if (client) {
    int rc = cli_access_token(client, tokbuf, sizeof(tokbuf));
    if (rc) {
      curl_slist_free_all(h);
      return rc;
    }
    token = tokbuf;
  }
  json_t *s = cli_session_load();
  char url[4096];
  const char *path = pos[1] ? pos[1] : "";
  int len = snprintf(url, sizeof(url), "%s/svc/%s/%s", cli_broker_url(s), pos[0],
                     path[0] == '/' ? path + 1 : path);
  json_decref(s);
  if (len < 0 || (size_t)len >= sizeof(url)) {
    curl_slist_free_all(h);
    fprintf(stderr, "gdx: the request's address is longer than %zu bytes\n", sizeof(url) - 1);
    return CLI_EX_USAGE;
  }
  if ((err = cli_header_bearer(&h, token)) != GDX_OK) {
    curl_slist_free_all(h);
    return cli_header_failed(err, "");
  }
  gdx_buf file;
  gdx_buf_init(&file, CLI_CAP_CALL_DATA);
  int ex = data_file ? read_data_file(data_file, &file) : CLI_EX_OK;
  if (ex == CLI_EX_OK) {
    cli_request rq = {.method = method, .url = url, .headers = h, .timeout_s = 120};
    if (data_file) {
      rq.body = file.data; /* NULL for an empty file: no body, as before */
      rq.body_len = file.len;
    } else if (data) {
      rq.body = data;
      rq.body_len = strlen(data);
    }
    ex = call_and_print(&rq);
  }
  curl_slist_free_all(h);
  gdx_buf_free(&file);
  return ex;
}

static const char help_subscriptions[] =
    "Usage: gdx subscriptions [list]\n"
    "       gdx subscriptions report AUTHORIZATION [--date YYYY-MM-DD]\n"
    "       gdx subscriptions reconcile AUTHORIZATION\n"
    "       gdx subscriptions files AUTHORIZATION [--status delivered|quarantined] [--path P]\n"
    "Table and folder subscriptions of one's unit (as consumer or provider; all of them for the\n"
    "operations and management roles): where each stands, its ledger of batches sent and\n"
    "applied, reconciliation runs (对账) and alarms. `report` is the daily report (UTC day,\n"
    "today by default) with a verdict: consistent, repaired, discrepancies or\n"
    "not_reconciled. `reconcile` asks the consumer's node for a run now. `files` is a folder\n"
    "subscription's file ledger: each file version with its size, SHA-256, the SM3 listed and\n"
    "received, bytes received, where a resumed transfer began, delivered or quarantined.\n";

static const char *const sub_cols[] = {
    "authorization_id:AUTH", "resource_code:RESOURCE", "consumer:CONSUMER", "target:TARGET",
    "phase:PHASE", "position:POSITION", "rows_applied:ROWS APPLIED",
    "mismatched_batches:MISMATCHED", "last_reconciliation:LAST RUN", "open_alarms:ALARMS",
    "last_ack_at:LAST REPORT"};
static const char *const recon_cols[] = {
    "id:RUN", "authorization_id:AUTH", "status:STATUS", "chunks:CHUNKS",
    "chunks_differing:DIFFERING", "rows_source:SOURCE ROWS", "rows_target:TARGET ROWS",
    "rows_missing:MISSING", "rows_extra:EXTRA", "rows_different:DIFFERENT",
    "rows_repaired:REPAIRED", "finished_at:FINISHED"};
static const char *const alarm_cols[] = {"id:ID", "kind:KIND", "authorization_id:AUTH",
                                         "state:STATE", "occurrences:TIMES",
                                         "last_seen_at:LAST SEEN", "message:MESSAGE"};

static int print_report(json_t *r) {
  if (cli_opts.json)
    return cli_emit(r, NULL, 0, 0);
  static const char *const head[] = {"authorization_id:Subscription", "date:Day (UTC)",
                                     "resource_code:Resource", "provider:Provider",
                                     "consumer:Consumer", "verdict:Verdict"};
  cli_fields(r, head, CLI_NCOLS(head));
  json_t *st = json_object_get(r, "state");
  const char *phase = json_string_value(json_object_get(st, "phase"));
  if (phase && strcmp(phase, "files") == 0) { /* a folder subscription */
    static const char *const state[] = {"target:Folder", "last_ack_at:Last report"};
    cli_fields(st, state, CLI_NCOLS(state));
    static const char *const files[] = {
        "files:Files today", "delivered:  delivered (hash verified)",
        "bytes_delivered:  bytes delivered", "quarantined:  quarantined",
        "unverified:  SM3 not matching", "resumed:  resumed transfers",
        "bytes_received:Bytes received"};
    cli_fields(json_object_get(json_object_get(r, "ledger"), "files"), files, CLI_NCOLS(files));
  } else {
    if (json_is_object(st)) {
      static const char *const state[] = {"target:Target table", "phase:Phase",
                                          "position:Position",
                                          "rows_applied:Rows applied (all)",
                                          "last_ack_at:Last report"};
      cli_fields(st, state, CLI_NCOLS(state));
    }
    static const char *const ledger[] = {
        "batches:Batches today", "snapshot_pages:  snapshot pages",
        "change_batches:  change batches", "rows_sent:Rows sent", "rows_applied:Rows applied",
        "mismatched_batches:Mismatched batches"};
    cli_fields(json_object_get(r, "ledger"), ledger, CLI_NCOLS(ledger));
    printf("\nReconciliation runs\n");
    cli_table(json_object_get(r, "reconciliations"), recon_cols, CLI_NCOLS(recon_cols));
  }
  printf("\nAlarms\n");
  cli_table(json_object_get(r, "alarms"), alarm_cols, CLI_NCOLS(alarm_cols));
  json_decref(r);
  return CLI_EX_OK;
}

static int cmd_subscriptions(int argc, char **argv) {
  json_t *out;
  int rc;
  if (argc == 0 || strcmp(argv[0], "list") == 0) {
    rc = cli_call("GET", "/api/v1/subscriptions", NULL, &out);
    return rc ? rc : cli_emit(out, sub_cols, CLI_NCOLS(sub_cols), 1);
  }
  int known = strcmp(argv[0], "report") == 0 || strcmp(argv[0], "reconcile") == 0 ||
              strcmp(argv[0], "files") == 0;
  if (argc < 2 || !known)
    return cli_usage_error("subscriptions takes list, report, reconcile or files",
                           help_subscriptions);
  long long aid;
  if ((rc = cli_id_arg("AUTHORIZATION", argv[1], help_subscriptions, &aid)) != CLI_EX_OK)
    return rc;
  if (strcmp(argv[0], "report") == 0) {
    const char *date = cli_opt(argc, argv, "--date");
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/subscriptions/%lld/report%s%s", aid,
             date ? "?date=" : "", date && strlen(date) == 10 ? date : "");
    rc = cli_call("GET", path, NULL, &out);
    return rc ? rc : print_report(out);
  }
  if (strcmp(argv[0], "reconcile") == 0) {
    static const char *const cols[] = {"authorization_id:Subscription", "note:Note"};
    return cli_item_verb("/api/v1/subscriptions", "reconcile", argv[1], cols, CLI_NCOLS(cols));
  }
  /* files */
  const char *st = cli_opt(argc, argv, "--status");
  if (st && strcmp(st, "delivered") != 0 && strcmp(st, "quarantined") != 0)
    return cli_usage_error("--status is delivered or quarantined", help_subscriptions);
  char path[4096];
  snprintf(path, sizeof(path), "/api/v1/subscriptions/%lld/files?status=%s", aid, st ? st : "");
  const char *fp = cli_opt(argc, argv, "--path");
  if ((rc = cli_query_add(path, sizeof(path), "path", fp ? fp : "")) != CLI_EX_OK)
    return rc;
  static const char *const cols[] = {"path:PATH", "size:BYTES", "status:STATUS",
                                     "verified:VERIFIED", "resumed_from:RESUMED AT",
                                     "sha256:SHA-256", "verified_at:AT", "detail:DETAIL"};
  rc = cli_call("GET", path, NULL, &out);
  return rc ? rc : cli_emit(out, cols, CLI_NCOLS(cols), 1);
}

static const char help_reconciliations[] =
    "Usage: gdx reconciliations [--authorization ID]\n"
    "Reconciliation runs (对账), newest first: chunks compared by checksum, rows missing,\n"
    "extra or different at the consumer, and rows repaired.\n";

static int cmd_reconciliations(int argc, char **argv) {
  const char *a = NULL;
  for (int i = 0; i + 1 < argc; i++)
    if (strcmp(argv[i], "--authorization") == 0)
      a = argv[i + 1];
  char path[128] = "/api/v1/reconciliations";
  int rc;
  if (a) {
    long long aid;
    if ((rc = cli_id_arg("--authorization", a, help_reconciliations, &aid)) != CLI_EX_OK)
      return rc;
    snprintf(path, sizeof(path), "/api/v1/reconciliations?authorization=%lld", aid);
  }
  json_t *out;
  rc = cli_call("GET", path, NULL, &out);
  return rc ? rc : cli_emit(out, recon_cols, CLI_NCOLS(recon_cols), 1);
}

static const char help_alarms[] =
    "Usage: gdx alarms [list] [--all]\n"
    "       gdx alarms ack ID\n"
    "Alarms of table exchange (a batch whose applied rows or checksum differ from what was\n"
    "sent, a reconciliation that found differences or failed): open ones, or all with\n"
    "--all. A unit admin acknowledges one with `ack` (audited).\n";

static int cmd_alarms(int argc, char **argv) {
  json_t *out;
  if (argc >= 2 && strcmp(argv[0], "ack") == 0) {
    static const char *const cols[] = {"id:Alarm", "state:State"};
    int rc = cli_id_arg("ID", argv[1], help_alarms, NULL);
    if (rc)
      return rc;
    return cli_item_verb("/api/v1/alarms", "ack", argv[1], cols, CLI_NCOLS(cols));
  }
  int all = 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--all") == 0)
      all = 1;
    else if (strcmp(argv[i], "list") != 0)
      return cli_usage_error("alarms takes list [--all] or ack ID", help_alarms);
  }
  int rc = cli_call("GET", all ? "/api/v1/alarms?state=all" : "/api/v1/alarms", NULL, &out);
  return rc ? rc : cli_emit(out, alarm_cols, CLI_NCOLS(alarm_cols), 1);
}

const cli_command cli_exchange_commands[] = {
    {"nodes", cmd_nodes, help_nodes},
    {"credentials", cmd_credentials, help_credentials},
    {"call", cmd_call, help_call},
    {"subscriptions", cmd_subscriptions, help_subscriptions},
    {"reconciliations", cmd_reconciliations, help_reconciliations},
    {"alarms", cmd_alarms, help_alarms},
    {NULL, NULL, NULL}};
