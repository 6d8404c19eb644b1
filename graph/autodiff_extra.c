/* Vector-Jacobian products of the piecewise-linear elementwise ops, bilinear upsampling,
 * pad, the pixel shuffles, gather, random numbers and the small linear algebra (autodiff.c
 * routes these ops here). Like the others, each is built from existing graph ops, so it runs
 * on every device that runs the forward graph, with no kernel of its own.
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
 * - where: nothing to the mask (piecewise constant); the gradient to the chosen branch.
 * - random: a constant of its seed: nothing to the seed. */
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

static gr_shape shape_of(gr_graph *g, gr_tensor t) { return gr_t(g, t)->shape; }
static gr_tensor zero(gr_graph *g) { return gr_const_scalar(g, 0.0f); }
static gr_tensor negate(gr_graph *g, gr_tensor x) { return gr_scale_shift(g, x, -1.0f, 0.0f); }
/* Nonzero exactly where x > 0. */
static gr_tensor positive(gr_graph *g, gr_tensor x) { return gr_unary_op(g, GR_RELU, x); }

/* The adjoint of out = gather(x, axis, idx[0..count)) with x.d[axis] = full: a scatter-add
 * of gy back to `full` entries, built from gathers or one matmul:
 * - the identity: gy itself;
 * - each target hit at most MAX_LAYERS times (permutations, pads), or a one-hot matrix too
 *   big: one gather per layer, layer k picking the k-th occurrence of each target, or a
 *   zero slab appended to gy where a target has fewer; the layers summed (exact);
 * - otherwise (many repeats of an index): gy along the axis times the [count, full] one-hot
 *   matrix, in one matmul (sums in fp32). */
