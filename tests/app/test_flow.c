/* Conditional flows: every layer and both architectures invert, their log-determinants
 * match brute-force Jacobians, data-dependent ActNorm initialisation standardises, configs
 * parse with errors naming the key, model files reload. Each on the CPU device and on the
 * first Vulkan device (lavapipe under the validation layer). */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "../test.h"
#include "dataset.h"
#include "flow.h"
#include "runner.h"
#include "rng.h"

static const char *const devices[2] = {"cpu", "0"};

/* Every flow parameter of g in r: initialised, then moved by scale · N(0, 1), so that no
 * layer is the identity. */
static aps_status init_perturbed(const gr_graph *g, const aps_flow_config *c, aps_runner *r, uint64_t *rng,
                                 float scale) {
  APS_TRY(aps_flow_init_params(g, c, r, rng));
  gr_tensor t;
  for (uint32_t i = 0; (t = gr_param_at(g, i)); i++) {
    const char *name = gr_tensor_name(g, t);
    if (strncmp(name, "flow.", 5))
      continue;
    int64_t n = gr_shape_count(gr_tensor_shape(g, t));
    float *v = malloc(sizeof(float) * (size_t)n);
    aps_status s = aps_runner_get(r, name, v, n);
    for (int64_t k = 0; k < n; k++)
      v[k] += scale * aps_rng_normal(rng);
    if (s == APS_OK)
      s = aps_runner_set(r, name, v, n);
    free(v);
    APS_TRY(s);
  }
  return APS_OK;
}

static void fill_normal(float *v, int64_t n, float scale, uint64_t *rng) {
  for (int64_t i = 0; i < n; i++)
    v[i] = scale * aps_rng_normal(rng);
}

static double max_abs(const float *v, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++)
    m = fmax(m, fabs(v[i]));
  return m;
}

/* Runs g (inputs "z" and optionally "feat"/"cond" of the given sizes) on a device with
 * perturbed parameters and checks outputs "u" ≈ "z" and "lf" + "li" ≈ 0. */
static void check_roundtrip(const char *what, gr_graph *g, const aps_flow_config *c, int64_t nz, const char *extra,
                            int64_t nextra, float param_scale) {
  REQUIRE_OK(gr_graph_status(g));
  for (int dv = 0; dv < 2; dv++) {
    aps_runner *r = NULL;
    REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = devices[dv], .quiet = 1}, &r));
    uint64_t rng = 17;
    float *z = malloc(sizeof(float) * (size_t)nz), *u = malloc(sizeof(float) * (size_t)nz);
    float *e = malloc(sizeof(float) * (size_t)(nextra ? nextra : 1));
    int64_t n = gr_shape_count(gr_tensor_shape(g, gr_find(g, "lf")));
    float lf[64], li[64];
    fill_normal(z, nz, 1.0f, &rng);
    fill_normal(e, nextra, 1.0f, &rng);
    aps_status s = init_perturbed(g, c, r, &rng, param_scale);
    if (s == APS_OK)
      s = aps_runner_set(r, "z", z, nz);
    if (s == APS_OK && extra)
      s = aps_runner_set(r, extra, e, nextra);
    if (s == APS_OK)
      s = aps_runner_run(r);
    if (s == APS_OK)
      s = aps_runner_get(r, "u", u, nz);
    if (s == APS_OK)
      s = aps_runner_get(r, "lf", lf, n);
    if (s == APS_OK)
      s = aps_runner_get(r, "li", li, n);
    CHECK(s == APS_OK, "%s on %s: %s", what, devices[dv], aps_last_error());
    if (s == APS_OK) {
      double err = 0, ld = 0, ldmax = 0;
      for (int64_t i = 0; i < nz; i++)
        err = fmax(err, fabs(u[i] - z[i]));
      for (int64_t i = 0; i < n; i++)
        ld = fmax(ld, fabs(lf[i] + li[i])), ldmax = fmax(ldmax, fabs(lf[i]));
      double rel = err / max_abs(z, nz);
      fprintf(stderr, "%-26s %-4s: max |inverse(forward(z)) - z| / max |z| = %.2e, log-det %+.4f, |fwd + inv| %.1e\n",
              what, devices[dv], rel, lf[0], ld);
      CHECK(rel < 1e-4, "%s on %s: round trip error %.3e relative", what, devices[dv], rel);
      CHECK(ld < 1e-4 * (1 + ldmax), "%s on %s: forward and inverse log-dets differ by %.3e", what, devices[dv], ld);
      CHECK(strcmp(what, "permute") && strcmp(what, "squeeze") && strcmp(what, "split/merge") ? ldmax > 1e-3
                                                                                             : ldmax == 0,
            "%s on %s: log-det %.3e (the parameters are not the identity?)", what, devices[dv], ldmax);
    }
    free(z), free(u), free(e);
    aps_runner_destroy(r);
  }
}

