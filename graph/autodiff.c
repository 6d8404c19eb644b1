/* Reverse-mode autodiff on the IR: each op's vector-Jacobian product is itself built from
 * graph ops, so gradients run wherever the forward graph runs (Vulkan plan, CPU reference,
 * CPU device) and are checked by the same tests. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

static gr_shape shape_of(gr_graph *g, gr_tensor t) { return gr_t(g, t)->shape; }

static gr_tensor filled(gr_graph *g, gr_shape s, float value) {
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

/* Sums a gradient down to `to`, undoing numpy broadcasting (graph_internal.h). */
gr_tensor gr_grad_unbroadcast(gr_graph *g, gr_tensor grad, gr_shape to) {
  if (!grad)
    return 0;
  gr_shape from = shape_of(g, grad);
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

/* Broadcasts x up to `to` (x's dimensions are 1 or equal). */
static gr_tensor expand(gr_graph *g, gr_tensor x, gr_shape to) { return gr_add(g, filled(g, to, 0.0f), x); }

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
  case GR_NEG: return gr_scale_shift(g, gy, -1.0f, 0.0f);
  case GR_AFFINE: return gr_scale_shift(g, gy, n->fa[0], 0.0f);
  case GR_RELU: case GR_LEAKY_RELU: case GR_ABS: case GR_CLAMP: return gr_vjp_unary_extra(g, n, gy);
  default: return 0;
  }
}

static int binary_vjp(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor d[2]) {
  gr_tensor a = n->inputs[0], b = n->inputs[1];
  gr_shape sa = shape_of(g, a), sb = shape_of(g, b);
  switch ((gr_binary)n->ia[0]) {
  case GR_ADD: d[0] = gy, d[1] = gy; break;
  case GR_SUB: d[0] = gy, d[1] = gr_scale_shift(g, gy, -1.0f, 0.0f); break;
  case GR_MUL: d[0] = gr_mul(g, gy, b), d[1] = gr_mul(g, gy, a); break;
  case GR_DIV: /* d/db (a / b) = -a / b² */
    d[0] = gr_div(g, gy, b);
    d[1] = gr_scale_shift(g, gr_div(g, gr_mul(g, gy, a), gr_unary_op(g, GR_SQUARE, b)), -1.0f, 0.0f);
    break;
  case GR_MAX: case GR_MIN: return gr_vjp_extra(g, n, gy, d);
  default: return 0;
  }
  d[0] = gr_grad_unbroadcast(g, d[0], sa);
  d[1] = gr_grad_unbroadcast(g, d[1], sb);
  return 1;
}

static gr_tensor reduce_vjp(gr_graph *g, const gr_node *n, gr_tensor gy) {
  gr_tensor x = n->inputs[0], y = n->output;
  gr_shape sx = shape_of(g, x);
  unsigned axes = (unsigned)n->ia[1];
  int64_t count = 1;
  for (int i = 0; i < sx.rank; i++)
    if (axes & (1u << i))
      count *= sx.d[i];
  switch ((gr_reduce)n->ia[0]) {
  case GR_SUM: return expand(g, gy, sx);
  case GR_MEAN: return expand(g, gr_scale_shift(g, gy, 1.0f / (float)count, 0.0f), sx);
  case GR_SUMSQ: return gr_mul(g, gr_scale_shift(g, x, 2.0f, 0.0f), gy);
  case GR_VAR: { /* 2 (x - mean) / count */
    gr_tensor centred = gr_sub(g, x, gr_reduce_op(g, GR_MEAN, x, axes));
    return gr_mul(g, gr_scale_shift(g, centred, 2.0f / (float)count, 0.0f), gy);
  }
  case GR_LOGSUMEXP: return gr_mul(g, gr_unary_op(g, GR_EXP, gr_sub(g, x, y)), gy);
  case GR_RMAX: return gr_vjp_reduce_extra(g, n, gy);
  default: return 0;
  }
}

