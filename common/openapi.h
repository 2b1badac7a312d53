/* The operations of an OpenAPI 3.x document, read by a real parser.
 *
 * A catalog entry of kind API carries its provider's OpenAPI text (JSON or
 * YAML). The catalog parses it when the entry is saved, refuses a text that
 * does not read (with the line and a reason), and stores the result in the
 * compact form below; the broker's proxy only loads that form and matches
 * each call against it. Nothing here knows the catalog or the broker.
 *
 * How a text is read:
 * - JSON (the first character after spaces and a BOM is '{') with jansson;
 *   anything else, and JSON-looking text jansson refuses but YAML flow
 *   style reads, with libyaml. The YAML events become one jansson tree
 *   (mappings with scalar keys taken as text, sequences, plain scalars
 *   resolved by the YAML 1.2 core schema: null, true/false, integers,
 *   floats; quoted and block scalars always strings), so one reader serves
 *   both formats. Refused: duplicate keys, complex keys, merge keys, tags
 *   other than !!str/!!map/!!seq, more than one document, more than
 *   GDX_OPENAPI_MAX_ALIASES aliases or an alias expanding the tree past
 *   GDX_OPENAPI_MAX_NODES nodes (billion laughs), nesting deeper than
 *   GDX_OPENAPI_MAX_DEPTH, texts over GDX_OPENAPI_MAX_TEXT bytes.
 * - The document: "openapi" must be 3.x (Swagger 2.0 is refused); every
 *   path item under "paths" gives one operation per method among GET, PUT,
 *   POST, DELETE, PATCH, HEAD, OPTIONS (method keys case-insensitive;
 *   TRACE is dropped: gdx never relays it). Parameters declared on the path
 *   item apply to each of its operations; an operation's own parameter of
 *   the same name and "in" replaces it. Local $refs to
 *   #/components/parameters/<name> and #/components/schemas/<name> are
 *   followed (chains up to GDX_OPENAPI_MAX_REF_HOPS); any other $ref is an
 *   error. Every {variable} of a path template must be declared as a path
 *   parameter, and every path parameter must be in the template.
 * - Kept per parameter: name, in (path or query: header and cookie
 *   parameters are checked and dropped, the node sets its own), required
 *   (path parameters always), and the schema reduced to what gdx can check:
 *   type, the items' type of an array, maxLength and pattern of a string,
 *   enum (as text: "1", "true", "a").
 *
 * Errors: the functions that read text return GDX_EINVAL (GDX_ETOOBIG past
 * a cap) and write one line for a person into err:
 *   "line 12, column 9: mapping values are not allowed in this context"
 *   "line 14: paths./persons/{id}.get.parameters[1]: \"in\" must be path,
 *    query, header or cookie"   (JSON texts name the place without a line)
 *   "no operations: the document has no paths with methods"
 *
 * The stored form (gdx_openapi_store / gdx_openapi_load), compact JSON:
 *   {"v":1,"ops":[{"m":"GET","p":"/persons/{id}","params":[
 *     {"n":"id","in":"path","req":true,"t":"string","max":18,"pat":"^[0-9]+$"},
 *     {"n":"fields","in":"query","t":"array","it":"string","e":["a","b"]}]}]}
 * m: method (upper case); p: path template; params in declaration order,
 * each with n (name) and in ("path" or "query") always, and only when
 * declared: req (true), t ("string", "integer", "number", "boolean",
 * "array", "object"; absent: any), it (items' type, arrays only), max
 * (maxLength, strings only), pat (pattern, strings only), e (enum values as
 * strings). Loading is strict: an unknown member, a wrong type, a broken
 * template or a template that disagrees with its path parameters is an
 * error, never a silently smaller list.
 */
#ifndef GDX_OPENAPI_H
#define GDX_OPENAPI_H

#include <stddef.h>

#define GDX_OPENAPI_MAX_TEXT (1024 * 1024)        /* bytes of OpenAPI text */
#define GDX_OPENAPI_MAX_STORED (16 * 1024 * 1024) /* bytes of a stored form (MEDIUMTEXT) */
#define GDX_OPENAPI_MAX_OPS 256                   /* operations per document */
#define GDX_OPENAPI_MAX_PARAMS 64                 /* parameters per operation (and per list) */
#define GDX_OPENAPI_MAX_PATH 512                  /* bytes of a path template */
#define GDX_OPENAPI_MAX_VARS 16                   /* {variables} per path template */
#define GDX_OPENAPI_MAX_NAME 128                  /* bytes of a parameter name */
#define GDX_OPENAPI_MAX_PATTERN 1024              /* bytes of a pattern */
#define GDX_OPENAPI_MAX_ENUM 64                   /* enum values per parameter */
#define GDX_OPENAPI_MAX_ENUM_TEXT 256             /* bytes of one enum value as text */
#define GDX_OPENAPI_MAX_DEPTH 64                  /* nested mappings/sequences */
#define GDX_OPENAPI_MAX_NODES (1024 * 1024)       /* tree nodes, aliases expanded */
#define GDX_OPENAPI_MAX_ALIASES 32                /* YAML aliases (*name) */
#define GDX_OPENAPI_MAX_REF_HOPS 8                /* $ref followed in a chain */
#define GDX_OPENAPI_MAX_MEMORY (2 * 1024 * 1024)  /* bytes of the parsed list */

