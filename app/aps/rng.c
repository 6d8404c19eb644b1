#include "rng.h"

#include <math.h>

uint64_t aps_rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t aps_rng_below(uint64_t *state, uint64_t n) {
  if (n <= 1)
    return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* accept r < limit: an exact multiple of n */
  uint64_t r;
  do
    r = aps_rng_next(state);
  while (r >= limit);
  return r % n;
}

double aps_rng_uniform(uint64_t *state) { return (double)(aps_rng_next(state) >> 11) * 0x1p-53; }

float aps_rng_normal(uint64_t *state) {
  double u1 = ((double)(aps_rng_next(state) >> 11) + 1.0) * 0x1p-53; /* (0, 1] */
  double u2 = (double)(aps_rng_next(state) >> 11) * 0x1p-53;
  return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
