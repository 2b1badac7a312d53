/* The catalog component: two parts of the broker's API, on its REST core
 * (rest.h, the only broker header the catalog uses).
 *
 * catalog_part (catalog.c): the resource catalog (R-CAT) - entries with the
 * national catalog fields, their review lifecycle, every published version,
 * search (grams.h).
 * requests_part (requests.c): requests, demands and authorizations on it
 * (R-AUTH).
 */
#ifndef GDX_CATALOG_H
#define GDX_CATALOG_H

#include "grams.h"
#include "rest.h"

extern const rest_part catalog_part;
extern const rest_part requests_part;

#endif
