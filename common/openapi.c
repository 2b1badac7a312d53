/* OpenAPI operations (see openapi.h): text → one jansson tree (jansson for
 * JSON, libyaml events for YAML) → the reader → an operation list living
 * in one arena; the stored form to and from that list; call matching.
 *
 * The tree is the only thing built from the whole text, and it is bounded
 * before anything walks it: GDX_OPENAPI_MAX_TEXT bytes, GDX_OPENAPI_MAX_DEPTH
 * levels, GDX_OPENAPI_MAX_NODES nodes with YAML aliases counted as often as
 * they appear. The list is bounded by its own caps and by
 * GDX_OPENAPI_MAX_MEMORY bytes, so a component referenced by every
 * operation cannot multiply it without limit.
 */
#include "openapi.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "error.h"

#define MAX_ANCHORS 1024 /* YAML anchors (&name) remembered */
#define NO_LINE 0
#define XSTR(x) STR(x)
#define STR(x) #x

static const char *const method_names[] = {"GET",   "PUT",  "POST",   "DELETE",
                                           "PATCH", "HEAD", "OPTIONS"};
#define NMETHODS (sizeof(method_names) / sizeof(method_names[0]))
static const char *const type_names[] = {"",        "string", "integer", "number",
                                         "boolean", "array",  "object"};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

const char *gdx_openapi_method_name(gdx_openapi_method m) {
  return (unsigned)m < NMETHODS ? method_names[m] : "";
}

