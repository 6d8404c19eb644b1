/* The CPU reference of the elementwise, reduction, matmul, normalisation, layout,
 * resampling, time embedding and attention ops: plain, readable loops, double accumulators
 * where a sum is long. These are the oracle of the tests, not the fast CPU device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reference_ops.h"

void gr_cpu_unary(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int64_t count = gr_shape_count(SHAPE(n->output));
  for (int64_t i = 0; i < count; i++)
    out[i] = gr_unary_eval((gr_unary)n->ia[0], in[0][i], n->fa[0], n->fa[1]);
}

/* Visits every output index of a 4-D broadcast with up to three operands. */
static void broadcast3(const gr_graph *g, const gr_node *n, const float *const *in, float *out, int arity) {
  gr_shape so = SHAPE(n->output);
  int64_t o[4], st[3][4];
  gr_shape4(so, o);
  for (int k = 0; k < arity; k++)
    gr_bcast_strides(SHAPE(n->inputs[k]), so, st[k]);
  int64_t idx = 0;
  for (int64_t a = 0; a < o[0]; a++)
    for (int64_t b = 0; b < o[1]; b++)
      for (int64_t c = 0; c < o[2]; c++)
        for (int64_t d = 0; d < o[3]; d++, idx++) {
          float v[3];
          for (int k = 0; k < arity; k++)
            v[k] = in[k][a * st[k][0] + b * st[k][1] + c * st[k][2] + d * st[k][3]];
          out[idx] = arity == 2 ? gr_binary_eval((gr_binary)n->ia[0], v[0], v[1]) : (v[0] != 0.0f ? v[1] : v[2]);
        }
}

void gr_cpu_binary(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  broadcast3(g, n, in, out, 2);
}

void gr_cpu_where(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  broadcast3(g, n, in, out, 3);
}

void gr_cpu_reduce(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]);
  int64_t d[4], st[4], inner = 1;
  gr_shape4(sx, d);
  unsigned axes = (unsigned)n->ia[1] << (4 - sx.rank); /* mask in 4-D positions */
  for (int i = 3; i >= 0; i--) {
    st[i] = inner;
    inner *= d[i];
  }
  int64_t r[4], o[4], count = 1; /* reduced extents and kept extents */
  for (int i = 0; i < 4; i++) {
    r[i] = axes & (1u << i) ? d[i] : 1;
    o[i] = axes & (1u << i) ? 1 : d[i];
    count *= r[i];
  }
  gr_reduce f = (gr_reduce)n->ia[0];
  int64_t idx = 0;
  for (int64_t a = 0; a < o[0]; a++)
    for (int64_t b = 0; b < o[1]; b++)
      for (int64_t c = 0; c < o[2]; c++)
        for (int64_t e = 0; e < o[3]; e++, idx++) {
          double s = 0, s2 = 0, se = 0, mx = -INFINITY;
          const float *base = in[0] + a * st[0] + b * st[1] + c * st[2] + e * st[3];
          for (int pass = 0; pass < (f == GR_LOGSUMEXP ? 2 : 1); pass++)
            for (int64_t i = 0; i < r[0]; i++)
              for (int64_t j = 0; j < r[1]; j++)
                for (int64_t k = 0; k < r[2]; k++)
                  for (int64_t l = 0; l < r[3]; l++) {
                    double v = base[i * st[0] + j * st[1] + k * st[2] + l * st[3]];
                    if (pass == 0) {
                      s += v;
                      s2 += v * v;
                      mx = v > mx ? v : mx;
                    } else {
                      se += exp(v - mx);
                    }
                  }
          double mean = s / (double)count;
          switch (f) {
          case GR_SUM: out[idx] = (float)s; break;
          case GR_MEAN: out[idx] = (float)mean; break;
          case GR_VAR: out[idx] = (float)fmax(s2 / (double)count - mean * mean, 0.0); break;
          case GR_RMAX: out[idx] = (float)mx; break;
          case GR_SUMSQ: out[idx] = (float)s2; break;
          case GR_LOGSUMEXP: out[idx] = (float)(mx + log(se)); break;
          default: out[idx] = NAN;
          }
        }
}

void gr_cpu_matmul(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sa = SHAPE(n->inputs[0]), sb = SHAPE(n->inputs[1]), so = SHAPE(n->output);
  int64_t m = so.d[so.rank - 2], nn = so.d[so.rank - 1], k = sa.d[sa.rank - 1];
  /* Batch strides with broadcasting over the (up to two) leading dimensions. */
  int64_t o4[4], a4[4], b4[4];
  gr_shape4(so, o4);
  gr_shape4(sa, a4);
  gr_shape4(sb, b4);
  int64_t amat = a4[2] * a4[3], bmat = b4[2] * b4[3];
  for (int64_t p = 0; p < o4[0]; p++)
    for (int64_t q = 0; q < o4[1]; q++) {
      const float *A = in[0] + ((a4[0] == 1 ? 0 : p) * a4[1] + (a4[1] == 1 ? 0 : q)) * amat;
      const float *B = in[1] + ((b4[0] == 1 ? 0 : p) * b4[1] + (b4[1] == 1 ? 0 : q)) * bmat;
      float *C = out + (p * o4[1] + q) * m * nn;
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < nn; j++) {
          double s = 0;
          for (int64_t l = 0; l < k; l++)
            s += (double)A[i * k + l] * B[l * nn + j];
          C[i * nn + j] = (float)s;
        }
    }
}