/* One layer built forward on "z" and then inverse on its output, sharing parameters. */
typedef gr_tensor (*layer_fn)(aps_flow_ctx *f, gr_tensor x, gr_tensor extra);
static gr_tensor l_actnorm(aps_flow_ctx *f, gr_tensor x, gr_tensor e) { return (void)e, aps_flow_actnorm(f, "an", x); }
static gr_tensor l_invconv(aps_flow_ctx *f, gr_tensor x, gr_tensor e) { return (void)e, aps_flow_invconv(f, "ic", x); }
static gr_tensor l_coupling(aps_flow_ctx *f, gr_tensor x, gr_tensor e) {
  return aps_flow_coupling(f, "cp", x, e, 8, 2.0f);
}
static gr_tensor l_cond_affine(aps_flow_ctx *f, gr_tensor x, gr_tensor e) {
  return aps_flow_cond_affine(f, "ca", x, e, 5, APS_FLOW_HEAD_BOUND);
}
static gr_tensor l_permute(aps_flow_ctx *f, gr_tensor x, gr_tensor e) {
  (void)e;
  static const int32_t perm[6] = {3, 0, 5, 1, 4, 2};
  return aps_flow_permute(f, x, perm, 6);
}
static gr_tensor l_squeeze(aps_flow_ctx *f, gr_tensor x, gr_tensor e) { return (void)e, aps_flow_squeeze(f, x); }
static gr_tensor l_split(aps_flow_ctx *f, gr_tensor x, gr_tensor e) {
  (void)e;
  gr_tensor z = 0;
  if (!f->inverse) { /* split then merge: x -> (h, z) -> x */
    f->inverse = 1;
    gr_tensor h = aps_flow_merge(f, x, &z, 2);
    f->inverse = 0;
    return aps_flow_merge(f, h, &z, 2);
  }
  gr_tensor h = aps_flow_merge(f, x, &z, 4);
  f->inverse = 0;
  x = aps_flow_merge(f, h, &z, 4);
  f->inverse = 1;
  return x;
}

static void layer_roundtrip(const char *what, layer_fn fn, gr_shape zs, gr_shape es) {
  gr_graph *g = gr_graph_create();
  int64_t n = zs.d[0];
  gr_tensor z = gr_input(g, "z", zs), e = es.rank ? gr_input(g, "feat", es) : 0;
  aps_flow_ctx f;
  aps_flow_ctx_init(&f, g, n, 0, 1);
  gr_tensor v = fn(&f, z, e), lf = f.logdet;
  CHECK(aps_flow_ctx_done(&f) == APS_OK, "%s forward: %s", what, aps_last_error());
  aps_flow_ctx_init(&f, g, n, 1, 1);
  gr_tensor u = fn(&f, v, e), li = f.logdet;
  CHECK(aps_flow_ctx_done(&f) == APS_OK, "%s inverse: %s", what, aps_last_error());
  gr_output(g, u, "u");
  gr_output(g, lf, "lf");
  gr_output(g, li, "li");
  aps_flow_config c = aps_flow_config_realnvp(6, 0); /* the seed of the LU constants (1) */
  check_roundtrip(what, g, &c, gr_shape_count(zs), es.rank ? "feat" : NULL, es.rank ? gr_shape_count(es) : 0, 0.2f);
  gr_graph_destroy(g);
}

