#include "metrics.h"

#include <math.h>

double aps_psnr(const float *x, const float *ref, int64_t n) {
  double se = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = 0.5 * ((double)x[i] - ref[i]); /* the [0, 1] scale */
    se += d * d;
  }
  double mse = n > 0 ? se / (double)n : 0;
  return mse > 1e-10 ? -10.0 * log10(mse) : 99.0;
}

enum { SSIM_WIN = 11 };

/* SSIM over one window of one channel, [0, 1] scale, Gaussian weights wt (sum 1). */
static double ssim_window(const float *x, const float *y, int w, int y0, int x0, int hh, int ww, const double *wt) {
  double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
  for (int i = 0; i < hh; i++)
    for (int j = 0; j < ww; j++) {
      double g = wt[i * ww + j], a = 0.5 * (x[(y0 + i) * w + x0 + j] + 1.0), b = 0.5 * (y[(y0 + i) * w + x0 + j] + 1.0);
      mx += g * a, my += g * b, sxx += g * a * a, syy += g * b * b, sxy += g * a * b;
    }
  double vx = sxx - mx * mx, vy = syy - my * my, cxy = sxy - mx * my;
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
}

double aps_ssim(const float *x, const float *ref, int c, int h, int w) {
  int wh = h < SSIM_WIN ? h : SSIM_WIN, wwid = w < SSIM_WIN ? w : SSIM_WIN;
  double wt[SSIM_WIN * SSIM_WIN], sum = 0;
  for (int i = 0; i < wh; i++)
    for (int j = 0; j < wwid; j++) {
      double di = i - (wh - 1) / 2.0, dj = j - (wwid - 1) / 2.0;
      sum += wt[i * wwid + j] = exp(-(di * di + dj * dj) / (2 * 1.5 * 1.5));
    }
  for (int i = 0; i < wh * wwid; i++)
    wt[i] /= sum;
  double total = 0;
  long count = 0;
  for (int ch = 0; ch < c; ch++)
    for (int y0 = 0; y0 + wh <= h; y0++)
      for (int x0 = 0; x0 + wwid <= w; x0++, count++)
        total += ssim_window(x + (int64_t)ch * h * w, ref + (int64_t)ch * h * w, w, y0, x0, wh, wwid, wt);
  return count ? total / (double)count : 1.0;
}

void aps_sample_moments(const float *samples, int k, int64_t n, float *mean, float *std) {
  for (int64_t i = 0; i < n; i++) {
    double s = 0, ss = 0;
    for (int j = 0; j < k; j++)
      s += samples[(int64_t)j * n + i];
    double m = s / k;
    for (int j = 0; j < k; j++) {
      double d = samples[(int64_t)j * n + i] - m;
      ss += d * d;
    }
    mean[i] = (float)m;
    std[i] = k > 1 ? (float)sqrt(ss / (k - 1)) : 0.0f;
  }
}

double aps_interval90_factor(int k) {
  if (k < 2)
    return INFINITY;
  /* t_{0.95, ν}: exact for ν ≤ 5 (where the expansion below is 5 % off at ν = 1), then the
   * Cornish-Fisher expansion about z = 1.6449 (within 0.01 % from ν = 6). */
  static const double small[] = {6.313752, 2.919986, 2.353363, 2.131847, 2.015048};
  if (k - 1 <= 5)
    return small[k - 2] * sqrt(1.0 + 1.0 / k);
  double z = 1.6448536269514722, nu = k - 1, z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z, z9 = z7 * z * z;
  double t = z + (z3 + z) / (4 * nu) + (5 * z5 + 16 * z3 + 3 * z) / (96 * nu * nu) +
             (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * nu * nu * nu) +
             (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / (92160 * nu * nu * nu * nu);
  return t * sqrt(1.0 + 1.0 / k);
}

double aps_coverage90(const float *mean, const float *std, const float *ref, int k, int64_t n) {
  double f = aps_interval90_factor(k);
  int64_t in = 0;
  for (int64_t i = 0; i < n; i++)
    in += fabs((double)ref[i] - mean[i]) <= f * std[i];
  return n ? (double)in / (double)n : 0;
}
