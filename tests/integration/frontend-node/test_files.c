/* File exchange end to end: a provider's folder delivered into a
 * consumer's folder through the broker - documents with Chinese names and
 * content, byte for byte and hash for hash, with the file ledger and the
 * daily report; a disguised file refused at the provider (audit record
 * and alarm); the EICAR test file quarantined at the consumer (never
 * visible; alarm and audit records for both units); a changed file
 * keeping the previous copy; transfers interrupted by kill -9 of the
 * consumer's node, the provider's node and the broker resuming from the
 * verified chunks; a file rewritten while it is sent, delivered whole in
 * its new version; and fetch with the CLI.
 *
 * Real broker on the fixture's MariaDB, real gdx-node processes, real
 * libclamav with a locally made signature for EICAR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apiclient.h"
#include "digest.h"
#include "error.h"
#include "harness.h"
#include "nodes.h"

static tb_broker B;
static tn_people P;
static int nodes_port, prov_admin_port, cons_admin_port;
static pid_t prov_pid, cons_pid;
static char prov_conf[256], prov_state[256], cons_conf[256], cons_state[256];
static long long prov_row, cons_row, auth_sub, auth_fetch;
static char code_docs[48];
static char pdir[300], cdir[300], sigs[300];

#define FIXTURES GDX_SOURCE_DIR "/tests/fixtures/files"

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
  char cmd[3000];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  if (system(cmd) != 0)
    fail_msg("command failed: %s", cmd);
}

static int file_sha256(const char *path, char out[65]) {
  return gdx_digest_file(path, GDX_DIGEST_SHA256, out, NULL) == GDX_OK ? 0 : -1;
}

/* Waits until path exists with the sha256 of ref (up to seconds). */
static void wait_same(const char *path, const char *ref, double seconds) {
  char want[65], got[65] = "";
  assert_int_equal(file_sha256(ref, want), 0);
  TH_WAIT_UNTIL(file_sha256(path, got) == 0 && strcmp(got, want) == 0, (int)(seconds * 1000),
                "%s to become a copy of %s (sha256 %s, want %s)", path, ref, got, want);
}

static json_t *api_get(const char *token, const char *path) {
  json_t *j = NULL;
  long st = tb_call("GET", path, token, NULL, &j);
  if (st != 200)
    fail_msg("GET %s -> %ld %s", path, st, tb_err_code(j));
  return j;
}

/* The file ledger entries of the subscription for path, newest first. */
static json_t *ledger_for(const char *path) {
  char url[2000];
  int n = snprintf(url, sizeof(url), "/api/v1/subscriptions/%lld/files?path=", auth_sub);
  for (const unsigned char *p = (const unsigned char *)path; *p && n < 1990; p++)
    n += snprintf(url + n, sizeof(url) - (size_t)n, "%%%02X", *p);
  json_t *j = api_get(P.cons_admin, url), *out = json_array();
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(j, "items"), i, e)
    if (strcmp(json_string_value(json_object_get(e, "path")), path) == 0)
      json_array_append(out, e);
  json_decref(j);
  return out;
}

/* The newest ledger entry for path if its status is status, else NULL. */
static json_t *ledger_entry(const char *path, const char *status) {
  json_t *l = ledger_for(path);
  json_t *e = json_array_get(l, 0);
  if (e && strcmp(json_string_value(json_object_get(e, "status")), status) == 0)
    json_incref(e);
  else
    e = NULL;
  json_decref(l);
  return e;
}

static size_t ledger_entries(const char *path) {
  json_t *l = ledger_for(path);
  size_t n = json_array_size(l);
  json_decref(l);
  return n;
}

static json_t *wait_ledger(const char *path, const char *status, double seconds) {
  json_t *e = NULL;
  TH_WAIT_UNTIL((e = ledger_entry(path, status)) != NULL, (int)(seconds * 1000),
                "a %s ledger entry for %s", status, path);
  return e;
}

