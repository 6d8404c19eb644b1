/* The distillation objective on the Gaussian case of docs/METHOD.md §8: a realnvp-fc flow
 * trained on one measurement y = A x + n only (no sample of x), with the exact score of
 * the Gaussian prior N(μ, Σ) as the prior's ε through aps_prior_neg_elbo, must reproduce
 * the closed-form posterior N(μ_post, Σ_post). Two operators A (neither a mask), on the
 * CPU device; then the forward and mixed objectives, amortised over y. */
#include <math.h>
#include <stdlib.h>

#include "../test.h"
#include "app_fixtures.h"
#include "dataset.h"
#include "distill.h"
#include "sampler.h"
#include "trainer.h"

enum { D = 16, MAX_M = 16, PAIR_BATCH = 256 };

typedef test_gaussian gaussian;

typedef struct linear_op {
  int m;
  float a[MAX_M * D]; /* row-major m × D */
} linear_op;

/* A(x) = x Aᵀ on [N, D]. */
static gr_tensor apply_a(gr_graph *g, void *user, gr_tensor x) {
  linear_op *op = user;
  return gr_matmul(g, x, gr_const(g, "A", GR_SHAPE(op->m, D), op->a), 0, 1);
}


/* Inverse of a symmetric positive definite n × n matrix in place (Gauss-Jordan, double). */
static void invert(double *a, int n) {
  double *b = calloc((size_t)n * n, sizeof *b);
  for (int i = 0; i < n; i++)
    b[i * n + i] = 1;
  for (int k = 0; k < n; k++) {
    double piv = a[k * n + k];
    for (int j = 0; j < n; j++)
      a[k * n + j] /= piv, b[k * n + j] /= piv;
    for (int i = 0; i < n; i++) {
      if (i == k)
        continue;
      double f = a[i * n + k];
      for (int j = 0; j < n; j++)
        a[i * n + j] -= f * a[k * n + j], b[i * n + j] -= f * b[k * n + j];
    }
  }
  memcpy(a, b, sizeof(double) * (size_t)n * n);
  free(b);
}


typedef struct posterior {
  double mean[D], cov[D * D];
} posterior;

/* Σ_post = (Σ⁻¹ + AᵀA/σ²)⁻¹, μ_post = Σ_post (Σ⁻¹μ + Aᵀy/σ²). */
static void closed_form(const gaussian *p, const linear_op *op, const float *y, double sigma, posterior *out) {
  double prec[D * D], sinv_mu[D], rhs[D];
  for (int i = 0; i < D; i++)
    for (int j = 0; j < D; j++) {
      double s = 0, ata = 0;
      for (int k = 0; k < D; k++)
        s += p->q[i * D + k] * p->q[j * D + k] / p->lambda[k];
      for (int r = 0; r < op->m; r++)
        ata += (double)op->a[r * D + i] * op->a[r * D + j];
      prec[i * D + j] = s + ata / (sigma * sigma);
    }
  for (int i = 0; i < D; i++) {
    sinv_mu[i] = 0;
    for (int j = 0; j < D; j++)
      for (int k = 0; k < D; k++)
        sinv_mu[i] += p->q[i * D + k] * p->q[j * D + k] / p->lambda[k] * p->mu[j];
    double aty = 0;
    for (int r = 0; r < op->m; r++)
      aty += (double)op->a[r * D + i] * y[r];
    rhs[i] = sinv_mu[i] + aty / (sigma * sigma);
  }
  invert(prec, D);
  memcpy(out->cov, prec, sizeof prec);
  for (int i = 0; i < D; i++) {
    out->mean[i] = 0;
    for (int j = 0; j < D; j++)
      out->mean[i] += prec[i * D + j] * rhs[j];
  }
}

/* x ~ N(μ, Σ). */
static void draw_x(const gaussian *p, uint64_t *rng, double *x) {
  double e[D];
  for (int i = 0; i < D; i++)
    e[i] = aps_rng_normal(rng);
  for (int i = 0; i < D; i++) {
    x[i] = p->mu[i];
    for (int k = 0; k < D; k++)
      x[i] += p->q[i * D + k] * sqrt(p->lambda[k]) * e[k];
  }
}

