/* DPS, the baseline (app/aps/dps.h, docs/METHOD.md §7): the step graph's gradient against
 * finite differences and on the CPU device against Vulkan; the Gaussian case against the
 * closed-form posterior; a short run with the shipped prior on a box-masked Fashion-MNIST
 * image. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../test.h"
#include "app_fixtures.h"
#include "aps.h"
#include "dataset.h"
#include "dps.h"
#include "metrics.h"
#include "operators.h"
#include "rng.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A MASK layout on C×H×W images. */
static aps_op_layout mask_layout(int c, int h, int w) {
  return (aps_op_layout){.cls = APS_OPC_MASK, .c = c, .h = h, .w = w, .mh = h, .mw = w, .factor = 1, .desc_max = 1};
}

/* ‖y − m ⊙ x‖ of one sample. */
static double residual(const float *x, const float *y, const float *m, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += pow(y[i] - m[i] * x[i], 2);
  return sqrt(s);
}

/* ------------------------------------------------------------------ the step graph */

enum { TS = 8, TB = 2, TPIX = TS * TS };

typedef struct step_out {
  float eps[TB * TPIX], x0[TB * TPIX], grad[TB * TPIX], norm[TB];
} step_out;

static aps_status run_step(aps_runner *r, const float *x, const float *t, step_out *o) {
  APS_TRY(aps_runner_set(r, "x_t", x, TB * TPIX));
  APS_TRY(aps_runner_set(r, "t", t, TB));
  APS_TRY(aps_runner_run(r));
  APS_TRY(aps_runner_get(r, "eps", o->eps, TB * TPIX));
  APS_TRY(aps_runner_get(r, "x0", o->x0, TB * TPIX));
  APS_TRY(aps_runner_get(r, "grad", o->grad, TB * TPIX));
  return aps_runner_get(r, "norm", o->norm, TB);
}

