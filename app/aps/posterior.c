/* The posterior (aps.h): opening a flow model file, sampling, moments, the getters and the
 * data consistency. Setting a measurement is in posterior_measure.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aps_clock.h"
#include "metrics.h"
#include "posterior_internal.h"

enum { DEFAULT_BATCH = 16, MAX_BATCH = 4096 };

aps_status aps_temperature_parse(const char *text, float out[2]) {
  char *end = NULL;
  double v[2];
  v[0] = v[1] = strtod(text, &end);
  int ok = end != text;
  if (ok && *end == ',') {
    const char *second = end + 1;
    v[1] = strtod(second, &end);
    ok = end != second;
  }
  for (int i = 0; i < 2; i++)
    ok = ok && v[i] > 0 && v[i] <= APS_TEMPERATURE_MAX;
  if (!ok || *end)
    return aps_fail(APS_ERR_INVALID_ARG, "temperature \"%.32s\": expected T or T_DAMAGED,T_ELSEWHERE, each above 0 "
                    "and at most %g", text, APS_TEMPERATURE_MAX);
  out[0] = (float)v[0], out[1] = (float)v[1];
  return APS_OK;
}

/* "aps.temperature" of st into out (damaged, elsewhere); 1 when absent. */
static aps_status temperature_from_file(const gr_st *st, float out[2]) {
  const char *t = gr_st_metadata(st, "aps.temperature");
  out[0] = out[1] = 1.0f;
  if (t && aps_temperature_parse(t, out) != APS_OK)
    return aps_fail_context(APS_ERR_FORMAT, "%s: metadata aps.temperature: ", gr_st_path(st));
  return APS_OK;
}

/* Reads the file's config, family, prior name and (unless given) temperature into p. */
static aps_status read_model(aps_posterior *p, const gr_st *st) {
  APS_TRY(aps_flow_config_from_file(st, &p->cfg));
  if (p->cfg.arch != APS_FLOW_GLOW)
    return aps_fail(APS_ERR_FORMAT, "%s: metadata aps.flow: arch=%s, but posterior sampling of images needs a glow "
                    "flow", p->model, aps_flow_arch_name(p->cfg.arch));
  if (p->cfg.cond != p->cfg.channels + 2)
    return aps_fail(APS_ERR_FORMAT, "%s: metadata aps.flow: cond=%d, but a flow conditioned on measurements of "
                    "%d-channel images takes %d condition channels (measurement, descriptor, sigma_y)", p->model,
                    p->cfg.cond, p->cfg.channels, p->cfg.channels + 2);
  APS_TRY(aps_op_spec_from_file(st, &p->spec));
  APS_TRY(aps_op_spec_format(&p->spec, p->family, sizeof p->family));
  if (aps_op_layout_make(&p->spec, p->cfg.channels, p->cfg.size, p->cfg.size, &p->layout) != APS_OK)
    return aps_fail_context(APS_ERR_FORMAT, "%s: metadata aps.op: ", p->model);
  const char *prior = gr_st_metadata(st, "aps.prior");
  snprintf(p->prior, sizeof p->prior, "%s", prior ? prior : "");
  if (!p->temperature[0])
    APS_TRY(temperature_from_file(st, p->temperature));
  aps_flow_config_string(&p->cfg, p->flow);
  return APS_OK;
}

static aps_status temperature_check(const aps_posterior *p, float damaged, float elsewhere) {
  if (p->dps)
    return aps_fail(APS_ERR_INVALID_ARG, "%s: a temperature is for flows, not dps", p->model);
  if (!(damaged > 0 && damaged <= APS_TEMPERATURE_MAX && elsewhere > 0 && elsewhere <= APS_TEMPERATURE_MAX))
    return aps_fail(APS_ERR_INVALID_ARG, "%s: temperature %g (damaged), %g (elsewhere): each above 0, at most %g",
                    p->model, damaged, elsewhere, APS_TEMPERATURE_MAX);
  return APS_OK;
}

aps_status aps_posterior_set_temperature(aps_posterior *p, float damaged, float elsewhere) {
  APS_TRY(temperature_check(p, damaged, elsewhere));
  p->temperature[0] = p->info.temperature[0] = damaged;
  p->temperature[1] = p->info.temperature[1] = elsewhere;
  return APS_OK;
}

