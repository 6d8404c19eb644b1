/* The diffusion prior: the VP-SDE in closed form, the importance density, the ELBO on a
 * Gaussian data set with the exact score, a short training run, checkpoints and reloads. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "../test.h"
#include "app_fixtures.h"
#include "dataset.h"
#include "elbo.h"
#include "prior.h"
#include "runner.h"
#include "sampler.h"
#include "trainer.h"

TEST_CASE(sde_schedule) {
  aps_sde s = aps_sde_default();
  CHECK(s.beta0 == 0.1 && s.beta1 == 20.0 && s.eps == 1e-3, "the defaults of docs/METHOD.md §2");
  const double ts[] = {1e-3, 0.01, 0.1, 0.37, 0.5, 0.9, 1.0};
  for (int i = 0; i < 7; i++) {
    double t = ts[i], a = exp(-0.25 * t * t * (20.0 - 0.1) - 0.5 * t * 0.1);
    CHECK(fabs(aps_sde_alpha(&s, t) - a) < 1e-15, "a(%g) = %.17g, expected %.17g", t, aps_sde_alpha(&s, t), a);
    CHECK(fabs(aps_sde_sigma(&s, t) - sqrt(1 - a * a)) < 1e-12 * (1 + 1 / sqrt(1 - a * a)), "sigma(%g)", t);
    CHECK(fabs(aps_sde_beta(&s, t) - (0.1 + t * 19.9)) < 1e-14, "beta(%g)", t);
    /* d/dt log a = −β/2, by central differences */
    double h = 1e-6, dlog = (log(aps_sde_alpha(&s, t + h)) - log(aps_sde_alpha(&s, t - h))) / (2 * h);
    CHECK(fabs(dlog + 0.5 * aps_sde_beta(&s, t)) < 1e-6, "d log a / dt at %g: %g", t, dlog);
  }
  /* The graph's a(t), σ(t) (fp32) against the closed form. */
  gr_graph *g = gr_graph_create();
  gr_tensor t = gr_input(g, "t", GR_SHAPE(7));
  gr_output(g, aps_prior_alpha(g, &s, t), "a");
  gr_output(g, aps_prior_sigma(g, &s, t), "sigma");
  gr_cpu *c = NULL;
  REQUIRE_OK(gr_cpu_create(g, &c));
  float tf[7];
  for (int i = 0; i < 7; i++)
    tf[i] = (float)ts[i];
  REQUIRE_OK(gr_cpu_set(c, "t", tf, 7));
  REQUIRE_OK(gr_cpu_run(c));
  const float *a = gr_cpu_values(c, gr_find(g, "a")), *sg = gr_cpu_values(c, gr_find(g, "sigma"));
  for (int i = 0; i < 7; i++) {
    CHECK(fabs(a[i] - aps_sde_alpha(&s, tf[i])) < 1e-6, "graph a(%g) = %g", ts[i], a[i]);
    CHECK(fabs(sg[i] - aps_sde_sigma(&s, tf[i])) < 2e-4 * aps_sde_sigma(&s, tf[i]), "graph sigma(%g) = %g", ts[i], sg[i]);
  }
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

