/* Builders of the elementwise, reduction, matmul, normalisation, layout, resampling,
 * attention, random and small linear algebra ops, states and assignments: each checks its
 * arguments, infers the output shape, and adds one node. Each node keeps every attribute its
 * VJP will need:
 * - random: ia[0] = distribution, ia[1] = stream. No gradient (to the seed or otherwise).
 * - inverse: VJP = -yᵀ · g · yᵀ from its own output y.
 * - logabsdet: inputs {w, lu}; the kernel reads only lu (an internal LU node of w). VJP:
 *   g · inverse(w)ᵀ to w, nothing to lu, so the LU node never needs a VJP. */
#include <stdio.h>
#include <string.h>

#include "graph_internal.h"

static gr_tensor unary(gr_graph *g, gr_unary f, gr_tensor x, float a, float b) {
  if (!gr_ok(g, 1, &x))
    return 0;
  if ((unsigned)f >= GR_UNARY_COUNT)
    return gr_error(g, "unary", "unknown function %d", (int)f);
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_UNARY, gr_unary_name(f), 1, &x, gr_t(g, x)->shape, &n);
  if (y) {
    n->ia[0] = f;
    n->fa[0] = a;
    n->fa[1] = b;
  }
  return y;
}

gr_tensor gr_unary_op(gr_graph *g, gr_unary f, gr_tensor x) { return unary(g, f, x, 0.01f, 0.0f); }
gr_tensor gr_leaky_relu(gr_graph *g, gr_tensor x, float slope) { return unary(g, GR_LEAKY_RELU, x, slope, 0); }
gr_tensor gr_silu(gr_graph *g, gr_tensor x) { return unary(g, GR_SILU, x, 0, 0); }
gr_tensor gr_scale_shift(gr_graph *g, gr_tensor x, float scale, float shift) {
  return unary(g, GR_AFFINE, x, scale, shift);
}
gr_tensor gr_clamp(gr_graph *g, gr_tensor x, float lo, float hi) {
  if (g->status == APS_OK && !(lo <= hi))
    return gr_error(g, "clamp", "lower bound %g above upper bound %g", lo, hi);
  return unary(g, GR_CLAMP, x, lo, hi);
}

gr_tensor gr_binary_op(gr_graph *g, gr_binary f, gr_tensor a, gr_tensor b) {
  gr_tensor in[2] = {a, b};
  if (!gr_ok(g, 2, in))
    return 0;
  if ((unsigned)f >= GR_BINARY_COUNT)
    return gr_error(g, "binary", "unknown function %d", (int)f);
  gr_shape s, sa = gr_t(g, a)->shape, sb = gr_t(g, b)->shape;
  if (!gr_broadcast_shape(sa, sb, &s))
    return gr_error(g, gr_binary_name(f), "shapes %s and %s do not broadcast", SHAPE_STR(sa), SHAPE_STR(sb));
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_BINARY, gr_binary_name(f), 2, in, s, &n);
  if (y)
    n->ia[0] = f;
  return y;
}

gr_tensor gr_add(gr_graph *g, gr_tensor a, gr_tensor b) { return gr_binary_op(g, GR_ADD, a, b); }
gr_tensor gr_sub(gr_graph *g, gr_tensor a, gr_tensor b) { return gr_binary_op(g, GR_SUB, a, b); }
gr_tensor gr_mul(gr_graph *g, gr_tensor a, gr_tensor b) { return gr_binary_op(g, GR_MUL, a, b); }
gr_tensor gr_div(gr_graph *g, gr_tensor a, gr_tensor b) { return gr_binary_op(g, GR_DIV, a, b); }

gr_tensor gr_where(gr_graph *g, gr_tensor mask, gr_tensor a, gr_tensor b) {
  gr_tensor in[3] = {mask, a, b};
  if (!gr_ok(g, 3, in))
    return 0;
  gr_shape s, ab;
  if (!gr_broadcast_shape(gr_t(g, a)->shape, gr_t(g, b)->shape, &ab) ||
      !gr_broadcast_shape(gr_t(g, mask)->shape, ab, &s))
    return gr_error(g, "where", "shapes %s, %s and %s do not broadcast", SHAPE_STR(gr_t(g, mask)->shape),
                    SHAPE_STR(gr_t(g, a)->shape), SHAPE_STR(gr_t(g, b)->shape));
  return gr_node_add(g, GR_OP_WHERE, "where", 3, in, s, NULL);
}

