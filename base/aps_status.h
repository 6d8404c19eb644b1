/* Status codes and the last error message, shared by every layer of aps.
 *
 * Every fallible function returns an aps_status. On failure it also leaves a message
 * (thread-local) that names what was at fault: the file, tensor, device or Vulkan call,
 * and what was expected. aps_last_error() returns it until the next failure on that
 * thread. Library code never aborts or exits on bad input. */
#ifndef APS_STATUS_H
#define APS_STATUS_H

typedef enum aps_status {
  APS_OK = 0,
  APS_ERR_INVALID_ARG,     /* a caller's value or an environment variable is wrong */
  APS_ERR_NO_LOADER,       /* no Vulkan loader library could be opened */
  APS_ERR_NO_DEVICE,       /* no Vulkan device, or none that meets the requirements */
  APS_ERR_OUT_OF_MEMORY,   /* host or device memory exhausted, or a size beyond a limit */
  APS_ERR_DEVICE_LOST,     /* the device was lost while running submitted work */
  APS_ERR_TIMEOUT,         /* a wait ran past its deadline */
  APS_ERR_VULKAN,          /* any other Vulkan call failure */
  APS_ERR_IO,              /* a file could not be read or written */
  APS_ERR_FORMAT,          /* a file or blob is malformed */
  APS_ERR_UNSUPPORTED,     /* the device lacks a feature the request needs */
  APS_STATUS_COUNT
} aps_status;

/* "invalid argument", "no Vulkan loader", ... */
const char *aps_status_name(aps_status s);

/* The message of the last failure on this thread ("" if none). */
const char *aps_last_error(void);

/* Records a failure message (printf format) and returns s, so callers can write
 * `return aps_fail(APS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));`. */
aps_status aps_fail(aps_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends context to the last message ("loading x.safetensors: " + old) and returns s. */
aps_status aps_fail_context(aps_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void aps_clear_error(void);

/* Warnings go to stderr with an "aps: warning: " prefix; tests may count them. */
void aps_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
unsigned aps_warning_count(void);

#define APS_TRY(expr)                  \
  do {                                 \
    aps_status aps_try_s_ = (expr);    \
    if (aps_try_s_ != APS_OK)          \
      return aps_try_s_;               \
  } while (0)

#endif