TEST_CASE(dps_step_graph) {
  char dir[] = "/tmp/aps-test-dps-XXXXXX", path[512];
  REQUIRE_OK(mkdtemp(dir) ? APS_OK : APS_ERR_IO);
  snprintf(path, sizeof path, "%s/prior.safetensors", dir);
  REQUIRE_OK(test_write_tiny_prior(path));
  aps_op_layout l = mask_layout(1, TS, TS);
  aps_op_batch b;
  REQUIRE_OK(aps_op_batch_alloc(&l, TB, &b));
  uint64_t rng = 21;
  float x[TB * TPIX], y[TB * TPIX], t[TB] = {0.3f, 0.7f};
  for (int i = 0; i < TB * TPIX; i++) {
    int p = i % TPIX, row = p / TS, col = p % TS;
    b.param[i] = (row >= 2 && row < 6 && col >= 1 + i / TPIX && col < 5 + i / TPIX) ? 0.0f : 1.0f;
    x[i] = aps_rng_normal(&rng);
    y[i] = b.param[i] * 0.6f * sinf(0.7f * (float)col) * cosf(0.5f * (float)row);
  }
  for (int i = 0; i < TB; i++)
    b.sigma_y[i] = 0.05f;
  step_out o[2];
  aps_prior_config cfg;
  for (int dv = 0; dv < 2; dv++) {
    const char *device = dv ? "0" : "cpu";
    gr_graph *g = NULL;
    aps_runner *r = NULL;
    REQUIRE_OK(aps_dps_open(path, &(aps_runner_desc){.device = device, .quiet = 1}, &l, TB, &cfg, &g, &r));
    REQUIRE_OK(aps_runner_set(r, "y", y, TB * TPIX));
    REQUIRE_OK(aps_runner_set(r, "op.param", b.param, TB * TPIX));
    REQUIRE_OK(aps_runner_set(r, "op.sigma_y", b.sigma_y, TB));
    REQUIRE_OK(run_step(r, x, t, &o[dv]));
    if (dv == 0) {
      /* Tweedie and the norm against the host's arithmetic. */
      for (int s = 0; s < TB; s++) {
        double a = aps_sde_alpha(&cfg.sde, t[s]), sg = aps_sde_sigma(&cfg.sde, t[s]), worst = 0;
        for (int k = s * TPIX; k < (s + 1) * TPIX; k++)
          worst = fmax(worst, fabs(o[0].x0[k] - (x[k] - sg * o[0].eps[k]) / a));
        CHECK(worst < 1e-4 * (1 + 1 / a), "sample %d: x0 is off Tweedie's formula by %g", s, worst);
        double want = residual(o[0].x0 + s * TPIX, y + s * TPIX, b.param + s * TPIX, TPIX);
        CHECK(fabs(o[0].norm[s] - want) < 1e-5 * want, "sample %d: norm %g, host %g", s, o[0].norm[s], want);
      }
      float dc[TB];
      REQUIRE_OK(aps_runner_get(r, "consistency", dc, TB));
      for (int s = 0; s < TB; s++) {
        double m = 0;
        for (int k = s * TPIX; k < (s + 1) * TPIX; k++)
          m += b.param[k];
        CHECK(fabs(dc[s] - o[0].norm[s] / (0.05 * sqrt(m))) < 1e-4 * dc[s], "sample %d: consistency %g", s, dc[s]);
      }
      /* The gradient against central differences along random directions, per sample. */
      const float delta = 1e-2f;
      for (int dir_k = 0; dir_k < 4; dir_k++) {
        float v[TB * TPIX], xp[TB * TPIX], xm[TB * TPIX];
        for (int i = 0; i < TB * TPIX; i++) {
          v[i] = aps_rng_normal(&rng);
          xp[i] = x[i] + delta * v[i], xm[i] = x[i] - delta * v[i];
        }
        step_out op, om;
        REQUIRE_OK(run_step(r, xp, t, &op));
        REQUIRE_OK(run_step(r, xm, t, &om));
        for (int s = 0; s < TB; s++) {
          double fd = (op.norm[s] - om.norm[s]) / (2.0 * delta), an = 0, gn = 0;
          for (int k = s * TPIX; k < (s + 1) * TPIX; k++)
            an += (double)o[0].grad[k] * v[k], gn += (double)o[0].grad[k] * o[0].grad[k];
          fprintf(stderr, "direction %d, sample %d (t = %.1f): d norm = %.6f (graph), %.6f (finite differences)\n",
                  dir_k, s, t[s], an, fd);
          CHECK(fabs(an - fd) < 2e-3 * (sqrt(gn) * 8 + fabs(fd)), "direction %d, sample %d: %g vs %g", dir_k, s, an, fd);
        }
      }
    }
    aps_runner_destroy(r);
    gr_graph_destroy(g);
  }
  const char *names[4] = {"eps", "x0", "grad", "norm"};
  const float *vals[2][4] = {{o[0].eps, o[0].x0, o[0].grad, o[0].norm}, {o[1].eps, o[1].x0, o[1].grad, o[1].norm}};
  int counts[4] = {TB * TPIX, TB * TPIX, TB * TPIX, TB};
  for (int k = 0; k < 4; k++) {
    double worst = 0, scale = 0;
    for (int i = 0; i < counts[k]; i++)
      worst = fmax(worst, fabs(vals[0][k][i] - vals[1][k][i])), scale = fmax(scale, fabs(vals[0][k][i]));
    fprintf(stderr, "CPU device vs Vulkan: %s differs by at most %.2e (largest value %.3f)\n", names[k], worst, scale);
    CHECK(worst < 1e-3 * (1 + scale), "%s: CPU and Vulkan differ by %g", names[k], worst);
  }
  /* A sampler run on the CPU device: finite, and a NaN measurement is stopped at step 1. */
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  REQUIRE_OK(aps_dps_open(path, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &l, TB, &cfg, &g, &r));
  float out[TB * TPIX], fin[TB];
  for (int rule = 0; rule < APS_DPS_RULE_COUNT; rule++) {
    REQUIRE_OK(aps_dps_sample(r, &(aps_dps_desc){.steps = 5, .zeta = 0.5f, .rule = rule, .eta = 0.5f,
                                                 .sde = cfg.sde, .final_norm = fin}, &b, y, 3, out));
    int finite = 1;
    for (int i = 0; i < TB * TPIX; i++)
      finite &= isfinite(out[i]) != 0;
    CHECK(finite, "%s: the samples are finite", aps_dps_rule_name(rule));
    CHECK(fabs(fin[0] - residual(out, y, b.param, TPIX)) < 1e-3 * (1 + fin[0]), "%s: final norm %g of sample 0, "
          "host %g", aps_dps_rule_name(rule), fin[0], residual(out, y, b.param, TPIX));
  }
  y[TPIX + 3] = NAN;
  aps_status s = aps_dps_sample(r, &(aps_dps_desc){.steps = 5, .sde = cfg.sde}, &b, y, 3, out);
  CHECK(s == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "step 1 of 5") && strstr(aps_last_error(), "sample 1"),
        "a NaN measurement: %s", aps_last_error());
  s = aps_dps_sample(r, &(aps_dps_desc){.zeta = -1}, &b, y, 3, out);
  CHECK(s == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "zeta"), "a negative zeta: %s", aps_last_error());
  /* Super-resolution ×2: the norm of y − pool(x̂₀) on the 4×4 grid, M = 16 values. */
  aps_op_layout sr = {.cls = APS_OPC_SR, .c = 1, .h = TS, .w = TS, .mh = TS / 2, .mw = TS / 2, .factor = 2};
  gr_graph *gs = NULL;
  aps_runner *rs = NULL;
  REQUIRE_OK(aps_dps_open(path, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &sr, TB, &cfg, &gs, &rs));
  float ys[TB * TPIX / 4], dcs[TB];
  for (int i = 0; i < TB * TPIX / 4; i++)
    ys[i] = 0.3f * aps_rng_normal(&rng);
  REQUIRE_OK(aps_runner_set(rs, "y", ys, TB * TPIX / 4));
  REQUIRE_OK(aps_runner_set(rs, "op.sigma_y", b.sigma_y, TB));
  step_out so;
  REQUIRE_OK(run_step(rs, x, t, &so));
  REQUIRE_OK(aps_runner_get(rs, "consistency", dcs, TB));
  for (int q = 0; q < TB; q++) {
    double ss = 0;
    for (int i = 0; i < TS / 2; i++)
      for (int j = 0; j < TS / 2; j++) {
        const float *p = so.x0 + q * TPIX + 2 * i * TS + 2 * j;
        ss += pow(ys[q * TPIX / 4 + i * TS / 2 + j] - 0.25 * (p[0] + p[1] + p[TS] + p[TS + 1]), 2);
      }
    CHECK(fabs(so.norm[q] - sqrt(ss)) < 1e-4 * sqrt(ss), "sr: sample %d: norm %g, host %g", q, so.norm[q], sqrt(ss));
    CHECK(fabs(dcs[q] - sqrt(ss) / (0.05 * 4)) < 1e-4 * dcs[q], "sr: sample %d: consistency %g", q, dcs[q]);
  }
  aps_runner_destroy(rs);
  gr_graph_destroy(gs);
  aps_op_layout other = mask_layout(1, 16, 16);
  gr_graph *g2 = NULL;
  s = aps_dps_graph(&cfg, &other, 1, NULL, NULL, &g2);
  CHECK(s == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "16x16") && !g2, "another size: %s", aps_last_error());
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  aps_op_batch_free(&b);
  unlink(path), rmdir(dir);
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}

