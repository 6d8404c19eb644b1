/* Vector-Jacobian products of matmul, softmax, the layout and resampling ops, the time
 * embedding, group norm, attention, random numbers and the small linear algebra. Random
 * numbers are a constant of their seed: nothing goes to the seed. */
#include <math.h>
#include <stdlib.h>

#include "vjp.h"

/* dA = G Bᵀ, dB = Aᵀ G, summed over broadcast batches */
int gr_vjp_matmul(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  gr_tensor a = n->inputs[0], b = n->inputs[1];
  gr_shape sa = SHAPE(a), sb = SHAPE(b); /* copies: the builders below may move g->t */
  d[0] = gr_vjp_unbroadcast(g, gr_matmul(g, gy, b, 0, 1), sa);
  d[1] = gr_vjp_unbroadcast(g, gr_matmul(g, a, gy, 1, 0), sb);
  return 1;
}

/* y (gy - Σ gy y) over the last axis */
int gr_vjp_softmax(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  gr_tensor y = n->output;
  unsigned last = 1u << (SHAPE(y).rank - 1);
  d[0] = gr_mul(g, y, gr_sub(g, gy, gr_reduce_op(g, GR_SUM, gr_mul(g, gy, y), last)));
  return 1;
}

int gr_vjp_reshape(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  d[0] = gr_reshape(g, gy, SHAPE(n->inputs[0]));
  return 1;
}

int gr_vjp_permute(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  int inv[GR_MAX_DIMS];
  for (int i = 0; i < SHAPE(gy).rank; i++)
    inv[n->ia[i]] = i;
  d[0] = gr_permute(g, gy, inv);
  return 1;
}

int gr_vjp_concat(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  int axis = (int)n->ia[0];
  int64_t la = SHAPE(n->inputs[0]).d[axis], lb = SHAPE(n->inputs[1]).d[axis];
  d[0] = gr_slice(g, gy, axis, 0, la);
  d[1] = gr_slice(g, gy, axis, la, lb);
  return 1;
}

/* Zeros around gy along axis, back to the sliced tensor's shape. */
int gr_vjp_slice(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  int axis = (int)n->ia[0];
  int64_t start = n->ia[1], len = SHAPE(gy).d[axis], full = SHAPE(n->inputs[0]).d[axis];
  gr_shape z = SHAPE(gy);
  gr_tensor r = gy;
  if (start > 0) {
    z.d[axis] = start;
    r = gr_concat(g, gr_vjp_filled(g, z, 0.0f), r, axis);
  }
  if (start + len < full) {
    z.d[axis] = full - start - len;
    r = gr_concat(g, r, gr_vjp_filled(g, z, 0.0f), axis);
  }
  d[0] = r;
  return 1;
}

/* Its own adjoint: the gradient flipped back. */
int gr_vjp_flip(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  d[0] = gr_flip(g, gy, (unsigned)n->ia[0]);
  return 1;
}

int gr_vjp_avg_pool(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  (void)n;
  d[0] = gr_scale_shift(g, gr_upsample2x(g, gy, GR_NEAREST), 0.25f, 0.0f);
  return 1;
}

/* The adjoint of 2x bilinear upsampling (half-pixel centres, edges clamped) along one axis
 * of length 2n: the forward is out[2i] = ¼ x[max(i-1, 0)] + ¾ x[i] and out[2i+1] =
 * ¾ x[i] + ¼ x[min(i+1, n-1)], so dx[i] = ¾ (g[2i] + g[2i+1]) + ¼ (g[min(2i+2, 2n-1)] +
 * g[max(2i-1, 0)]): four gathers. */
static gr_tensor bilinear_adjoint_axis(gr_graph *g, gr_tensor gy, int axis, int64_t n) {
  int32_t *idx = malloc((size_t)(4 * n) * sizeof *idx);
  if (!idx)
    return gr_error(g, "grad", "out of host memory");
  for (int64_t i = 0; i < n; i++) {
    idx[i] = (int32_t)(2 * i);
    idx[n + i] = (int32_t)(2 * i + 1);
    idx[2 * n + i] = (int32_t)(2 * i + 2 < 2 * n - 1 ? 2 * i + 2 : 2 * n - 1);
    idx[3 * n + i] = (int32_t)(2 * i - 1 > 0 ? 2 * i - 1 : 0);
  }
  gr_tensor near = gr_add(g, gr_gather(g, gy, axis, idx, n), gr_gather(g, gy, axis, idx + n, n));
  gr_tensor far = gr_add(g, gr_gather(g, gy, axis, idx + 2 * n, n), gr_gather(g, gy, axis, idx + 3 * n, n));
  free(idx);
  return gr_add(g, gr_scale_shift(g, near, 0.75f, 0.0f), gr_scale_shift(g, far, 0.25f, 0.0f));
}

int gr_vjp_upsample(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  if (n->ia[0] == GR_NEAREST) {
    d[0] = gr_scale_shift(g, gr_avg_pool2x(g, gy), 4.0f, 0.0f);
    return 1;
  }
  if (n->ia[0] != GR_BILINEAR)
    return 0;
  gr_shape sx = SHAPE(n->inputs[0]);
  d[0] = bilinear_adjoint_axis(g, bilinear_adjoint_axis(g, gy, 3, sx.d[3]), 2, sx.d[2]);
  return 1;
}

