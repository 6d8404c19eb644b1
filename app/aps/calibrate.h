/* Calibrating a flow's spread after training (docs/METHOD.md §6): the latent scales τ
 * (z ~ N(0, τ² I)) in the damaged region and elsewhere at which the per-pixel 90 % intervals
 * of its samples cover a target share of the truth in each region, on images the flow is not
 * evaluated on (the training split). A flow distilled by the reverse KL draws samples too
 * alike, and most so where the posterior's pixels are most correlated (a blurred region);
 * τ > 1 widens them along the flow's own directions of uncertainty. Each region's τ is found
 * by bisection on log τ with the other held, damaged, elsewhere, then damaged again (the
 * regions' latents overlap at their border). */
#ifndef APS_CALIBRATE_H
#define APS_CALIBRATE_H

#include "evaluate.h"
#include "safetensors.h"

enum { APS_CALIBRATE_MAX_TRIES = 40 };

typedef struct aps_calibrate_desc {
  aps_eval_desc eval; /* the family, k and seed of each evaluation */
  double target;      /* the coverage wanted in each region, (0, 1) */
} aps_calibrate_desc;

typedef struct aps_calibrate_try {
  float temperature[2]; /* damaged, elsewhere */
  aps_eval_result r;
} aps_calibrate_try;

typedef struct aps_calibrate_result {
  float temperature[2];    /* found: damaged, elsewhere (1 for a region the family never has) */
  aps_eval_result at;      /* their evaluation */
  int tries;               /* evaluations, in order */
  aps_calibrate_try tried[APS_CALIBRATE_MAX_TRIES];
} aps_calibrate_result;

/* p must be a flow's posterior; it is left at the temperatures found. images as aps_evaluate. */
aps_status aps_calibrate(aps_posterior *p, const float *images, int n, const aps_calibrate_desc *d,
                         aps_calibrate_result *out);

/* Copies the model file `in` to `out` (through a temporary and a rename, so `out` may be
 * `in`) with the n metadata entries `set` added or replacing those of the same keys: every
 * tensor (as F32) and every other metadata entry as they were. */
aps_status aps_model_write_metadata(const char *in, const char *out, const gr_st_meta *set, int n);
/* That, setting "aps.temperature" to "T_DAMAGED,T_ELSEWHERE" (checked: each above 0, at most
 * APS_TEMPERATURE_MAX) and "aps.calibration" to note (how they were found). */
aps_status aps_flow_write_temperature(const char *in, const char *out, const float temperature[2], const char *note);

#endif
