/* Builders of the indexing ops: pad, the pixel shuffles, gather. Each node keeps every
 * attribute its VJP will need:
 * - pad: ia[0..3] = top, bottom, left, right; ia[4] = mode. VJP: zero → slice of the
 *   gradient; reflect → that slice plus the mirrored borders added back.
 * - space_to_depth / depth_to_space: ia[0] = block. VJP: each other.
 * - gather: ia[0] = axis, ia[1] = count, inputs[1] = the index constant. VJP: scatter-add
 *   along axis (for a permutation, a gather by the inverse permutation); none to the indices. */
#include <stdlib.h>

#include "graph_internal.h"

gr_tensor gr_pad(gr_graph *g, gr_tensor x, const int pads[4], gr_pad_mode mode) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape s = gr_t(g, x)->shape;
  if (s.rank != 4)
    return gr_error(g, "pad", "input %s must be NCHW", SHAPE_STR(s));
  if (mode != GR_PAD_ZERO && mode != GR_PAD_REFLECT)
    return gr_error(g, "pad", "unknown mode %d", (int)mode);
  for (int i = 0; i < 4; i++) {
    int64_t side = s.d[i < 2 ? 2 : 3];
    if (pads[i] < 0 || pads[i] > (1 << 20) || (mode == GR_PAD_REFLECT && pads[i] >= side))
      return gr_error(g, "pad", "pads {%d, %d, %d, %d} do not fit %s input %s%s", pads[0], pads[1], pads[2], pads[3],
                      mode == GR_PAD_REFLECT ? "reflect" : "zero", SHAPE_STR(s),
                      mode == GR_PAD_REFLECT ? " (reflect needs each pad < its side)" : "");
  }
  s.d[2] += pads[0] + pads[1];
  s.d[3] += pads[2] + pads[3];
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_PAD, "pad", 1, &x, s, &n);
  if (y) {
    for (int i = 0; i < 4; i++)
      n->ia[i] = pads[i];
    n->ia[4] = mode;
  }
  return y;
}

static gr_tensor shuffle(gr_graph *g, gr_op op, gr_tensor x, int b) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape s = gr_t(g, x)->shape;
  int to_depth = op == GR_OP_SPACE_TO_DEPTH;
  if (s.rank != 4 || b < 1 || b > 64)
    return gr_error(g, gr_op_name(op), "needs an NCHW input (got %s) and a block in [1, 64] (got %d)", SHAPE_STR(s), b);
  if (to_depth ? s.d[2] % b || s.d[3] % b : s.d[1] % (b * b))
    return gr_error(g, gr_op_name(op), "block %d does not divide %s of %s", b, to_depth ? "H and W" : "C into b·b",
                    SHAPE_STR(s));
  if (to_depth) {
    s.d[1] *= b * b;
    s.d[2] /= b;
    s.d[3] /= b;
  } else {
    s.d[1] /= b * b;
    s.d[2] *= b;
    s.d[3] *= b;
  }
  gr_node *n;
  gr_tensor y = gr_node_add(g, op, gr_op_name(op), 1, &x, s, &n);
  if (y)
    n->ia[0] = b;
  return y;
}

gr_tensor gr_space_to_depth(gr_graph *g, gr_tensor x, int block) {
  return shuffle(g, GR_OP_SPACE_TO_DEPTH, x, block);
}
gr_tensor gr_depth_to_space(gr_graph *g, gr_tensor x, int block) {
  return shuffle(g, GR_OP_DEPTH_TO_SPACE, x, block);
}

gr_tensor gr_gather(gr_graph *g, gr_tensor x, int axis, const int32_t *index, int64_t count) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape s = gr_t(g, x)->shape;
  if (axis < 0 || axis >= s.rank || count < 1 || count > (1 << 24) || !index)
    return gr_error(g, "gather", "axis %d and %lld indices do not fit input %s", axis, (long long)count, SHAPE_STR(s));
  int64_t limit = s.d[axis] < (1 << 24) ? s.d[axis] : (1 << 24); /* floats hold indices exactly below 2^24 */
  for (int64_t i = 0; i < count; i++)
    if (index[i] < 0 || index[i] >= limit)
      return gr_error(g, "gather", "index[%lld] = %d is outside [0, %lld) along axis %d of %s", (long long)i,
                      (int)index[i], (long long)limit, axis, SHAPE_STR(s));
  gr_tensor in[2] = {x, gr_tensor_new(g, GR_OP_CONST, NULL, GR_SHAPE(count))};
  if (!in[1])
    return 0;
  float *v = malloc((size_t)count * sizeof *v);
  if (!v)
    return gr_error(g, "gather", "out of host memory for %lld indices", (long long)count);
  for (int64_t i = 0; i < count; i++)
    v[i] = (float)index[i];
  gr_t(g, in[1])->data = v;
  s.d[axis] = count;
  gr_node *n;
  gr_tensor y = gr_node_add(g, GR_OP_GATHER, "gather", 2, in, s, &n);
  if (y) {
    n->ia[0] = axis;
    n->ia[1] = count;
  }
  return y;
}