typedef enum {
  GDX_OPENAPI_GET,
  GDX_OPENAPI_PUT,
  GDX_OPENAPI_POST,
  GDX_OPENAPI_DELETE,
  GDX_OPENAPI_PATCH,
  GDX_OPENAPI_HEAD,
  GDX_OPENAPI_OPTIONS
} gdx_openapi_method;

typedef enum { GDX_OPENAPI_IN_PATH, GDX_OPENAPI_IN_QUERY } gdx_openapi_in;

typedef enum {
  GDX_OPENAPI_T_ANY, /* no type declared (or several) */
  GDX_OPENAPI_T_STRING,
  GDX_OPENAPI_T_INTEGER,
  GDX_OPENAPI_T_NUMBER,
  GDX_OPENAPI_T_BOOLEAN,
  GDX_OPENAPI_T_ARRAY,
  GDX_OPENAPI_T_OBJECT
} gdx_openapi_type;

typedef struct {
  const char *name;
  gdx_openapi_in in;
  int required;
  gdx_openapi_type type;
  gdx_openapi_type items; /* the items' type when type is ARRAY, else ANY */
  long long max_length;   /* strings: maxLength, -1 when not declared */
  const char *pattern;    /* strings: NULL when not declared */
  size_t nenum;           /* 0: no enum */
  const char *const *enums;
} gdx_openapi_param;

typedef struct {
  gdx_openapi_method method;
  const char *path; /* the template, "/persons/{id}" */
  size_t nparams;
  const gdx_openapi_param *params; /* path and query, declaration order */
} gdx_openapi_op;

/* An operation list. Everything it points to lives as long as it does;
 * read-only after parse or load. */
typedef struct gdx_openapi {
  size_t nops; /* at least 1 */
  const gdx_openapi_op *ops;
  void *mem_; /* private: the memory it all lives in */
} gdx_openapi;

/* Reads an OpenAPI 3.x text (len bytes, JSON or YAML). GDX_OK with *out
 * set (caller frees with gdx_openapi_free), or GDX_EINVAL / GDX_ETOOBIG /
 * GDX_ENOMEM with *out NULL and the reason in err (which may be NULL when
 * errlen is 0). An empty text, or one without operations, is an error. */
int gdx_openapi_parse(const char *text, size_t len, gdx_openapi **out, char *err, size_t errlen);

/* The stored form of o (see above), NUL-terminated. Caller frees *out with
 * free(). GDX_OK or GDX_ENOMEM. */
int gdx_openapi_store(const gdx_openapi *o, char **out, size_t *outlen);

/* Loads a stored form. Same contract as gdx_openapi_parse; err names what
 * is wrong ("ops[3].params[0]: unknown member \"x\""). */
int gdx_openapi_load(const char *text, size_t len, gdx_openapi **out, char *err, size_t errlen);

void gdx_openapi_free(gdx_openapi *o);

/* Matches a call: method as the request says it ("GET"), path without the
 * query string ("/persons/42"). Returns 0 and sets *op (when op is not
 * NULL) to the operation; 404 when no template matches the path; 405 when
 * one does but none for this method. A {variable} matches one or more
 * characters within a segment (a whole "{id}" segment: one non-empty
 * segment); HEAD is allowed where GET is. When several templates match,
 * the one with the fewest variables wins (/persons/me before
 * /persons/{id}), then the first declared; an operation declared for HEAD
 * wins over GET. */
int gdx_openapi_match(const gdx_openapi *o, const char *method, const char *path,
                      const gdx_openapi_op **op);

/* The operation's query parameter called name (len bytes), or NULL when it
 * declares none such: what a check of undeclared query parameters needs. */
const gdx_openapi_param *gdx_openapi_query_param(const gdx_openapi_op *op, const char *name,
                                                 size_t len);

/* "GET" for GDX_OPENAPI_GET, …; "string" for GDX_OPENAPI_T_STRING, … ("" for ANY). */
const char *gdx_openapi_method_name(gdx_openapi_method m);
const char *gdx_openapi_type_name(gdx_openapi_type t);

#endif