/* Audit records with action, and their count for unit (NULL: any). */
static int audit_count(const char *action, const char *unit, const char *in_object) {
  char url[200];
  snprintf(url, sizeof(url), "/api/v1/audit?action=%s&limit=1000", action);
  json_t *j = api_get(P.ops, url);
  int n = 0;
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(j, "items"), i, e) {
    const char *u = json_string_value(json_object_get(e, "unit_code"));
    const char *o = json_string_value(json_object_get(e, "object"));
    if ((unit == NULL || (u && strcmp(u, unit) == 0)) &&
        (in_object == NULL || (o && strstr(o, in_object))))
      n++;
  }
  json_decref(j);
  return n;
}

static int alarm_count(const char *token, const char *kind, const char *in_message) {
  json_t *j = api_get(token, "/api/v1/alarms");
  int n = 0;
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(j, "items"), i, e)
    if (strcmp(json_string_value(json_object_get(e, "kind")), kind) == 0 &&
        (in_message == NULL ||
         strstr(json_string_value(json_object_get(e, "message")), in_message)))
      n++;
  json_decref(j);
  return n;
}

static void wait_audit(const char *action, const char *unit, const char *in_object,
                       double seconds) {
  TH_WAIT_UNTIL(audit_count(action, unit, in_object) > 0, (int)(seconds * 1000),
                "an audit record %s for unit %s about %s", action, unit ? unit : "any",
                in_object ? in_object : "-");
}

/* A sample of the consumer node's /metrics for the subscription. */
static double cmetric(const char *name) {
  char m[200];
  snprintf(m, sizeof(m), "%s{authorization=\"%lld\"}", name, auth_sub);
  return tn_metric(cons_admin_port, m);
}

