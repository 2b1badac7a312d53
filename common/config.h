/* Configuration files.
 *
 * gdx reads libconfig files (https://hyperrealm.github.io/libconfig/): groups
 * in braces, `key = value;`, comments with # or //. A component describes the
 * keys it accepts in a table of gdx_cfg_key; gdx_config_load() parses the file,
 * checks every key against the table (type, range, allowed words, required),
 * refuses unknown keys (a typo must not silently fall back to a default), and
 * fills the component's struct through the offsets in the table. Every error
 * names the file, the line where known, and the key:
 *   broker.conf:12: http.max_body_bytes: must be an integer from 1024 to
 *   1073741824 (got -5)
 */
#ifndef GDX_CONFIG_H
#define GDX_CONFIG_H

#include <stddef.h>

typedef enum {
  GDX_CFG_INT,  /* long long */
  GDX_CFG_STR,  /* char * (heap; gdx_config_free() frees it) */
  GDX_CFG_BOOL, /* int */
  GDX_CFG_LIST, /* a list or group the component reads itself (gdx_config_open) */
} gdx_cfg_type;

typedef struct {
  const char *path;           /* dotted: "http.max_body_bytes" */
  gdx_cfg_type type;
  size_t offset;              /* offsetof(struct, field) */
  int required;
  long long min, max;         /* GDX_CFG_INT range */
  long long def_int;          /* default for INT and BOOL */
  const char *def_str;        /* default for STR (may be NULL) */
  const char *const *choices; /* STR: NULL-terminated allowed words, or NULL */
  const char *help;           /* one line, for docs and --help */
} gdx_cfg_key;

/* Loads `file` into `out` per `keys`. On failure returns GDX_ECONFIG with a
 * message of the form "file:line: key: problem" in err. Strings already
 * stored are freed on failure. */
int gdx_config_load(const char *file, const gdx_cfg_key *keys, size_t nkeys,
                    void *out, char *err, size_t errlen);
/* Applies the defaults only (for tests and for components run without a
 * file). */
int gdx_config_defaults(const gdx_cfg_key *keys, size_t nkeys, void *out);
/* Frees the strings gdx_config_load() stored in `out`. */
void gdx_config_free(const gdx_cfg_key *keys, size_t nkeys, void *out);

/* Opens the file for a component's own reading of its GDX_CFG_LIST keys
 * (after gdx_config_load accepted it). Returns a config_t * (libconfig) to
 * free with gdx_config_close, or NULL with err set. */
void *gdx_config_open(const char *file, char *err, size_t errlen);
void gdx_config_close(void *cfg);

/* Reads a secret from a file (first line, no trailing newline). Refuses a
 * file readable by group or others. Caller frees. */
int gdx_config_read_secret(const char *file, char **out, char *err, size_t errlen);

#endif