TEST_CASE(importance_density) {
  aps_sde s = aps_sde_default();
  /* Z = ∫ g²/σ² dt by the midpoint rule on a log-spaced grid, against the closed form. */
  double z = 0;
  int n = 200000;
  for (int i = 0; i < n; i++) {
    double u0 = log(s.eps) + (0 - log(s.eps)) * i / n, u1 = log(s.eps) + (0 - log(s.eps)) * (i + 1) / n;
    double t0 = exp(u0), t1 = exp(u1), tm = 0.5 * (t0 + t1), sg = aps_sde_sigma(&s, tm);
    z += aps_sde_beta(&s, tm) / (sg * sg) * (t1 - t0);
  }
  CHECK(fabs(z - aps_sde_importance_z(&s)) < 1e-5 * z, "Z: quadrature %.9g, closed form %.9g", z, aps_sde_importance_z(&s));
  double cdf = 0, prev = s.eps;
  for (int i = 1; i <= 1000; i++) { /* the CDF is the integral of the density */
    double t = s.eps * pow(1 / s.eps, i / 1000.0);
    for (int k = 0; k < 50; k++) {
      double a = prev + (t - prev) * k / 50, b = prev + (t - prev) * (k + 1) / 50;
      cdf += aps_sde_importance_pdf(&s, 0.5 * (a + b)) * (b - a);
    }
    prev = t;
    if (i % 100 == 0)
      CHECK(fabs(cdf - aps_sde_importance_cdf(&s, t)) < 1e-5, "CDF(%g): integral %.8f, closed form %.8f", t, cdf,
            aps_sde_importance_cdf(&s, t));
  }
  const double us[] = {0, 1e-9, 0.01, 0.25, 0.5, 0.75, 0.99, 1};
  for (int i = 0; i < 8; i++) {
    double t = aps_sde_importance_inv(&s, us[i]);
    CHECK(t >= s.eps && t <= 1, "inverse CDF(%g) = %g in [eps, 1]", us[i], t);
    CHECK(fabs(aps_sde_importance_cdf(&s, t) - us[i]) < 1e-9, "CDF(inverse CDF(%g)) = %.12g", us[i],
          aps_sde_importance_cdf(&s, t));
  }
  CHECK(aps_sde_importance_pdf(&s, 0.5 * s.eps) == 0 && aps_sde_importance_pdf(&s, 1.5) == 0, "zero outside [eps, 1]");
}

/* The exact ε for Gaussian data x ~ N(0, v I): x_t ~ N(0, (a² v + σ²) I), so
 * ε(x_t, t) = −σ ∇log p_t = σ x_t / (a² v + σ²). */
static float data_var = 0.25f;
static gr_tensor exact_eps(gr_graph *g, void *user, gr_tensor x, gr_tensor t) {
  const aps_sde *s = user;
  gr_tensor a = aps_prior_alpha(g, s, t), sg = aps_prior_sigma(g, s, t);
  gr_tensor var = gr_add(g, gr_scale_shift(g, gr_unary_op(g, GR_SQUARE, a), data_var, 0.0f), gr_unary_op(g, GR_SQUARE, sg));
  gr_tensor k = gr_div(g, sg, var);
  return gr_mul(g, x, gr_reshape(g, k, GR_SHAPE(gr_tensor_shape(g, k).d[0], 1, 1, 1)));
}

TEST_CASE(elbo_gaussian) {
  aps_sde s = aps_sde_default();
  enum { N = 65536, C = 1, S = 4, D = C * S * S };
  gr_graph *g = gr_graph_create();
  gr_shape img = GR_SHAPE(N, C, S, S);
  gr_tensor x = gr_input(g, "x", img), t = gr_input(g, "t", GR_SHAPE(N));
  gr_tensor nb = aps_prior_neg_elbo(g, &s, exact_eps, &s, x, t, gr_input(g, "e_t", img), gr_input(g, "e_1", img),
                                    gr_input(g, "e_0", img));
  gr_output(g, nb, "nelbo");
  gr_cpu *c = NULL;
  REQUIRE_OK(gr_cpu_create(g, &c));
  float *buf = malloc(sizeof(float) * N * D), *tb = malloc(sizeof(float) * N);
  uint64_t rng = 7;
  const char *names[4] = {"x", "e_t", "e_1", "e_0"};
  double exact = 0;
  for (int k = 0; k < 4; k++) {
    for (int i = 0; i < N * D; i++)
      buf[i] = aps_rng_normal(&rng) * (k ? 1.0f : sqrtf(data_var));
    if (!k)
      for (int i = 0; i < N * D; i++)
        exact += 0.5 * buf[i] * buf[i] / data_var + 0.5 * log(2 * M_PI * data_var);
    REQUIRE_OK(gr_cpu_set(c, names[k], buf, N * D));
  }
  for (int i = 0; i < N; i++)
    tb[i] = (float)aps_elbo_draw_t(&s, &rng);
  REQUIRE_OK(gr_cpu_set(c, "t", tb, N));
  REQUIRE_OK(gr_cpu_run(c));
  const float *v = gr_cpu_values(c, gr_find(g, "nelbo"));
  double sum = 0, sumsq = 0;
  for (int i = 0; i < N; i++)
    sum += v[i], sumsq += (double)v[i] * v[i];
  double mean = sum / N, se = sqrt((sumsq / N - mean * mean) / N), truth = exact / N;
  fprintf(stderr, "Gaussian data, exact score: mean -ELBO %.4f ± %.4f nats, exact -log p %.4f (D = %d)\n", mean, se,
          truth, D);
  /* An upper bound, up to the Monte Carlo error; and tight when the score is exact. */
  CHECK(mean > truth - 3 * se, "-ELBO %.4f is below -log p %.4f by more than 3 standard errors (%.4f)", mean, truth, se);
  CHECK(mean - truth < 3 * se + 0.02 * D, "-ELBO %.4f exceeds -log p %.4f by more than 0.02 nats/dim + 3 s.e.", mean,
        truth);
  free(buf), free(tb);
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

/* A small model and data set: 8×8 images of bars at random places, as an IDX file. */
static aps_prior_config tiny_config(void) {
  aps_prior_config c = aps_prior_config_default(1, 8);
  c.unet = (gr_unet_config){.image_channels = 1, .image_size = 8, .widths = {8, 16}, .levels = 2,
                            .blocks_per_level = 1, .attention_level_mask = 2, .groups = 4, .time_dim = 8};
  return c;
}

static char tmpdir[64];
static const char *make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/aps-test-prior-XXXXXX");
  return mkdtemp(tmpdir);
}