const char *gdx_openapi_type_name(gdx_openapi_type t) {
  return (unsigned)t < NTYPES ? type_names[t] : "";
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- memory: everything of one list in one arena ---- */

typedef struct ablock {
  struct ablock *next;
  size_t used, size;
  max_align_t data[];
} ablock;

typedef struct {
  ablock *head;
  size_t total; /* bytes handed out, against GDX_OPENAPI_MAX_MEMORY */
  int rc;       /* why the last allocation failed */
} arena;

#define ABLOCK_SIZE 8192

static void *arena_alloc(arena *a, size_t n) {
  n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  if (n > GDX_OPENAPI_MAX_MEMORY || a->total + n > GDX_OPENAPI_MAX_MEMORY) {
    a->rc = GDX_ETOOBIG;
    return NULL;
  }
  ablock *b = a->head;
  if (b == NULL || b->size - b->used < n) {
    size_t size = n > ABLOCK_SIZE ? n : ABLOCK_SIZE;
    b = malloc(sizeof(ablock) + size);
    if (b == NULL) {
      a->rc = GDX_ENOMEM;
      return NULL;
    }
    b->next = a->head, b->used = 0, b->size = size;
    a->head = b;
  }
  void *p = (unsigned char *)b->data + b->used;
  b->used += n;
  a->total += n;
  memset(p, 0, n);
  return p;
}

static char *arena_strndup(arena *a, const char *s, size_t n) {
  char *d = arena_alloc(a, n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static void arena_free(arena *a) {
  ablock *b = a->head;
  while (b) {
    ablock *next = b->next;
    free(b);
    b = next;
  }
  free(a);
}

void gdx_openapi_free(gdx_openapi *o) {
  if (o)
    arena_free(o->mem_); /* o itself lives in the arena */
}

/* The list under construction: ops has room for GDX_OPENAPI_MAX_OPS. */
typedef struct {
  arena *a;
  gdx_openapi *o;
  gdx_openapi_op *ops;
  size_t nops;
} builder;

static int builder_init(builder *b) {
  memset(b, 0, sizeof(*b));
  b->a = calloc(1, sizeof(arena));
  if (b->a == NULL)
    return GDX_ENOMEM;
  b->o = arena_alloc(b->a, sizeof(gdx_openapi));
  b->ops = arena_alloc(b->a, GDX_OPENAPI_MAX_OPS * sizeof(gdx_openapi_op));
  if (b->o == NULL || b->ops == NULL) {
    arena_free(b->a);
    return GDX_ENOMEM;
  }
  b->o->mem_ = b->a;
  return GDX_OK;
}

static gdx_openapi *builder_finish(builder *b) {
  b->o->ops = b->ops;
  b->o->nops = b->nops;
  return b->o;
}

/* ---- checks shared by the reader and the loader ---- */

/* NULL when tmpl is a path template gdx can match, else why not. */
static const char *template_problem(const char *tmpl) {
  size_t n = strlen(tmpl);
  if (tmpl[0] != '/')
    return "a path must start with /";
  if (n > GDX_OPENAPI_MAX_PATH)
    return "a path template is longer than " XSTR(GDX_OPENAPI_MAX_PATH) " bytes";
  int nvars = 0;
  for (const char *c = tmpl; *c; c++) {
    unsigned char u = (unsigned char)*c;
    if (u <= 0x20 || u == 0x7f || u == '?' || u == '#')
      return "a path template holds no spaces, control characters, ? or #";
    if (u == '}')
      return "a } without its {";
    if (u != '{')
      continue;
    const char *e = c + 1;
    while (*e && *e != '}' && *e != '{' && *e != '/')
      e++;
    if (*e != '}')
      return "a { without its }, or a / or { inside { }";
    if (e == c + 1)
      return "an empty {} in the path template";
    if (++nvars > GDX_OPENAPI_MAX_VARS)
      return "more than " XSTR(GDX_OPENAPI_MAX_VARS) " {variables} in one path template";
    /* the same name twice would bind two values to one parameter */
    for (const char *p = tmpl; p < c; p++)
      if (*p == '{' && strncmp(p, c, (size_t)(e - c + 1)) == 0)
        return "a {variable} appears twice in the path template";
    c = e;
  }
  return NULL;
}

/* Whether two templates differ only in the names of their variables (the
 * OpenAPI rule: such paths are the same path, and may not both exist). */
static int same_shape(const char *a, const char *b) {
  while (*a && *b) {
    if (*a == '{' && *b == '{') {
      a = strchr(a, '}') + 1;
      b = strchr(b, '}') + 1;
      continue;
    }
    if (*a != *b)
      return 0;
    a++, b++;
  }
  return *a == '\0' && *b == '\0';
}

static int find_param(const gdx_openapi_param *ps, size_t n, gdx_openapi_in in, const char *name,
                      size_t len) {
  for (size_t i = 0; i < n; i++)
    if (ps[i].in == in && strlen(ps[i].name) == len && memcmp(ps[i].name, name, len) == 0)
      return (int)i;
  return -1;
}

/* The operation's parameters against its template: each {variable} a
 * declared path parameter, each path parameter a {variable}, no parameter
 * twice. Writes the reason into msg and returns GDX_EINVAL otherwise. */
static int check_params(const char *tmpl, const gdx_openapi_param *ps, size_t n, char *msg,
                        size_t msglen) {
  for (size_t i = 0; i < n; i++)
    if (find_param(ps, i, ps[i].in, ps[i].name, strlen(ps[i].name)) >= 0) {
      set_err(msg, msglen, "the %s parameter \"%s\" is declared twice",
              ps[i].in == GDX_OPENAPI_IN_PATH ? "path" : "query", ps[i].name);
      return GDX_EINVAL;
    }
  for (const char *c = strchr(tmpl, '{'); c; c = strchr(c + 1, '{')) {
    const char *e = strchr(c, '}');
    if (find_param(ps, n, GDX_OPENAPI_IN_PATH, c + 1, (size_t)(e - c - 1)) < 0) {
      set_err(msg, msglen, "the path parameter \"%.*s\" of the template is not declared",
              (int)(e - c - 1), c + 1);
      return GDX_EINVAL;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (ps[i].in != GDX_OPENAPI_IN_PATH)
      continue;
    size_t len = strlen(ps[i].name);
    const char *c = strchr(tmpl, '{');
    while (c && !(strncmp(c + 1, ps[i].name, len) == 0 && c[len + 1] == '}'))
      c = strchr(c + 1, '{');
    if (c == NULL) {
      set_err(msg, msglen, "the path parameter \"%s\" is declared but not in the template",
              ps[i].name);
      return GDX_EINVAL;
    }
  }
  return GDX_OK;
}

/* -1, or the earlier operation whose template has path's shape but is
 * spelt differently. */
static int shape_clash(const gdx_openapi_op *ops, size_t n, const char *path) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(ops[i].path, path) != 0 && same_shape(ops[i].path, path))
      return (int)i;
  return -1;
}

/* ---- YAML text → jansson tree ---- */

/* Which line each node of a YAML tree starts on (pointer → line), so the
 * reader's errors can say where. Booleans and null are jansson singletons
 * and have no line of their own. */
typedef struct {
  const json_t **keys;
  int *lines;
  size_t cap, n;
} linemap;

static size_t ptr_hash(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x;
}

static int linemap_put(linemap *m, const json_t *k, int line) {
  if (json_is_boolean(k) || json_is_null(k))
    return GDX_OK;
  if (2 * (m->n + 1) > m->cap) {
    size_t cap = m->cap ? 2 * m->cap : 1024;
    const json_t **keys = calloc(cap, sizeof(*keys));
    int *lines = calloc(cap, sizeof(*lines));
    if (keys == NULL || lines == NULL) {
      free(keys);
      free(lines);
      return GDX_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
      if (m->keys[i] == NULL)
        continue;
      size_t h = ptr_hash(m->keys[i]) & (cap - 1);
      while (keys[h])
        h = (h + 1) & (cap - 1);
      keys[h] = m->keys[i], lines[h] = m->lines[i];
    }
    free(m->keys);
    free(m->lines);
    m->keys = keys, m->lines = lines, m->cap = cap;
  }
  size_t h = ptr_hash(k) & (m->cap - 1);
  while (m->keys[h]) {
    if (m->keys[h] == k)
      return GDX_OK; /* an alias: the anchor's line stays */
    h = (h + 1) & (m->cap - 1);
  }
  m->keys[h] = k, m->lines[h] = line;
  m->n++;
  return GDX_OK;
}

static int linemap_get(const linemap *m, const json_t *k) {
  if (m == NULL || m->cap == 0 || k == NULL)
    return NO_LINE;
  size_t h = ptr_hash(k) & (m->cap - 1);
  while (m->keys[h]) {
    if (m->keys[h] == k)
      return m->lines[h];
    h = (h + 1) & (m->cap - 1);
  }
  return NO_LINE;
}

static void linemap_free(linemap *m) {
  free(m->keys);
  free(m->lines);
  memset(m, 0, sizeof(*m));
}

typedef struct {
  json_t *node; /* borrowed: the parent (or the root) holds it */
  char *key;    /* a mapping's key waiting for its value (malloc'd) */
  int key_line; /* where that key is: the line its value is said to be on */
  int anchor;   /* index into anchors, or -1 */
  size_t nodes_at_start;
  int height; /* 1 + the highest child so far */
} yframe;

typedef struct {
  char *name;
  json_t *node; /* a reference of its own */
  size_t nodes; /* in its subtree, aliases expanded */
  int height;   /* 0 for a scalar */
  int done;     /* an alias inside its own anchor would make a cycle */
} yanchor;

typedef struct {
  const char *text;
  size_t len;
  yframe stack[GDX_OPENAPI_MAX_DEPTH];
  int depth;
  json_t *root;
  yanchor *anchors;
  size_t nanchors;
  int aliases;
  size_t nodes;
  linemap *lines;
  char *err;
  size_t errlen;
} yconv;

static int yfail(yconv *y, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int yfail(yconv *y, const yaml_mark_t *m, const char *fmt, ...) {
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  set_err(y->err, y->errlen, "line %zu, column %zu: %s", m->line + 1, m->column + 1, msg);
  return GDX_EINVAL;
}

/* libyaml's own complaint, at the place it names. */
static int yparser_fail(yconv *y, const yaml_parser_t *p) {
  if (p->error == YAML_MEMORY_ERROR) {
    set_err(y->err, y->errlen, "out of memory reading the YAML text");
    return GDX_ENOMEM;
  }
  const char *problem = p->problem ? p->problem : "unreadable YAML";
  if (p->error == YAML_READER_ERROR) {
    /* the reader knows only the byte offset */
    size_t line = 1, off = p->problem_offset < y->len ? p->problem_offset : y->len;
    for (size_t i = 0; i < off; i++)
      line += y->text[i] == '\n';
    set_err(y->err, y->errlen, "line %zu: %s", line, problem);
    return GDX_EINVAL;
  }
  if (p->context && p->context_mark.line != p->problem_mark.line)
    set_err(y->err, y->errlen, "line %zu, column %zu: %s (%s at line %zu)",
            p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context,
            p->context_mark.line + 1);
  else if (p->context)
    set_err(y->err, y->errlen, "line %zu, column %zu: %s (%s)", p->problem_mark.line + 1,
            p->problem_mark.column + 1, problem, p->context);
  else
    set_err(y->err, y->errlen, "line %zu, column %zu: %s", p->problem_mark.line + 1,
            p->problem_mark.column + 1, problem);
  return GDX_EINVAL;
}

/* The line a new node is on: its key's for a mapping value (a block
 * mapping starts at its first key, a line below the key that names it). */
static int yline(const yconv *y, const yaml_mark_t *m) {
  const yframe *f = y->depth > 0 ? &y->stack[y->depth - 1] : NULL;
  return f && f->key ? f->key_line : (int)m->line + 1;
}

static int in_key_position(const yconv *y) {
  return y->depth > 0 && json_is_object(y->stack[y->depth - 1].node) &&
         y->stack[y->depth - 1].key == NULL;
}

static int is_one_of(const char *s, size_t n, const char *const *words) {
  for (; *words; words++)
    if (strlen(*words) == n && memcmp(s, *words, n) == 0)
      return 1;
  return 0;
}

static int all_in(const char *s, size_t n, const char *set) {
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\0' || strchr(set, s[i]) == NULL)
      return 0;
  return 1;
}

/* A YAML 1.2 float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_float(const char *s, size_t n) {
  size_t i = 0, digits = 0;
  if (i < n && (s[i] == '-' || s[i] == '+'))
    i++;
  while (i < n && s[i] >= '0' && s[i] <= '9')
    i++, digits++;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
      i++, digits++;
  }
  if (digits == 0)
    return 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '-' || s[i] == '+'))
      i++;
    size_t exp = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
      i++, exp++;
    if (exp == 0)
      return 0;
  }
  return i == n;
}

/* A plain scalar resolved by the YAML 1.2 core schema (libyaml leaves it
 * text). s is NUL-terminated (libyaml's copy). NULL: not valid UTF-8 or no
 * memory. */
static json_t *yresolve(const char *s, size_t n) {
  static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
  static const char *const trues[] = {"true", "True", "TRUE", NULL};
  static const char *const falses[] = {"false", "False", "FALSE", NULL};
  if (n == 0 || is_one_of(s, n, nulls))
    return json_null();
  if (is_one_of(s, n, trues))
    return json_true();
  if (is_one_of(s, n, falses))
    return json_false();
  int base = 0;
  const char *digits = s;
  if (n > 2 && s[0] == '0' && s[1] == 'o' && all_in(s + 2, n - 2, "01234567"))
    base = 8, digits = s + 2;
  else if (n > 2 && s[0] == '0' && s[1] == 'x' && all_in(s + 2, n - 2, "0123456789abcdefABCDEF"))
    base = 16, digits = s + 2;
  else if (all_in(s + (s[0] == '-' || s[0] == '+'), n - (s[0] == '-' || s[0] == '+'), "0123456789"))
    base = 10;
  if (base) {
    errno = 0;
    char *end;
    long long v = strtoll(digits, &end, base);
    if (errno == 0 && end == s + n)
      return json_integer(v);
    if (base != 10)
      return json_stringn(s, n); /* too large for gdx: text */
  }
  if (base == 10 || is_float(s, n)) {
    double d = strtod(s, NULL);
    if (isfinite(d))
      return json_real(d);
  }
  /* .inf and .nan have no JSON form; no parameter needs them */
  return json_stringn(s, n);
}

/* A node's tag: none, or the core one of its kind ("!" for a scalar). */
static int tag_ok(const yaml_char_t *tag, const char *core) {
  return tag == NULL || strcmp((const char *)tag, core) == 0 || strcmp((const char *)tag, "!") == 0;
}

/* A node of this height is complete: its parent is at least one higher. */
static void ynote_done(yconv *y, int height) {
  if (y->depth > 0 && y->stack[y->depth - 1].height < height + 1)
    y->stack[y->depth - 1].height = height + 1;
}

static int ycount(yconv *y, size_t n, const yaml_mark_t *m) {
  if (n > GDX_OPENAPI_MAX_NODES || y->nodes + n > GDX_OPENAPI_MAX_NODES) {
    yfail(y, m, "the document has more than %d nodes (aliases counted where they appear)",
          GDX_OPENAPI_MAX_NODES);
    return GDX_ETOOBIG;
  }
  y->nodes += n;
  return GDX_OK;
}

/* Puts v (a new reference, taken over) where the document is. */
static int yattach(yconv *y, json_t *v) {
  if (y->depth == 0) {
    y->root = v;
    return GDX_OK;
  }
  yframe *f = &y->stack[y->depth - 1];
  int rc;
  if (json_is_array(f->node)) {
    rc = json_array_append_new(f->node, v);
  } else {
    rc = json_object_set_new(f->node, f->key, v);
    free(f->key);
    f->key = NULL;
  }
  return rc ? GDX_ENOMEM : GDX_OK;
}

/* Remembers an anchored node (a reference of its own); *idx is its index,
 * or -1 when the node has no anchor. */
static int yanchor_add(yconv *y, const yaml_char_t *name, json_t *node, const yaml_mark_t *m,
                       int *idx) {
  *idx = -1;
  if (name == NULL)
    return GDX_OK;
  if (y->nanchors == MAX_ANCHORS)
    return yfail(y, m, "more than %d anchors", MAX_ANCHORS);
  if (y->anchors == NULL && (y->anchors = calloc(MAX_ANCHORS, sizeof(yanchor))) == NULL)
    return GDX_ENOMEM;
  yanchor *a = &y->anchors[y->nanchors];
  if ((a->name = strdup((const char *)name)) == NULL)
    return GDX_ENOMEM;
  a->node = json_incref(node);
  *idx = (int)y->nanchors++;
  return GDX_OK;
}

static int yscalar(yconv *y, const yaml_event_t *ev) {
  const yaml_mark_t *m = &ev->start_mark;
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.tag == NULL;
  if (memchr(s, '\0', n))
    return yfail(y, m, "a NUL character in a scalar");
  if (!tag_ok(ev->data.scalar.tag, YAML_STR_TAG))
    return yfail(y, m, "tag %s is not read (only !!str)", (const char *)ev->data.scalar.tag);
  if (in_key_position(y)) {
    yframe *f = &y->stack[y->depth - 1];
    if (ev->data.scalar.anchor)
      return yfail(y, m, "an anchor on a mapping key");
    if (plain && n == 2 && memcmp(s, "<<", 2) == 0)
      return yfail(y, m, "merge keys (<<) are not read; write the keys out");
    if (json_object_get(f->node, s))
      return yfail(y, m, "duplicate key \"%s\"", s);
    f->key = strdup(s);
    f->key_line = (int)m->line + 1;
    return f->key ? GDX_OK : GDX_ENOMEM;
  }
  int rc = ycount(y, 1, m), a;
  if (rc)
    return rc;
  json_t *v = plain ? yresolve(s, n) : json_stringn(s, n);
  if (v == NULL)
    return yfail(y, m, "a scalar that is not valid UTF-8");
  if ((rc = linemap_put(y->lines, v, yline(y, m))) ||
      (rc = yanchor_add(y, ev->data.scalar.anchor, v, m, &a))) {
    json_decref(v);
    return rc;
  }
  if (a >= 0)
    y->anchors[a].nodes = 1, y->anchors[a].done = 1;
  if ((rc = yattach(y, v))) /* v is taken over even then */
    return rc;
  ynote_done(y, 0);
  return GDX_OK;
}

static int yalias(yconv *y, const yaml_event_t *ev) {
  const yaml_mark_t *m = &ev->start_mark;
  const char *name = (const char *)ev->data.alias.anchor;
  if (in_key_position(y))
    return yfail(y, m, "an alias as a mapping key");
  if (++y->aliases > GDX_OPENAPI_MAX_ALIASES)
    return yfail(y, m, "more than %d aliases", GDX_OPENAPI_MAX_ALIASES);
  yanchor *a = NULL;
  for (size_t i = y->nanchors; i-- > 0;)
    if (strcmp(y->anchors[i].name, name) == 0) {
      a = &y->anchors[i];
      break;
    }
  if (a == NULL)
    return yfail(y, m, "alias *%s names no anchor before it", name);
  if (!a->done)
    return yfail(y, m, "alias *%s inside its own anchor", name);
  if (y->depth + a->height > GDX_OPENAPI_MAX_DEPTH)
    return yfail(y, m, "nesting deeper than %d levels", GDX_OPENAPI_MAX_DEPTH);
  int rc = ycount(y, a->nodes, m);
  if (rc)
    return rc;
  if ((rc = yattach(y, json_incref(a->node))))
    return rc;
  ynote_done(y, a->height);
  return GDX_OK;
}

static int ystart(yconv *y, const yaml_event_t *ev, int mapping) {
  const yaml_mark_t *m = &ev->start_mark;
  const yaml_char_t *tag = mapping ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
  const yaml_char_t *anchor =
      mapping ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
  if (in_key_position(y))
    return yfail(y, m, "a mapping key must be a scalar, not a %s",
                 mapping ? "mapping" : "sequence");
  if (!tag_ok(tag, mapping ? YAML_MAP_TAG : YAML_SEQ_TAG))
    return yfail(y, m, "tag %s is not read", (const char *)tag);
  if (y->depth == GDX_OPENAPI_MAX_DEPTH)
    return yfail(y, m, "nesting deeper than %d levels", GDX_OPENAPI_MAX_DEPTH);
  int rc = ycount(y, 1, m), a;
  if (rc)
    return rc;
  json_t *v = mapping ? json_object() : json_array();
  if (v == NULL)
    return GDX_ENOMEM;
  if ((rc = linemap_put(y->lines, v, yline(y, m)))) {
    json_decref(v);
    return rc;
  }
  /* attached before its children: the parent (or y->root) owns it, the
   * frame borrows it */
  if ((rc = yattach(y, v)) || (rc = yanchor_add(y, anchor, v, m, &a)))
    return rc;
  yframe *f = &y->stack[y->depth++];
  f->node = v, f->key = NULL, f->anchor = a, f->nodes_at_start = y->nodes - 1, f->height = 1;
  return GDX_OK;
}

static int yend(yconv *y) {
  yframe *f = &y->stack[--y->depth];
  free(f->key);
  f->key = NULL;
  if (f->anchor >= 0) {
    yanchor *a = &y->anchors[f->anchor];
    a->nodes = y->nodes - f->nodes_at_start, a->height = f->height, a->done = 1;
  }
  ynote_done(y, f->height);
  return GDX_OK;
}

static int yaml_tree(const char *text, size_t len, json_t **out, linemap *lines, char *err,
                     size_t errlen) {
  yconv *y = calloc(1, sizeof(*y));
  if (y == NULL)
    return GDX_ENOMEM;
  y->text = text, y->len = len, y->lines = lines, y->err = err, y->errlen = errlen;
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) {
    free(y);
    return GDX_ENOMEM;
  }
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  int rc = GDX_OK, docs = 0, done = 0;
  while (!rc && !done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      rc = yparser_fail(y, &p);
      break;
    }
    switch (ev.type) {
    case YAML_STREAM_END_EVENT: done = 1; break;
    case YAML_DOCUMENT_START_EVENT:
      if (++docs > 1)
        rc = yfail(y, &ev.start_mark, "a second document (gdx reads one)");
      break;
    case YAML_SCALAR_EVENT: rc = yscalar(y, &ev); break;
    case YAML_ALIAS_EVENT: rc = yalias(y, &ev); break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: rc = ystart(y, &ev, ev.type == YAML_MAPPING_START_EVENT); break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: rc = yend(y); break;
    default: break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  while (y->depth > 0)
    free(y->stack[--y->depth].key);
  for (size_t i = 0; i < y->nanchors; i++) {
    free(y->anchors[i].name);
    json_decref(y->anchors[i].node);
  }
  free(y->anchors);
  if (rc == GDX_OK && y->root == NULL) {
    set_err(err, errlen, "the text is empty (only comments or blank lines)");
    rc = GDX_EINVAL;
  }
  if (rc == GDX_OK)
    *out = y->root;
  else
    json_decref(y->root);
  free(y);
  return rc;
}

/* ---- JSON text → jansson tree ---- */

/* Nesting of a tree in containers (as the YAML side counts it), stopping
 * as soon as it passes the cap; *nodes counts as far as it went. */
static int tree_height(const json_t *j, int depth, size_t *nodes) {
  ++*nodes;
  if (!json_is_object(j) && !json_is_array(j))
    return depth - 1;
  if (depth > GDX_OPENAPI_MAX_DEPTH || *nodes > GDX_OPENAPI_MAX_NODES)
    return depth;
  int h = depth;
  if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) {
      int c = tree_height(v, depth + 1, nodes);
      h = c > h ? c : h;
      if (h > GDX_OPENAPI_MAX_DEPTH)
        break;
    }
  } else {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
      int c = tree_height(v, depth + 1, nodes);
      h = c > h ? c : h;
      if (h > GDX_OPENAPI_MAX_DEPTH)
        break;
    }
  }
  return h;
}

