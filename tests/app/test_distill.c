/* The distillation graph with an image prior: a small glow conditioned on a masked
 * measurement, the prior's U-Net loaded from its model file under "prior." and frozen. One
 * step gives the same losses on the CPU device and on Vulkan; a short run lowers the loss
 * and leaves the prior's weights untouched. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "../test.h"
#include "dataset.h"
#include "distill.h"
#include "sampler.h"
#include "trainer.h"
#include "app_fixtures.h"

enum { S = 8, B = 4, PIX = S * S };

static float mask[PIX];

/* A(x) = M ⊙ x (a box of missing pixels). */
static gr_tensor apply_mask(gr_graph *g, void *user, gr_tensor x) {
  (void)user;
  return gr_mul(g, x, gr_const(g, "mask", GR_SHAPE(1, 1, S, S), mask));
}

static aps_flow_config tiny_flow(void) {
  aps_flow_config c = aps_flow_config_glow(1, S, 2);
  c.levels = 2, c.steps = 2, c.hidden = 8, c.cond_hidden = 4;
  return c;
}

/* The runner of a distillation graph with the prior loaded, the flow initialised and a
 * batch of masked measurements (condition: zero-filled measurement and mask). */
static aps_status make(gr_graph *g, const gr_st *prior, const char *device, aps_runner **out) {
  aps_flow_config fc = tiny_flow();
  APS_TRY(aps_runner_create(g, &(aps_runner_desc){.device = device, .quiet = 1}, out));
  aps_runner *r = *out;
  uint64_t rng = 12;
  APS_TRY(aps_distill_load_prior(g, r, prior));
  APS_TRY(aps_flow_init_params(g, &fc, r, &rng));
  float y[B * PIX], cond[B * 2 * PIX], sigma[B];
  for (int b = 0; b < B; b++) {
    sigma[b] = 0.1f;
    for (int i = 0; i < PIX; i++) { /* a smooth image, masked, plus noise */
      float x = 0.6f * sinf(0.7f * (float)(i % S) + (float)b) * cosf(0.5f * (float)(i / S));
      y[b * PIX + i] = mask[i] * (x + 0.1f * aps_rng_normal(&rng));
      cond[b * 2 * PIX + i] = y[b * PIX + i];
      cond[b * 2 * PIX + PIX + i] = mask[i];
    }
  }
  APS_TRY(aps_runner_set(r, "y", y, B * PIX));
  APS_TRY(aps_runner_set(r, "cond", cond, B * 2 * PIX));
  return aps_runner_set(r, "sigma_y", sigma, B);
}