/* Trains the tiny prior from step 0 (or resumes) to `steps` on the CPU device; returns
 * the losses per step in loss[] when given, and every parameter after in params. */
static aps_status train(const aps_dataset *d, const char *ckpt, int steps, int resume, float *params, int64_t *count) {
  aps_prior_config cfg = tiny_config();
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  APS_TRY(aps_prior_train_graph(&cfg, 16, &g));
  aps_status s = aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r);
  uint64_t init = 3;
  aps_prior_feed feed = {.data = d, .rng = 11, .batch = 16, .hflip = 1};
  if (s == APS_OK && !resume)
    s = aps_prior_init_params(g, r, &init);
  char unet[256], sde[256];
  gr_st_meta meta[APS_PRIOR_META];
  aps_prior_config_meta(&cfg, unet, sde, meta);
  aps_train_result res;
  if (s == APS_OK)
    s = aps_train(r, &(aps_train_desc){.steps = steps, .schedule = {.lr = 3e-3f, .warmup = 5}, .checkpoint = ckpt,
                                       .resume = resume, .meta = meta, .n_meta = APS_PRIOR_META, .rng = &feed.rng,
                                       .feed = aps_prior_feed_fn, .user = &feed, .quiet = 1},
                  &res);
  *count = 0;
  gr_tensor t;
  for (uint32_t i = 0; s == APS_OK && (t = gr_param_at(g, i)); i++) {
    int64_t n = gr_shape_count(gr_tensor_shape(g, t));
    if (params)
      s = aps_runner_get(r, gr_tensor_name(g, t), params + *count, n);
    *count += n;
  }
  free(feed.buf);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  return s;
}

TEST_CASE(prior_train) {
  const char *dir = make_tmpdir();
  aps_dataset *d = test_bars_dataset(dir, 256);
  CHECK(d != NULL, "data set");
  if (!d)
    return;
  char csv[512];
  snprintf(csv, sizeof csv, "%s/loss.csv", dir);
  aps_prior_config cfg = tiny_config();
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  REQUIRE_OK(aps_prior_train_graph(&cfg, 16, &g));
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r));
  uint64_t init = 3;
  aps_prior_feed feed = {.data = d, .rng = 5, .batch = 16};
  REQUIRE_OK(aps_prior_init_params(g, r, &init));
  aps_train_result res;
  REQUIRE_OK(aps_train(r, &(aps_train_desc){.steps = 150, .schedule = {.lr = 3e-3f, .warmup = 10}, .csv = csv,
                                            .rng = &feed.rng, .feed = aps_prior_feed_fn, .user = &feed, .quiet = 1},
                       &res));
  /* The mean loss of the first and last 25 steps, from the CSV log. */
  FILE *f = fopen(csv, "r");
  char line[256];
  double first = 0, last = 0;
  int rows = 0;
  CHECK(f && fgets(line, sizeof line, f) && !strncmp(line, "step,loss", 9), "CSV header");
  while (f && fgets(line, sizeof line, f)) {
    int step;
    float loss;
    if (sscanf(line, "%d,%f", &step, &loss) == 2) {
      rows++;
      first += step <= 25 ? loss / 25.0 : 0;
      last += step > 125 ? loss / 25.0 : 0;
    }
  }
  if (f)
    fclose(f);
  fprintf(stderr, "tiny prior: mean loss %.4f over steps 1-25, %.4f over steps 126-150\n", first, last);
  CHECK(rows == 150, "150 CSV rows, have %d", rows);
  CHECK(last < 0.6 * first, "training reduces the loss: %.4f -> %.4f", first, last);
  free(feed.buf);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  aps_dataset_free(d);
}

