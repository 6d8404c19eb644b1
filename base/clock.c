#include "aps_clock.h"

#include <time.h>

double aps_now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double aps_now_ms(void) { return aps_now_s() * 1e3; }