/* ------------------------------------------------------------------ the Gaussian case */

enum { GS = 4, D = GS * GS };

typedef test_gaussian gaussian;


static double prior_cov(const gaussian *p, int i, int j) {
  double s = 0;
  for (int k = 0; k < D; k++)
    s += p->q[i * D + k] * p->lambda[k] * p->q[j * D + k];
  return s;
}

/* The posterior of a mask m with noise σ: Σ_post = (Σ⁻¹ + diag(m)/σ²)⁻¹,
 * μ_post = Σ_post (Σ⁻¹μ + m ⊙ y/σ²); Gauss-Jordan in double. */
static void closed_form(const gaussian *p, const float *m, const float *y, double sigma, double *mean, double *cov) {
  double a[D * D], b[D * D] = {0}, rhs[D];
  for (int i = 0; i < D; i++) {
    rhs[i] = m[i] * y[i] / (sigma * sigma);
    for (int j = 0; j < D; j++) {
      double prec = 0;
      for (int k = 0; k < D; k++)
        prec += p->q[i * D + k] * p->q[j * D + k] / p->lambda[k];
      rhs[i] += prec * p->mu[j];
      a[i * D + j] = prec + (i == j ? m[i] / (sigma * sigma) : 0);
    }
    b[i * D + i] = 1;
  }
  for (int k = 0; k < D; k++) {
    double piv = a[k * D + k];
    for (int j = 0; j < D; j++)
      a[k * D + j] /= piv, b[k * D + j] /= piv;
    for (int i = 0; i < D; i++) {
      double f = i == k ? 0 : a[i * D + k];
      for (int j = 0; f != 0 && j < D; j++)
        a[i * D + j] -= f * a[k * D + j], b[i * D + j] -= f * b[k * D + j];
    }
  }
  memcpy(cov, b, sizeof b);
  for (int i = 0; i < D; i++) {
    mean[i] = 0;
    for (int j = 0; j < D; j++)
      mean[i] += b[i * D + j] * rhs[j];
  }
}

