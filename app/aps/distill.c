/* The distillation training graph of distill.h. */
#include "distill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* Σ over every dimension but the first: [N, ...] -> [N]. */
static gr_tensor per_sample_sum(gr_graph *g, gr_tensor v) {
  gr_shape s = gr_tensor_shape(g, v);
  return gr_reshape(g, gr_reduce_op(g, GR_SUM, v, ((1u << s.rank) - 1) & ~1u), GR_SHAPE(s.d[0]));
}

/* t from the importance density π(t) ∝ g²/σ² given u ~ U[0, 1): the cumulative weight
 * log(e^B(t) − 1) − log(e^B(eps) − 1) = u·Z gives B(t) = softplus(u·Z + log(e^B(eps) − 1)),
 * and t the positive root of ½(β1 − β0)t² + β0 t = B, written 2B / (β0 + sqrt(β0² + 2(β1 − β0)B))
 * so that nothing cancels at small t. */
static gr_tensor importance_t(gr_graph *g, const aps_sde *s, gr_tensor u) {
  double z = aps_sde_importance_z(s), c = log(expm1(aps_sde_big_b(s, s->eps))), db = s->beta1 - s->beta0;
  gr_tensor b = gr_unary_op(g, GR_SOFTPLUS, gr_scale_shift(g, u, (float)z, (float)c));
  gr_tensor root = gr_unary_op(g, GR_SQRT, gr_scale_shift(g, b, (float)(2 * db), (float)(s->beta0 * s->beta0)));
  gr_tensor t = gr_div(g, gr_scale_shift(g, b, 2.0f, 0.0f), gr_scale_shift(g, root, 1.0f, (float)s->beta0));
  return gr_clamp(g, t, (float)s->eps, 1.0f);
}

/* u ~ U[0, 1) for the m draws of t of a step, one in each stratum [j/m, (j+1)/m) (jittered
 * stratification; VDM's low-discrepancy sampler is the same idea): t still follows the
 * importance density over the batch, so the batch mean of the ELBO estimates stays
 * unbiased, while the loss's spread between batches' t mostly cancels within each step
 * (at fixed weights its step-to-step sd fell 5.4x; the gradient's norm only 7 %: its
 * noise comes mostly from each sample's own t, noise and z). */
static gr_tensor stratified_u(gr_graph *g, gr_tensor seed, int64_t m, aps_status *s) {
  gr_tensor u = gr_random(g, GR_SHAPE(m), seed, 1, GR_UNIFORM);
  float *ramp = malloc((size_t)m * sizeof *ramp);
  if (!ramp) {
    *s = aps_fail(APS_ERR_OUT_OF_MEMORY, "distill graph: out of host memory");
    return 0;
  }
  for (int64_t j = 0; j < m; j++)
    ramp[j] = (float)j;
  gr_tensor strata = gr_const(g, "t_strata", GR_SHAPE(m), ramp);
  free(ramp);
  return gr_scale_shift(g, gr_add(g, strata, u), (float)(1.0 / (double)m), 0.0f);
}

/* The FORWARD objective: −log q(x | c) = ½‖z‖² + D/2 log 2π − log|det ∂G⁻¹/∂x| with
 * z = G⁻¹(x; c) for the input "x", per dimension, averaged over the batch; *logdet gets
 * log|det ∂G/∂z|'s batch mean. */
static gr_tensor forward_nll(const aps_distill_desc *d, gr_graph *g, gr_tensor cond, gr_tensor *logdet) {
  int64_t n = d->batch, dim = aps_flow_dim(&d->flow);
  gr_tensor x = gr_input(g, "x", aps_flow_shape(&d->flow, n)), ld = 0;
  gr_tensor z = aps_flow_inverse(g, &d->flow, x, cond, &ld);
  if (gr_graph_status(g) != APS_OK || !z)
    return 0;
  gr_tensor half_sq = gr_scale_shift(g, per_sample_sum(g, gr_unary_op(g, GR_SQUARE, z)), 0.5f,
                                     (float)(0.5 * (double)dim * log(2 * M_PI)));
  gr_tensor nll = gr_sub(g, half_sq, ld);
  *logdet = gr_scale_shift(g, gr_reduce_op(g, GR_MEAN, ld, 1u), -1.0f, 0.0f);
  return gr_scale_shift(g, gr_reduce_op(g, GR_MEAN, nll, 1u), (float)(1.0 / (double)dim), 0.0f);
}

