/* The posterior API (aps.h) with tiny untrained flows written here: opening, sampling and
 * moments on the CPU device and on Vulkan (lavapipe under the validation layer), the
 * devices agreeing, seeds, measurements from clean images, given measurements, explicit
 * operators and bundles matching the operators, class checks, and bad model files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test.h"
#include "aps.h"
#include "image_io.h"
#include "metrics.h"
#include "tiny_flow.h"

enum { S = 16, D = S * S, K = 5 };

/* A smooth test image [1, S, S] in [-1, 1]. */
static void test_image(float *x) {
  for (int i = 0; i < S; i++)
    for (int j = 0; j < S; j++)
      x[i * S + j] = 0.8f * sinf(0.4f * i + 0.25f * j) * cosf(0.3f * j);
}

static double max_diff(const float *a, const float *b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++)
    m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

static aps_status open_on(const char *path, const char *device, int batch, aps_posterior **p) {
  return aps_posterior_open(&(aps_posterior_desc){.model = path, .device = device, .max_batch = batch, .quiet = 1}, p);
}

static void check_validation(void) {
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}

/* Open, set, sample and moments on both devices; seeds; the devices agree. */
TEST_CASE(posterior_sample_devices) {
  char dir[64];
  const char *path = tiny_join(tiny_tmpdir(dir), "flow.safetensors");
  REQUIRE_OK(tiny_flow_write(path, 1, S, "inpaint:box=4-8,noise=0.05", 0.05f));
  float x[D], a[K * D], b[K * D], c[K * D], mean[D], std[D], m2[D], s2[D], on_dev[2][K * D];
  test_image(x);
  const char *devices[2] = {"cpu", "0"};
  for (int dv = 0; dv < 2; dv++) {
    aps_posterior *p = NULL;
    REQUIRE_OK(open_on(path, devices[dv], 4, &p));
    const aps_posterior_info *in = aps_posterior_get_info(p);
    CHECK(in->channels == 1 && in->height == S && in->width == S && in->batch == 4 && in->cls == APS_OPC_MASK,
          "info: %dx%dx%d batch %d class %d", in->channels, in->height, in->width, in->batch, (int)in->cls);
    CHECK(!strcmp(in->family, "inpaint:box=4-8,noise=0.05"), "family %s", in->family);
    CHECK(!strcmp(in->prior, "prior-fmnist32.safetensors"), "prior %s", in->prior);
    CHECK(aps_posterior_sample(p, K, 1, a) != APS_OK && strstr(aps_last_error(), "no measurement is set"),
          "sampling before a measurement: %s", aps_last_error());
    REQUIRE_OK(aps_posterior_set_clean(p, x, NULL, 11));
    REQUIRE_OK(aps_posterior_sample(p, K, 7, a));
    REQUIRE_OK(aps_posterior_sample(p, K, 7, b));
    REQUIRE_OK(aps_posterior_sample(p, K, 8, c));
    int finite = 1;
    for (int i = 0; i < K * D; i++)
      finite &= isfinite(a[i]);
    CHECK(finite, "%s: samples are finite", devices[dv]);
    CHECK(!memcmp(a, b, sizeof a), "%s: the same seed gives the same samples", devices[dv]);
    CHECK(max_diff(a, c, K * D) > 0.1, "%s: another seed gives other samples", devices[dv]);
    CHECK(max_diff(a, a + D, D) > 0.1, "%s: samples differ from one another", devices[dv]);
    CHECK(aps_posterior_ms_per_sample(p) > 0, "%s: ms per sample", devices[dv]);
    REQUIRE_OK(aps_posterior_moments(p, K, 7, mean, std, c));
    aps_sample_moments(a, K, D, m2, s2);
    CHECK(!memcmp(a, c, sizeof a) && max_diff(mean, m2, D) < 1e-6 && max_diff(std, s2, D) < 1e-6,
          "%s: moments are those of the samples", devices[dv]);
    CHECK(aps_posterior_moments(p, 1, 7, mean, std, NULL) != APS_OK, "moments of one sample refused");
    memcpy(on_dev[dv], a, sizeof a);
    aps_posterior_close(p);
  }
  double d = max_diff(on_dev[0], on_dev[1], K * D);
  CHECK(d < 1e-3, "the CPU device and Vulkan agree: max difference %g", d);
  check_validation();
  unlink(path);
  rmdir(dir);
}