/* y = A x + σ_y n. */
static void measure_y(const linear_op *op, const double *x, float sigma_y, uint64_t *rng, float *y) {
  for (int j = 0; j < op->m; j++) {
    double v = 0;
    for (int i = 0; i < D; i++)
      v += op->a[j * D + i] * x[i];
    y[j] = (float)(v + sigma_y * aps_rng_normal(rng));
  }
}

/* Samples the flow trained in r at y and compares them with the closed-form posterior. */
static void check_samples(const char *what, const aps_flow_config *fc, aps_runner *r, const gaussian *pp,
                          const float *y, const posterior *tp, uint64_t seed, int steps, const aps_train_result *res) {
  enum { SAMPLE_BATCH = 4096, SAMPLES = 32768 };
  const gaussian p = *pp;
  const posterior truth = *tp;
  gr_graph *sg = NULL;
  aps_runner *sr = NULL;
  /* Samples from the trained flow. */
  REQUIRE_OK(aps_flow_sample_graph(fc, SAMPLE_BATCH, &sg));
  REQUIRE_OK(aps_runner_create(sg, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &sr));
  gr_tensor t;
  for (uint32_t i = 0; (t = gr_param_at(sg, i)); i++) {
    int64_t n = gr_shape_count(gr_tensor_shape(sg, t));
    float *v = malloc(sizeof(float) * (size_t)n);
    aps_status s = aps_runner_get(r, gr_tensor_name(sg, t), v, n);
    if (s == APS_OK)
      s = aps_runner_set(sr, gr_tensor_name(sg, t), v, n);
    free(v);
    REQUIRE_OK(s);
  }
  float *xs = malloc(sizeof(float) * SAMPLES * D);
  REQUIRE_OK(aps_flow_sample(sr, fc, SAMPLE_BATCH, y, seed + 99, 1.0f, SAMPLES, xs));
  double mean[D] = {0}, cov[D * D] = {0};
  for (int k = 0; k < SAMPLES; k++)
    for (int i = 0; i < D; i++)
      mean[i] += xs[k * D + i] / (double)SAMPLES;
  for (int k = 0; k < SAMPLES; k++)
    for (int i = 0; i < D; i++)
      for (int j = 0; j < D; j++)
        cov[i * D + j] += (xs[k * D + i] - mean[i]) * (xs[k * D + j] - mean[j]) / (double)(SAMPLES - 1);
  double avg_std = 0, max_err = 0, rms = 0, fro = 0, fro_truth = 0, prior_fro = 0;
  for (int i = 0; i < D; i++) {
    avg_std += sqrt(truth.cov[i * D + i]) / D;
    max_err = fmax(max_err, fabs(mean[i] - truth.mean[i]));
    rms += (mean[i] - truth.mean[i]) * (mean[i] - truth.mean[i]) / D;
    for (int j = 0; j < D; j++) {
      double sij = 0;
      for (int k = 0; k < D; k++)
        sij += p.q[i * D + k] * p.lambda[k] * p.q[j * D + k];
      fro += pow(cov[i * D + j] - truth.cov[i * D + j], 2);
      fro_truth += pow(truth.cov[i * D + j], 2);
      prior_fro += pow(sij - truth.cov[i * D + j], 2);
    }
  }
  double rel_fro = sqrt(fro / fro_truth);
  fprintf(stderr,
          "%s: %d steps in %.1f s (final loss %.4f nats/dim); posterior avg std %.4f; mean error max %.4f = %.3f "
          "avg std (rms %.3f avg std); covariance relative Frobenius error %.3f (the prior's: %.3f)\n",
          what, steps, res->seconds, res->last_loss, avg_std, max_err, max_err / avg_std, sqrt(rms) / avg_std, rel_fro,
          sqrt(prior_fro / fro_truth));
  CHECK(max_err < 0.1 * avg_std, "%s: the posterior mean is off by %.3f of the average posterior std", what,
        max_err / avg_std);
  CHECK(rel_fro < 0.15, "%s: the posterior covariance is off by %.1f %% (Frobenius)", what, 100 * rel_fro);
  free(xs);
  aps_runner_destroy(sr);
  gr_graph_destroy(sg);
}


