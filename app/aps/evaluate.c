/* The evaluation loop (evaluate.h). */
#include "evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

uint64_t aps_eval_sample_seed(uint64_t run_seed, uint64_t index) {
  return aps_op_seed(run_seed ^ 0x5851F42D4C957F2Dull, index);
}

/* Mean of std over the pixels (all channels) where region == want; *count of them. */
static double region_mean(const float *std, const float *region, float want, int c, int64_t hw, int64_t *count) {
  double sum = 0;
  *count = 0;
  for (int64_t i = 0; i < hw; i++)
    if (region[i] == want) {
      for (int k = 0; k < c; k++)
        sum += std[k * hw + i];
      *count += c;
    }
  return *count ? sum / (double)*count : 0.0;
}

/* The fraction of the pixels (all channels) where region == want whose reference lies in the
 * 90 % interval; *count of them. */
static double region_coverage(const float *mean, const float *std, const float *ref, const float *region, float want,
                              int k, int c, int64_t hw, int64_t *count) {
  double f = aps_interval90_factor(k);
  int64_t in = 0;
  *count = 0;
  for (int64_t i = 0; i < hw; i++)
    if (region[i] == want)
      for (int j = 0; j < c; j++, (*count)++)
        in += fabs((double)ref[j * hw + i] - mean[j * hw + i]) <= f * std[j * hw + i];
  return *count ? (double)in / (double)*count : 0.0;
}

aps_status aps_evaluate(aps_posterior *p, const float *images, int n, const aps_eval_desc *d, aps_eval_result *out) {
  memset(out, 0, sizeof *out);
  const aps_posterior_info *info = aps_posterior_get_info(p);
  int k = d->k ? d->k : 8, c = info->channels, h = info->height, w = info->width;
  if (k < 2 || k > 100000)
    return aps_fail(APS_ERR_INVALID_ARG, "evaluation: k = %d samples per image (2 to 100000)", k);
  if (n < 1)
    return aps_fail(APS_ERR_INVALID_ARG, "evaluation: %d images", n);
  int64_t dim = (int64_t)c * h * w, hw = (int64_t)h * w;
  float *samples = malloc((size_t)(k * dim) * sizeof(float)), *mean = malloc((size_t)dim * sizeof(float));
  float *std = malloc((size_t)dim * sizeof(float)), *grid = malloc((size_t)dim * sizeof(float));
  float *region = malloc((size_t)hw * sizeof(float));
  double *dc = malloc((size_t)k * sizeof(double));
  aps_status s = samples && mean && std && grid && region && dc ? APS_OK
                                                                 : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  double ms = 0, in_sum = 0, out_sum = 0, cov_in = 0, cov_out = 0;
  int in_n = 0, out_n = 0;
  for (int i = 0; s == APS_OK && i < n; i++) {
    const float *x = images + i * dim;
    s = aps_posterior_set_clean(p, x, d->spec, aps_op_seed(d->seed, (uint64_t)i));
    if (s == APS_OK)
      s = aps_posterior_moments(p, k, aps_eval_sample_seed(d->seed, (uint64_t)i), mean, std, samples);
    if (s == APS_OK)
      ms += aps_posterior_ms_per_sample(p) * k;
    if (s == APS_OK)
      s = aps_posterior_get_measurement(p, grid);
    if (s == APS_OK)
      s = aps_posterior_get_damaged(p, region);
    if (s == APS_OK)
      s = aps_posterior_data_consistency(p, samples, k, dc);
    if (s != APS_OK)
      break;
    out->psnr_sample += aps_psnr(samples, x, dim);
    out->psnr_mean += aps_psnr(mean, x, dim);
    out->ssim_sample += aps_ssim(samples, x, c, h, w);
    out->ssim_mean += aps_ssim(mean, x, c, h, w);
    out->psnr_measurement += aps_psnr(grid, x, dim);
    out->ssim_measurement += aps_ssim(grid, x, c, h, w);
    double dcs = 0;
    for (int j = 0; j < k; j++)
      dcs += dc[j];
    out->data_consistency += dcs / k;
    out->coverage90 += aps_coverage90(mean, std, x, k, dim);
    int64_t cnt;
    double v = region_mean(std, region, 1.0f, c, hw, &cnt);
    if (cnt)
      in_sum += v, in_n++, cov_in += region_coverage(mean, std, x, region, 1.0f, k, c, hw, &cnt);
    v = region_mean(std, region, 0.0f, c, hw, &cnt);
    if (cnt)
      out_sum += v, out_n++, cov_out += region_coverage(mean, std, x, region, 0.0f, k, c, hw, &cnt);
    if (d->progress)
      d->progress(d->user, i + 1, n);
  }
  free(samples), free(mean), free(std), free(grid), free(region), free(dc);
  if (s != APS_OK)
    return s;
  out->images = n, out->k = k;
  double *avg[] = {&out->psnr_sample, &out->psnr_mean, &out->ssim_sample, &out->ssim_mean, &out->psnr_measurement,
                   &out->ssim_measurement, &out->data_consistency, &out->coverage90};
  for (size_t j = 0; j < sizeof avg / sizeof avg[0]; j++)
    *avg[j] /= n;
  out->std_inside = in_n ? in_sum / in_n : NAN;
  out->std_outside = out_n ? out_sum / out_n : NAN;
  out->coverage90_inside = in_n ? cov_in / in_n : NAN;
  out->coverage90_outside = out_n ? cov_out / out_n : NAN;
  out->ms_per_sample = ms / ((double)n * k);
  return APS_OK;
}
