#include "aps_status.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[2048];
static atomic_uint warnings;

const char *aps_status_name(aps_status s) {
  static const char *const names[] = {
      [APS_OK] = "ok",
      [APS_ERR_INVALID_ARG] = "invalid argument",
      [APS_ERR_NO_LOADER] = "no Vulkan loader",
      [APS_ERR_NO_DEVICE] = "no device",
      [APS_ERR_OUT_OF_MEMORY] = "out of memory",
      [APS_ERR_DEVICE_LOST] = "device lost",
      [APS_ERR_TIMEOUT] = "timeout",
      [APS_ERR_VULKAN] = "Vulkan error",
      [APS_ERR_IO] = "I/O error",
      [APS_ERR_FORMAT] = "malformed data",
      [APS_ERR_UNSUPPORTED] = "unsupported",
  };
  _Static_assert(sizeof(names) / sizeof(names[0]) == APS_STATUS_COUNT, "a status has no name");
  return (unsigned)s < APS_STATUS_COUNT ? names[s] : "unknown status";
}

const char *aps_last_error(void) { return last_error; }

void aps_clear_error(void) { last_error[0] = 0; }

aps_status aps_fail(aps_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return s;
}

aps_status aps_fail_context(aps_status s, const char *fmt, ...) {
  char old[sizeof last_error];
  memcpy(old, last_error, sizeof old);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof last_error)
    snprintf(last_error + n, sizeof last_error - (size_t)n, "%s", old);
  return s;
}

void aps_warn(const char *fmt, ...) {
  atomic_fetch_add(&warnings, 1);
  va_list ap;
  va_start(ap, fmt);
  fputs("aps: warning: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

unsigned aps_warning_count(void) { return atomic_load(&warnings); }