void gr_cpu_group_norm(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape s = SHAPE(n->output);
  int64_t N = s.d[0], C = s.d[1], groups = n->ia[0], spatial = gr_shape_count(s) / (N * C), cg = C / groups;
  const float *gamma = n->ia[1] ? in[1] : NULL, *beta = n->ia[2] ? in[1 + (n->ia[1] != 0)] : NULL;
  for (int64_t b = 0; b < N; b++)
    for (int64_t grp = 0; grp < groups; grp++) {
      const float *x = in[0] + (b * C + grp * cg) * spatial;
      float *y = out + (b * C + grp * cg) * spatial;
      int64_t count = cg * spatial;
      double sum = 0, sq = 0;
      for (int64_t i = 0; i < count; i++)
        sum += x[i];
      double mean = sum / (double)count;
      for (int64_t i = 0; i < count; i++)
        sq += (x[i] - mean) * (x[i] - mean);
      double inv = 1.0 / sqrt(sq / (double)count + n->fa[0]);
      for (int64_t c = 0; c < cg; c++) {
        int64_t ch = grp * cg + c;
        double ga = gamma ? gamma[ch] : 1.0, be = beta ? beta[ch] : 0.0;
        for (int64_t i = 0; i < spatial; i++)
          y[c * spatial + i] = (float)((x[c * spatial + i] - mean) * inv * ga + be);
      }
    }
}

void gr_cpu_softmax(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape s = SHAPE(n->output);
  int64_t cols = s.d[s.rank - 1], rows = gr_shape_count(s) / cols;
  for (int64_t r = 0; r < rows; r++) {
    const float *x = in[0] + r * cols;
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < cols; i++)
      mx = x[i] > mx ? x[i] : mx;
    for (int64_t i = 0; i < cols; i++)
      sum += exp(x[i] - mx);
    for (int64_t i = 0; i < cols; i++)
      out[r * cols + i] = (float)(exp(x[i] - mx) / sum);
  }
}

void gr_cpu_reshape(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  memcpy(out, in[0], (size_t)gr_shape_count(SHAPE(n->output)) * sizeof(float));
}

void gr_cpu_permute(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]), so = SHAPE(n->output);
  int r = sx.rank;
  int64_t xs[4], idx[4] = {0};
  int64_t acc = 1;
  for (int i = r - 1; i >= 0; i--) {
    xs[i] = acc;
    acc *= sx.d[i];
  }
  int64_t count = gr_shape_count(so);
  for (int64_t o = 0; o < count; o++) {
    int64_t rem = o, src = 0;
    for (int i = r - 1; i >= 0; i--) {
      idx[i] = rem % so.d[i];
      rem /= so.d[i];
    }
    for (int i = 0; i < r; i++)
      src += idx[i] * xs[n->ia[i]];
    out[o] = in[0][src];
  }
}

/* Outer × axis × inner views for concat and slice. */
static void split_at(gr_shape s, int axis, int64_t *outer, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; i++)
    *outer *= s.d[i];
  for (int i = axis + 1; i < s.rank; i++)
    *inner *= s.d[i];
}

void gr_cpu_concat(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int axis = (int)n->ia[0];
  int64_t outer, inner, la = SHAPE(n->inputs[0]).d[axis], lb = SHAPE(n->inputs[1]).d[axis];
  split_at(SHAPE(n->output), axis, &outer, &inner);
  for (int64_t o = 0; o < outer; o++) {
    memcpy(out + o * (la + lb) * inner, in[0] + o * la * inner, (size_t)(la * inner) * sizeof(float));
    memcpy(out + (o * (la + lb) + la) * inner, in[1] + o * lb * inner, (size_t)(lb * inner) * sizeof(float));
  }
}

void gr_cpu_slice(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int axis = (int)n->ia[0];
  int64_t outer, inner, start = n->ia[1], len = SHAPE(n->output).d[axis], full = SHAPE(n->inputs[0]).d[axis];
  split_at(SHAPE(n->output), axis, &outer, &inner);
  for (int64_t o = 0; o < outer; o++)
    memcpy(out + o * len * inner, in[0] + (o * full + start) * inner, (size_t)(len * inner) * sizeof(float));
}

