#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"

#define FIELD(out, k, T) ((T *)((char *)(out) + (k)->offset))

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

int gdx_config_defaults(const gdx_cfg_key *keys, size_t nkeys, void *out) {
  for (size_t i = 0; i < nkeys; i++) {
    const gdx_cfg_key *k = &keys[i];
    switch (k->type) {
    case GDX_CFG_INT: *FIELD(out, k, long long) = k->def_int; break;
    case GDX_CFG_BOOL: *FIELD(out, k, int) = (int)k->def_int; break;
    case GDX_CFG_STR:
      *FIELD(out, k, char *) = xstrdup(k->def_str);
      if (k->def_str && *FIELD(out, k, char *) == NULL)
        return GDX_ENOMEM;
      break;
    case GDX_CFG_LIST: break;
    }
  }
  return GDX_OK;
}

void gdx_config_free(const gdx_cfg_key *keys, size_t nkeys, void *out) {
  for (size_t i = 0; i < nkeys; i++) {
    if (keys[i].type == GDX_CFG_STR) {
      free(*FIELD(out, &keys[i], char *));
      *FIELD(out, &keys[i], char *) = NULL;
    }
  }
}

/* Builds the dotted path of a setting into buf. */
static void setting_path(config_setting_t *s, char *buf, size_t n) {
  config_setting_t *parent = config_setting_parent(s);
  const char *name = config_setting_name(s);
  if (parent == NULL || config_setting_is_root(parent)) {
    snprintf(buf, n, "%s", name ? name : "");
    return;
  }
  char up[256];
  setting_path(parent, up, sizeof(up));
  if (name)
    snprintf(buf, n, "%s.%s", up, name);
  else
    snprintf(buf, n, "%s[%d]", up, config_setting_index(s));
}

static int is_group_prefix(const gdx_cfg_key *keys, size_t nkeys, const char *path) {
  size_t len = strlen(path);
  for (size_t i = 0; i < nkeys; i++)
    if (strncmp(keys[i].path, path, len) == 0 && keys[i].path[len] == '.')
      return 1;
  return 0;
}

static const gdx_cfg_key *find_key(const gdx_cfg_key *keys, size_t nkeys, const char *path) {
  for (size_t i = 0; i < nkeys; i++)
    if (strcmp(keys[i].path, path) == 0)
      return &keys[i];
  return NULL;
}

/* Refuses settings the table does not know, and groups where values belong. */
static int check_unknown(config_setting_t *group, const gdx_cfg_key *keys, size_t nkeys,
                         const char *file, char *err, size_t errlen) {
  int n = config_setting_length(group);
  for (int i = 0; i < n; i++) {
    config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
    char path[256];
    setting_path(s, path, sizeof(path));
    if (config_setting_is_group(s) && is_group_prefix(keys, nkeys, path)) {
      int e = check_unknown(s, keys, nkeys, file, err, errlen);
      if (e)
        return e;
      continue;
    }
    if (find_key(keys, nkeys, path) == NULL) {
      snprintf(err, errlen, "%s:%d: %s: unknown key", file,
               config_setting_source_line(s), path);
      return GDX_ECONFIG;
    }
  }
  return GDX_OK;
}

