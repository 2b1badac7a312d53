/* libFuzzer target for snapshot pages (common/page.c), which a consumer's
 * node parses from what the broker relays: any input either parses into
 * values that are what they claim (NUL-terminated, of their length, rows
 * of one width) or is refused with a reason and nothing kept. Any crash,
 * leak or sanitizer report is a bug. Run: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "page.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  gdx_page p;
  char err[200];
  if (gdx_page_parse(&p, text, size, err, sizeof(err)) != GDX_OK) {
    if (p.text != NULL || err[0] == '\0')
      abort(); /* refused pages keep nothing and say why */
    return 0;
  }
  for (size_t i = 0; i < p.nrows * (size_t)p.ncols; i++)
    if (p.v[i] && strlen(p.v[i]) != p.len[i])
      abort();
  (void)gdx_page_rowsum(&p);
  gdx_page_free(&p);
  return 0;
}
