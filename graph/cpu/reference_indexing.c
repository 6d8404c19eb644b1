/* The CPU reference of the indexing ops: pad, the pixel shuffles, gather. */
#include <math.h>

#include "reference_ops.h"

static int64_t mirror(int64_t i, int64_t n) {
  if (i < 0)
    i = -i;
  return i >= n ? 2 * (n - 1) - i : i;
}

void gr_cpu_pad(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]), so = SHAPE(n->output);
  int64_t H = sx.d[2], W = sx.d[3], OH = so.d[2], OW = so.d[3], idx = 0;
  for (int64_t p = 0; p < so.d[0] * so.d[1]; p++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++, idx++) {
        int64_t ih = oh - n->ia[0], iw = ow - n->ia[2];
        if (n->ia[4] == GR_PAD_REFLECT)
          out[idx] = in[0][(p * H + mirror(ih, H)) * W + mirror(iw, W)];
        else
          out[idx] = ih >= 0 && ih < H && iw >= 0 && iw < W ? in[0][(p * H + ih) * W + iw] : 0.0f;
      }
}

/* Index of the space-side element [n, c, h, w] (dims C, H, W) in the depth-side tensor. */
static void shuffle(const gr_graph *g, const gr_node *n, const float *x, float *y, int to_depth) {
  gr_shape big = SHAPE(to_depth ? n->inputs[0] : n->output);
  int64_t b = n->ia[0], C = big.d[1], H = big.d[2], W = big.d[3], h2 = H / b, w2 = W / b, idx = 0;
  for (int64_t nn = 0; nn < big.d[0]; nn++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t w = 0; w < W; w++, idx++) {
          int64_t d = (((nn * C + c) * b * b + (h % b) * b + w % b) * h2 + h / b) * w2 + w / b;
          if (to_depth)
            y[d] = x[idx];
          else
            y[idx] = x[d];
        }
}

void gr_cpu_space_to_depth(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  shuffle(g, n, in[0], out, 1);
}
void gr_cpu_depth_to_space(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  shuffle(g, n, in[0], out, 0);
}

void gr_cpu_gather(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]);
  int axis = (int)n->ia[0];
  int64_t K = n->ia[1], D = sx.d[axis], inner = 1, outer = 1;
  for (int i = axis + 1; i < sx.rank; i++)
    inner *= sx.d[i];
  for (int i = 0; i < axis; i++)
    outer *= sx.d[i];
  for (int64_t o = 0; o < outer; o++)
    for (int64_t k = 0; k < K; k++) {
      /* Clamped as the shader does; NaN reads index 0. */
      float f = in[1][k] >= 1.0f ? fminf(in[1][k], (float)(D - 1)) : 0.0f;
      const float *src = in[0] + (o * D + (int64_t)f) * inner;
      float *dst = out + (o * K + k) * inner;
      for (int64_t r = 0; r < inner; r++)
        dst[r] = src[r];
    }
}