static int json_tree(const char *text, size_t len, json_t **out, char *err, size_t errlen) {
  json_error_t je;
  json_t *t = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (t == NULL) {
    set_err(err, errlen, "line %d, column %d: %s", je.line, je.column, je.text);
    return GDX_EINVAL;
  }
  size_t nodes = 0;
  if (tree_height(t, 1, &nodes) > GDX_OPENAPI_MAX_DEPTH) {
    json_decref(t);
    set_err(err, errlen, "nesting deeper than %d levels", GDX_OPENAPI_MAX_DEPTH);
    return GDX_EINVAL;
  }
  if (nodes > GDX_OPENAPI_MAX_NODES) {
    json_decref(t);
    set_err(err, errlen, "the document has more than %d nodes", GDX_OPENAPI_MAX_NODES);
    return GDX_ETOOBIG;
  }
  *out = t;
  return GDX_OK;
}

/* ---- the reader: OpenAPI tree → operation list ---- */

typedef struct {
  char *err;
  size_t errlen;
  const linemap *lines;             /* NULL for JSON */
  const json_t *cparams, *cschemas; /* #/components/parameters, …/schemas */
  builder *b;
} reader;

#define LOC 700 /* room for a place in the document, path included */

/* "line N: <loc>: <msg>"; the line of node, or else of near. */
static int fail(reader *rd, int rc, const json_t *node, const json_t *near, const char *loc,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int fail(reader *rd, int rc, const json_t *node, const json_t *near, const char *loc,
                const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  int line = linemap_get(rd->lines, node);
  if (line == NO_LINE)
    line = linemap_get(rd->lines, near);
  char where[40] = "";
  if (line != NO_LINE)
    snprintf(where, sizeof(where), "line %d: ", line);
  set_err(rd->err, rd->errlen, "%s%s%s%s", where, loc, *loc ? ": " : "", msg);
  return rc;
}

static int oom(reader *rd) {
  return fail(rd, rd->b->a->rc, NULL, NULL, "",
              rd->b->a->rc == GDX_ETOOBIG ? "the operations take more than 2 MiB once read"
                                          : "out of memory");
}

/* A JSON pointer token (~1 is /, ~0 is ~) into name (room for
 * GDX_OPENAPI_MAX_NAME + 1); GDX_EINVAL when it is not one component's name. */
static int ref_name(const char *tok, char *name) {
  size_t n = 0;
  for (const char *c = tok; *c; c++) {
    char ch = *c;
    if (ch == '/' || (ch == '~' && c[1] != '0' && c[1] != '1') || n == GDX_OPENAPI_MAX_NAME)
      return GDX_EINVAL;
    if (ch == '~')
      ch = *++c == '1' ? '/' : '~';
    name[n++] = ch;
  }
  name[n] = '\0';
  return n ? GDX_OK : GDX_EINVAL;
}

/* Follows $refs to #/components/<kind>/<name> from node; loc gains the
 * last one followed. NULL with *rc and the error set when one does not
 * lead to a component. */
static const json_t *resolve(reader *rd, const json_t *node, const char *kind, char *loc,
                             size_t loclen, int *rc) {
  const json_t *comps = strcmp(kind, "parameters") == 0 ? rd->cparams : rd->cschemas;
  char prefix[32], name[GDX_OPENAPI_MAX_NAME + 1];
  size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "#/components/%s/", kind);
  size_t base = strlen(loc);
  for (int hops = 0;; hops++) {
    const json_t *ref = json_is_object(node) ? json_object_get(node, "$ref") : NULL;
    if (ref == NULL)
      return node;
    const char *r = json_string_value(ref);
    const json_t *target = NULL;
    char why[300] = "";
    if (hops == GDX_OPENAPI_MAX_REF_HOPS)
      snprintf(why, sizeof(why), "more than %d $refs in a chain (a cycle?)",
               GDX_OPENAPI_MAX_REF_HOPS);
    else if (r == NULL)
      snprintf(why, sizeof(why), "\"$ref\" must be a string");
    else if (strncmp(r, prefix, plen) != 0)
      snprintf(why, sizeof(why), "$ref \"%s\": only %s<name> is read here%s", r, prefix,
               r[0] != '#' ? " (no references to other documents)" : "");
    else if (ref_name(r + plen, name))
      snprintf(why, sizeof(why), "$ref \"%s\": not a component name", r);
    else if ((target = json_object_get(comps, name)) == NULL)
      snprintf(why, sizeof(why), "$ref \"%s\": no such component", r);
    if (why[0]) {
      *rc = fail(rd, GDX_EINVAL, ref, node, loc, "%s", why);
      return NULL;
    }
    snprintf(loc + base, loclen - base, " (%s)", r);
    node = target;
  }
}

