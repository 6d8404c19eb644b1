/* Quality of posterior samples against a known image (docs/METHOD.md §6, §8). Images are
 * [C, H, W] in [-1, 1]; the metrics see them on the [0, 1] scale (x + 1) / 2, so PSNR and
 * SSIM read as they do for 8-bit images elsewhere. */
#ifndef APS_METRICS_H
#define APS_METRICS_H
#include <stdint.h>

/* 10 log10(1 / MSE) on the [0, 1] scale; 99 dB caps identical images. */
double aps_psnr(const float *x, const float *ref, int64_t n);

/* Mean SSIM over channels and the valid 11×11 Gaussian windows (σ = 1.5; C1 = 0.01²,
 * C2 = 0.03² on the [0, 1] scale), as Wang et al. define it. Images smaller than the
 * window use one window over the whole image. */
double aps_ssim(const float *x, const float *ref, int c, int h, int w);

/* Per-pixel mean and standard deviation (n − 1 in the denominator) of k samples
 * [k, n] into mean[n], std[n]. */
void aps_sample_moments(const float *samples, int k, int64_t n, float *mean, float *std);

/* The two-sided 90 % prediction interval's half-width factor for a new draw from k
 * samples: t_{0.95, k−1} · sqrt(1 + 1/k) (so a Gaussian posterior's interval
 * mean ± factor · std holds the truth 90 % of the time at any k ≥ 2). */
double aps_interval90_factor(int k);

/* Fraction of the n values of ref inside mean ± aps_interval90_factor(k) · std. */
double aps_coverage90(const float *mean, const float *std, const float *ref, int k, int64_t n);

#endif
