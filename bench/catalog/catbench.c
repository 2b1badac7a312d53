/* gdx-bench-catalog: seeds a catalog of published entries for bench/catalog
 * and runs the catalog's search SQL directly against MariaDB, to compare with
 * the same searches through the broker.
 *
 *   gdx-bench-catalog seed --socket S --db D --entries N
 *   gdx-bench-catalog sql  --socket S --db D --clients C --seconds T --terms FILE
 *
 * Seeding writes what publishing writes (the entry, its published version
 * and its search grams) with prepared statements, in batches. The sql mode
 * issues the broker's two statements per search (the capped id scan, then the page)
 * from C threads with one connection each and prints
 *   SQL p50_ms=<n> p99_ms=<n> rps=<n> queries=<n>
 */
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grams.h"
#include "ids.h"

static const char *sock, *dbname, *terms_file;
static long entries = 100000, clients = 32, seconds = 10;

static MYSQL *connect_db(void) {
  MYSQL *my = mysql_init(NULL);
  mysql_optionsv(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  if (!mysql_real_connect(my, "localhost", "root", NULL, dbname, 0, sock, 0)) {
    fprintf(stderr, "connect: %s\n", mysql_error(my));
    exit(1);
  }
  return my;
}

static void run(MYSQL *my, const char *sql) {
  if (mysql_query(my, sql)) {
    fprintf(stderr, "%s: %s\n", sql, mysql_error(my));
    exit(1);
  }
}

static const char *const zh[] = {
    "人口", "户籍", "企业", "登记", "营业执照", "社保", "缴纳", "医保", "结算", "税务", "发票",
    "不动产", "产权", "交通", "违法", "驾驶证", "车辆", "公积金", "婚姻", "出生", "死亡", "教育",
    "学籍", "学位", "卫生", "许可", "食品", "经营", "药品", "环境", "监测", "排污", "气象", "预警",
    "水务", "用水", "电力", "用电", "燃气", "住房", "保障", "低保", "救助", "残疾", "养老", "就业",
    "失业", "培训", "人才", "专利", "商标", "信用", "黑名单", "处罚", "执法", "司法", "判决",
    "公证", "律师", "审计", "统计", "财政", "预算", "采购", "招标", "工程", "建设", "规划", "土地",
    "林业", "农业", "补贴", "渔业", "畜牧", "海关", "口岸", "出入境", "护照", "签证", "文化",
    "旅游", "体育", "场馆", "图书", "档案", "地名", "地址", "网格", "社区", "街道", "乡镇",
    "人防", "应急", "消防", "地震", "安全", "生产", "事故", "质量", "计量", "标准"};
static const char *const en[] = {
    "population", "household", "enterprise", "registration", "license", "social", "insurance",
    "medical", "settlement", "tax", "invoice", "property", "traffic", "violation", "driver",
    "vehicle", "housing", "fund", "marriage", "birth", "death", "education", "student", "degree",
    "health", "permit", "food", "business", "drug", "environment", "monitoring", "emission",
    "weather", "warning", "water", "power", "gas", "welfare", "relief", "disability", "pension",
    "employment", "training", "talent", "patent", "trademark", "credit", "penalty", "court",
    "notary", "audit", "statistics", "finance", "budget", "procurement", "tender", "construction",
    "planning", "land", "forestry", "agriculture", "subsidy", "customs", "passport", "visa",
    "culture", "tourism", "sports", "library", "archive", "address", "community", "street",
    "emergency", "fire", "earthquake", "safety", "accident", "quality", "standard", "api",
    "dataset", "report", "query", "verification", "record", "certificate", "catalog", "index",
    "daily", "monthly", "annual", "realtime", "open", "shared", "public", "city", "district"};
#define NZH (sizeof(zh) / sizeof(zh[0]))
#define NEN (sizeof(en) / sizeof(en[0]))

static unsigned long long rng = 0x9E3779B97F4A7C15ull;
static unsigned rnd(unsigned n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng % n);
}

static void words(char *out, size_t n, int count) {
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0; i < count; i++) {
    const char *w = (i % 2 == 0) ? zh[rnd(NZH)] : en[rnd(NEN)];
    used += (size_t)snprintf(out + used, n - used, "%s%s", i ? " " : "", w);
  }
}

