/* Which CPU reference and Vulkan lowering implement each op. The designated initialisers
 * and the static assertion in ir.c keep this table, the enum and the names in step. */
#include "cpu_ops.h"
#include "lower.h"

const gr_op_impl gr_op_impls[GR_OP_COUNT] = {
    [GR_OP_INPUT] = {0},
    [GR_OP_PARAM] = {0},
    [GR_OP_CONST] = {0},
    [GR_OP_UNARY] = {gr_cpu_unary, gr_lower_unary, 1},
    [GR_OP_BINARY] = {gr_cpu_binary, gr_lower_binary, 1},
    [GR_OP_WHERE] = {gr_cpu_where, gr_lower_where, 1},
    [GR_OP_REDUCE] = {gr_cpu_reduce, gr_lower_reduce, 0},
    [GR_OP_MATMUL] = {gr_cpu_matmul, gr_lower_matmul, 1},
    [GR_OP_CONV2D] = {gr_cpu_conv2d, gr_lower_conv2d, 1},
    [GR_OP_GROUP_NORM] = {gr_cpu_group_norm, gr_lower_group_norm, 1},
    [GR_OP_SOFTMAX] = {gr_cpu_softmax, gr_lower_softmax, 0},
    [GR_OP_RESHAPE] = {gr_cpu_reshape, gr_lower_reshape, 0},
    [GR_OP_PERMUTE] = {gr_cpu_permute, gr_lower_permute, 0},
    [GR_OP_CONCAT] = {gr_cpu_concat, gr_lower_concat, 0},
    [GR_OP_SLICE] = {gr_cpu_slice, gr_lower_slice, 0},
    [GR_OP_UPSAMPLE] = {gr_cpu_upsample, gr_lower_upsample, 0},
    [GR_OP_AVG_POOL] = {gr_cpu_avg_pool, gr_lower_avg_pool, 0},
    [GR_OP_TIME_EMBED] = {gr_cpu_time_embed, gr_lower_time_embed, 0},
    [GR_OP_PAD] = {gr_cpu_pad, gr_lower_pad, 0},
    [GR_OP_SPACE_TO_DEPTH] = {gr_cpu_space_to_depth, gr_lower_space_to_depth, 0},
    [GR_OP_DEPTH_TO_SPACE] = {gr_cpu_depth_to_space, gr_lower_depth_to_space, 0},
    [GR_OP_GATHER] = {gr_cpu_gather, gr_lower_gather, 0},
    [GR_OP_RANDOM] = {gr_cpu_random, gr_lower_random, 0},
    [GR_OP_INVERSE] = {gr_cpu_inverse, gr_lower_inverse, 0},
    [GR_OP_LU] = {gr_cpu_lu, gr_lower_lu, 0},
    [GR_OP_LOGABSDET] = {gr_cpu_logabsdet, gr_lower_logabsdet, 0},
    [GR_OP_ATTENTION] = {gr_cpu_attention, gr_lower_attention, 0},
    [GR_OP_ASSIGN] = {gr_cpu_assign, gr_lower_assign, 0},
    [GR_OP_CONV2D_WGRAD] = {gr_cpu_conv2d_wgrad, gr_lower_conv2d_wgrad, 0},
};