/* Zeros around gy along axis, back to the sliced tensor's shape. */
static gr_tensor slice_vjp(gr_graph *g, const gr_node *n, gr_tensor gy) {
  int axis = (int)n->ia[0];
  int64_t start = n->ia[1], len = shape_of(g, gy).d[axis], full = shape_of(g, n->inputs[0]).d[axis];
  gr_shape z = shape_of(g, gy);
  gr_tensor r = gy;
  if (start > 0) {
    z.d[axis] = start;
    r = gr_concat(g, filled(g, z, 0.0f), r, axis);
  }
  if (start + len < full) {
    z.d[axis] = full - start - len;
    r = gr_concat(g, r, filled(g, z, 0.0f), axis);
  }
  return r;
}

/* t -> [sin(t f), cos(t f)]: d/dt = Σ f (gy_sin · cos - gy_cos · sin). */
static gr_tensor time_embed_vjp(gr_graph *g, const gr_node *n, gr_tensor gy) {
  int64_t N = shape_of(g, n->inputs[0]).d[0], half = n->ia[0] / 2;
  float *f = malloc((size_t)half * sizeof *f);
  if (!f)
    return gr_error(g, "grad", "out of host memory");
  for (int64_t i = 0; i < half; i++)
    f[i] = (float)exp(-log((double)n->fa[0]) * (double)i / (double)half);
  gr_tensor freq = gr_const(g, NULL, GR_SHAPE(half), f);
  free(f);
  gr_tensor y = n->output;
  gr_tensor s = gr_slice(g, y, 1, 0, half), c = gr_slice(g, y, 1, half, half);
  gr_tensor gs = gr_slice(g, gy, 1, 0, half), gc = gr_slice(g, gy, 1, half, half);
  gr_tensor d = gr_mul(g, gr_sub(g, gr_mul(g, gs, c), gr_mul(g, gc, s)), freq);
  return gr_reshape(g, gr_reduce_op(g, GR_SUM, d, 2u), GR_SHAPE(N));
}

/* Reverses a dimension (a gather with descending indices). */
static gr_tensor flip(gr_graph *g, gr_tensor x, int axis) {
  int64_t n = shape_of(g, x).d[axis];
  int32_t *idx = malloc((size_t)n * sizeof *idx);
  if (!idx)
    return gr_error(g, "grad", "out of host memory");
  for (int64_t i = 0; i < n; i++)
    idx[i] = (int32_t)(n - 1 - i);
  gr_tensor y = gr_gather(g, x, axis, idx, n);
  free(idx);
  return y;
}

/* [N, C, H, W] -> [N, C, sH, sW] with x at the multiples of s and zeros between. */
static gr_tensor zero_insert(gr_graph *g, gr_tensor x, int s) {
  if (s == 1)
    return x;
  gr_shape sh = shape_of(g, x);
  int64_t nc = sh.d[0] * sh.d[1];
  gr_tensor planes = gr_reshape(g, x, GR_SHAPE(nc, 1, sh.d[2], sh.d[3]));
  gr_tensor blocks = gr_concat(g, planes, filled(g, GR_SHAPE(nc, (int64_t)s * s - 1, sh.d[2], sh.d[3]), 0.0f), 1);
  blocks = gr_reshape(g, blocks, GR_SHAPE(sh.d[0], sh.d[1] * s * s, sh.d[2], sh.d[3]));
  return gr_depth_to_space(g, blocks, s);
}