/* Trains on y alone, samples, compares with the closed form. */
static void posterior_check(const char *what, const linear_op *op, float sigma_y, int steps, float lr,
                            uint64_t seed) {
  enum { BATCH = 256 };
  uint64_t rng = seed;
  gaussian p;
  test_gaussian_make(&p, &rng);
  /* The unknown x ~ N(μ, Σ) and its measurement. */
  double x[D];
  float y[MAX_M];
  draw_x(&p, &rng, x);
  measure_y(op, x, sigma_y, &rng, y);
  posterior truth;
  closed_form(&p, op, y, sigma_y, &truth);

  aps_flow_config fc = aps_flow_config_realnvp(D, op->m);
  fc.steps = 6, fc.hidden = 64;
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  REQUIRE_OK(aps_distill_graph(&(aps_distill_desc){.flow = fc, .batch = BATCH, .forward = apply_a,
                                                   .forward_user = (void *)op, .eps = test_gaussian_eps, .eps_user = &p},
                               &g));
  for (int i = 0; (gr_input_at(g, i)); i++) {
    const char *in = gr_tensor_name(g, gr_input_at(g, i));
    CHECK(!strcmp(in, "seed") || !strcmp(in, "cond") || !strcmp(in, "y") || !strcmp(in, "sigma_y") ||
              !strncmp(in, "optim.", 6), "the training graph has an input '%s' beyond measurements", in);
  }
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r));
  REQUIRE_OK(aps_flow_init_params(g, &fc, r, &rng));
  float *ys = malloc(sizeof(float) * BATCH * MAX_M), sig[BATCH];
  for (int b = 0; b < BATCH; b++) {
    memcpy(ys + b * op->m, y, sizeof(float) * (size_t)op->m);
    sig[b] = sigma_y;
  }
  REQUIRE_OK(aps_runner_set(r, "y", ys, (int64_t)BATCH * op->m));
  REQUIRE_OK(aps_runner_set(r, "cond", ys, (int64_t)BATCH * op->m));
  REQUIRE_OK(aps_runner_set(r, "sigma_y", sig, BATCH));
  free(ys);
  aps_distill_feed feed = {.rng = seed * 7 + 1};
  aps_train_result res;
  REQUIRE_OK(aps_train(r, &(aps_train_desc){.steps = steps, .schedule = {.lr = lr, .warmup = 50, .total = steps},
                                            .rng = &feed.rng, .feed = aps_distill_feed_fn, .user = &feed, .quiet = 1},
                       &res));
  check_samples(what, &fc, r, &p, y, &truth, seed, steps, &res);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
}

/* The forward objective (a warm start, docs/METHOD.md §5) on the same case: the flow fits
 * pairs (x, y), x drawn from the prior N(μ, Σ) and y = A x + σ_y n, amortised over y; at a
 * y it never saw, its samples must match the closed-form posterior as well. */
typedef struct pairs {
  const gaussian *p;
  const linear_op *op;
  float sigma_y;
  uint64_t rng;
  float x[PAIR_BATCH * D], y[PAIR_BATCH * MAX_M];
} pairs;

static aps_status feed_pairs(void *user, aps_runner *r, int step) {
  (void)step;
  pairs *f = user;
  for (int b = 0; b < PAIR_BATCH; b++) {
    double x[D];
    draw_x(f->p, &f->rng, x);
    for (int i = 0; i < D; i++)
      f->x[b * D + i] = (float)x[i];
    measure_y(f->op, x, f->sigma_y, &f->rng, f->y + b * f->op->m);
  }
  if (aps_runner_has(r, "x")) /* the forward term's */
    APS_TRY(aps_runner_set(r, "x", f->x, (int64_t)PAIR_BATCH * D));
  if (aps_runner_has(r, "y")) { /* the mixed objective's reverse term sees the same y */
    float sig[PAIR_BATCH];
    for (int b = 0; b < PAIR_BATCH; b++)
      sig[b] = f->sigma_y;
    APS_TRY(aps_runner_set(r, "y", f->y, (int64_t)PAIR_BATCH * f->op->m));
    APS_TRY(aps_runner_set(r, "sigma_y", sig, PAIR_BATCH));
  }
  return aps_runner_set(r, "cond", f->y, (int64_t)PAIR_BATCH * f->op->m);
}