/* The unified social credit code of seeded unit u, with its check character. */
static void unit_code(int u, char out[19]) {
  snprintf(out, 19, "91%06dMA%07d", 330100 + u, u);
  out[17] = gdx_uscc_check_char(out);
  out[18] = '\0';
}

static void bind_str(MYSQL_BIND *b, const char *s, unsigned long *len) {
  memset(b, 0, sizeof(*b));
  *len = strlen(s);
  b->buffer_type = MYSQL_TYPE_STRING;
  b->buffer = (void *)s;
  b->buffer_length = *len;
  b->length = len;
}

static void bind_int(MYSQL_BIND *b, long long *v) {
  memset(b, 0, sizeof(*b));
  b->buffer_type = MYSQL_TYPE_LONGLONG;
  b->buffer = v;
}

#define ENTRY_BATCH 100
#define GRAM_BATCH 500

/* A prepared multi-row INSERT of `rows` rows of `cols` placeholders. */
static MYSQL_STMT *prepare_batch(MYSQL *my, const char *head, int cols, int rows) {
  size_t cap = strlen(head) + (size_t)rows * ((size_t)cols * 2 + 4) + 16;
  char *sql = malloc(cap);
  size_t used = (size_t)snprintf(sql, cap, "%s", head);
  for (int r = 0; r < rows; r++) {
    used += (size_t)snprintf(sql + used, cap - used, r ? ",(" : "(");
    for (int c = 0; c < cols; c++)
      used += (size_t)snprintf(sql + used, cap - used, c ? ",?" : "?");
    used += (size_t)snprintf(sql + used, cap - used, ")");
  }
  MYSQL_STMT *st = mysql_stmt_init(my);
  if (mysql_stmt_prepare(st, sql, used)) {
    fprintf(stderr, "prepare: %s\n", mysql_stmt_error(st));
    exit(1);
  }
  free(sql);
  return st;
}

static void exec_batch(MYSQL_STMT *st, MYSQL_BIND *b) {
  if (mysql_stmt_bind_param(st, b) || mysql_stmt_execute(st)) {
    fprintf(stderr, "insert: %s\n", mysql_stmt_error(st));
    exit(1);
  }
}

typedef struct {
  long long id, unit;
  char code[40], name[256], summary[1024], cat[8], body[2048];
  const char *share;
  unsigned long l[9];
} seed_row;

static const char entry_head[] =
    "INSERT INTO catalog_entries (id, resource_code, provider_unit_id, status, version, body, "
    "published_body, name, summary, category, resource_type, format, sharing_type, publish_date, "
    "created_by, created_at, updated_at) VALUES ";

/* Each row: (id, code, unit, body, body, name, summary, cat, share) plus constants. */
static MYSQL_STMT *prepare_entries(MYSQL *my, int rows) {
  size_t cap = sizeof(entry_head) + (size_t)rows * 160;
  char *sql = malloc(cap);
  size_t used = (size_t)snprintf(sql, cap, "%s", entry_head);
  for (int r = 0; r < rows; r++)
    used += (size_t)snprintf(sql + used, cap - used,
                             "%s(?,?,?,'published',1,?,?,?,?,?,'structured','database',?,"
                             "UTC_DATE(),1,UTC_TIMESTAMP(6),UTC_TIMESTAMP(6))",
                             r ? "," : "");
  MYSQL_STMT *st = mysql_stmt_init(my);
  if (mysql_stmt_prepare(st, sql, used)) {
    fprintf(stderr, "prepare: %s\n", mysql_stmt_error(st));
    exit(1);
  }
  free(sql);
  return st;
}

