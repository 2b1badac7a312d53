#include "fileguard.h"

#include <magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define NAME_MAX_BYTES 1024
#define COMPONENT_MAX 255

/* Length of the UTF-8 sequence at s (at most n bytes), 0 when invalid:
 * overlong forms, surrogates and code points past U+10FFFF included. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned min, cp;
  if (c < 0x80)
    return 1;
  if ((c & 0xe0) == 0xc0)
    len = 2, min = 0x80, cp = c & 0x1f;
  else if ((c & 0xf0) == 0xe0)
    len = 3, min = 0x800, cp = c & 0x0f;
  else if ((c & 0xf8) == 0xf0)
    len = 4, min = 0x10000, cp = c & 0x07;
  else
    return 0;
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

int gdx_file_name_check(const char *rel, char *why, size_t n) {
  size_t total = strlen(rel);
  if (total == 0 || total > NAME_MAX_BYTES) {
    snprintf(why, n, "a file name is 1 to %d bytes", NAME_MAX_BYTES);
    return GDX_EINVAL;
  }
  if (rel[0] == '/') {
    snprintf(why, n, "an absolute path is not a file name in the folder");
    return GDX_EINVAL;
  }
  const unsigned char *s = (const unsigned char *)rel;
  size_t comp = 0; /* bytes of the current component */
  for (size_t i = 0; i <= total;) {
    if (i == total || s[i] == '/') {
      const char *start = rel + i - comp;
      if (comp == 0 || (comp == 1 && start[0] == '.') ||
          (comp == 2 && start[0] == '.' && start[1] == '.')) {
        snprintf(why, n, "empty, \".\" and \"..\" parts are not allowed in a file name");
        return GDX_EINVAL;
      }
      if (comp > COMPONENT_MAX) {
        snprintf(why, n, "a part of a file name is at most %d bytes", COMPONENT_MAX);
        return GDX_EINVAL;
      }
      comp = 0;
      i++;
      continue;
    }
    if (s[i] < 0x20 || s[i] == 0x7f) {
      snprintf(why, n, "a file name has a control character (byte %zu)", i);
      return GDX_EINVAL;
    }
    if (s[i] == '\\') {
      snprintf(why, n, "a file name has a backslash (byte %zu)", i);
      return GDX_EINVAL;
    }
    size_t len = utf8_len(s + i, total - i);
    if (len == 0) {
      snprintf(why, n, "a file name is not valid UTF-8 (byte %zu)", i);
      return GDX_EINVAL;
    }
    i += len;
    comp += len;
  }
  return GDX_OK;
}

struct gdx_fileguard {
  magic_t m;
};

int gdx_fileguard_new(gdx_fileguard **out, char *err, size_t n) {
  gdx_fileguard *g = calloc(1, sizeof(*g));
  if (g == NULL)
    return GDX_ENOMEM;
  g->m = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
  if (g->m == NULL || magic_load(g->m, NULL) != 0) {
    snprintf(err, n, "libmagic: %s",
             g->m && magic_error(g->m) ? magic_error(g->m) : "cannot load its database");
    gdx_fileguard_free(g);
    return GDX_ECONFIG;
  }
  *out = g;
  return GDX_OK;
}

void gdx_fileguard_free(gdx_fileguard *g) {
  if (g == NULL)
    return;
  if (g->m)
    magic_close(g->m);
  free(g);
}

enum { K_OLE, K_OOXML_WORD, K_TEXT, K_CSV, K_XML, K_HTML };

static const struct {
  const char *ext;
  int kind;
} formats[] = {
    {"doc", K_OLE}, {"xls", K_OLE},   {"ppt", K_OLE}, {"wps", K_OLE},  {"et", K_OLE},
    {"docx", K_OOXML_WORD}, {"txt", K_TEXT}, {"csv", K_CSV}, {"xml", K_XML}, {"html", K_HTML},
};

static int one_of(const char *mime, const char *const *list) {
  for (; *list; list++)
    if (strcmp(mime, *list) == 0)
      return 1;
  return 0;
}

static int contains(const void *head, size_t n, const char *s) {
  size_t k = strlen(s);
  const char *p = head;
  for (size_t i = 0; i + k <= n; i++)
    if (p[i] == s[0] && memcmp(p + i, s, k) == 0)
      return 1;
  return 0;
}

/* What a MIME type says in a refusal. */
static const char *kind_of(const char *mime) {
  static const char *const exe[] = {"application/x-executable", "application/x-pie-executable",
                                    "application/x-sharedlib", "application/x-dosexec",
                                    "application/x-mach-binary", "application/x-msdownload",
                                    NULL};
  if (one_of(mime, exe))
    return "an executable";
  if (strncmp(mime, "image/", 6) == 0)
    return "an image";
  if (strcmp(mime, "application/zip") == 0)
    return "a zip archive";
  if (strncmp(mime, "text/", 5) == 0)
    return "text";
  return "a file";
}

static int fits(int kind, const char *mime, const void *head, size_t n) {
  static const char *const ole[] = {"application/msword", "application/vnd.ms-excel",
                                    "application/vnd.ms-powerpoint", "application/x-ole-storage",
                                    "application/CDFV2", "application/vnd.ms-office", NULL};
  static const char *const xml[] = {"text/xml", "application/xml", NULL};
  static const char *const csv[] = {"text/csv", "text/plain", "application/csv", NULL};
  switch (kind) {
  case K_OLE: return one_of(mime, ole);
  case K_OOXML_WORD:
    return strcmp(mime,
                  "application/vnd.openxmlformats-officedocument.wordprocessingml.document") == 0 ||
           (strcmp(mime, "application/zip") == 0 && contains(head, n, "[Content_Types].xml") &&
            contains(head, n, "word/"));
  case K_TEXT: return strncmp(mime, "text/", 5) == 0 && strcmp(mime, "text/html") != 0;
  case K_CSV: return one_of(mime, csv);
  case K_XML: return one_of(mime, xml);
  case K_HTML: return strcmp(mime, "text/html") == 0;
  }
  return 0;
}

int gdx_fileguard_check(gdx_fileguard *g, const char *name, const void *head, size_t n,
                        const char **format, char *why, size_t whylen) {
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  const char *dot = strrchr(base, '.');
  char ext[8] = "";
  if (dot && dot != base && strlen(dot + 1) < sizeof(ext))
    for (size_t i = 0; dot[1 + i]; i++)
      ext[i] = (char)(dot[1 + i] >= 'A' && dot[1 + i] <= 'Z' ? dot[1 + i] + 32 : dot[1 + i]);
  int kind = -1;
  for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
    if (strcmp(ext, formats[i].ext) == 0) {
      kind = formats[i].kind;
      *format = formats[i].ext;
    }
  if (kind < 0) {
    snprintf(why, whylen, "%s: .%s is not an allowed format (wps, doc, xml, txt, docx, html, "
             "ppt, et, xls, csv)", base, ext[0] ? ext : "(none)");
    return GDX_EINVAL;
  }
  const char *mime = n == 0 ? "text/plain" : magic_buffer(g->m, head, n);
  if (mime == NULL) {
    snprintf(why, whylen, "%s: the content cannot be identified: %s", base,
             magic_error(g->m) ? magic_error(g->m) : "libmagic failed");
    return GDX_EINVAL;
  }
  if (!fits(kind, mime, head, n)) {
    snprintf(why, whylen, "%s: the content is %s (%s), not a .%s file", base, kind_of(mime), mime,
             *format);
    return GDX_EINVAL;
  }
  return GDX_OK;
}
