/* The CPU device's parallel kernels (fast_ops.c; gr_cpu_fn, the op table's fast column).
 * Ops without one run the reference's kernel on the CPU device. */
#ifndef APS_GRAPH_FAST_OPS_H
#define APS_GRAPH_FAST_OPS_H
#include "graph_internal.h"

#define GR_FAST_FN(name) void gr_fast_##name(const gr_graph *g, const gr_node *n, const float *const *in, float *out)
GR_FAST_FN(unary);
GR_FAST_FN(binary);
GR_FAST_FN(where);
GR_FAST_FN(reduce);
GR_FAST_FN(group_norm);
GR_FAST_FN(softmax);
GR_FAST_FN(reshape);
GR_FAST_FN(permute);
GR_FAST_FN(concat);
GR_FAST_FN(slice);
GR_FAST_FN(flip);
GR_FAST_FN(upsample);
GR_FAST_FN(avg_pool);
GR_FAST_FN(conv2d);       /* the convs oneDNN does not take (reflect padding) */
GR_FAST_FN(conv2d_wgrad); /* the sum of the partial sums (oneDNN runs the first stage) */

/* Below this many values a fork/join costs more than it saves. */
enum { GR_FAST_PAR_MIN = 1 << 14 };

/* Serial kernels over n values (fast_fusion.c's blocks and the loops above): a unary
 * function; a binary one and where with each operand contiguous (s = 1) or one value (s = 0).
 * y may be an operand (in place). */
void gr_fast_unary_block(gr_unary f, float a, float b, const float *x, float *y, int64_t n);
void gr_fast_binary_block(gr_binary f, const float *pa, int sa, const float *pb, int sb, float *y, int64_t n);
void gr_fast_where_block(const float *c, int sc, const float *a, int sa, const float *b, int sb, float *y, int64_t n);

/* Softmax of one row of cols values (y may be x), for attention (fast_dnnl.c). */
void gr_fast_softmax_row(const float *x, float *y, int64_t cols);
#endif
