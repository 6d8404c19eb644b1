/* Small helpers shared by the benchmarks. */
#ifndef APS_BENCH_UTIL_H
#define APS_BENCH_UTIL_H

#include "aps_clock.h" /* aps_now_ms for timings */

/* A figure's spread over its timed repeats (warm-ups excluded). */
typedef struct bench_stat {
  double median, min, max;
  int repeats;
} bench_stat;

double bench_median(double *v, int n); /* sorts v; bench_last() then returns its spread */
bench_stat bench_stat_of(double *v, int n); /* sorts v */
/* The spread of the last bench_median call: the suites time through helpers that return a
 * median, and take the spread from here for the report (bench_report.h). */
bench_stat bench_last(void);
/* a·x + b for every value (a < 0 swaps min and max). */
bench_stat bench_stat_map(bench_stat s, double a, double b);
/* amount / (x − offset): a rate from a time (min and max swap). */
bench_stat bench_stat_per(bench_stat s, double amount, double offset);

/* Theoretical fp32 peak of this CPU as lavapipe uses it (256-bit vectors), derived from
 * the core count, the clock and the ISA; 0 when it cannot be derived. `how` describes it. */
double cpu_peak_gflops_lavapipe(char *how, unsigned how_size);

#endif