gr_tensor gr_reduce_op(gr_graph *g, gr_reduce f, gr_tensor x, unsigned axes) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape s = gr_t(g, x)->shape;
  if ((unsigned)f >= GR_REDUCE_COUNT)
    return gr_error(g, "reduce", "unknown function %d", (int)f);
  if (!axes || axes >> s.rank)
    return gr_error(g, gr_reduce_name(f), "axes mask 0x%x does not fit rank-%d shape %s", axes, s.rank,
                    SHAPE_STR(s));
  for (int i = 0; i < s.rank; i++)
    if (axes & (1u << i))
      s.d[i] = 1;
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_REDUCE, gr_reduce_name(f), 1, &x, s, &n);
  if (y) {
    n->ia[0] = f;
    n->ia[1] = axes;
  }
  return y;
}

/* Swaps the last two dimensions. */
static gr_tensor transpose_last(gr_graph *g, gr_tensor x) {
  int r = gr_t(g, x)->shape.rank, perm[4] = {0, 1, 2, 3};
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return gr_permute(g, x, perm);
}

/* Transposes become explicit permutes, so the matmul kernel and its gradient stay plain. */
gr_tensor gr_matmul(gr_graph *g, gr_tensor a, gr_tensor b, int ta, int tb) {
  gr_tensor in[2] = {a, b};
  if (!gr_ok(g, 2, in))
    return 0;
  gr_shape sa = gr_t(g, a)->shape, sb = gr_t(g, b)->shape;
  if (sa.rank < 2 || sb.rank < 2)
    return gr_error(g, "matmul", "operands %s and %s need at least 2 dimensions", SHAPE_STR(sa), SHAPE_STR(sb));
  int64_t m = ta ? sa.d[sa.rank - 1] : sa.d[sa.rank - 2], ka = ta ? sa.d[sa.rank - 2] : sa.d[sa.rank - 1];
  int64_t kb = tb ? sb.d[sb.rank - 1] : sb.d[sb.rank - 2], nn = tb ? sb.d[sb.rank - 2] : sb.d[sb.rank - 1];
  if (ka != kb)
    return gr_error(g, "matmul", "inner dimensions differ: %s%s x %s%s", SHAPE_STR(sa), ta ? "ᵀ" : "", SHAPE_STR(sb),
                    tb ? "ᵀ" : "");
  gr_shape ba = sa, bb = sb, s;
  ba.rank -= 2;
  bb.rank -= 2;
  if (ba.rank == 0)
    ba = (gr_shape){1, {1}};
  if (bb.rank == 0)
    bb = (gr_shape){1, {1}};
  if (!gr_broadcast_shape(ba, bb, &s) || s.rank > 2)
    return gr_error(g, "matmul", "batch dimensions of %s and %s do not broadcast", SHAPE_STR(sa), SHAPE_STR(sb));
  if (ta)
    in[0] = transpose_last(g, a);
  if (tb)
    in[1] = transpose_last(g, b);
  if (!in[0] || !in[1])
    return 0;
  int keep = sa.rank > sb.rank ? sa.rank : sb.rank;
  gr_shape out = {.rank = keep};
  for (int i = 0; i < keep - 2; i++)
    out.d[i] = s.d[s.rank - (keep - 2) + i];
  out.d[keep - 2] = m;
  out.d[keep - 1] = nn;
  gr_node *n;
  return gr_node_add(g, GR_OP_MATMUL, "matmul", 2, in, out, &n);
}

gr_tensor gr_group_norm(gr_graph *g, gr_tensor x, int groups, gr_tensor gamma, gr_tensor beta, float eps) {
  if (!gr_ok(g, 1, &x) || (gamma && !gr_ok(g, 1, &gamma)) || (beta && !gr_ok(g, 1, &beta)))
    return 0;
  gr_shape s = gr_t(g, x)->shape;
  if (s.rank < 2 || groups < 1 || s.d[1] % groups)
    return gr_error(g, "group_norm", "%d groups do not divide the channels of %s", groups, SHAPE_STR(s));
  gr_tensor affine[2] = {gamma, beta};
  for (int i = 0; i < 2; i++)
    if (affine[i] && (gr_t(g, affine[i])->shape.rank != 1 || gr_t(g, affine[i])->shape.d[0] != s.d[1]))
      return gr_error(g, "group_norm", "%s %s must be [%lld]", i ? "beta" : "gamma",
                      SHAPE_STR(gr_t(g, affine[i])->shape), (long long)s.d[1]);
  if (!(eps > 0))
    return gr_error(g, "group_norm", "eps must be positive (%g)", eps);
  gr_tensor in[3] = {x, gamma, beta};
  int n_in = 1;
  if (gamma)
    in[n_in++] = gamma;
  if (beta)
    in[n_in++] = beta;
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_GROUP_NORM, "group_norm", n_in, in, s, &n);
  if (y) {
    n->ia[0] = groups;
    n->ia[1] = gamma != 0;
    n->ia[2] = beta != 0;
    n->fa[0] = eps;
  }
  return y;
}

