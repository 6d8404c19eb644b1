/* The one report of `aps bench`: every suite adds its figures here, and `--json FILE` writes
 * them in one schema, "aps-bench/1" (docs/BENCH.md), that `aps bench compare` and the
 * PyTorch twin share. Suites still print their own tables; this only collects. */
#ifndef APS_BENCH_REPORT_H
#define APS_BENCH_REPORT_H
#include <stdint.h>

#include "bench_util.h"

#define BENCH_SCHEMA "aps-bench/1"

typedef struct bench_figure {
  const char *name, *unit; /* the unit says which way is better: ms, us lower; /s higher */
  bench_stat s;
  int batch;                 /* 0: does not apply */
  double device_ms;          /* GPU timestamps; 0: not measured */
  int64_t peak_memory_bytes; /* the plan's device memory; 0: not known */
  int counts;                /* 1: dispatches and barriers below are known */
  uint32_t dispatches, barriers;
} bench_figure;

/* Figures added after this belong to the suite (a second call with a name continues it). */
void bench_report_suite(const char *suite);
/* The current suite's device; the first one named is the report's. driver may be NULL;
 * vulkan_api 0 on the CPU device. */
void bench_report_device(const char *device, const char *driver, uint32_t vulkan_api);
void bench_report_add(const bench_figure *f);
/* The figure "name" of the current suite; value in unit, from a stat of repeats. */
void bench_report_stat(const char *name, const char *unit, bench_stat s, int batch);
/* Writes the report atomically (base/aps_file.h); 0, or 1 after printing the error. */
int bench_report_write(const char *path, int quick);
#endif
