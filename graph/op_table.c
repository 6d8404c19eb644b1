/* The op table: every implementation of each op, one row per op. The designated initialisers
 * and the static assertion in ir.c keep this table, the enum and the names in step.
 *
 * Columns: cpu, the reference (cpu/reference_*.c); fast, the CPU device's parallel kernel
 * (cpu/fast_ops.c; 0 where the reference serves, oneDNN taking conv2d, matmul and attention
 * first); lower, the Vulkan lowering (vulkan/lower_*.c); vjp, the vector-Jacobian product
 * (autodiff/vjp_*.c; 0 where gradients fail by name); fusable, whether elementwise steps
 * fuse into the node's epilogue; f16, whether its shader reads and writes halves
 * (passes/f16_storage.c). */
#include "autodiff/vjp.h"
#include "cpu/fast_ops.h"
#include "cpu/reference_ops.h"
#include "vulkan/lower.h"

const gr_op_impl gr_op_impls[GR_OP_COUNT] = {
    [GR_OP_INPUT] = {0},
    [GR_OP_PARAM] = {0},
    [GR_OP_CONST] = {0},
    [GR_OP_UNARY] = {gr_cpu_unary, gr_fast_unary, gr_lower_unary, gr_vjp_unary, .fusable = 1, .f16 = GR_F16_RW},
    [GR_OP_BINARY] = {gr_cpu_binary, gr_fast_binary, gr_lower_binary, gr_vjp_binary, .fusable = 1, .f16 = GR_F16_RW},
    [GR_OP_WHERE] = {gr_cpu_where, gr_fast_where, gr_lower_where, gr_vjp_where, .fusable = 1, .f16 = GR_F16_RW},
    /* Reductions read halves but write fp32: their results are small (little to save) and
     * the likeliest to pass half's range (65504). */
    [GR_OP_REDUCE] = {gr_cpu_reduce, gr_fast_reduce, gr_lower_reduce, gr_vjp_reduce, .f16 = GR_F16_READ},
    [GR_OP_MATMUL] = {gr_cpu_matmul, 0, gr_lower_matmul, gr_vjp_matmul, .fusable = 1, .f16 = GR_F16_RW},
    [GR_OP_CONV2D] = {gr_cpu_conv2d, gr_fast_conv2d, gr_lower_conv2d, gr_vjp_conv2d, .fusable = 1, .f16 = GR_F16_RW},
    [GR_OP_GROUP_NORM] = {gr_cpu_group_norm, gr_fast_group_norm, gr_lower_group_norm, gr_vjp_group_norm,
                          .fusable = 1, .f16 = GR_F16_RW},
    [GR_OP_SOFTMAX] = {gr_cpu_softmax, gr_fast_softmax, gr_lower_softmax, gr_vjp_softmax, .f16 = GR_F16_RW},
    [GR_OP_RESHAPE] = {gr_cpu_reshape, gr_fast_reshape, gr_lower_reshape, gr_vjp_reshape}, /* a view */
    [GR_OP_PERMUTE] = {gr_cpu_permute, gr_fast_permute, gr_lower_permute, gr_vjp_permute, .f16 = GR_F16_RW},
    [GR_OP_CONCAT] = {gr_cpu_concat, gr_fast_concat, gr_lower_concat, gr_vjp_concat, .f16 = GR_F16_RW},
    [GR_OP_SLICE] = {gr_cpu_slice, gr_fast_slice, gr_lower_slice, gr_vjp_slice, .f16 = GR_F16_RW},
    [GR_OP_UPSAMPLE] = {gr_cpu_upsample, gr_fast_upsample, gr_lower_upsample, gr_vjp_upsample, .f16 = GR_F16_RW},
    [GR_OP_AVG_POOL] = {gr_cpu_avg_pool, gr_fast_avg_pool, gr_lower_avg_pool, gr_vjp_avg_pool, .f16 = GR_F16_RW},
    /* Not its times as halves: 11 significant bits would move sin(t·f) by up to f·t/2048. */
    [GR_OP_TIME_EMBED] = {gr_cpu_time_embed, 0, gr_lower_time_embed, gr_vjp_time_embed, .f16 = GR_F16_WRITE},
    [GR_OP_PAD] = {gr_cpu_pad, 0, gr_lower_pad, gr_vjp_pad},
    [GR_OP_SPACE_TO_DEPTH] = {gr_cpu_space_to_depth, 0, gr_lower_space_to_depth, gr_vjp_space_to_depth},
    [GR_OP_DEPTH_TO_SPACE] = {gr_cpu_depth_to_space, 0, gr_lower_depth_to_space, gr_vjp_depth_to_space},
    [GR_OP_GATHER] = {gr_cpu_gather, 0, gr_lower_gather, gr_vjp_gather},
    [GR_OP_RANDOM] = {gr_cpu_random, 0, gr_lower_random, gr_vjp_random},
    [GR_OP_INVERSE] = {gr_cpu_inverse, 0, gr_lower_inverse, gr_vjp_inverse},
    /* Internal: the factor logabsdet reads; logabsdet's VJP gives it nothing. */
    [GR_OP_LU] = {gr_cpu_lu, 0, gr_lower_lu, 0},
    [GR_OP_LOGABSDET] = {gr_cpu_logabsdet, 0, gr_lower_logabsdet, gr_vjp_logabsdet},
    [GR_OP_ATTENTION] = {gr_cpu_attention, 0, gr_lower_attention, gr_vjp_attention, .f16 = GR_F16_RW},
    /* An effect, not a function: no VJP. */
    [GR_OP_ASSIGN] = {gr_cpu_assign, 0, gr_lower_assign, 0},
    /* No second derivatives. */
    [GR_OP_CONV2D_WGRAD] = {gr_cpu_conv2d_wgrad, gr_fast_conv2d_wgrad, gr_lower_conv2d_wgrad, 0},
    [GR_OP_FLIP] = {gr_cpu_flip, gr_fast_flip, gr_lower_flip, gr_vjp_flip, .f16 = GR_F16_RW},
};