static int type_of(const char *name, gdx_openapi_type *t) {
  for (size_t i = 1; i < NTYPES; i++)
    if (strcmp(name, type_names[i]) == 0) {
      *t = (gdx_openapi_type)i;
      return GDX_OK;
    }
  if (strcmp(name, "null") == 0) {
    *t = GDX_OPENAPI_T_ANY;
    return GDX_OK;
  }
  return GDX_EINVAL;
}

/* "type": one name, or (OpenAPI 3.1) a list of which all but "null" count. */
static int read_type(reader *rd, const json_t *schema, const char *loc, gdx_openapi_type *t) {
  const json_t *type = json_object_get(schema, "type");
  *t = GDX_OPENAPI_T_ANY;
  if (type == NULL)
    return GDX_OK;
  if (json_is_string(type)) {
    if (type_of(json_string_value(type), t))
      return fail(rd, GDX_EINVAL, type, schema, loc, "\"type\": unknown type \"%s\"",
                  json_string_value(type));
    return GDX_OK;
  }
  if (!json_is_array(type))
    return fail(rd, GDX_EINVAL, type, schema, loc, "\"type\" must be a name or a list of names");
  size_t i, named = 0;
  json_t *v;
  json_array_foreach(type, i, v) {
    gdx_openapi_type one;
    if (!json_is_string(v) || type_of(json_string_value(v), &one))
      return fail(rd, GDX_EINVAL, v, schema, loc, "\"type\"[%zu]: not a type name", i);
    if (one != GDX_OPENAPI_T_ANY)
      *t = one, named++;
  }
  if (named != 1)
    *t = GDX_OPENAPI_T_ANY; /* several types: gdx checks none */
  return GDX_OK;
}

