/* The runtime's side of the PyTorch parity test (tools/torch_twin.py --parity): runs the
 * shipped prior and inpainting flow on fixed inputs and writes inputs and outputs to one
 * safetensors file for the twin to recompute. Not run by itself (a TEST_HELPER): the ctest
 * test torch.parity_* runs it, then the twin. Env: APS_TORCH_REF (the file to write),
 * APS_TORCH_DEVICE (a --device name; "cpu" when unset). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "distill.h"
#include "flow.h"
#include "prior.h"
#include "rng.h"
#include "test.h"

enum { BATCH = 2, MAX_OUT = 64 };

typedef struct ref_file {
  gr_st_tensor t[MAX_OUT];
  float *owned[MAX_OUT];
  uint32_t n;
} ref_file;

/* Keeps a copy of count values under name with the given shape. */
static float *ref_add(ref_file *f, const char *name, gr_shape s, const float *data) {
  int64_t count = gr_shape_count(s);
  float *v = malloc(sizeof(float) * (size_t)count);
  if (!v || f->n == MAX_OUT) {
    free(v);
    return NULL;
  }
  if (data)
    memcpy(v, data, sizeof(float) * (size_t)count);
  char *copy = strdup(name);
  gr_st_tensor *t = &f->t[f->n];
  *t = (gr_st_tensor){.name = copy, .rank = s.rank, .data = v};
  for (int i = 0; i < s.rank; i++)
    t->dims[i] = s.d[i];
  f->owned[f->n++] = v;
  return v;
}

static void ref_free(ref_file *f) {
  for (uint32_t i = 0; i < f->n; i++)
    free(f->owned[i]), free((char *)f->t[i].name);
}

/* Image-like inputs in [-1, 1] from a formula (no RNG: the twin could rebuild them too). */
static void smooth_images(float *x, int64_t per, int n, float phase) {
  for (int b = 0; b < n; b++)
    for (int64_t i = 0; i < per; i++)
      x[b * per + i] = 0.9f * sinf(0.37f * (float)i + phase + 1.3f * (float)b) * cosf(0.05f * (float)i);
}

static void normals(float *v, int64_t n, uint64_t seed) {
  for (int64_t i = 0; i < n; i++)
    v[i] = aps_rng_normal(&seed);
}

static aps_status fetch(aps_runner *r, ref_file *f, const char *out, const char *as, gr_shape s) {
  float *v = ref_add(f, as, s, NULL);
  return v ? aps_runner_get(r, out, v, gr_shape_count(s)) : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
}

static aps_status prior_refs(const char *dir, const aps_runner_desc *dev, ref_file *f) {
  char path[512];
  snprintf(path, sizeof path, "%s/assets/prior-fmnist32.safetensors", dir);
  aps_prior_config c;
  gr_graph *g;
  aps_runner *r;
  /* ε at two times, one small and one large. */
  APS_TRY(aps_prior_open(path, dev, BATCH, aps_prior_eps_graph, &c, &g, &r));
  gr_shape img = GR_SHAPE(BATCH, c.unet.image_channels, c.unet.image_size, c.unet.image_size);
  int64_t per = gr_shape_count(img) / BATCH;
  float *x = ref_add(f, "prior.x", img, NULL), *t = ref_add(f, "prior.t", GR_SHAPE(BATCH), NULL);
  aps_status s = x && t ? APS_OK : APS_ERR_OUT_OF_MEMORY;
  if (s == APS_OK) {
    smooth_images(x, per, BATCH, 0.0f);
    t[0] = 0.05f, t[1] = 0.7f;
  }
  if (s == APS_OK && (s = aps_runner_set(r, "x", x, gr_shape_count(img))) == APS_OK &&
      (s = aps_runner_set(r, "t", t, BATCH)) == APS_OK && (s = aps_runner_run(r)) == APS_OK)
    s = fetch(r, f, "eps", "prior.eps", img);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  APS_TRY(s);
  /* −ELBO with fixed t and noises. */
  APS_TRY(aps_prior_open(path, dev, BATCH, aps_prior_elbo_graph, &c, &g, &r));
  const char *names[] = {"e_t", "e_1", "e_0"};
  float *tt = ref_add(f, "elbo.t", GR_SHAPE(BATCH), NULL);
  s = tt ? aps_runner_set(r, "x", x, gr_shape_count(img)) : APS_ERR_OUT_OF_MEMORY;
  if (s == APS_OK) {
    tt[0] = 0.02f, tt[1] = 0.4f;
    s = aps_runner_set(r, "t", tt, BATCH);
  }
  for (int i = 0; s == APS_OK && i < 3; i++) {
    char name[32];
    snprintf(name, sizeof name, "elbo.%s", names[i]);
    float *e = ref_add(f, name, img, NULL);
    if (!e)
      s = APS_ERR_OUT_OF_MEMORY;
    else
      normals(e, gr_shape_count(img), 100 + (uint64_t)i), s = aps_runner_set(r, names[i], e, gr_shape_count(img));
  }
  if (s == APS_OK && (s = aps_runner_run(r)) == APS_OK)
    s = fetch(r, f, "nelbo", "elbo.nelbo", GR_SHAPE(BATCH));
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  return s;
}

