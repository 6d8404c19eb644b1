/* Small models and data the app tests share (app_fixtures.h). */
#include "app_fixtures.h"

#include <math.h>
#include <stdio.h>

#include "rng.h"
#include "runner.h"

enum { S = 8 }; /* the tiny prior's image side */

aps_prior_config test_tiny_prior(void) {
  aps_prior_config c = aps_prior_config_default(1, S);
  c.unet = (gr_unet_config){.image_channels = 1, .image_size = S, .widths = {8, 16}, .levels = 2,
                            .blocks_per_level = 1, .attention_level_mask = 2, .groups = 4, .time_dim = 8};
  return c;
}

/* A prior model file (8×8 images) with random weights. */
aps_status test_write_tiny_prior(const char *path) {
  aps_prior_config pc = test_tiny_prior();
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  APS_TRY(aps_prior_eps_graph(&pc, 1, &g));
  aps_status s = aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r);
  uint64_t rng = 8;
  char unet[256], sde[256];
  gr_st_meta meta[APS_PRIOR_META];
  aps_prior_config_meta(&pc, unet, sde, meta);
  if (s == APS_OK)
    s = aps_prior_init_params(g, r, &rng);
  if (s == APS_OK)
    s = aps_runner_save(r, path, APS_SAVE_PARAMS, meta, APS_PRIOR_META);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  return s;
}

void test_random_rotation(uint64_t *rng, int d, double *q) {
  for (int i = 0; i < d * d; i++)
    q[i] = aps_rng_normal(rng);
  for (int j = 0; j < d; j++) {
    for (int k = 0; k < j; k++) {
      double dot = 0;
      for (int i = 0; i < d; i++)
        dot += q[i * d + j] * q[i * d + k];
      for (int i = 0; i < d; i++)
        q[i * d + j] -= dot * q[i * d + k];
    }
    double norm = 0;
    for (int i = 0; i < d; i++)
      norm += q[i * d + j] * q[i * d + j];
    for (int i = 0; i < d; i++)
      q[i * d + j] /= sqrt(norm);
  }
}

void test_gaussian_make(test_gaussian *p, uint64_t *rng) {
  test_random_rotation(rng, TEST_GAUSS_D, p->q);
  for (int j = 0; j < TEST_GAUSS_D; j++) {
    p->lambda[j] = 0.04 * pow(10.0, (double)j / (TEST_GAUSS_D - 1));
    p->mu[j] = 0.3 * sin(1.3 * j);
  }
  p->sde = aps_sde_default();
}

gr_tensor test_gaussian_eps(gr_graph *g, void *user, gr_tensor x, gr_tensor t) {
  enum { D = TEST_GAUSS_D };
  const test_gaussian *p = user;
  int64_t n = gr_tensor_shape(g, x).d[0];
  float q[D * D], lambda[D], mu[D];
  for (int i = 0; i < D * D; i++)
    q[i] = (float)p->q[i];
  for (int i = 0; i < D; i++)
    lambda[i] = (float)p->lambda[i], mu[i] = (float)p->mu[i];
  gr_tensor qc = gr_const(g, "Q", GR_SHAPE(D, D), q), lc = gr_const(g, "lambda", GR_SHAPE(1, D), lambda);
  gr_tensor a = gr_reshape(g, aps_prior_alpha(g, &p->sde, t), GR_SHAPE(n, 1));
  gr_tensor s = gr_reshape(g, aps_prior_sigma(g, &p->sde, t), GR_SHAPE(n, 1));
  gr_tensor centred = gr_sub(g, gr_reshape(g, x, GR_SHAPE(n, D)), gr_mul(g, a, gr_const(g, "mu", GR_SHAPE(1, D), mu)));
  gr_tensor var = gr_add(g, gr_mul(g, gr_unary_op(g, GR_SQUARE, a), lc), gr_unary_op(g, GR_SQUARE, s));
  gr_tensor u = gr_mul(g, gr_matmul(g, centred, qc, 0, 0), gr_div(g, s, var));
  return gr_reshape(g, gr_matmul(g, u, qc, 0, 1), gr_tensor_shape(g, x));
}

aps_dataset *test_bars_dataset(const char *dir, int n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/bars-idx3-ubyte", dir);
  FILE *f = fopen(path, "wb");
  if (!f || n < 1 || n > 65535) {
    fprintf(stderr, "bars: cannot write %s\n", path);
    if (f)
      fclose(f);
    return NULL;
  }
  unsigned char head[16] = {0, 0, 8, 3, 0, 0, (unsigned char)(n >> 8), (unsigned char)(n & 255), 0, 0, 0, 8,
                            0, 0, 0, 8}, img[64];
  fwrite(head, 1, 16, f);
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < 64; k++)
      img[k] = (i & 1 ? k % 8 : k / 8) == (i / 2) % 8 ? 255 : 0;
    fwrite(img, 1, 64, f);
  }
  fclose(f);
  aps_dataset *d = NULL;
  if (aps_dataset_load_idx(path, 0, &d) != APS_OK)
    fprintf(stderr, "bars: %s\n", aps_last_error());
  return d;
}