TEST_CASE(flow_layers_roundtrip) {
  gr_shape none = {0};
  layer_roundtrip("actnorm image", l_actnorm, GR_SHAPE(3, 5, 4, 3), none);
  layer_roundtrip("actnorm vector", l_actnorm, GR_SHAPE(3, 7), none);
  layer_roundtrip("invconv image", l_invconv, GR_SHAPE(2, 8, 3, 5), none);
  layer_roundtrip("invconv vector", l_invconv, GR_SHAPE(4, 6), none);
  layer_roundtrip("coupling image", l_coupling, GR_SHAPE(2, 5, 4, 4), GR_SHAPE(2, 3, 4, 4));
  layer_roundtrip("coupling image, no cond", l_coupling, GR_SHAPE(2, 4, 3, 3), none);
  layer_roundtrip("coupling vector", l_coupling, GR_SHAPE(5, 7), GR_SHAPE(5, 3));
  layer_roundtrip("conditional affine", l_cond_affine, GR_SHAPE(2, 2, 4, 4), GR_SHAPE(2, 3, 4, 4));
  layer_roundtrip("permute", l_permute, GR_SHAPE(3, 6), none);
  layer_roundtrip("squeeze", l_squeeze, GR_SHAPE(2, 3, 4, 6), none);
  layer_roundtrip("split/merge", l_split, GR_SHAPE(2, 6, 2, 2), none);
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}

/* The whole flow forward on "z" and inverse on its output. */
static void flow_roundtrip(const char *what, const aps_flow_config *c, int n) {
  gr_graph *g = gr_graph_create();
  gr_tensor z = gr_input(g, "z", aps_flow_shape(c, n));
  gr_tensor cond = c->cond ? gr_input(g, "cond", aps_flow_cond_shape(c, n)) : 0, lf, li;
  gr_tensor x = aps_flow_forward(g, c, z, cond, &lf);
  gr_output(g, aps_flow_inverse(g, c, x, cond, &li), "u");
  gr_output(g, lf, "lf");
  gr_output(g, li, "li");
  check_roundtrip(what, g, c, n * aps_flow_dim(c), c->cond ? "cond" : NULL,
                  c->cond ? gr_shape_count(aps_flow_cond_shape(c, n)) : 0, 0.05f);
  gr_graph_destroy(g);
}

TEST_CASE(flow_glow_roundtrip) {
  aps_flow_config c = aps_flow_config_glow(1, 8, 2);
  c.levels = 2, c.steps = 2, c.hidden = 8, c.cond_hidden = 4;
  flow_roundtrip("glow 1x8x8, 2 levels", &c, 3);
  c = aps_flow_config_glow(3, 8, 0);
  c.levels = 3, c.steps = 1, c.hidden = 6;
  flow_roundtrip("glow 3x8x8, 3 levels", &c, 2);
  c = aps_flow_config_glow(1, 32, 3); /* the default */
  flow_roundtrip("glow default 1x32x32", &c, 2);
  c.head = 1;
  flow_roundtrip("glow default 1x32x32 with the conditional affine head", &c, 2);
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}

TEST_CASE(flow_realnvp_roundtrip) {
  aps_flow_config c = aps_flow_config_realnvp(6, 3);
  c.steps = 4, c.hidden = 16;
  flow_roundtrip("realnvp-fc dim 6", &c, 5);
  c = aps_flow_config_realnvp(17, 0);
  flow_roundtrip("realnvp-fc dim 17", &c, 3);
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}

/* log|det J| of a D×D matrix in double (LU with partial pivoting). */
static double log_abs_det(double *a, int d) {
  double s = 0;
  for (int k = 0; k < d; k++) {
    int p = k;
    for (int i = k + 1; i < d; i++)
      if (fabs(a[i * d + k]) > fabs(a[p * d + k]))
        p = i;
    for (int j = 0; j < d; j++) {
      double t = a[k * d + j];
      a[k * d + j] = a[p * d + j], a[p * d + j] = t;
    }
    s += log(fabs(a[k * d + k]));
    for (int i = k + 1; i < d; i++) {
      double m = a[i * d + k] / a[k * d + k];
      for (int j = k; j < d; j++)
        a[i * d + j] -= m * a[k * d + j];
    }
  }
  return s;
}