/* set_clean with masks: the measurement is m ⊙ (x + σ_y n), the descriptor the mask, the
 * damaged region its complement; data consistency 0 without noise and about 1 with it. */
TEST_CASE(posterior_set_clean_mask) {
  char dir[64];
  const char *path = tiny_join(tiny_tmpdir(dir), "flow.safetensors");
  REQUIRE_OK(tiny_flow_write(path, 1, S, "inpaint:box=4-8", 0.05f));
  aps_posterior *p = NULL;
  REQUIRE_OK(open_on(path, "cpu", 8, &p));
  float x[D], y[D], desc[D], dmg[D], back[D], ref[D];
  test_image(x);
  REQUIRE_OK(aps_posterior_set_clean(p, x, "inpaint:box=5-7,noise=0", 3));
  aps_posterior_measurement_info mi;
  REQUIRE_OK(aps_posterior_get_measurement_info(p, &mi));
  REQUIRE_OK(aps_posterior_get_measurement(p, y));
  REQUIRE_OK(aps_posterior_get_descriptor(p, desc));
  REQUIRE_OK(aps_posterior_get_damaged(p, dmg));
  REQUIRE_OK(aps_posterior_get_clean(p, back));
  /* the same draw made directly */
  aps_op_spec spec;
  aps_op_family *f = NULL;
  aps_op_batch one;
  REQUIRE_OK(aps_op_spec_parse("inpaint:box=5-7,noise=0", &spec));
  REQUIRE_OK(aps_op_family_create(&spec, 1, S, S, &f));
  REQUIRE_OK(aps_op_batch_alloc(aps_op_family_layout(f), 1, &one));
  REQUIRE_OK(aps_op_draw(f, 3, &one, 0));
  int ok = 1, hidden = 0;
  for (int i = 0; i < D; i++) {
    ok &= y[i] == one.param[i] * x[i] && desc[i] == one.param[i] && dmg[i] == 1.0f - one.param[i];
    hidden += one.param[i] == 0;
  }
  CHECK(ok, "measurement = mask ⊙ x, descriptor = mask, damaged = 1 − mask");
  CHECK(hidden >= 25 && hidden <= 49, "a 5-7 px box hides %d pixels", hidden);
  CHECK(mi.has_clean && mi.cls == APS_OPC_MASK && mi.sigma_y == 0 && mi.measured == D - hidden,
        "info: clean %d class %d sigma_y %g measured %lld", mi.has_clean, (int)mi.cls, mi.sigma_y,
        (long long)mi.measured);
  CHECK(!memcmp(back, x, sizeof x), "the clean image comes back");
  double dc;
  REQUIRE_OK(aps_posterior_data_consistency(p, x, 1, &dc));
  CHECK(dc < 1e-6, "the truth fits a noise-free measurement exactly (%g)", dc);
  /* with noise: the truth's data consistency is about 1 */
  REQUIRE_OK(aps_posterior_set_clean(p, x, "inpaint:box=4,noise=0.2", 9));
  REQUIRE_OK(aps_posterior_data_consistency(p, x, 1, &dc));
  CHECK(dc > 0.85 && dc < 1.15, "the truth's data consistency with σ_y = 0.2: %g", dc);
  /* data consistency by hand for another image */
  REQUIRE_OK(aps_posterior_get_measurement(p, y));
  REQUIRE_OK(aps_posterior_get_measurement_info(p, &mi));
  REQUIRE_OK(aps_posterior_get_descriptor(p, desc));
  for (int i = 0; i < D; i++)
    ref[i] = 0.5f * x[i];
  double ss = 0;
  for (int i = 0; i < D; i++)
    ss += desc[i] * (y[i] - ref[i]) * (y[i] - ref[i]);
  REQUIRE_OK(aps_posterior_data_consistency(p, ref, 1, &dc));
  double want = sqrt(ss) / (0.2 * sqrt((double)mi.measured));
  CHECK(fabs(dc - want) < 1e-4 * want, "data consistency %g, by hand %g", dc, want);
  /* a user's mask from a file, outside the family of boxes but of its class */
  float mask[D];
  for (int i = 0; i < D; i++)
    mask[i] = (i / S > 4 && i / S < 8) || i % S == 9 ? -1.0f : 1.0f; /* an "L"-ish stroke hidden */
  const char *mask_path = tiny_join(dir, "mask.png");
  REQUIRE_OK(aps_png_write_grid(mask_path, mask, 1, 1, S, S, 1, 0));
  char spec_text[600];
  snprintf(spec_text, sizeof spec_text, "inpaint:mask=%s,noise=0", mask_path);
  REQUIRE_OK(aps_posterior_set_clean(p, x, spec_text, 1));
  REQUIRE_OK(aps_posterior_get_descriptor(p, desc));
  ok = 1;
  for (int i = 0; i < D; i++)
    ok &= desc[i] == (mask[i] > 0 ? 1.0f : 0.0f);
  CHECK(ok, "a mask from a file is the descriptor");
  /* denoise fits an inpainting flow: nothing damaged */
  REQUIRE_OK(aps_posterior_set_clean(p, x, "denoise,noise=0.1", 1));
  REQUIRE_OK(aps_posterior_get_damaged(p, dmg));
  float none = 0;
  for (int i = 0; i < D; i++)
    none += dmg[i];
  CHECK(none == 0, "denoise damages nothing");
  aps_op_batch_free(&one);
  aps_op_family_destroy(f);
  aps_posterior_close(p);
  unlink(mask_path), unlink(path);
  rmdir(dir);
}

