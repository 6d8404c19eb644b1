/* Vector-Jacobian products of the elementwise ops (unary functions, binary functions, where)
 * and of the reductions.
 *
 * Comparisons come from `where`, whose mask is "!= 0", and relu, which is nonzero exactly
 * where its argument is > 0: relu(b - a) != 0 ⟺ b > a (the difference of two distinct
 * finite floats is never rounded to zero), so every mask below is exact.
 *
 * Subgradients at the kinks:
 * - relu, abs: 0 at x = 0. leaky_relu: 1 at x = 0 (the forward takes the x >= 0 branch).
 * - clamp(x, lo, hi): 1 strictly inside (lo, hi), 0 at and beyond the bounds.
 * - max(a, b), min(a, b): all of the gradient to the selected operand; a tie goes to a.
 * - reduce max: the gradient split evenly among the elements equal to the maximum (as
 *   PyTorch's amax): a valid subgradient, and the single argmax when there is no tie.
 * - where: nothing to the mask (piecewise constant); the gradient to the chosen branch. */
#include "vjp.h"

static gr_tensor zero(gr_graph *g) { return gr_const_scalar(g, 0.0f); }

/* The piecewise-linear functions, from masks. */
static gr_tensor nonsmooth_vjp(gr_graph *g, const gr_node *n, gr_tensor gy) {
  gr_tensor x = n->inputs[0];
  float a = n->fa[0], b = n->fa[1];
  switch ((gr_unary)n->ia[0]) {
  case GR_RELU: return gr_where(g, n->output, gy, zero(g)); /* relu(x) != 0 ⟺ x > 0 */
  case GR_LEAKY_RELU:
    return gr_where(g, gr_vjp_positive(g, gr_vjp_negate(g, x)), gr_scale_shift(g, gy, a, 0.0f), gy);
  case GR_ABS:
    return gr_where(g, gr_vjp_positive(g, x), gy,
                    gr_where(g, gr_vjp_positive(g, gr_vjp_negate(g, x)), gr_vjp_negate(g, gy), zero(g)));
  case GR_CLAMP: { /* lo < x < hi */
    gr_tensor above = gr_vjp_positive(g, gr_scale_shift(g, x, 1.0f, -a));
    gr_tensor below = gr_vjp_positive(g, gr_scale_shift(g, x, -1.0f, b));
    return gr_where(g, above, gr_where(g, below, gy, zero(g)), zero(g));
  }
  default: return 0;
  }
}

static gr_tensor unary_vjp(gr_graph *g, const gr_node *n, gr_tensor gy) {
  gr_tensor x = n->inputs[0], y = n->output;
  switch ((gr_unary)n->ia[0]) {
  case GR_IDENTITY: return gy;
  case GR_EXP: return gr_mul(g, gy, y);
  case GR_LOG: return gr_div(g, gy, x);
  case GR_TANH: return gr_mul(g, gy, gr_scale_shift(g, gr_unary_op(g, GR_SQUARE, y), -1.0f, 1.0f));
  case GR_SIGMOID: return gr_mul(g, gy, gr_mul(g, y, gr_scale_shift(g, y, -1.0f, 1.0f)));
  case GR_SILU: { /* s (1 + x (1 - s)), s = sigmoid(x) */
    gr_tensor s = gr_unary_op(g, GR_SIGMOID, x);
    gr_tensor inner = gr_scale_shift(g, gr_mul(g, x, gr_scale_shift(g, s, -1.0f, 1.0f)), 1.0f, 1.0f);
    return gr_mul(g, gy, gr_mul(g, s, inner));
  }
  case GR_SOFTPLUS: return gr_mul(g, gy, gr_unary_op(g, GR_SIGMOID, x));
  case GR_SQUARE: return gr_mul(g, gy, gr_scale_shift(g, x, 2.0f, 0.0f));
  case GR_SQRT: return gr_div(g, gr_scale_shift(g, gy, 0.5f, 0.0f), y);
  case GR_RSQRT: return gr_mul(g, gy, gr_scale_shift(g, gr_mul(g, y, gr_unary_op(g, GR_SQUARE, y)), -0.5f, 0.0f));
  case GR_NEG: return gr_vjp_negate(g, gy);
  case GR_AFFINE: return gr_scale_shift(g, gy, n->fa[0], 0.0f);
  case GR_RELU: case GR_LEAKY_RELU: case GR_ABS: case GR_CLAMP: return nonsmooth_vjp(g, n, gy);
  default: return 0;
  }
}

