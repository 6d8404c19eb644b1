/* DPS (dps.h, docs/METHOD.md §7): the step graph and the host's sampler loop. */
#include "dps.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const rule_names[APS_DPS_RULE_COUNT] = {"em", "ddim"};
const char *aps_dps_rule_name(aps_dps_rule r) { return (unsigned)r < APS_DPS_RULE_COUNT ? rule_names[r] : "?"; }
int aps_dps_rule_parse(const char *name) {
  for (int i = 0; name && i < APS_DPS_RULE_COUNT; i++)
    if (!strcmp(name, rule_names[i]))
      return i;
  return -1;
}

/* [N] -> [N, 1, 1, 1]. */
static gr_tensor per_sample(gr_graph *g, gr_tensor v, int n) { return gr_reshape(g, v, GR_SHAPE(n, 1, 1, 1)); }

static gr_tensor unet_eps(gr_graph *g, void *config, gr_tensor x, gr_tensor t) { return aps_prior_eps(g, config, x, t); }

/* The number of measured values per sample [N]: C·Σ m for masks, C·MH·MW otherwise. */
static gr_tensor measured_count(gr_graph *g, const aps_op_graph *op) {
  const aps_op_layout *l = &op->l;
  if (l->cls == APS_OPC_MASK)
    return gr_reshape(g, gr_scale_shift(g, gr_reduce_op(g, GR_SUM, op->param, 14u), (float)l->c, 0.0f),
                      GR_SHAPE(op->n));
  return gr_scale_shift(g, gr_scale_shift(g, op->sigma_y, 0.0f, 0.0f), 1.0f, (float)l->c * l->mh * l->mw);
}

aps_status aps_dps_graph(const aps_prior_config *c, const aps_op_layout *l, int batch, aps_eps_builder eps,
                         void *user, gr_graph **out) {
  *out = NULL;
  const gr_unet_config *u = &c->unet;
  if (batch < 1)
    return aps_fail(APS_ERR_INVALID_ARG, "dps graph: batch %d", batch);
  if (l->c != u->image_channels || l->h != u->image_size || l->w != u->image_size)
    return aps_fail(APS_ERR_INVALID_ARG, "dps graph: the operator acts on %dx%dx%d images, the prior makes %dx%dx%d",
                    l->c, l->h, l->w, u->image_channels, u->image_size, u->image_size);
  if (!eps) {
    APS_TRY(aps_prior_config_check(c));
    eps = unet_eps, user = (void *)c;
  }
  gr_graph *g = gr_graph_create();
  if (!g)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "dps graph: out of host memory");
  gr_tensor x = gr_input(g, "x_t", GR_SHAPE(batch, l->c, l->h, l->w)), t = gr_input(g, "t", GR_SHAPE(batch));
  gr_tensor y = gr_input(g, "y", GR_SHAPE(batch, l->c, l->mh, l->mw));
  aps_op_graph op;
  aps_status s = aps_op_graph_inputs(g, l, batch, "op", &op);
  gr_tensor e = 0, x0 = 0, norm = 0, grad = 0;
  if (s == APS_OK) {
    e = eps(g, user, x, t);
    gr_tensor a = per_sample(g, aps_prior_alpha(g, &c->sde, t), batch);
    gr_tensor sg = per_sample(g, aps_prior_sigma(g, &c->sde, t), batch);
    x0 = gr_div(g, gr_sub(g, x, gr_mul(g, sg, e)), a);
    gr_tensor r = gr_sub(g, y, aps_op_forward(g, &op, x0));
    /* ‖r‖ = √max(Σr², 1e-30): the floor only keeps an exact fit's gradient finite (zero). */
    gr_tensor ss = gr_reshape(g, gr_reduce_op(g, GR_SUMSQ, r, 14u), GR_SHAPE(batch));
    norm = gr_unary_op(g, GR_SQRT, gr_binary_op(g, GR_MAX, ss, gr_const_scalar(g, 1e-30f)));
    s = gr_graph_status(g);
  }
  if (s == APS_OK) {
    s = gr_grad(g, norm, 1, &x, &grad);
    if (s == APS_OK && !grad)
      s = aps_fail(APS_ERR_INVALID_ARG, "dps graph: the residual does not depend on x_t");
  }
  if (s == APS_OK) {
    /* ‖r‖ / (max(σ_y, floor) √M): about 1 for a sample that fits the measurement as well as
     * the noise allows (docs/METHOD.md §8). */
    gr_tensor sy = gr_binary_op(g, GR_MAX, op.sigma_y, gr_const_scalar(g, APS_SIGMA_Y_FLOOR));
    gr_tensor dc = gr_div(g, norm, gr_mul(g, sy, gr_unary_op(g, GR_SQRT, measured_count(g, &op))));
    gr_output(g, e, "eps");
    gr_output(g, x0, "x0");
    gr_output(g, norm, "norm");
    gr_output(g, grad, "grad");
    gr_output(g, dc, "consistency");
    s = gr_graph_status(g);
  }
  if (s != APS_OK) {
    aps_fail_context(s, "dps graph: ");
    gr_graph_destroy(g);
    return s;
  }
  *out = g;
  return APS_OK;
}

