/* Builders of conv2d (ia[0..4] = stride, padding, dilation, groups, pad mode) and of its
 * weight gradient (gr_conv2d_wgrad), which is a GEMM per group: dW[o, j] = Σ_k gy[o, k] ·
 * X_col[k, j] with the reduction k = (n, oy, ox) over N·OH·OW and j = (c, ky, kx). The
 * reduction is split into `splits` slices of `chunk` products (a multiple of 8) so that big
 * GPUs get parallelism beyond the O × Ig·KH·KW tiles:
 * - stage 0 node, inputs {x, gy}: partial sums [splits, O, Ig, KH·KW], one per slice;
 * - stage 1 node, input {partials}: their sum [O, Ig, KH, KW] (left out when splits == 1).
 * The split depends on shapes alone. Only the sum over the slots is defined: the reference
 * and Vulkan put slice s in slot s; the CPU device puts the whole sum in slot 0.
 * Attributes: ia[0..3] stride, padding, dilation, groups; ia[4], ia[5] KH, KW; ia[6] splits;
 * ia[7] chunk; ia[8] stage. Neither node has a VJP (no second derivatives). */
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

gr_tensor gr_conv2d(gr_graph *g, gr_tensor x, gr_tensor w, gr_tensor bias, const gr_conv2d_desc *d) {
  static const gr_conv2d_desc defaults = {0};
  if (!d)
    d = &defaults;
  gr_tensor in[3] = {x, w, bias};
  int n_in = bias ? 3 : 2;
  if (!gr_ok(g, n_in, in))
    return 0;
  gr_shape sx = gr_t(g, x)->shape, sw = gr_t(g, w)->shape;
  int stride = d->stride ? d->stride : 1, pad = d->padding, dil = d->dilation ? d->dilation : 1;
  int groups = d->groups ? d->groups : 1;
  if (sx.rank != 4 || sw.rank != 4)
    return gr_error(g, "conv2d", "input %s and weight %s must be 4-D (NCHW, OCHW)", SHAPE_STR(sx), SHAPE_STR(sw));
  if (stride < 1 || pad < 0 || dil < 1 || groups < 1 || sx.d[1] % groups || sw.d[0] % groups)
    return gr_error(g, "conv2d", "stride %d, padding %d, dilation %d, groups %d do not fit input %s, weight %s", stride,
                    pad, dil, groups, SHAPE_STR(sx), SHAPE_STR(sw));
  if (sw.d[1] * groups != sx.d[1])
    return gr_error(g, "conv2d", "input %s has %lld channels but weight %s expects %lld (groups %d)", SHAPE_STR(sx),
                    (long long)sx.d[1], SHAPE_STR(sw), (long long)(sw.d[1] * groups), groups);
  if (d->pad_mode == GR_PAD_REFLECT && (pad >= sx.d[2] || pad >= sx.d[3]))
    return gr_error(g, "conv2d", "reflect padding %d needs an input larger than %s", pad, SHAPE_STR(sx));
  if (bias) {
    gr_shape sb = gr_t(g, bias)->shape;
    if (sb.rank != 1 || sb.d[0] != sw.d[0])
      return gr_error(g, "conv2d", "bias %s must be [%lld]", SHAPE_STR(sb), (long long)sw.d[0]);
  }
  int64_t oh = (sx.d[2] + 2 * pad - dil * (sw.d[2] - 1) - 1) / stride + 1;
  int64_t ow = (sx.d[3] + 2 * pad - dil * (sw.d[3] - 1) - 1) / stride + 1;
  if (oh < 1 || ow < 1)
    return gr_error(g, "conv2d", "kernel %s does not fit input %s", SHAPE_STR(sw), SHAPE_STR(sx));
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_CONV2D, "conv2d", n_in, in, GR_SHAPE(sx.d[0], sw.d[0], oh, ow), &n);
  if (y) {
    n->ia[0] = stride;
    n->ia[1] = pad;
    n->ia[2] = dil;
    n->ia[3] = groups;
    n->ia[4] = d->pad_mode;
  }
  return y;
}