int gr_vjp_unary(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  return (d[0] = unary_vjp(g, n, gy)) != 0 || g->status != APS_OK;
}

int gr_vjp_binary(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  gr_tensor a = n->inputs[0], b = n->inputs[1];
  if (n->ia[0] == GR_MAX || n->ia[0] == GR_MIN) { /* b wins where b > a (max), b < a (min) */
    gr_tensor other = gr_vjp_positive(g, n->ia[0] == GR_MAX ? gr_sub(g, b, a) : gr_sub(g, a, b));
    gr_shape sa = SHAPE(a), sb = SHAPE(b); /* copies: the builders below may move g->t */
    d[0] = gr_vjp_unbroadcast(g, gr_where(g, other, zero(g), gy), sa);
    d[1] = gr_vjp_unbroadcast(g, gr_where(g, other, gy, zero(g)), sb);
    return 1;
  }
  switch ((gr_binary)n->ia[0]) {
  case GR_ADD: d[0] = gy, d[1] = gy; break;
  case GR_SUB: d[0] = gy, d[1] = gr_vjp_negate(g, gy); break;
  case GR_MUL: d[0] = gr_mul(g, gy, b), d[1] = gr_mul(g, gy, a); break;
  case GR_DIV: /* d/db (a / b) = -a / b² */
    d[0] = gr_div(g, gy, b);
    d[1] = gr_vjp_negate(g, gr_div(g, gr_mul(g, gy, a), gr_unary_op(g, GR_SQUARE, b)));
    break;
  default: return 0;
  }
  d[0] = gr_vjp_unbroadcast(g, d[0], SHAPE(a));
  d[1] = gr_vjp_unbroadcast(g, d[1], SHAPE(b));
  return 1;
}

/* Nothing to the mask. */
int gr_vjp_where(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  gr_tensor mask = n->inputs[0];
  gr_shape s1 = SHAPE(n->inputs[1]), s2 = SHAPE(n->inputs[2]); /* copies: the builders may move g->t */
  d[1] = gr_vjp_unbroadcast(g, gr_where(g, mask, gy, zero(g)), s1);
  d[2] = gr_vjp_unbroadcast(g, gr_where(g, mask, zero(g), gy), s2);
  return 1;
}

static gr_tensor reduce_vjp(gr_graph *g, const gr_node *n, gr_tensor gy) {
  gr_tensor x = n->inputs[0], y = n->output;
  gr_shape sx = SHAPE(x);
  unsigned axes = (unsigned)n->ia[1];
  int64_t count = 1;
  for (int i = 0; i < sx.rank; i++)
    if (axes & (1u << i))
      count *= sx.d[i];
  switch ((gr_reduce)n->ia[0]) {
  case GR_SUM: return gr_vjp_expand(g, gy, sx);
  case GR_MEAN: return gr_vjp_expand(g, gr_scale_shift(g, gy, 1.0f / (float)count, 0.0f), sx);
  case GR_SUMSQ: return gr_mul(g, gr_scale_shift(g, x, 2.0f, 0.0f), gy);
  case GR_VAR: { /* 2 (x - mean) / count */
    gr_tensor centred = gr_sub(g, x, gr_reduce_op(g, GR_MEAN, x, axes));
    return gr_mul(g, gr_scale_shift(g, centred, 2.0f / (float)count, 0.0f), gy);
  }
  case GR_LOGSUMEXP: return gr_mul(g, gr_unary_op(g, GR_EXP, gr_sub(g, x, y)), gy);
  case GR_RMAX: { /* at[i] = 1 where x[i] equals its maximum (y - x > 0 elsewhere), then gy / (ties) */
    gr_tensor at = gr_where(g, gr_vjp_positive(g, gr_sub(g, y, x)), zero(g), gr_const_scalar(g, 1.0f));
    gr_tensor ties = gr_reduce_op(g, GR_SUM, at, axes);
    return gr_mul(g, at, gr_div(g, gy, ties));
  }
  default: return 0;
  }
}

int gr_vjp_reduce(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  return (d[0] = reduce_vjp(g, n, gy)) != 0 || g->status != APS_OK;
}
