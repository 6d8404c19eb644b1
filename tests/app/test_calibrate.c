/* The latent scale (aps_posterior_set_temperature, "aps.temperature") and its calibration
 * (calibrate.h) on a tiny untrained flow and a few synthetic images: the temperature reaches
 * the samples, the bisection keeps the closest coverage it tried, the file written carries
 * the value it found and every tensor, and bad values are refused, naming them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test.h"
#include "calibrate.h"
#include "tiny_flow.h"

enum { S = 16, D = S * S, N = 3, K = 8 };

static aps_posterior *open_at(const char *path, float temperature) {
  aps_posterior *p = NULL;
  aps_status s = aps_posterior_open(
      &(aps_posterior_desc){.model = path, .device = "cpu", .max_batch = K, .quiet = 1, .temperature = temperature}, &p);
  CHECK(s == APS_OK, "opening %s at temperature %g: %s", path, temperature, s == APS_OK ? "" : aps_last_error());
  return p;
}

/* K samples of image 0's measurement at p's temperature. */
static void draw(aps_posterior *p, const float *image, float *x) {
  REQUIRE_OK(aps_posterior_set_clean(p, image, NULL, 5));
  REQUIRE_OK(aps_posterior_sample(p, K, 9, x));
}

TEST_CASE(calibrate_tiny) {
  char dir[64];
  const char *path = tiny_join(tiny_tmpdir(dir), "flow.safetensors");
  REQUIRE_OK(tiny_flow_write(path, 1, S, "inpaint:box=4-8,noise=0.05", 0.05f));
  static float images[N * D], a[K * D], b[K * D];
  for (int n = 0; n < N; n++)
    for (int i = 0; i < D; i++)
      images[n * D + i] = 0.9f * sinf(0.3f * (n + 1) * (i / S) + 0.2f * (i % S));
  aps_posterior *p = open_at(path, 0);
  if (!p)
    return;
  CHECK(aps_posterior_get_info(p)->temperature == 1.0f, "a file without aps.temperature samples at 1, not %g",
        aps_posterior_get_info(p)->temperature);
  /* the temperature scales the latent: the samples' spread about their mean grows with it */
  double spread[2];
  for (int t = 0; t < 2; t++) {
    REQUIRE_OK(aps_posterior_set_temperature(p, t ? 2.0f : 1.0f));
    draw(p, images, t ? b : a);
    double v = 0;
    for (int i = 0; i < D; i++) {
      double m = 0, q = 0;
      for (int j = 0; j < K; j++)
        m += (t ? b : a)[j * D + i] / K;
      for (int j = 0; j < K; j++)
        q += pow((t ? b : a)[j * D + i] - m, 2);
      v += q / D;
    }
    spread[t] = v;
  }
  CHECK(spread[1] > 1.5 * spread[0], "the spread at temperature 2 (%g) is not well above that at 1 (%g)", spread[1],
        spread[0]);
  CHECK(aps_posterior_set_temperature(p, 0.0f) != APS_OK && strstr(aps_last_error(), "temperature 0"),
        "temperature 0 accepted: %s", aps_last_error());
  CHECK(aps_posterior_set_temperature(p, APS_TEMPERATURE_MAX * 1.01f) != APS_OK, "a temperature above the most");

  aps_calibrate_result r;
  REQUIRE_OK(aps_calibrate(p, images, N, &(aps_calibrate_desc){.eval = {.k = K, .seed = 3}, .target = 0.9}, &r));
  CHECK(r.tries >= 2 && r.tries <= 10 && r.tried[0] == 1.0f, "%d tries, the first at %g", r.tries, r.tried[0]);
  int best = 0;
  for (int i = 0; i < r.tries; i++) {
    fprintf(stderr, "temperature %.4g: coverage %.4f, consistency %.4f\n", r.tried[i], r.coverage[i], r.consistency[i]);
    if (fabs(r.coverage[i] - 0.9) < fabs(r.coverage[best] - 0.9))
      best = i;
    for (int j = 0; j < r.tries; j++) /* coverage grows with the temperature (same draws) */
      CHECK(!(r.tried[i] < r.tried[j]) || r.coverage[i] <= r.coverage[j] + 0.02, "coverage %g at %g but %g at %g",
            r.coverage[i], r.tried[i], r.coverage[j], r.tried[j]);
  }
  CHECK(r.temperature == r.tried[best] && r.at.coverage90 == r.coverage[best] &&
            aps_posterior_get_info(p)->temperature == r.temperature,
        "kept temperature %g (coverage %g), the closest tried is %g (%g)", r.temperature, r.at.coverage90,
        r.tried[best], r.coverage[best]);
  CHECK(fabs(r.at.coverage90 - 0.9) < 0.05 || r.temperature == APS_TEMPERATURE_MAX || r.temperature == 0.125f,
        "coverage %g at %g: the bisection missed 0.9", r.at.coverage90, r.temperature);

  /* the written file samples at the temperature found, with the same tensors and metadata */
  const char *cal = tiny_join(dir, "calibrated.safetensors");
  REQUIRE_OK(aps_flow_write_temperature(path, cal, r.temperature, "test"));
  draw(p, images, a);
  aps_posterior *q = open_at(cal, 0);
  if (!q)
    return;
  draw(q, images, b);
  CHECK(aps_posterior_get_info(q)->temperature == r.temperature && !memcmp(a, b, sizeof a) &&
            !strcmp(aps_posterior_get_info(q)->family, aps_posterior_get_info(p)->family),
        "the calibrated file samples at %g, not as the posterior did at %g", aps_posterior_get_info(q)->temperature,
        r.temperature);
  aps_posterior_close(q);
  CHECK(aps_flow_write_temperature(path, cal, -1.0f, NULL) != APS_OK, "temperature -1 written");
  /* a file whose aps.temperature is not a number in range is refused, naming the key */
  const char *bad[] = {"hot", "0", "9", "1.5x", ""};
  for (int i = 0; i < 5; i++) {
    REQUIRE_OK(aps_model_write_metadata(path, cal, &(gr_st_meta){"aps.temperature", bad[i]}, 1));
    aps_posterior *z = NULL;
    aps_status s = aps_posterior_open(&(aps_posterior_desc){.model = cal, .device = "cpu", .quiet = 1}, &z);
    CHECK(s != APS_OK && strstr(aps_last_error(), "aps.temperature"), "aps.temperature \"%s\" accepted: %s", bad[i],
          s == APS_OK ? "opened" : aps_last_error());
    aps_posterior_close(z);
  }
  aps_posterior_close(p);
  unlink(cal);
  unlink(path);
  rmdir(dir);
}