/* The flow assets/<file>.safetensors forward and inverse on fixed inputs, as "<prefix>.*";
 * with factors, also the 1×1 convs' fixed factors. */
static aps_status flow_refs(const char *dir, const char *file, const char *prefix, int factors,
                            const aps_runner_desc *dev, ref_file *f) {
  char path[512], key[8][64];
  snprintf(path, sizeof path, "%s/assets/%s.safetensors", dir, file);
  const char *leaf[8] = {"z", "x", "cond", "x_fwd", "logdet_fwd", "z_inv", "logdet_inv", ""};
  for (int i = 0; i < 7; i++)
    snprintf(key[i], sizeof key[i], "%s.%s", prefix, leaf[i]);
  gr_st *st;
  APS_TRY(gr_st_open(path, &st));
  aps_flow_config c;
  aps_status s = aps_flow_config_from_file(st, &c);
  gr_graph *g = gr_graph_create();
  aps_runner *r = NULL;
  gr_shape xs = aps_flow_shape(&c, BATCH), cs = aps_flow_cond_shape(&c, BATCH);
  if (s == APS_OK) { /* z -> x and x -> z in one graph, sharing the weights by name */
    gr_tensor cond = gr_input(g, "cond", cs), ld, ldi;
    gr_output(g, aps_flow_forward(g, &c, gr_input(g, "z", xs), cond, &ld), "x_fwd");
    gr_output(g, ld, "logdet_fwd");
    gr_output(g, aps_flow_inverse(g, &c, gr_input(g, "x", xs), cond, &ldi), "z_inv");
    gr_output(g, ldi, "logdet_inv");
    s = gr_graph_status(g);
  }
  if (s == APS_OK && (s = gr_st_check_params(g, st)) == APS_OK && (s = aps_runner_create(g, dev, &r)) == APS_OK)
    s = aps_runner_load(r, st);
  gr_st_close(st);
  float *z = ref_add(f, key[0], xs, NULL), *x = ref_add(f, key[1], xs, NULL), *cd = ref_add(f, key[2], cs, NULL);
  if (s == APS_OK && (!z || !x || !cd))
    s = APS_ERR_OUT_OF_MEMORY;
  if (s == APS_OK) {
    int64_t per = gr_shape_count(xs) / BATCH, hw = (int64_t)c.size * c.size;
    normals(z, gr_shape_count(xs), 7);
    for (int64_t i = 0; i < gr_shape_count(xs); i++)
      z[i] *= 0.8f; /* a sampling temperature's range */
    smooth_images(x, per, BATCH, 0.5f);
    /* An inpainting-like condition: masked image, a box mask, a noise level per sample. */
    for (int b = 0; b < BATCH; b++)
      for (int64_t i = 0; i < hw; i++) {
        int64_t h = i / c.size, w = i % c.size;
        float m = h >= 8 + 4 * b && h < 20 && w >= 10 && w < 24 ? 0.0f : 1.0f;
        float *base = cd + (int64_t)b * c.cond * hw;
        base[i] = m * x[b * per + i];
        if (c.cond > 1)
          base[hw + i] = m;
        for (int k = 2; k < c.cond; k++)
          base[k * hw + i] = 0.05f + 0.03f * (float)b;
      }
    s = aps_runner_set(r, "z", z, gr_shape_count(xs));
  }
  if (s == APS_OK && (s = aps_runner_set(r, "x", x, gr_shape_count(xs))) == APS_OK &&
      (s = aps_runner_set(r, "cond", cd, gr_shape_count(cs))) == APS_OK && (s = aps_runner_run(r)) == APS_OK &&
      (s = fetch(r, f, "x_fwd", key[3], xs)) == APS_OK && (s = fetch(r, f, "logdet_fwd", key[4], GR_SHAPE(BATCH))) == APS_OK &&
      (s = fetch(r, f, "z_inv", key[5], xs)) == APS_OK)
    s = fetch(r, f, "logdet_inv", key[6], GR_SHAPE(BATCH));
  /* The 1×1 convs' fixed factors of one layer per level, which the twin recomputes from
   * the seed: a wrong permutation or sign would otherwise show only as a mismatch. */
  for (int l = 0; factors && s == APS_OK && l < c.levels; l++) {
    int ch = c.channels << (l + 2);
    char scope[64], name[96];
    snprintf(scope, sizeof scope, "flow.l%d.s%d.invconv", l, c.steps - 1);
    snprintf(name, sizeof name, "factors.%s.perm", scope);
    float *perm = ref_add(f, name, GR_SHAPE(ch, ch), NULL);
    snprintf(name, sizeof name, "factors.%s.sign", scope);
    float *sign = ref_add(f, name, GR_SHAPE(ch), NULL);
    if (!perm || !sign)
      s = APS_ERR_OUT_OF_MEMORY;
    else
      aps_flow_invconv_factors(c.seed, scope, ch, perm, sign, NULL, NULL, NULL);
  }
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  return s;
}

