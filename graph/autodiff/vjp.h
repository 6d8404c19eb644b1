/* Vector-Jacobian products: one function per op (the op table's vjp column) and the helpers
 * they share (vjp_common.c). Each builds the adjoints of a node's inputs from graph ops, so
 * gradients run wherever the forward graph runs and are checked by the same tests. */
#ifndef APS_GRAPH_VJP_H
#define APS_GRAPH_VJP_H
#include "graph_internal.h"

/* ---- vjp_common.c */
/* A constant of shape s holding value everywhere. */
gr_tensor gr_vjp_filled(gr_graph *g, gr_shape s, float value);
/* Sums a gradient of a broadcast result down to an operand's shape `to`. */
gr_tensor gr_vjp_unbroadcast(gr_graph *g, gr_tensor grad, gr_shape to);
/* Broadcasts x up to `to` (x's dimensions are 1 or equal). */
gr_tensor gr_vjp_expand(gr_graph *g, gr_tensor x, gr_shape to);
gr_tensor gr_vjp_negate(gr_graph *g, gr_tensor x);
/* Nonzero exactly where x > 0: relu(x), a mask for gr_where. */
gr_tensor gr_vjp_positive(gr_graph *g, gr_tensor x);

/* ---- the VJP of each op: fills d[0..n->n_inputs) (0 where an input gets nothing), returns
 * 0 if the op, or its function, has none. */
#define GR_VJP_FN(name) int gr_vjp_##name(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d)
/* vjp_elementwise.c */
GR_VJP_FN(unary);
GR_VJP_FN(binary);
GR_VJP_FN(where);
GR_VJP_FN(reduce);
/* vjp_ops.c */
GR_VJP_FN(matmul);
GR_VJP_FN(group_norm);
GR_VJP_FN(softmax);
GR_VJP_FN(reshape);
GR_VJP_FN(permute);
GR_VJP_FN(concat);
GR_VJP_FN(slice);
GR_VJP_FN(flip);
GR_VJP_FN(upsample);
GR_VJP_FN(avg_pool);
GR_VJP_FN(time_embed);
GR_VJP_FN(attention);
GR_VJP_FN(random);
GR_VJP_FN(inverse);
GR_VJP_FN(logabsdet);
/* vjp_conv.c */
GR_VJP_FN(conv2d);
/* vjp_indexing.c */
GR_VJP_FN(pad);
GR_VJP_FN(space_to_depth);
GR_VJP_FN(depth_to_space);
GR_VJP_FN(gather);
#endif