/* The Jacobian ∂x/∂z row by row (gr_grad of each output element, summed over the
 * independent samples), its log|det| against the flow's log-det. */
static void jacobian_check(const char *what, const aps_flow_config *c) {
  enum { N = 2 };
  int d = (int)aps_flow_dim(c);
  gr_graph *g = gr_graph_create();
  gr_tensor z = gr_input(g, "z", aps_flow_shape(c, N));
  gr_tensor cond = c->cond ? gr_input(g, "cond", aps_flow_cond_shape(c, N)) : 0, ld;
  gr_tensor x = gr_reshape(g, aps_flow_forward(g, c, z, cond, &ld), GR_SHAPE(N, d));
  gr_output(g, ld, "logdet");
  char name[16];
  for (int i = 0; i < d; i++) {
    gr_tensor row = 0;
    REQUIRE_OK(gr_grad(g, gr_slice(g, x, 1, i, 1), 1, &z, &row));
    snprintf(name, sizeof name, "row%d", i);
    gr_output(g, row, name);
  }
  REQUIRE_OK(gr_graph_status(g));
  int64_t nc = c->cond ? gr_shape_count(aps_flow_cond_shape(c, N)) : 0;
  for (int dv = 0; dv < 2; dv++) {
    aps_runner *r = NULL;
    REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = devices[dv], .quiet = 1}, &r));
    uint64_t rng = 23;
    float zv[N * 64], cv[N * 64], row[N * 64], ldv[N];
    double *jac = malloc(sizeof(double) * N * d * d);
    fill_normal(zv, N * d, 1.0f, &rng);
    fill_normal(cv, nc, 1.0f, &rng);
    REQUIRE_OK(init_perturbed(g, c, r, &rng, 0.1f));
    REQUIRE_OK(aps_runner_set(r, "z", zv, N * d));
    if (nc)
      REQUIRE_OK(aps_runner_set(r, "cond", cv, nc));
    REQUIRE_OK(aps_runner_run(r));
    REQUIRE_OK(aps_runner_get(r, "logdet", ldv, N));
    for (int i = 0; i < d; i++) {
      snprintf(name, sizeof name, "row%d", i);
      REQUIRE_OK(aps_runner_get(r, name, row, N * d));
      for (int s = 0; s < N; s++)
        for (int j = 0; j < d; j++)
          jac[(size_t)s * d * d + (size_t)i * d + j] = row[s * d + j];
    }
    for (int s = 0; s < N; s++) {
      double brute = log_abs_det(jac + (size_t)s * d * d, d);
      fprintf(stderr, "%-18s %-4s sample %d: log|det J| by Jacobian %+.5f, flow %+.5f\n", what, devices[dv], s, brute,
              ldv[s]);
      CHECK(fabs(brute - ldv[s]) < 1e-3 * (1 + fabs(brute)), "%s on %s: log-det %.5f, Jacobian's %.5f", what,
            devices[dv], ldv[s], brute);
      CHECK(fabs(brute) > 0.05, "%s: log-det %.4f too close to 0 to tell anything", what, brute);
    }
    free(jac);
    aps_runner_destroy(r);
  }
  gr_graph_destroy(g);
}

TEST_CASE(flow_logdet_jacobian) {
  aps_flow_config glow = aps_flow_config_glow(1, 4, 2);
  glow.levels = 1, glow.steps = 2, glow.hidden = 6, glow.cond_hidden = 3;
  jacobian_check("glow 1x4x4", &glow);
  glow = aps_flow_config_glow(1, 4, 1);
  glow.levels = 2, glow.steps = 1, glow.hidden = 4, glow.cond_hidden = 2;
  jacobian_check("glow 1x4x4 2 levels", &glow);
  glow.head = 1;
  jacobian_check("glow 1x4x4 2 levels, head", &glow);
  aps_flow_config fc = aps_flow_config_realnvp(6, 2);
  fc.steps = 3, fc.hidden = 12;
  jacobian_check("realnvp-fc dim 6", &fc);
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}