/* About 2048 products per slice, at most 32 slices (lavapipe needs a few, an H200 more; the
 * partial sums cost splits × |dW| floats). */
static void wgrad_split(int64_t k, int64_t *splits, int64_t *chunk) {
  int64_t s = k / 2048;
  s = s < 1 ? 1 : s > 32 ? 32 : s;
  int64_t c = (k + s - 1) / s;
  c = (c + 7) / 8 * 8;
  *chunk = c;
  *splits = (k + c - 1) / c;
}

gr_tensor gr_conv2d_wgrad(gr_graph *g, gr_tensor x, gr_tensor gy, int kh, int kw, const gr_conv2d_desc *d) {
  static const gr_conv2d_desc defaults = {0};
  if (!d)
    d = &defaults;
  gr_tensor in[2] = {x, gy};
  if (!gr_ok(g, 2, in))
    return 0;
  gr_shape sx = SHAPE(x), sg = SHAPE(gy);
  int stride = d->stride ? d->stride : 1, pad = d->padding, dil = d->dilation ? d->dilation : 1;
  int groups = d->groups ? d->groups : 1;
  if (sx.rank != 4 || sg.rank != 4)
    return gr_error(g, "conv2d_wgrad", "input %s and output gradient %s must be 4-D (NCHW)", SHAPE_STR(sx),
                    SHAPE_STR(sg));
  if (d->pad_mode != GR_PAD_ZERO)
    return gr_error(g, "conv2d_wgrad", "only zero padding is supported (pad mode %d)", (int)d->pad_mode);
  if (kh < 1 || kw < 1 || stride < 1 || pad < 0 || dil < 1 || groups < 1 || sx.d[1] % groups || sg.d[1] % groups)
    return gr_error(g, "conv2d_wgrad",
                    "kernel %dx%d, stride %d, padding %d, dilation %d, groups %d do not fit input %s, output gradient %s",
                    kh, kw, stride, pad, dil, groups, SHAPE_STR(sx), SHAPE_STR(sg));
  int64_t oh = (sx.d[2] + 2 * pad - (int64_t)dil * (kh - 1) - 1) / stride + 1;
  int64_t ow = (sx.d[3] + 2 * pad - (int64_t)dil * (kw - 1) - 1) / stride + 1;
  if (sg.d[0] != sx.d[0] || oh < 1 || ow < 1 || sg.d[2] != oh || sg.d[3] != ow)
    return gr_error(g, "conv2d_wgrad",
                    "output gradient %s does not match input %s with a %dx%d kernel (expected [%lld, O, %lld, %lld])",
                    SHAPE_STR(sg), SHAPE_STR(sx), kh, kw, (long long)sx.d[0], (long long)oh, (long long)ow);
  int64_t k = sx.d[0] * oh * ow, O = sg.d[1], ig = sx.d[1] / groups, splits, chunk;
  if (k >= (1ll << 31) || gr_shape_count(sx) >= (1ll << 31) || gr_shape_count(sg) >= (1ll << 31))
    return gr_error(g, "conv2d_wgrad", "input %s or output gradient %s has 2^31 elements or more", SHAPE_STR(sx),
                    SHAPE_STR(sg));
  wgrad_split(k, &splits, &chunk);
  gr_node *n;
  gr_tensor part = gr_node_add(g, GR_OP_CONV2D_WGRAD, "conv2d_wgrad", 2, in, GR_SHAPE(splits, O, ig, (int64_t)kh * kw), &n);
  if (!part)
    return 0;
  const int64_t attrs[9] = {stride, pad, dil, groups, kh, kw, splits, chunk, 0};
  memcpy(n->ia, attrs, sizeof attrs);
  gr_shape dw = GR_SHAPE(O, ig, kh, kw);
  if (splits == 1)
    return gr_reshape(g, part, dw);
  gr_tensor y = gr_node_add(g, GR_OP_CONV2D_WGRAD, "conv2d_wgrad_sum", 1, &part, dw, &n);
  if (y) {
    memcpy(n->ia, attrs, sizeof attrs);
    n->ia[8] = 1;
  }
  return y;
}