static int seed(void) {
  MYSQL *my = connect_db();
  run(my, "SET unique_checks = 0, foreign_key_checks = 0");
  long long unit_ids[50];
  MYSQL_STMT *su = mysql_stmt_init(my);
  const char *qu = "INSERT IGNORE INTO units (code, name, roles, status, created_at, updated_at) "
                   "VALUES (?, ?, 'provider,consumer', 'active', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))";
  mysql_stmt_prepare(su, qu, strlen(qu));
  for (int u = 0; u < 50; u++) {
    char code[19], name[64];
    unit_code(u, code);
    snprintf(name, sizeof(name), "委办局%02d", u);
    MYSQL_BIND b[2];
    unsigned long l[2];
    bind_str(&b[0], code, &l[0]);
    bind_str(&b[1], name, &l[1]);
    exec_batch(su, b);
    unit_ids[u] = (long long)mysql_stmt_insert_id(su);
  }
  mysql_stmt_close(su);
  MYSQL_STMT *se = prepare_entries(my, ENTRY_BATCH);
  MYSQL_STMT *sg = prepare_batch(my, "INSERT IGNORE INTO catalog_grams (gram, entry_id) VALUES ", 2,
                                 GRAM_BATCH);
  static seed_row rows[ENTRY_BATCH];
  static MYSQL_BIND eb[ENTRY_BATCH * 9], gb[GRAM_BATCH * 2];
  static char gram_buf[GRAM_BATCH][GDX_GRAM_MAX];
  static long long gram_ids[GRAM_BATCH];
  static unsigned long gram_len[GRAM_BATCH];
  int ngram = 0;
  static const char *const shares[] = {"unconditional", "conditional", "conditional"};
  time_t t0 = time(NULL);
  run(my, "START TRANSACTION");
  for (long i = 0; i < entries;) {
    int n = 0;
    for (; n < ENTRY_BATCH && i < entries; n++, i++) {
      seed_row *r = &rows[n];
      /* built in locals first: snprintf from one field of r into another
       * would read and write the same object */
      char cat[8], name[256], summary[1024];
      snprintf(cat, sizeof(cat), "%u%02u%03u", 1 + rnd(5), 1 + rnd(20), 1 + rnd(50));
      words(name, sizeof(name), 3);
      words(summary, sizeof(summary), 10);
      r->id = i + 1;
      r->share = shares[rnd(3)];
      r->unit = unit_ids[rnd(50)];
      memcpy(r->cat, cat, sizeof(cat));
      memcpy(r->name, name, sizeof(name));
      memcpy(r->summary, summary, sizeof(summary));
      snprintf(r->code, sizeof(r->code), "%s/%06ld", cat, i + 1);
      snprintf(r->body, sizeof(r->body),
               "{\"name\":\"%s\",\"summary\":\"%s\",\"category\":\"%s\",\"resource_type\":"
               "\"structured\",\"format\":\"database\",\"data_items\":[{\"name\":\"id\",\"type\":"
               "\"string\"}],\"sharing_type\":\"%s\",\"sharing_condition\":\"%s\","
               "\"sharing_method\":\"table\",\"open_to_public\":false,\"update_cycle\":\"daily\","
               "\"attachment\":{\"kind\":\"table\",\"node\":\"n\",\"target\":\"t\"}}",
               name, summary, cat, r->share, strcmp(r->share, "conditional") == 0 ? "审批" : "");
      MYSQL_BIND *b = &eb[n * 9];
      bind_int(&b[0], &r->id);
      bind_str(&b[1], r->code, &r->l[1]);
      bind_int(&b[2], &r->unit);
      bind_str(&b[3], r->body, &r->l[3]);
      bind_str(&b[4], r->body, &r->l[4]);
      bind_str(&b[5], r->name, &r->l[5]);
      bind_str(&b[6], r->summary, &r->l[6]);
      bind_str(&b[7], r->cat, &r->l[7]);
      bind_str(&b[8], r->share, &r->l[8]);
    }
    if (n == ENTRY_BATCH) {
      exec_batch(se, eb);
    } else {
      MYSQL_STMT *tail = prepare_entries(my, n);
      exec_batch(tail, eb);
      mysql_stmt_close(tail);
    }
    for (int k = 0; k < n; k++) {
      char text[1400], grams[512][GDX_GRAM_MAX];
      snprintf(text, sizeof(text), "%s | %s", rows[k].name, rows[k].summary);
      size_t ng = gdx_catalog_grams(text, grams, 512);
      for (size_t g = 0; g < ng; g++) {
        memcpy(gram_buf[ngram], grams[g], GDX_GRAM_MAX);
        gram_ids[ngram] = rows[k].id;
        bind_str(&gb[2 * ngram], gram_buf[ngram], &gram_len[ngram]);
        bind_int(&gb[2 * ngram + 1], &gram_ids[ngram]);
        if (++ngram == GRAM_BATCH) {
          exec_batch(sg, gb);
          ngram = 0;
        }
      }
    }
    if (i % 10000 == 0 || i == entries) {
      run(my, "COMMIT");
      run(my, "START TRANSACTION");
      fprintf(stderr, "\rseeded %ld/%ld entries (%lds)", i, entries, (long)(time(NULL) - t0));
    }
  }
  if (ngram) {
    MYSQL_STMT *tail = prepare_batch(my, "INSERT IGNORE INTO catalog_grams (gram, entry_id) VALUES ",
                                     2, ngram);
    exec_batch(tail, gb);
    mysql_stmt_close(tail);
  }
  run(my, "COMMIT");
  fprintf(stderr, "\n");
  mysql_stmt_close(se);
  mysql_stmt_close(sg);
  run(my, "ANALYZE TABLE catalog_entries, catalog_grams");
  mysql_close(my);
  return 0;
}