/* Per-dimension (vectors) or overall (images) mean and variance of n samples of d values. */
static void moments(const float *v, int n, int d, int per_dim, double *worst_mean, double *worst_var) {
  *worst_mean = *worst_var = 0;
  for (int j = 0; j < (per_dim ? d : 1); j++) {
    double s = 0, s2 = 0, count = 0;
    for (int i = 0; i < n; i++)
      for (int k = per_dim ? j : 0; k < (per_dim ? j + 1 : d); k++)
        s += v[i * d + k], s2 += (double)v[i * d + k] * v[i * d + k], count++;
    double mean = s / count, var = s2 / count - (per_dim ? mean * mean : 0);
    *worst_mean = fmax(*worst_mean, fabs(mean));
    *worst_var = fmax(*worst_var, fabs(var - 1));
  }
}

/* Data-dependent ActNorm initialisation, in either direction, then the flow run in that
 * direction on the same batch: its output is standardised (per dimension for realnvp-fc,
 * whose last layer that way is an ActNorm or an identity coupling and a permutation; for
 * glow each latent channel is, so the whole z has mean 0 and mean square 1). */
static void ddi_check(const char *what, const aps_flow_config *c, int inverse, const char *device) {
  enum { B = 64 };
  int d = (int)aps_flow_dim(c);
  int64_t nc = c->cond ? gr_shape_count(aps_flow_cond_shape(c, B)) : 0;
  gr_graph *g = gr_graph_create();
  gr_tensor in = gr_input(g, "in", aps_flow_shape(c, B));
  gr_tensor cond = c->cond ? gr_input(g, "cond", aps_flow_cond_shape(c, B)) : 0;
  gr_output(g, inverse ? aps_flow_inverse(g, c, in, cond, NULL) : aps_flow_forward(g, c, in, cond, NULL), "out");
  aps_runner *r = NULL;
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = device, .quiet = 1}, &r));
  uint64_t rng = 31;
  float *data = malloc(sizeof(float) * B * (size_t)d), *out = malloc(sizeof(float) * B * (size_t)d);
  float *cv = malloc(sizeof(float) * (size_t)(nc ? nc : 1));
  for (int i = 0; i < B * d; i++) /* far from standard: per-element offsets and scales */
    data[i] = 0.5f * (float)(i % d) - 1.0f + (0.1f + 0.05f * (float)(i % d)) * aps_rng_normal(&rng);
  fill_normal(cv, nc, 1.0f, &rng);
  REQUIRE_OK(aps_flow_init_params(g, c, r, &rng));
  REQUIRE_OK(aps_flow_actnorm_init(r, c, inverse, data, c->cond ? cv : NULL, B));
  REQUIRE_OK(aps_runner_set(r, "in", data, (int64_t)B * d));
  if (nc)
    REQUIRE_OK(aps_runner_set(r, "cond", cv, nc));
  REQUIRE_OK(aps_runner_run(r));
  REQUIRE_OK(aps_runner_get(r, "out", out, (int64_t)B * d));
  double m0, v0, m1, v1;
  moments(data, B, d, c->arch == APS_FLOW_REALNVP_FC, &m0, &v0);
  moments(out, B, d, c->arch == APS_FLOW_REALNVP_FC, &m1, &v1);
  fprintf(stderr, "%s, %s, %s: |mean| %.2e, |var - 1| %.2e (data: %.2f, %.2f)\n", what,
          inverse ? "inverse on x" : "forward on z", device, m1, v1, m0, v0);
  CHECK(m1 < 1e-3 && v1 < 1e-3, "%s: after the data-dependent init the %s output has |mean| %.3e, |var - 1| %.3e",
        what, inverse ? "inverse" : "forward", m1, v1);
  free(data), free(out), free(cv);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
}