/* The graph of an objective for the realnvp-fc flow fc of the Gaussian case. */
static aps_status objective_graph(aps_distill_objective objective, const aps_flow_config *fc, const linear_op *op,
                                  gaussian *p, float lambda_f, gr_graph **g) {
  return aps_distill_graph(&(aps_distill_desc){.flow = *fc, .objective = objective, .batch = PAIR_BATCH,
                                               .forward = apply_a, .forward_user = (void *)op,
                                               .eps = test_gaussian_eps, .eps_user = p, .lambda_f = lambda_f},
                           g);
}

static void forward_check(const char *what, aps_distill_objective objective, const linear_op *op, float sigma_y,
                          int steps, float lr, uint64_t seed) {
  uint64_t rng = seed;
  gaussian p;
  test_gaussian_make(&p, &rng);
  double x[D];
  float y[MAX_M];
  draw_x(&p, &rng, x);
  measure_y(op, x, sigma_y, &rng, y);
  posterior truth;
  closed_form(&p, op, y, sigma_y, &truth);
  aps_flow_config fc = aps_flow_config_realnvp(D, op->m);
  fc.steps = 6, fc.hidden = 64;
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  REQUIRE_OK(objective_graph(objective, &fc, op, &p, 1.0f, &g));
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r));
  REQUIRE_OK(aps_flow_init_params(g, &fc, r, &rng));
  pairs *f = malloc(sizeof *f);
  *f = (pairs){.p = &p, .op = op, .sigma_y = sigma_y, .rng = seed * 13 + 5};
  aps_distill_feed feed = {.rng = seed * 7 + 1, .measure = feed_pairs, .user = f};
  aps_train_result res;
  REQUIRE_OK(aps_train(r, &(aps_train_desc){.steps = steps, .schedule = {.lr = lr, .warmup = 50, .total = steps},
                                            .rng = &feed.rng, .feed = aps_distill_feed_fn, .user = &feed, .quiet = 1},
                       &res));
  check_samples(what, &fc, r, &p, y, &truth, seed, steps, &res);
  free(f);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
}

TEST_CASE(flow_gaussian_forward_objective) {
  linear_op op = {.m = 8};
  uint64_t rng = 101;
  for (int i = 0; i < op.m * D; i++)
    op.a[i] = aps_rng_normal(&rng) * 0.5f;
  forward_check("Gaussian, forward objective, random 8x16 A, sigma_y 0.2", APS_DISTILL_FORWARD, &op, 0.2f, 2500, 2e-3f,
                5);
}

/* The mixed objective (reverse + forward on the same measurements): its loss is the two
 * objectives' losses at the same weights and draws, and, amortised over y, its samples at
 * a y it never saw match the closed-form posterior. */
