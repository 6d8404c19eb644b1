/* The baseline: diffusion posterior sampling, DPS (Chung et al., 2023; docs/METHOD.md §7).
 * No training beyond the prior: every step runs the prior's network forward and back.
 *
 * One step is one graph (one plan on the device), aps_dps_graph. Its inputs:
 *   "x_t" [N, C, H, W]   the current state,
 *   "t"   [N]            its time (the sampler gives every sample the same t),
 *   "y"   [N, C, MH, MW] the measurement,
 *   the operator's inputs "op.param", "op.kernel", "op.sigma_b", "op.sigma_y" (those of its
 *   class, aps_op_graph_inputs with prefix "op"; σ_y enters only "consistency"),
 * and its outputs:
 *   "eps"  [N, C, H, W]  ε = ε_θ(x_t, t),
 *   "x0"   [N, C, H, W]  Tweedie's x̂₀ = (x_t − σ(t) ε) / a(t),
 *   "norm" [N]           ‖y − A x̂₀‖₂ per sample (the norm, not its square),
 *   "grad" [N, C, H, W]  ∇_{x_t} ‖y − A x̂₀‖, through the network (gr_grad with respect to the
 *                        input x_t; the prior's weights are parameters, not differentiated),
 *   "consistency" [N]    ‖y − A x̂₀‖ / (max(σ_y, APS_SIGMA_Y_FLOOR) √M), M the measured values
 *                        (C·Σm for masks): about 1 for a fit as close as the noise allows.
 * Samples are independent, so the gradient of the batch's sum of norms is each sample's own.
 * The prior's parameters keep the names of its model file (aps_dps_open loads them).
 *
 * The sampler (aps_dps_sample) runs `steps` steps on the uniform grid t_k = 1 − k h,
 * h = (1 − eps)/steps, as the prior's samplers (sampler.h) do, each
 *   x_{t−h} = x' − ζ ∇_{x_t} ‖y − A x̂₀(x_t)‖,
 * where x' is one unconditional reverse step from x_t by the rule chosen:
 *   em:   Euler-Maruyama on the reverse SDE, x' = x + h ½β(t)(x − 2ε/σ(t)) + √(β(t) h) z,
 *         no noise on the last step (sampler.c's em);
 *   ddim: x' = a(t−h) x̂₀ + √(σ(t−h)² − s²) ε + s z with s = η σ(t−h)/σ(t) √(1 − a(t)²/a(t−h)²);
 *         η = 0 is DDIM's deterministic step (sampler.c's ddim), η = 1 the ancestral (DDPM)
 *         step; no noise on the last step.
 * It ends with the denoised mean at t = eps, (x − σ(eps) ε_θ(x, eps)) / a(eps), with no
 * guidance step after it: steps + 1 network evaluations, each forward and back.
 *
 * ζ's rule is docs/METHOD.md §7's exactly: a constant ζ times the gradient of the norm. Since
 * ∇‖r‖ = ∇‖r‖² / (2‖r‖), this is the paper's step ζ_i ∇‖r‖² with ζ_i = ζ / (2‖r‖): the
 * per-sample scaling of Chung et al.'s implementations (ζ' / ‖y − A x̂₀‖ on the squared norm,
 * ζ = 2ζ'), not a separate option. The step moves x_t by about ζ along the residual's direction
 * (mapped back through the network) whatever the residual's size, so what matters is the total
 * guidance ζ·steps: in the Gaussian case of tests/app/test_dps.c the best ζ was 0.1 at 200
 * steps and 0.02 at 1000. The default is therefore ζ = APS_DPS_ZETA_TOTAL / steps, but at most
 * APS_DPS_ZETA_MAX: with few steps a large ζ throws samples far off (finite, so not caught).
 *
 * Box inpainting (a 12×12 box, σ_y = 0.05) of 32×32 Fashion-MNIST test images 0-7 with the
 * shipped prior, mean PSNR against the clean images and ‖y − A x‖ / (σ_y √M) (1 = a fit as
 * close as the noise allows), CPU device (tests/app/test_dps.c, dps_zeta_sweep):
 *   em, 20 steps:    ζ 1: 18.0 dB, 4.56;  ζ 2.5: 20.4 dB, 3.00;  ζ 5: 20.2 dB, 3.22;  ζ 12.5: −17.6 dB
 *                    (6 of 8 images thrown off to about −30 dB)
 *   em, 50 steps:    ζ 2.5: 24.7 dB, 1.22;  ζ 5: 23.2 dB, 1.79
 *   em, 100 steps:   ζ 0.3: 21.2 dB, 2.98;  ζ 1: 25.4 dB, 1.32;  ζ 3: 25.9 dB, 0.88;  ζ 10: 20.2 dB, 3.33
 *   em, 250 steps:   ζ 0.8: 26.4 dB, 0.85;  ζ 2.5: 25.5 dB, 0.70
 *   em, 1000 steps:  ζ 0.25: 24.7 dB, 0.85
 *   ddim η = 1, 100: ζ 1: 25.9 dB, 1.31;  ζ 3: 26.4 dB, 0.94
 *   ddim η = 0, 100: ζ 0.3: 19.9 dB, 2.23;  ζ 1: 12.0 dB, 7.50 (every image);  ζ 3: 22.9 dB, 3.16
 * (one sample per image: differences of 1-2 dB are within the draw's spread), so ζ·steps ≈ 250
 * with em or ddim η = 1, and ζ <= 2.5 below 100 steps. Deterministic DDIM (η = 0) with guidance is erratic
 * in ζ; prefer em or η = 1.
 *
 * After every network run the outputs are checked finite; a NaN or Inf stops the sampler with
 * an error naming the step, its time, the output and the sample. */