gr_tensor gr_softmax(gr_graph *g, gr_tensor x) {
  if (!gr_ok(g, 1, &x))
    return 0;
  return gr_node_add(g, GR_OP_SOFTMAX, "softmax", 1, &x, gr_t(g, x)->shape, NULL);
}

gr_tensor gr_reshape(gr_graph *g, gr_tensor x, gr_shape s) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape sx = gr_t(g, x)->shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.rank; i++) {
    if (s.d[i] == -1 && infer < 0)
      infer = i;
    else
      known *= s.d[i];
  }
  if (infer >= 0 && known > 0 && gr_shape_count(sx) % known == 0)
    s.d[infer] = gr_shape_count(sx) / known;
  if (s.rank < 1 || s.rank > GR_MAX_DIMS || gr_shape_count(s) != gr_shape_count(sx))
    return gr_error(g, "reshape", "cannot reshape %s to %s", SHAPE_STR(sx), SHAPE_STR(s));
  gr_tensor y = gr_node_add(g, GR_OP_RESHAPE, "reshape", 1, &x, s, NULL);
  if (y)
    gr_t(g, y)->alias = gr_t(g, x)->alias ? gr_t(g, x)->alias : x;
  return y;
}

gr_tensor gr_permute(gr_graph *g, gr_tensor x, const int *perm) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape sx = gr_t(g, x)->shape, s = sx;
  unsigned seen = 0;
  for (int i = 0; i < sx.rank; i++) {
    if (perm[i] < 0 || perm[i] >= sx.rank || (seen & (1u << perm[i])))
      return gr_error(g, "permute", "not a permutation of %d axes", sx.rank);
    seen |= 1u << perm[i];
    s.d[i] = sx.d[perm[i]];
  }
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_PERMUTE, "permute", 1, &x, s, &n);
  for (int i = 0; y && i < sx.rank; i++)
    n->ia[i] = perm[i];
  return y;
}

gr_tensor gr_concat(gr_graph *g, gr_tensor a, gr_tensor b, int axis) {
  gr_tensor in[2] = {a, b};
  if (!gr_ok(g, 2, in))
    return 0;
  gr_shape sa = gr_t(g, a)->shape, sb = gr_t(g, b)->shape, s = sa;
  int same = sa.rank == sb.rank && axis >= 0 && axis < sa.rank;
  for (int i = 0; same && i < sa.rank; i++)
    same = i == axis || sa.d[i] == sb.d[i];
  if (!same)
    return gr_error(g, "concat", "%s and %s cannot be joined along axis %d", SHAPE_STR(sa), SHAPE_STR(sb), axis);
  s.d[axis] += sb.d[axis];
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_CONCAT, "concat", 2, in, s, &n);
  if (y)
    n->ia[0] = axis;
  return y;
}

gr_tensor gr_slice(gr_graph *g, gr_tensor x, int axis, int64_t start, int64_t length) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape s = gr_t(g, x)->shape;
  if (axis < 0 || axis >= s.rank || start < 0 || length < 1 || start + length > s.d[axis])
    return gr_error(g, "slice", "[%lld, %lld) along axis %d is outside %s", (long long)start,
                    (long long)(start + length), axis, SHAPE_STR(s));
  s.d[axis] = length;
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_SLICE, "slice", 1, &x, s, &n);
  if (y) {
    n->ia[0] = axis;
    n->ia[1] = start;
  }
  return y;
}

gr_tensor gr_flip(gr_graph *g, gr_tensor x, unsigned axes) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape s = SHAPE(x);
  if (axes >> s.rank)
    return gr_error(g, "flip", "axes mask 0x%x does not fit rank-%d shape %s", axes, s.rank, SHAPE_STR(s));
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_FLIP, "flip", 1, &x, s, &n);
  if (y)
    n->ia[0] = axes;
  return y;
}

static gr_tensor spatial(gr_graph *g, gr_op op, gr_tensor x, int up, int mode) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape s = gr_t(g, x)->shape;
  if (s.rank != 4 || (!up && (s.d[2] % 2 || s.d[3] % 2)))
    return gr_error(g, gr_op_name(op), "input %s must be NCHW%s", SHAPE_STR(s), up ? "" : " with even H and W");
  s.d[2] = up ? s.d[2] * 2 : s.d[2] / 2;
  s.d[3] = up ? s.d[3] * 2 : s.d[3] / 2;
  gr_node *n;
  gr_tensor y = gr_node_add(g, op, gr_op_name(op), 1, &x, s, &n);
  if (y)
    n->ia[0] = mode;
  return y;
}

gr_tensor gr_upsample2x(gr_graph *g, gr_tensor x, gr_upsample_mode mode) {
  return spatial(g, GR_OP_UPSAMPLE, x, 1, mode);
}
gr_tensor gr_avg_pool2x(gr_graph *g, gr_tensor x) { return spatial(g, GR_OP_AVG_POOL, x, 0, 0); }