aps_status aps_dps_open(const char *path, const aps_runner_desc *device, const aps_op_layout *l, int batch,
                        aps_prior_config *cfg, gr_graph **g, aps_runner **r) {
  gr_st *st = NULL;
  *g = NULL, *r = NULL;
  aps_status s = gr_st_open(path, &st);
  if (s == APS_OK)
    s = aps_prior_config_from_file(st, cfg);
  if (s == APS_OK && (s = aps_dps_graph(cfg, l, batch, NULL, NULL, g)) != APS_OK)
    aps_fail_context(s, "%s: ", path);
  if (s == APS_OK && (s = gr_st_check_params(*g, st)) == APS_OK) /* before any allocation */
    s = aps_runner_create(*g, device, r);
  if (s == APS_OK && (s = aps_runner_load(*r, st)) != APS_OK)
    aps_fail_context(s, "%s: ", path);
  gr_st_close(st);
  if (s != APS_OK) {
    aps_runner_destroy(*r);
    gr_graph_destroy(*g);
    *g = NULL, *r = NULL;
  }
  return s;
}

/* The operator's inputs by name (aps_op_graph_inputs' names with prefix "op"). */
static aps_status set_operator(aps_runner *r, const aps_op_batch *b) {
  const aps_op_layout *l = &b->l;
  int64_t plane = (int64_t)b->n * l->h * l->w;
  if (l->cls != APS_OPC_SR)
    APS_TRY(aps_runner_set(r, "op.param", b->param, plane));
  if (l->cls == APS_OPC_BLUR) {
    APS_TRY(aps_runner_set(r, "op.kernel", b->kernel, (int64_t)b->n * l->ksize * l->ksize));
    APS_TRY(aps_runner_set(r, "op.sigma_b", b->sigma_b, b->n));
  }
  return aps_runner_set(r, "op.sigma_y", b->sigma_y, b->n);
}

typedef struct dps_state {
  aps_runner *r;
  int n, steps;
  int64_t per, count; /* values per sample, in the batch */
  float *tbuf, *eps, *grad, *norm;
} dps_state;

/* Every value finite, or an error naming the step, the output and the sample. */
static aps_status check_finite(const dps_state *s, int step, double t, const char *what, const float *v, int64_t per) {
  for (int64_t i = 0; i < (int64_t)s->n * per; i++)
    if (!isfinite(v[i]))
    {
      char where[64];
      if (step < s->steps)
        snprintf(where, sizeof where, "step %d of %d", step + 1, s->steps);
      else
        snprintf(where, sizeof where, "the final denoising");
      return aps_fail(APS_ERR_INVALID_ARG, "dps: %s (t = %.4f): '%s' of sample %d is %s", where, t, what,
                      (int)(i / per), isnan(v[i]) ? "NaN" : "Inf");
    }
  return APS_OK;
}

/* One run of the step graph at x, time t: eps, grad and norm of the batch. */
static aps_status evaluate(dps_state *s, int step, const float *x, double t) {
  for (int i = 0; i < s->n; i++)
    s->tbuf[i] = (float)t;
  APS_TRY(aps_runner_set(s->r, "x_t", x, s->count));
  APS_TRY(aps_runner_set(s->r, "t", s->tbuf, s->n));
  APS_TRY(aps_runner_run(s->r));
  APS_TRY(aps_runner_get(s->r, "eps", s->eps, s->count));
  APS_TRY(aps_runner_get(s->r, "grad", s->grad, s->count));
  APS_TRY(aps_runner_get(s->r, "norm", s->norm, s->n));
  APS_TRY(check_finite(s, step, t, "eps", s->eps, s->per));
  APS_TRY(check_finite(s, step, t, "norm", s->norm, 1));
  return check_finite(s, step, t, "grad", s->grad, s->per);
}

float aps_dps_default_zeta(int steps) { return fminf(APS_DPS_ZETA_TOTAL / (float)steps, APS_DPS_ZETA_MAX); }

