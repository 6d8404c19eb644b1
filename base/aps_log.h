/* Messages for a person at a terminal, on stderr with an "aps: " prefix. The level comes
 * from APS_LOG (quiet | info | debug; info by default), read once. Library code reports
 * progress and choices through here, never straight to stdout, which belongs to a
 * command's results (tables, JSON). Warnings are aps_warn (aps_status.h): always shown. */
#ifndef APS_LOG_H
#define APS_LOG_H

typedef enum aps_log_level { APS_LOG_QUIET = 0, APS_LOG_INFO, APS_LOG_DEBUG } aps_log_level;

aps_log_level aps_log_level_get(void);
void aps_log(aps_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define aps_info(...) aps_log(APS_LOG_INFO, __VA_ARGS__)
#define aps_debug(...) aps_log(APS_LOG_DEBUG, __VA_ARGS__)

#endif
