/* Distillation over an operator family (distill_family.c): the loss sees measurements only.
 * Two training sets whose images differ only where the mask hides them give the same
 * measurements, hence bit-identical losses and gradients; a set that differs where the mask
 * observes gives others (so the check can fail). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "../test.h"
#include "app_fixtures.h"
#include "distill_family.h"
#include "tiny_flow.h"
#include "trainer.h"

enum { S = 8, N = 6, BATCH = 4 };

/* An IDX file of N S×S images (uint8). */
static int write_idx(const char *path, const unsigned char *px) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return 0;
  unsigned char head[16] = {0, 0, 8, 3, 0, 0, 0, N, 0, 0, 0, S, 0, 0, 0, S};
  int ok = fwrite(head, 1, 16, f) == 16 && fwrite(px, 1, N * S * S, f) == (size_t)(N * S * S);
  return fclose(f) == 0 && ok;
}

/* An IDX file of N S×S images, pixel i = (mul·i + add) mod 256, at `path`, loaded. */
static aps_status idx_images(const char *path, int mul, int add, aps_dataset **ds) {
  unsigned char px[N * S * S];
  for (int i = 0; i < N * S * S; i++)
    px[i] = (unsigned char)(mul * i + add);
  if (!write_idx(path, px))
    return aps_fail(APS_ERR_IO, "%s: cannot write", path);
  return aps_dataset_load_idx(path, 0, ds);
}

/* One training step on images `px` (mask file: the left half observed); loss and gradient norm. */
static aps_status step(const char *dir, const unsigned char *px, const char *tag, float out[2]) {
  char idx[600], prior[600], spec[700];
  snprintf(idx, sizeof idx, "%s/%s-idx3-ubyte", dir, tag);
  snprintf(prior, sizeof prior, "%s/prior.safetensors", dir);
  snprintf(spec, sizeof spec, "inpaint:mask=%s/mask.png,noise=0.05", dir);
  if (!write_idx(idx, px))
    return aps_fail(APS_ERR_IO, "%s: cannot write", idx);
  aps_dataset *ds = NULL;
  APS_TRY(aps_dataset_load_idx(idx, 0, &ds));
  aps_flow_config fc = aps_flow_config_glow(1, S, 3);
  fc.levels = 2, fc.steps = 1, fc.hidden = 8, fc.cond_hidden = 4;
  aps_distill_run *run = NULL;
  aps_status s = aps_distill_run_create(&(aps_distill_run_desc){.prior_path = prior, .spec = spec, .data = ds,
                                                                .flow = fc, .batch = BATCH, .device = "cpu", .seed = 3},
                                        &run);
  aps_runner *r = s == APS_OK ? aps_distill_run_runner(run) : NULL;
  float lr = 1e-3f, one = 1;
  if (s == APS_OK)
    s = aps_distill_run_init(run);
  if (s == APS_OK)
    s = aps_distill_run_feed(run, r, 1);
  if (s == APS_OK && (s = aps_runner_set(r, "optim.lr", &lr, 1)) == APS_OK)
    s = aps_runner_set(r, "optim.step", &one, 1);
  if (s == APS_OK)
    s = aps_runner_run(r);
  if (s == APS_OK && (s = aps_runner_get(r, "loss", &out[0], 1)) == APS_OK)
    s = aps_runner_get(r, "grad_norm", &out[1], 1);
  aps_distill_run_destroy(run);
  aps_dataset_free(ds);
  return s;
}

