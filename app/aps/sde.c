#include "sde.h"

#include <math.h>

aps_sde aps_sde_default(void) { return (aps_sde){0.1, 20.0, 1e-3}; }

double aps_sde_beta(const aps_sde *s, double t) { return s->beta0 + t * (s->beta1 - s->beta0); }
double aps_sde_big_b(const aps_sde *s, double t) { return s->beta0 * t + 0.5 * t * t * (s->beta1 - s->beta0); }
double aps_sde_alpha(const aps_sde *s, double t) { return exp(-0.5 * aps_sde_big_b(s, t)); }
/* 1 − a² = −expm1(−B): exact for small t, where 1 − a² would cancel. */
double aps_sde_sigma(const aps_sde *s, double t) { return sqrt(-expm1(-aps_sde_big_b(s, t))); }

/* log(e^B − 1), stable for small and large B. */
static double log_expm1(double b) { return b > 30 ? b + log1p(-exp(-b)) : log(expm1(b)); }

static double cumulative(const aps_sde *s, double t) {
  return log_expm1(aps_sde_big_b(s, t)) - log_expm1(aps_sde_big_b(s, s->eps));
}
double aps_sde_importance_z(const aps_sde *s) { return cumulative(s, 1.0); }
double aps_sde_importance_pdf(const aps_sde *s, double t) {
  if (t < s->eps || t > 1.0)
    return 0.0;
  double sg = aps_sde_sigma(s, t);
  return aps_sde_beta(s, t) / (sg * sg) / aps_sde_importance_z(s);
}
double aps_sde_importance_cdf(const aps_sde *s, double t) {
  if (t <= s->eps)
    return 0.0;
  if (t >= 1.0)
    return 1.0;
  return cumulative(s, t) / aps_sde_importance_z(s);
}
double aps_sde_importance_inv(const aps_sde *s, double u) {
  double lo = s->eps, hi = 1.0;
  for (int i = 0; i < 100 && hi - lo > 1e-15; i++) {
    double mid = 0.5 * (lo + hi);
    if (aps_sde_importance_cdf(s, mid) < u)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}
