/* A small JSON Schema validator over jansson (Debian ships no C validator).
 *
 * Supports the keywords gdx's schemas use: type (a name or a list), enum,
 * const, properties, required, additionalProperties (false or a schema),
 * minLength / maxLength (in characters, not bytes), pattern (POSIX extended
 * regular expression, anchored as written), minimum / maximum, items,
 * minItems / maxItems, uniqueItems. Anything else in a schema is refused at
 * load time, so a schema never silently checks less than it says.
 */
#ifndef GDX_JSONSCHEMA_H
#define GDX_JSONSCHEMA_H

#include <jansson.h>
#include <stddef.h>

/* Loads and checks a schema file. Caller frees with json_decref. */
int gdx_schema_load(const char *path, json_t **out, char *err, size_t errlen);
/* Checks that a schema uses only supported keywords (recursively). */
int gdx_schema_check(const json_t *schema, char *err, size_t errlen);
/* 0 when doc is valid; otherwise GDX_EINVAL with the failing field in
 * `field` ("roles[1]", "" for the document itself) and a message. */
int gdx_schema_validate(const json_t *schema, const json_t *doc, char *field, size_t fieldlen,
                        char *msg, size_t msglen);

#endif