static int read_enum(reader *rd, const json_t *schema, const char *loc, gdx_openapi_param *p) {
  const json_t *e = json_object_get(schema, "enum");
  if (e == NULL)
    return GDX_OK;
  if (!json_is_array(e) || json_array_size(e) == 0)
    return fail(rd, GDX_EINVAL, e, schema, loc, "\"enum\" must be a list of values");
  if (json_array_size(e) > GDX_OPENAPI_MAX_ENUM)
    return fail(rd, GDX_ETOOBIG, e, schema, loc, "\"enum\" has more than %d values",
                GDX_OPENAPI_MAX_ENUM);
  const char **vals = arena_alloc(rd->b->a, json_array_size(e) * sizeof(char *));
  if (vals == NULL)
    return oom(rd);
  size_t i, n = 0;
  json_t *v;
  json_array_foreach(e, i, v) {
    char num[40];
    const char *text = num;
    size_t len;
    if (json_is_string(v))
      text = json_string_value(v), len = json_string_length(v);
    else if (json_is_integer(v))
      len = (size_t)snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
      len = (size_t)snprintf(num, sizeof(num), "%.15g", json_real_value(v));
    else if (json_is_boolean(v))
      text = json_is_true(v) ? "true" : "false", len = strlen(text);
    else if (json_is_null(v))
      continue; /* a query never carries a null */
    else
      return fail(rd, GDX_EINVAL, v, schema, loc,
                  "\"enum\"[%zu]: values must be strings, numbers or booleans", i);
    if (len > GDX_OPENAPI_MAX_ENUM_TEXT || memchr(text, '\0', len))
      return fail(rd, GDX_EINVAL, v, schema, loc,
                  "\"enum\"[%zu]: longer than %d bytes, or holds a NUL", i,
                  GDX_OPENAPI_MAX_ENUM_TEXT);
    if ((vals[n++] = arena_strndup(rd->b->a, text, len)) == NULL)
      return oom(rd);
  }
  p->enums = vals;
  p->nenum = n;
  return GDX_OK;
}

/* A parameter's schema, reduced to what gdx checks. */
static int read_schema(reader *rd, const json_t *schema, const char *ploc, gdx_openapi_param *p) {
  char loc[LOC];
  snprintf(loc, sizeof(loc), "%s.schema", ploc);
  int rc = GDX_OK;
  schema = resolve(rd, schema, "schemas", loc, sizeof(loc), &rc);
  if (rc)
    return rc;
  if (json_is_true(schema))
    return GDX_OK; /* OpenAPI 3.1: any value */
  if (!json_is_object(schema))
    return fail(rd, GDX_EINVAL, schema, NULL, loc, "a schema must be a mapping");
  if ((rc = read_type(rd, schema, loc, &p->type)) || (rc = read_enum(rd, schema, loc, p)))
    return rc;
  if (p->type == GDX_OPENAPI_T_STRING) {
    const json_t *max = json_object_get(schema, "maxLength");
    if (max && (!json_is_integer(max) || json_integer_value(max) < 0))
      return fail(rd, GDX_EINVAL, max, schema, loc, "\"maxLength\" must be a non-negative integer");
    const json_t *pat = json_object_get(schema, "pattern");
    if (pat && (!json_is_string(pat) || json_string_length(pat) > GDX_OPENAPI_MAX_PATTERN ||
                strlen(json_string_value(pat)) != json_string_length(pat)))
      return fail(rd, GDX_EINVAL, pat, schema, loc,
                  "\"pattern\" must be a text of at most %d bytes", GDX_OPENAPI_MAX_PATTERN);
    p->max_length = max ? (long long)json_integer_value(max) : -1;
    if (pat && (p->pattern = arena_strndup(rd->b->a, json_string_value(pat),
                                           json_string_length(pat))) == NULL)
      return oom(rd);
  }
  if (p->type == GDX_OPENAPI_T_ARRAY && json_object_get(schema, "items")) {
    snprintf(loc + strlen(loc), sizeof(loc) - strlen(loc), ".items");
    const json_t *items =
        resolve(rd, json_object_get(schema, "items"), "schemas", loc, sizeof(loc), &rc);
    if (rc)
      return rc;
    if (json_is_object(items))
      rc = read_type(rd, items, loc, &p->items);
    else if (!json_is_true(items))
      rc = fail(rd, GDX_EINVAL, items, schema, loc, "\"items\" must be a schema");
  }
  return rc;
}

static const char *str_member(const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)
             ? json_string_value(v)
             : NULL;
}

/* One entry of a "parameters" list. *keep is 0 for header and cookie
 * parameters (checked, not kept). */
static int read_param(reader *rd, const json_t *node, const char *ploc, gdx_openapi_param *p,
                      int *keep) {
  char loc[LOC];
  snprintf(loc, sizeof(loc), "%s", ploc);
  int rc = GDX_OK;
  node = resolve(rd, node, "parameters", loc, sizeof(loc), &rc);
  if (rc)
    return rc;
  if (!json_is_object(node))
    return fail(rd, GDX_EINVAL, node, NULL, loc, "a parameter must be a mapping");
  const json_t *jname = json_object_get(node, "name");
  const char *name = str_member(node, "name");
  if (jname == NULL)
    return fail(rd, GDX_EINVAL, node, NULL, loc, "\"name\" is missing");
  if (name == NULL || *name == '\0' || strlen(name) > GDX_OPENAPI_MAX_NAME)
    return fail(rd, GDX_EINVAL, jname, node, loc, "\"name\" must be a text of 1 to %d bytes",
                GDX_OPENAPI_MAX_NAME);
  const json_t *jin = json_object_get(node, "in");
  const char *in = str_member(node, "in");
  int is_path = in && strcmp(in, "path") == 0, is_query = in && strcmp(in, "query") == 0;
  if (!is_path && !is_query && !(in && (strcmp(in, "header") == 0 || strcmp(in, "cookie") == 0)))
    return fail(rd, GDX_EINVAL, jin, node, loc, "\"in\" must be path, query, header or cookie");
  const json_t *req = json_object_get(node, "required");
  if (req && !json_is_boolean(req))
    return fail(rd, GDX_EINVAL, req, node, loc, "\"required\" must be true or false");
  if (is_path && json_is_false(req))
    return fail(rd, GDX_EINVAL, req, node, loc,
                "a path parameter is always required (\"required\": true)");
  const json_t *schema = json_object_get(node, "schema"),
               *content = json_object_get(node, "content");
  if (schema && content)
    return fail(rd, GDX_EINVAL, node, NULL, loc,
                "has both \"schema\" and \"content\"; a parameter has one of them");
  if (content) {
    const char *mt;
    json_t *media;
    if (!json_is_object(content) || json_object_size(content) != 1)
      return fail(rd, GDX_EINVAL, content, node, loc,
                  "\"content\" must map exactly one media type to its schema");
    json_object_foreach((json_t *)content, mt, media) schema = json_object_get(media, "schema");
  }
  *keep = is_path || is_query;
  if (!*keep)
    return GDX_OK;
  memset(p, 0, sizeof(*p));
  p->in = is_path ? GDX_OPENAPI_IN_PATH : GDX_OPENAPI_IN_QUERY;
  p->required = is_path || json_is_true(req);
  p->max_length = -1;
  if ((p->name = arena_strndup(rd->b->a, name, strlen(name))) == NULL)
    return oom(rd);
  return schema ? read_schema(rd, schema, loc, p) : GDX_OK;
}

/* A "parameters" list (of a path item or an operation): the path and
 * query ones into ps (room for GDX_OPENAPI_MAX_PARAMS). */
