/* Small helpers shared by the benchmarks. */
#ifndef APS_BENCH_UTIL_H
#define APS_BENCH_UTIL_H

#include "aps_clock.h" /* aps_now_ms for timings */
double bench_median(double *v, int n); /* sorts v */

/* Theoretical fp32 peak of this CPU as lavapipe uses it (256-bit vectors), derived from
 * the core count, the clock and the ISA; 0 when it cannot be derived. `how` describes it. */
double cpu_peak_gflops_lavapipe(char *how, unsigned how_size);

#endif