static int load_key(config_t *cfg, const gdx_cfg_key *k, void *out, const char *file,
                    char *err, size_t errlen) {
  config_setting_t *s = config_lookup(cfg, k->path);
  if (s == NULL) {
    if (k->required) {
      snprintf(err, errlen, "%s: %s: required key is missing (%s)", file, k->path,
               k->help ? k->help : "");
      return GDX_ECONFIG;
    }
    return GDX_OK; /* the default stays */
  }
  int line = config_setting_source_line(s);
  int t = config_setting_type(s);
  switch (k->type) {
  case GDX_CFG_LIST:
    if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_GROUP) {
      snprintf(err, errlen, "%s:%d: %s: must be a list ( … ) of groups { … }", file, line,
               k->path);
      return GDX_ECONFIG;
    }
    return GDX_OK;
  case GDX_CFG_INT: {
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
      snprintf(err, errlen, "%s:%d: %s: must be an integer", file, line, k->path);
      return GDX_ECONFIG;
    }
    long long v = config_setting_get_int64(s);
    if (v < k->min || v > k->max) {
      snprintf(err, errlen, "%s:%d: %s: must be an integer from %lld to %lld (got %lld)",
               file, line, k->path, k->min, k->max, v);
      return GDX_ECONFIG;
    }
    *FIELD(out, k, long long) = v;
    return GDX_OK;
  }
  case GDX_CFG_BOOL:
    if (t != CONFIG_TYPE_BOOL) {
      snprintf(err, errlen, "%s:%d: %s: must be true or false", file, line, k->path);
      return GDX_ECONFIG;
    }
    *FIELD(out, k, int) = config_setting_get_bool(s);
    return GDX_OK;
  case GDX_CFG_STR: {
    if (t != CONFIG_TYPE_STRING) {
      snprintf(err, errlen, "%s:%d: %s: must be a string in double quotes", file, line,
               k->path);
      return GDX_ECONFIG;
    }
    const char *v = config_setting_get_string(s);
    if (k->choices) {
      size_t i;
      for (i = 0; k->choices[i]; i++)
        if (strcmp(k->choices[i], v) == 0)
          break;
      if (k->choices[i] == NULL) {
        char words[256] = "";
        for (i = 0; k->choices[i]; i++) {
          strncat(words, i ? ", " : "", sizeof(words) - strlen(words) - 1);
          strncat(words, k->choices[i], sizeof(words) - strlen(words) - 1);
        }
        snprintf(err, errlen, "%s:%d: %s: must be one of %s (got \"%s\")", file, line,
                 k->path, words, v);
        return GDX_ECONFIG;
      }
    }
    char *copy = strdup(v);
    if (copy == NULL)
      return GDX_ENOMEM;
    free(*FIELD(out, k, char *));
    *FIELD(out, k, char *) = copy;
    return GDX_OK;
  }
  }
  return GDX_EINVAL;
}

int gdx_config_load(const char *file, const gdx_cfg_key *keys, size_t nkeys, void *out,
                    char *err, size_t errlen) {
  config_t cfg;
  int rc = gdx_config_defaults(keys, nkeys, out);
  if (rc)
    return rc;
  config_init(&cfg);
  if (!config_read_file(&cfg, file)) {
    if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
      snprintf(err, errlen, "%s: cannot read the file: %s", file, strerror(errno));
    else
      snprintf(err, errlen, "%s:%d: syntax error: %s", file, config_error_line(&cfg),
               config_error_text(&cfg));
    rc = GDX_ECONFIG;
    goto done;
  }
  rc = check_unknown(config_root_setting(&cfg), keys, nkeys, file, err, errlen);
  for (size_t i = 0; rc == GDX_OK && i < nkeys; i++)
    rc = load_key(&cfg, &keys[i], out, file, err, errlen);
done:
  config_destroy(&cfg);
  if (rc)
    gdx_config_free(keys, nkeys, out);
  return rc;
}

int gdx_config_read_secret(const char *file, char **out, char *err, size_t errlen) {
  struct stat st;
  FILE *f = fopen(file, "re");
  if (f == NULL) {
    snprintf(err, errlen, "%s: cannot open the secret file: %s", file, strerror(errno));
    return GDX_ECONFIG;
  }
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
    fclose(f);
    snprintf(err, errlen, "%s: secret file must not be readable by group or others "
             "(chmod 600)", file);
    return GDX_ECONFIG;
  }
  char line[1024];
  if (fgets(line, sizeof(line), f) == NULL)
    line[0] = '\0';
  fclose(f);
  line[strcspn(line, "\r\n")] = '\0';
  *out = strdup(line);
  explicit_bzero(line, sizeof(line));
  return *out ? GDX_OK : GDX_ENOMEM;
}

void *gdx_config_open(const char *file, char *err, size_t errlen) {
  config_t *c = malloc(sizeof(*c));
  if (c == NULL)
    return NULL;
  config_init(c);
  if (config_read_file(c, file) != CONFIG_TRUE) {
    snprintf(err, errlen, "%s:%d: %s", file, config_error_line(c), config_error_text(c));
    config_destroy(c);
    free(c);
    return NULL;
  }
  return c;
}

void gdx_config_close(void *cfg) {
  if (cfg) {
    config_destroy(cfg);
    free(cfg);
  }
}