static int read_params(reader *rd, const json_t *owner, const char *oloc, gdx_openapi_param *ps,
                       size_t *n) {
  const json_t *list = json_object_get(owner, "parameters");
  *n = 0;
  if (list == NULL)
    return GDX_OK;
  char loc[LOC];
  snprintf(loc, sizeof(loc), "%s.parameters", oloc);
  if (!json_is_array(list))
    return fail(rd, GDX_EINVAL, list, owner, loc, "must be a list of parameters");
  if (json_array_size(list) > GDX_OPENAPI_MAX_PARAMS)
    return fail(rd, GDX_ETOOBIG, list, owner, loc, "more than %d parameters",
                GDX_OPENAPI_MAX_PARAMS);
  size_t i;
  json_t *item;
  json_array_foreach(list, i, item) {
    char iloc[LOC];
    snprintf(iloc, sizeof(iloc), "%s[%zu]", loc, i);
    int keep = 0;
    int rc = read_param(rd, item, iloc, &ps[*n], &keep);
    if (rc)
      return rc;
    if (keep && find_param(ps, *n, ps[*n].in, ps[*n].name, strlen(ps[*n].name)) >= 0)
      return fail(rd, GDX_EINVAL, item, list, iloc, "the %s parameter \"%s\" is declared twice",
                  ps[*n].in == GDX_OPENAPI_IN_PATH ? "path" : "query", ps[*n].name);
    *n += (size_t)keep;
  }
  return GDX_OK;
}

static int method_of(const char *key, gdx_openapi_method *m) {
  for (size_t i = 0; i < NMETHODS; i++)
    if (strcasecmp(key, method_names[i]) == 0) {
      *m = (gdx_openapi_method)i;
      return GDX_OK;
    }
  return GDX_EINVAL;
}

static int read_operation(reader *rd, const char *path, const char *key, gdx_openapi_method m,
                          const json_t *node, const gdx_openapi_param *common, size_t ncommon) {
  builder *b = rd->b;
  char loc[LOC];
  snprintf(loc, sizeof(loc), "paths.%s.%s", path, key);
  if (!json_is_object(node))
    return fail(rd, GDX_EINVAL, node, NULL, loc, "an operation must be a mapping");
  if (b->nops == GDX_OPENAPI_MAX_OPS)
    return fail(rd, GDX_ETOOBIG, node, NULL, loc, "more than %d operations", GDX_OPENAPI_MAX_OPS);
  gdx_openapi_param own[GDX_OPENAPI_MAX_PARAMS], all[GDX_OPENAPI_MAX_PARAMS];
  size_t nown, n = 0;
  int rc = read_params(rd, node, loc, own, &nown);
  if (rc)
    return rc;
  /* the path item's parameters, each replaced by the operation's own of
   * the same name and location, then the operation's other ones */
  for (size_t i = 0; i < ncommon; i++) {
    int o = find_param(own, nown, common[i].in, common[i].name, strlen(common[i].name));
    all[n++] = o >= 0 ? own[o] : common[i];
  }
  for (size_t i = 0; i < nown; i++) {
    if (find_param(common, ncommon, own[i].in, own[i].name, strlen(own[i].name)) >= 0)
      continue;
    if (n == GDX_OPENAPI_MAX_PARAMS)
      return fail(rd, GDX_ETOOBIG, node, NULL, loc, "more than %d parameters with the path's",
                  GDX_OPENAPI_MAX_PARAMS);
    all[n++] = own[i];
  }
  char msg[300];
  if (check_params(path, all, n, msg, sizeof(msg)))
    return fail(rd, GDX_EINVAL, node, NULL, loc, "%s", msg);
  gdx_openapi_op *op = &b->ops[b->nops];
  op->method = m;
  op->nparams = n;
  if ((op->path = arena_strndup(b->a, path, strlen(path))) == NULL)
    return oom(rd);
  if (n) {
    gdx_openapi_param *ps = arena_alloc(b->a, n * sizeof(*ps));
    if (ps == NULL)
      return oom(rd);
    memcpy(ps, all, n * sizeof(*ps));
    op->params = ps;
  }
  b->nops++;
  return GDX_OK;
}

static int read_path_item(reader *rd, const char *path, const json_t *item) {
  char loc[LOC];
  snprintf(loc, sizeof(loc), "paths.%s", path);
  const char *why = template_problem(path);
  if (why)
    return fail(rd, GDX_EINVAL, item, NULL, loc, "%s", why);
  if (!json_is_object(item))
    return fail(rd, GDX_EINVAL, item, NULL, loc, "a path item must be a mapping");
  if (json_object_get(item, "$ref"))
    return fail(rd, GDX_EINVAL, item, NULL, loc,
                "\"$ref\": path items by reference are not read; write the operations here");
  gdx_openapi_param common[GDX_OPENAPI_MAX_PARAMS];
  size_t ncommon;
  int rc = read_params(rd, item, loc, common, &ncommon);
  if (rc)
    return rc;
  size_t first = rd->b->nops;
  unsigned seen = 0;
  const char *key;
  json_t *op;
  json_object_foreach((json_t *)item, key, op) {
    gdx_openapi_method m;
    if (method_of(key, &m))
      continue; /* summary, servers, trace, x-…: nothing gdx checks */
    if (seen & (1u << m))
      return fail(rd, GDX_EINVAL, op, item, loc, "the method %s appears twice", method_names[m]);
    seen |= 1u << m;
    if ((rc = read_operation(rd, path, key, m, op, common, ncommon)))
      return rc;
  }
  int other = rd->b->nops > first ? shape_clash(rd->b->ops, first, path) : -1;
  if (other >= 0)
    return fail(rd, GDX_EINVAL, item, NULL, loc,
                "the same path as %s (only the names of the variables differ)",
                rd->b->ops[other].path);
  return GDX_OK;
}

static int read_version(reader *rd, const json_t *root) {
  if (json_object_get(root, "swagger"))
    return fail(rd, GDX_EINVAL, json_object_get(root, "swagger"), root, "swagger",
                "Swagger 2.0 is not read; convert the document to OpenAPI 3.x");
  const json_t *v = json_object_get(root, "openapi");
  if (v == NULL)
    return fail(rd, GDX_EINVAL, root, NULL, "openapi",
                "missing (an OpenAPI 3.x document starts with openapi: 3.0.3 or 3.1.0)");
  const char *s = json_string_value(v);
  /* YAML reads an unquoted "openapi: 3.1" as a number */
  if (json_is_number(v) && json_number_value(v) >= 3 && json_number_value(v) < 4)
    return GDX_OK;
  if (s && s[0] == '3' && s[1] == '.' && s[2] >= '0' && s[2] <= '9')
    return GDX_OK;
  return fail(rd, GDX_EINVAL, v, root, "openapi", "not an OpenAPI 3.x version");
}

static int read_document(reader *rd, const json_t *root) {
  if (!json_is_object(root))
    return fail(rd, GDX_EINVAL, root, NULL, "",
                "the document must be a mapping (openapi, info, paths, …)");
  int rc = read_version(rd, root);
  if (rc)
    return rc;
  const json_t *comps = json_object_get(root, "components");
  if (comps && !json_is_object(comps))
    return fail(rd, GDX_EINVAL, comps, root, "components", "must be a mapping");
  rd->cparams = json_object_get(comps, "parameters");
  rd->cschemas = json_object_get(comps, "schemas");
  if (rd->cparams && !json_is_object(rd->cparams))
    return fail(rd, GDX_EINVAL, rd->cparams, comps, "components.parameters", "must be a mapping");
  if (rd->cschemas && !json_is_object(rd->cschemas))
    return fail(rd, GDX_EINVAL, rd->cschemas, comps, "components.schemas", "must be a mapping");
  const json_t *paths = json_object_get(root, "paths");
  if (paths && !json_is_object(paths))
    return fail(rd, GDX_EINVAL, paths, root, "paths", "must be a mapping of paths to path items");
  const char *path;
  json_t *item;
  json_object_foreach((json_t *)paths, path, item) {
    if (strncmp(path, "x-", 2) == 0)
      continue; /* an extension */
    if ((rc = read_path_item(rd, path, item)))
      return rc;
  }
  if (rd->b->nops == 0)
    return fail(rd, GDX_EINVAL, NULL, NULL, "no operations",
                "the document has no paths with methods");
  return GDX_OK;
}

static int looks_like_json(const char *text, size_t len) {
  size_t i = 0;
  while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
    i++;
  return i < len && text[i] == '{';
}