typedef struct gauss_result {
  double mean_err, prior_mean_err, avg_std, cov_err, prior_cov_err, fit, exact_fit, std_obs, std_hidden;
  double vs_prior_mean, vs_prior_cov; /* the samples against the prior N(μ, Σ) (relative, as above) */
} gauss_result;

/* K DPS samples (in batches) for one measurement, compared with the closed form. */
static void gaussian_run(const aps_dps_desc *d, int k_samples, int batch, uint64_t seed, gauss_result *res) {
  uint64_t rng = seed;
  gaussian p;
  test_gaussian_make(&p, &rng);
  aps_op_layout l = mask_layout(1, GS, GS);
  aps_op_batch b;
  REQUIRE_OK(aps_op_batch_alloc(&l, batch, &b));
  const float sigma_y = 0.1f;
  float x[D], y[D];
  double e[D];
  for (int i = 0; i < D; i++)
    e[i] = aps_rng_normal(&rng);
  for (int i = 0; i < D; i++) { /* the unknown x ~ N(μ, Σ); the left half observed */
    double v = p.mu[i];
    for (int k = 0; k < D; k++)
      v += p.q[i * D + k] * sqrt(p.lambda[k]) * e[k];
    x[i] = (float)v;
    b.param[i] = i % GS < GS / 2 ? 1.0f : 0.0f;
    y[i] = b.param[i] * (x[i] + sigma_y * aps_rng_normal(&rng));
  }
  float *ys = malloc(sizeof(float) * batch * D), *xs = malloc(sizeof(float) * k_samples * D);
  for (int s = 0; s < batch; s++) {
    memcpy(b.param + s * D, b.param, sizeof(float) * D);
    memcpy(ys + s * D, y, sizeof y);
    b.sigma_y[s] = sigma_y;
  }
  double truth_mean[D], truth_cov[D * D];
  closed_form(&p, b.param, y, sigma_y, truth_mean, truth_cov);
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  aps_prior_config pc = aps_prior_config_default(1, GS);
  pc.sde = p.sde;
  REQUIRE_OK(aps_dps_graph(&pc, &l, batch, test_gaussian_eps, &p, &g));
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r));
  for (int k = 0; k < k_samples; k += batch)
    REQUIRE_OK(aps_dps_sample(r, d, &b, ys, seed * 1000 + (uint64_t)k, xs + k * D));
  double mean[D] = {0}, cov[D * D] = {0};
  for (int k = 0; k < k_samples; k++)
    for (int i = 0; i < D; i++)
      mean[i] += xs[k * D + i] / (double)k_samples;
  for (int k = 0; k < k_samples; k++)
    for (int i = 0; i < D; i++)
      for (int j = 0; j < D; j++)
        cov[i * D + j] += (xs[k * D + i] - mean[i]) * (xs[k * D + j] - mean[j]) / (double)(k_samples - 1);
  double fro = 0, fro_truth = 0, prior_fro = 0, me = 0, pme = 0, fit = 0, exact_fit = 0, sr = 0;
  double vs_mean = 0, vs_cov = 0, prior_norm = 0, prior_std = 0;
  int observed = 0;
  res->avg_std = 0, res->std_hidden = 0;
  for (int i = 0; i < D; i++) {
    res->avg_std += sqrt(truth_cov[i * D + i]) / D;
    me += pow(mean[i] - truth_mean[i], 2) / D, pme += pow(p.mu[i] - truth_mean[i], 2) / D;
    sr += sqrt(cov[i * D + i] / truth_cov[i * D + i]) * (b.param[i] > 0 ? 1 : 0);
    res->std_hidden += sqrt(cov[i * D + i] / truth_cov[i * D + i]) * (b.param[i] > 0 ? 0 : 1);
    vs_mean += pow(mean[i] - p.mu[i], 2) / D, prior_std += sqrt(prior_cov(&p, i, i)) / D;
    for (int j = 0; j < D; j++) {
      vs_cov += pow(cov[i * D + j] - prior_cov(&p, i, j), 2), prior_norm += pow(prior_cov(&p, i, j), 2);
      fro += pow(cov[i * D + j] - truth_cov[i * D + j], 2);
      fro_truth += pow(truth_cov[i * D + j], 2);
      prior_fro += pow(prior_cov(&p, i, j) - truth_cov[i * D + j], 2);
    }
    if (b.param[i] > 0) {
      observed++;
      exact_fit += truth_cov[i * D + i] + pow(truth_mean[i] - y[i], 2);
      for (int k = 0; k < k_samples; k++)
        fit += pow(xs[k * D + i] - y[i], 2);
    }
  }
  res->mean_err = sqrt(me), res->prior_mean_err = sqrt(pme);
  res->std_obs = sr / observed, res->std_hidden /= D - observed;
  res->cov_err = sqrt(fro / fro_truth), res->prior_cov_err = sqrt(prior_fro / fro_truth);
  res->fit = sqrt(fit / ((double)observed * k_samples)) / sigma_y;
  res->exact_fit = sqrt(exact_fit / observed) / sigma_y;
  res->vs_prior_mean = sqrt(vs_mean) / prior_std, res->vs_prior_cov = sqrt(vs_cov / prior_norm);
  free(ys), free(xs);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  aps_op_batch_free(&b);
}

