/* The VP-SDE of docs/METHOD.md §2 and the importance density of §3, in closed form.
 * t ∈ [eps, 1]; β(t) = β0 + t (β1 − β0); a(t) = exp(−¼ t² (β1 − β0) − ½ t β0);
 * σ(t) = sqrt(1 − a²); g² = β. Everything in double: these feed the ELBO's constants. */
#ifndef APS_SDE_H
#define APS_SDE_H

typedef struct aps_sde {
  double beta0, beta1, eps; /* 0 = 0.1, 20, 1e-3 */
} aps_sde;

aps_sde aps_sde_default(void);
double aps_sde_beta(const aps_sde *s, double t);
double aps_sde_alpha(const aps_sde *s, double t); /* a(t) */
double aps_sde_sigma(const aps_sde *s, double t);
/* B(t) = β0 t + ½ t² (β1 − β0), so a = exp(−B/2). */
double aps_sde_big_b(const aps_sde *s, double t);

/* Importance density π(t) ∝ g²/σ² on [eps, 1]: its normaliser Z, density, cumulative
 * weight W(t) = ∫_eps^t g²/σ² = log(e^{B(t)} − 1) − log(e^{B(eps)} − 1), and the inverse
 * of W/Z (bisection on the closed form). */
double aps_sde_importance_z(const aps_sde *s);
double aps_sde_importance_pdf(const aps_sde *s, double t);
double aps_sde_importance_cdf(const aps_sde *s, double t);
double aps_sde_importance_inv(const aps_sde *s, double u); /* u ∈ [0, 1] */
#endif