/* Keeps the first `len` entries of an axis or zero-pads it to `len` at the end. */
static gr_tensor fit(gr_graph *g, gr_tensor x, int axis, int64_t front, int64_t len) {
  int64_t have = shape_of(g, x).d[axis];
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
 * op (a split-K GEMM, conv_wgrad.c); dX is a convolution again, so it runs on the same fast
 * kernels (and oneDNN on the CPU device). */
static int conv_vjp(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor d[GR_MAX_INPUTS]) {
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
    if (!conv_vjp(g, &plain, gy, d) || !gr_vjp_extra(g, &padder, d[0], dpad))
      return 0;
    d[0] = dpad[0];
    return 1;
  }
  if (n->ia[4] != GR_PAD_ZERO && pad > 0)
    return 0;
  gr_tensor x = n->inputs[0], w = n->inputs[1];
  gr_shape sx = shape_of(g, x), sw = shape_of(g, w);
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
  gr_tensor wf = flip(g, flip(g, wt, 2), 3);
  d[0] = gr_conv2d(g, up, wf, 0, &(gr_conv2d_desc){.dilation = dil, .groups = groups});
  if (n->n_inputs > 2)
    d[2] = gr_reshape(g, gr_reduce_op(g, GR_SUM, gy, 13u), shape_of(g, n->inputs[2]));
  return 1;
}

/* [C] viewed so it broadcasts along dimension 1 of a rank-r tensor. */
static gr_tensor channel_view(gr_graph *g, gr_tensor v, int rank) {
  int64_t c = shape_of(g, v).d[0];
  gr_shape s = {.rank = rank};
  for (int i = 0; i < rank; i++)
    s.d[i] = i == 1 ? c : 1;
  return gr_reshape(g, v, s);
}

/* Group norm from its statistics, recomputed: dx = rstd (g' - mean g' - x̂ mean(g' x̂))
 * per group, g' = gy γ; dγ = Σ gy x̂, dβ = Σ gy over all but the channel axis. */
