#include "migrate.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"

#define MAX_MIGRATIONS 1000
#define MAX_FILE (4 << 20)

typedef struct {
  int version;
  char name[256];
  char sha[65];
} mfile;

static int cmp_version(const void *a, const void *b) {
  return ((const mfile *)a)->version - ((const mfile *)b)->version;
}

/* NNN_name.sql with name in [a-z0-9_] */
static int parse_name(const char *n, int *version) {
  size_t len = strlen(n);
  if (len < 9 || strcmp(n + len - 4, ".sql") != 0)
    return -1;
  for (int i = 0; i < 3; i++)
    if (n[i] < '0' || n[i] > '9')
      return -1;
  if (n[3] != '_')
    return -1;
  for (size_t i = 4; i < len - 4; i++)
    if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '_'))
      return -1;
  *version = (n[0] - '0') * 100 + (n[1] - '0') * 10 + (n[2] - '0');
  return 0;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *buf = malloc(MAX_FILE + 1);
  size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
  fclose(f);
  if (buf == NULL || n > MAX_FILE) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

static void sha256_hex(const char *data, size_t len, char out[65]) {
  unsigned char md[32];
  unsigned mdlen = 0;
  EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int list_dir(const char *dir, mfile *files, int *count, char *err, size_t errlen) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    snprintf(err, errlen, "%s: cannot open migrations folder: %s", dir, strerror(errno));
    return GDX_ECONFIG;
  }
  int n = 0, rc = GDX_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && rc == GDX_OK) {
    if (e->d_name[0] == '.')
      continue;
    int v;
    if (parse_name(e->d_name, &v) != 0) {
      snprintf(err, errlen, "%s/%s: migration files must be named NNN_name.sql", dir,
               e->d_name);
      rc = GDX_ECONFIG;
    } else if (n == MAX_MIGRATIONS) {
      snprintf(err, errlen, "%s: too many migrations", dir);
      rc = GDX_ECONFIG;
    } else {
      files[n].version = v;
      snprintf(files[n].name, sizeof(files[n].name), "%s", e->d_name);
      n++;
    }
  }
  closedir(d);
  if (rc)
    return rc;
  qsort(files, (size_t)n, sizeof(mfile), cmp_version);
  for (int i = 1; i < n; i++) {
    if (files[i].version == files[i - 1].version) {
      snprintf(err, errlen, "%s: two migrations with number %03d (%s, %s)", dir,
               files[i].version, files[i - 1].name, files[i].name);
      return GDX_ECONFIG;
    }
  }
  *count = n;
  return GDX_OK;
}

static int run_sql(MYSQL *my, const char *sql, size_t len, char *err, size_t errlen,
                   const char *what) {
  if (mysql_real_query(my, sql, (unsigned long)len) != 0)
    goto fail;
  for (;;) {
    MYSQL_RES *res = mysql_store_result(my);
    if (res)
      mysql_free_result(res);
    int next = mysql_next_result(my);
    if (next == -1)
      return GDX_OK;
    if (next > 0)
      goto fail;
  }
fail:
  snprintf(err, errlen, "%s: %s", what, mysql_error(my));
  return GDX_EDB;
}