#ifndef APS_DPS_H
#define APS_DPS_H
#include <stdint.h>

#include "operators.h"
#include "prior.h"
#include "runner.h"

#define APS_DPS_STEPS_DEFAULT 1000
/* The default ζ is min(APS_DPS_ZETA_TOTAL / steps, APS_DPS_ZETA_MAX): 0.25 at 1000 steps, 1 at
 * 250, 2.5 at 100 and fewer. See above. */
#define APS_DPS_ZETA_TOTAL 250.0f
#define APS_DPS_ZETA_MAX 2.5f
float aps_dps_default_zeta(int steps); /* the rule above */

typedef enum aps_dps_rule { APS_DPS_EM = 0, APS_DPS_DDIM, APS_DPS_RULE_COUNT } aps_dps_rule;
const char *aps_dps_rule_name(aps_dps_rule r); /* "em", "ddim" */
int aps_dps_rule_parse(const char *name);      /* -1 if none */

/* The step graph for a batch of `batch` on the prior's images (l must be a layout of
 * c's image size and channels). eps NULL: the prior's U-Net (aps_prior_eps); else a builder
 * of ε(x, t) (tests: a closed form) with its user pointer. Errors name what is at fault. */
aps_status aps_dps_graph(const aps_prior_config *c, const aps_op_layout *l, int batch, aps_eps_builder eps,
                         void *user, gr_graph **out);

/* A prior's model file opened for DPS: its config from the metadata, the step graph of the
 * prior's U-Net for layout l at `batch`, and a runner on `device` holding the weights. On
 * failure nothing is left allocated and the message names the file. */
aps_status aps_dps_open(const char *path, const aps_runner_desc *device, const aps_op_layout *l, int batch,
                        aps_prior_config *cfg, gr_graph **g, aps_runner **r);

/* Called after each step with the batch's residual norms ‖y − A x̂₀‖ at that step's x_t. */
typedef void (*aps_dps_progress_fn)(void *user, int step, int steps, double t, const float *norm, int n);

typedef struct aps_dps_desc {
  int steps;          /* 0 = APS_DPS_STEPS_DEFAULT */
  float zeta;         /* ζ > 0; 0 = the default above */
  aps_dps_rule rule;  /* 0 = em */
  float eta;          /* ddim: 0 (deterministic) to 1 (ancestral); em ignores it */
  aps_sde sde;        /* must be the graph's (the prior's config's); all 0 = aps_sde_default() */
  int unguided;       /* 1: no ζ step (the prior's own sampler through the same graph, a check) */
  float *final_norm;  /* NULL or [n]: ‖y − A x̂₀‖ of the returned samples (fp32, in the graph) */
  aps_dps_progress_fn progress;
  void *progress_user;
} aps_dps_desc;

/* Samples for the batch of operators ops (ops->n = the graph's batch) and measurements y
 * [n, C, MH, MW]; out [n, C, H, W]. The runner holds aps_dps_graph's plan. Every random
 * number comes from `seed` on the host, sample i from its own stream (aps_op_seed of a value
 * derived from seed, and i), so a sample does not depend on the batch it is drawn in. */
aps_status aps_dps_sample(aps_runner *r, const aps_dps_desc *d, const aps_op_batch *ops, const float *y,
                          uint64_t seed, float *out);
#endif
