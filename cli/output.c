#include "output.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "cli.h"

/* Display width of UTF-8 text (CJK counts 2). */
static int text_width(const char *s) {
  mbstate_t st;
  memset(&st, 0, sizeof(st));
  int w = 0;
  size_t n = strlen(s);
  while (n > 0) {
    wchar_t wc;
    size_t k = mbrtowc(&wc, s, n, &st);
    if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
      w++, s++, n--;
      memset(&st, 0, sizeof(st));
      continue;
    }
    int cw = wcwidth(wc);
    w += cw > 0 ? cw : 1;
    s += k;
    n -= k;
  }
  return w;
}

static void cell_text(json_t *v, char *out, size_t n) {
  if (json_is_string(v))
    snprintf(out, n, "%s", json_string_value(v));
  else if (json_is_true(v))
    snprintf(out, n, "yes");
  else if (json_is_false(v))
    snprintf(out, n, "no");
  else if (json_is_integer(v))
    snprintf(out, n, "%lld", (long long)json_integer_value(v));
  else if (json_is_array(v)) {
    out[0] = '\0';
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      size_t used = strlen(out);
      snprintf(out + used, n - used, "%s%s", i ? "," : "",
               json_is_string(e) ? json_string_value(e) : "…");
    }
  } else if (json_is_null(v) || v == NULL)
    snprintf(out, n, "-");
  else {
    char *d = json_dumps(v, JSON_COMPACT);
    snprintf(out, n, "%s", d ? d : "");
    free(d);
  }
  for (char *p = out; *p; p++)
    if ((unsigned char)*p < 0x20)
      *p = ' ';
}

/* The key of a "key:Heading" column. */
static void column_key(const char *col, char key[64]) {
  snprintf(key, 64, "%.*s", (int)(strchr(col, ':') - col), col);
}

#define TABLE_MAX_COLS 16

void cli_table(json_t *items, const char *const *cols, size_t ncols) {
  assert(ncols <= TABLE_MAX_COLS); /* the column lists are the commands' own */
  size_t nrows = json_array_size(items);
  int width[TABLE_MAX_COLS] = {0};
  char head[TABLE_MAX_COLS][64];
  for (size_t c = 0; c < ncols; c++) {
    const char *colon = strchr(cols[c], ':');
    snprintf(head[c], sizeof(head[c]), "%s", colon + 1);
    width[c] = text_width(head[c]);
  }
  char cell[512];
  for (size_t r = 0; r < nrows; r++)
    for (size_t c = 0; c < ncols; c++) {
      char key[64];
      column_key(cols[c], key);
      cell_text(json_object_get(json_array_get(items, r), key), cell, sizeof(cell));
      int w = text_width(cell);
      if (w > width[c])
        width[c] = w > 60 ? 60 : w;
    }
  for (size_t c = 0; c < ncols; c++)
    printf("%s%-*s", c ? "  " : "", width[c], head[c]);
  printf("\n");
  for (size_t r = 0; r < nrows; r++) {
    for (size_t c = 0; c < ncols; c++) {
      char key[64];
      column_key(cols[c], key);
      cell_text(json_object_get(json_array_get(items, r), key), cell, sizeof(cell));
      int pad = width[c] - text_width(cell);
      printf("%s%s%*s", c ? "  " : "", cell, c + 1 < ncols && pad > 0 ? pad : 0, "");
    }
    printf("\n");
  }
  printf("(%zu)\n", nrows);
}

void cli_fields(json_t *o, const char *const *cols, size_t ncols) {
  char cell[1024];
  for (size_t c = 0; c < ncols; c++) {
    char key[64];
    column_key(cols[c], key);
    cell_text(json_object_get(o, key), cell, sizeof(cell));
    printf("%-22s %s\n", strchr(cols[c], ':') + 1, cell);
  }
}

int cli_emit(json_t *j, const char *const *cols, size_t ncols, int is_list) {
  if (cli_opts.json) {
    json_dumpf(j, stdout, JSON_INDENT(2));
    printf("\n");
  } else if (is_list) {
    cli_table(json_object_get(j, "items"), cols, ncols);
  } else {
    cli_fields(j, cols, ncols);
  }
  json_decref(j);
  return CLI_EX_OK;
}

