/* The prior's −ELBO estimated over a data set, in bits per dimension (docs/METHOD.md §3):
 * each image is dequantised (uniform noise over one 8-bit level), t is drawn on the host
 * from the importance density g²/σ² (aps_sde_importance_inv), and the three normal draws
 * of the estimator come from the host generator; the runner holds aps_prior_elbo_graph's
 * plan (inputs "x", "t", "e_t", "e_1", "e_0"; output "nelbo" in nats). */
#ifndef APS_ELBO_H
#define APS_ELBO_H
#include "dataset.h"
#include "prior.h"
#include "runner.h"

/* One diffusion time from the importance density, from one host draw. */
double aps_elbo_draw_t(const aps_sde *s, uint64_t *rng);

/* −ELBO in nats of a [-1, 1] image of `dim` values -> bits/dim of its 0-255 data (the
 * change of variables from [-1, 1] to [0, 255] adds log 127.5 per dimension). */
double aps_elbo_bits_per_dim(double nelbo_nats, double dim);

typedef struct aps_elbo_result {
  double bits_per_dim; /* mean over images × draws */
  double stderr_bpd;   /* its standard error */
  int64_t samples;     /* images × draws */
} aps_elbo_result;

/* The first n images of ds (n ≤ 0: all), each `draws` times, in batches of the runner's
 * batch size; the draws come from a generator seeded by seed. ds must match the model's
 * image size and channels (checked, the error names the data's source). */
aps_status aps_elbo_estimate(aps_runner *r, const aps_prior_config *c, int batch, const aps_dataset *ds, int64_t n,
                             int draws, uint64_t seed, aps_elbo_result *out);
#endif
