#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

typedef struct {
  const char *method, *path;
  size_t plen;
  int prefix;
  gdx_route_fn fn;
  void *data;
} route;

struct gdx_router {
  route *routes;
  size_t n, cap;
};

int gdx_router_new(gdx_router **out) {
  *out = calloc(1, sizeof(**out));
  return *out ? GDX_OK : GDX_ENOMEM;
}

void gdx_router_free(gdx_router *r) {
  if (r)
    free(r->routes);
  free(r);
}

int gdx_router_add(gdx_router *r, const char *method, const char *path, gdx_route_fn fn,
                   void *data) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    route *p = realloc(r->routes, cap * sizeof(*p));
    if (p == NULL)
      return GDX_ENOMEM;
    r->routes = p;
    r->cap = cap;
  }
  size_t plen = strlen(path);
  int prefix = plen > 0 && path[plen - 1] == '*';
  r->routes[r->n++] = (route){method, path, prefix ? plen - 1 : plen, prefix, fn, data};
  return GDX_OK;
}

static int path_matches(const route *rt, const char *path) {
  if (rt->prefix)
    return strncmp(path, rt->path, rt->plen) == 0;
  return strcmp(path, rt->path) == 0;
}

void gdx_router_dispatch(gdx_http_req *req, void *data) {
  gdx_router *r = data;
  const char *method = gdx_http_req_method(req);
  const char *path = gdx_http_req_path(req);
  char allow[128] = "";
  for (size_t i = 0; i < r->n; i++) {
    const route *rt = &r->routes[i];
    if (!path_matches(rt, path))
      continue;
    if (strcmp(rt->method, "*") == 0 || strcmp(rt->method, method) == 0 ||
        (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)) {
      rt->fn(req, rt->data);
      return;
    }
    size_t used = strlen(allow);
    snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "", rt->method);
  }
  if (allow[0]) {
    gdx_http_add_header(req, "Allow", allow);
    gdx_http_respond_error(req, 405, "method_not_allowed",
                           "this path does not accept that method");
    return;
  }
  gdx_http_respond_error(req, 404, "not_found", "no such path");
}
