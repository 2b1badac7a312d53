#include "scan.h"

#include <clamav.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"


struct gdx_scanner {
  struct cl_engine *engine;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static cl_error_t init_rc;

static void init(void) { init_rc = cl_init(CL_INIT_DEFAULT); }

int gdx_scanner_new(const char *dbdir, gdx_scanner **out, unsigned *signatures, char *err,
                    size_t n) {
  pthread_once(&once, init);
  if (init_rc != CL_SUCCESS) {
    snprintf(err, n, "libclamav: %s", cl_strerror(init_rc));
    return GDX_EIO;
  }
  gdx_scanner *s = calloc(1, sizeof(*s));
  if (s == NULL || (s->engine = cl_engine_new()) == NULL) {
    free(s);
    return GDX_ENOMEM;
  }
  unsigned sigs = 0;
  cl_engine_set_num(s->engine, CL_ENGINE_MAX_FILESIZE, GDX_SCAN_MAX_BYTES);
  cl_engine_set_num(s->engine, CL_ENGINE_MAX_SCANSIZE, GDX_SCAN_MAX_BYTES);
  cl_error_t rc = cl_load(dbdir, s->engine, &sigs, CL_DB_STDOPT);
  if (rc == CL_SUCCESS && sigs == 0) {
    snprintf(err, n, "%s: no virus signatures there", dbdir);
    gdx_scanner_free(s);
    return GDX_ECONFIG;
  }
  if (rc == CL_SUCCESS)
    rc = cl_engine_compile(s->engine);
  if (rc != CL_SUCCESS) {
    snprintf(err, n, "%s: loading the virus signatures failed: %s", dbdir, cl_strerror(rc));
    gdx_scanner_free(s);
    return GDX_ECONFIG;
  }
  if (signatures)
    *signatures = sigs;
  *out = s;
  return GDX_OK;
}

void gdx_scanner_free(gdx_scanner *s) {
  if (s == NULL)
    return;
  if (s->engine)
    cl_engine_free(s->engine);
  free(s);
}

int gdx_scanner_scan(const gdx_scanner *s, const char *path, char *name, size_t n, char *err,
                     size_t errlen) {
  struct cl_scan_options o;
  memset(&o, 0, sizeof(o));
  o.parse = ~0u;                                 /* inside archives and documents */
  o.heuristic = CL_SCAN_HEURISTIC_EXCEEDS_MAX;   /* too large to scan: reported */
  const char *virus = NULL;
  unsigned long scanned = 0;
  cl_error_t rc = cl_scanfile(path, &virus, &scanned, s->engine, &o);
  if (rc == CL_CLEAN)
    return GDX_SCAN_CLEAN;
  if (rc == CL_VIRUS) {
    snprintf(name, n, "%s", virus ? virus : "unknown");
    return GDX_SCAN_INFECTED;
  }
  snprintf(err, errlen, "scanning %s failed: %s", path, cl_strerror(rc));
  return GDX_EIO;
}
