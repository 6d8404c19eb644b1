/* The method's C API: posterior samples of an imaging inverse problem from a distilled
 * conditional flow (docs/METHOD.md §6), one flow evaluation per sample. The `aps sample`
 * and `aps eval` commands use it, and so can a viewer or any other front end.
 *
 * Contract
 * - A posterior (aps_posterior_open) is a flow model file, as `aps distill` writes it:
 *   safetensors with the flow's parameters ("flow.*") and metadata "aps.kind" =
 *   "flow/conditional", "aps.flow" (the flow's config), "aps.op" (the canonical spec of the
 *   operator family it was trained on) and, for information, "aps.prior"; optionally
 *   "aps.temperature", the latent scale to sample at ("T", or "T_DAMAGED,T_ELSEWHERE"; 1
 *   without it). Opening reads the
 *   config and the family, builds the sampling graph for max_batch samples at once on the
 *   chosen device, loads the weights, and runs the flow once (so that timings measure the
 *   steady state). Errors name the file and the metadata key or tensor at fault.
 * - Images are float [C, H, W] in [-1, 1] with the model's C, H, W (aps_posterior_get_info);
 *   K images are [K, C, H, W]. Every buffer belongs to the caller; nothing is kept.
 * - A measurement is set before sampling, in one of these ways (each replaces the last):
 *     set_clean             a clean image degraded by an operator drawn from a spec (NULL:
 *                           the model's family) with a seed: the mask, σ_b, σ_y and noise;
 *     set_clean_operator    a clean image degraded by an explicit operator (a painted mask
 *                           or blur map, say), the noise drawn from the seed;
 *     set_measured          a measurement y someone has, with a deterministic spec
 *                           (inpaint:mask=FILE, blur:sigma=S[,map=FILE], sr:F, denoise; one
 *                           noise value);
 *     set_measured_operator a measurement y with an explicit operator;
 *     set_bundle            sample `index` of a measurement bundle (`aps degrade`).
 *   An operator must be of the class of the model's family (inpainting, blur or
 *   super-resolution; denoise fits inpainting and blur flows): a blur on an inpainting flow
 *   is refused, naming both. Members outside the family but of its class are accepted (a
 *   text-shaped mask on a flow trained on boxes): how well the flow generalises to them is
 *   for the person to judge. Every measurement is made by the operator graphs of
 *   operators.h on the model's device, so it is exactly what the flow was trained on.
 * - Sampling draws z ~ N(0, I) in the graph from the seed: the same seed, batch and device
 *   give the same samples; the CPU device and Vulkan agree to float rounding.
 * - Errors are values (aps_status with aps_last_error() naming what was wrong); nothing
 *   exits. A posterior is used by one thread at a time. */
#ifndef APS_APS_H
#define APS_APS_H

#include <stdint.h>

#include "operators.h"

typedef struct aps_posterior aps_posterior;

/* The largest latent scale a flow may be sampled at. */
#define APS_TEMPERATURE_MAX 4.0f

/* The iterative baseline behind the same API (docs/METHOD.md §7, dps.h): the model is the
 * diffusion prior's file, the family must be given, and each sample costs steps + 1 network
 * runs forward and back. */
typedef struct aps_posterior_dps {
  int steps;         /* 0 = APS_DPS_STEPS_DEFAULT (1000) */
  float zeta;        /* 0 = min(250 / steps, 2.5) */
  int ddim;          /* 0: Euler-Maruyama; 1: DDIM with eta */
  float eta;
} aps_posterior_dps;

typedef struct aps_posterior_desc {
  const char *model;  /* the flow file (required); with dps, the prior's file */
  int dps;            /* 1: sample by DPS from the prior (family required) instead of a flow */
  aps_posterior_dps dps_settings;
  const char *family; /* dps: the operator family measurements come from (required) */
  const char *device; /* NULL or "auto": a GPU if Vulkan has one, else the CPU device; "cpu";
                         a Vulkan device's index or part of its name (runner.h) */
  int max_batch;      /* samples per flow evaluation (0: 16); samples depend on it */
  /* The flow's latent scale (z ~ N(0, τ² I), docs/METHOD.md §6) in the damaged region
   * (aps_posterior_get_damaged) and elsewhere, each in (0, APS_TEMPERATURE_MAX]. {0, 0}: the
   * file's "aps.temperature" (`aps calibrate` writes it), else 1; {t, 0}: t for both. Not for
   * dps. */
  float temperature[2];
  int quiet;          /* do not print the device chosen */
} aps_posterior_desc;

aps_status aps_posterior_open(const aps_posterior_desc *d, aps_posterior **out);
void aps_posterior_close(aps_posterior *p); /* NULL is fine */

typedef struct aps_posterior_info {
  int channels, height, width; /* of images and samples */
  int batch;                   /* samples per flow evaluation */
  aps_op_class cls;            /* the class of the model's family */
  const char *model;           /* the file */
  const char *family;          /* the canonical spec of the family it was trained on */
  const char *flow;            /* the flow's config string; with dps "dps steps=N zeta=Z rule=R" */
  const char *prior;           /* the prior it was distilled from ("" if the file does not say) */
  const char *device;          /* the device that runs it */
  float temperature[2];        /* the latent scales samples are drawn at (damaged, elsewhere; 1 with dps) */
} aps_posterior_info;
/* Lives as long as p. */
const aps_posterior_info *aps_posterior_get_info(const aps_posterior *p);