/* A = x ⊙ mask, the mask an input of the graph. */
static gr_tensor mask_op(gr_graph *g, void *user, gr_tensor x) {
  (void)user;
  return gr_mul(g, x, gr_input(g, "mask", gr_tensor_shape(g, x)));
}

/* One distillation loss (aps_distill_graph: the flow's samples, the data term, the prior's
 * −ELBO, the log-det) on the shipped prior and the -reverse inpainting flow; z, t and the ELBO's noises
 * are drawn in the graph from "seed", which the twin replays (Philox and Box-Muller). */
static aps_status distill_refs(const char *dir, const aps_runner_desc *dev, ref_file *f) {
  char prior_path[512], flow_path[512];
  snprintf(prior_path, sizeof prior_path, "%s/assets/prior-fmnist32.safetensors", dir);
  snprintf(flow_path, sizeof flow_path, "%s/assets/flow-inpaint-reverse-fmnist32.safetensors", dir);
  gr_st *pst = NULL, *fst = NULL;
  aps_prior_config pc;
  aps_flow_config fc;
  aps_status s = gr_st_open(prior_path, &pst);
  if (s == APS_OK && (s = aps_prior_config_from_file(pst, &pc)) == APS_OK && (s = gr_st_open(flow_path, &fst)) == APS_OK)
    s = aps_flow_config_from_file(fst, &fc);
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  if (s == APS_OK)
    s = aps_distill_graph(&(aps_distill_desc){.flow = fc, .batch = BATCH, .forward = mask_op,
                                              .eps = aps_distill_prior_eps, .eps_user = &pc},
                          &g);
  if (s == APS_OK && (s = aps_runner_create(g, dev, &r)) == APS_OK &&
      (s = aps_distill_load_prior(g, r, pst)) == APS_OK)
    s = aps_distill_load_weights(g, r, fst, "flow.", 0, 0, "the flow");
  gr_st_close(pst), gr_st_close(fst);
  gr_shape xs = aps_flow_shape(&fc, BATCH), cs = aps_flow_cond_shape(&fc, BATCH);
  float *seed = ref_add(f, "distill.seed", GR_SHAPE(2), NULL), *mask = ref_add(f, "distill.mask", xs, NULL);
  float *y = ref_add(f, "distill.y", xs, NULL), *cd = ref_add(f, "distill.cond", cs, NULL);
  float *sy = ref_add(f, "distill.sigma_y", GR_SHAPE(BATCH), NULL);
  if (s == APS_OK && (!seed || !mask || !y || !cd || !sy))
    s = APS_ERR_OUT_OF_MEMORY;
  if (s == APS_OK) {
    int64_t per = gr_shape_count(xs) / BATCH, hw = (int64_t)fc.size * fc.size;
    seed[0] = 4321, seed[1] = 87;
    smooth_images(y, per, BATCH, 1.1f);
    for (int b = 0; b < BATCH; b++) {
      sy[b] = 0.04f + 0.05f * (float)b;
      for (int64_t i = 0; i < hw; i++) { /* a box, the masked image, σ_y: the family's condition */
        int64_t h = i / fc.size, w = i % fc.size;
        float m = h >= 6 + 3 * b && h < 22 && w >= 9 && w < 21 ? 0.0f : 1.0f;
        mask[b * per + i] = m, y[b * per + i] *= m;
        float *base = cd + (int64_t)b * fc.cond * hw;
        base[i] = y[b * per + i];
        if (fc.cond > 1)
          base[hw + i] = m;
        for (int k = 2; k < fc.cond; k++)
          base[k * hw + i] = sy[b];
      }
    }
  }
  float lr = 0, step = 1;
  if (s == APS_OK && (s = aps_runner_set(r, "seed", seed, 2)) == APS_OK &&
      (s = aps_runner_set(r, "mask", mask, gr_shape_count(xs))) == APS_OK &&
      (s = aps_runner_set(r, "y", y, gr_shape_count(xs))) == APS_OK &&
      (s = aps_runner_set(r, "cond", cd, gr_shape_count(cs))) == APS_OK &&
      (s = aps_runner_set(r, "sigma_y", sy, BATCH)) == APS_OK && (s = aps_runner_set(r, "optim.lr", &lr, 1)) == APS_OK &&
      (s = aps_runner_set(r, "optim.step", &step, 1)) == APS_OK && (s = aps_runner_run(r)) == APS_OK &&
      (s = fetch(r, f, "loss", "distill.loss", GR_SHAPE(1))) == APS_OK &&
      (s = fetch(r, f, "data_fit", "distill.data_fit", GR_SHAPE(1))) == APS_OK &&
      (s = fetch(r, f, "neg_elbo", "distill.neg_elbo", GR_SHAPE(1))) == APS_OK)
    s = fetch(r, f, "logdet", "distill.logdet", GR_SHAPE(1));
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  return s;
}