TEST_CASE(flow_actnorm_init) {
  aps_flow_config fc = aps_flow_config_realnvp(5, 2);
  fc.steps = 3, fc.hidden = 8;
  aps_flow_config glow = aps_flow_config_glow(1, 8, 1);
  glow.levels = 2, glow.steps = 2, glow.hidden = 8, glow.cond_hidden = 4;
  for (int dv = 0; dv < 2; dv++) {
    ddi_check("realnvp-fc dim 5", &fc, 1, devices[dv]);
    ddi_check("realnvp-fc dim 5", &fc, 0, devices[dv]);
    ddi_check("glow 1x8x8", &glow, 1, devices[dv]);
  }
  /* Non-finite data cannot be standardised: the error names the ActNorm. */
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  REQUIRE_OK(aps_flow_sample_graph(&fc, 4, &g));
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r));
  uint64_t rng = 3;
  REQUIRE_OK(aps_flow_init_params(g, &fc, r, &rng));
  float flat[4 * 5] = {0}, cv[4 * 2] = {0};
  for (int i = 0; i < 20; i++)
    flat[i] = i % 5 ? 1.0f : 1.0f / 0.0f;
  aps_status s = aps_flow_actnorm_init(r, &fc, 1, flat, cv, 4);
  CHECK(s != APS_OK && strstr(aps_last_error(), "actnorm"), "non-finite data: %s", aps_last_error());
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}

TEST_CASE(flow_config) {
  aps_flow_config cs[3] = {aps_flow_config_glow(3, 64, 4), aps_flow_config_realnvp(16, 8),
                           aps_flow_config_glow(1, 32, 3)}, back;
  cs[2].head = 1;
  char buf[256];
  for (int i = 0; i < 3; i++) {
    aps_flow_config_string(&cs[i], buf);
    REQUIRE_OK(aps_flow_config_parse(buf, &back));
    CHECK(!memcmp(&back, &cs[i], sizeof back), "'%s' parses back to the same config", buf);
  }
  const char *bad[][2] = {
      {"arch=glow channels=1 size=30 levels=2", "size=30"},
      {"arch=glow channels=1", "lacks 'size'"},
      {"arch=glow channels=1 size=32 steps=x", "'steps=x'"},
      {"arch=flowy channels=1 size=32", "'arch=flowy'"},
      {"arch=realnvp-fc dim=8 levels=2", "'levels=2'"},
      {"arch=glow channels=1 size=32 bound=nan", "'bound=nan'"},
      {"arch=realnvp-fc dim=1", "dim=1"},
      {"channels=1 size=32 hidden=-3", "'hidden=-3'"},
      {"channels=1 size=32 cond=2 cond_hidden=0", "cond_hidden=0"},
      {"channels=1 size=32 levels", "'levels'"},
      {"channels=1 size=32 head=1", "head=1"},
      {"channels=1 size=32 cond=3 head=2", "head=2"},
      {"arch=realnvp-fc dim=8 cond=2 head=1", "'head=1'"},
  };
  for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
    aps_status s = aps_flow_config_parse(bad[i][0], &back);
    CHECK(s == APS_ERR_FORMAT && strstr(aps_last_error(), bad[i][1]), "'%s': want an error naming %s, got: %s",
          bad[i][0], bad[i][1], aps_last_error());
  }
  /* Model files: the kind and the config are checked, errors name the file and the key. */
  char dir[] = "/tmp/aps-test-flow-XXXXXX", path[512];
  REQUIRE_OK(mkdtemp(dir) ? APS_OK : APS_ERR_IO);
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  float w = 1;
  gr_st_tensor t = {.name = "w", .rank = 1, .dims = {1}, .data = &w};
  const char *files[][3] = {{NULL, "arch=glow channels=1 size=32", "aps.kind is missing"},
                            {"prior/vp-eps", "arch=glow channels=1 size=32", "not a conditional flow"},
                            {"flow/conditional", NULL, "aps.flow is missing"},
                            {"flow/conditional", "arch=glow channels=1 size=32 levels=9", "levels=9"}};
  for (unsigned i = 0; i < sizeof files / sizeof *files; i++) {
    gr_st_meta m[2];
    uint32_t nm = 0;
    if (files[i][0])
      m[nm++] = (gr_st_meta){"aps.kind", files[i][0]};
    if (files[i][1])
      m[nm++] = (gr_st_meta){"aps.flow", files[i][1]};
    REQUIRE_OK(gr_st_write(path, &t, 1, m, nm));
    gr_st *st = NULL;
    REQUIRE_OK(gr_st_open(path, &st));
    aps_status s = aps_flow_config_from_file(st, &back);
    CHECK(s == APS_ERR_FORMAT && strstr(aps_last_error(), files[i][2]) && strstr(aps_last_error(), path),
          "file case %u: want an error naming the file and \"%s\", got: %s", i, files[i][2], aps_last_error());
    gr_st_close(st);
  }
  unlink(path);
  rmdir(dir);
}