static void gaussian_report(const char *what, const aps_dps_desc *d, const gauss_result *r, double secs) {
  fprintf(stderr,
          "Gaussian, %s, %d steps, zeta %.3g: rms mean error %.3f avg posterior std (the prior mean's: %.3f); "
          "covariance relative Frobenius error %.3f (the prior's: %.3f); sample std / posterior std %.2f (observed pixels), %.2f (hidden); rms fit to the "
          "observed pixels %.2f sigma_y (exact posterior samples: %.2f) (%.1f s)\n",
          what, d->steps, d->zeta, r->mean_err / r->avg_std, r->prior_mean_err / r->avg_std, r->cov_err,
          r->prior_cov_err, r->std_obs, r->std_hidden, r->fit, r->exact_fit, secs);
}

TEST_CASE(dps_gaussian) {
  const aps_dps_desc descs[3] = {{.steps = 1000, .zeta = 0.02f, .rule = APS_DPS_EM},
                                 {.steps = 200, .zeta = 0.1f, .rule = APS_DPS_DDIM, .eta = 1.0f},
                                 {.steps = 200, .zeta = 0.1f, .rule = APS_DPS_DDIM, .eta = 0.0f}};
  const char *names[3] = {"em", "ddim eta 1", "ddim eta 0"};
  const char *envseed = getenv("APS_TEST_DPS_SEED");
  uint64_t seed = envseed ? (uint64_t)atoi(envseed) : 5;
  const char *env = getenv("APS_TEST_DPS_ZETA"), *envs = getenv("APS_TEST_DPS_STEPS"); /* to sweep by hand */
  for (int k = 0; k < 3; k++) {
    aps_dps_desc d = descs[k];
    if (env)
      d.zeta = (float)atof(env);
    if (envs)
      d.steps = atoi(envs);
    gauss_result r;
    double t0 = now_s();
    gaussian_run(&d, 512, 128, seed, &r);
    gaussian_report(names[k], &d, &r, now_s() - t0);
    /* DPS is biased (it fits the observed pixels more closely than the noise allows and is
     * under-dispersed), so only what holds robustly: the mean and covariance move most of the
     * way from the prior's to the posterior's, and the observed pixels are fitted. */
    CHECK(r.mean_err < 0.3 * r.prior_mean_err, "%s: the mean error %.3f is not far below the prior's %.3f", names[k],
          r.mean_err, r.prior_mean_err);
    CHECK(r.cov_err < 0.4 * r.prior_cov_err, "%s: the covariance error %.3f is not far below the prior's %.3f",
          names[k], r.cov_err, r.prior_cov_err);
    CHECK(r.fit < 3, "%s: the samples miss the observed pixels by %.2f sigma_y (rms)", names[k], r.fit);
  }
  /* Without guidance the same loop samples the prior N(μ, Σ). */
  for (int k = 0; k < 3; k += 2) {
    aps_dps_desc d = descs[k];
    d.unguided = 1, d.steps = 200;
    gauss_result r;
    gaussian_run(&d, 512, 128, seed, &r);
    fprintf(stderr, "Gaussian, %s unguided, %d steps: against the prior, rms mean error %.3f avg prior std, "
            "covariance relative Frobenius error %.3f\n", names[k], d.steps, r.vs_prior_mean, r.vs_prior_cov);
    CHECK(r.vs_prior_mean < 0.15 && r.vs_prior_cov < 0.25, "%s unguided: the samples are not the prior's", names[k]);
  }
}

