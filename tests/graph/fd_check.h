/* Gradient checks shared by the gradient tests: autodiff against finite differences on the
 * CPU reference, then the forward+backward graph on the device against the CPU.
 *
 * The finite differences are made as accurate as an fp32 reference allows:
 * - central differences at h and h/2 combined by Richardson extrapolation,
 *   (4 D(h/2) - D(h)) / 3, whose truncation error is O(h⁴) instead of O(h²);
 * - the loss (every output element, so a weighted sum is best) summed in double; each
 *   perturbation changes only the elements it reaches, and the rest cancel exactly.
 * Tolerances: |autodiff - fd| <= atol + rtol |fd| on the CPU (the worst seen is printed per
 * case), and |device - CPU| <= 1e-4 + 1e-3 |CPU| for the loss and every gradient, in fused and
 * unfused plans. */
#ifndef APS_TEST_FD_CHECK_H
#define APS_TEST_FD_CHECK_H
#include "graph.h"

typedef void (*leaf_fill)(const char *name, float *v, int64_t n, uint32_t seed);

typedef struct fd_opts {
  leaf_fill fill; /* values of every input and parameter; default uniform in [-1, 1) */
  double atol, rtol;
  double h;       /* the larger step; default 1e-2 */
  float lo, hi;   /* the default fill's range; default [-1, 1) */
  int points;     /* elements checked per tensor, spread evenly; default 64 (+ the last) */
} fd_opts;


/* d sum(loss) / d wrt[i] (each an input or parameter) by autodiff against Richardson-
 * extrapolated central differences, then on the device. Takes the graph. */
void fd_check(gr_graph *g, gr_tensor loss, int n, const gr_tensor *wrt, const char *what, fd_opts o);

/* Fills (leaf_fill) for inputs near kinks, maxima and matrices:
 * - fd_fill_away: in [-1, 1), at least 0.0375 from every multiple of 0.25 (the kinks the
 *   tests use: 0 and ±0.5), tensors named "b..." in the other half of each cell, so that
 *   a - b is at least 0.075 from 0; "mask..." tensors get 0 or 1, "seed..." an integer;
 * - fd_fill_distinct: a shuffle of n evenly spaced values in [-1, 1) (unique maxima);
 * - fd_fill_matrix: square "w" [c, c] well conditioned with det < 0, else 0.4·U(-1, 1). */
void fd_fill_away(const char *name, float *v, int64_t n, uint32_t seed);
void fd_fill_distinct(const char *name, float *v, int64_t n, uint32_t seed);
void fd_fill_matrix(const char *name, float *v, int64_t n, uint32_t seed);
/* y times a new input named rname of y's shape (a random weighting of the loss). */
gr_tensor fd_weighted(gr_graph *g, gr_tensor y, const char *rname);
/* The loss: every term flattened and concatenated (no sum in fp32 inside the graph; the
 * checker sums in double). loss 0 starts it. */
gr_tensor fd_join(gr_graph *g, gr_tensor loss, gr_tensor term);

#endif