/* t -> [sin(t f), cos(t f)]: d/dt = Σ f (gy_sin · cos - gy_cos · sin). */
int gr_vjp_time_embed(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  int64_t N = SHAPE(n->inputs[0]).d[0], half = n->ia[0] / 2;
  float *f = malloc((size_t)half * sizeof *f);
  if (!f) {
    gr_error(g, "grad", "out of host memory"); /* the graph's status says so */
    return 1;
  }
  for (int64_t i = 0; i < half; i++)
    f[i] = (float)exp(-log((double)n->fa[0]) * (double)i / (double)half);
  gr_tensor freq = gr_const(g, NULL, GR_SHAPE(half), f);
  free(f);
  gr_tensor y = n->output;
  gr_tensor s = gr_slice(g, y, 1, 0, half), c = gr_slice(g, y, 1, half, half);
  gr_tensor gs = gr_slice(g, gy, 1, 0, half), gc = gr_slice(g, gy, 1, half, half);
  gr_tensor dt = gr_mul(g, gr_sub(g, gr_mul(g, gs, c), gr_mul(g, gc, s)), freq);
  d[0] = gr_reshape(g, gr_reduce_op(g, GR_SUM, dt, 2u), GR_SHAPE(N));
  return 1;
}

/* [C] viewed so it broadcasts along dimension 1 of a rank-r tensor. */
static gr_tensor channel_view(gr_graph *g, gr_tensor v, int rank) {
  int64_t c = SHAPE(v).d[0];
  gr_shape s = {.rank = rank};
  for (int i = 0; i < rank; i++)
    s.d[i] = i == 1 ? c : 1;
  return gr_reshape(g, v, s);
}

/* Group norm from its statistics, recomputed: dx = rstd (g' - mean g' - x̂ mean(g' x̂))
 * per group, g' = gy γ; dγ = Σ gy x̂, dβ = Σ gy over all but the channel axis. */
int gr_vjp_group_norm(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  gr_tensor x = n->inputs[0];
  gr_shape sx = SHAPE(x);
  int64_t groups = n->ia[0], m = gr_shape_count(sx) / (sx.d[0] * groups);
  int has_gamma = (int)n->ia[1], has_beta = (int)n->ia[2];
  gr_shape grouped = GR_SHAPE(sx.d[0], groups, m);
  gr_tensor xr = gr_reshape(g, x, grouped);
  gr_tensor rstd = gr_unary_op(g, GR_RSQRT, gr_scale_shift(g, gr_reduce_op(g, GR_VAR, xr, 4u), 1.0f, n->fa[0]));
  gr_tensor xhat = gr_mul(g, gr_sub(g, xr, gr_reduce_op(g, GR_MEAN, xr, 4u)), rstd);
  gr_tensor gp = has_gamma ? gr_mul(g, gy, channel_view(g, n->inputs[1], sx.rank)) : gy;
  gr_tensor gr = gr_reshape(g, gp, grouped);
  gr_tensor inner = gr_sub(g, gr_sub(g, gr, gr_reduce_op(g, GR_MEAN, gr, 4u)),
                           gr_mul(g, xhat, gr_reduce_op(g, GR_MEAN, gr_mul(g, gr, xhat), 4u)));
  d[0] = gr_reshape(g, gr_mul(g, inner, rstd), sx);
  unsigned not_channel = ((1u << sx.rank) - 1) & ~2u;
  if (has_gamma)
    d[1] = gr_reshape(g, gr_reduce_op(g, GR_SUM, gr_mul(g, gy, gr_reshape(g, xhat, sx)), not_channel),
                      GR_SHAPE(sx.d[1]));
  if (has_beta)
    d[1 + has_gamma] = gr_reshape(g, gr_reduce_op(g, GR_SUM, gy, not_channel), GR_SHAPE(sx.d[1]));
  return 1;
}

/* Attention from its parts: S = qᵀk·scale, P = softmax(S), O = v Pᵀ. */
int gr_vjp_attention(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  gr_tensor qkv = n->inputs[0];
  int64_t c = SHAPE(gy).d[1];
  float scale = 1.0f / sqrtf((float)c);
  gr_tensor q = gr_slice(g, qkv, 1, 0, c), k = gr_slice(g, qkv, 1, c, c), v = gr_slice(g, qkv, 1, 2 * c, c);
  gr_tensor p = gr_softmax(g, gr_scale_shift(g, gr_matmul(g, q, k, 1, 0), scale, 0.0f));
  gr_tensor dv = gr_matmul(g, gy, p, 0, 0);
  gr_tensor dp = gr_matmul(g, gy, v, 1, 0);
  gr_tensor ds = gr_mul(g, p, gr_sub(g, dp, gr_reduce_op(g, GR_SUM, gr_mul(g, dp, p), 4u)));
  gr_tensor dq = gr_scale_shift(g, gr_matmul(g, k, ds, 0, 1), scale, 0.0f);
  gr_tensor dk = gr_scale_shift(g, gr_matmul(g, q, ds, 0, 0), scale, 0.0f);
  d[0] = gr_concat(g, gr_concat(g, dq, dk, 1), dv, 1);
  return 1;
}

int gr_vjp_random(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  (void)g, (void)n, (void)gy, (void)d;
  return 1; /* a constant of its seed */
}

/* y = w⁻¹: dw = -yᵀ gy yᵀ */
int gr_vjp_inverse(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  gr_tensor y = n->output;
  d[0] = gr_vjp_negate(g, gr_matmul(g, gr_matmul(g, y, gy, 1, 0), y, 0, 1));
  return 1;
}

/* d log|det w| / dw = w⁻ᵀ; nothing to the LU input */
int gr_vjp_logabsdet(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  const int swap[2] = {1, 0};
  d[0] = gr_mul(g, gr_permute(g, gr_inverse(g, n->inputs[0]), swap), gy);
  return 1;
}
