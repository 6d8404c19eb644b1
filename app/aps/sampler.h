/* Unconditional samples from the prior (docs/METHOD.md §2), to see that it is good: the reverse
 * SDE by Euler-Maruyama, DDIM's deterministic steps, and the probability-flow ODE by Heun's
 * method. Each runs `steps` steps on the uniform grid from t = 1 down to eps, then returns
 * the denoised mean (x − σ ε_θ) / a at t = eps. The runner holds aps_prior_eps_graph's
 * plan (inputs "x", "t"; output "eps") at the batch given. */
#ifndef APS_SAMPLER_H
#define APS_SAMPLER_H
#include <stdint.h>

#include "prior.h"
#include "rng.h"
#include "runner.h"

typedef enum aps_sampler { APS_SAMPLER_EM = 0, APS_SAMPLER_DDIM, APS_SAMPLER_ODE, APS_SAMPLER_COUNT } aps_sampler;
const char *aps_sampler_name(aps_sampler s);
/* "em", "ddim", "ode" -> the sampler; -1 if none. */
int aps_sampler_parse(const char *name);

/* out [batch, C, S, S]; network evaluations: steps (+1 for the final denoising; Heun
 * doubles them but for the last step). */
aps_status aps_prior_sample(aps_runner *r, const aps_prior_config *c, int batch, aps_sampler kind, int steps,
                            uint64_t *rng, float *out);
#endif