/* ------------------------------------------------------------------ */

static char terms[64][128];
static int nterms;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static double *lat;
static size_t nlat, caplat;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The broker's search statements for a text query (see catalog/catalog.c):
 * the first gram drives, up to two more are checked, LIKE confirms; one scan
 * returns the first 101 matching ids newest first (the capped count), then
 * the page's 20 rows are read by primary key. */
static void search_sql(const char *q, char *ids_sql, size_t n, size_t *ng_out,
                       char (*grams)[GDX_GRAM_MAX]) {
  size_t ng = gdx_catalog_grams(q, grams, 32);
  if (ng > 3)
    ng = 3;
  char where[1024] = "g1.gram = ?";
  size_t used = strlen(where);
  for (size_t i = 1; i < ng; i++)
    used += (size_t)snprintf(where + used, sizeof(where) - used,
                             " AND EXISTS (SELECT 1 FROM catalog_grams gx WHERE gx.gram = ? AND "
                             "gx.entry_id = e.id)");
  snprintf(ids_sql, n,
           "SELECT e.id FROM catalog_grams g1 JOIN catalog_entries e ON e.id = g1.entry_id "
           "JOIN units u ON u.id = e.provider_unit_id WHERE %s AND e.version > 0 AND "
           "e.status <> 'withdrawn' AND (e.name LIKE ? OR e.summary LIKE ?) "
           "ORDER BY g1.entry_id DESC LIMIT 101",
           where);
  *ng_out = ng;
}

/* Runs the id scan; fills up to 20 page ids; returns how many. */
static int scan_ids(MYSQL *my, const char *sql, char (*grams)[GDX_GRAM_MAX], size_t ng,
                    const char *like, long long *page) {
  MYSQL_STMT *st = mysql_stmt_init(my);
  if (mysql_stmt_prepare(st, sql, strlen(sql))) {
    fprintf(stderr, "prepare: %s\n", mysql_stmt_error(st));
    exit(1);
  }
  MYSQL_BIND b[8];
  unsigned long l[8];
  size_t k = 0;
  for (size_t i = 0; i < ng; i++, k++)
    bind_str(&b[k], grams[i], &l[k]);
  bind_str(&b[k], like, &l[k]);
  k++;
  bind_str(&b[k], like, &l[k]);
  mysql_stmt_bind_param(st, b);
  long long id;
  MYSQL_BIND out;
  bind_int(&out, &id);
  if (mysql_stmt_execute(st) || mysql_stmt_bind_result(st, &out) || mysql_stmt_store_result(st)) {
    fprintf(stderr, "execute: %s\n", mysql_stmt_error(st));
    exit(1);
  }
  int n = 0;
  while (mysql_stmt_fetch(st) == 0)
    if (n < 20)
      page[n++] = id;
  mysql_stmt_free_result(st);
  mysql_stmt_close(st);
  return n;
}

