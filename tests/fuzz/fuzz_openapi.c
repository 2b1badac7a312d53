/* libFuzzer target for OpenAPI texts (common/openapi.c), which providers
 * write and the catalog reads: any input is either refused with a reason
 * and nothing kept, or read into operations whose stored form loads back
 * to the same form and each of which matches a call to itself. The same
 * input is also tried as a stored form, which must load strictly or be
 * refused the same way. Any crash, leak or sanitizer report is a bug.
 * Run: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "openapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* store → load → store gives the same text. */
static void round_trip(const gdx_openapi *o) {
  char *a, *b, err[300];
  size_t alen;
  gdx_openapi *back;
  if (gdx_openapi_store(o, &a, &alen) != GDX_OK)
    abort();
  if (gdx_openapi_load(a, alen, &back, err, sizeof(err)) != GDX_OK)
    abort(); /* what gdx stores, gdx loads */
  if (gdx_openapi_store(back, &b, NULL) != GDX_OK || strcmp(a, b) != 0)
    abort();
  free(a);
  free(b);
  gdx_openapi_free(back);
}

/* Each operation allows a call to its own template with every {variable}
 * filled in. */
static void self_match(const gdx_openapi *o) {
  for (size_t i = 0; i < o->nops; i++) {
    const gdx_openapi_op *op = &o->ops[i], *got = NULL;
    char path[2 * GDX_OPENAPI_MAX_PATH];
    size_t n = 0;
    for (const char *c = op->path; *c; c++) {
      if (*c == '{') {
        c = strchr(c, '}');
        path[n++] = 'x';
        continue;
      }
      path[n++] = *c;
    }
    path[n] = '\0';
    if (gdx_openapi_match(o, gdx_openapi_method_name(op->method), path, &got) != 0 || got == NULL ||
        got->method != op->method)
      abort();
    if (op->method == GDX_OPENAPI_GET && gdx_openapi_match(o, "HEAD", path, NULL) != 0)
      abort();
  }
}

static void check(int rc, gdx_openapi *o, const char *err) {
  if (rc != GDX_OK) {
    if (o != NULL || err[0] == '\0')
      abort(); /* refused texts keep nothing and say why */
    return;
  }
  if (o == NULL || o->nops == 0 || o->nops > GDX_OPENAPI_MAX_OPS)
    abort();
  round_trip(o);
  self_match(o);
  gdx_openapi_free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gdx_openapi *o;
  char err[300];
  int rc = gdx_openapi_parse((const char *)data, size, &o, err, sizeof(err));
  check(rc, o, err);
  rc = gdx_openapi_load((const char *)data, size, &o, err, sizeof(err));
  check(rc, o, err);
  return 0;
}
