/* Small models and data the app tests share (app_fixtures.c). */
#ifndef APS_APP_FIXTURES_H
#define APS_APP_FIXTURES_H
#include <stdint.h>

#include "dataset.h"
#include "prior.h"

/* A U-Net prior for 8×8 single-channel images, widths 8 and 16. */
aps_prior_config test_tiny_prior(void);
/* That prior with random weights, as a model file at path. */
aps_status test_write_tiny_prior(const char *path);
/* n (1 to 65535) 8×8 images of one bright bar, row or column by turns, written as an IDX
 * file in dir and loaded; NULL (with the reason printed) on failure. */
aps_dataset *test_bars_dataset(const char *dir, int n);
/* A random d×d rotation (Gram-Schmidt on the columns of a Gaussian matrix), row-major. */
void test_random_rotation(uint64_t *rng, int d, double *q);
/* A Gaussian prior N(μ, Σ) in 16 dimensions, Σ = Q diag(λ) Qᵀ with Q a random rotation,
 * eigenvalues over a decade (0.04-0.4) and a non-zero mean, under the default VP-SDE. */
enum { TEST_GAUSS_D = 16 };
typedef struct test_gaussian {
  double q[TEST_GAUSS_D * TEST_GAUSS_D], lambda[TEST_GAUSS_D], mu[TEST_GAUSS_D];
  aps_sde sde;
} test_gaussian;
void test_gaussian_make(test_gaussian *p, uint64_t *rng);
/* Its exact ε (an aps_eps_builder, user: the test_gaussian): σ Q diag(1 / (a²λ + σ²)) Qᵀ
 * (x_t − aμ), on x_t of any shape holding 16 values per sample. */
gr_tensor test_gaussian_eps(gr_graph *g, void *user, gr_tensor x, gr_tensor t);
#endif