static void fetch_page(MYSQL *my, long long *ids, int n) {
  char sql[1024];
  size_t used = (size_t)snprintf(
      sql, sizeof(sql),
      "SELECT e.id, e.resource_code, e.name, LEFT(e.summary, 200), u.code, u.name, e.category, "
      "e.resource_type, e.format, e.sharing_type, e.version, e.status, e.publish_date FROM "
      "catalog_entries e JOIN units u ON u.id = e.provider_unit_id WHERE e.id IN (");
  for (int i = 0; i < n; i++)
    used += (size_t)snprintf(sql + used, sizeof(sql) - used, i ? ",?" : "?");
  snprintf(sql + used, sizeof(sql) - used, ")");
  MYSQL_STMT *st = mysql_stmt_init(my);
  MYSQL_BIND b[20];
  for (int i = 0; i < n; i++)
    bind_int(&b[i], &ids[i]);
  if (mysql_stmt_prepare(st, sql, strlen(sql)) || mysql_stmt_bind_param(st, b) ||
      mysql_stmt_execute(st) || mysql_stmt_store_result(st)) {
    fprintf(stderr, "page: %s\n", mysql_stmt_error(st));
    exit(1);
  }
  mysql_stmt_free_result(st);
  mysql_stmt_close(st);
}

static void *sql_client(void *arg) {
  MYSQL *my = connect_db();
  double end = now_s() + (double)seconds;
  unsigned i = (unsigned)(size_t)arg;
  while (now_s() < end) {
    const char *q = terms[i++ % (unsigned)nterms];
    char ids_sql[2048], grams[32][GDX_GRAM_MAX], like[300];
    long long page[20];
    size_t ng;
    search_sql(q, ids_sql, sizeof(ids_sql), &ng, grams);
    snprintf(like, sizeof(like), "%%%s%%", q);
    double t0 = now_s();
    int n = scan_ids(my, ids_sql, grams, ng, like, page);
    if (n)
      fetch_page(my, page, n);
    double dt = now_s() - t0;
    pthread_mutex_lock(&mu);
    if (nlat == caplat) {
      caplat = caplat ? caplat * 2 : 4096;
      lat = realloc(lat, caplat * sizeof(double));
    }
    lat[nlat++] = dt;
    pthread_mutex_unlock(&mu);
  }
  mysql_close(my);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int sql_bench(void) {
  FILE *f = fopen(terms_file, "r");
  if (f == NULL) {
    perror(terms_file);
    return 1;
  }
  while (nterms < 64 && fgets(terms[nterms], sizeof(terms[0]), f)) {
    terms[nterms][strcspn(terms[nterms], "\r\n")] = '\0';
    if (terms[nterms][0])
      nterms++;
  }
  fclose(f);
  pthread_t th[256];
  double t0 = now_s();
  for (long i = 0; i < clients && i < 256; i++)
    pthread_create(&th[i], NULL, sql_client, (void *)(size_t)i);
  for (long i = 0; i < clients && i < 256; i++)
    pthread_join(th[i], NULL);
  double wall = now_s() - t0;
  qsort(lat, nlat, sizeof(double), cmp_double);
  printf("SQL p50_ms=%.2f p99_ms=%.2f rps=%.0f queries=%zu\n", lat[nlat / 2] * 1000,
         lat[(size_t)(nlat * 0.99)] * 1000, nlat / wall, nlat);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: gdx-bench-catalog seed|sql --socket S --db D [--entries N] "
                    "[--clients C] [--seconds T] [--terms FILE]\n");
    return 2;
  }
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--socket") == 0) sock = argv[i + 1];
    else if (strcmp(argv[i], "--db") == 0) dbname = argv[i + 1];
    else if (strcmp(argv[i], "--entries") == 0) entries = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--clients") == 0) clients = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--seconds") == 0) seconds = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--terms") == 0) terms_file = argv[i + 1];
  }
  mysql_library_init(0, NULL, NULL);
  if (strcmp(argv[1], "seed") == 0)
    return seed();
  if (strcmp(argv[1], "sql") == 0)
    return sql_bench();
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