static aps_status forward_fail(gr_graph *g) {
  APS_TRY(gr_graph_status(g));
  return aps_fail_context(APS_ERR_INVALID_ARG, "distill graph: the flow's inverse: ");
}

/* gr_adam, and an error when nothing is left to train (a trained_prefix matching nothing). */
static aps_status adam(gr_graph *g, gr_tensor loss, const gr_adam_desc *d, gr_adam_outputs *ao) {
  aps_status s = gr_adam(g, loss, d, ao);
  if (s == APS_OK && ao->params == 0)
    s = aps_fail(APS_ERR_INVALID_ARG, "distill graph: no parameter to train%s%s", d->trained_prefix ? " named " : "",
                 d->trained_prefix ? d->trained_prefix : "");
  return s;
}

aps_status aps_distill_graph(const aps_distill_desc *desc, gr_graph **out) {
  *out = NULL;
  aps_distill_desc d = *desc;
  APS_TRY(aps_flow_config_check(&d.flow));
  if (d.sde.beta1 == 0)
    d.sde = aps_sde_default();
  float lp = d.lambda_p == 0 ? 1.0f : d.lambda_p, le = d.lambda_e == 0 ? 1.0f : d.lambda_e;
  int k = d.t_draws ? d.t_draws : 1;
  if ((unsigned)d.objective > APS_DISTILL_MIXED || !(d.lambda_f >= 0))
    return aps_fail(APS_ERR_INVALID_ARG, "distill graph: objective %d, lambda_f %g (need 0 to 2, lambda_f >= 0)",
                    (int)d.objective, d.lambda_f);
  if (d.batch < 1 || k < 1 || k > 64)
    return aps_fail(APS_ERR_INVALID_ARG, "distill graph: batch %d, t_draws %d (need batch >= 1, 1 to 64 draws)",
                    d.batch, k);
  if (lp > 0 && !d.eps && d.objective != APS_DISTILL_FORWARD)
    return aps_fail(APS_ERR_INVALID_ARG, "distill graph: no prior (eps builder) for lambda_p = %g", lp);
  if (d.adam.max_grad_norm == 0)
    d.adam.max_grad_norm = 1.0f;
  if (!d.adam.frozen_prefix)
    d.adam.frozen_prefix = "prior.";
  int64_t n = d.batch, dim = aps_flow_dim(&d.flow);
  gr_graph *g = gr_graph_create();
  if (!g)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "distill graph: out of host memory");
  if (d.objective == APS_DISTILL_FORWARD) {
    gr_tensor cond = d.flow.cond ? gr_input(g, "cond", aps_flow_cond_shape(&d.flow, n)) : 0, ld = 0;
    gr_tensor loss = forward_nll(&d, g, cond, &ld);
    aps_status s = loss ? APS_OK : forward_fail(g);
    gr_adam_outputs ao;
    if (s == APS_OK) {
      gr_output(g, loss, "loss");
      gr_output(g, ld, "logdet");
      s = adam(g, loss, &d.adam, &ao);
    }
    if (s == APS_OK) {
      gr_output(g, ao.grad_norm, "grad_norm");
      s = gr_graph_status(g);
    }
    if (s != APS_OK)
      return gr_graph_destroy(g), s;
    *out = g;
    return APS_OK;
  }
  gr_tensor seed = gr_input(g, "seed", GR_SHAPE(2));
  gr_tensor cond = d.flow.cond ? gr_input(g, "cond", aps_flow_cond_shape(&d.flow, n)) : 0;
  gr_tensor z = gr_random(g, aps_flow_shape(&d.flow, n), seed, 0, GR_NORMAL), logdet = 0;
  gr_tensor x = aps_flow_forward(g, &d.flow, z, cond, &logdet);
  aps_status s = gr_graph_status(g);
  if (s == APS_OK && !x)
    s = aps_fail_context(APS_ERR_INVALID_ARG, "distill graph: the flow: ");
  gr_tensor ax = s == APS_OK ? (d.forward ? d.forward(g, d.forward_user, x) : x) : 0;
  /* ||y − A(x)||² / (2σ_y²) */
  gr_tensor y = ax ? gr_input(g, "y", gr_tensor_shape(g, ax)) : 0, sigma = gr_input(g, "sigma_y", GR_SHAPE(n));
  gr_tensor fit = gr_div(g, per_sample_sum(g, gr_unary_op(g, GR_SQUARE, gr_sub(g, y, ax))),
                         gr_scale_shift(g, gr_unary_op(g, GR_SQUARE, sigma), 2.0f, 0.0f));
  gr_tensor total = gr_sub(g, fit, gr_scale_shift(g, logdet, le > 0 ? le : 0.0f, 0.0f));
  gr_tensor nelbo = 0;
  if (lp > 0 && s == APS_OK && gr_graph_status(g) == APS_OK) { /* −b_θ(x), averaged over k draws of (t, ε) per sample */
    gr_shape sx = gr_tensor_shape(g, x);
    gr_tensor x4 = sx.rank == 4 ? x : gr_reshape(g, x, GR_SHAPE(n, dim, 1, 1)), xs = x4;
    for (int i = 1; i < k; i++)
      xs = gr_concat(g, xs, x4, 0);
    gr_shape sk = gr_tensor_shape(g, xs);
    gr_tensor u = stratified_u(g, seed, (int64_t)k * n, &s), t = u ? importance_t(g, &d.sde, u) : 0;
    gr_tensor nb = aps_prior_neg_elbo(g, &d.sde, d.eps, d.eps_user, xs, t, gr_random(g, sk, seed, 2, GR_NORMAL),
                                      gr_random(g, sk, seed, 3, GR_NORMAL), gr_random(g, sk, seed, 4, GR_NORMAL));
    nelbo = gr_reshape(g, gr_reduce_op(g, GR_MEAN, gr_reshape(g, nb, GR_SHAPE(k, n)), 1u), GR_SHAPE(n));
    total = gr_add(g, total, gr_scale_shift(g, nelbo, lp, 0.0f));
  }
  gr_tensor loss = gr_scale_shift(g, gr_reduce_op(g, GR_MEAN, total, 1u), (float)(1.0 / (double)dim), 0.0f);
  if (d.objective == APS_DISTILL_MIXED && s == APS_OK && gr_graph_status(g) == APS_OK) {
    gr_tensor ld_f = 0, nll = forward_nll(&d, g, cond, &ld_f);
    if (!nll)
      s = forward_fail(g);
    else {
      gr_output(g, nll, "forward_nll");
      loss = gr_add(g, loss, gr_scale_shift(g, nll, d.lambda_f == 0 ? 1.0f : d.lambda_f, 0.0f));
    }
  }
  gr_output(g, loss, "loss");
  gr_output(g, gr_reduce_op(g, GR_MEAN, fit, 1u), "data_fit");
  gr_output(g, gr_reduce_op(g, GR_MEAN, logdet, 1u), "logdet");
  if (nelbo)
    gr_output(g, gr_reduce_op(g, GR_MEAN, nelbo, 1u), "neg_elbo");
  if (s == APS_OK)
    s = gr_graph_status(g);
  gr_adam_outputs ao;
  if (s == APS_OK)
    s = adam(g, loss, &d.adam, &ao);
  if (s == APS_OK) {
    gr_output(g, ao.grad_norm, "grad_norm");
    s = gr_graph_status(g);
  }
  if (s != APS_OK) {
    gr_graph_destroy(g);
    return s;
  }
  *out = g;
  return APS_OK;
}

