#include "page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rowsum.h"

#define MAX_DEPTH 64

typedef struct {
  char *p, *end, *base;
  char *err;
  size_t errlen;
} cursor;

static int fail(cursor *c, const char *what) {
  snprintf(c->err, c->errlen, "the page is not valid: %s at byte %ld", what,
           (long)(c->p - c->base));
  return GDX_EINVAL;
}

static void ws(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static int hex4(const char *s, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char ch = s[i];
    v <<= 4;
    if (ch >= '0' && ch <= '9')
      v |= (unsigned)(ch - '0');
    else if (ch >= 'a' && ch <= 'f')
      v |= (unsigned)(ch - 'a' + 10);
    else if (ch >= 'A' && ch <= 'F')
      v |= (unsigned)(ch - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

/* A string at c->p (its opening quote), unescaped in place and
 * NUL-terminated; the unescaped text is never longer than the escaped. */
static int string(cursor *c, const char **out, size_t *n) {
  char *r = c->p + 1, *w = r, *start = r;
  for (;;) {
    if (r >= c->end)
      return fail(c, "a string does not end");
    unsigned char ch = (unsigned char)*r;
    if (ch == '"')
      break;
    if (ch < 0x20)
      return fail(c, "a control character in a string");
    if (ch != '\\') {
      *w++ = *r++;
      continue;
    }
    if (r + 1 >= c->end)
      return fail(c, "a string does not end");
    char e = r[1];
    r += 2;
    switch (e) {
    case '"': *w++ = '"'; break;
    case '\\': *w++ = '\\'; break;
    case '/': *w++ = '/'; break;
    case 'b': *w++ = '\b'; break;
    case 'f': *w++ = '\f'; break;
    case 'n': *w++ = '\n'; break;
    case 'r': *w++ = '\r'; break;
    case 't': *w++ = '\t'; break;
    case 'u': {
      unsigned u, lo;
      if (c->end - r < 4 || hex4(r, &u))
        return fail(c, "a bad \\u escape");
      r += 4;
      if (u >= 0xd800 && u <= 0xdbff) { /* a surrogate pair */
        if (c->end - r < 6 || r[0] != '\\' || r[1] != 'u' || hex4(r + 2, &lo) || lo < 0xdc00 ||
            lo > 0xdfff)
          return fail(c, "a lone surrogate");
        r += 6;
        u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
      } else if (u >= 0xdc00 && u <= 0xdfff) {
        return fail(c, "a lone surrogate");
      }
      if (u == 0)
        return fail(c, "a NUL character");
      if (u < 0x80) {
        *w++ = (char)u;
      } else if (u < 0x800) {
        *w++ = (char)(0xc0 | (u >> 6));
        *w++ = (char)(0x80 | (u & 0x3f));
      } else if (u < 0x10000) {
        *w++ = (char)(0xe0 | (u >> 12));
        *w++ = (char)(0x80 | ((u >> 6) & 0x3f));
        *w++ = (char)(0x80 | (u & 0x3f));
      } else {
        *w++ = (char)(0xf0 | (u >> 18));
        *w++ = (char)(0x80 | ((u >> 12) & 0x3f));
        *w++ = (char)(0x80 | ((u >> 6) & 0x3f));
        *w++ = (char)(0x80 | (u & 0x3f));
      }
      break;
    }
    default:
      return fail(c, "a bad escape");
    }
  }
  *w = '\0'; /* at or before the closing quote, which is consumed */
  *out = start;
  *n = (size_t)(w - start);
  c->p = r + 1;
  return GDX_OK;
}

/* Past one value of any kind, leaving it as it is (jansson parses it). */
static int skip(cursor *c) {
  int depth = 0;
  do {
    ws(c);
    if (c->p >= c->end)
      return fail(c, "the text ends early");
    char ch = *c->p;
    if (ch == '"') {
      char *r = c->p + 1;
      while (r < c->end && *r != '"')
        r += *r == '\\' ? 2 : 1;
      if (r >= c->end)
        return fail(c, "a string does not end");
      c->p = r + 1;
    } else if (ch == '[' || ch == '{') {
      if (++depth > MAX_DEPTH)
        return fail(c, "too deep");
      c->p++;
      continue;
    } else if (ch == ']' || ch == '}') {
      if (depth == 0)
        return fail(c, "an unexpected bracket");
      depth--;
      c->p++;
    } else if (ch == ',' || ch == ':') {
      if (depth == 0)
        return fail(c, "an unexpected separator");
      c->p++;
      continue;
    } else { /* a number or literal: jansson judges it */
      char *from = c->p;
      while (c->p < c->end && *c->p != '\0' && strchr(",]}: \t\r\n", *c->p) == NULL)
        c->p++;
      if (c->p == from)
        return fail(c, "an unexpected character");
    }
  } while (depth > 0);
  return GDX_OK;
}

static int grow(gdx_page *p, size_t *cap, size_t need) {
  if (need <= *cap)
    return GDX_OK;
  size_t n = *cap ? *cap * 2 : 4096;
  while (n < need)
    n *= 2;
  const char **v = realloc(p->v, n * sizeof(*v));
  if (v == NULL)
    return GDX_ENOMEM;
  p->v = v;
  size_t *len = realloc(p->len, n * sizeof(*len));
  if (len == NULL)
    return GDX_ENOMEM;
  p->len = len;
  *cap = n;
  return GDX_OK;
}

/* After an element of a list closed by `close`: 1 when another follows
 * (the comma is passed), 0 at the end (the bracket is passed), or an
 * error naming `what`. */
static int more(cursor *c, char close, const char *what) {
  ws(c);
  if (c->p < c->end && (*c->p == ',' || *c->p == close))
    return *c->p++ == ',';
  char why[64];
  snprintf(why, sizeof(why), "%s do%s not continue", what, what[0] == 'a' ? "es" : "");
  return fail(c, why);
}

/* The opening bracket of a list: 1 when elements follow, 0 when it is
 * empty (the closing bracket is passed too), or an error naming `what`. */
static int open_list(cursor *c, char open, char close, const char *what) {
  ws(c);
  if (c->p >= c->end || *c->p != open)
    return fail(c, what);
  c->p++;
  ws(c);
  if (c->p < c->end && *c->p == close) {
    c->p++;
    return 0;
  }
  return 1;
}

/* A member's name and the colon after it. */
static int member_name(cursor *c, const char **key) {
  size_t n;
  ws(c);
  if (c->p >= c->end || *c->p != '"')
    return fail(c, "a member has no name");
  int rc = string(c, key, &n);
  if (rc)
    return rc;
  ws(c);
  if (c->p >= c->end || *c->p != ':')
    return fail(c, "a member has no value");
  c->p++;
  ws(c);
  return GDX_OK;
}

/* One value (text or null) appended to p->v. */
static int value(cursor *c, gdx_page *p, size_t *cap, size_t *nv) {
  if (grow(p, cap, *nv + 1) != GDX_OK)
    return GDX_ENOMEM;
  if (c->p < c->end && *c->p == '"') {
    int rc = string(c, &p->v[*nv], &p->len[*nv]);
    if (rc)
      return rc;
  } else if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
    p->v[*nv] = NULL;
    p->len[*nv] = 0;
    c->p += 4;
  } else {
    return fail(c, "a value is neither text nor null");
  }
  (*nv)++;
  return GDX_OK;
}

/* An array of values: [<string or null>, …], at least one; their count. */
static int values(cursor *c, gdx_page *p, size_t *cap, size_t *nv, int *count) {
  int rc = open_list(c, '[', ']', "a row is not an array");
  if (rc <= 0)
    return rc < 0 ? rc : fail(c, "an empty row");
  *count = 0;
  for (;;) {
    ws(c);
    if ((rc = value(c, p, cap, nv)) != GDX_OK)
      return rc;
    (*count)++;
    if ((rc = more(c, ']', "a row")) <= 0)
      return rc;
  }
}

static int grow_changes(gdx_page *p, size_t *cap) {
  if (p->nchanges < *cap)
    return GDX_OK;
  size_t n = *cap ? *cap * 2 : 1024;
  char *ops = realloc(p->ops, n);
  if (ops == NULL)
    return GDX_ENOMEM;
  p->ops = ops;
  size_t *first = realloc(p->first, n * sizeof(*first));
  if (first == NULL)
    return GDX_ENOMEM;
  p->first = first;
  int *width = realloc(p->width, n * sizeof(*width));
  if (width == NULL)
    return GDX_ENOMEM;
  p->width = width;
  *cap = n;
  return GDX_OK;
}

/* "changes": [{"seq": N, "op": "U", "row": […]} | {… "op": "D", "key": […]}, …]
 * (members in any order; seq is not needed to apply). */
static int changes(cursor *c, gdx_page *p, size_t *vcap, size_t *nv) {
  size_t ccap = 0;
  int rc = open_list(c, '[', ']', "changes is not an array");
  if (rc <= 0)
    return rc;
  for (;;) {
    if ((rc = open_list(c, '{', '}', "a change is not an object")) <= 0)
      return rc < 0 ? rc : fail(c, "an empty change");
    if (grow_changes(p, &ccap) != GDX_OK)
      return GDX_ENOMEM;
    char op = 0;
    int got_values = 0;
    for (;;) {
      const char *key;
      if ((rc = member_name(c, &key)) != GDX_OK)
        return rc;
      if (strcmp(key, "op") == 0) {
        const char *v;
        size_t n;
        if (c->p >= c->end || *c->p != '"' || (rc = string(c, &v, &n)) != GDX_OK)
          return rc ? rc : fail(c, "op is not text");
        if (n != 1 || (v[0] != 'U' && v[0] != 'D'))
          return fail(c, "op is neither U nor D");
        op = v[0];
      } else if ((strcmp(key, "row") == 0 || strcmp(key, "key") == 0) && !got_values) {
        p->first[p->nchanges] = *nv;
        if ((rc = values(c, p, vcap, nv, &p->width[p->nchanges])) != GDX_OK)
          return rc;
        got_values = key[0];
      } else if ((rc = skip(c)) != GDX_OK) {
        return rc;
      }
      if ((rc = more(c, '}', "a change")) < 0)
        return rc;
      if (rc == 0)
        break;
    }
    if (op == 0 || (op == 'U' && got_values != 'r') || (op == 'D' && got_values != 'k'))
      return fail(c, "a change needs op with its row (U) or key (D)");
    p->ops[p->nchanges++] = op;
    if ((rc = more(c, ']', "the changes")) <= 0)
      return rc;
  }
}

/* "rows": [[<string or null>, …], …], every row as long as the first. */
static int rows(cursor *c, gdx_page *p, size_t *vcap, size_t *nv) {
  int rc = open_list(c, '[', ']', "rows is not an array");
  if (rc <= 0)
    return rc;
  for (;;) {
    int cols = 0;
    if ((rc = values(c, p, vcap, nv, &cols)) != GDX_OK)
      return rc;
    if (p->nrows == 0)
      p->ncols = cols;
    else if (cols != p->ncols)
      return fail(c, "rows of different lengths");
    p->nrows++;
    if ((rc = more(c, ']', "the rows")) <= 0)
      return rc;
  }
}

int gdx_page_parse(gdx_page *p, char *text, size_t len, char *err, size_t errlen) {
  memset(p, 0, sizeof(*p));
  p->text = text;
  p->meta = json_object();
  cursor c = {text, text + len, text, err, errlen};
  int rc = p->meta ? GDX_OK : GDX_ENOMEM;
  int have_rows = 0, have_changes = 0;
  size_t vcap = 0, nv = 0;
  if (!rc && (rc = open_list(&c, '{', '}', "not an object")) == 0)
    rc = fail(&c, "an empty object");
  if (rc == 1)
    rc = GDX_OK;
  while (!rc) {
    const char *key;
    if ((rc = member_name(&c, &key)) != GDX_OK)
      break;
    if ((strcmp(key, "rows") == 0 || strcmp(key, "changes") == 0) &&
        (have_rows || have_changes)) {
      rc = fail(&c, "rows or changes twice");
    } else if (strcmp(key, "rows") == 0) {
      rc = rows(&c, p, &vcap, &nv);
      have_rows = 1;
    } else if (strcmp(key, "changes") == 0) {
      rc = changes(&c, p, &vcap, &nv);
      have_changes = 1;
    } else {
      char *start = c.p;
      if ((rc = skip(&c)) == GDX_OK) {
        json_t *v = json_loadb(start, (size_t)(c.p - start), JSON_DECODE_ANY, NULL);
        if (v == NULL)
          rc = fail(&c, "a member's value does not parse");
        else
          json_object_set_new(p->meta, key, v);
      }
    }
    if (rc || (rc = more(&c, '}', "the object")) <= 0)
      break;
    rc = GDX_OK; /* another member */
  }
  ws(&c);
  if (!rc && c.p != c.end)
    rc = fail(&c, "text after the object");
  if (!rc && !have_rows && !have_changes)
    rc = fail(&c, "no rows and no changes");
  if (rc == GDX_ENOMEM)
    snprintf(err, errlen, "out of memory");
  if (rc)
    gdx_page_free(p);
  return rc;
}

void gdx_page_free(gdx_page *p) {
  free(p->text);
  free(p->v);
  free(p->len);
  free(p->ops);
  free(p->first);
  free(p->width);
  json_decref(p->meta);
  memset(p, 0, sizeof(*p));
}

uint64_t gdx_page_rowsum(const gdx_page *p) {
  uint64_t h = GDX_ROWSUM_INIT;
  for (size_t r = 0; r < p->nrows; r++) {
    for (int i = 0; i < p->ncols; i++) {
      size_t k = r * (size_t)p->ncols + (size_t)i;
      h = gdx_rowsum_value(h, p->v[k], p->len[k]);
    }
    h = gdx_rowsum_end_row(h);
  }
  for (size_t x = 0; x < p->nchanges; x++) {
    h = gdx_rowsum_op(h, p->ops[x]);
    for (int i = 0; i < p->width[x]; i++)
      h = gdx_rowsum_value(h, p->v[p->first[x] + (size_t)i], p->len[p->first[x] + (size_t)i]);
    h = gdx_rowsum_end_row(h);
  }
  return h;
}