/* The recorded sha of (component, version), or "" when not applied. */
static int load_applied(MYSQL *my, const char *component, mfile *rows, int *count,
                        char *err, size_t errlen) {
  MYSQL_STMT *st = mysql_stmt_init(my);
  static const char q[] = "SELECT version, name, sha256 FROM gdx_schema_migrations "
                          "WHERE component = ? ORDER BY version";
  MYSQL_BIND in = {0}, outb[3];
  unsigned long clen = strlen(component), nlen = 0, slen = 0;
  int version = 0;
  int n = 0, rc = GDX_OK;
  mfile cur;
  memset(outb, 0, sizeof(outb));
  in.buffer_type = MYSQL_TYPE_STRING;
  in.buffer = (void *)component;
  in.buffer_length = clen;
  in.length = &clen;
  outb[0].buffer_type = MYSQL_TYPE_LONG;
  outb[0].buffer = &version;
  outb[1].buffer_type = MYSQL_TYPE_STRING;
  outb[1].buffer = cur.name;
  outb[1].buffer_length = sizeof(cur.name) - 1;
  outb[1].length = &nlen;
  outb[2].buffer_type = MYSQL_TYPE_STRING;
  outb[2].buffer = cur.sha;
  outb[2].buffer_length = sizeof(cur.sha) - 1;
  outb[2].length = &slen;
  if (st == NULL || mysql_stmt_prepare(st, q, sizeof(q) - 1) || mysql_stmt_bind_param(st, &in) ||
      mysql_stmt_execute(st) || mysql_stmt_bind_result(st, outb) || mysql_stmt_store_result(st)) {
    snprintf(err, errlen, "reading gdx_schema_migrations: %s",
             st ? mysql_stmt_error(st) : mysql_error(my));
    rc = GDX_EDB;
  }
  while (rc == GDX_OK && mysql_stmt_fetch(st) == 0 && n < MAX_MIGRATIONS) {
    cur.version = version;
    cur.name[nlen < sizeof(cur.name) ? nlen : sizeof(cur.name) - 1] = '\0';
    cur.sha[slen < sizeof(cur.sha) ? slen : sizeof(cur.sha) - 1] = '\0';
    rows[n++] = cur;
  }
  if (st)
    mysql_stmt_close(st);
  *count = n;
  return rc;
}

static int record(MYSQL *my, const char *component, const mfile *f, char *err, size_t errlen) {
  static const char q[] = "INSERT INTO gdx_schema_migrations "
                          "(component, version, name, sha256, applied_at) "
                          "VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))";
  MYSQL_STMT *st = mysql_stmt_init(my);
  MYSQL_BIND b[4];
  unsigned long l0 = strlen(component), l2 = strlen(f->name), l3 = strlen(f->sha);
  int version = f->version;
  memset(b, 0, sizeof(b));
  b[0] = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_STRING, .buffer = (void *)component,
                      .buffer_length = l0, .length = &l0};
  b[1] = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_LONG, .buffer = &version};
  b[2] = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_STRING, .buffer = (void *)f->name,
                      .buffer_length = l2, .length = &l2};
  b[3] = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_STRING, .buffer = (void *)f->sha,
                      .buffer_length = l3, .length = &l3};
  int rc = GDX_OK;
  if (st == NULL || mysql_stmt_prepare(st, q, sizeof(q) - 1) || mysql_stmt_bind_param(st, b) ||
      mysql_stmt_execute(st)) {
    snprintf(err, errlen, "recording migration %s: %s", f->name,
             st ? mysql_stmt_error(st) : mysql_error(my));
    rc = GDX_EDB;
  }
  if (st)
    mysql_stmt_close(st);
  return rc;
}

/* The text of migration f of dir (its path into path), its checksum into
 * f->sha; NULL with err when it cannot be read. */
static char *load_one(const char *dir, mfile *f, char *path, size_t pathlen, size_t *len,
                      char *err, size_t errlen) {
  snprintf(path, pathlen, "%s/%s", dir, f->name);
  char *sql = read_file(path, len);
  if (sql == NULL)
    snprintf(err, errlen, "%s: cannot read (or larger than %d bytes)", path, MAX_FILE);
  else
    sha256_hex(sql, *len, f->sha);
  return sql;
}