/* Given measurements: a mask file, super-resolution at both sizes, explicit operators,
 * bundles; deterministic specs only. */
TEST_CASE(posterior_set_measured) {
  char dir[64];
  tiny_tmpdir(dir);
  const char *path = tiny_join(dir, "flow.safetensors"), *sr_path = tiny_join(dir, "sr.safetensors");
  REQUIRE_OK(tiny_flow_write(path, 1, S, "inpaint:box=4-8", 0.05f));
  REQUIRE_OK(tiny_flow_write(sr_path, 1, S, "sr:2,noise=0.01", 0.05f));
  float x[D], y[D], got[D], mask[D], desc[D], a[K * D], b[K * D];
  test_image(x);
  for (int i = 0; i < D; i++)
    mask[i] = i % S < S / 2 ? 1.0f : -1.0f;
  const char *mask_path = tiny_join(dir, "mask.png");
  REQUIRE_OK(aps_png_write_grid(mask_path, mask, 1, 1, S, S, 1, 0));
  char spec[600];
  snprintf(spec, sizeof spec, "inpaint:mask=%s,noise=0.02", mask_path);
  aps_posterior *p = NULL;
  REQUIRE_OK(open_on(path, "cpu", 4, &p));
  REQUIRE_OK(aps_posterior_set_measured(p, x, S, S, spec));
  REQUIRE_OK(aps_posterior_get_measurement(p, got));
  int ok = 1;
  for (int i = 0; i < D; i++)
    ok &= got[i] == (i % S < S / 2 ? x[i] : 0.0f);
  CHECK(ok, "a measured image keeps its observed pixels only");
  aps_posterior_measurement_info mi;
  REQUIRE_OK(aps_posterior_get_measurement_info(p, &mi));
  CHECK(!mi.has_clean && fabsf(mi.sigma_y - 0.02f) < 1e-7f && aps_posterior_get_clean(p, got) != APS_OK,
        "no clean image; sigma_y %g", mi.sigma_y);
  /* the same as an explicit operator */
  REQUIRE_OK(aps_posterior_sample(p, K, 4, a));
  aps_posterior_operator op = {.map = mask, .sigma_y = 0.02f};
  REQUIRE_OK(aps_posterior_set_measured_operator(p, x, S, S, &op));
  REQUIRE_OK(aps_posterior_sample(p, K, 4, b));
  CHECK(!memcmp(a, b, sizeof a), "an explicit mask samples as its file does");
  CHECK(aps_posterior_set_measured(p, x, S, S, "inpaint:box=4-8") != APS_OK &&
            strstr(aps_last_error(), "drawn at random"), "a random mask refused for a given measurement: %s",
        aps_last_error());
  CHECK(aps_posterior_set_measured(p, x, S, S, NULL) != APS_OK && strstr(aps_last_error(), "deterministic"),
        "the model's random family refused for a given measurement: %s", aps_last_error());
  CHECK(aps_posterior_set_measured(p, x, 8, 8, spec) != APS_OK && strstr(aps_last_error(), "8x8"),
        "a measurement of another size refused, naming it: %s", aps_last_error());
  /* an explicit painted mask on a clean image */
  REQUIRE_OK(aps_posterior_set_clean_operator(p, x, &(aps_posterior_operator){.map = mask, .sigma_y = 0}, 5));
  REQUIRE_OK(aps_posterior_get_measurement(p, got));
  ok = 1;
  for (int i = 0; i < D; i++)
    ok &= got[i] == (i % S < S / 2 ? x[i] : 0.0f);
  CHECK(ok, "a painted mask on a clean image");
  /* a bundle holding this measurement samples as it does */
  aps_op_spec sp;
  aps_op_family *f = NULL;
  aps_op_batch one;
  REQUIRE_OK(aps_op_spec_parse(spec, &sp));
  REQUIRE_OK(aps_op_family_create(&sp, 1, S, S, &f));
  REQUIRE_OK(aps_op_batch_alloc(aps_op_family_layout(f), 1, &one));
  REQUIRE_OK(aps_op_draw(f, 1, &one, 0));
  REQUIRE_OK(aps_posterior_set_measured(p, x, S, S, spec));
  REQUIRE_OK(aps_posterior_get_measurement(p, y));
  REQUIRE_OK(aps_posterior_sample(p, K, 4, a));
  const char *bundle_path = tiny_join(dir, "m.safetensors");
  REQUIRE_OK(aps_measurements_write(bundle_path, &sp, &one, y, "a test image"));
  aps_measurements *m = NULL;
  REQUIRE_OK(aps_measurements_load(bundle_path, NULL, &m));
  REQUIRE_OK(aps_posterior_set_bundle(p, m, 0));
  REQUIRE_OK(aps_posterior_sample(p, K, 4, b));
  CHECK(!memcmp(a, b, sizeof a), "a bundle samples as the measurement it holds");
  CHECK(aps_posterior_set_bundle(p, m, 1) != APS_OK, "a bundle's index past its end refused");
  aps_measurements_free(m);
  aps_op_batch_free(&one);
  aps_op_family_destroy(f);
  aps_posterior_close(p);
  /* super-resolution: the low-resolution measurement or its upsampling, the same condition */
  REQUIRE_OK(open_on(sr_path, "cpu", 4, &p));
  float lo[D / 4], up[D];
  for (int i = 0; i < S / 2; i++)
    for (int j = 0; j < S / 2; j++)
      lo[i * S / 2 + j] = x[2 * i * S + 2 * j];
  for (int i = 0; i < D; i++)
    up[i] = lo[(i / S / 2) * S / 2 + (i % S) / 2];
  REQUIRE_OK(aps_posterior_set_measured(p, lo, S / 2, S / 2, NULL));
  REQUIRE_OK(aps_posterior_get_measurement(p, got));
  REQUIRE_OK(aps_posterior_get_descriptor(p, desc));
  CHECK(max_diff(got, up, D) < 1e-6 && desc[0] == 2.0f && desc[D - 1] == 2.0f,
        "sr: the measurement on the grid is its nearest upsampling, the descriptor the factor");
  REQUIRE_OK(aps_posterior_sample(p, K, 2, a));
  REQUIRE_OK(aps_posterior_set_measured(p, up, S, S, "sr:2,noise=0.01"));
  REQUIRE_OK(aps_posterior_sample(p, K, 2, b));
  CHECK(max_diff(a, b, K * D) < 1e-5, "sr: the measurement at either size gives the same samples");
  CHECK(aps_posterior_set_clean(p, x, "inpaint:half", 1) != APS_OK && strstr(aps_last_error(), "super-resolution"),
        "an inpainting operator on a super-resolution flow refused: %s", aps_last_error());
  aps_posterior_close(p);
  unlink(bundle_path), unlink(mask_path), unlink(path), unlink(sr_path);
  rmdir(dir);
}