gr_tensor aps_distill_prior_eps(gr_graph *g, void *prior_config, gr_tensor x, gr_tensor t) {
  gr_scope_push(g, "prior");
  gr_tensor y = aps_prior_eps(g, prior_config, x, t);
  gr_scope_pop(g);
  return y;
}

/* Whether a file tensor of rank/dims may widen into shape s: rank 4, axis 1 narrower. */
static int widens(int rank, const int64_t *dims, gr_shape s) {
  return rank == 4 && s.rank == 4 && dims[0] == s.d[0] && dims[1] < s.d[1] && dims[2] == s.d[2] && dims[3] == s.d[3];
}

aps_status aps_distill_load_weights(const gr_graph *g, aps_runner *r, const gr_st *st, const char *prefix, int strip,
                                    int grow, const char *what) {
  int widen = grow & APS_LOAD_WIDEN;
  size_t skip = strip ? strlen(prefix) : 0;
  for (int pass = 0; pass < 2; pass++) { /* check everything, then set */
    gr_tensor t;
    for (uint32_t i = 0; (t = gr_param_at(g, i)); i++) {
      const char *name = gr_tensor_name(g, t);
      if (strncmp(name, prefix, strlen(prefix)) || gr_tensor_is_state(g, t))
        continue;
      const char *file_name = name + skip;
      gr_shape s = gr_tensor_shape(g, t);
      int rank;
      int64_t dims[4];
      const float *data;
      if (gr_st_find(st, file_name) < 0 && (grow & APS_LOAD_GROW_HEAD) && !strncmp(name, "flow.head.", 10))
        continue;
      if (gr_st_find(st, file_name) < 0)
        return aps_fail(APS_ERR_FORMAT, "%s: %s lacks '%s'", gr_st_path(st), what, file_name);
      APS_TRY(gr_st_get_f32(st, file_name, &rank, dims, &data));
      int same = rank == s.rank && !memcmp(dims, s.d, sizeof(int64_t) * (size_t)rank);
      if (!same && !(widen && widens(rank, dims, s)))
        return aps_fail(APS_ERR_FORMAT, "%s: '%s' has another shape than %s's network", gr_st_path(st), file_name,
                        what);
      if (!pass)
        continue;
      if (same) {
        APS_TRY(aps_runner_set(r, name, data, gr_shape_count(s)));
        continue;
      }
      float *wide = calloc((size_t)gr_shape_count(s), sizeof(float));
      if (!wide)
        return aps_fail(APS_ERR_OUT_OF_MEMORY, "widening '%s': out of host memory", file_name);
      int64_t inner = dims[2] * dims[3];
      for (int64_t o = 0; o < dims[0]; o++)
        memcpy(wide + o * s.d[1] * inner, data + o * dims[1] * inner, sizeof(float) * (size_t)(dims[1] * inner));
      aps_status e = aps_runner_set(r, name, wide, gr_shape_count(s));
      free(wide);
      APS_TRY(e);
    }
  }
  return APS_OK;
}

aps_status aps_distill_load_prior(const gr_graph *g, aps_runner *r, const gr_st *st) {
  return aps_distill_load_weights(g, r, st, "prior.", 1, 0, "the prior");
}

aps_status aps_distill_feed_fn(void *feed, aps_runner *r, int step) {
  aps_distill_feed *f = feed;
  if (f->measure)
    APS_TRY(f->measure(f->user, r, step));
  if (!aps_runner_has(r, "seed")) /* the forward objective draws nothing in the graph */
    return APS_OK;
  uint64_t bits = aps_rng_next(&f->rng);
  float seed[2] = {(float)(bits & 0xffff), (float)((bits >> 16) & 0xffff)};
  return aps_runner_set(r, "seed", seed, 2);
}
