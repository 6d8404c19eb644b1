/* The helpers that the VJPs of every op family share. */
#include <stdlib.h>
#include <string.h>

#include "vjp.h"

gr_tensor gr_vjp_filled(gr_graph *g, gr_shape s, float value) {
  int64_t n = gr_shape_count(s);
  float *v = malloc((size_t)n * sizeof *v);
  if (!v)
    return gr_error(g, "grad", "out of host memory");
  for (int64_t i = 0; i < n; i++)
    v[i] = value;
  gr_tensor t = gr_const(g, NULL, s, v);
  free(v);
  return t;
}

/* Undoes numpy broadcasting: sums over the axes that `to` has as 1 (or lacks). */
gr_tensor gr_vjp_unbroadcast(gr_graph *g, gr_tensor grad, gr_shape to) {
  if (!grad)
    return 0;
  gr_shape from = SHAPE(grad);
  if (from.rank == to.rank && !memcmp(from.d, to.d, sizeof(int64_t) * (size_t)to.rank))
    return grad;
  unsigned axes = 0;
  for (int i = 0; i < from.rank; i++) {
    int j = i - (from.rank - to.rank);
    if ((j < 0 || to.d[j] == 1) && from.d[i] != 1)
      axes |= 1u << i;
  }
  return gr_reshape(g, axes ? gr_reduce_op(g, GR_SUM, grad, axes) : grad, to);
}

gr_tensor gr_vjp_expand(gr_graph *g, gr_tensor x, gr_shape to) { return gr_add(g, gr_vjp_filled(g, to, 0.0f), x); }

gr_tensor gr_vjp_negate(gr_graph *g, gr_tensor x) { return gr_scale_shift(g, x, -1.0f, 0.0f); }

gr_tensor gr_vjp_positive(gr_graph *g, gr_tensor x) { return gr_unary_op(g, GR_RELU, x); }
