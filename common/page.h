/* A snapshot page or change batch of the table exchange as the consumer's
 * node applies it.
 *
 * A page is up to 10,000 rows of JSON text ({"columns": …, "rows": [[…],
 * …], "last": …, "done": …, …}). Parsed into a jansson tree it costs one
 * allocation per value, which made the consumer's node the slowest part of
 * a full sync; here the rows are parsed straight out of the text into one
 * flat array of values, unescaped in place in the page's own buffer. The
 * other members are small and parsed with jansson into `meta`.
 *
 * Row values are strings or null (the provider sends every value as text);
 * anything else in "rows" is refused, as is text that is not JSON.
 */
#ifndef GDX_PAGE_H
#define GDX_PAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *text;     /* owned: the page's bytes, which the values point into */
  size_t nrows;
  int ncols;      /* values per row (0 when there are no rows) */
  const char **v; /* row values (nrows * ncols, row by row), then change
                     values; NULL for a null */
  size_t *len;    /* their lengths */
  /* A change batch ("changes": [{"seq": N, "op": "U", "row": […]} or
   * {"seq": N, "op": "D", "key": […]}, …]): per change its op, the index
   * of its first value in v and how many it has. */
  size_t nchanges;
  char *ops;
  size_t *first;
  int *width;
  json_t *meta;   /* every member but "rows" and "changes" */
} gdx_page;

/* Takes over text (malloc'd, len bytes, NUL-terminated) whatever happens.
 * It must hold "rows" or "changes" (not both). GDX_EINVAL with err filled
 * when it is not such a page. */
int gdx_page_parse(gdx_page *p, char *text, size_t len, char *err, size_t errlen);
void gdx_page_free(gdx_page *p);
/* The ledger's checksum of the page's rows or changes (common/rowsum.h,
 * the same as gdx_rowsum_batch over the page as JSON). */
uint64_t gdx_page_rowsum(const gdx_page *p);

#endif