aps_status aps_posterior_open(const aps_posterior_desc *d, aps_posterior **out) {
  *out = NULL;
  if (!d || !d->model || !*d->model)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_posterior_open: no model file given");
  if (d->max_batch < 0 || d->max_batch > MAX_BATCH)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_posterior_open: max_batch %d (0 to %d)", d->max_batch, MAX_BATCH);
  aps_posterior *p = calloc(1, sizeof *p);
  if (!p)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (!(p->model = strdup(d->model))) {
    free(p);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  if (d->device) {
    snprintf(p->device, sizeof p->device, "%s", d->device);
    p->device_req = p->device;
  }
  p->batch = d->max_batch ? d->max_batch : DEFAULT_BATCH;
  p->temperature[0] = d->temperature[0];
  p->temperature[1] = d->temperature[1] != 0.0f ? d->temperature[1] : d->temperature[0];
  p->dps = d->dps;
  aps_status ts = d->temperature[0] != 0.0f || d->temperature[1] != 0.0f
                      ? temperature_check(p, p->temperature[0], p->temperature[1])
                      : APS_OK;
  if (ts != APS_OK) {
    aps_posterior_close(p);
    return ts;
  }
  if (d->dps) {
    aps_status s = aps_posterior_dps_open(p, d);
    if (s != APS_OK) {
      aps_posterior_close(p);
      return s;
    }
    *out = p;
    return APS_OK;
  }
  gr_st *st = NULL;
  aps_status s = gr_st_open(d->model, &st);
  if (s == APS_OK)
    s = read_model(p, st);
  if (s == APS_OK)
    s = aps_flow_sample_graph(&p->cfg, p->batch, &p->fg);
  if (s == APS_OK && (s = gr_st_check_params(p->fg, st)) == APS_OK) /* before any allocation */
    s = aps_runner_create(p->fg, &(aps_runner_desc){.device = p->device_req, .quiet = d->quiet}, &p->fr);
  if (s == APS_OK && (s = aps_runner_load(p->fr, st)) != APS_OK)
    s = aps_fail_context(s, "%s: ", p->model);
  gr_st_close(st);
  int64_t dim = aps_flow_dim(&p->cfg), cdim = (int64_t)p->cfg.cond * p->cfg.size * p->cfg.size;
  float *warm = s == APS_OK ? calloc((size_t)(dim + cdim), sizeof *warm) : NULL;
  p->t_pixel = s == APS_OK ? malloc(sizeof(float) * (size_t)p->cfg.size * (size_t)p->cfg.size) : NULL;
  p->t_latent = s == APS_OK ? malloc(sizeof(float) * (size_t)dim) : NULL;
  if (s == APS_OK && (!warm || !p->t_pixel || !p->t_latent))
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (s == APS_OK) /* the first run builds pipelines and arenas: not what a timing should see */
    s = aps_flow_sample(p->fr, &p->cfg, p->batch, warm + dim, 1, 1.0f, 1, warm);
  free(warm);
  if (s != APS_OK) {
    aps_posterior_close(p);
    return s;
  }
  p->on_cpu = aps_runner_is_cpu(p->fr);
  p->info = (aps_posterior_info){.channels = p->cfg.channels, .height = p->cfg.size, .width = p->cfg.size,
                                 .batch = p->batch, .cls = p->layout.cls, .model = p->model, .family = p->family,
                                 .flow = p->flow, .prior = p->prior, .device = aps_runner_device_name(p->fr),
                                 .temperature = {p->temperature[0], p->temperature[1]}};
  *out = p;
  return APS_OK;
}

void aps_posterior_close(aps_posterior *p) {
  if (!p)
    return;
  aps_runner_destroy(p->orun);
  gr_graph_destroy(p->og);
  aps_op_batch_free(&p->rep);
  aps_op_batch_free(&p->one);
  free(p->y), free(p->cond), free(p->clean);
  free(p->t_pixel), free(p->t_latent);
  aps_runner_destroy(p->fr);
  gr_graph_destroy(p->fg);
  aps_posterior_dps_close(p);
  free(p->model);
  free(p);
}

const aps_posterior_info *aps_posterior_get_info(const aps_posterior *p) { return &p->info; }

static aps_status need_set(const aps_posterior *p, const char *what) {
  return p->set ? APS_OK
                : aps_fail(APS_ERR_INVALID_ARG, "%s: no measurement is set (aps_posterior_set_clean, set_measured, "
                           "set_bundle, ...)", what);
}

/* k flow samples at the temperatures of the measurement's damaged region and elsewhere. */
static aps_status draw(aps_posterior *p, int k, uint64_t seed, float *out) {
  int64_t hw = (int64_t)p->cfg.size * p->cfg.size;
  APS_TRY(aps_posterior_get_damaged(p, p->t_pixel));
  for (int64_t i = 0; i < hw; i++)
    p->t_pixel[i] = p->temperature[1] + (p->temperature[0] - p->temperature[1]) * p->t_pixel[i];
  APS_TRY(aps_flow_glow_latent_map(&p->cfg, p->t_pixel, p->t_latent));
  return aps_flow_sample_scaled(p->fr, &p->cfg, p->batch, p->cond, seed, p->t_latent, k, out);
}

aps_status aps_posterior_sample(aps_posterior *p, int k, uint64_t seed, float *out) {
  APS_TRY(need_set(p, "aps_posterior_sample"));
  if (k < 1)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_posterior_sample: k = %d samples", k);
  double t0 = aps_now_ms();
  if (p->dps)
    APS_TRY(aps_posterior_dps_sample(p, k, seed, out));
  else
    APS_TRY(draw(p, k, seed, out));
  int64_t n = (int64_t)k * aps_flow_dim(&p->cfg);
  for (int64_t i = 0; i < n; i++) /* finite outputs only: broken weights must not become a black PNG */
    if (!isfinite(out[i]))
      return aps_fail(APS_ERR_FORMAT, "%s: posterior sample %lld holds %s (the %s gives non-finite values)",
                      p->model, (long long)(i / aps_flow_dim(&p->cfg)), isnan(out[i]) ? "NaN" : "Inf",
                      p->dps ? "DPS sampler" : "flow");
  p->ms = (aps_now_ms() - t0) / k;
  return APS_OK;
}

aps_status aps_posterior_moments(aps_posterior *p, int k, uint64_t seed, float *mean, float *std, float *samples) {
  if (k < 2)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_posterior_moments: k = %d samples (a standard deviation needs 2)", k);
  int64_t dim = aps_flow_dim(&p->cfg);
  float *x = samples ? samples : malloc((size_t)(k * dim) * sizeof *x);
  if (!x)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory for %d samples", k);
  aps_status s = aps_posterior_sample(p, k, seed, x);
  if (s == APS_OK)
    aps_sample_moments(x, k, dim, mean, std);
  if (x != samples)
    free(x);
  return s;
}

double aps_posterior_ms_per_sample(const aps_posterior *p) { return p->ms; }

aps_status aps_posterior_get_measurement_info(const aps_posterior *p, aps_posterior_measurement_info *out) {
  APS_TRY(need_set(p, "aps_posterior_get_measurement_info"));
  *out = p->mi;
  return APS_OK;
}

aps_status aps_posterior_get_measurement(const aps_posterior *p, float *out) {
  APS_TRY(need_set(p, "aps_posterior_get_measurement"));
  memcpy(out, p->cond, (size_t)aps_flow_dim(&p->cfg) * sizeof *out);
  return APS_OK;
}

aps_status aps_posterior_get_descriptor(const aps_posterior *p, float *out) {
  APS_TRY(need_set(p, "aps_posterior_get_descriptor"));
  int64_t hw = (int64_t)p->cfg.size * p->cfg.size;
  memcpy(out, p->cond + p->cfg.channels * hw, (size_t)hw * sizeof *out);
  return APS_OK;
}

aps_status aps_posterior_get_clean(const aps_posterior *p, float *out) {
  APS_TRY(need_set(p, "aps_posterior_get_clean"));
  if (!p->has_clean)
    return aps_fail(APS_ERR_INVALID_ARG, "the clean image of this measurement (%s) is unknown", p->mi.op);
  memcpy(out, p->clean, (size_t)aps_flow_dim(&p->cfg) * sizeof *out);
  return APS_OK;
}

aps_status aps_posterior_get_damaged(const aps_posterior *p, float *out) {
  APS_TRY(need_set(p, "aps_posterior_get_damaged"));
  int64_t hw = (int64_t)p->cfg.size * p->cfg.size;
  const float *m = p->one.param;
  for (int64_t i = 0; i < hw; i++)
    switch (p->ol.cls) {
    case APS_OPC_MASK: out[i] = m[i] < 0.5f ? 1.0f : 0.0f; break;
    case APS_OPC_BLUR: out[i] = m[i] > 0.5f && p->one.sigma_b[0] > 0 ? 1.0f : 0.0f; break;
    default: out[i] = 1.0f; break;
    }
  return APS_OK;
}

aps_status aps_posterior_data_consistency(aps_posterior *p, const float *x, int k, double *out) {
  APS_TRY(need_set(p, "aps_posterior_data_consistency"));
  if (k < 1)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_posterior_data_consistency: k = %d images", k);
  float *dc = malloc((size_t)p->batch * sizeof *dc);
  if (!dc)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  int64_t dim = aps_flow_dim(&p->cfg);
  aps_status s = APS_OK;
  for (int done = 0; s == APS_OK && done < k; done += p->batch) {
    int take = k - done < p->batch ? k - done : p->batch;
    s = aps_posterior_run_op(p, x + done * dim, take, p->y, NULL, NULL, dc);
    /* dc holds ||y − A x||² / (2σ²) */
    for (int i = 0; s == APS_OK && i < take; i++)
      out[done + i] = p->mi.measured ? sqrt(2.0 * dc[i] / (double)p->mi.measured) : 0.0;
  }
  free(dc);
  return s;
}