/* ------------------------------------------------------------------ the shipped prior */

#define PRIOR_PATH APS_SOURCE_DIR "/assets/prior-fmnist32.safetensors"

/* n box-masked Fashion-MNIST test images (index first, first + 1, ...): clean images,
 * operators and measurements. */
static aps_status fmnist_batch(int n, int first, const char *spec_text, float **clean, aps_op_batch *b, float **y) {
  aps_dataset *data = NULL;
  aps_op_spec spec;
  aps_op_family *f = NULL;
  APS_TRY(aps_dataset_load_fashion_mnist(NULL, 0, &data));
  aps_status s = aps_op_spec_parse(spec_text, &spec);
  if (s == APS_OK)
    s = aps_op_family_create(&spec, 1, 32, 32, &f);
  if (s == APS_OK)
    s = aps_op_batch_alloc(aps_op_family_layout(f), n, b);
  const int64_t per = 32 * 32;
  *clean = malloc(sizeof(float) * (size_t)(n * per)), *y = malloc(sizeof(float) * (size_t)(n * per));
  for (int i = 0; s == APS_OK && i < n; i++) {
    s = aps_op_draw(f, aps_op_seed(77, (uint64_t)(first + i)), b, i);
    memcpy(*clean + i * per, aps_dataset_data(data) + (int64_t)(first + i) * per, sizeof(float) * per);
    for (int64_t k = i * per; k < (i + 1) * per; k++)
      (*y)[k] = b->param[k] * ((*clean)[k] + b->sigma_y[i] * b->noise[k]);
  }
  aps_op_family_destroy(f);
  aps_dataset_free(data);
  return s;
}

static double psnr_mean(const float *x, const float *ref, int n) {
  double s = 0;
  for (int i = 0; i < n; i++)
    s += aps_psnr(x + i * 1024, ref + i * 1024, 1024) / n;
  return s;
}

/* ζ against PSNR (to the clean image) and data consistency, by hand: APS_DPS_SWEEP="steps
 * rule n zeta..." (rule em or ddim; APS_DPS_ETA for ddim's η), on the CPU device. */
