/* Small models and data the app tests share (test_distill.c). */
#ifndef APS_APP_FIXTURES_H
#define APS_APP_FIXTURES_H
#include <stdint.h>

#include "prior.h"

/* A U-Net prior for 8×8 single-channel images, widths 8 and 16. */
aps_prior_config test_tiny_prior(void);
/* That prior with random weights, as a model file at path. */
aps_status test_write_tiny_prior(const char *path);
/* A random d×d rotation (Gram-Schmidt on the columns of a Gaussian matrix), row-major. */
void test_random_rotation(uint64_t *rng, int d, double *q);
#endif