/* A blur flow: blur of another width accepted, denoise as a blur of width 0, a painted map;
 * inpainting refused naming both classes. */
TEST_CASE(posterior_blur_class) {
  char dir[64];
  const char *path = tiny_join(tiny_tmpdir(dir), "blur.safetensors");
  REQUIRE_OK(tiny_flow_write(path, 1, S, "blur:sigma=0.5-1", 0.05f));
  aps_posterior *p = NULL;
  REQUIRE_OK(open_on(path, "cpu", 2, &p));
  float x[D], desc[D], dmg[D], map[D], y[D];
  test_image(x);
  REQUIRE_OK(aps_posterior_set_clean(p, x, "blur:sigma=2,noise=0", 1));
  REQUIRE_OK(aps_posterior_get_descriptor(p, desc));
  CHECK(desc[0] == 2.0f && desc[D / 2] == 2.0f, "blur σ_b = 2 outside the trained range: descriptor %g", desc[0]);
  double dc;
  REQUIRE_OK(aps_posterior_data_consistency(p, x, 1, &dc));
  CHECK(dc < 1e-4, "the truth fits its noise-free blur (%g)", dc);
  REQUIRE_OK(aps_posterior_set_clean(p, x, "denoise,noise=0", 1));
  REQUIRE_OK(aps_posterior_get_descriptor(p, desc));
  REQUIRE_OK(aps_posterior_get_measurement(p, y));
  REQUIRE_OK(aps_posterior_get_damaged(p, dmg));
  CHECK(desc[0] == 0 && desc[D - 1] == 0 && max_diff(y, x, D) < 1e-6 && dmg[0] == 0,
        "denoise on a blur flow: descriptor 0, y = x, nothing damaged");
  for (int i = 0; i < D; i++)
    map[i] = i % S < 4 ? 1.0f : 0.0f;
  REQUIRE_OK(aps_posterior_set_clean_operator(p, x, &(aps_posterior_operator){.map = map, .sigma_b = 1.5f}, 2));
  REQUIRE_OK(aps_posterior_get_descriptor(p, desc));
  REQUIRE_OK(aps_posterior_get_damaged(p, dmg));
  REQUIRE_OK(aps_posterior_get_measurement(p, y));
  CHECK(desc[0] == 1.5f && desc[5] == 0 && dmg[0] == 1 && dmg[5] == 0 && y[S + 8] == x[S + 8],
        "a painted blur map: descriptor w·σ_b, damaged where w > 0.5, unblurred pixels kept");
  map[3] = 1.5f;
  CHECK(aps_posterior_set_clean_operator(p, x, &(aps_posterior_operator){.map = map, .sigma_b = 1}, 2) != APS_OK &&
            strstr(aps_last_error(), "outside [0, 1]"), "a blur weight of 1.5 refused: %s", aps_last_error());
  CHECK(aps_posterior_set_clean(p, x, "inpaint:box=4", 1) != APS_OK && strstr(aps_last_error(), "inpainting") &&
            strstr(aps_last_error(), "blur") && strstr(aps_last_error(), path),
        "an inpainting operator on a blur flow refused naming both and the model: %s", aps_last_error());
  CHECK(aps_posterior_sample(p, 2, 1, x) != APS_OK, "after a refused operator no measurement is set");
  aps_posterior_close(p);
  unlink(path);
  rmdir(dir);
}