TEST_CASE(distill_clean_images_unseen) {
  char dir[] = "/tmp/aps-test-family-XXXXXX", path[600];
  REQUIRE_OK(mkdtemp(dir) ? APS_OK : APS_ERR_IO);
  snprintf(path, sizeof path, "%s/prior.safetensors", dir);
  REQUIRE_OK(test_write_tiny_prior(path));
  unsigned char mask[S * S], a[N * S * S], b[N * S * S], c[N * S * S];
  for (int i = 0; i < S * S; i++)
    mask[i] = i % S < S / 2 ? 255 : 0;
  snprintf(path, sizeof path, "%s/mask.png", dir);
  REQUIRE_OK(stbi_write_png(path, S, S, 1, mask, S) ? APS_OK : APS_ERR_IO);
  for (int i = 0; i < N * S * S; i++) {
    int observed = (i % S) < S / 2;
    a[i] = (unsigned char)(37 * i + 11);
    b[i] = observed ? a[i] : (unsigned char)(255 - a[i]); /* other pixels where the mask hides them */
    c[i] = observed ? (unsigned char)(a[i] ^ 0x5a) : a[i]; /* other pixels where it observes */
  }
  float la[2], lb[2], lc[2];
  REQUIRE_OK(step(dir, a, "a", la));
  REQUIRE_OK(step(dir, b, "b", lb));
  REQUIRE_OK(step(dir, c, "c", lc));
  fprintf(stderr, "loss, gradient norm: %.6f %.6f | hidden pixels changed %.6f %.6f | observed changed %.6f %.6f\n",
          la[0], la[1], lb[0], lb[1], lc[0], lc[1]);
  CHECK(la[0] == lb[0] && la[1] == lb[1], "the clean images behind the same measurements changed the loss");
  CHECK(la[0] != lc[0] && la[1] != lc[1], "other measurements left the loss unchanged: the check cannot fail");
}

/* --init: a run starts from another flow file's weights (every "flow." parameter equal to
 * the file's), and a file of another config is refused by naming both. */
TEST_CASE(distill_init_from_flow) {
  char dir[] = "/tmp/aps-test-init-XXXXXX", prior[600], flow[600], spec[700];
  REQUIRE_OK(mkdtemp(dir) ? APS_OK : APS_ERR_IO);
  snprintf(prior, sizeof prior, "%s/prior.safetensors", dir);
  snprintf(flow, sizeof flow, "%s/flow.safetensors", dir);
  snprintf(spec, sizeof spec, "%s/images-idx3-ubyte", dir);
  REQUIRE_OK(test_write_tiny_prior(prior));
  REQUIRE_OK(tiny_flow_write(flow, 1, S, "inpaint:box=2-4", 0.1f));
  aps_dataset *ds = NULL;
  REQUIRE_OK(idx_images(spec, 29, 3, &ds));
  gr_st *st = NULL;
  REQUIRE_OK(gr_st_open(flow, &st));
  for (int hidden = 8; hidden <= 16; hidden += 8) {
    aps_flow_config fc = aps_flow_config_glow(1, S, 3);
    fc.levels = 2, fc.steps = 1, fc.hidden = hidden, fc.cond_hidden = 4, fc.seed = 3;
    aps_distill_run *run = NULL;
    REQUIRE_OK(aps_distill_run_create(&(aps_distill_run_desc){.prior_path = prior, .spec = "blur:sigma=0.5-2", .data = ds,
                                                              .flow = fc, .batch = BATCH, .device = "cpu", .seed = 2},
                                      &run));
    aps_status s = aps_distill_run_init_from(run, st);
    if (hidden == 16) {
      CHECK(s != APS_OK && strstr(aps_last_error(), "hidden=8") && strstr(aps_last_error(), "hidden=16"),
            "a flow of another config was accepted or not named: %s", aps_last_error());
    } else {
      REQUIRE_OK(s);
      const gr_graph *g = aps_distill_run_graph(run);
      gr_tensor t;
      int compared = 0, differ = 0;
      for (uint32_t i = 0; s == APS_OK && (t = gr_param_at(g, i)); i++) {
        const char *name = gr_tensor_name(g, t);
        if (strncmp(name, "flow.", 5) || gr_tensor_is_state(g, t))
          continue;
        int rank;
        int64_t dims[4], n = gr_shape_count(gr_tensor_shape(g, t));
        const float *want;
        float *have = malloc(sizeof(float) * (size_t)n);
        REQUIRE_OK(have ? APS_OK : APS_ERR_OUT_OF_MEMORY);
        REQUIRE_OK(gr_st_get_f32(st, name, &rank, dims, &want));
        REQUIRE_OK(aps_runner_get(aps_distill_run_runner(run), name, have, n));
        differ += memcmp(have, want, sizeof(float) * (size_t)n) != 0;
        compared++;
        free(have);
      }
      CHECK(compared > 10 && differ == 0, "%d of %d parameters differ from the file's", differ, compared);
    }
    aps_distill_run_destroy(run);
  }
  gr_st_close(st);
  aps_dataset_free(ds);
}

/* Samples of a flow's sampling graph for config c with weights read from st, grown by the
 * APS_LOAD_* flags `grow` (the head, when grown, from its initial values): 2 samples of one
 * condition. */
