/* The node's state folder (node.state_dir): what enrollment leaves there
 * and renewal replaces - node.key (0600), node.crt, ca.crt (the platform
 * CA) and broker_url (the node listener the broker named) - and the small
 * file reads and writes they take. Internal to gdx-node. */
#ifndef GDX_NODE_STATE_DIR_H
#define GDX_NODE_STATE_DIR_H

#include <stddef.h>

#include "node_config.h"

#define GDX_NODE_STATE_FILE_MAX (1 << 20) /* a certificate, a URL: never near this */

/* <state_dir>/<name> into out. */
void gdx__node_state_path(const gdx_node_config *cfg, const char *name, char *out, size_t n);
/* The text of a file (at most GDX_NODE_STATE_FILE_MAX bytes; the caller
 * frees it), or NULL when it cannot be read. */
char *gdx__node_file_read(const char *path);
/* Writes text into path whole or not at all (a temporary file renamed
 * over it). GDX_EIO with err. */
int gdx__node_file_write(const char *path, const char *text, char *err, size_t errlen);

#endif
