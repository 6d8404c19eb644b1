/* The host's random numbers: splitmix64, a 64-bit state that checkpoints save, so a
 * resumed run draws exactly what an uninterrupted one would. (Numbers drawn inside a
 * graph come from its Philox generator, gr_random, instead: the same on every device.) */
#ifndef APS_RNG_H
#define APS_RNG_H
#include <stdint.h>

/* The next 64 random bits; advances *state. */
uint64_t aps_rng_next(uint64_t *state);
/* A uniform integer in [0, n) (n >= 1; rejection sampling, no modulo bias). */
uint64_t aps_rng_below(uint64_t *state, uint64_t n);
/* A uniform double in [0, 1) with 53 random bits. */
double aps_rng_uniform(uint64_t *state);
/* A standard normal (Box-Muller on two draws). */
float aps_rng_normal(uint64_t *state);

#endif
