/* gdx error codes.
 *
 * Every fallible gdx function returns 0 (GDX_OK) or one of the negative
 * GDX_E* codes below, and callbacks receive the same kind of status, the way
 * libuv does with UV_E*. gdx_strerror() gives the human text; gdx_errname()
 * the stable machine name used in logs and JSON errors.
 */
#ifndef GDX_ERROR_H
#define GDX_ERROR_H

#define GDX_ERRNO_MAP(XX)                                      \
  XX(NOMEM,    -1, "out of memory")                            \
  XX(INVAL,    -2, "invalid argument")                         \
  XX(TOOBIG,   -3, "size limit exceeded")                      \
  XX(IO,       -4, "input/output error")                       \
  XX(DB,       -5, "database error")                           \
  XX(BUSY,     -6, "resource busy, try again later")           \
  XX(NOTFOUND, -7, "not found")                                \
  XX(CONFIG,   -8, "configuration error")                      \
  XX(TLS,      -9, "TLS error")                                \
  XX(CLOSED,   -10, "connection closed")                       \
  XX(TIMEDOUT, -11, "timed out")                               \
  XX(CONFLICT, -12, "conflicting state")                       \
  XX(AGAIN,    -13, "resource temporarily unavailable")        \
  XX(DBGONE,   -14, "database connection lost")

enum {
  GDX_OK = 0,
#define XX(name, code, text) GDX_E##name = code,
  GDX_ERRNO_MAP(XX)
#undef XX
};

/* Human text for a GDX_E* code; never NULL. */
const char *gdx_strerror(int err);
/* Stable name ("GDX_ETOOBIG") for a GDX_E* code; never NULL. */
const char *gdx_errname(int err);

#endif
