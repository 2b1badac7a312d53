#include "state_dir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

void gdx__node_state_path(const gdx_node_config *cfg, const char *name, char *out, size_t n) {
  snprintf(out, n, "%s/%s", cfg->state_dir, name);
}

int gdx__node_file_write(const char *path, const char *text, char *err, size_t errlen) {
  char tmp[1100];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  int ok = f != NULL && fputs(text, f) >= 0;
  if (f != NULL && fclose(f) != 0)
    ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return GDX_EIO;
  }
  return GDX_OK;
}

char *gdx__node_file_read(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return NULL;
  gdx_buf b;
  gdx_buf_init(&b, GDX_NODE_STATE_FILE_MAX);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    if (gdx_buf_append(&b, chunk, n) != GDX_OK)
      break;
  fclose(f);
  gdx_buf_append(&b, "", 1);
  return gdx_buf_detach(&b, NULL);
}
