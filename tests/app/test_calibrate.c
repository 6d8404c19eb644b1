/* The latent scales (aps_posterior_set_temperature, "aps.temperature") and their calibration
 * (calibrate.h) on a tiny untrained flow and a few synthetic images: each region's
 * temperature reaches its samples, the bisection brings each region's coverage near the
 * target, the file written carries the values found and every tensor, and bad values are
 * refused, naming them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test.h"
#include "calibrate.h"
#include "tiny_flow.h"

enum { S = 16, D = S * S, N = 3, K = 8 };

static aps_posterior *open_at(const char *path, float damaged, float elsewhere) {
  aps_posterior *p = NULL;
  aps_status s = aps_posterior_open(&(aps_posterior_desc){.model = path, .device = "cpu", .max_batch = K, .quiet = 1,
                                                         .temperature = {damaged, elsewhere}},
                                    &p);
  CHECK(s == APS_OK, "opening %s at temperature %g, %g: %s", path, damaged, elsewhere,
        s == APS_OK ? "" : aps_last_error());
  return p;
}

/* K samples of image 0's measurement (one box) at p's temperatures. */
static void draw(aps_posterior *p, const float *image, float *x) {
  REQUIRE_OK(aps_posterior_set_clean(p, image, "inpaint:box=8,noise=0.05", 5));
  REQUIRE_OK(aps_posterior_sample(p, K, 9, x));
}

/* The samples' mean per-pixel variance about their mean over the pixels where region is 1. */
static double spread(const float *x, const float *region, int want) {
  double v = 0;
  int count = 0;
  for (int i = 0; i < D; i++) {
    if ((region[i] > 0.5f) != want)
      continue;
    double m = 0, q = 0;
    for (int j = 0; j < K; j++)
      m += x[j * D + i] / K;
    for (int j = 0; j < K; j++)
      q += pow(x[j * D + i] - m, 2);
    v += q / K, count++;
  }
  return v / count;
}