/* Model files that are not flows, or lack what the posterior needs: errors name the file
 * and the key. */
TEST_CASE(posterior_bad_files) {
  char dir[64];
  tiny_tmpdir(dir);
  aps_posterior *p = NULL;
  aps_status s = open_on("/nonexistent/flow.safetensors", "cpu", 0, &p);
  CHECK(s != APS_OK && !p && strstr(aps_last_error(), "/nonexistent/flow.safetensors"), "a missing file: %s",
        aps_last_error());
  const char *prior = tiny_join(dir, "prior.safetensors");
  float w[4] = {0};
  const gr_st_meta prior_meta[] = {{"aps.kind", "prior/vp-eps"}};
  REQUIRE_OK(gr_st_write(prior, &(gr_st_tensor){.name = "stem.weight", .rank = 1, .dims = {4}, .data = w}, 1,
                         prior_meta, 1));
  s = open_on(prior, "cpu", 0, &p);
  CHECK(s != APS_OK && strstr(aps_last_error(), "aps.kind") && strstr(aps_last_error(), "prior/vp-eps") &&
            strstr(aps_last_error(), prior), "a prior given as a flow: %s", aps_last_error());
  const char *no_op = tiny_join(dir, "no-op.safetensors");
  REQUIRE_OK(tiny_flow_write(no_op, 1, S, NULL, 0));
  s = open_on(no_op, "cpu", 0, &p);
  CHECK(s != APS_OK && strstr(aps_last_error(), "aps.op") && strstr(aps_last_error(), no_op),
        "a flow without its operator family: %s", aps_last_error());
  s = aps_posterior_open(&(aps_posterior_desc){0}, &p);
  CHECK(s != APS_OK && strstr(aps_last_error(), "no model"), "no model: %s", aps_last_error());
  const char *ok = tiny_join(dir, "ok.safetensors");
  REQUIRE_OK(tiny_flow_write(ok, 1, S, "inpaint:half", 0));
  s = aps_posterior_open(&(aps_posterior_desc){.model = ok, .device = "cpu", .max_batch = -1}, &p);
  CHECK(s != APS_OK && strstr(aps_last_error(), "max_batch"), "a negative batch: %s", aps_last_error());
  REQUIRE_OK(open_on(ok, "cpu", 0, &p));
  CHECK(aps_posterior_get_info(p)->batch == 16, "the default batch");
  float x[D];
  test_image(x);
  CHECK(aps_posterior_set_clean(p, x, "smear:3", 1) != APS_OK && strstr(aps_last_error(), "smear"),
        "an unknown operator named: %s", aps_last_error());
  CHECK(aps_posterior_set_clean(p, x, "blur:sigma=1", 1) != APS_OK && strstr(aps_last_error(), "blur:sigma=1"),
        "a blur on an inpainting flow: %s", aps_last_error());
  aps_posterior_close(p);
  unlink(no_op), unlink(ok), unlink(prior);
  rmdir(dir);
}

/* Not run by itself: writes the 1×32×32 inpainting flow the cli.sample_* and cli.eval_*
 * tests use, at $APS_TINY_FLOW. */
TEST_HELPER(posterior_tiny_model) {
  const char *path = getenv("APS_TINY_FLOW");
  CHECK(path && *path, "APS_TINY_FLOW names the file to write");
  if (path && *path)
    REQUIRE_OK(tiny_flow_write(path, 1, 32, "inpaint:box=8-16,noise=0.05", 0.02f));
}
