/* The quality metrics of posterior samples: PSNR, SSIM, moments, the 90 % interval. */
#include <math.h>
#include <stdlib.h>

#include "../test.h"
#include "metrics.h"
#include "rng.h"

TEST_CASE(metrics_psnr) {
  enum { N = 1000 };
  float x[N], r[N];
  for (int i = 0; i < N; i++)
    r[i] = -1.0f + 2.0f * i / N, x[i] = r[i] + (i % 2 ? 0.2f : -0.2f); /* 0.1 on the [0, 1] scale */
  CHECK(fabs(aps_psnr(x, r, N) - 20.0) < 1e-4, "PSNR %.6f, expected 20 dB", aps_psnr(x, r, N));
  CHECK(aps_psnr(r, r, N) == 99.0, "identical images: %.3f", aps_psnr(r, r, N));
}

TEST_CASE(metrics_ssim) {
  enum { C = 2, H = 16, W = 20 };
  static float x[C * H * W], y[C * H * W], cx[C * H * W], cy[C * H * W];
  uint64_t rng = 3;
  for (int i = 0; i < C * H * W; i++)
    x[i] = (float)(2 * aps_rng_uniform(&rng) - 1), y[i] = x[i] + 0.3f * aps_rng_normal(&rng);
  CHECK(fabs(aps_ssim(x, x, C, H, W) - 1.0) < 1e-12, "SSIM(x, x) = %.12f", aps_ssim(x, x, C, H, W));
  double noisy = aps_ssim(y, x, C, H, W);
  CHECK(noisy < 0.9 && noisy > 0, "SSIM of a noisy copy %.4f", noisy);
  CHECK(fabs(noisy - aps_ssim(x, y, C, H, W)) < 1e-12, "not symmetric");
  /* Constant images: no variance, so SSIM is the luminance term (2 μx μy + C1) / (μx² + μy² + C1). */
  for (int i = 0; i < C * H * W; i++)
    cx[i] = 0.2f, cy[i] = -0.4f; /* 0.6 and 0.3 on the [0, 1] scale */
  double c1 = 1e-4, want = (2 * 0.6 * 0.3 + c1) / (0.36 + 0.09 + c1), got = aps_ssim(cx, cy, C, H, W);
  CHECK(fabs(got - want) < 1e-6, "constant images: SSIM %.8f, expected %.8f", got, want);
  /* Smaller than the window: one window over the whole image. */
  CHECK(fabs(aps_ssim(x, x, 1, 5, 7) - 1.0) < 1e-12, "a 5x7 image");
}

/* A calibrated sampler: truth and k samples from the same normal at each pixel; the 90 %
 * interval must hold the truth 90 % of the time at every k. */
TEST_CASE(metrics_coverage) {
  enum { N = 40000 };
  int ks[] = {2, 4, 16, 64};
  float *s = malloc(sizeof(float) * 64 * N), *truth = malloc(sizeof(float) * N), *mean = malloc(sizeof(float) * N),
        *sd = malloc(sizeof(float) * N);
  uint64_t rng = 11;
  for (int t = 0; t < 4; t++) {
    int k = ks[t];
    for (int i = 0; i < N; i++) {
      float mu = (float)(i % 7) - 3, sigma = 0.1f + 0.05f * (float)(i % 5);
      truth[i] = mu + sigma * aps_rng_normal(&rng);
      for (int j = 0; j < k; j++)
        s[(int64_t)j * N + i] = mu + sigma * aps_rng_normal(&rng);
    }
    aps_sample_moments(s, k, N, mean, sd);
    double cov = aps_coverage90(mean, sd, truth, k, N);
    /* 3 standard errors of a proportion 0.9 over N pixels: 0.0045. */
    CHECK(fabs(cov - 0.9) < 0.0045, "k = %d: coverage %.4f, expected 0.90", k, cov);
  }
  CHECK(fabs(aps_interval90_factor(1000000) - 1.6449) < 1e-3, "large k: %.5f", aps_interval90_factor(1000000));
  CHECK(fabs(aps_interval90_factor(16) - 1.7531 * sqrt(1 + 1.0 / 16)) < 2e-3, "k = 16: %.5f (t_{.95,15} = 1.7531)",
        aps_interval90_factor(16));
  float one[3] = {1, 2, 3}, m, v;
  aps_sample_moments(one, 3, 1, &m, &v);
  CHECK(m == 2.0f && fabsf(v - 1.0f) < 1e-7f, "moments of 1, 2, 3: %g %g", m, v);
  free(s), free(truth), free(mean), free(sd);
}
