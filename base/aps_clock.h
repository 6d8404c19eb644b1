/* A monotonic clock for timings, progress lines and benchmarks (never the wall clock,
 * which jumps). */
#ifndef APS_CLOCK_H
#define APS_CLOCK_H

/* Milliseconds and seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double aps_now_ms(void);
double aps_now_s(void);

#endif