aps_status aps_dps_sample(aps_runner *r, const aps_dps_desc *desc, const aps_op_batch *ops, const float *y,
                          uint64_t seed, float *out) {
  aps_dps_desc d = desc ? *desc : (aps_dps_desc){0};
  if (!d.steps)
    d.steps = APS_DPS_STEPS_DEFAULT;
  if (d.zeta == 0.0f && d.steps > 0)
    d.zeta = aps_dps_default_zeta(d.steps);
  if (d.sde.beta0 == 0 && d.sde.beta1 == 0 && d.sde.eps == 0)
    d.sde = aps_sde_default();
  if (d.steps < 1 || !(d.zeta > 0) || !isfinite(d.zeta) || (unsigned)d.rule >= APS_DPS_RULE_COUNT ||
      !(d.eta >= 0 && d.eta <= 1))
    return aps_fail(APS_ERR_INVALID_ARG, "dps: steps %d, zeta %g, rule %d, eta %g: need steps >= 1, zeta > 0, rule "
                    "em or ddim and eta in [0, 1]", d.steps, d.zeta, (int)d.rule, d.eta);
  if (!ops || ops->n < 1 || !y || !out)
    return aps_fail(APS_ERR_INVALID_ARG, "dps: no operators, measurements or output");
  const aps_op_layout *l = &ops->l;
  const aps_sde *sde = &d.sde;
  dps_state s = {.r = r, .n = ops->n, .steps = d.steps, .per = (int64_t)l->c * l->h * l->w};
  s.count = s.per * s.n;
  APS_TRY(aps_runner_set(r, "y", y, (int64_t)s.n * l->c * l->mh * l->mw));
  APS_TRY(set_operator(r, ops));
  uint64_t *rng = malloc((size_t)s.n * sizeof *rng);
  s.tbuf = malloc((size_t)s.n * sizeof *s.tbuf);
  s.norm = malloc((size_t)s.n * sizeof *s.norm);
  s.eps = malloc((size_t)s.count * sizeof *s.eps);
  s.grad = malloc((size_t)s.count * sizeof *s.grad);
  aps_status st = rng && s.tbuf && s.norm && s.eps && s.grad ? APS_OK : aps_fail(APS_ERR_OUT_OF_MEMORY, "dps: out of host memory");
  float *x = out;
  /* Sample i's own stream: its start noise, then its step noises in order. */
  for (int i = 0; st == APS_OK && i < s.n; i++) {
    rng[i] = aps_op_seed(aps_op_seed(seed, 0x445053u /* "DPS" */), (uint64_t)i);
    for (int64_t k = 0; k < s.per; k++)
      x[i * s.per + k] = aps_rng_normal(&rng[i]);
  }
  double h = (1.0 - sde->eps) / d.steps, zeta = d.unguided ? 0.0 : d.zeta;
  for (int k = 0; st == APS_OK && k < d.steps; k++) {
    double t = 1.0 - k * h, tn = k + 1 == d.steps ? sde->eps : t - h;
    if ((st = evaluate(&s, k, x, t)) != APS_OK)
      break;
    double beta = aps_sde_beta(sde, t), a = aps_sde_alpha(sde, t), sg = aps_sde_sigma(sde, t);
    double an = aps_sde_alpha(sde, tn), sn = aps_sde_sigma(sde, tn);
    int last = k + 1 == d.steps;
    /* x' = c_x x + c_e ε + noise·z, then − ζ grad. */
    double cx, ce, noise;
    if (d.rule == APS_DPS_EM) {
      cx = 1.0 + 0.5 * h * beta, ce = -h * beta / sg, noise = last ? 0.0 : sqrt(beta * h);
    } else {
      double eta_s = last ? 0.0 : d.eta * sn / sg * sqrt(fmax(0.0, 1.0 - a * a / (an * an)));
      cx = an / a, ce = sqrt(fmax(0.0, sn * sn - eta_s * eta_s)) - an * sg / a, noise = eta_s;
    }
    for (int i = 0; i < s.n; i++)
      for (int64_t j = i * s.per; j < (i + 1) * s.per; j++) {
        double z = noise > 0 ? noise * aps_rng_normal(&rng[i]) : 0.0;
        x[j] = (float)(cx * x[j] + ce * s.eps[j] + z - zeta * s.grad[j]);
      }
    if (d.progress)
      d.progress(d.progress_user, k + 1, d.steps, t, s.norm, s.n);
  }
  /* The denoised mean at t = eps (the prior's samplers' last evaluation). */
  if (st == APS_OK && (st = evaluate(&s, d.steps, x, sde->eps)) == APS_OK) {
    double a = aps_sde_alpha(sde, sde->eps), sg = aps_sde_sigma(sde, sde->eps);
    for (int64_t j = 0; j < s.count; j++)
      x[j] = (float)((x[j] - sg * s.eps[j]) / a);
    if (d.final_norm)
      memcpy(d.final_norm, s.norm, (size_t)s.n * sizeof *s.norm);
  }
  free(rng), free(s.tbuf), free(s.norm), free(s.eps), free(s.grad);
  return st;
}
