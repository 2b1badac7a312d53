#include "grams.h"

#include <string.h>

/* Decodes one UTF-8 code point; returns its length (1 for a bad byte). */
static size_t utf8_next(const unsigned char *s, unsigned *cp) {
  if (s[0] < 0x80) {
    *cp = s[0];
    return 1;
  }
  if ((s[0] & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
    *cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    return 2;
  }
  if ((s[0] & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
    *cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    return 3;
  }
  if ((s[0] & 0xF8) == 0xF0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
      (s[3] & 0xC0) == 0x80) {
    *cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    return 4;
  }
  *cp = 0xFFFD;
  return 1;
}

static int is_cjk(unsigned cp) {
  return (cp >= 0x3400 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
         (cp >= 0x20000 && cp <= 0x2FFFF);
}

static int is_latin(unsigned cp) {
  return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
}

static size_t add(char (*grams)[GDX_GRAM_MAX], size_t n, size_t max, const char *g, size_t len) {
  if (n == max || len >= GDX_GRAM_MAX)
    return n;
  for (size_t i = 0; i < n; i++)
    if (strlen(grams[i]) == len && memcmp(grams[i], g, len) == 0)
      return n;
  memcpy(grams[n], g, len);
  grams[n][len] = '\0';
  return n + 1;
}

size_t gdx_catalog_grams(const char *text, char (*grams)[GDX_GRAM_MAX], size_t max) {
  const unsigned char *s = (const unsigned char *)text;
  size_t n = 0;
  /* the previous two characters of the current run, as bytes */
  char prev[2][5];
  size_t prevlen[2] = {0, 0};
  int run = 0; /* 0 none, 1 CJK, 2 Latin */
  int runlen = 0;
  while (*s) {
    unsigned cp;
    size_t len = utf8_next(s, &cp);
    int kind = is_cjk(cp) ? 1 : is_latin(cp) ? 2 : 0;
    char ch[5];
    memcpy(ch, s, len);
    if (kind == 2 && ch[0] >= 'A' && ch[0] <= 'Z')
      ch[0] = (char)(ch[0] - 'A' + 'a');
    s += len;
    if (kind != run)
      runlen = 0;
    run = kind;
    if (kind == 0)
      continue;
    char g[GDX_GRAM_MAX];
    if (kind == 1 && runlen >= 1) {
      memcpy(g, prev[1], prevlen[1]);
      memcpy(g + prevlen[1], ch, len);
      n = add(grams, n, max, g, prevlen[1] + len);
    } else if (kind == 2 && runlen >= 2) {
      g[0] = prev[0][0];
      g[1] = prev[1][0];
      g[2] = ch[0];
      n = add(grams, n, max, g, 3);
    }
    memcpy(prev[0], prev[1], sizeof(prev[0]));
    prevlen[0] = prevlen[1];
    memcpy(prev[1], ch, len);
    prevlen[1] = len;
    runlen++;
  }
  return n;
}
