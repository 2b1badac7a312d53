/* Request routing: method + exact path, or method + path prefix ("/api/v1/").
 *
 * Unknown paths answer 404, a known path with another method 405 with an
 * Allow header; both in the JSON error shape of gdx_http_respond_error().
 */
#ifndef GDX_ROUTER_H
#define GDX_ROUTER_H

#include "http.h"

typedef void (*gdx_route_fn)(gdx_http_req *req, void *data);
typedef struct gdx_router gdx_router;

int gdx_router_new(gdx_router **out);
void gdx_router_free(gdx_router *r);
/* `path` ending in '*' matches by prefix (without the '*'). method "*" matches
 * any method. The strings must outlive the router. */
int gdx_router_add(gdx_router *r, const char *method, const char *path, gdx_route_fn fn,
                   void *data);
/* Suitable as gdx_http_server_options.on_request with data = the router. */
void gdx_router_dispatch(gdx_http_req *req, void *router);

#endif