gr_tensor gr_time_embed(gr_graph *g, gr_tensor t, int dim, float max_period) {
  if (!gr_ok(g, 1, &t))
    return 0;
  gr_shape s = gr_t(g, t)->shape;
  if (s.rank != 1 || dim < 2 || dim % 2 || !(max_period > 1))
    return gr_error(g, "time_embed", "needs t [N] (got %s), an even dim >= 2 (%d), max_period > 1 (%g)", SHAPE_STR(s),
                    dim, max_period);
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_TIME_EMBED, "time_embed", 1, &t, GR_SHAPE(s.d[0], dim), &n);
  if (y) {
    n->ia[0] = dim;
    n->fa[0] = max_period;
  }
  return y;
}

gr_tensor gr_attention(gr_graph *g, gr_tensor qkv) {
  if (!gr_ok(g, 1, &qkv))
    return 0;
  gr_shape s = gr_t(g, qkv)->shape;
  if (s.rank != 3 || s.d[1] % 3 || s.d[2] > 4096)
    return gr_error(g, "attention", "qkv %s must be [N, 3C, L] with L <= 4096", SHAPE_STR(s));
  return gr_node_add(g, GR_OP_ATTENTION, "attention", 1, &qkv, GR_SHAPE(s.d[0], s.d[1] / 3, s.d[2]), NULL);
}

gr_tensor gr_state(gr_graph *g, const char *name, gr_shape shape) {
  gr_tensor t = gr_param(g, name, shape);
  if (t)
    gr_t(g, t)->zero_init = 1;
  return t;
}

gr_tensor gr_assign(gr_graph *g, gr_tensor target, gr_tensor value) {
  gr_tensor in[2] = {target, value};
  if (!gr_ok(g, 2, in))
    return 0;
  gr_shape st = gr_t(g, target)->shape, sv = gr_t(g, value)->shape;
  if (gr_t(g, target)->kind != GR_OP_PARAM)
    return gr_error(g, "assign", "target %s is not a parameter or state", gr_t(g, target)->name);
  if (st.rank != sv.rank || memcmp(st.d, sv.d, sizeof(int64_t) * (size_t)st.rank))
    return gr_error(g, "assign", "value %s does not match %s %s", SHAPE_STR(sv), gr_t(g, target)->name, SHAPE_STR(st));
  gr_tensor y = gr_node_add(g, GR_OP_ASSIGN, "assign", 2, in, st, NULL);
  if (y)
    gr_t(g, y)->alias = target; /* the node's result is the target's memory */
  return y;
}

gr_tensor gr_random(gr_graph *g, gr_shape shape, gr_tensor seed, uint32_t stream, gr_distribution dist) {
  if (!gr_ok(g, 1, &seed))
    return 0;
  gr_shape ss = gr_t(g, seed)->shape;
  if (gr_shape_count(ss) != 1 && gr_shape_count(ss) != 2)
    return gr_error(g, "random", "seed %s must hold 1 or 2 values", SHAPE_STR(ss));
  if ((unsigned)dist >= GR_DISTRIBUTION_COUNT)
    return gr_error(g, "random", "unknown distribution %d", (int)dist);
  if (shape.rank >= 1 && shape.rank <= GR_MAX_DIMS && gr_shape_count(shape) > (1ll << 31))
    return gr_error(g, "random", "shape %s has more than 2^31 elements", SHAPE_STR(shape));
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_RANDOM, dist == GR_NORMAL ? "randn" : "rand", 1, &seed, shape, &n);
  if (y) {
    n->ia[0] = dist;
    n->ia[1] = stream;
  }
  return y;
}

static int square_ok(gr_graph *g, const char *op, gr_tensor w) {
  if (!gr_ok(g, 1, &w))
    return 0;
  gr_shape s = gr_t(g, w)->shape;
  if (s.rank != 2 || s.d[0] != s.d[1] || s.d[0] > 512) {
    gr_error(g, op, "needs a square matrix [C, C] with C <= 512, got %s", SHAPE_STR(s));
    return 0;
  }
  return 1;
}

gr_tensor gr_inverse(gr_graph *g, gr_tensor w) {
  if (!square_ok(g, "inverse", w))
    return 0;
  return gr_node_add(g, GR_OP_INVERSE, "inverse", 1, &w, gr_t(g, w)->shape, NULL);
}

gr_tensor gr_logabsdet(gr_graph *g, gr_tensor w) {
  if (!square_ok(g, "logabsdet", w))
    return 0;
  gr_tensor in[2] = {w, gr_node_add(g, GR_OP_LU, "lu", 1, &w, gr_t(g, w)->shape, NULL)};
  if (!in[1])
    return 0;
  return gr_node_add(g, GR_OP_LOGABSDET, "logabsdet", 2, in, GR_SHAPE(1), NULL);
}