TEST_HELPER(dps_zeta_sweep) {
  const char *env = getenv("APS_DPS_SWEEP");
  char rule_name[16];
  int steps = 0, n = 0, used = 0;
  if (!env || sscanf(env, "%d %15s %d%n", &steps, rule_name, &n, &used) != 3 || aps_dps_rule_parse(rule_name) < 0) {
    fprintf(stderr, "set APS_DPS_SWEEP=\"steps em|ddim n zeta...\"\n");
    return;
  }
  float *clean = NULL, *y = NULL, *out = malloc(sizeof(float) * (size_t)n * 1024), *fin = malloc(sizeof(float) * n);
  aps_op_batch b;
  REQUIRE_OK(fmnist_batch(n, 0, "inpaint:box=12,noise=0.05", &clean, &b, &y));
  aps_prior_config cfg;
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  REQUIRE_OK(aps_dps_open(PRIOR_PATH, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &b.l, n, &cfg, &g, &r));
  for (const char *p = env + used; *p;) {
    char *end;
    double z = strtod(p, &end);
    if (end == p)
      break;
    p = end;
    double t0 = now_s();
    REQUIRE_OK(aps_dps_sample(r, &(aps_dps_desc){.steps = steps, .zeta = (float)z, .rule = aps_dps_rule_parse(rule_name),
                                                 .eta = getenv("APS_DPS_ETA") ? (float)atof(getenv("APS_DPS_ETA")) : 0,
                                                 .sde = cfg.sde, .final_norm = fin, .unguided = z == 0 ? 1 : 0},
                              &b, y, 1, out));
    double dc = 0;
    for (int i = 0; i < n; i++) {
      double m = 0;
      for (int k = 0; k < 1024; k++)
        m += b.param[i * 1024 + k];
      dc += fin[i] / (b.sigma_y[i] * sqrt(m)) / n;
    }
    fprintf(stderr, "%d steps %s, zeta %g: PSNR %.2f dB, data consistency %.2f (|y - Ax| / sigma_y sqrt(M)), %.1f s;"
            " per image:", steps, rule_name, z, psnr_mean(out, clean, n), dc, now_s() - t0);
    for (int i = 0; i < n; i++)
      fprintf(stderr, " %.1f", aps_psnr(out + i * 1024, clean + i * 1024, 1024));
    fputc('\n', stderr);
  }
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  aps_op_batch_free(&b);
  free(clean), free(y), free(out), free(fin);
}

/* One box-masked test image, 20 Euler-Maruyama steps (the default ζ, 2.5) with the shipped
 * prior on the CPU device: the output is finite and fits the measurement better than the same
 * run without guidance. */
TEST_CASE(dps_fmnist_box) {
  float *clean = NULL, *y = NULL, out[2][1024], fin[2];
  aps_op_batch b;
  REQUIRE_OK(fmnist_batch(1, 0, "inpaint:box=12,noise=0.05", &clean, &b, &y));
  aps_prior_config cfg;
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  REQUIRE_OK(aps_dps_open(PRIOR_PATH, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &b.l, 1, &cfg, &g, &r));
  double secs[2];
  float zeta = getenv("APS_TEST_DPS_ZETA") ? (float)atof(getenv("APS_TEST_DPS_ZETA")) : 0;
  for (int k = 0; k < 2; k++) {
    double t0 = now_s();
    REQUIRE_OK(aps_dps_sample(r, &(aps_dps_desc){.steps = 20, .zeta = zeta, .rule = APS_DPS_EM, .sde = cfg.sde,
                                                 .final_norm = &fin[k], .unguided = k},
                              &b, y, 4, out[k]));
    secs[k] = now_s() - t0;
    int finite = 1;
    for (int i = 0; i < 1024; i++)
      finite &= isfinite(out[k][i]) != 0;
    CHECK(finite, "%s: the sample is finite", k ? "unguided" : "DPS");
  }
  double m = 0;
  for (int i = 0; i < 1024; i++)
    m += b.param[i];
  double scale = b.sigma_y[0] * sqrt(m);
  fprintf(stderr, "Fashion-MNIST test image 0, 12x12 box, sigma_y %.3f, 20 EM steps: DPS (zeta %g) PSNR %.2f dB, "
          "|y - Ax| / (sigma_y sqrt(M)) %.2f (%.0f ms/step); unguided PSNR %.2f dB, %.2f\n", b.sigma_y[0],
          zeta ? zeta : APS_DPS_ZETA_MAX, aps_psnr(out[0], clean, 1024), fin[0] / scale, 1000 * secs[0] / 21,
          aps_psnr(out[1], clean, 1024), fin[1] / scale);
  CHECK(fin[0] < 0.7 * fin[1], "guidance improves data consistency: %.3f against %.3f unguided", fin[0], fin[1]);
  CHECK(fabs(fin[0] - residual(out[0], y, b.param, 1024)) < 1e-3 * fin[0], "the final norm is the sample's");
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  aps_op_batch_free(&b);
  free(clean), free(y);
}