int gdx_openapi_parse(const char *text, size_t len, gdx_openapi **out, char *err, size_t errlen) {
  *out = NULL;
  set_err(err, errlen, "%s", "");
  if (len > GDX_OPENAPI_MAX_TEXT) {
    set_err(err, errlen, "the text is larger than %d bytes", GDX_OPENAPI_MAX_TEXT);
    return GDX_ETOOBIG;
  }
  size_t skip = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
  size_t i = skip;
  while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
    i++;
  if (i == len) {
    set_err(err, errlen, "the text is empty");
    return GDX_EINVAL;
  }
  json_t *root = NULL;
  linemap lines = {0};
  int yaml = 1, rc;
  if (looks_like_json(text + skip, len - skip)) {
    rc = json_tree(text + skip, len - skip, &root, err, errlen);
    yaml = 0;
    if (rc == GDX_EINVAL) {
      /* YAML flow style also starts with {; keep JSON's complaint if
       * YAML cannot read it either */
      char yerr[8];
      if (yaml_tree(text, len, &root, &lines, yerr, sizeof(yerr)) == GDX_OK) {
        rc = GDX_OK, yaml = 1;
        set_err(err, errlen, "%s", "");
      }
    }
  } else {
    rc = yaml_tree(text, len, &root, &lines, err, errlen);
  }
  if (rc) {
    linemap_free(&lines);
    return rc;
  }
  builder b;
  if ((rc = builder_init(&b)) == GDX_OK) {
    reader rd = {.err = err, .errlen = errlen, .lines = yaml ? &lines : NULL, .b = &b};
    rc = read_document(&rd, root);
    if (rc)
      arena_free(b.a);
    else
      *out = builder_finish(&b);
  }
  json_decref(root);
  linemap_free(&lines);
  if (rc && err && errlen && err[0] == '\0')
    set_err(err, errlen, "%s", gdx_strerror(rc));
  return rc;
}

/* ---- the stored form ---- */

static json_t *param_json(const gdx_openapi_param *p) {
  json_t *j =
      json_pack("{s:s, s:s}", "n", p->name, "in", p->in == GDX_OPENAPI_IN_PATH ? "path" : "query");
  if (j == NULL)
    return NULL;
  int bad = 0;
  if (p->required)
    bad |= json_object_set_new(j, "req", json_true());
  if (p->type != GDX_OPENAPI_T_ANY)
    bad |= json_object_set_new(j, "t", json_string(type_names[p->type]));
  if (p->type == GDX_OPENAPI_T_ARRAY && p->items != GDX_OPENAPI_T_ANY)
    bad |= json_object_set_new(j, "it", json_string(type_names[p->items]));
  if (p->max_length >= 0)
    bad |= json_object_set_new(j, "max", json_integer(p->max_length));
  if (p->pattern)
    bad |= json_object_set_new(j, "pat", json_string(p->pattern));
  if (p->nenum) {
    json_t *e = json_array();
    bad |= json_object_set_new(j, "e", e);
    for (size_t i = 0; e && i < p->nenum; i++)
      bad |= json_array_append_new(e, json_string(p->enums[i]));
  }
  if (bad) {
    json_decref(j);
    return NULL;
  }
  return j;
}

int gdx_openapi_store(const gdx_openapi *o, char **out, size_t *outlen) {
  *out = NULL;
  json_t *ops = json_array();
  json_t *root = json_pack("{s:i, s:o}", "v", 1, "ops", ops);
  int bad = root == NULL;
  for (size_t i = 0; !bad && i < o->nops; i++) {
    const gdx_openapi_op *op = &o->ops[i];
    json_t *params = json_array();
    bad |= json_array_append_new(ops, json_pack("{s:s, s:s, s:o}", "m", method_names[op->method],
                                                "p", op->path, "params", params));
    for (size_t k = 0; !bad && k < op->nparams; k++)
      bad |= json_array_append_new(params, param_json(&op->params[k]));
  }
  if (!bad)
    *out = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (*out == NULL)
    return GDX_ENOMEM;
  if (outlen)
    *outlen = strlen(*out);
  return GDX_OK;
}

/* Loading: every member known, of its type, within its cap. */

static int only_members(const json_t *obj, const char *const *allowed, char *bad, size_t badlen) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)obj, k, v) {
    size_t i = 0;
    while (allowed[i] && strcmp(allowed[i], k) != 0)
      i++;
    if (allowed[i] == NULL) {
      snprintf(bad, badlen, "%s", k);
      return GDX_EINVAL;
    }
  }
  return GDX_OK;
}

#define LOAD_FAIL(...) (set_err(err, errlen, __VA_ARGS__), GDX_EINVAL)

static int load_param(arena *a, const json_t *j, gdx_openapi_param *p, const char *loc, char *err,
                      size_t errlen) {
  static const char *const members[] = {"n", "in", "req", "t", "it", "max", "pat", "e", NULL};
  char bad[64];
  if (!json_is_object(j))
    return LOAD_FAIL("%s: not an object", loc);
  if (only_members(j, members, bad, sizeof(bad)))
    return LOAD_FAIL("%s: unknown member \"%s\"", loc, bad);
  const char *name = str_member(j, "n"), *in = str_member(j, "in");
  if (name == NULL || *name == '\0' || strlen(name) > GDX_OPENAPI_MAX_NAME)
    return LOAD_FAIL("%s: \"n\" must be a name of 1 to %d bytes", loc, GDX_OPENAPI_MAX_NAME);
  if (in == NULL || (strcmp(in, "path") != 0 && strcmp(in, "query") != 0))
    return LOAD_FAIL("%s: \"in\" must be path or query", loc);
  memset(p, 0, sizeof(*p));
  p->in = strcmp(in, "path") == 0 ? GDX_OPENAPI_IN_PATH : GDX_OPENAPI_IN_QUERY;
  const json_t *req = json_object_get(j, "req");
  if (req && !json_is_true(req))
    return LOAD_FAIL("%s: \"req\" is true or absent", loc);
  p->required = req != NULL;
  if (p->in == GDX_OPENAPI_IN_PATH && !p->required)
    return LOAD_FAIL("%s: a path parameter has \"req\": true", loc);
  const json_t *t = json_object_get(j, "t"), *it = json_object_get(j, "it");
  if (t && (!json_is_string(t) || type_of(json_string_value(t), &p->type) ||
            p->type == GDX_OPENAPI_T_ANY))
    return LOAD_FAIL("%s: \"t\" is not a type", loc);
  if (it && (p->type != GDX_OPENAPI_T_ARRAY || !json_is_string(it) ||
             type_of(json_string_value(it), &p->items) || p->items == GDX_OPENAPI_T_ANY))
    return LOAD_FAIL("%s: \"it\" is an item type, only for arrays", loc);
  const json_t *max = json_object_get(j, "max"), *pat = json_object_get(j, "pat");
  if (max &&
      (p->type != GDX_OPENAPI_T_STRING || !json_is_integer(max) || json_integer_value(max) < 0))
    return LOAD_FAIL("%s: \"max\" is a length, only for strings", loc);
  p->max_length = max ? (long long)json_integer_value(max) : -1;
  const char *pats = str_member(j, "pat");
  if (pat &&
      (p->type != GDX_OPENAPI_T_STRING || pats == NULL || strlen(pats) > GDX_OPENAPI_MAX_PATTERN))
    return LOAD_FAIL("%s: \"pat\" is a pattern, only for strings", loc);
  if ((p->name = arena_strndup(a, name, strlen(name))) == NULL ||
      (pats && (p->pattern = arena_strndup(a, pats, strlen(pats))) == NULL))
    return a->rc;
  const json_t *e = json_object_get(j, "e");
  if (e == NULL)
    return GDX_OK;
  if (!json_is_array(e) || json_array_size(e) == 0 || json_array_size(e) > GDX_OPENAPI_MAX_ENUM)
    return LOAD_FAIL("%s: \"e\" is a list of 1 to %d values", loc, GDX_OPENAPI_MAX_ENUM);
  const char **vals = arena_alloc(a, json_array_size(e) * sizeof(char *));
  if (vals == NULL)
    return a->rc;
  size_t i;
  json_t *v;
  json_array_foreach(e, i, v) {
    const char *s = json_string_value(v);
    if (s == NULL || strlen(s) != json_string_length(v) ||
        json_string_length(v) > GDX_OPENAPI_MAX_ENUM_TEXT)
      return LOAD_FAIL("%s: \"e\"[%zu] is not a value", loc, i);
    if ((vals[i] = arena_strndup(a, s, strlen(s))) == NULL)
      return a->rc;
  }
  p->enums = vals;
  p->nenum = json_array_size(e);
  return GDX_OK;
}