static int group_norm_vjp(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor d[GR_MAX_INPUTS]) {
  gr_tensor x = n->inputs[0];
  gr_shape sx = shape_of(g, x);
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
static int attention_vjp(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor d[GR_MAX_INPUTS]) {
  gr_tensor qkv = n->inputs[0];
  int64_t c = shape_of(g, gy).d[1];
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

/* Builds the node's input adjoints into d[]; returns 0 if the op has no VJP yet. */
static int vjp(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor d[GR_MAX_INPUTS]) {
  switch (n->op) {
  case GR_OP_UNARY: return (d[0] = unary_vjp(g, n, gy)) != 0 || g->status != APS_OK;
  case GR_OP_BINARY: return binary_vjp(g, n, gy, d);
  case GR_OP_REDUCE: return (d[0] = reduce_vjp(g, n, gy)) != 0 || g->status != APS_OK;
  case GR_OP_MATMUL: { /* dA = G Bᵀ, dB = Aᵀ G, summed over broadcast batches */
    gr_tensor a = n->inputs[0], b = n->inputs[1];
    d[0] = gr_grad_unbroadcast(g, gr_matmul(g, gy, b, 0, 1), shape_of(g, a));
    d[1] = gr_grad_unbroadcast(g, gr_matmul(g, a, gy, 1, 0), shape_of(g, b));
    return 1;
  }
  case GR_OP_SOFTMAX: { /* y (gy - Σ gy y) over the last axis */
    gr_tensor y = n->output;
    unsigned last = 1u << (shape_of(g, y).rank - 1);
    d[0] = gr_mul(g, y, gr_sub(g, gy, gr_reduce_op(g, GR_SUM, gr_mul(g, gy, y), last)));
    return 1;
  }
  case GR_OP_RESHAPE: d[0] = gr_reshape(g, gy, shape_of(g, n->inputs[0])); return 1;
  case GR_OP_PERMUTE: {
    int inv[GR_MAX_DIMS];
    for (int i = 0; i < shape_of(g, gy).rank; i++)
      inv[n->ia[i]] = i;
    d[0] = gr_permute(g, gy, inv);
    return 1;
  }
  case GR_OP_CONCAT: {
    int axis = (int)n->ia[0];
    int64_t la = shape_of(g, n->inputs[0]).d[axis], lb = shape_of(g, n->inputs[1]).d[axis];
    d[0] = gr_slice(g, gy, axis, 0, la);
    d[1] = gr_slice(g, gy, axis, la, lb);
    return 1;
  }
  case GR_OP_SLICE: d[0] = slice_vjp(g, n, gy); return 1;
  case GR_OP_AVG_POOL: d[0] = gr_scale_shift(g, gr_upsample2x(g, gy, GR_NEAREST), 0.25f, 0.0f); return 1;
  case GR_OP_UPSAMPLE:
    if (n->ia[0] != GR_NEAREST)
      return gr_vjp_extra(g, n, gy, d);
    d[0] = gr_scale_shift(g, gr_avg_pool2x(g, gy), 4.0f, 0.0f);
    return 1;
  case GR_OP_TIME_EMBED: d[0] = time_embed_vjp(g, n, gy); return 1;
  case GR_OP_CONV2D: return conv_vjp(g, n, gy, d);
  case GR_OP_GROUP_NORM: return group_norm_vjp(g, n, gy, d);
  case GR_OP_ATTENTION: return attention_vjp(g, n, gy, d);
  case GR_OP_WHERE: case GR_OP_PAD: case GR_OP_SPACE_TO_DEPTH: case GR_OP_DEPTH_TO_SPACE: case GR_OP_GATHER:
  case GR_OP_RANDOM: case GR_OP_INVERSE: case GR_OP_LOGABSDET: return gr_vjp_extra(g, n, gy, d);
  default: return 0; /* assign (an effect); lu (internal: logabsdet, its only reader, gives it nothing) */
  }
}

aps_status gr_grad(gr_graph *g, gr_tensor loss, uint32_t n_wrt, const gr_tensor *wrt, gr_tensor *grads) {
  for (uint32_t i = 0; i < n_wrt; i++)
    grads[i] = 0;
  if (!gr_ok(g, 1, &loss) || !gr_ok(g, (int)n_wrt, wrt))
    return g->status;
  uint32_t nt = g->nt, nn = g->nn;
  uint8_t *dep = calloc(nt, 1);
  gr_tensor *adj = calloc(nt, sizeof *adj);
  if (!dep || !adj) {
    free(dep);
    free(adj);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory differentiating");
  }
  /* Which tensors depend on something we differentiate against. */
  for (uint32_t i = 0; i < n_wrt; i++)
    dep[wrt[i]] = 1;
  for (uint32_t i = 0; i < nn; i++)
    for (int k = 0; k < g->n[i].n_inputs; k++)
      dep[g->n[i].output] |= dep[g->n[i].inputs[k]];
  adj[loss] = filled(g, shape_of(g, loss), 1.0f);
  gr_scope_push(g, "grad");
  aps_status status = APS_OK;
  for (uint32_t i = nn; i-- > 0 && g->status == APS_OK;) {
    gr_node n = g->n[i]; /* a copy: building below may move the node array */
    if (!adj[n.output] || !dep[n.output])
      continue;
    gr_tensor d[GR_MAX_INPUTS] = {0};
    if (!vjp(g, &n, adj[n.output], d)) {
      status = aps_fail(APS_ERR_UNSUPPORTED, "gradient of node %s: op %s has no vector-Jacobian product yet",
                        n.name, n.op == GR_OP_UNARY   ? gr_unary_name((gr_unary)n.ia[0])
                                : n.op == GR_OP_BINARY ? gr_binary_name((gr_binary)n.ia[0])
                                                       : gr_op_name(n.op));
      break;
    }
    for (int k = 0; k < n.n_inputs; k++) {
      uint32_t x = n.inputs[k];
      if (d[k] && dep[x])
        adj[x] = adj[x] ? gr_add(g, adj[x], d[k]) : d[k];
    }
  }
  gr_scope_pop(g);
  if (status == APS_OK && g->status != APS_OK)
    status = aps_fail(g->status, "building gradients: %s", g->error);
  for (uint32_t i = 0; i < n_wrt && status == APS_OK; i++)
    grads[i] = adj[wrt[i]];
  free(dep);
  free(adj);
  return status;
}