/* DPS behind the posterior API (aps.h, desc.dps) with a tiny untrained prior: the family is
 * required, samples are finite, a seed repeats them, samples past the step graph's batch
 * come from later batches without changing the first ones, the same figures (data
 * consistency) are available as for a flow, and a blur measurement rebuilds the graph. */
TEST_CASE(dps_posterior_api) {
  char dir[] = "/tmp/aps-test-dps-api-XXXXXX", path[600];
  REQUIRE_OK(mkdtemp(dir) ? APS_OK : APS_ERR_IO);
  snprintf(path, sizeof path, "%s/prior.safetensors", dir);
  REQUIRE_OK(test_write_tiny_prior(path));
  aps_posterior_desc d = {.model = path, .device = "cpu", .max_batch = 2, .quiet = 1, .dps = 1,
                          .dps_settings = {.steps = 4}};
  aps_posterior *p = NULL;
  CHECK(aps_posterior_open(&d, &p) != APS_OK && strstr(aps_last_error(), "family"),
        "DPS without a family: %s", aps_last_error());
  d.family = "inpaint:box=3,noise=0.05";
  REQUIRE_OK(aps_posterior_open(&d, &p));
  const aps_posterior_info *in = aps_posterior_get_info(p);
  int64_t dim = (int64_t)in->channels * in->height * in->width;
  CHECK(strstr(in->flow, "dps steps=4") != NULL, "info names the method: %s", in->flow);
  float *clean = malloc(sizeof(float) * (size_t)dim), *a = malloc(sizeof(float) * (size_t)(5 * dim));
  float *b = malloc(sizeof(float) * (size_t)(5 * dim));
  for (int64_t i = 0; i < dim; i++)
    clean[i] = 0.7f * sinf(0.3f * (float)i);
  REQUIRE_OK(aps_posterior_set_clean(p, clean, NULL, 11));
  REQUIRE_OK(aps_posterior_sample(p, 5, 42, a));
  REQUIRE_OK(aps_posterior_sample(p, 2, 42, b));
  int finite = 1;
  for (int64_t i = 0; i < 5 * dim; i++)
    finite &= isfinite(a[i]) != 0;
  CHECK(finite, "DPS samples are finite");
  CHECK(!memcmp(a, b, sizeof(float) * (size_t)(2 * dim)), "the first batch does not depend on k");
  CHECK(memcmp(a, a + 2 * dim, sizeof(float) * (size_t)dim) != 0, "a later batch draws other samples");
  REQUIRE_OK(aps_posterior_sample(p, 5, 42, b));
  CHECK(!memcmp(a, b, sizeof(float) * (size_t)(5 * dim)), "a seed repeats the samples");
  double dc[5];
  REQUIRE_OK(aps_posterior_data_consistency(p, a, 5, dc));
  CHECK(isfinite(dc[0]) && dc[0] > 0, "data consistency of a DPS sample: %g", dc[0]);
  aps_posterior_close(p);
  d.family = "blur:sigma=1-2";
  REQUIRE_OK(aps_posterior_open(&d, &p));
  REQUIRE_OK(aps_posterior_set_clean(p, clean, "blur:sigma=0.5,noise=0.01", 3)); /* a smaller kernel: a new graph */
  REQUIRE_OK(aps_posterior_sample(p, 2, 1, a));
  finite = 1;
  for (int64_t i = 0; i < 2 * dim; i++)
    finite &= isfinite(a[i]) != 0;
  CHECK(finite, "DPS samples of a blur are finite");
  CHECK(aps_posterior_set_clean(p, clean, "inpaint:box=3", 3) != APS_OK, "an inpainting measurement on a blur family");
  aps_posterior_close(p);
  free(clean), free(a), free(b);
}