static int load_op(builder *b, const json_t *j, size_t idx, char *err, size_t errlen) {
  static const char *const members[] = {"m", "p", "params", NULL};
  char loc[40], bad[64];
  snprintf(loc, sizeof(loc), "ops[%zu]", idx);
  if (!json_is_object(j))
    return LOAD_FAIL("%s: not an object", loc);
  if (only_members(j, members, bad, sizeof(bad)))
    return LOAD_FAIL("%s: unknown member \"%s\"", loc, bad);
  gdx_openapi_op *op = &b->ops[idx];
  const char *m = str_member(j, "m"), *path = str_member(j, "p");
  size_t mi = 0;
  while (m && mi < NMETHODS && strcmp(m, method_names[mi]) != 0)
    mi++;
  if (m == NULL || mi == NMETHODS)
    return LOAD_FAIL("%s: \"m\" is not a method", loc);
  op->method = (gdx_openapi_method)mi;
  const char *why = path ? template_problem(path) : "\"p\" is not a path";
  if (why)
    return LOAD_FAIL("%s: %s", loc, why);
  for (size_t i = 0; i < idx; i++) {
    if (b->ops[i].method == op->method && strcmp(b->ops[i].path, path) == 0)
      return LOAD_FAIL("%s: %s %s appears twice", loc, m, path);
  }
  int other = shape_clash(b->ops, idx, path);
  if (other >= 0)
    return LOAD_FAIL("%s: the same path as %s", loc, b->ops[other].path);
  const json_t *params = json_object_get(j, "params");
  if (!json_is_array(params) || json_array_size(params) > GDX_OPENAPI_MAX_PARAMS)
    return LOAD_FAIL("%s: \"params\" is a list of at most %d", loc, GDX_OPENAPI_MAX_PARAMS);
  op->nparams = json_array_size(params);
  gdx_openapi_param *ps = op->nparams ? arena_alloc(b->a, op->nparams * sizeof(*ps)) : NULL;
  if ((op->path = arena_strndup(b->a, path, strlen(path))) == NULL || (op->nparams && !ps))
    return b->a->rc;
  op->params = ps;
  for (size_t i = 0; i < op->nparams; i++) {
    char ploc[60];
    snprintf(ploc, sizeof(ploc), "%s.params[%zu]", loc, i);
    int rc = load_param(b->a, json_array_get(params, i), &ps[i], ploc, err, errlen);
    if (rc)
      return rc;
  }
  char msg[300];
  if (check_params(op->path, ps, op->nparams, msg, sizeof(msg)))
    return LOAD_FAIL("%s: %s", loc, msg);
  return GDX_OK;
}

static int load_tree(builder *b, const json_t *root, char *err, size_t errlen) {
  static const char *const members[] = {"v", "ops", NULL};
  char bad[64];
  if (!json_is_object(root))
    return LOAD_FAIL("not an object");
  if (only_members(root, members, bad, sizeof(bad)))
    return LOAD_FAIL("unknown member \"%s\"", bad);
  const json_t *v = json_object_get(root, "v"), *ops = json_object_get(root, "ops");
  if (!json_is_integer(v) || json_integer_value(v) != 1)
    return LOAD_FAIL("\"v\": not version 1 of the stored form");
  if (!json_is_array(ops) || json_array_size(ops) == 0 ||
      json_array_size(ops) > GDX_OPENAPI_MAX_OPS)
    return LOAD_FAIL("\"ops\" is a list of 1 to %d operations", GDX_OPENAPI_MAX_OPS);
  for (size_t i = 0; i < json_array_size(ops); i++) {
    int rc = load_op(b, json_array_get(ops, i), i, err, errlen);
    if (rc)
      return rc;
    b->nops++;
  }
  return GDX_OK;
}

int gdx_openapi_load(const char *text, size_t len, gdx_openapi **out, char *err, size_t errlen) {
  *out = NULL;
  set_err(err, errlen, "%s", "");
  if (len > GDX_OPENAPI_MAX_STORED) {
    set_err(err, errlen, "the stored operations are larger than %d bytes", GDX_OPENAPI_MAX_STORED);
    return GDX_ETOOBIG;
  }
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL) {
    set_err(err, errlen, "line %d, column %d: %s", je.line, je.column, je.text);
    return GDX_EINVAL;
  }
  builder b;
  int rc = builder_init(&b);
  if (rc == GDX_OK) {
    rc = load_tree(&b, root, err, errlen);
    if (rc == GDX_ETOOBIG)
      set_err(err, errlen, "the operations take more than 2 MiB once loaded");
    if (rc)
      arena_free(b.a);
    else
      *out = builder_finish(&b);
  }
  json_decref(root);
  if (rc && err && errlen && err[0] == '\0')
    set_err(err, errlen, "%s", gdx_strerror(rc));
  return rc;
}

/* ---- matching ---- */

/* One path segment against one template segment: literal bytes equal,
 * each {variable} one or more bytes. The template's {…} is a glob's "?*",
 * matched greedily with backtracking to the last variable only, which is
 * enough for globs and keeps it O(n·m). */
static int segment_matches(const char *t, size_t tl, const char *s, size_t sl) {
  size_t ti = 0, si = 0, star_t = (size_t)-1, star_s = 0;
  while (si < sl) {
    if (ti < tl && t[ti] == '{') {
      ti = (size_t)((const char *)memchr(t + ti, '}', tl - ti) - t) + 1;
      si++;
      star_t = ti, star_s = si;
    } else if (ti < tl && t[ti] == s[si]) {
      ti++, si++;
    } else if (star_t != (size_t)-1) {
      ti = star_t, si = ++star_s;
    } else {
      return 0;
    }
  }
  return ti == tl;
}

static int path_matches(const char *tmpl, const char *path) {
  if (*tmpl != '/' || *path != '/')
    return 0;
  for (;;) {
    tmpl++, path++; /* past the '/' */
    const char *te = strchr(tmpl, '/'), *pe = strchr(path, '/');
    size_t tl = te ? (size_t)(te - tmpl) : strlen(tmpl);
    size_t pl = pe ? (size_t)(pe - path) : strlen(path);
    if (!segment_matches(tmpl, tl, path, pl))
      return 0;
    if (te == NULL || pe == NULL)
      return te == NULL && pe == NULL;
    tmpl = te, path = pe;
  }
}

static int count_vars(const char *tmpl) {
  int n = 0;
  for (; *tmpl; tmpl++)
    n += *tmpl == '{';
  return n;
}

int gdx_openapi_match(const gdx_openapi *o, const char *method, const char *path,
                      const gdx_openapi_op **op) {
  int known = 0, best_vars = 0, best_exact = 0, head = strcmp(method, "HEAD") == 0;
  const gdx_openapi_op *best = NULL;
  for (size_t i = 0; i < o->nops; i++) {
    const gdx_openapi_op *c = &o->ops[i];
    if (!path_matches(c->path, path))
      continue;
    known = 1;
    int exact = strcmp(method_names[c->method], method) == 0;
    if (!exact && !(head && c->method == GDX_OPENAPI_GET))
      continue;
    int vars = count_vars(c->path);
    if (best == NULL || vars < best_vars || (vars == best_vars && exact && !best_exact))
      best = c, best_vars = vars, best_exact = exact;
  }
  if (op)
    *op = best;
  return best ? 0 : known ? 405 : 404;
}

const gdx_openapi_param *gdx_openapi_query_param(const gdx_openapi_op *op, const char *name,
                                                 size_t len) {
  int i = find_param(op->params, op->nparams, GDX_OPENAPI_IN_QUERY, name, len);
  return i >= 0 ? &op->params[i] : NULL;
}