static void eicar(char *out) {
  strcpy(out, "X5O!P%@AP[4\\PZX54(P^)7CC)7}$");
  strcat(out, "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
}

/* ------------------------------------------------------------------ */

static int setup(void **state) {
  (void)state;
  prov_admin_port = th_free_port();
  cons_admin_port = th_free_port();
  nodes_port = tn_start_exchange(&B, &P, "files", GDX_BROKER_BIN, GDX_NODE_BIN,
                                 "proxy = { cache_poll_ms = 100; records_flush_ms = 100; "
                                 "head_timeout_ms = 15000; };\n");
  if (nodes_port < 0)
    return -1;
  snprintf(pdir, sizeof(pdir), "%s/provider-share", B.dir);
  snprintf(cdir, sizeof(cdir), "%s/consumer-in", B.dir);
  snprintf(sigs, sizeof(sigs), "%s/signatures", B.dir);
  sh("mkdir -p %s %s %s", pdir, cdir, sigs);
  /* a signature for the EICAR test string, as ClamAV's .hdb has it */
  char e[80], hex[33], line[200];
  eicar(e);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_Digest(e, strlen(e), md, &mdlen, EVP_md5(), NULL);
  for (unsigned i = 0; i < mdlen; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  snprintf(line, sizeof(line), "%s/gdx-test.hdb", sigs);
  FILE *f = fopen(line, "w");
  assert_non_null(f);
  fprintf(f, "%s:%zu:Gdx.Test.EICAR\n", hex, strlen(e));
  fclose(f);

  snprintf(tn_extra_conf, sizeof(tn_extra_conf), "admin = { port = %d; };", prov_admin_port);
  char res[600];
  snprintf(res, sizeof(res),
           "{ name = \"docs\"; kind = \"file\"; folder = \"%s\"; stable_ms = 300; rescan_s = 2; "
           "chunk_mib = 1; max_mibps = 48; }", pdir); /* paced: kills land mid-transfer */
  prov_pid = tn_start_node(P.prov_admin, PROV, "prov-fnode", res, prov_conf, prov_state, &prov_row);
  tn_wait_health(prov_row, "docs", "up", "files ready");
  char body[2048];
  snprintf(body, sizeof(body),
           "{\"name\":\"共享文件夹 报表\",\"summary\":\"统计报表与名录\",\"category\":\"101002\","
           "\"resource_type\":\"unstructured\",\"format\":\"electronic_file\",\"data_items\":"
           "[{\"name\":\"file\",\"type\":\"binary\",\"sharing_type\":\"unconditional\"}],"
           "\"sharing_type\":\"unconditional\",\"sharing_method\":\"file\",\"open_to_public\":"
           "false,\"update_cycle\":\"daily\",\"attachment\":{\"kind\":\"file\",\"node\":"
           "\"prov-fnode\",\"target\":\"docs\",\"formats\":[\"docx\",\"xls\",\"csv\",\"txt\","
           "\"doc\"]}}");
  json_t *j = NULL;
  long st = tb_call("POST", "/api/v1/catalog", P.prov_admin, body, &j);
  if (st != 201)
    fail_msg("catalog create -> %ld %s", st, tb_err_code(j));
  snprintf(code_docs, sizeof(code_docs), "%s",
           json_string_value(json_object_get(j, "resource_code")));
  json_decref(j);
  char path[128];
  snprintf(path, sizeof(path), "/api/v1/catalog/%s/submit", code_docs);
  tb_expect(200, "POST", path, P.prov_admin, NULL);
  snprintf(path, sizeof(path), "/api/v1/catalog/%s/review", code_docs);
  tb_expect(200, "POST", path, P.reviewer, "{\"decision\":\"publish\",\"opinion\":\"同意\"}");
  auth_sub = tn_authorize(P.cons_admin, code_docs, "\"file\"", "subscribe", NULL, NULL);
  auth_fetch = tn_authorize(P.cons2_admin, code_docs, "\"file\"", "fetch", NULL, NULL);
  snprintf(tn_extra_conf, sizeof(tn_extra_conf),
           "admin = { port = %d; };\nscan = { signatures = \"%s\"; };\n"
           "subscriptions = ( { authorization = %lld; folder = \"%s\"; versions = 2; "
           "wait_ms = 5000; } );",
           cons_admin_port, sigs, auth_sub, cdir);
  cons_pid = tn_start_node(P.cons_admin, CONS, "cons-fnode", "", cons_conf, cons_state, &cons_row);
  tn_extra_conf[0] = '\0';
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return tn_stop_exchange(&B) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */

/* Documents with Chinese names in a Chinese sub-folder arrive byte for
 * byte; the ledger has each with its size, hashes and verification; the
 * daily report's verdict is consistent; nothing but the files is
 * visible. */
static void test_deliver_documents(void **state) {
  (void)state;
  sh("mkdir -p '%s/报表/2026' && cp '" FIXTURES "/企业名录.docx' '" FIXTURES "/统计表.xls' '"
     FIXTURES "/企业名单.csv' '%s/报表/2026/'", pdir, pdir);
  static const char *const names[] = {"企业名录.docx", "统计表.xls", "企业名单.csv"};
  for (int i = 0; i < 3; i++) {
    char got[600], ref[600];
    snprintf(got, sizeof(got), "%s/报表/2026/%s", cdir, names[i]);
    snprintf(ref, sizeof(ref), FIXTURES "/%s", names[i]);
    wait_same(got, ref, 30);
    char rel[300];
    snprintf(rel, sizeof(rel), "报表/2026/%s", names[i]);
    json_t *e = wait_ledger(rel, "delivered", 30);
    char sha[65], sm3[65];
    assert_int_equal(gdx_digest_file(ref, GDX_DIGEST_SHA256 | GDX_DIGEST_SM3, sha, sm3), GDX_OK);
    assert_string_equal(json_string_value(json_object_get(e, "sha256")), sha);
    assert_string_equal(json_string_value(json_object_get(e, "sm3_sent")), sm3);
    assert_string_equal(json_string_value(json_object_get(e, "sm3_received")), sm3);
    assert_true(json_is_true(json_object_get(e, "verified")));
    struct stat st;
    assert_int_equal(stat(ref, &st), 0);
    assert_int_equal(json_integer_value(json_object_get(e, "size")), st.st_size);
    assert_int_equal(json_integer_value(json_object_get(e, "bytes_received")), st.st_size);
    json_decref(e);
  }
  /* only the three files and the node's own .gdx folder */
  char cmd[600], out[4096] = "";
  snprintf(cmd, sizeof(cmd), "cd %s && find . -path ./.gdx -prune -o -type f -print | sort", cdir);
  th_run(cmd, out, sizeof(out));
  assert_string_equal(out, "./报表/2026/企业名单.csv\n./报表/2026/企业名录.docx\n"
                           "./报表/2026/统计表.xls\n");
  char url[200];
  snprintf(url, sizeof(url), "/api/v1/subscriptions/%lld/report", auth_sub);
  json_t *r = api_get(P.prov_admin, url);
  assert_string_equal(json_string_value(json_object_get(r, "verdict")), "consistent");
  json_t *files = json_object_get(json_object_get(r, "ledger"), "files");
  assert_true(json_integer_value(json_object_get(files, "delivered")) >= 3);
  assert_int_equal(json_integer_value(json_object_get(files, "unverified")), 0);
  json_decref(r);
  /* the consumer's node counts them */
  assert_true(cmetric("gdx_node_files_delivered_total") >= 3);
}

/* An executable named .doc never leaves the provider: refused there, an
 * audit record and an alarm for the provider's unit; a good file written
 * after it arrives, the disguised one does not. */
static void test_disguised_file_refused(void **state) {
  (void)state;
  sh("cp /bin/true '%s/申报材料.doc'", pdir);
  wait_audit("file.refused", PROV, "申报材料.doc", 30);
  assert_true(alarm_count(P.prov_admin, "file_refused", "申报材料.doc") >= 1);
  assert_int_equal(alarm_count(P.cons_admin, "file_refused", NULL), 0); /* not the consumer's */
  sh("cp '" FIXTURES "/说明.txt' '%s/说明.txt'", pdir);
  char got[400];
  snprintf(got, sizeof(got), "%s/说明.txt", cdir);
  wait_same(got, FIXTURES "/说明.txt", 30);
  snprintf(got, sizeof(got), "%s/申报材料.doc", cdir);
  assert_int_not_equal(access(got, F_OK), 0);
  assert_true(tn_metric(prov_admin_port, "gdx_node_files{resource=\"docs\",state=\"refused\"}") >=
              1);
}

/* The EICAR test file passes the provider (it is text) and is stopped by
 * the consumer's scanner: quarantined, never visible, an alarm, audit
 * records for both units, and it is not fetched again. */
static void test_eicar_quarantined(void **state) {
  (void)state;
  char e[80], path[400];
  eicar(e);
  snprintf(path, sizeof(path), "%s/.eicar.tmp", pdir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(e, f);
  fclose(f);
  sh("mv %s/.eicar.tmp %s/病毒测试.txt", pdir, pdir);
  json_t *le = wait_ledger("病毒测试.txt", "quarantined", 30);
  assert_non_null(strstr(json_string_value(json_object_get(le, "detail")), "Gdx.Test.EICAR"));
  char qpath[600];
  snprintf(qpath, sizeof(qpath), "%s/.gdx/quarantine/%s", cdir,
           json_string_value(json_object_get(le, "sha256")));
  json_decref(le);
  struct stat st;
  assert_int_equal(stat(qpath, &st), 0);
  assert_int_equal(st.st_size, (off_t)strlen(e));
  assert_int_equal(st.st_mode & 0777, 0600);
  snprintf(path, sizeof(path), "%s/病毒测试.txt", cdir);
  assert_int_not_equal(access(path, F_OK), 0);
  assert_true(alarm_count(P.cons_admin, "file_quarantined", "病毒测试.txt") >= 1);
  assert_true(alarm_count(P.prov_admin, "file_quarantined", "病毒测试.txt") >= 1);
  assert_true(audit_count("file.quarantined", CONS, "病毒测试.txt") >= 1);
  assert_true(audit_count("file.quarantined", PROV, "病毒测试.txt") >= 1);
  /* a later file still flows, and the infected one is not taken again */
  sh("cp '" FIXTURES "/data.xml' '%s/data.xml'", pdir);
  snprintf(path, sizeof(path), "%s/data.xml", cdir);
  wait_same(path, FIXTURES "/data.xml", 30);
  json_t *l = ledger_for("病毒测试.txt");
  assert_int_equal(json_array_size(l), 1);
  json_decref(l);
}

/* A changed file replaces the consumer's copy atomically and the previous
 * copy is kept under .gdx/versions (two kept: the oldest goes). */
static void test_versions_kept(void **state) {
  (void)state;
  char src[400], dst[400], vdir[600];
  snprintf(src, sizeof(src), "%s/名单.csv", pdir);
  snprintf(dst, sizeof(dst), "%s/名单.csv", cdir);
  snprintf(vdir, sizeof(vdir), "%s/.gdx/versions/名单.csv", cdir);
  for (int v = 1; v <= 4; v++) {
    sh("printf '编号,名称\\n%d,版本%d\\n' > %s/.n.tmp && mv %s/.n.tmp '%s'", v, v, pdir, pdir, src);
    wait_same(dst, src, 30);
    size_t entries = 0; /* the ledger entry follows the file (after its SM3) */
    TH_WAIT_UNTIL((entries = ledger_entries("名单.csv")) == (size_t)v, 30000,
                  "%d ledger entries for 名单.csv (%zu)", v, entries);
    assert_int_equal(entries, (size_t)v);
  }
  char cmd[800], out[2048] = "";
  snprintf(cmd, sizeof(cmd), "cat '%s'/* | sort | tr '\\n' ' '", vdir);
  th_run(cmd, out, sizeof(out));
  assert_string_equal(out, "2,版本2 3,版本3 编号,名称 编号,名称 ");
}

/* Waits until the consumer's transfer of the current file has reached
 * bytes; where it is into at. */
static void wait_transfer(double bytes, double *at) {
  TH_WAIT_UNTIL((*at = cmetric("gdx_node_file_transfer_bytes")) >= bytes, 60000,
                "the transfer to reach %.0f bytes (at %.0f)", bytes, *at);
}

/* Waits until the consumer's transfer has failed on the outage just made:
 * a failed transfer more than the `before` it had. */
static void wait_transfer_failed(double before, const char *outage) {
  double now = before;
  assert_true(before >= 0);
  TH_WAIT_UNTIL((now = cmetric("gdx_node_files_failed_total")) > before, 60000,
                "the transfer to fail on the outage (%s): %.0f failed, as before", outage, now);
}

/* Kill -9 of the consumer's node, then the provider's node, then the
 * broker, each in the middle of one 192 MiB transfer; the file arrives
 * whole, and each restart resumed from the chunks already verified. */
static void test_kill_during_transfer(void **state) {
  (void)state;
  /* random bytes are not a document: a CSV of random lines is */
  sh("head -c 144M /dev/urandom | base64 -w 76 > %s/.big.tmp && mv %s/.big.tmp '%s/大数据.csv'",
     pdir, pdir, pdir);
  char src[400], dst[400];
  snprintf(src, sizeof(src), "%s/大数据.csv", pdir);
  snprintf(dst, sizeof(dst), "%s/大数据.csv", cdir);
  struct stat st;
  assert_int_equal(stat(src, &st), 0);
  /* 1. the consumer's node */
  double at = -1;
  wait_transfer(8 << 20, &at);
  assert_true(at >= 8 << 20);
  tn_kill9(cons_pid);
  cons_pid = tn_restart_node(cons_conf, "cons-fnode");
  /* 2. the provider's node, once the transfer moved on; started again once
   * the consumer has met it gone */
  double at2 = -1;
  wait_transfer(at + (16 << 20), &at2);
  assert_true(at2 >= at + (16 << 20));
  double failed = cmetric("gdx_node_files_failed_total");
  tn_kill9(prov_pid);
  wait_transfer_failed(failed, "the provider's node killed");
  prov_pid = tn_restart_node(prov_conf, "prov-fnode");
  /* 3. the broker, likewise */
  double at3 = -1;
  wait_transfer(at2 + (16 << 20), &at3);
  assert_true(at3 >= at2 + (16 << 20));
  failed = cmetric("gdx_node_files_failed_total");
  tb_kill9(&B);
  wait_transfer_failed(failed, "the broker killed");
  assert_int_equal(tb_restart(&B, GDX_BROKER_BIN), 0);
  wait_same(dst, src, 180);
  json_t *e = wait_ledger("大数据.csv", "delivered", 60);
  long long from = json_integer_value(json_object_get(e, "resumed_from"));
  long long got = json_integer_value(json_object_get(e, "bytes_received"));
  /* the last attempt began after the verified chunks and sent only the rest */
  assert_true(from >= at3 - (4 << 20));
  assert_int_equal(from + got, st.st_size);
  assert_true(json_is_true(json_object_get(e, "verified")));
  json_decref(e);
  assert_true(cmetric("gdx_node_file_bytes_resumed_total") >= from);
}

/* A file rewritten in place while it is being sent is not delivered half
 * old, half new: the consumer's chunk hashes stop the old version and
 * the new one arrives whole. */
static void test_modified_while_sent(void **state) {
  (void)state;
  sh("head -c 96M /dev/urandom | base64 -w 76 > %s/.old.tmp && head -c 96M /dev/urandom | "
     "base64 -w 76 > %s/.new.tmp", B.dir, B.dir);
  sh("cp %s/.old.tmp %s/.chg.tmp && mv %s/.chg.tmp '%s/变更.csv'", B.dir, pdir, pdir, pdir);
  char src[400], dst[400], newf[400];
  snprintf(src, sizeof(src), "%s/变更.csv", pdir);
  snprintf(dst, sizeof(dst), "%s/变更.csv", cdir);
  snprintf(newf, sizeof(newf), "%s/.new.tmp", B.dir);
  double at = -1;
  wait_transfer(4 << 20, &at);
  assert_true(at >= 4 << 20);
  /* in place, same inode: a writer that does not rename */
  sh("dd if=%s of='%s' bs=4M conv=notrunc status=none", newf, src);
  wait_same(dst, newf, 120);
  char want[65], old[65], oldf[400];
  snprintf(oldf, sizeof(oldf), "%s/.old.tmp", B.dir);
  assert_int_equal(file_sha256(newf, want), 0);
  assert_int_equal(file_sha256(oldf, old), 0);
  json_t *e = wait_ledger("变更.csv", "delivered", 60);
  assert_string_equal(json_string_value(json_object_get(e, "sha256")), want);
  json_decref(e);
  /* nothing else was ever delivered: each entry is one whole version (the
   * old one only if it was read whole before the rewrite reached it) */
  json_t *l = ledger_for("变更.csv");
  size_t i;
  json_t *x;
  json_array_foreach(l, i, x) {
    const char *h = json_string_value(json_object_get(x, "sha256"));
    assert_true(strcmp(h, want) == 0 || strcmp(h, old) == 0);
    assert_true(json_is_true(json_object_get(x, "verified")));
  }
  json_decref(l);
}

static int cli(const char *token, const char *env, const char *args, char *out, size_t n) {
  return tn_cli(GDX_CLI_BIN, token, env, args, out, n);
}

/* Fetch (获取) with the CLI under a fetch authorization: the listing as a
 * table and as JSON, a download checked chunk by chunk, a download that
 * resumes after the chunks of a partial file that still match (a wrong
 * tail is dropped), and a file that is not in the folder. */
static void test_fetch_cli(void **state) {
  (void)state;
  static char out[1 << 16];
  char client[40], secret[64], env[200], args[1200];
  tn_credential(P.cons2_admin, auth_fetch, client, secret);
  snprintf(env, sizeof(env), "GDX_CLIENT_SECRET=%s", secret);
  snprintf(args, sizeof(args), "fetch --client-id %s %s --list", client, code_docs);
  assert_int_equal(cli(P.cons2_admin, env, args, out, sizeof(out)), 0);
  assert_non_null(strstr(out, "报表/2026/企业名录.docx"));
  assert_non_null(strstr(out, "PATH"));
  assert_null(strstr(out, "申报材料.doc")); /* refused at the provider */
  snprintf(args, sizeof(args), "--json fetch --client-id %s %s --list", client, code_docs);
  assert_int_equal(cli(P.cons2_admin, env, args, out, sizeof(out)), 0);
  json_t *j = json_loads(out, 0, NULL);
  assert_true(json_array_size(json_object_get(j, "items")) >= 5);
  json_decref(j);
  /* a whole download */
  char dst[400];
  snprintf(dst, sizeof(dst), "%s/统计表-下载.xls", B.dir);
  snprintf(args, sizeof(args), "fetch --client-id %s %s --file 报表/2026/统计表.xls -o '%s'",
           client, code_docs, dst);
  assert_int_equal(cli(P.cons2_admin, env, args, out, sizeof(out)), 0);
  char a[65], b[65];
  assert_int_equal(file_sha256(dst, a), 0);
  assert_int_equal(file_sha256(FIXTURES "/统计表.xls", b), 0);
  assert_string_equal(a, b);
  /* resume: 3 good chunks (1 MiB each) and a corrupted 4th in the part file */
  char src[400];
  snprintf(src, sizeof(src), "%s/变更.csv", pdir);
  snprintf(dst, sizeof(dst), "%s/resumed.csv", B.dir);
  sh("head -c 3M '%s' > '%s.part' && head -c 500000 /dev/zero >> '%s.part'", src, dst, dst);
  snprintf(args, sizeof(args), "fetch --client-id %s %s --file 变更.csv -o '%s'", client,
           code_docs, dst);
  assert_int_equal(cli(P.cons2_admin, env, args, out, sizeof(out)), 0);
  assert_int_equal(file_sha256(dst, a), 0);
  assert_int_equal(file_sha256(src, b), 0);
  assert_string_equal(a, b);
  char errf[400], line[400];
  snprintf(errf, sizeof(errf), "%s/cli.err", B.dir);
  FILE *f = fopen(errf, "r");
  int resumed = 0;
  while (f && fgets(line, sizeof(line), f))
    resumed |= strstr(line, "resuming 变更.csv at 3145728 of") != NULL;
  if (f)
    fclose(f);
  assert_true(resumed);
  /* not in the folder: exit status 6 (not found) */
  snprintf(args, sizeof(args), "fetch --client-id %s %s --file 没有.csv", client, code_docs);
  assert_int_equal(cli(P.cons2_admin, env, args, out, sizeof(out)), 6);
}

/* The number of entries in folder dir (0 while there is none). */
static int count_files(const char *dir) {
  char cmd[600], out[32] = "";
  snprintf(cmd, sizeof(cmd), "ls %s 2>/dev/null | wc -l", dir);
  th_run(cmd, out, sizeof(out));
  return atoi(out);
}

/* Many small files at once: the listing comes in pages of 1000 and every
 * file arrives, each with its ledger entry (reported in batches of 500). */
static void test_many_files(void **state) {
  (void)state;
  sh("mkdir -p %s/.many && cd %s/.many && for i in $(seq 1 1500); do "
     "printf '编号,值\\n%%d,%%d\\n' $i $((i * 7)) > 表$i.csv; done && mv %s/.many %s/批量",
     B.dir, B.dir, B.dir, pdir);
  uint64_t t0 = th_now_ms();
  char last[400], dir[400];
  snprintf(dir, sizeof(dir), "%s/批量", cdir);
  int n = 0;
  TH_WAIT_UNTIL((n = count_files(dir)) == 1500, 180000, "1500 files in %s (%d)", dir, n);
  assert_int_equal(n, 1500);
  printf("1500 small files delivered in %.1f s\n", (double)(th_now_ms() - t0) / 1000);
  char ref[400];
  snprintf(ref, sizeof(ref), "%s/批量/表777.csv", pdir);
  snprintf(last, sizeof(last), "%s/批量/表777.csv", cdir);
  wait_same(last, ref, 5);
  json_t *e = wait_ledger("批量/表1500.csv", "delivered", 60);
  json_decref(e);
  e = wait_ledger("批量/表1.csv", "delivered", 60);
  json_decref(e);
}

/* 1 when the node's log says a folder subscription has fetched all. */
static int logged_fetched(const char *log) {
  FILE *f = fopen(log, "r");
  char line[600];
  int done = 0;
  while (f && fgets(line, sizeof(line), f))
    done |= strstr(line, "fsync  subscription") && strstr(line, ": fetched");
  if (f)
    fclose(f);
  return done;
}

/* Fetch (获取) into a folder by a node: a folder subscription with once =
 * true under the fetch authorization takes what is there and stops; the
 * refused and the infected files are not among what it takes. */
static void test_fetch_once_into_folder(void **state) {
  (void)state;
  char dir[300], conf[256], st[256];
  long long row;
  snprintf(dir, sizeof(dir), "%s/cons2-fetched", B.dir);
  sh("mkdir -p %s", dir);
  snprintf(tn_extra_conf, sizeof(tn_extra_conf),
           "scan = { signatures = \"%s\"; };\n"
           "subscriptions = ( { authorization = %lld; folder = \"%s\"; once = true; } );", sigs,
           auth_fetch, dir);
  pid_t pid = tn_start_node(P.cons2_admin, CONS2, "cons2-fnode", "", conf, st, &row);
  tn_extra_conf[0] = '\0';
  char got[600], ref[600], log[256];
  snprintf(got, sizeof(got), "%s/报表/2026/企业名录.docx", dir);
  wait_same(got, FIXTURES "/企业名录.docx", 60);
  snprintf(got, sizeof(got), "%s/大数据.csv", dir);
  snprintf(ref, sizeof(ref), "%s/大数据.csv", pdir);
  wait_same(got, ref, 120);
  tn_node_log("cons2-fnode", log);
  int done = 0;
  TH_WAIT_UNTIL((done = logged_fetched(log)) != 0, 300000, /* 1,500 small files too */
                "the fetch's end in %s", log);
  assert_true(done);
  snprintf(got, sizeof(got), "%s/申报材料.doc", dir);
  assert_int_not_equal(access(got, F_OK), 0);
  snprintf(got, sizeof(got), "%s/病毒测试.txt", dir);
  assert_int_not_equal(access(got, F_OK), 0);
  tn_stop(pid);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deliver_documents),
      cmocka_unit_test(test_disguised_file_refused),
      cmocka_unit_test(test_eicar_quarantined),
      cmocka_unit_test(test_versions_kept),
      cmocka_unit_test(test_kill_during_transfer),
      cmocka_unit_test(test_modified_while_sent),
      cmocka_unit_test(test_fetch_cli),
      cmocka_unit_test(test_many_files),
      cmocka_unit_test(test_fetch_once_into_folder),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