/* Each output index reads the input index mirrored along the flipped axes (ia[0]). */
void gr_cpu_flip(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape s = SHAPE(n->output);
  int64_t count = gr_shape_count(s), idx[GR_MAX_DIMS];
  for (int64_t o = 0; o < count; o++) {
    int64_t rem = o, src = 0;
    for (int i = s.rank - 1; i >= 0; i--) {
      idx[i] = rem % s.d[i];
      rem /= s.d[i];
    }
    for (int i = 0; i < s.rank; i++)
      src = src * s.d[i] + (n->ia[0] >> i & 1 ? s.d[i] - 1 - idx[i] : idx[i]);
    out[o] = in[0][src];
  }
}

void gr_cpu_upsample(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]);
  int64_t planes = sx.d[0] * sx.d[1], H = sx.d[2], W = sx.d[3];
  for (int64_t p = 0; p < planes; p++)
    for (int64_t y = 0; y < 2 * H; y++)
      for (int64_t x = 0; x < 2 * W; x++) {
        const float *src = in[0] + p * H * W;
        float v;
        if (n->ia[0] == GR_NEAREST) {
          v = src[(y / 2) * W + x / 2];
        } else { /* bilinear, half-pixel centres, edges clamped (align_corners=False) */
          double fy = (y + 0.5) / 2 - 0.5, fx = (x + 0.5) / 2 - 0.5;
          fy = fy < 0 ? 0 : fy;
          fx = fx < 0 ? 0 : fx;
          int64_t y0 = (int64_t)fy, x0 = (int64_t)fx;
          int64_t y1 = y0 + 1 < H ? y0 + 1 : H - 1, x1 = x0 + 1 < W ? x0 + 1 : W - 1;
          double wy = fy - y0, wx = fx - x0;
          v = (float)((1 - wy) * ((1 - wx) * src[y0 * W + x0] + wx * src[y0 * W + x1]) +
                      wy * ((1 - wx) * src[y1 * W + x0] + wx * src[y1 * W + x1]));
        }
        out[(p * 2 * H + y) * 2 * W + x] = v;
      }
}

void gr_cpu_avg_pool(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape so = SHAPE(n->output);
  int64_t planes = so.d[0] * so.d[1], H = so.d[2], W = so.d[3];
  for (int64_t p = 0; p < planes; p++)
    for (int64_t y = 0; y < H; y++)
      for (int64_t x = 0; x < W; x++) {
        const float *src = in[0] + p * 4 * H * W;
        out[(p * H + y) * W + x] = 0.25f * (src[(2 * y) * 2 * W + 2 * x] + src[(2 * y) * 2 * W + 2 * x + 1] +
                                            src[(2 * y + 1) * 2 * W + 2 * x] + src[(2 * y + 1) * 2 * W + 2 * x + 1]);
      }
}

void gr_cpu_time_embed(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int64_t N = SHAPE(n->inputs[0]).d[0], dim = n->ia[0], half = dim / 2;
  for (int64_t b = 0; b < N; b++)
    for (int64_t i = 0; i < half; i++) {
      double f = exp(-log((double)n->fa[0]) * (double)i / (double)half);
      out[b * dim + i] = (float)sin(in[0][b] * f);
      out[b * dim + half + i] = (float)cos(in[0][b] * f);
    }
}

void gr_cpu_attention(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape s = SHAPE(n->output);
  int64_t N = s.d[0], C = s.d[1], L = s.d[2];
  double *p = malloc((size_t)L * sizeof *p);
  if (!p)
    return;
  for (int64_t b = 0; b < N; b++) {
    const float *q = in[0] + b * 3 * C * L, *k = q + C * L, *v = k + C * L;
    for (int64_t i = 0; i < L; i++) {
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < L; j++) {
        double d = 0;
        for (int64_t c = 0; c < C; c++)
          d += (double)q[c * L + i] * k[c * L + j];
        p[j] = d / sqrt((double)C);
        mx = p[j] > mx ? p[j] : mx;
      }
      for (int64_t j = 0; j < L; j++)
        sum += (p[j] = exp(p[j] - mx));
      for (int64_t c = 0; c < C; c++) {
        double o = 0;
        for (int64_t j = 0; j < L; j++)
          o += p[j] * v[c * L + j];
        out[(b * C + c) * L + i] = (float)(o / sum);
      }
    }
  }
  free(p);
}

/* The value; the interpreters then also write it into the target (gr_cpu_effects). */
void gr_cpu_assign(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  memcpy(out, in[1], (size_t)gr_shape_count(SHAPE(n->output)) * sizeof(float));
}

/* Targets are leaves with their own arrays; a reshape of the target made before the
 * assignment keeps the old values, as its copy was taken. */
void gr_cpu_effects(const gr_graph *g, const gr_node *n, float *const *v) {
  if (n->op == GR_OP_ASSIGN)
    memcpy(v[n->inputs[0]], v[n->output], (size_t)gr_shape_count(SHAPE(n->output)) * sizeof(float));
}