/* Stopping at a checkpoint and resuming gives exactly the uninterrupted run. */
TEST_CASE(prior_resume) {
  const char *dir = make_tmpdir();
  aps_dataset *d = test_bars_dataset(dir, 256);
  CHECK(d != NULL, "data set");
  if (!d)
    return;
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/a.ckpt", dir);
  snprintf(b, sizeof b, "%s/b.ckpt", dir);
  int64_t n = 0;
  REQUIRE_OK(train(d, NULL, 1, 0, NULL, &n));
  float *straight = malloc(sizeof(float) * n), *resumed = malloc(sizeof(float) * n);
  REQUIRE_OK(train(d, a, 12, 0, straight, &n));
  REQUIRE_OK(train(d, b, 5, 0, NULL, &n));
  REQUIRE_OK(train(d, b, 12, 1, resumed, &n));
  int64_t diff = 0;
  for (int64_t i = 0; i < n; i++)
    diff += straight[i] != resumed[i];
  CHECK(diff == 0, "%lld of %lld values (weights, Adam moments, EMA) differ between a straight and a resumed run",
        (long long)diff, (long long)n);
  /* A checkpoint of another model is refused by name. */
  aps_prior_config other = tiny_config();
  other.unet.widths[1] = 8;
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  REQUIRE_OK(aps_prior_train_graph(&other, 16, &g));
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r));
  char unet[256], sde[256];
  gr_st_meta meta[APS_PRIOR_META];
  aps_prior_config_meta(&other, unet, sde, meta);
  aps_prior_feed feed = {.data = d, .batch = 16};
  aps_train_result res;
  aps_status s = aps_train(r, &(aps_train_desc){.steps = 20, .checkpoint = b, .resume = 1, .meta = meta,
                                                .n_meta = APS_PRIOR_META, .feed = aps_prior_feed_fn, .user = &feed,
                                                .quiet = 1}, &res);
  CHECK(s == APS_ERR_FORMAT && strstr(aps_last_error(), "aps.unet"), "resuming another model: %s", aps_last_error());
  free(feed.buf);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  free(straight), free(resumed);
  aps_dataset_free(d);
}

/* Save the ε-network's weights, rebuild it from the file alone: bit-identical outputs. */
static void reload_on(const char *device) {
  const char *dir = make_tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/prior.safetensors", dir);
  aps_prior_config cfg = tiny_config();
  gr_graph *g = NULL, *g2 = NULL;
  aps_runner *r = NULL, *r2 = NULL;
  REQUIRE_OK(aps_prior_eps_graph(&cfg, 3, &g));
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = device, .quiet = 1}, &r));
  uint64_t rng = 9;
  REQUIRE_OK(aps_prior_init_params(g, r, &rng));
  float x[3 * 64], t[3] = {0.01f, 0.5f, 1.0f}, y1[3 * 64], y2[3 * 64];
  for (int i = 0; i < 3 * 64; i++)
    x[i] = aps_rng_normal(&rng);
  REQUIRE_OK(aps_runner_set(r, "x", x, 3 * 64));
  REQUIRE_OK(aps_runner_set(r, "t", t, 3));
  REQUIRE_OK(aps_runner_run(r));
  REQUIRE_OK(aps_runner_get(r, "eps", y1, 3 * 64));
  char unet[256], sde[256];
  gr_st_meta meta[APS_PRIOR_META];
  aps_prior_config_meta(&cfg, unet, sde, meta);
  REQUIRE_OK(aps_runner_save(r, path, APS_SAVE_PARAMS, meta, APS_PRIOR_META));
  gr_st *st = NULL;
  REQUIRE_OK(gr_st_open(path, &st));
  aps_prior_config back;
  REQUIRE_OK(aps_prior_config_from_file(st, &back));
  CHECK(!memcmp(&back.unet, &cfg.unet, sizeof cfg.unet) && back.sde.beta1 == cfg.sde.beta1 &&
            back.sde.eps == cfg.sde.eps, "the config read back from the file's metadata");
  REQUIRE_OK(aps_prior_eps_graph(&back, 3, &g2));
  REQUIRE_OK(aps_runner_create(g2, &(aps_runner_desc){.device = device, .quiet = 1}, &r2));
  REQUIRE_OK(aps_runner_load(r2, st));
  REQUIRE_OK(aps_runner_set(r2, "x", x, 3 * 64));
  REQUIRE_OK(aps_runner_set(r2, "t", t, 3));
  REQUIRE_OK(aps_runner_run(r2));
  REQUIRE_OK(aps_runner_get(r2, "eps", y2, 3 * 64));
  CHECK(!memcmp(y1, y2, sizeof y1), "%s: reloaded outputs are bit-identical", device);
  gr_st_close(st);
  aps_runner_destroy(r), aps_runner_destroy(r2);
  gr_graph_destroy(g), gr_graph_destroy(g2);
}
TEST_CASE(prior_reload) {
  reload_on("cpu");
  reload_on("0"); /* the first Vulkan device */
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}

