/* Calibrating a flow's spread after training (docs/METHOD.md §6): the latent scale τ
 * (z ~ N(0, τ² I)) at which the per-pixel 90 % intervals of its samples cover a target share
 * of the truth on images the flow is not evaluated on (the training split), found by
 * bisection on log τ. A flow distilled by the reverse KL draws samples too alike; τ > 1
 * widens them along the flow's own directions of uncertainty, which leaves the fit to y
 * nearly as it was where those directions are ones A does not see. */
#ifndef APS_CALIBRATE_H
#define APS_CALIBRATE_H

#include "evaluate.h"
#include "safetensors.h"

enum { APS_CALIBRATE_MAX_TRIES = 16 };

typedef struct aps_calibrate_desc {
  aps_eval_desc eval; /* the family, k and seed of each evaluation */
  double target;      /* the coverage wanted, (0, 1) */
} aps_calibrate_desc;

typedef struct aps_calibrate_result {
  float temperature;  /* the tried τ whose coverage came closest to the target */
  aps_eval_result at; /* its evaluation */
  int tries;          /* temperatures evaluated, in order: */
  float tried[APS_CALIBRATE_MAX_TRIES];
  double coverage[APS_CALIBRATE_MAX_TRIES], consistency[APS_CALIBRATE_MAX_TRIES];
} aps_calibrate_result;

/* p must be a flow's posterior; it is left at the temperature found. images as aps_evaluate. */
aps_status aps_calibrate(aps_posterior *p, const float *images, int n, const aps_calibrate_desc *d,
                         aps_calibrate_result *out);

/* Copies the model file `in` to `out` (through a temporary and a rename, so `out` may be
 * `in`) with the n metadata entries `set` added or replacing those of the same keys: every
 * tensor (as F32) and every other metadata entry as they were. */
aps_status aps_model_write_metadata(const char *in, const char *out, const gr_st_meta *set, int n);
/* That, setting "aps.temperature" (checked: above 0, at most APS_TEMPERATURE_MAX) and
 * "aps.calibration" = note (how it was found). */
aps_status aps_flow_write_temperature(const char *in, const char *out, float temperature, const char *note);

#endif
