#include "aps_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int level = -1;

aps_log_level aps_log_level_get(void) {
  int l = atomic_load(&level);
  if (l < 0) {
    const char *v = getenv("APS_LOG");
    l = !v || !*v ? APS_LOG_INFO : !strcmp(v, "quiet") ? APS_LOG_QUIET : !strcmp(v, "debug") ? APS_LOG_DEBUG : APS_LOG_INFO;
    atomic_store(&level, l);
  }
  return (aps_log_level)l;
}

void aps_log(aps_log_level l, const char *fmt, ...) {
  if (l > aps_log_level_get())
    return;
  /* One fputs of the whole line, so lines from threads do not interleave. */
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = snprintf(line, sizeof line, "aps: ");
  vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = strlen(line);
  line[len] = '\n', line[len + 1] = 0;
  fputs(line, stderr);
}
