/* Small linear algebra (inverse, logabsdet): Vulkan's fp32 LU against the CPU reference's
 * double one; and their gradients against finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fd_check.h"
#include "graph_check.h"

rt_device *graph_tests_device(void);

/* kind 0: R + C·I with R uniform in [-1, 1). kind 1: Q·diag(e^s), Q orthogonal (Gram-Schmidt
 * of a random matrix, so pivoting matters) and s in [-1, 1): log|det| = Σ s, cond <= e². */
static double make_matrix(int kind, int C, float *w) {
  double *q = malloc((size_t)C * C * sizeof *q), lad = 0;
  float *r = malloc((size_t)C * C * sizeof *r), s[512];
  fill_uniform(r, (int64_t)C * C, -1, 1, 1000u + (uint32_t)C * 7u + (uint32_t)kind);
  fill_uniform(s, C, -1, 1, 77u + (uint32_t)C);
  for (int i = 0; i < C * C; i++)
    q[i] = r[i];
  if (kind == 0) {
    for (int i = 0; i < C; i++)
      q[i * C + i] += C;
  } else {
    for (int j = 0; j < C; j++) { /* columns orthonormal */
      for (int k = 0; k < j; k++) {
        double d = 0;
        for (int i = 0; i < C; i++)
          d += q[i * C + j] * q[i * C + k];
        for (int i = 0; i < C; i++)
          q[i * C + j] -= d * q[i * C + k];
      }
      double nrm = 0;
      for (int i = 0; i < C; i++)
        nrm += q[i * C + j] * q[i * C + j];
      for (int i = 0; i < C; i++)
        q[i * C + j] /= sqrt(nrm);
    }
    for (int j = 0; j < C; j++) {
      for (int i = 0; i < C; i++)
        q[i * C + j] *= exp(s[j]);
      lad += s[j];
    }
  }
  for (int i = 0; i < C * C; i++)
    w[i] = (float)q[i];
  free(q);
  free(r);
  return lad;
}

static double norm_inf(const float *a, int C) {
  double m = 0;
  for (int i = 0; i < C; i++) {
    double row = 0;
    for (int j = 0; j < C; j++)
      row += fabs(a[i * C + j]);
    m = fmax(m, row);
  }
  return m;
}

static void linalg_case(int kind, int C) {
  gr_graph *g = gr_graph_create();
  gr_tensor w = gr_input(g, "w", GR_SHAPE(C, C));
  gr_output(g, gr_inverse(g, w), "inv");
  gr_output(g, gr_logabsdet(g, w), "lad");
  float *m = malloc((size_t)C * C * sizeof *m);
  double exact = make_matrix(kind, C, m);
  gr_cpu *c = NULL;
  gr_plan *p = NULL;
  REQUIRE_OK(gr_cpu_create(g, &c));
  REQUIRE_OK(gr_cpu_set(c, "w", m, (int64_t)C * C));
  REQUIRE_OK(gr_cpu_run(c));
  REQUIRE_OK(gr_plan_compile(g, graph_tests_device(), NULL, &p));
  const float *inv_ref = gr_cpu_values(c, gr_find(g, "inv")), *lad_ref = gr_cpu_values(c, gr_find(g, "lad"));
  float *inv = plan_output(p, "w", m, (int64_t)C * C, "inv", (int64_t)C * C);
  float *lad = plan_output(p, NULL, NULL, 0, "lad", 1);
  if (inv && lad) {
    /* fp32 LU: errors grow like C · eps · cond. */
    double cond = norm_inf(m, C) * norm_inf(inv_ref, C), eps = 0x1p-24, big = 0, err = 0, res = 0;
    for (int i = 0; i < C * C; i++) {
      big = fmax(big, fabs(inv_ref[i]));
      err = fmax(err, fabs(inv[i] - inv_ref[i]));
    }
    for (int i = 0; i < C; i++)
      for (int j = 0; j < C; j++) {
        double d = -(i == j);
        for (int k = 0; k < C; k++)
          d += (double)m[i * C + k] * inv[k * C + j];
        res = fmax(res, fabs(d));
      }
    double tol = 2.0 * C * eps * cond;
    fprintf(stderr, "%s C=%d: cond %.3g, inverse error %.3g (tol %.3g), residual %.3g, log|det| %.6g vs %.6g "
                    "(exact %.6g)\n",
            kind ? "Q·diag(e^s)" : "R + C·I", C, cond, err / big, tol, res, lad[0], lad_ref[0], kind ? exact : NAN);
    CHECK(err <= tol * big, "inverse within %.3g x max|inv| (%.3g)", tol, err / big);
    CHECK(res <= tol, "w · inverse within %.3g of I (%.3g)", tol, res);
    CHECK(fabs(lad[0] - lad_ref[0]) <= tol + 1e-6 * fabs(lad_ref[0]), "log|det| %.7g vs %.7g", lad[0], lad_ref[0]);
    CHECK(!kind || fabs(lad_ref[0] - exact) <= 1e-5 * C, "reference log|det| %.7g vs exact %.7g", lad_ref[0], exact);
  }
  free(inv);
  free(lad);
  free(m);
  gr_plan_destroy(p);
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

TEST_CASE(linalg) {
  static const int sizes[] = {1, 3, 7, 33, 64};
  for (int kind = 0; kind < 2; kind++)
    for (int i = 0; i < 5; i++)
      linalg_case(kind, sizes[i]);
  /* A scaled, signed permutation: every step pivots; |det| = 3. */
  gr_graph *g = gr_graph_create();
  gr_tensor w = gr_const(g, "w", GR_SHAPE(3, 3), (float[]){0, -2, 0, 0, 0, 0.5f, 3, 0, 0});
  gr_output(g, gr_inverse(g, w), "inv");
  gr_output(g, gr_logabsdet(g, w), "lad");
  check_graph_free(graph_tests_device(), g, "inverse of a signed permutation", (check_opts){.lo = 0, .hi = 0, .atol = 1e-6f});
}

/* inverse and logabsdet; the flow's 1×1 convolution y = W x at every pixel (a batched
 * matmul here) with its log-determinant H·W·log|det W|. */
TEST_CASE(grad_linalg) {
  gr_graph *g = gr_graph_create();
  gr_tensor w = gr_param(g, "w", GR_SHAPE(5, 5)), x = gr_input(g, "x", GR_SHAPE(2, 5, 12));
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_inverse(g, w), "r1"));
  l = fd_join(g, l, gr_scale_shift(g, gr_logabsdet(g, w), 0.7f, 0.0f));
  l = fd_join(g, l, fd_weighted(g, gr_matmul(g, w, x, 0, 0), "r2"));
  l = fd_join(g, l, gr_scale_shift(g, gr_logabsdet(g, w), 12.0f, 0.0f));
  gr_tensor wrt[2] = {w, x};
  fd_check(g, l, 2, wrt, "inverse, logabsdet, 1x1-conv log-det", (fd_opts){.fill = fd_fill_matrix, .h = 0.05, .atol = 4e-4});
}
