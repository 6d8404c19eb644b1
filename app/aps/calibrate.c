/* The latent scales, per region, that calibrate a flow's 90 % intervals (calibrate.h). */
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

/* The coverage of region 0 (damaged) or 1 (elsewhere); NaN when no image has such pixels. */
static double coverage_of(const aps_eval_result *r, int region) {
  return region ? r->coverage90_outside : r->coverage90_inside;
}

/* The evaluation at t (damaged, elsewhere), from an earlier try when there is one. */
static aps_status try_at(aps_posterior *p, const float *images, int n, const aps_calibrate_desc *d, const float t[2],
                         aps_calibrate_result *out, const aps_eval_result **r) {
  for (int i = 0; i < out->tries; i++)
    if (out->tried[i].temperature[0] == t[0] && out->tried[i].temperature[1] == t[1]) {
      *r = &out->tried[i].r;
      return APS_OK;
    }
  if (out->tries == APS_CALIBRATE_MAX_TRIES)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_calibrate: more than %d tries", APS_CALIBRATE_MAX_TRIES);
  aps_calibrate_try *tr = &out->tried[out->tries];
  APS_TRY(aps_posterior_set_temperature(p, t[0], t[1]));
  APS_TRY(aps_evaluate(p, images, n, &d->eval, &tr->r));
  tr->temperature[0] = t[0], tr->temperature[1] = t[1];
  out->tries++;
  *r = &tr->r;
  return APS_OK;
}

/* Region's τ in t by bracketing from its value (doubling or halving: coverage grows with τ)
 * and bisecting; t keeps the τ tried whose coverage came closest to the target. */
static aps_status calibrate_region(aps_posterior *p, const float *images, int n, const aps_calibrate_desc *d,
                                   int region, float t[2], aps_calibrate_result *out) {
  const aps_eval_result *r;
  APS_TRY(try_at(p, images, n, d, t, out, &r));
  double c = coverage_of(r, region), best = fabs(c - d->target);
  if (isnan(c))
    return APS_OK;
  float keep = t[region];
  double at = log2(t[region]), lo = at, hi = at;
  int up = c < d->target, bracketed = 0;
  double bound = up ? log2(APS_TEMPERATURE_MAX) : -BRACKET_STEPS;
  while (!bracketed && (up ? at < bound : at > bound)) {
    double next = up ? fmin(at + 1, bound) : fmax(at - 1, bound);
    t[region] = as_written(exp2(next));
    APS_TRY(try_at(p, images, n, d, t, out, &r));
    c = coverage_of(r, region);
    if (fabs(c - d->target) < best)
      best = fabs(c - d->target), keep = t[region];
    if (up ? c >= d->target : c <= d->target)
      lo = up ? at : next, hi = up ? next : at, bracketed = 1;
    at = next;
  }
  for (int i = 0; bracketed && i < BISECTIONS; i++) {
    double mid = 0.5 * (lo + hi);
    t[region] = as_written(exp2(mid));
    APS_TRY(try_at(p, images, n, d, t, out, &r));
    c = coverage_of(r, region);
    if (fabs(c - d->target) < best)
      best = fabs(c - d->target), keep = t[region];
    if (c < d->target)
      lo = mid;
    else
      hi = mid;
  }
  t[region] = keep;
  return APS_OK;
}

aps_status aps_calibrate(aps_posterior *p, const float *images, int n, const aps_calibrate_desc *d,
                         aps_calibrate_result *out) {
  memset(out, 0, sizeof *out);
  if (!(d->target > 0 && d->target < 1))
    return aps_fail(APS_ERR_INVALID_ARG, "aps_calibrate: target coverage %g (between 0 and 1)", d->target);
  float t[2] = {1.0f, 1.0f};
  static const int order[] = {0, 1, 0};
  for (int i = 0; i < 3; i++)
    APS_TRY(calibrate_region(p, images, n, d, order[i], t, out));
  const aps_eval_result *r;
  APS_TRY(try_at(p, images, n, d, t, out, &r));
  out->temperature[0] = t[0], out->temperature[1] = t[1], out->at = *r;
  return aps_posterior_set_temperature(p, t[0], t[1]);
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

aps_status aps_flow_write_temperature(const char *in, const char *out, const float temperature[2], const char *note) {
  for (int i = 0; i < 2; i++)
    if (!(temperature[i] > 0 && temperature[i] <= APS_TEMPERATURE_MAX))
      return aps_fail(APS_ERR_INVALID_ARG, "%s: temperature %g (above 0, at most %g)", out, temperature[i],
                      APS_TEMPERATURE_MAX);
  char value[48];
  snprintf(value, sizeof value, "%.4g,%.4g", temperature[0], temperature[1]);
  gr_st_meta set[2] = {{"aps.temperature", value}, {"aps.calibration", note ? note : ""}};
  return aps_model_write_metadata(in, out, set, 2);
}
