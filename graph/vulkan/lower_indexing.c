/* Lowering of the indexing ops: pad, the pixel shuffles, gather. Push-constant structs mirror
 * the shaders named in each function. */
#include "lower.h"

/* One dispatch of `count` invocations (64 per workgroup) reading inputs[0] into the output. */
static aps_status simple(gr_lower *L, const gr_node *n, const rt_kernel_desc *kd, const void *pc, uint64_t count) {
  return gr_lower_one_to_one(L, n, kd, pc, (count + 63) / 64);
}

/* pad2d.comp */
aps_status gr_lower_pad(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  gr_shape sx = SHAPE(n->inputs[0]), so = SHAPE(n->output);
  struct {
    uint32_t H, W, OH, OW, top, left, count;
  } pc = {(uint32_t)sx.d[2], (uint32_t)sx.d[3], (uint32_t)so.d[2], (uint32_t)so.d[3], (uint32_t)n->ia[0],
          (uint32_t)n->ia[2], (uint32_t)gr_shape_count(so)};
  rt_kernel_desc kd = {.shader = "pad2d", .spec_count = 1, .spec = {n->ia[4] == GR_PAD_REFLECT}};
  return simple(L, n, &kd, &pc, pc.count);
}

/* pixel_shuffle.comp */
static aps_status shuffle(gr_lower *L, const gr_node *n, int to_depth) {
  const gr_graph *g = L->g;
  gr_shape big = SHAPE(to_depth ? n->inputs[0] : n->output);
  struct {
    uint32_t C, H, W, b, count;
  } pc = {(uint32_t)big.d[1], (uint32_t)big.d[2], (uint32_t)big.d[3], (uint32_t)n->ia[0],
          (uint32_t)gr_shape_count(big)};
  rt_kernel_desc kd = {.shader = "pixel_shuffle", .spec_count = 1, .spec = {(uint32_t)to_depth}};
  return simple(L, n, &kd, &pc, pc.count);
}

aps_status gr_lower_space_to_depth(gr_lower *L, const gr_node *n) { return shuffle(L, n, 1); }
aps_status gr_lower_depth_to_space(gr_lower *L, const gr_node *n) { return shuffle(L, n, 0); }

/* gather.comp */
aps_status gr_lower_gather(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  gr_shape sx = SHAPE(n->inputs[0]);
  int axis = (int)n->ia[0];
  uint32_t inner = 1;
  for (int i = axis + 1; i < sx.rank; i++)
    inner *= (uint32_t)sx.d[i];
  struct {
    uint32_t inner, D, K, count;
  } pc = {inner, (uint32_t)sx.d[axis], (uint32_t)n->ia[1], (uint32_t)gr_shape_count(SHAPE(n->output))};
  rt_kernel_desc kd = {.shader = "gather"};
  rt_dispatch d = {.push = &pc,
                   .bindings = {gr_lower_binding(L, n->inputs[0]), gr_lower_binding(L, n->inputs[1]),
                                gr_lower_binding(L, n->output)}};
  gr_lower_groups(L, (pc.count + 63) / 64, d.groups);
  return gr_lower_dispatch(L, n, &kd, &d);
}