static gr_tensor scatter_add(gr_graph *g, gr_tensor gy, int axis, const int32_t *idx, int64_t count, int64_t full) {
  enum { MAX_LAYERS = 4, MAX_ONEHOT = 1 << 22 };
  if (!gy)
    return 0;
  gr_shape sy = shape_of(g, gy);
  int identity = count == full;
  for (int64_t i = 0; i < count && identity; i++)
    identity = idx[i] == i;
  if (identity)
    return gy;
  /* Positions grouped by target (a counting sort): target j's k-th occurrence is
   * pos[start[j] + k]. */
  int64_t *start = calloc((size_t)full + 1, sizeof *start), *fill = calloc((size_t)full, sizeof *fill);
  int32_t *pos = malloc((size_t)count * sizeof *pos), *inv = malloc((size_t)full * sizeof *inv);
  float *onehot = NULL;
  gr_tensor r = 0;
  if (!start || !fill || !pos || !inv) {
    r = gr_error(g, "grad", "out of host memory");
    goto done;
  }
  int64_t layers = 0;
  for (int64_t i = 0; i < count; i++)
    start[idx[i] + 1]++;
  for (int64_t j = 0; j < full; j++) {
    layers = start[j + 1] > layers ? start[j + 1] : layers;
    start[j + 1] += start[j];
  }
  for (int64_t i = 0; i < count; i++)
    pos[start[idx[i]] + fill[idx[i]]++] = (int32_t)i;
  if (layers <= MAX_LAYERS || count * full > MAX_ONEHOT) {
    gr_tensor padded = 0; /* gy with a zero slab at index `count`, made when needed */
    for (int64_t k = 0; k < layers; k++) {
      int need_zero = 0;
      for (int64_t j = 0; j < full; j++) {
        inv[j] = start[j] + k < start[j + 1] ? pos[start[j] + k] : (int32_t)count;
        need_zero |= inv[j] == count;
      }
      if (need_zero && !padded) {
        gr_shape slab = sy;
        slab.d[axis] = 1;
        float *zeros = calloc((size_t)gr_shape_count(slab), sizeof *zeros);
        if (!zeros) {
          r = gr_error(g, "grad", "out of host memory");
          goto done;
        }
        padded = gr_concat(g, gy, gr_const(g, NULL, slab, zeros), axis);
        free(zeros);
      }
      gr_tensor part = gr_gather(g, need_zero ? padded : gy, axis, inv, full);
      r = r ? gr_add(g, r, part) : part;
    }
  } else {
    onehot = calloc((size_t)(count * full), sizeof *onehot);
    if (!onehot) {
      r = gr_error(g, "grad", "out of host memory");
      goto done;
    }
    for (int64_t i = 0; i < count; i++)
      onehot[i * full + idx[i]] = 1.0f;
    gr_tensor m = gr_const(g, NULL, GR_SHAPE(count, full), onehot);
    /* The axis moved last, the rest flattened: [rest, count] x [count, full]. */
    int perm[GR_MAX_DIMS], inv_perm[GR_MAX_DIMS], k = 0;
    for (int i = 0; i < sy.rank; i++)
      if (i != axis)
        perm[k++] = i;
    perm[k] = axis;
    for (int i = 0; i < sy.rank; i++)
      inv_perm[perm[i]] = i;
    int last = axis == sy.rank - 1;
    gr_tensor t = last ? gy : gr_permute(g, gy, perm);
    gr_shape moved = t ? shape_of(g, t) : sy;
    t = gr_matmul(g, gr_reshape(g, t, GR_SHAPE(gr_shape_count(sy) / count, count)), m, 0, 0);
    moved.d[sy.rank - 1] = full;
    t = gr_reshape(g, t, moved);
    r = last ? t : gr_permute(g, t, inv_perm);
  }
done:
  free(start);
  free(fill);
  free(pos);
  free(inv);
  free(onehot);
  return r;
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

/* pad: zero → the middle of the gradient; reflect → the same as a gather along each axis
 * (source of each padded row and column), so its adjoint is a scatter-add per axis that
 * folds the mirrored borders back onto the rows they copy. */
static gr_tensor pad_vjp(gr_graph *g, const gr_node *n, gr_tensor gy) {
  gr_shape sx = shape_of(g, n->inputs[0]), sy = shape_of(g, gy);
  const int64_t *p = n->ia;
  if (n->ia[4] == GR_PAD_ZERO) {
    gr_tensor r = gy;
    if (p[0] || p[1])
      r = gr_slice(g, r, 2, p[0], sx.d[2]);
    if (p[2] || p[3])
      r = gr_slice(g, r, 3, p[2], sx.d[3]);
    return r;
  }
  gr_tensor r = gy;
  for (int axis = 3; axis >= 2; axis--) {
    int64_t before = p[axis == 2 ? 0 : 2], side = sx.d[axis], out = sy.d[axis];
    if (out == side)
      continue;
    int32_t *src = malloc((size_t)out * sizeof *src);
    if (!src)
      return gr_error(g, "grad", "out of host memory");
    for (int64_t o = 0; o < out; o++) {
      int64_t i = o - before;
      i = i < 0 ? -i : i;
      i = i >= side ? 2 * (side - 1) - i : i;
      src[o] = (int32_t)i;
    }
    r = scatter_add(g, r, axis, src, out, side);
    free(src);
  }
  return r;
}

static gr_tensor gather_vjp(gr_graph *g, const gr_node *n, gr_tensor gy) {
  int axis = (int)n->ia[0];
  int64_t count = n->ia[1], full = shape_of(g, n->inputs[0]).d[axis];
  const float *f = gr_t(g, n->inputs[1])->data;
  int32_t *idx = malloc((size_t)count * sizeof *idx);
  if (!f || !idx) {
    free(idx);
    return gr_error(g, "grad", f ? "out of host memory" : "gather %s has no index constant", n->name);
  }
  for (int64_t i = 0; i < count; i++)
    idx[i] = (int32_t)f[i];
  gr_tensor r = scatter_add(g, gy, axis, idx, count, full);
  free(idx);
  return r;
}

gr_tensor gr_vjp_unary_extra(gr_graph *g, const gr_node *n, gr_tensor gy) {
  gr_tensor x = n->inputs[0];
  float a = n->fa[0], b = n->fa[1];
  switch ((gr_unary)n->ia[0]) {
  case GR_RELU: return gr_where(g, n->output, gy, zero(g)); /* relu(x) != 0 ⟺ x > 0 */
  case GR_LEAKY_RELU: return gr_where(g, positive(g, negate(g, x)), gr_scale_shift(g, gy, a, 0.0f), gy);
  case GR_ABS:
    return gr_where(g, positive(g, x), gy, gr_where(g, positive(g, negate(g, x)), negate(g, gy), zero(g)));
  case GR_CLAMP: { /* lo < x < hi */
    gr_tensor above = positive(g, gr_scale_shift(g, x, 1.0f, -a)), below = positive(g, gr_scale_shift(g, x, -1.0f, b));
    return gr_where(g, above, gr_where(g, below, gy, zero(g)), zero(g));
  }
  default: return 0;
  }
}

gr_tensor gr_vjp_reduce_extra(gr_graph *g, const gr_node *n, gr_tensor gy) {
  if ((gr_reduce)n->ia[0] != GR_RMAX)
    return 0;
  gr_tensor x = n->inputs[0], y = n->output;
  /* at[i] = 1 where x[i] equals its maximum (y - x > 0 elsewhere), then gy / (ties). */
  gr_tensor at = gr_where(g, positive(g, gr_sub(g, y, x)), zero(g), gr_const_scalar(g, 1.0f));
  gr_tensor ties = gr_reduce_op(g, GR_SUM, at, (unsigned)n->ia[1]);
  return gr_mul(g, at, gr_div(g, gy, ties));
}

int gr_vjp_extra(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  switch (n->op) {
  case GR_OP_BINARY: {
    gr_tensor a = n->inputs[0], b = n->inputs[1], other;
    switch ((gr_binary)n->ia[0]) {
    case GR_MAX: other = positive(g, gr_sub(g, b, a)); break; /* b wins where b > a */
    case GR_MIN: other = positive(g, gr_sub(g, a, b)); break; /* b wins where b < a */
    default: return 0;
    }
    d[0] = gr_grad_unbroadcast(g, gr_where(g, other, zero(g), gy), shape_of(g, a));
    d[1] = gr_grad_unbroadcast(g, gr_where(g, other, gy, zero(g)), shape_of(g, b));
    return 1;
  }
  case GR_OP_WHERE: {
    gr_tensor mask = n->inputs[0];
    d[1] = gr_grad_unbroadcast(g, gr_where(g, mask, gy, zero(g)), shape_of(g, n->inputs[1]));
    d[2] = gr_grad_unbroadcast(g, gr_where(g, mask, zero(g), gy), shape_of(g, n->inputs[2]));
    return 1;
  }
  case GR_OP_UPSAMPLE: {
    gr_shape sx = shape_of(g, n->inputs[0]);
    if (n->ia[0] != GR_BILINEAR)
      return 0;
    d[0] = bilinear_adjoint_axis(g, bilinear_adjoint_axis(g, gy, 3, sx.d[3]), 2, sx.d[2]);
    return 1;
  }
  case GR_OP_PAD: d[0] = pad_vjp(g, n, gy); return 1;
  case GR_OP_SPACE_TO_DEPTH: d[0] = gr_depth_to_space(g, gy, (int)n->ia[0]); return 1;
  case GR_OP_DEPTH_TO_SPACE: d[0] = gr_space_to_depth(g, gy, (int)n->ia[0]); return 1;
  case GR_OP_GATHER: d[0] = gather_vjp(g, n, gy); return 1; /* nothing to the indices */
  case GR_OP_RANDOM: return 1;                                /* a constant of its seed */
  case GR_OP_INVERSE: { /* y = w⁻¹: dw = -yᵀ gy yᵀ */
    gr_tensor y = n->output;
    d[0] = negate(g, gr_matmul(g, gr_matmul(g, y, gy, 1, 0), y, 0, 1));
    return 1;
  }
  case GR_OP_LOGABSDET: { /* d log|det w| / dw = w⁻ᵀ; nothing to the LU input */
    const int swap[2] = {1, 0};
    d[0] = gr_mul(g, gr_permute(g, gr_inverse(g, n->inputs[0]), swap), gy);
    return 1;
  }
  default: return 0;
  }
}