/* An operator given explicitly, of the model's class. Zero-initialised: everything observed
 * (or blurred), σ_y = 0. */
typedef struct aps_posterior_operator {
  const float *map; /* [H, W] or NULL (all ones). Inpainting: the mask (>= 0.5 observed,
                       < 0.5 missing). Blur: the weight w in [0, 1] of the blurred image at each
                       pixel. Super-resolution: unused. */
  float sigma_b;    /* blur: the Gaussian's width in px, 0 to APS_BLUR_SIGMA_MAX */
  float sigma_y;    /* the measurement noise, 0 to APS_SIGMA_Y_MAX */
  int factor;       /* super-resolution: 2 or 4 (0: the family's) */
} aps_posterior_operator;

/* image [C, H, W]; spec NULL = the model's family; seed picks the draw (aps_op_draw:
 * aps_op_seed(run_seed, index) gives the measurement `aps degrade --seed run_seed` makes of
 * image `index`). */
aps_status aps_posterior_set_clean(aps_posterior *p, const float *image, const char *spec, uint64_t seed);
aps_status aps_posterior_set_clean_operator(aps_posterior *p, const float *image, const aps_posterior_operator *op,
                                            uint64_t seed);
/* y [C, h, w]: the measurement on the image grid (h, w = H, W), or for super-resolution
 * either the low-resolution measurement (H/f, W/f) or its nearest upsampling to H, W. For
 * inpainting, values where the mask is 0 are ignored. spec NULL: the model's family, which
 * must then be deterministic itself. */
aps_status aps_posterior_set_measured(aps_posterior *p, const float *y, int h, int w, const char *spec);
aps_status aps_posterior_set_measured_operator(aps_posterior *p, const float *y, int h, int w,
                                               const aps_posterior_operator *op);
/* Sample `index` of a bundle (aps_measurements_load), its clean image unknown. */
aps_status aps_posterior_set_bundle(aps_posterior *p, const aps_measurements *m, int index);

/* What is set. */
typedef struct aps_posterior_measurement_info {
  int has_clean;        /* the clean image is known (set_clean*) */
  aps_op_class cls;     /* the operator's class */
  int factor;           /* super-resolution factor (1 otherwise) */
  float sigma_y;        /* as drawn or given (the data term floors it at APS_SIGMA_Y_FLOOR) */
  float sigma_b;        /* blur width (px); 0 without blur */
  float desc_max;       /* the descriptor's largest possible value, for display */
  int64_t measured;     /* values measured: observed pixels × C for inpainting, C·MH·MW else */
  char op[APS_OP_SPEC_MAX]; /* the spec it came from, or "(given operator)" */
} aps_posterior_measurement_info;
aps_status aps_posterior_get_measurement_info(const aps_posterior *p, aps_posterior_measurement_info *out);
/* [C, H, W]: the measurement on the image grid (channels 0..C-1 of the flow's condition). */
aps_status aps_posterior_get_measurement(const aps_posterior *p, float *out);
/* [H, W]: the operator descriptor (mask; σ_b map; the factor). */
aps_status aps_posterior_get_descriptor(const aps_posterior *p, float *out);
/* [C, H, W]: the clean image; an error when it is unknown. */
aps_status aps_posterior_get_clean(const aps_posterior *p, float *out);
/* [H, W]: 1 where the operator damaged the image, else 0: inpainting the missing pixels
 * (mask 0), blur where w > 0.5 and σ_b > 0, super-resolution everywhere, denoise nowhere. */
aps_status aps_posterior_get_damaged(const aps_posterior *p, float *out);

/* "T" (both regions) or "T_DAMAGED,T_ELSEWHERE" into out, each above 0 and at most
 * APS_TEMPERATURE_MAX: the form of "aps.temperature" and of `--temperature`. */
aps_status aps_temperature_parse(const char *text, float out[2]);
/* The latent scales of later samples in the damaged region and elsewhere, each in
 * (0, APS_TEMPERATURE_MAX]; flows only. A latent element of the glow's level l covers a block
 * of 2^(l+1) pixels on a side and takes the scales' mean over its pixels. */
aps_status aps_posterior_set_temperature(aps_posterior *p, float damaged, float elsewhere);

/* k posterior samples into out [k, C, H, W]. */
aps_status aps_posterior_sample(aps_posterior *p, int k, uint64_t seed, float *out);
/* k samples' per-pixel mean and standard deviation (k − 1 in the denominator; k >= 2), each
 * [C, H, W]; samples [k, C, H, W] receives the samples themselves unless NULL. */
aps_status aps_posterior_moments(aps_posterior *p, int k, uint64_t seed, float *mean, float *std, float *samples);
/* Wall-clock milliseconds per sample of the last sample or moments call (0 before one). */
double aps_posterior_ms_per_sample(const aps_posterior *p);

/* Data consistency of k images x [k, C, H, W] with the measurement: per image
 * ||y − A x|| / (σ √m), σ = max(σ_y, APS_SIGMA_Y_FLOOR), m the measured values, into
 * out[k]. ≈ 1 for a sample that fits the measurement as well as the truth does (when σ_y is
 * above the floor). Computed by the operator graph on the model's device. */
aps_status aps_posterior_data_consistency(aps_posterior *p, const float *x, int k, double *out);

#endif
