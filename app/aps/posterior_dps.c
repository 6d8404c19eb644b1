/* DPS behind the posterior API (aps.h, desc.dps): the prior's file as the model, the family
 * given, every sample aps_dps_sample's. Setting measurements, moments, data consistency and
 * the evaluation loop are the flow's own, so both methods report the same figures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "posterior_internal.h"
#include "rng.h"

/* The step graph for layout l at the posterior's batch. */
static aps_status build(aps_posterior *p, const aps_op_layout *l) {
  aps_runner_destroy(p->dr), p->dr = NULL;
  gr_graph_destroy(p->dg), p->dg = NULL;
  aps_prior_config c;
  APS_TRY(aps_dps_open(p->model, &(aps_runner_desc){.device = p->device_req, .quiet = 1}, l, p->batch, &c, &p->dg,
                       &p->dr));
  p->dl = *l;
  return APS_OK;
}

aps_status aps_posterior_dps_open(aps_posterior *p, const aps_posterior_desc *d) {
  p->dps = 1;
  if (!d->family || !*d->family)
    return aps_fail(APS_ERR_INVALID_ARG, "%s: sampling by DPS needs the operator family (--op)", p->model);
  gr_st *st = NULL;
  APS_TRY(gr_st_open(p->model, &st));
  aps_status s = aps_prior_config_from_file(st, &p->pcfg);
  gr_st_close(st);
  APS_TRY(s);
  int c = p->pcfg.unet.image_channels, size = p->pcfg.unet.image_size;
  p->cfg = aps_flow_config_glow(c, size, c + 2); /* the images' shape only: no flow is built */
  APS_TRY(aps_op_spec_parse(d->family, &p->spec));
  APS_TRY(aps_op_spec_format(&p->spec, p->family, sizeof p->family));
  APS_TRY(aps_op_layout_make(&p->spec, c, size, size, &p->layout));
  const aps_posterior_dps *ds = &d->dps_settings;
  p->dd = (aps_dps_desc){.steps = ds->steps ? ds->steps : APS_DPS_STEPS_DEFAULT, .zeta = ds->zeta,
                         .rule = ds->ddim ? APS_DPS_DDIM : APS_DPS_EM, .eta = ds->eta, .sde = p->pcfg.sde};
  if (p->dd.zeta == 0.0f && p->dd.steps > 0)
    p->dd.zeta = aps_dps_default_zeta(p->dd.steps);
  if (p->dd.steps < 1 || p->dd.steps > 100000 || !(p->dd.zeta > 0) || !(p->dd.eta >= 0 && p->dd.eta <= 1))
    return aps_fail(APS_ERR_INVALID_ARG, "dps: steps %d (1 to 100000), zeta %g (> 0), eta %g (0 to 1)", p->dd.steps,
                    p->dd.zeta, p->dd.eta);
  APS_TRY(build(p, &p->layout));
  p->on_cpu = aps_runner_is_cpu(p->dr);
  snprintf(p->flow, sizeof p->flow, "dps steps=%d zeta=%g rule=%s", p->dd.steps, p->dd.zeta,
           aps_dps_rule_name(p->dd.rule));
  if (p->dd.rule == APS_DPS_DDIM)
    snprintf(p->flow + strlen(p->flow), sizeof p->flow - strlen(p->flow), " eta=%g", p->dd.eta);
  /* The runner's name dies with it when a measurement's layout rebuilds it: keep a copy. */
  snprintf(p->dps_device, sizeof p->dps_device, "%s", aps_runner_device_name(p->dr));
  p->info = (aps_posterior_info){.channels = c, .height = size, .width = size, .batch = p->batch,
                                 .cls = p->layout.cls, .model = p->model, .family = p->family, .flow = p->flow,
                                 .prior = p->model, .device = p->dps_device, .temperature = {1.0f, 1.0f}};
  return APS_OK;
}

aps_status aps_posterior_dps_sample(aps_posterior *p, int k, uint64_t seed, float *out) {
  if (!aps_posterior_same_layout(&p->dl, &p->ol))
    APS_TRY(build(p, &p->ol));
  const aps_op_layout *l = &p->ol;
  int64_t per = (int64_t)l->c * l->h * l->w, mper = (int64_t)l->c * l->mh * l->mw;
  float *y = malloc((size_t)(p->batch * mper) * sizeof *y), *x = malloc((size_t)(p->batch * per) * sizeof *x);
  aps_status s = y && x ? APS_OK : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (int j = 0; s == APS_OK && j < p->batch; j++)
    memcpy(y + j * mper, p->y, (size_t)mper * sizeof *y);
  /* Batches of the step graph's size, each from its own seed; rows past k are discarded. */
  for (int done = 0, chunk = 0; s == APS_OK && done < k; chunk++) {
    int take = k - done < p->batch ? k - done : p->batch;
    s = aps_dps_sample(p->dr, &p->dd, &p->rep, y, aps_op_seed(seed, (uint64_t)chunk), x);
    if (s == APS_OK)
      memcpy(out + done * per, x, (size_t)(take * per) * sizeof *x);
    done += take;
  }
  free(y), free(x);
  return s;
}

void aps_posterior_dps_close(aps_posterior *p) {
  aps_runner_destroy(p->dr);
  gr_graph_destroy(p->dg);
}
