/* File exchange's gate (R-CAT-6, R-EX-2): which file names may
 * travel and which contents count as an allowed format.
 *
 * Names. A file is named by its path relative to the resource's folder,
 * '/'-separated, in UTF-8: no absolute path, no empty, "." or ".."
 * component, no backslash, no control character, valid UTF-8, at most 255
 * bytes a component and 1024 in all. Chinese names pass as they are.
 *
 * Formats. The allowed formats are wps, doc, xml, txt, docx, html, ppt, et,
 * xls and csv. A file passes when its extension is one of them and its
 * content, as libmagic sees the first bytes, is of that kind: an OLE2
 * compound document for doc, xls, ppt, wps and et; an Office Open XML
 * document for docx; text for txt and csv; XML or HTML for xml and html.
 * An executable named .doc, an image named .csv or a zip named .docx is
 * refused with what it really is.
 */
#ifndef GDX_FILEGUARD_H
#define GDX_FILEGUARD_H

#include <stddef.h>

/* GDX_OK, or GDX_EINVAL with why. */
int gdx_file_name_check(const char *rel, char *why, size_t n);

/* libmagic's state: one per thread. */
typedef struct gdx_fileguard gdx_fileguard;
int gdx_fileguard_new(gdx_fileguard **out, char *err, size_t n);
void gdx_fileguard_free(gdx_fileguard *g);

/* Checks `name` (its extension) against the content's first bytes (head,
 * n bytes; 64 KiB is plenty): GDX_OK with *format the allowed format
 * ("docx", …), or GDX_EINVAL with why ("the content is an executable
 * (application/x-dosexec), not a .doc file"). */
int gdx_fileguard_check(gdx_fileguard *g, const char *name, const void *head, size_t n,
                        const char **format, char *why, size_t whylen);

#endif