/* Save a flow's parameters with its config, rebuild it from the file alone: the same
 * samples, bit for bit. */
static void reload_on(const char *device) {
  char dir[] = "/tmp/aps-test-flow-XXXXXX", path[512], meta_buf[256];
  REQUIRE_OK(mkdtemp(dir) ? APS_OK : APS_ERR_IO);
  snprintf(path, sizeof path, "%s/flow.safetensors", dir);
  aps_flow_config c = aps_flow_config_glow(1, 8, 2), back;
  c.levels = 2, c.steps = 2, c.hidden = 8, c.cond_hidden = 4, c.seed = 77, c.head = 1;
  enum { K = 5, B = 3, DIM = 64 };
  float cond[2 * DIM], x1[K * DIM], x2[K * DIM];
  uint64_t rng = 41;
  fill_normal(cond, 2 * DIM, 1.0f, &rng);
  gr_graph *g = NULL, *g2 = NULL;
  aps_runner *r = NULL, *r2 = NULL;
  REQUIRE_OK(aps_flow_sample_graph(&c, B, &g));
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = device, .quiet = 1}, &r));
  REQUIRE_OK(init_perturbed(g, &c, r, &rng, 0.05f));
  REQUIRE_OK(aps_flow_sample(r, &c, B, cond, 1234, 0.8f, K, x1));
  gr_st_meta meta[APS_FLOW_META];
  aps_flow_config_meta(&c, meta_buf, meta);
  REQUIRE_OK(aps_runner_save(r, path, APS_SAVE_PARAMS, meta, APS_FLOW_META));
  gr_st *st = NULL;
  REQUIRE_OK(gr_st_open(path, &st));
  REQUIRE_OK(aps_flow_config_from_file(st, &back));
  CHECK(!memcmp(&back, &c, sizeof c), "the config read back from the file's metadata");
  REQUIRE_OK(aps_flow_sample_graph(&back, B, &g2));
  REQUIRE_OK(aps_runner_create(g2, &(aps_runner_desc){.device = device, .quiet = 1}, &r2));
  REQUIRE_OK(aps_runner_load(r2, st));
  REQUIRE_OK(aps_flow_sample(r2, &back, B, cond, 1234, 0.8f, K, x2));
  CHECK(!memcmp(x1, x2, sizeof x1), "%s: samples of the reloaded flow are bit-identical", device);
  double spread = 0;
  for (int i = 0; i < DIM; i++)
    spread += fabs(x1[i] - x1[DIM + i]) + fabs(x1[i] - x1[4 * DIM + i]);
  CHECK(spread > 1, "%s: samples differ from one another (spread %.3f)", device, spread);
  gr_st_close(st);
  aps_runner_destroy(r), aps_runner_destroy(r2);
  gr_graph_destroy(g), gr_graph_destroy(g2);
  unlink(path);
  rmdir(dir);
}

TEST_CASE(flow_reload) {
  reload_on("cpu");
  reload_on("0");
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}