static int migrate_locked(MYSQL *my, const char *component, const char *dir, mfile *files,
                          mfile *done, int *applied, char *err, size_t errlen) {
  static const char create[] =
      "CREATE TABLE IF NOT EXISTS gdx_schema_migrations ("
      " component VARCHAR(64) NOT NULL, version INT NOT NULL,"
      " name VARCHAR(255) NOT NULL, sha256 CHAR(64) NOT NULL,"
      " applied_at DATETIME(6) NOT NULL, PRIMARY KEY (component, version))"
      " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
  int nfiles = 0, ndone = 0;
  int rc = run_sql(my, create, sizeof(create) - 1, err, errlen, "creating gdx_schema_migrations");
  if (!rc)
    rc = list_dir(dir, files, &nfiles, err, errlen);
  if (!rc)
    rc = load_applied(my, component, done, &ndone, err, errlen);
  if (rc)
    return rc;

  for (int i = 0; i < nfiles; i++) {
    char path[4096];
    size_t len;
    char *sql = load_one(dir, &files[i], path, sizeof(path), &len, err, errlen);
    if (sql == NULL)
      return GDX_ECONFIG;
    const mfile *rec = NULL;
    for (int k = 0; k < ndone; k++)
      if (done[k].version == files[i].version)
        rec = &done[k];
    if (rec) {
      free(sql);
      if (strcmp(rec->sha, files[i].sha) != 0) {
        snprintf(err, errlen,
                 "%s was changed after it was applied (recorded sha256 %.12s…, file has "
                 "%.12s…): restore it and put the change in a new migration",
                 path, rec->sha, files[i].sha);
        return GDX_ECONFIG;
      }
      continue;
    }
    char what[4200];
    snprintf(what, sizeof(what), "applying %s", path);
    rc = run_sql(my, sql, len, err, errlen, what);
    free(sql);
    if (!rc)
      rc = record(my, component, &files[i], err, errlen);
    if (rc)
      return rc;
    gdx_log_info("db", "applied migration %s/%s", component, files[i].name);
    if (applied)
      (*applied)++;
  }
  for (int k = 0; k < ndone; k++) {
    int known = 0;
    for (int i = 0; i < nfiles; i++)
      known |= files[i].version == done[k].version;
    if (!known) {
      snprintf(err, errlen,
               "the database has migration %s/%s, which this build does not have: "
               "is this binary older than the schema?",
               component, done[k].name);
      return GDX_ECONFIG;
    }
  }
  return GDX_OK;
}

int gdx_migrate_check(const char *dir, char *err, size_t errlen) {
  mfile *files = calloc(MAX_MIGRATIONS, sizeof(mfile));
  int n = 0;
  int rc = files ? list_dir(dir, files, &n, err, errlen) : GDX_ENOMEM;
  for (int i = 0; !rc && i < n; i++) {
    char path[4096];
    size_t len;
    char *sql = load_one(dir, &files[i], path, sizeof(path), &len, err, errlen);
    rc = sql ? GDX_OK : GDX_ECONFIG;
    free(sql);
  }
  free(files);
  return rc;
}

int gdx_migrate_on(MYSQL *my, const char *component, const char *dir, int *applied, char *err,
                   size_t errlen) {
  if (applied)
    *applied = 0;
  mfile *files = calloc(MAX_MIGRATIONS, sizeof(mfile));
  mfile *done = calloc(MAX_MIGRATIONS, sizeof(mfile));
  int rc = files && done ? GDX_OK : GDX_ENOMEM;
  /* The lock name is a constant per component: no user input in SQL. */
  char lock[128];
  snprintf(lock, sizeof(lock), "SELECT GET_LOCK('gdx_migrate_%.64s', 60)", component);
  for (const char *p = component; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || *p == '_' || *p == '-'))
      rc = GDX_EINVAL;
  if (rc == GDX_EINVAL)
    snprintf(err, errlen, "invalid component name");
  if (!rc && mysql_set_server_option(my, MYSQL_OPTION_MULTI_STATEMENTS_ON) != 0) {
    snprintf(err, errlen, "allowing several statements per migration: %s", mysql_error(my));
    rc = GDX_EDB;
  }
  if (!rc)
    rc = run_sql(my, lock, strlen(lock), err, errlen, "taking the migration lock");
  if (!rc) {
    rc = migrate_locked(my, component, dir, files, done, applied, err, errlen);
    char unlock[128];
    snprintf(unlock, sizeof(unlock), "SELECT RELEASE_LOCK('gdx_migrate_%.64s')", component);
    char ignore[64];
    run_sql(my, unlock, strlen(unlock), ignore, sizeof(ignore), "release");
  }
  mysql_set_server_option(my, MYSQL_OPTION_MULTI_STATEMENTS_OFF);
  free(files);
  free(done);
  return rc;
}

int gdx_migrate(const gdx_db_options *opts, const char *component, const char *dir,
                int *applied, char *err, size_t errlen) {
  if (applied)
    *applied = 0;
  MYSQL *my = gdx_db_connect(opts, 1, err, errlen);
  if (my == NULL)
    return GDX_EDB;
  int rc = gdx_migrate_on(my, component, dir, applied, err, errlen);
  mysql_close(my);
  return rc;
}
