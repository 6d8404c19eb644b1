/* The posterior handle behind aps.h, shared by posterior.c (opening, sampling, getters) and
 * posterior_measure.c (setting a measurement). Not a public header. */
#ifndef APS_POSTERIOR_INTERNAL_H
#define APS_POSTERIOR_INTERNAL_H

#include "aps.h"
#include "dps.h"
#include "flow.h"

struct aps_posterior {
  aps_posterior_info info;
  char *model; /* a copy of the path: any length */
  char family[APS_OP_SPEC_MAX], flow[256], prior[512], device[256];
  const char *device_req; /* points into device[] or NULL */
  aps_flow_config cfg; /* with dps only its channels, size and cond: the images' shape */
  aps_op_spec spec; /* the model's family */
  aps_op_layout layout; /* the family's, on the model's images */
  int batch;
  float temperature[2]; /* of the flow's latent: in the damaged region, elsewhere */
  float *t_pixel, *t_latent; /* the scales per pixel and per latent element of the last draw */
  gr_graph *fg;
  aps_runner *fr; /* the flow's sampling graph */
  double ms;      /* per sample, last call */
  int on_cpu;     /* the sampler runs on the CPU device: so do the operator graphs */

  /* dps: the prior's step graph for the layout dl (rebuilt when a measurement's differs). */
  int dps;
  aps_dps_desc dd;
  aps_prior_config pcfg;
  gr_graph *dg;
  aps_runner *dr;
  aps_op_layout dl;
  char dps_device[256];

  /* The measurement, once set. */
  int set, has_clean;
  aps_op_batch one; /* n = 1: its operator (noise: what simulated it, or zeros) */
  float *y;         /* [C, MH, MW] */
  float *cond;      /* [C + 2, H, W]: the flow's condition */
  float *clean;     /* [C, H, W] when has_clean */
  aps_posterior_measurement_info mi;

  /* The operator graph of the measurement's layout (batch = the flow's): inputs "x",
   * "noise", "y" and the operator's; outputs "sim" (A x + σ_y n), "cond" (the condition of
   * y) and "dc" (the data term of x against y). */
  aps_op_layout ol;
  gr_graph *og;
  aps_runner *orun;
  aps_op_graph op;
  aps_op_batch rep; /* the operator repeated over the batch */
};

/* Runs the operator graph: inputs x [C, H, W] or k <= batch images [k, C, H, W] (NULL:
 * zeros), y [C, MH, MW] (NULL: zeros), the measurement's noise and operator; the outputs
 * sim (row 0), cond (row 0) and dc (rows 0..k-1) where not NULL. */
aps_status aps_posterior_run_op(aps_posterior *p, const float *x, int k, const float *y, float *sim, float *cond,
                                float *dc);

/* dps (posterior_dps.c): open reads the prior's config and the family into p and builds the
 * step graph; sample draws k samples of the measurement set. */
aps_status aps_posterior_dps_open(aps_posterior *p, const aps_posterior_desc *d);
aps_status aps_posterior_dps_sample(aps_posterior *p, int k, uint64_t seed, float *out);
void aps_posterior_dps_close(aps_posterior *p);
int aps_posterior_same_layout(const aps_op_layout *a, const aps_op_layout *b);

#endif
