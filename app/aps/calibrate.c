/* The latent scale that calibrates a flow's 90 % intervals (calibrate.h). */
#include "calibrate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


enum { BRACKET_STEPS = 3, BISECTIONS = 6 }; /* τ from 1/8 to APS_TEMPERATURE_MAX; then 2^(1/64) apart */

/* τ as the file will hold it ("%.4g"), so that the figures found are the file's. */
static float as_written(double t) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.4g", t);
  return strtof(buf, NULL);
}

static aps_status try_at(aps_posterior *p, const float *images, int n, const aps_calibrate_desc *d, double log2_t,
                         aps_calibrate_result *out, double *coverage) {
  float t = as_written(exp2(log2_t));
  if (out->tries == APS_CALIBRATE_MAX_TRIES)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_calibrate: more than %d tries", APS_CALIBRATE_MAX_TRIES);
  aps_eval_result r;
  APS_TRY(aps_posterior_set_temperature(p, t));
  APS_TRY(aps_evaluate(p, images, n, &d->eval, &r));
  int i = out->tries++;
  out->tried[i] = t, out->coverage[i] = r.coverage90, out->consistency[i] = r.data_consistency;
  if (i == 0 || fabs(r.coverage90 - d->target) < fabs(out->at.coverage90 - d->target))
    out->temperature = t, out->at = r;
  *coverage = r.coverage90;
  return APS_OK;
}

aps_status aps_calibrate(aps_posterior *p, const float *images, int n, const aps_calibrate_desc *d,
                         aps_calibrate_result *out) {
  memset(out, 0, sizeof *out);
  if (!(d->target > 0 && d->target < 1))
    return aps_fail(APS_ERR_INVALID_ARG, "aps_calibrate: target coverage %g (between 0 and 1)", d->target);
  /* Coverage grows with τ: bracket the target by doubling or halving from 1, then bisect. */
  double c, lo = 0, hi = 0; /* log2 τ */
  APS_TRY(try_at(p, images, n, d, 0, out, &c));
  int up = c < d->target;
  double at = 0, bound = up ? log2(APS_TEMPERATURE_MAX) : -BRACKET_STEPS;
  for (;;) {
    if (up ? at >= bound : at <= bound) /* the target lies beyond the range: keep its end */
      return aps_posterior_set_temperature(p, out->temperature);
    double next = up ? fmin(at + 1, bound) : fmax(at - 1, bound);
    APS_TRY(try_at(p, images, n, d, next, out, &c));
    if (up ? c >= d->target : c <= d->target) {
      lo = up ? at : next, hi = up ? next : at;
      break;
    }
    at = next;
  }
  for (int i = 0; i < BISECTIONS; i++) {
    double mid = 0.5 * (lo + hi);
    APS_TRY(try_at(p, images, n, d, mid, out, &c));
    if (c < d->target)
      lo = mid;
    else
      hi = mid;
  }
  return aps_posterior_set_temperature(p, out->temperature);
}

aps_status aps_model_write_metadata(const char *in, const char *out, const gr_st_meta *set, int n) {
  gr_st *st = NULL;
  APS_TRY(gr_st_open(in, &st));
  uint32_t nt = gr_st_count(st), nm = 0;
  while (gr_st_metadata_key(st, nm))
    nm++;
  gr_st_tensor *t = calloc(nt ? nt : 1, sizeof *t);
  gr_st_meta *m = calloc(nm + (uint32_t)n + 1, sizeof *m);
  aps_status s = t && m ? APS_OK : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (uint32_t i = 0; s == APS_OK && i < nt; i++) {
    t[i].name = gr_st_name(st, i);
    s = gr_st_get_f32(st, t[i].name, &t[i].rank, t[i].dims, &t[i].data);
  }
  uint32_t k = 0;
  for (uint32_t i = 0; s == APS_OK && i < nm; i++) {
    const char *key = gr_st_metadata_key(st, i);
    int replaced = 0;
    for (int j = 0; j < n; j++)
      replaced |= !strcmp(key, set[j].key);
    if (!replaced)
      m[k++] = (gr_st_meta){key, gr_st_metadata(st, key)};
  }
  for (int j = 0; s == APS_OK && j < n; j++)
    m[k++] = set[j];
  if (s == APS_OK)
    s = gr_st_write(out, t, nt, m, k);
  free(t), free(m);
  gr_st_close(st);
  return s;
}

aps_status aps_flow_write_temperature(const char *in, const char *out, float temperature, const char *note) {
  if (!(temperature > 0 && temperature <= APS_TEMPERATURE_MAX))
    return aps_fail(APS_ERR_INVALID_ARG, "%s: temperature %g (above 0, at most %g)", out, temperature,
                    APS_TEMPERATURE_MAX);
  char value[32];
  snprintf(value, sizeof value, "%.4g", temperature);
  gr_st_meta set[2] = {{"aps.temperature", value}, {"aps.calibration", note ? note : ""}};
  return aps_model_write_metadata(in, out, set, 2);
}