/* Metadata faults name the key. */
TEST_CASE(prior_config_errors) {
  const char *dir = make_tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  float w = 1;
  gr_st_tensor t = {.name = "w", .rank = 1, .dims = {1}, .data = &w};
  struct {
    const char *kind, *unet, *sde, *expect;
  } cases[] = {
      {NULL, "x", "x", "aps.kind is missing"},
      {"flow", "x", "x", "not a diffusion prior"},
      {"prior/vp-eps", "channels=1 size=32 widths=32,64 blocks=2 attention=0 groups=8", "beta0=0.1 beta1=20 eps=0.001",
       "lacks 'time_dim'"},
      {"prior/vp-eps", "channels=1 size=32 widths=32,x blocks=2 attention=0 groups=8 time_dim=32",
       "beta0=0.1 beta1=20 eps=0.001", "'widths'"},
      {"prior/vp-eps", "channels=1 size=30 widths=32,64,64 blocks=2 attention=0 groups=8 time_dim=32",
       "beta0=0.1 beta1=20 eps=0.001", "size=30"},
      {"prior/vp-eps", "channels=1 size=32 widths=32,64 blocks=2 attention=0 groups=8 time_dim=32",
       "beta0=0.1 beta1=nan eps=0.001", "'beta1'"},
  };
  for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
    gr_st_meta m[3] = {{"aps.kind", cases[i].kind}, {"aps.unet", cases[i].unet}, {"aps.sde", cases[i].sde}};
    REQUIRE_OK(gr_st_write(path, &t, 1, cases[i].kind ? m : m + 1, cases[i].kind ? 3 : 2));
    gr_st *st = NULL;
    REQUIRE_OK(gr_st_open(path, &st));
    aps_prior_config c;
    aps_status s = aps_prior_config_from_file(st, &c);
    CHECK(s == APS_ERR_FORMAT && strstr(aps_last_error(), cases[i].expect) && strstr(aps_last_error(), path),
          "case %u: want an error naming the file and \"%s\", got: %s", i, cases[i].expect, aps_last_error());
    gr_st_close(st);
  }
}

/* d(−b)/dx through the network (here the closed-form ε of the Gaussian case) by autodiff,
 * against central differences of the same graph, with every noise draw held fixed. */
