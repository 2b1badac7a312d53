#include "error.h"

const char *gdx_strerror(int err) {
  switch (err) {
  case GDX_OK: return "success";
#define XX(name, code, text) case GDX_E##name: return text;
  GDX_ERRNO_MAP(XX)
#undef XX
  }
  return "unknown error";
}

const char *gdx_errname(int err) {
  switch (err) {
  case GDX_OK: return "GDX_OK";
#define XX(name, code, text) case GDX_E##name: return "GDX_E" #name;
  GDX_ERRNO_MAP(XX)
#undef XX
  }
  return "GDX_EUNKNOWN";
}
