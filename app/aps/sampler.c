#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


static const char *const names[APS_SAMPLER_COUNT] = {"em", "ddim", "ode"};
const char *aps_sampler_name(aps_sampler s) { return (unsigned)s < APS_SAMPLER_COUNT ? names[s] : "?"; }
int aps_sampler_parse(const char *name) {
  for (int i = 0; i < APS_SAMPLER_COUNT; i++)
    if (!strcmp(name, names[i]))
      return i;
  return -1;
}

/* eps = ε_θ(x, t) for the whole batch at one time. */
static aps_status predict(aps_runner *r, int batch, int64_t n, const float *x, double t, float *tbuf, float *eps) {
  for (int i = 0; i < batch; i++)
    tbuf[i] = (float)t;
  APS_TRY(aps_runner_set(r, "x", x, n));
  APS_TRY(aps_runner_set(r, "t", tbuf, batch));
  APS_TRY(aps_runner_run(r));
  return aps_runner_get(r, "eps", eps, n);
}

/* The drift of the probability-flow ODE, dx/dt = −½β (x + s λ) with score s = −ε/σ and
 * λ = 1 (ODE) or 2 (the reverse SDE's drift, with the diffusion added separately). */
static void drift(const aps_sde *s, double t, double lambda, int64_t n, const float *x, const float *eps, float *out) {
  double beta = aps_sde_beta(s, t), sig = aps_sde_sigma(s, t);
  for (int64_t i = 0; i < n; i++)
    out[i] = (float)(-0.5 * beta * (x[i] - lambda * eps[i] / sig));
}

aps_status aps_prior_sample(aps_runner *r, const aps_prior_config *c, int batch, aps_sampler kind, int steps,
                            uint64_t *rng, float *out) {
  if (steps < 1 || batch < 1 || (unsigned)kind >= APS_SAMPLER_COUNT)
    return aps_fail(APS_ERR_INVALID_ARG, "sampler: need steps >= 1 and a known sampler");
  const aps_sde *s = &c->sde;
  int64_t n = (int64_t)batch * c->unet.image_channels * c->unet.image_size * c->unet.image_size;
  float *x = out, *eps = malloc((size_t)n * sizeof *eps), *d1 = malloc((size_t)n * sizeof *d1);
  float *x2 = malloc((size_t)n * sizeof *x2), *tbuf = malloc((size_t)batch * sizeof *tbuf);
  aps_status st = eps && d1 && x2 && tbuf ? APS_OK : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (int64_t i = 0; st == APS_OK && i < n; i++)
    x[i] = aps_rng_normal(rng);
  double h = (1.0 - s->eps) / steps;
  for (int k = 0; st == APS_OK && k < steps; k++) {
    double t = 1.0 - k * h, tn = t - h;
    if ((st = predict(r, batch, n, x, t, tbuf, eps)) != APS_OK)
      break;
    if (kind == APS_SAMPLER_EM) { /* x(t − h) = x − h f + sqrt(β h) z, f the reverse drift */
      drift(s, t, 2.0, n, x, eps, d1);
      double noise = k + 1 < steps ? sqrt(aps_sde_beta(s, t) * h) : 0.0;
      for (int64_t i = 0; i < n; i++)
        x[i] = (float)(x[i] - h * d1[i] + (noise > 0 ? noise * aps_rng_normal(rng) : 0.0));
    } else if (kind == APS_SAMPLER_DDIM) { /* x0 = (x − σ ε)/a, then x(t') = a' x0 + σ' ε */
      double a = aps_sde_alpha(s, t), sg = aps_sde_sigma(s, t), an = aps_sde_alpha(s, tn), sn = aps_sde_sigma(s, tn);
      for (int64_t i = 0; i < n; i++)
        x[i] = (float)(an * (x[i] - sg * eps[i]) / a + sn * eps[i]);
    } else { /* Heun on the probability-flow ODE; Euler on the last step */
      drift(s, t, 1.0, n, x, eps, d1);
      for (int64_t i = 0; i < n; i++)
        x2[i] = (float)(x[i] - h * d1[i]);
      if (k + 1 < steps) {
        if ((st = predict(r, batch, n, x2, tn, tbuf, eps)) != APS_OK)
          break;
        drift(s, tn, 1.0, n, x2, eps, x2); /* x2 now holds the drift at the end point */
        for (int64_t i = 0; i < n; i++)
          x[i] = (float)(x[i] - 0.5 * h * (d1[i] + x2[i]));
      } else {
        memcpy(x, x2, (size_t)n * sizeof *x);
      }
    }
  }
  if (st == APS_OK && (st = predict(r, batch, n, x, s->eps, tbuf, eps)) == APS_OK) {
    double a = aps_sde_alpha(s, s->eps), sg = aps_sde_sigma(s, s->eps);
    for (int64_t i = 0; i < n; i++)
      x[i] = (float)((x[i] - sg * eps[i]) / a);
  }
  /* Finite outputs only: broken weights or an absurd SDE must not become a black PNG. */
  for (int64_t i = 0; st == APS_OK && i < n; i++)
    if (!isfinite(x[i]))
      st = aps_fail(APS_ERR_FORMAT, "sampler: sample %lld of the batch holds %s after %d %s steps (the prior's "
                    "weights or SDE give non-finite values)", (long long)(i / (n / batch)), isnan(x[i]) ? "NaN" : "Inf",
                    steps, aps_sampler_name(kind));
  free(eps), free(d1), free(x2), free(tbuf);
  return st;
}