TEST_CASE(elbo_input_grad) {
  aps_sde s = aps_sde_default();
  enum { N = 2, D = 16 };
  gr_graph *g = gr_graph_create();
  gr_shape img = GR_SHAPE(N, 1, 4, 4);
  gr_tensor x = gr_input(g, "x", img), t = gr_input(g, "t", GR_SHAPE(N));
  gr_tensor nb = aps_prior_neg_elbo(g, &s, exact_eps, &s, x, t, gr_input(g, "e_t", img), gr_input(g, "e_1", img),
                                    gr_input(g, "e_0", img));
  gr_tensor dx = 0;
  REQUIRE_OK(gr_grad(g, nb, 1, &x, &dx));
  gr_output(g, nb, "nelbo");
  gr_output(g, dx, "dx");
  gr_cpu *c = NULL;
  REQUIRE_OK(gr_cpu_create(g, &c));
  uint64_t rng = 5;
  float xs[N * D], buf[N * D], ts[N] = {0.05f, 0.6f};
  const char *names[3] = {"e_t", "e_1", "e_0"};
  for (int k = 0; k < 3; k++) {
    for (int i = 0; i < N * D; i++)
      buf[i] = aps_rng_normal(&rng);
    REQUIRE_OK(gr_cpu_set(c, names[k], buf, N * D));
  }
  for (int i = 0; i < N * D; i++)
    xs[i] = 0.5f * aps_rng_normal(&rng);
  REQUIRE_OK(gr_cpu_set(c, "t", ts, N));
  REQUIRE_OK(gr_cpu_set(c, "x", xs, N * D));
  REQUIRE_OK(gr_cpu_run(c));
  float grad[N * D];
  memcpy(grad, gr_cpu_values(c, gr_find(g, "dx")), sizeof grad);
  const float h = 1e-2f;
  for (int i = 0; i < N * D; i += 5) {
    double f[2];
    for (int side = 0; side < 2; side++) {
      float xp[N * D];
      memcpy(xp, xs, sizeof xp);
      xp[i] += side ? -h : h;
      REQUIRE_OK(gr_cpu_set(c, "x", xp, N * D));
      REQUIRE_OK(gr_cpu_run(c));
      const float *v = gr_cpu_values(c, gr_find(g, "nelbo"));
      f[side] = (double)v[0] + v[1];
    }
    double fd = (f[0] - f[1]) / (2 * h);
    if (i < 10)
      fprintf(stderr, "d(-b)/dx[%d]: autodiff %.5f, differences %.5f\n", i, grad[i], fd);
    CHECK(fabs(fd - grad[i]) < 5e-3 + 1e-3 * fabs(fd), "d(-b)/dx[%d]: autodiff %.5f, differences %.5f", i, grad[i], fd);
  }
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

/* A NaN loss stops training with an error and leaves the last checkpoint as it was. */
static aps_status nan_feed(void *user, aps_runner *r, int step) {
  aps_prior_feed *f = user;
  APS_TRY(aps_prior_feed_fn(f, r, step));
  for (int i = 0; i < f->batch * 64; i++)
    f->buf[i] = NAN;
  return aps_runner_set(r, "x", f->buf, f->batch * 64);
}
TEST_CASE(prior_nan_loss) {
  const char *dir = make_tmpdir();
  aps_dataset *d = test_bars_dataset(dir, 256);
  CHECK(d != NULL, "data set");
  if (!d)
    return;
  char ckpt[512];
  snprintf(ckpt, sizeof ckpt, "%s/c.ckpt", dir);
  int64_t n = 0;
  REQUIRE_OK(train(d, ckpt, 3, 0, NULL, &n));
  aps_prior_config cfg = tiny_config();
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  REQUIRE_OK(aps_prior_train_graph(&cfg, 16, &g));
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r));
  char unet[256], sde[256];
  gr_st_meta meta[APS_PRIOR_META];
  aps_prior_config_meta(&cfg, unet, sde, meta);
  aps_prior_feed feed = {.data = d, .batch = 16};
  aps_train_result res;
  aps_status s = aps_train(r, &(aps_train_desc){.steps = 6, .checkpoint = ckpt, .checkpoint_every = 1, .resume = 1,
                                                .meta = meta, .n_meta = APS_PRIOR_META, .rng = &feed.rng,
                                                .feed = nan_feed, .user = &feed, .quiet = 1}, &res);
  CHECK(s != APS_OK && strstr(aps_last_error(), "NaN"), "a NaN loss is an error naming it: %s", aps_last_error());
  gr_st *st = NULL;
  REQUIRE_OK(gr_st_open(ckpt, &st));
  const char *step = gr_st_metadata(st, "aps.step");
  CHECK(step && !strcmp(step, "3"), "the checkpoint still holds step 3 (%s)", step ? step : "none");
  gr_st_close(st);
  free(feed.buf);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  aps_dataset_free(d);
}
