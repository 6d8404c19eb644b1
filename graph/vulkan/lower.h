/* Lowering onto Vulkan: the state a plan hands each op's lowering function, the helpers those
 * functions share (lower_common.c), and the functions themselves (lower_ops.c, lower_conv.c,
 * lower_indexing.c), which the op table (op_table.c) names. */
#ifndef APS_GRAPH_LOWER_H
#define APS_GRAPH_LOWER_H
#include "graph_internal.h"

/* Where a tensor lives in a plan (plan.c). */
typedef struct gr_storage {
  rt_buffer *buffer; /* NULL for tensors that are never materialised */
  uint64_t offset;
  int f16; /* stored as IEEE halves (passes/f16_storage.c) */
} gr_storage;

struct gr_lower {
  const gr_graph *g;
  rt_device *dev;
  rt_stream *stream;
  const gr_storage *st; /* per tensor */
  rt_buffer *dummy;     /* a small zeroed buffer */
};

/* A float's bits, for specialisation constants. */
static inline uint32_t gr_float_bits(float f) {
  union {
    float f;
    uint32_t u;
  } v = {f};
  return v.u;
}

/* The buffer range of a tensor in the plan. */
rt_binding gr_lower_binding(gr_lower *L, uint32_t tensor);
/* A small zeroed buffer for bindings a kernel does not use. */
rt_binding gr_lower_dummy(gr_lower *L);
/* Appends the node's epilogue: spec constants at ids 8.. and operand bindings at
 * bindings[first..first+3] (unused ones bound to a dummy). */
void gr_lower_epilogue(gr_lower *L, const gr_node *n, rt_kernel_desc *kd, rt_dispatch *d, int first_binding);
/* Gets the kernel (its fp16 or few-bindings variant as the bindings and limits require) into
 * d->kernel and names the dispatch after the node. */
aps_status gr_lower_kernel(gr_lower *L, const gr_node *n, const rt_kernel_desc *kd, rt_dispatch *d);
/* gr_lower_kernel, then records the dispatch. */
aps_status gr_lower_dispatch(gr_lower *L, const gr_node *n, const rt_kernel_desc *kd, rt_dispatch *d);
/* Records the faster of two variants of one node's dispatch, [0] lavapipe-shaped and [1]
 * GPU-shaped, timing both the first time a device meets this shape (lower_timed.c). */
aps_status gr_lower_pick(gr_lower *L, const gr_node *n, const rt_kernel_desc kd[2], rt_dispatch d[2]);
/* The common case: one dispatch reading input 0 and writing the output, over
 * `workgroups` workgroups (split by gr_lower_groups). */
aps_status gr_lower_one_to_one(gr_lower *L, const gr_node *n, const rt_kernel_desc *kd, const void *push,
                               uint64_t workgroups);
/* Which kernel variant the node runs (*tiled): the lavapipe-shaped one, the GPU-shaped (tiled)
 * one needing `shared` bytes of shared memory, or whichever is faster (timed: GPUs by default,
 * anywhere with APS_KERNEL_VARIANT=timed); and the tiled one's workgroup side (16: 256
 * invocations, or 8: 64 where the caps allow fewer). Refuses an unknown APS_KERNEL_VARIANT. */
enum { GR_VARIANT_PLAIN = 0, GR_VARIANT_TILED = 1, GR_VARIANT_TIMED = 2 };
aps_status gr_lower_variant(gr_lower *L, const gr_node *n, uint32_t shared, int *tiled, uint32_t *wg);
/* Splits a 1-D count of workgroups into x*y within device limits. */
void gr_lower_groups(gr_lower *L, uint64_t groups, uint32_t out[3]);

#define GR_LOWER_FN(name) aps_status gr_lower_##name(gr_lower *L, const gr_node *n)
/* lower_ops.c */
GR_LOWER_FN(unary);
GR_LOWER_FN(binary);
GR_LOWER_FN(where);
GR_LOWER_FN(reduce);
GR_LOWER_FN(matmul);
GR_LOWER_FN(group_norm);
GR_LOWER_FN(softmax);
GR_LOWER_FN(reshape);
GR_LOWER_FN(permute);
GR_LOWER_FN(concat);
GR_LOWER_FN(slice);
GR_LOWER_FN(flip);
GR_LOWER_FN(upsample);
GR_LOWER_FN(avg_pool);
GR_LOWER_FN(time_embed);
GR_LOWER_FN(attention);
GR_LOWER_FN(assign);
GR_LOWER_FN(random);
GR_LOWER_FN(inverse);
GR_LOWER_FN(lu);
GR_LOWER_FN(logabsdet);
/* lower_conv.c */
GR_LOWER_FN(conv2d);
GR_LOWER_FN(conv2d_wgrad);
/* lower_indexing.c */
GR_LOWER_FN(pad);
GR_LOWER_FN(space_to_depth);
GR_LOWER_FN(depth_to_space);
GR_LOWER_FN(gather);
#endif
