/* The CPU reference kernels, one per op (cpu_ops.c). */
#ifndef APS_CPU_OPS_H
#define APS_CPU_OPS_H
#include "graph_internal.h"

#define GR_CPU_FN(name) void gr_cpu_##name(const gr_graph *g, const gr_node *n, const float *const *in, float *out)
GR_CPU_FN(unary);
GR_CPU_FN(binary);
GR_CPU_FN(where);
GR_CPU_FN(reduce);
GR_CPU_FN(matmul);
GR_CPU_FN(conv2d);
GR_CPU_FN(group_norm);
GR_CPU_FN(softmax);
GR_CPU_FN(reshape);
GR_CPU_FN(permute);
GR_CPU_FN(concat);
GR_CPU_FN(slice);
GR_CPU_FN(upsample);
GR_CPU_FN(avg_pool);
GR_CPU_FN(time_embed);

void gr_bcast_strides(gr_shape s, gr_shape out, int64_t st[4]);
#endif
