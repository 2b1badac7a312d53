/* Search grams of the catalog (catalog.h): search finds entries whose name
 * or summary contains the query as a substring, in Chinese or Latin
 * script. A LIKE '%q%' scan of 100,000 entries is too slow for interactive
 * search, so every published entry is indexed by grams: bigrams of
 * consecutive CJK characters and trigrams of lower-cased Latin letters and
 * digits. An entry that contains the query contains all of the query's
 * grams, so the grams narrow the candidates and LIKE confirms. Shared with
 * the catalog benchmark's seeding tool.
 */
#ifndef GDX_CATALOG_GRAMS_H
#define GDX_CATALOG_GRAMS_H

#include <stddef.h>

#define GDX_GRAM_MAX 13 /* bytes of one gram with its NUL */

/* Splits text into its distinct grams (at most max). Returns the count. */
size_t gdx_catalog_grams(const char *text, char (*grams)[GDX_GRAM_MAX], size_t max);

#endif
