/* A posterior evaluated on images whose truth is known (docs/METHOD.md §8): per image, a
 * measurement simulated with a seeded operator, K posterior samples, and quality figures
 * averaged over the images. `aps eval` prints them; the loop lives here so that any front
 * end reports the same numbers.
 *
 * Per image i (of the n given, in order): the operator and noise are drawn with
 * aps_op_seed(seed, i) (the measurement `aps degrade --seed seed --index i` makes), the
 * samples with aps_eval_sample_seed(seed, i). Figures, each the mean over images:
 * - psnr/ssim of the first sample and of the K-sample mean against the truth, and of the
 *   measurement on the image grid itself (the trivial baseline: zeros where inpainting saw
 *   nothing, the blurred image, the nearest upsampling);
 * - data consistency ||y − A x|| / (σ √m) of the samples (mean over samples);
 * - coverage of the per-pixel 90 % interval (aps_coverage90);
 * - the mean per-pixel standard deviation inside the damaged region (aps_posterior_get_damaged)
 *   and outside it, over the images that have such pixels (NaN when none has);
 * - wall-clock milliseconds per sample. */
#ifndef APS_EVALUATE_H
#define APS_EVALUATE_H

#include <stdint.h>

#include "aps.h"

typedef struct aps_eval_desc {
  const char *spec; /* operator family; NULL: the model's */
  int k;            /* samples per image (0: 8); at least 2 */
  uint64_t seed;
  void (*progress)(void *user, int done, int total); /* after each image, or NULL */
  void *user;
} aps_eval_desc;

typedef struct aps_eval_result {
  int images, k;
  double psnr_sample, psnr_mean, ssim_sample, ssim_mean;
  double psnr_measurement, ssim_measurement;
  double data_consistency, coverage90;
  double std_inside, std_outside;
  double coverage90_inside, coverage90_outside; /* coverage90 over each region alone (NAN: none) */
  double ms_per_sample;
} aps_eval_result;

/* images [n, C, H, W] in [-1, 1] with the model's C, H, W. */
aps_status aps_evaluate(aps_posterior *p, const float *images, int n, const aps_eval_desc *d, aps_eval_result *out);

/* The seed of image `index`'s samples in a run seeded `run_seed`. */
uint64_t aps_eval_sample_seed(uint64_t run_seed, uint64_t index);

#endif
