/* Vector-Jacobian products of the indexing ops: pad, the pixel shuffles (each other's
 * adjoint) and gather (a scatter-add; nothing to the indices). Like the others, each is built
 * from existing graph ops, so it runs on every device that runs the forward graph, with no
 * kernel of its own. */
#include <stdlib.h>
#include <string.h>

#include "vjp.h"

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
  gr_shape sy = SHAPE(gy);
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
    gr_shape moved = t ? SHAPE(t) : sy;
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

/* pad: zero → the middle of the gradient; reflect → the same as a gather along each axis
 * (source of each padded row and column), so its adjoint is a scatter-add per axis that
 * folds the mirrored borders back onto the rows they copy. */
static gr_tensor pad_adjoint(gr_graph *g, const gr_node *n, gr_tensor gy) {
  gr_shape sx = SHAPE(n->inputs[0]), sy = SHAPE(gy);
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

static gr_tensor gather_adjoint(gr_graph *g, const gr_node *n, gr_tensor gy) {
  int axis = (int)n->ia[0];
  int64_t count = n->ia[1], full = SHAPE(n->inputs[0]).d[axis];
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

int gr_vjp_pad(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  d[0] = pad_adjoint(g, n, gy);
  return 1;
}

int gr_vjp_space_to_depth(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  d[0] = gr_depth_to_space(g, gy, (int)n->ia[0]);
  return 1;
}

int gr_vjp_depth_to_space(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  d[0] = gr_space_to_depth(g, gy, (int)n->ia[0]);
  return 1;
}

int gr_vjp_gather(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d) {
  d[0] = gather_adjoint(g, n, gy);
  return 1;
}
