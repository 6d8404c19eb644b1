/* The Vulkan lowering of each op (lower.c, lower_conv.c). */
#ifndef APS_GRAPH_LOWER_H
#define APS_GRAPH_LOWER_H
#include "graph_internal.h"

#define GR_LOWER_FN(name) aps_status gr_lower_##name(gr_lower *L, const gr_node *n)
GR_LOWER_FN(unary);
GR_LOWER_FN(binary);
GR_LOWER_FN(where);
GR_LOWER_FN(reduce);
GR_LOWER_FN(matmul);
GR_LOWER_FN(conv2d);
GR_LOWER_FN(group_norm);
GR_LOWER_FN(softmax);
GR_LOWER_FN(reshape);
GR_LOWER_FN(permute);
GR_LOWER_FN(concat);
GR_LOWER_FN(slice);
GR_LOWER_FN(upsample);
GR_LOWER_FN(avg_pool);
GR_LOWER_FN(time_embed);
GR_LOWER_FN(attention);
GR_LOWER_FN(assign);
/* lower_extra.c */
GR_LOWER_FN(pad);
GR_LOWER_FN(space_to_depth);
GR_LOWER_FN(depth_to_space);
GR_LOWER_FN(gather);
GR_LOWER_FN(random);
GR_LOWER_FN(inverse);
GR_LOWER_FN(lu);
GR_LOWER_FN(logabsdet);
/* lower_wgrad.c */
GR_LOWER_FN(conv2d_wgrad);
#endif
