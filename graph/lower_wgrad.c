/* Lowering of the conv2d weight gradient (conv_wgrad.c): stage 0 is the split-K GEMM of
 * shaders/conv_wgrad_f32.comp writing the partial sums, stage 1 their sum
 * (shaders/conv_wgrad_sum.comp). Push-constant structs mirror the shaders. */
#include "lower.h"

#define SHAPE(x) (L->g->t[(x)].shape)

/* Keep in step with TILE_M / TILE_N at the top of shaders/conv_wgrad_f32.comp. */
enum { WGRAD_TILE_M = 32, WGRAD_TILE_N = 16 };

aps_status gr_lower_conv2d_wgrad(gr_lower *L, const gr_node *n) {
  if (n->ia[8]) {
    struct {
      uint32_t count, splits;
    } pc = {(uint32_t)gr_shape_count(SHAPE(n->output)), (uint32_t)n->ia[6]};
    rt_kernel_desc kd = {.shader = "conv_wgrad_sum"};
    return gr_lower_one_to_one(L, n, &kd, &pc, ((uint64_t)pc.count + 255) / 256);
  }
  gr_shape sx = SHAPE(n->inputs[0]), sg = SHAPE(n->inputs[1]);
  struct {
    uint32_t N, C, H, W, O, OH, OW, KH, KW, stride, pad, dil, groups, splits, chunk;
  } pc = {(uint32_t)sx.d[0], (uint32_t)sx.d[1], (uint32_t)sx.d[2], (uint32_t)sx.d[3], (uint32_t)sg.d[1],
          (uint32_t)sg.d[2], (uint32_t)sg.d[3], (uint32_t)n->ia[4], (uint32_t)n->ia[5], (uint32_t)n->ia[0],
          (uint32_t)n->ia[1], (uint32_t)n->ia[2], (uint32_t)n->ia[3], (uint32_t)n->ia[6], (uint32_t)n->ia[7]};
  uint64_t cols = (uint64_t)(pc.C / pc.groups) * pc.KH * pc.KW, rows = pc.O / pc.groups;
  uint64_t z = (uint64_t)pc.groups * pc.splits;
  const uint32_t *max = rt_device_caps(L->dev)->max_workgroup_count;
  rt_dispatch d = {.push = &pc,
                   .bindings = {gr_lower_binding(L, n->inputs[0]), gr_lower_binding(L, n->inputs[1]),
                                gr_lower_binding(L, n->output)},
                   .groups = {(uint32_t)((cols + WGRAD_TILE_N - 1) / WGRAD_TILE_N),
                              (uint32_t)((rows + WGRAD_TILE_M - 1) / WGRAD_TILE_M), (uint32_t)z}};
  for (int i = 0; i < 3; i++)
    if (d.groups[i] > max[i])
      return aps_fail(APS_ERR_UNSUPPORTED, "node %s: conv2d_wgrad needs %u workgroups along %c, the device allows %u",
                      n->name, d.groups[i], "xyz"[i], max[i]);
  rt_kernel_desc kd = {.shader = "conv_wgrad_f32"};
  return gr_lower_dispatch(L, n, &kd, &d);
}
