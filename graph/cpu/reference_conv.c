/* The CPU reference of conv2d (zero or reflect padding, any stride, dilation, groups) and
 * of its weight gradient (gr_conv2d_wgrad, build_conv.c): stage 0 puts the partial sum of
 * slice s of the reduction in slot s, stage 1 sums the slots in split order. */
#include "reference_ops.h"

int64_t gr_cpu_pad_index(int64_t i, int64_t size, int reflect) {
  if (i >= 0 && i < size)
    return i;
  if (!reflect)
    return -1;
  return i < 0 ? -i : 2 * (size - 1) - i;
}

void gr_cpu_conv2d(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]), sw = SHAPE(n->inputs[1]), so = SHAPE(n->output);
  int64_t stride = n->ia[0], pad = n->ia[1], dil = n->ia[2], groups = n->ia[3];
  int reflect = n->ia[4] == GR_PAD_REFLECT;
  int64_t N = sx.d[0], C = sx.d[1], H = sx.d[2], W = sx.d[3];
  int64_t O = sw.d[0], CG = sw.d[1], KH = sw.d[2], KW = sw.d[3], OH = so.d[2], OW = so.d[3];
  int64_t OG = O / groups;
  for (int64_t b = 0; b < N; b++)
    for (int64_t o = 0; o < O; o++) {
      int64_t grp = o / OG;
      for (int64_t y = 0; y < OH; y++)
        for (int64_t x = 0; x < OW; x++) {
          double s = n->n_inputs > 2 ? in[2][o] : 0.0;
          for (int64_t c = 0; c < CG; c++)
            for (int64_t ky = 0; ky < KH; ky++) {
              int64_t iy = gr_cpu_pad_index(y * stride - pad + ky * dil, H, reflect);
              if (iy < 0)
                continue;
              for (int64_t kx = 0; kx < KW; kx++) {
                int64_t ix = gr_cpu_pad_index(x * stride - pad + kx * dil, W, reflect);
                if (ix < 0)
                  continue;
                s += (double)in[0][((b * C + grp * CG + c) * H + iy) * W + ix] *
                     in[1][((o * CG + c) * KH + ky) * KW + kx];
              }
            }
          out[((b * O + o) * OH + y) * OW + x] = (float)s;
        }
    }
}

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