TEST_CASE(flow_gaussian_mixed_objective) {
  linear_op op = {.m = 6};
  for (int r = 0; r < op.m; r++) /* blur [1/4, 1/2, 1/4], every third coordinate */
    for (int k = -1; k <= 1; k++) {
      int c = 3 * r + 1 + k;
      if (c >= 0 && c < D)
        op.a[r * D + c] = k ? 0.25f : 0.5f;
    }
  uint64_t rng = 17;
  gaussian p;
  test_gaussian_make(&p, &rng);
  aps_flow_config fc = aps_flow_config_realnvp(D, op.m);
  fc.steps = 3, fc.hidden = 16;
  const float lambda = 0.5f;
  const aps_distill_objective objective[3] = {APS_DISTILL_MIXED, APS_DISTILL_REVERSE, APS_DISTILL_FORWARD};
  gr_graph *g[3];
  aps_runner *r[3];
  for (int i = 0; i < 3; i++) {
    REQUIRE_OK(objective_graph(objective[i], &fc, &op, &p, lambda, &g[i]));
    REQUIRE_OK(aps_runner_create(g[i], &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r[i]));
  }
  REQUIRE_OK(aps_flow_init_params(g[0], &fc, r[0], &rng));
  pairs *f = malloc(sizeof *f);
  *f = (pairs){.p = &p, .op = &op, .sigma_y = 0.1f, .rng = 23};
  aps_distill_feed feed = {.rng = 29, .measure = feed_pairs, .user = f};
  aps_train_result res;
  /* 30 steps away from the initial identity, then the same state and batch in all three */
  REQUIRE_OK(aps_train(r[0], &(aps_train_desc){.steps = 30, .schedule = {.lr = 3e-3f}, .rng = &feed.rng,
                                               .feed = aps_distill_feed_fn, .user = &feed, .quiet = 1},
                       &res));
  gr_tensor t;
  for (uint32_t i = 0; (t = gr_param_at(g[0], i)); i++) {
    if (gr_tensor_is_state(g[0], t) || strncmp(gr_tensor_name(g[0], t), "flow.", 5))
      continue;
    int64_t n = gr_shape_count(gr_tensor_shape(g[0], t));
    float *v = malloc(sizeof(float) * (size_t)n);
    REQUIRE_OK(aps_runner_get(r[0], gr_tensor_name(g[0], t), v, n));
    for (int k = 1; k < 3; k++)
      REQUIRE_OK(aps_runner_set(r[k], gr_tensor_name(g[0], t), v, n));
    free(v);
  }
  float loss[3], nll = 0, seed[2] = {3, 4}, lr = 0, step = 1;
  uint64_t batch_rng = f->rng;
  for (int i = 0; i < 3; i++) {
    f->rng = batch_rng;
    REQUIRE_OK(feed_pairs(f, r[i], 0));
    if (aps_runner_has(r[i], "seed"))
      REQUIRE_OK(aps_runner_set(r[i], "seed", seed, 2));
    REQUIRE_OK(aps_runner_set(r[i], "optim.lr", &lr, 1));
    REQUIRE_OK(aps_runner_set(r[i], "optim.step", &step, 1));
    REQUIRE_OK(aps_runner_run(r[i]));
    REQUIRE_OK(aps_runner_get(r[i], "loss", &loss[i], 1));
  }
  REQUIRE_OK(aps_runner_get(r[0], "forward_nll", &nll, 1));
  fprintf(stderr, "mixed objective: loss %.6f; reverse %.6f + %.1f x forward %.6f = %.6f\n", loss[0], loss[1], lambda,
          loss[2], loss[1] + lambda * loss[2]);
  CHECK(fabsf(nll - loss[2]) < 1e-5f * (1 + fabsf(loss[2])), "the mixed graph's forward term %.6f, the forward "
        "objective's %.6f", nll, loss[2]);
  CHECK(fabsf(loss[0] - (loss[1] + lambda * loss[2])) < 1e-5f * (1 + fabsf(loss[0])),
        "mixed loss %.6f, reverse + %.1f x forward %.6f", loss[0], lambda, loss[1] + lambda * loss[2]);
  for (int i = 0; i < 3; i++)
    aps_runner_destroy(r[i]), gr_graph_destroy(g[i]);
  free(f);
  forward_check("Gaussian, mixed objective, blur + subsample 6x16 A, sigma_y 0.1", APS_DISTILL_MIXED, &op, 0.1f, 2500,
                2e-3f, 9);
}

/* A: a random 8 × 16 Gaussian matrix, σ_y = 0.2. */
TEST_CASE(flow_gaussian_random_a) {
  linear_op op = {.m = 8};
  uint64_t rng = 101;
  for (int i = 0; i < op.m * D; i++)
    op.a[i] = aps_rng_normal(&rng) * 0.5f;
  posterior_check("Gaussian, random 8x16 A, sigma_y 0.2", &op, 0.2f, 800, 2e-3f, 5);
}

/* A: blur [1/4, 1/2, 1/4] and keep every third of 16 coordinates (6 rows), σ_y = 0.1. */
TEST_CASE(flow_gaussian_blur_a) {
  linear_op op = {.m = 6};
  for (int r = 0; r < op.m; r++)
    for (int k = -1; k <= 1; k++) {
      int c = 3 * r + 1 + k;
      if (c >= 0 && c < D)
        op.a[r * D + c] = k ? 0.25f : 0.5f;
    }
  posterior_check("Gaussian, blur + subsample 6x16 A, sigma_y 0.1", &op, 0.1f, 800, 2e-3f, 9);
}
