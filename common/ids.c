#include "ids.h"

#include <string.h>

#include "error.h"

static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
static const int weights[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};

static int value_of(char ch) {
  const char *p = ch ? strchr(alphabet, ch) : NULL;
  return p ? (int)(p - alphabet) : -1;
}

char gdx_uscc_check_char(const char *s) {
  int sum = 0;
  for (int i = 0; i < 17; i++) {
    int v = value_of(s[i]);
    if (v < 0)
      return 0;
    sum += v * weights[i];
  }
  int c = 31 - sum % 31;
  return alphabet[c == 31 ? 0 : c];
}

int gdx_uscc_check(const char *code, const char **why) {
  const char *dummy;
  if (why == NULL)
    why = &dummy;
  if (code == NULL || strlen(code) != 18) {
    *why = "a unified social credit code has exactly 18 characters";
    return GDX_EINVAL;
  }
  for (int i = 0; i < 18; i++) {
    if (value_of(code[i]) < 0) {
      *why = "a unified social credit code uses only 0-9 and capital letters without I, O, S, V, Z";
      return GDX_EINVAL;
    }
  }
  if (gdx_uscc_check_char(code) != code[17]) {
    *why = "the check character (the 18th) does not match the first 17";
    return GDX_EINVAL;
  }
  return GDX_OK;
}
