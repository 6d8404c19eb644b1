/* The conv2d weight gradient (gr_conv2d_wgrad): builder, CPU reference, CPU device.
 * It is a GEMM per group: dW[o, j] = Σ_k gy[o, k] · X_col[k, j] with the reduction k = (n, oy,
 * ox) over N·OH·OW and j = (c, ky, kx). The reduction is split into `splits` slices of `chunk`
 * products (a multiple of 8) so that big GPUs get parallelism beyond the O × Ig·KH·KW tiles:
 * - stage 0 node, inputs {x, gy}: partial sums [splits, O, Ig, KH·KW], one per slice;
 * - stage 1 node, input {partials}: their sum [O, Ig, KH, KW] (left out when splits == 1).
 * The split depends on shapes alone. Only the sum over the slots is defined: the reference
 * and Vulkan put slice s in slot s; the CPU device puts the whole sum in slot 0.
 * Attributes: ia[0..3] stride, padding, dilation, groups; ia[4], ia[5] KH, KW; ia[6] splits;
 * ia[7] chunk; ia[8] stage. Neither node has a VJP (no second derivatives). */
#include <stdlib.h>
#include <string.h>

#include "cpu_dnnl.h"
#include "cpu_ops.h"

#define SHAPE_STR(s) gr_shape_str((s), (char[64]){0}, 64)
#define SHAPE(t) (gr_t(g, (t))->shape)

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

/* ---- the reference */

typedef struct wgrad_dims {
  int64_t N, C, H, W, O, OH, OW, KH, KW, stride, pad, dil, groups, splits, chunk, Og, Ig, P, K, NC;
} wgrad_dims;

static wgrad_dims dims_of(const gr_graph *g, const gr_node *n) {
  gr_shape sx = SHAPE(n->inputs[0]), sg = SHAPE(n->inputs[1]);
  int64_t groups = n->ia[3], P = sg.d[2] * sg.d[3];
  return (wgrad_dims){.N = sx.d[0], .C = sx.d[1], .H = sx.d[2], .W = sx.d[3], .O = sg.d[1], .OH = sg.d[2],
                      .OW = sg.d[3], .KH = n->ia[4], .KW = n->ia[5], .stride = n->ia[0], .pad = n->ia[1],
                      .dil = n->ia[2], .groups = groups, .splits = n->ia[6], .chunk = n->ia[7],
                      .Og = sg.d[1] / groups, .Ig = sx.d[1] / groups, .P = P, .K = sx.d[0] * P,
                      .NC = sx.d[1] / groups * n->ia[4] * n->ia[5]};
}

/* Stage 1: the sum of the partial sums, in split order. */
static void sum_splits(const gr_graph *g, const gr_node *n, const float *part, float *out) {
  int64_t count = gr_shape_count(SHAPE(n->output)), splits = n->ia[6];
  for (int64_t i = 0; i < count; i++) {
    double s = 0;
    for (int64_t k = 0; k < splits; k++)
      s += part[k * count + i];
    out[i] = (float)s;
  }
}

void gr_cpu_conv2d_wgrad(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  if (n->ia[8]) {
    sum_splits(g, n, in[0], out);
    return;
  }
  wgrad_dims d = dims_of(g, n);
  const float *x = in[0], *gy = in[1];
  for (int64_t s = 0; s < d.splits; s++) {
    int64_t k0 = s * d.chunk, k1 = k0 + d.chunk < d.K ? k0 + d.chunk : d.K;
    for (int64_t o = 0; o < d.O; o++) {
      int64_t grp = o / d.Og;
      for (int64_t c = 0; c < d.Ig; c++)
        for (int64_t ky = 0; ky < d.KH; ky++)
          for (int64_t kx = 0; kx < d.KW; kx++) {
            double acc = 0;
            for (int64_t k = k0; k < k1; k++) {
              int64_t b = k / d.P, p = k % d.P, oy = p / d.OW, ox = p % d.OW;
              int64_t iy = oy * d.stride + ky * d.dil - d.pad, ix = ox * d.stride + kx * d.dil - d.pad;
              if (iy < 0 || iy >= d.H || ix < 0 || ix >= d.W)
                continue;
              acc += (double)gy[(b * d.O + o) * d.P + p] * x[((b * d.C + grp * d.Ig + c) * d.H + iy) * d.W + ix];
            }
            out[((s * d.O + o) * d.Ig + c) * d.KH * d.KW + ky * d.KW + kx] = (float)acc;
          }
    }
  }
}

/* ---- the CPU device: stage 0 runs in oneDNN (cpu_dnnl.c: backward-weights convolution over
 * the whole batch, the sum in slot 0 and zeros in the others); stage 1 here, in parallel. */
void gr_fast_conv2d_wgrad(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  if (!n->ia[8]) { /* oneDNN did not take it */
    gr_cpu_conv2d_wgrad(g, n, in, out);
    return;
  }
  int64_t count = gr_shape_count(SHAPE(n->output)), splits = n->ia[6];
#pragma omp parallel for schedule(static) if (count * splits >= 65536)
  for (int64_t i = 0; i < count; i++) {
    float s = 0;
    for (int64_t k = 0; k < splits; k++)
      s += in[0][k * count + i];
    out[i] = s;
  }
}
