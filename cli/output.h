/* The CLI's output: an answer as a table (lists), as "field value" lines
 * (one object), or as the API's own JSON with --json.
 *
 * Columns are given as "key:Heading" strings: the key in the answer's
 * objects, the heading printed. Cells are one line each (control
 * characters become spaces) and are measured in display columns, so that
 * Chinese text lines up.
 */
#ifndef GDX_CLI_OUTPUT_H
#define GDX_CLI_OUTPUT_H

#include <jansson.h>
#include <stddef.h>

#define CLI_NCOLS(a) (sizeof(a) / sizeof(a[0]))

/* The array `items` as a table with a heading line and a count. */
void cli_table(json_t *items, const char *const *cols, size_t ncols);
/* The object `o` as one "heading value" line per column. */
void cli_fields(json_t *o, const char *const *cols, size_t ncols);
/* Prints an answer (taking it over): the JSON with --json, else the table
 * of its "items" (is_list) or its fields; returns CLI_EX_OK. */
int cli_emit(json_t *j, const char *const *cols, size_t ncols, int is_list);

#endif
