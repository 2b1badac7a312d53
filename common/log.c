#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"

static gdx_log_level log_level = GDX_LOG_INFO;
static gdx_log_format log_format = GDX_LOG_HUMAN;
static int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const level_upper[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

int gdx_log_level_parse(const char *s, gdx_log_level *out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (gdx_log_level)i;
      return GDX_OK;
    }
  }
  return GDX_EINVAL;
}

int gdx_log_format_parse(const char *s, gdx_log_format *out) {
  if (strcmp(s, "human") == 0)
    *out = GDX_LOG_HUMAN;
  else if (strcmp(s, "json") == 0)
    *out = GDX_LOG_JSON;
  else
    return GDX_EINVAL;
  return GDX_OK;
}

int gdx_log_setup(gdx_log_level level, gdx_log_format format, const char *path) {
  int fd = 2;
  if (path != NULL && strcmp(path, "-") != 0) {
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
      return GDX_EIO;
  }
  if (log_fd > 2)
    close(log_fd);
  log_fd = fd;
  log_level = level;
  log_format = format;
  return GDX_OK;
}

gdx_log_level gdx_log_get_level(void) { return log_level; }

static void format_time(char *out, size_t n) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           ts.tv_nsec / 1000000);
}

void gdx_log(gdx_log_level level, const char *comp, const char *req,
             const char *fmt, ...) {
  if (level < log_level)
    return;
  char ts[32];
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  size_t mlen = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
  format_time(ts, sizeof(ts));

  char stackbuf[GDX_BUF_CAP_LOGLINE];
  gdx_buf b = {stackbuf, 0, sizeof(stackbuf), sizeof(stackbuf) - 1};
  if (log_format == GDX_LOG_JSON) {
    gdx_buf_appendf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"comp\":\"", ts,
                    level_names[level]);
    gdx_buf_append_json_str(&b, comp, strlen(comp));
    if (req) {
      gdx_buf_appends(&b, "\",\"req\":\"");
      gdx_buf_append_json_str(&b, req, strlen(req));
    }
    gdx_buf_appends(&b, "\",\"msg\":\"");
    gdx_buf_append_json_str(&b, msg, mlen);
    gdx_buf_appends(&b, "\"}");
  } else {
    /* Control characters in the message would let input forge log lines. */
    for (size_t i = 0; i < mlen; i++)
      if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
        msg[i] = ' ';
    gdx_buf_appendf(&b, "%s %s %-6s ", ts, level_upper[level], comp);
    if (req)
      gdx_buf_appendf(&b, "[req %s] ", req);
    gdx_buf_append(&b, msg, mlen);
  }
  /* The stack buffer is never reallocated: reserve fails at its cap and the
   * line is cut, which is better than losing it. */
  if (b.len >= b.cap)
    b.len = b.cap - 1;
  b.data[b.len++] = '\n';
  ssize_t w;
  do
    w = write(log_fd, b.data, b.len);
  while (w < 0 && errno == EINTR);
}