TEST_CASE(calibrate_tiny) {
  char dir[64];
  const char *path = tiny_join(tiny_tmpdir(dir), "flow.safetensors");
  REQUIRE_OK(tiny_flow_write(path, 1, S, "inpaint:box=4-8,noise=0.05", 0.05f));
  static float images[N * D], a[K * D], b[K * D], damaged[D];
  for (int n = 0; n < N; n++)
    for (int i = 0; i < D; i++)
      images[n * D + i] = 0.9f * sinf(0.3f * (n + 1) * (i / S) + 0.2f * (i % S));
  aps_posterior *p = open_at(path, 0, 0);
  if (!p)
    return;
  const float *info_t = aps_posterior_get_info(p)->temperature;
  CHECK(info_t[0] == 1.0f && info_t[1] == 1.0f, "a file without aps.temperature samples at 1, not %g, %g", info_t[0],
        info_t[1]);
  /* each region's temperature scales the spread there most: 2 in the box leaves the rest
   * nearly as at 1, 2 elsewhere leaves the box nearly so */
  draw(p, images, a);
  REQUIRE_OK(aps_posterior_get_damaged(p, damaged));
  double base[2] = {spread(a, damaged, 1), spread(a, damaged, 0)};
  for (int r = 0; r < 2; r++) {
    REQUIRE_OK(aps_posterior_set_temperature(p, r ? 1.0f : 2.0f, r ? 2.0f : 1.0f));
    draw(p, images, b);
    double there = spread(b, damaged, !r) / base[r], other = spread(b, damaged, r) / base[!r];
    fprintf(stderr, "temperature 2 %s: variance x%.2f there, x%.2f in the other region\n", r ? "elsewhere" : "damaged",
            there, other);
    CHECK(there > 2.5 && there > 1.5 * other, "temperature 2 %s: variance x%g there, x%g in the other region",
          r ? "elsewhere" : "damaged", there, other);
  }
  CHECK(aps_posterior_set_temperature(p, 0.0f, 1.0f) != APS_OK && strstr(aps_last_error(), "temperature 0"),
        "temperature 0 accepted: %s", aps_last_error());
  CHECK(aps_posterior_set_temperature(p, 1.0f, APS_TEMPERATURE_MAX * 1.01f) != APS_OK, "a temperature above the most");

  aps_calibrate_result r;
  REQUIRE_OK(aps_calibrate(p, images, N, &(aps_calibrate_desc){.eval = {.k = K, .seed = 3}, .target = 0.9}, &r));
  CHECK(r.tries >= 3 && r.tries <= 31, "%d tries", r.tries);
  for (int i = 0; i < r.tries; i++) {
    const aps_calibrate_try *t = &r.tried[i];
    fprintf(stderr, "temperature %.4g, %.4g: coverage %.4f (%.4f, %.4f)\n", t->temperature[0], t->temperature[1],
            t->r.coverage90, t->r.coverage90_inside, t->r.coverage90_outside);
  }
  const float *t = aps_posterior_get_info(p)->temperature;
  CHECK(t[0] == r.temperature[0] && t[1] == r.temperature[1], "left at %g, %g, found %g, %g", t[0], t[1],
        r.temperature[0], r.temperature[1]);
  for (int region = 0; region < 2; region++) {
    double c = region ? r.at.coverage90_outside : r.at.coverage90_inside;
    int at_end = r.temperature[region] == APS_TEMPERATURE_MAX || r.temperature[region] == 0.125f;
    CHECK(fabs(c - 0.9) < 0.06 || at_end, "region %d: coverage %g at temperature %g: the bisection missed 0.9", region,
          c, r.temperature[region]);
  }

  /* the written file samples at the temperatures found, with the same tensors and metadata */
  const char *cal = tiny_join(dir, "calibrated.safetensors");
  REQUIRE_OK(aps_flow_write_temperature(path, cal, r.temperature, "test"));
  draw(p, images, a);
  aps_posterior *q = open_at(cal, 0, 0);
  if (!q)
    return;
  draw(q, images, b);
  const float *tq = aps_posterior_get_info(q)->temperature;
  CHECK(tq[0] == r.temperature[0] && tq[1] == r.temperature[1] && !memcmp(a, b, sizeof a) &&
            !strcmp(aps_posterior_get_info(q)->family, aps_posterior_get_info(p)->family),
        "the calibrated file samples at %g, %g, not as the posterior did", tq[0], tq[1]);
  aps_posterior_close(q);
  CHECK(aps_flow_write_temperature(path, cal, (float[2]){1.0f, -1.0f}, NULL) != APS_OK, "temperature -1 written");
  /* "T" is both regions' */
  REQUIRE_OK(aps_model_write_metadata(path, cal, &(gr_st_meta){"aps.temperature", "1.5"}, 1));
  if (!(q = open_at(cal, 0, 0)))
    return;
  tq = aps_posterior_get_info(q)->temperature;
  CHECK(tq[0] == 1.5f && tq[1] == 1.5f, "aps.temperature 1.5 read as %g, %g", tq[0], tq[1]);
  aps_posterior_close(q);
  /* a file whose aps.temperature is not one or two numbers in range is refused, naming the key */
  const char *bad[] = {"hot", "0", "9", "1.5x", "", "1.5,", "1,2,3", ",1", "1;2", "1,0"};
  for (int i = 0; i < (int)(sizeof bad / sizeof *bad); i++) {
    REQUIRE_OK(aps_model_write_metadata(path, cal, &(gr_st_meta){"aps.temperature", bad[i]}, 1));
    aps_posterior *z = NULL;
    aps_status s = aps_posterior_open(&(aps_posterior_desc){.model = cal, .device = "cpu", .quiet = 1}, &z);
    CHECK(s != APS_OK && strstr(aps_last_error(), "aps.temperature"), "aps.temperature \"%s\" accepted: %s", bad[i],
          s == APS_OK ? "opened" : aps_last_error());
    aps_posterior_close(z);
  }
  aps_posterior *z = NULL;
  aps_status s = aps_posterior_open(&(aps_posterior_desc){.model = path, .dps = 1, .family = "inpaint:box=8",
                                                         .device = "cpu", .quiet = 1, .temperature = {2.0f, 0}},
                                    &z);
  CHECK(s != APS_OK && strstr(aps_last_error(), "not dps"), "a temperature for DPS accepted: %s",
        s == APS_OK ? "opened" : aps_last_error());
  aps_posterior_close(z);
  aps_posterior_close(p);
  unlink(cal);
  unlink(path);
  rmdir(dir);
}