static aps_status sample_from(const aps_flow_config *c, const gr_st *st, int grow, const float *cond, float *x) {
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  APS_TRY(aps_flow_sample_graph(c, 2, &g));
  aps_status s = aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r);
  uint64_t rng = 5;
  if (s == APS_OK && (grow & APS_LOAD_GROW_HEAD))
    s = aps_flow_init_params(g, c, r, &rng);
  if (s == APS_OK)
    s = aps_distill_load_weights(g, r, st, "flow.", 0, grow, "the flow");
  if (s == APS_OK)
    s = aps_flow_sample(r, c, 2, cond, 9, 1.0f, 2, x);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  return s;
}

/* The file's flow `old` grown into `grown` by the flags `grow` draws the very samples the
 * file's flow draws; with the flags `short_of` instead the file is refused with `refusal`. */
static void grows_identically(const aps_flow_config *old, const aps_flow_config *grown, int grow, int short_of,
                              const char *refusal) {
  char dir[64];
  const char *path = tiny_join(tiny_tmpdir(dir), "flow.safetensors");
  REQUIRE_OK(tiny_flow_write_config(path, old, "inpaint:box=2-4", 0.1f));
  gr_st *st = NULL;
  REQUIRE_OK(gr_st_open(path, &st));
  float cond[3 * S * S], a[2 * S * S], b[2 * S * S];
  for (int i = 0; i < 3 * S * S; i++)
    cond[i] = (float)((i * 37) % 11) / 11.0f - 0.4f;
  REQUIRE_OK(sample_from(old, st, 0, cond, a));
  REQUIRE_OK(sample_from(grown, st, grow, cond, b));
  double diff = 0, size = 0;
  for (int i = 0; i < 2 * S * S; i++)
    diff = fmax(diff, fabs(a[i] - b[i])), size = fmax(size, fabs(a[i]));
  fprintf(stderr, "grown flow: max |x_old - x_grown| %.3g of max |x| %.3g\n", diff, size);
  CHECK(size > 0.1 && diff <= 1e-5 * size, "the grown flow's samples differ from the file's by %g", diff);
  aps_status s = sample_from(grown, st, short_of, cond, b);
  CHECK(s != APS_OK && strstr(aps_last_error(), refusal), "the file was accepted without growing: %s",
        s == APS_OK ? "no error" : aps_last_error());
  gr_st_close(st);
}

/* --init from a flow without the pixel path into one with it: the shared parameters are
 * copied, the couplings' new inputs start at zero. */
TEST_CASE(distill_init_grows_pixel_path) {
  aps_flow_config old = tiny_flow_config(1, S), grown = old;
  old.pixels = 0, grown.pixels = 1;
  grows_identically(&old, &grown, APS_LOAD_WIDEN, 0, "another shape");
}

/* --init from a flow without the head into one with it (and the pixel path too, as the
 * shipped blur flow grows): the head starts as the identity. */
TEST_CASE(distill_init_grows_head) {
  aps_flow_config old = tiny_flow_config(1, S), grown = old;
  old.pixels = 0, grown.pixels = 1, grown.head = 1;
  grows_identically(&old, &grown, APS_LOAD_WIDEN | APS_LOAD_GROW_HEAD, APS_LOAD_WIDEN, "lacks 'flow.head.");
}

/* Three steps with trained_part `parts`: the weights under "flow.<one of them>." move, every
 * other flow weight stays bit-identical, and the saved averages hold the whole flow (the held
 * weights as they are). */
static aps_status head_run(const char *prior, const aps_dataset *ds, const char *parts, aps_distill_run **run) {
  aps_flow_config fc = tiny_flow_config(1, S);
  fc.head = 1;
  return aps_distill_run_create(&(aps_distill_run_desc){.prior_path = prior, .spec = "inpaint:box=2-4,noise=0.05",
                                                        .data = ds, .flow = fc, .batch = BATCH, .device = "cpu",
                                                        .seed = 4, .trained_part = parts},
                                run);
}