TEST_CASE(flow_distill_glow) {
  for (int i = 0; i < PIX; i++)
    mask[i] = (i % S >= 2 && i % S < 6 && i / S >= 3 && i / S < 7) ? 0.0f : 1.0f;
  char dir[] = "/tmp/aps-test-distill-XXXXXX", path[512];
  REQUIRE_OK(mkdtemp(dir) ? APS_OK : APS_ERR_IO);
  snprintf(path, sizeof path, "%s/prior.safetensors", dir);
  REQUIRE_OK(test_write_tiny_prior(path));
  gr_st *prior = NULL;
  REQUIRE_OK(gr_st_open(path, &prior));
  aps_prior_config pc = test_tiny_prior();
  gr_graph *g = NULL;
  REQUIRE_OK(aps_distill_graph(&(aps_distill_desc){.flow = tiny_flow(), .batch = B, .forward = apply_mask,
                                                   .eps = aps_distill_prior_eps, .eps_user = &pc, .t_draws = 2},
                               &g));
  /* One step on each device from the same state and seed. */
  const char *outs[5] = {"loss", "data_fit", "neg_elbo", "logdet", "grad_norm"};
  float got[2][5];
  for (int dv = 0; dv < 2; dv++) {
    const char *device = dv ? "0" : "cpu";
    aps_runner *r = NULL;
    REQUIRE_OK(make(g, prior, device, &r));
    float seed[2] = {5, 9}, lr = 1e-3f, step = 1;
    REQUIRE_OK(aps_runner_set(r, "seed", seed, 2));
    REQUIRE_OK(aps_runner_set(r, "optim.lr", &lr, 1));
    REQUIRE_OK(aps_runner_set(r, "optim.step", &step, 1));
    REQUIRE_OK(aps_runner_run(r));
    for (int k = 0; k < 5; k++)
      REQUIRE_OK(aps_runner_get(r, outs[k], &got[dv][k], 1));
    fprintf(stderr, "%s: loss %.5f nats/dim, data fit %.3f, -ELBO %.3f, log-det %.4f nats/sample, gradient norm %.5f\n",
            device, got[dv][0], got[dv][1], got[dv][2], got[dv][3], got[dv][4]);
    aps_runner_destroy(r);
  }
  for (int k = 0; k < 5; k++)
    CHECK(fabs(got[0][k] - got[1][k]) < 1e-3 * (1 + fabs(got[0][k])), "%s: CPU %.6f, Vulkan %.6f", outs[k], got[0][k],
          got[1][k]);
  /* A short run on the CPU device: the loss falls, the prior stays as loaded. */
  aps_runner *r = NULL;
  REQUIRE_OK(make(g, prior, "cpu", &r));
  char csv[512];
  snprintf(csv, sizeof csv, "%s/loss.csv", dir);
  aps_distill_feed feed = {.rng = 3};
  aps_train_result res;
  REQUIRE_OK(aps_train(r, &(aps_train_desc){.steps = 60, .schedule = {.lr = 3e-3f, .warmup = 5}, .csv = csv,
                                            .rng = &feed.rng, .feed = aps_distill_feed_fn, .user = &feed, .quiet = 1},
                       &res));
  FILE *f = fopen(csv, "r");
  char line[256];
  double first = 0, last = 0;
  while (f && fgets(line, sizeof line, f)) {
    int st;
    float loss;
    if (sscanf(line, "%d,%f", &st, &loss) == 2)
      first += st <= 10 ? loss / 10.0 : 0, last += st > 50 ? loss / 10.0 : 0;
  }
  if (f)
    fclose(f);
  fprintf(stderr, "glow distillation: mean loss %.4f over steps 1-10, %.4f over steps 51-60 (%.2f s)\n", first, last,
          res.seconds);
  CHECK(last < first, "the loss falls: %.4f -> %.4f", first, last);
  const char *probe = "down0.res0.conv1.weight";
  int64_t n = 8 * 8 * 9;
  const float *loaded;
  float now[8 * 8 * 9];
  char name[64];
  snprintf(name, sizeof name, "prior.%s", probe);
  REQUIRE_OK(gr_st_get_f32(prior, probe, NULL, NULL, &loaded));
  REQUIRE_OK(aps_runner_get(r, name, now, n));
  CHECK(!memcmp(loaded, now, sizeof now), "the prior's weights are frozen");
  /* A prior file of another network is refused by name. */
  aps_prior_config other = test_tiny_prior();
  other.unet.widths[0] = 16;
  gr_graph *g2 = NULL;
  REQUIRE_OK(aps_distill_graph(&(aps_distill_desc){.flow = tiny_flow(), .batch = B, .forward = apply_mask,
                                                   .eps = aps_distill_prior_eps, .eps_user = &other},
                               &g2));
  aps_runner *r2 = NULL;
  REQUIRE_OK(aps_runner_create(g2, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r2));
  aps_status s = aps_distill_load_prior(g2, r2, prior);
  CHECK(s == APS_ERR_FORMAT && strstr(aps_last_error(), path), "another prior: %s", aps_last_error());
  aps_runner_destroy(r2);
  gr_graph_destroy(g2);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  gr_st_close(prior);
  unlink(csv), unlink(path), rmdir(dir);
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}
