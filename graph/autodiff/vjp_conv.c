/* The vector-Jacobian product of conv2d: the weight gradient is its own op (gr_conv2d_wgrad),
 * the input gradient a convolution again, with the flipped kernel (gr_flip); reflect padding
 * goes through pad's VJP. */
#include "vjp.h"

/* [N, C, H, W] -> [N, C, sH, sW] with x at the multiples of s and zeros between. */
static gr_tensor zero_insert(gr_graph *g, gr_tensor x, int s) {
  if (s == 1)
    return x;
  gr_shape sh = SHAPE(x);
  int64_t nc = sh.d[0] * sh.d[1];
  gr_tensor planes = gr_reshape(g, x, GR_SHAPE(nc, 1, sh.d[2], sh.d[3]));
  gr_tensor blocks = gr_concat(g, planes, gr_vjp_filled(g, GR_SHAPE(nc, (int64_t)s * s - 1, sh.d[2], sh.d[3]), 0.0f), 1);
  blocks = gr_reshape(g, blocks, GR_SHAPE(sh.d[0], sh.d[1] * s * s, sh.d[2], sh.d[3]));
  return gr_depth_to_space(g, blocks, s);
}

/* Keeps the first `len` entries of an axis or zero-pads it to `len` at the end. */
static gr_tensor fit(gr_graph *g, gr_tensor x, int axis, int64_t front, int64_t len) {
  int64_t have = SHAPE(x).d[axis];
  int pads[4] = {0, 0, 0, 0};
  int64_t back = len - front - have;
  if (front < 0 || back < 0) {
    int64_t start = front < 0 ? -front : 0, keep = have - start + (back < 0 ? back : 0);
    x = gr_slice(g, x, axis, start, keep);
    front = front < 0 ? 0 : front;
    back = back < 0 ? 0 : back;
  }
  pads[axis == 2 ? 0 : 2] = (int)front;
  pads[axis == 2 ? 1 : 3] = (int)back;
  return front || back ? gr_pad(g, x, pads, GR_PAD_ZERO) : x;
}

/* conv2d with zero padding (any stride, dilation, groups). dW is the dedicated weight-gradient
 * op (a split-K GEMM, build_conv.c); dX is a convolution again, so it runs on the same fast
 * kernels (and oneDNN on the CPU device). */
int gr_vjp_conv2d(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  int stride = (int)n->ia[0], pad = (int)n->ia[1], dil = (int)n->ia[2], groups = (int)n->ia[3];
  if (n->ia[4] == GR_PAD_REFLECT && pad > 0) {
    /* Reflect padding: the conv of the reflect-padded input without padding; the input's
     * gradient goes back through the pad's own VJP (which folds the mirrored borders back). */
    gr_tensor xp = gr_pad(g, n->inputs[0], (const int[4]){pad, pad, pad, pad}, GR_PAD_REFLECT);
    if (g->status != APS_OK)
      return 1;
    gr_node plain = *n, padder = g->n[g->t[xp].node - 1];
    plain.inputs[0] = xp, plain.ia[1] = 0, plain.ia[4] = GR_PAD_ZERO;
    gr_tensor dpad[GR_MAX_INPUTS] = {0};
    if (!gr_vjp_conv2d(g, &plain, gy, d) || !gr_vjp_pad(g, &padder, d[0], dpad))
      return 0;
    d[0] = dpad[0];
    return 1;
  }
  if (n->ia[4] != GR_PAD_ZERO && pad > 0)
    return 0;
  /* n may point into g's node array, which the builders below can move (realloc): read it now. */
  gr_tensor x = n->inputs[0], w = n->inputs[1], bias = n->n_inputs > 2 ? n->inputs[2] : 0;
  gr_shape sx = SHAPE(x), sw = SHAPE(w);
  const gr_conv2d_desc desc = {.stride = stride, .padding = pad, .dilation = dil, .groups = groups};
  d[1] = gr_conv2d_wgrad(g, x, gy, (int)sw.d[2], (int)sw.d[3], &desc);
  /* dX: gy spread back to stride 1, then the full correlation with the flipped kernel
   * (dilated as the forward one): dX[iy] = Σ_ky up[iy + p - ky·dil], placed so that tap
   * ky' = KH-1-ky reads up at offset (KH-1)·dil - p. */
  int64_t reach_h = (sw.d[2] - 1) * dil, reach_w = (sw.d[3] - 1) * dil;
  gr_tensor up = zero_insert(g, gy, stride);
  up = fit(g, up, 2, reach_h - pad, sx.d[2] + reach_h);
  up = fit(g, up, 3, reach_w - pad, sx.d[3] + reach_w);
  /* Weights per group: [G·Og, Ig, KH, KW] -> [G·Ig, Og, KH, KW] (in and out swapped), flipped. */
  int64_t og = sw.d[0] / groups, ig = sw.d[1];
  gr_tensor wt = gr_reshape(g, w, GR_SHAPE(groups, og, ig, sw.d[2] * sw.d[3]));
  wt = gr_reshape(g, gr_permute(g, wt, (const int[4]){0, 2, 1, 3}), GR_SHAPE(groups * ig, og, sw.d[2], sw.d[3]));
  gr_tensor wf = gr_flip(g, wt, 12u); /* KH and KW */
  d[0] = gr_conv2d(g, up, wf, 0, &(gr_conv2d_desc){.dilation = dil, .groups = groups});
  if (bias) { /* the sum first: building it may move g->t, which SHAPE reads */
    gr_tensor sum = gr_reduce_op(g, GR_SUM, gy, 13u);
    d[2] = gr_reshape(g, sum, SHAPE(bias));
  }
  return 1;
}