TEST_HELPER(torch_reference) {
  const char *out = getenv("APS_TORCH_REF"), *device = getenv("APS_TORCH_DEVICE");
  CHECK(out && *out, "APS_TORCH_REF names the file to write");
  if (!out || !*out)
    return;
  aps_runner_desc dev = {.device = device && *device ? device : "cpu", .quiet = 1};
  ref_file f = {0};
  aps_status s = prior_refs(APS_SOURCE_DIR, &dev, &f);
  if (s == APS_OK)
    s = flow_refs(APS_SOURCE_DIR, "flow-inpaint-reverse-fmnist32", "flow", 1, &dev, &f);
  if (s == APS_OK) /* the shipped inpainting flow, with the conditional affine head */
    s = flow_refs(APS_SOURCE_DIR, "flow-inpaint-fmnist32", "flowhead", 0, &dev, &f);
  if (s == APS_OK)
    s = distill_refs(APS_SOURCE_DIR, &dev, &f);
  gr_st_meta meta = {"aps.torch_reference.device", dev.device};
  if (s == APS_OK)
    s = gr_st_write(out, f.t, f.n, &meta, 1);
  ref_free(&f);
  REQUIRE_OK(s);
  printf("wrote %s (%u tensors, device %s)\n", out, f.n, dev.device);
}
