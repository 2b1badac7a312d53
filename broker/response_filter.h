/* Field filtering of API responses: when an authorization grants fewer
 * data items than its catalog entry has, the provider's JSON answer is cut
 * to them before it reaches the consumer - the fields named by the other
 * items are removed at any depth. A body that is not JSON cannot be
 * filtered and is refused.
 */
#ifndef GDX_BROKER_RESPONSE_FILTER_H
#define GDX_BROKER_RESPONSE_FILTER_H

#include <stddef.h>

#include "buf.h"

/* 1 for application/json and any +json type (parameters ignored). */
int response_is_json(const char *content_type);
/* Rewrites body without the fields named in deny: 0, or -1 with why (the
 * body is then to be refused, not passed). */
int response_filter_json(gdx_buf *body, const char *content_type, char *const *deny, int ndeny,
                         char *why, size_t n);

#endif