static void train_only(const char *prior, aps_dataset *ds, const char *saved, const char *parts, const char *also) {
  aps_distill_run *run = NULL;
  REQUIRE_OK(head_run(prior, ds, parts, &run));
  REQUIRE_OK(aps_distill_run_init(run));
  const gr_graph *g = aps_distill_run_graph(run);
  aps_runner *r = aps_distill_run_runner(run);
  enum { MAXP = 256, MAXV = 1 << 14 };
  static float before[MAXP][MAXV], now[MAXV];
  const char *names[MAXP];
  int64_t counts[MAXP];
  int np = 0;
  gr_tensor t;
  for (uint32_t i = 0; (t = gr_param_at(g, i)) && np < MAXP; i++) {
    const char *name = gr_tensor_name(g, t);
    int64_t n = gr_shape_count(gr_tensor_shape(g, t));
    if (strncmp(name, "flow.", 5) || gr_tensor_is_state(g, t) || n > MAXV)
      continue;
    names[np] = name, counts[np] = n;
    REQUIRE_OK(aps_runner_get(r, name, before[np++], n));
  }
  REQUIRE_OK(aps_train(r, &(aps_train_desc){.steps = 3, .schedule = {.lr = 1e-2f}, .feed = aps_distill_run_feed,
                                             .user = run, .rng = aps_distill_run_rng(run), .quiet = 1},
                       &(aps_train_result){0}));
  REQUIRE_OK(aps_runner_save(r, saved, APS_SAVE_EMA, aps_distill_run_meta(run), APS_DISTILL_META));
  gr_st *st = NULL;
  REQUIRE_OK(gr_st_open(saved, &st));
  int trained = 0, moved = 0, held = 0, held_moved = 0, missing = 0, file_differs = 0;
  for (int i = 0; i < np; i++) {
    REQUIRE_OK(aps_runner_get(r, names[i], now, counts[i]));
    int m = memcmp(now, before[i], sizeof(float) * (size_t)counts[i]) != 0;
    int in = !strncmp(names[i], "flow.head.", 10) || (also && !strncmp(names[i], also, strlen(also)));
    trained += in, moved += in && m, held += !in, held_moved += !in && m;
    int rank;
    int64_t dims[4];
    const float *file;
    if (gr_st_get_f32(st, names[i], &rank, dims, &file) != APS_OK)
      missing++;
    else if (!in && memcmp(file, before[i], sizeof(float) * (size_t)counts[i]))
      file_differs++;
  }
  fprintf(stderr, "train only %s: %d of %d of their weights moved, %d of %d others; the file: %d missing, "
          "%d held ones differ\n", parts, moved, trained, held_moved, held, missing, file_differs);
  CHECK(trained >= 4 && moved >= trained / 2, "%s: their weights did not move (%d of %d)", parts, moved, trained);
  CHECK(held > 10 && held_moved == 0, "%s: %d of %d held weights moved", parts, held_moved, held);
  CHECK(missing == 0 && file_differs == 0, "the saved averages: %d flow weights missing, %d held ones differ", missing,
        file_differs);
  gr_st_close(st);
  aps_distill_run_destroy(run);
}

/* trained_part: the head alone, then the head and the coarsest level; a part that names no
 * weight is refused. */
TEST_CASE(distill_train_only_parts) {
  char dir[64];
  const char *prior = tiny_join(tiny_tmpdir(dir), "prior.safetensors");
  REQUIRE_OK(test_write_tiny_prior(prior));
  char idx[600], saved[600];
  snprintf(idx, sizeof idx, "%s/images-idx3-ubyte", dir);
  snprintf(saved, sizeof saved, "%s/flow.safetensors", dir);
  aps_dataset *ds = NULL;
  REQUIRE_OK(idx_images(idx, 53, 7, &ds));
  aps_distill_run *run = NULL;
  aps_status s = head_run(prior, ds, "head,nothing", &run);
  CHECK(s == APS_OK, "head,nothing: the head alone is trained (%s)", s == APS_OK ? "ok" : aps_last_error());
  aps_distill_run_destroy(run);
  run = NULL;
  s = head_run(prior, ds, "nothing", &run);
  CHECK(s != APS_OK && strstr(aps_last_error(), "no parameter to train named flow.nothing."),
        "a part naming no weight was accepted or not named: %s", s == APS_OK ? "(accepted)" : aps_last_error());
  aps_distill_run_destroy(run);
  train_only(prior, ds, saved, "head", NULL);
  train_only(prior, ds, saved, "head,l1", "flow.l1.");
  aps_dataset_free(ds);
}
