/* The CPU reference of the small linear algebra (inverse, the LU factor, logabsdet): LU with
 * partial pivoting in double, as the oracle of the fp32 kernel (shaders/lu.comp). */
#include <math.h>
#include <stdlib.h>

#include "reference_ops.h"

/* In-place LU with partial pivoting of a [C, C]: returns log|det|, and the row swaps in
 * piv when given. */
static double lu(double *a, int64_t C, int64_t *piv) {
  double lad = 0;
  for (int64_t k = 0; k < C; k++) {
    int64_t p = k;
    for (int64_t i = k + 1; i < C; i++)
      if (fabs(a[i * C + k]) > fabs(a[p * C + k]))
        p = i;
    if (piv)
      piv[k] = p;
    for (int64_t j = 0; p != k && j < C; j++) {
      double t = a[k * C + j];
      a[k * C + j] = a[p * C + j];
      a[p * C + j] = t;
    }
    double d = a[k * C + k];
    lad += log(fabs(d));
    for (int64_t i = k + 1; i < C; i++) {
      double l = a[i * C + k] /= d;
      for (int64_t j = k + 1; j < C; j++)
        a[i * C + j] -= l * a[k * C + j];
    }
  }
  return lad;
}

static double *to_double(const float *x, int64_t n) {
  double *a = malloc((size_t)n * sizeof *a);
  for (int64_t i = 0; a && i < n; i++)
    a[i] = x[i];
  return a;
}

static void fill_nan(float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    out[i] = NAN; /* out of host memory: the CPU interface has no status to return */
}

void gr_cpu_lu(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int64_t C = SHAPE(n->output).d[0];
  double *a = to_double(in[0], C * C);
  if (!a) {
    fill_nan(out, C * C);
    return;
  }
  lu(a, C, NULL);
  for (int64_t i = 0; i < C * C; i++)
    out[i] = (float)a[i];
  free(a);
}

/* From w itself, independent of the LU node's fp32 values. */
void gr_cpu_logabsdet(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int64_t C = SHAPE(n->inputs[0]).d[0];
  double *a = to_double(in[0], C * C);
  out[0] = a ? (float)lu(a, C, NULL) : NAN;
  free(a);
}

/* Solves LU·x = P·e_j for each column j. */
void gr_cpu_inverse(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int64_t C = SHAPE(n->output).d[0];
  double *a = to_double(in[0], C * C), *x = malloc((size_t)C * sizeof *x);
  int64_t *piv = malloc((size_t)C * sizeof *piv);
  if (!a || !x || !piv) {
    fill_nan(out, C * C);
  } else {
    lu(a, C, piv);
    for (int64_t j = 0; j < C; j++) {
      for (int64_t i = 0; i < C; i++)
        x[i] = i == j;
      for (int64_t k = 0; k < C; k++) {
        double t = x[k];
        x[k] = x[piv[k]];
        x[piv[k]] = t;
      }
      for (int64_t i = 0; i < C; i++)
        for (int64_t k = 0; k < i; k++)
          x[i] -= a[i * C + k] * x[k];
      for (int64_t i = C - 1; i >= 0; i--) {
        for (int64_t k = i + 1; k < C; k++)
          x[i] -= a[i * C + k] * x[k];
        x[i] /= a[i * C + i];
      }
      for (int64_t i = 0; i < C; i++)
        out[i * C + j] = (float)x[i];
    }
  }
  free(a);
  free(x);
  free(piv);
}
