/* Structured logging.
 *
 * One line per event, in either a human format
 *   2026-11-25T01:51:52.123Z INFO  http   [req 5f3a…] listening on 127.0.0.1:8080
 * or JSON lines
 *   {"ts":"2026-11-25T01:51:52.123Z","level":"info","comp":"http","req":"…","msg":"…"}
 * Each line is written with a single write(2), so lines from several threads
 * never interleave. Secrets must never be passed to these functions: log the
 * name of a credential, never its value.
 */
#ifndef GDX_LOG_H
#define GDX_LOG_H

typedef enum {
  GDX_LOG_DEBUG = 0,
  GDX_LOG_INFO,
  GDX_LOG_WARN,
  GDX_LOG_ERROR,
} gdx_log_level;

typedef enum {
  GDX_LOG_HUMAN = 0,
  GDX_LOG_JSON,
} gdx_log_format;

/* Parses "debug", "info", "warn", "error"; GDX_EINVAL otherwise. */
int gdx_log_level_parse(const char *s, gdx_log_level *out);
/* Parses "human", "json"; GDX_EINVAL otherwise. */
int gdx_log_format_parse(const char *s, gdx_log_format *out);

/* Sets level, format and destination. `path` NULL or "-" means stderr;
 * otherwise the file is opened for appending (GDX_EIO if it cannot be). */
int gdx_log_setup(gdx_log_level level, gdx_log_format format, const char *path);
gdx_log_level gdx_log_get_level(void);

/* `comp` names the subsystem ("http", "db", "broker"); `req` is a request
 * id or NULL. */
void gdx_log(gdx_log_level level, const char *comp, const char *req,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define gdx_log_debug(comp, ...)                                             \
  do {                                                                       \
    if (gdx_log_get_level() <= GDX_LOG_DEBUG)                                \
      gdx_log(GDX_LOG_DEBUG, comp, NULL, __VA_ARGS__);                       \
  } while (0)
#define gdx_log_info(comp, ...) gdx_log(GDX_LOG_INFO, comp, NULL, __VA_ARGS__)
#define gdx_log_warn(comp, ...) gdx_log(GDX_LOG_WARN, comp, NULL, __VA_ARGS__)
#define gdx_log_error(comp, ...) gdx_log(GDX_LOG_ERROR, comp, NULL, __VA_ARGS__)

#endif
