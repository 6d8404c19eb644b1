/* graph/ — the compute-graph compiler: a graph of tensor ops built once, then run many
 * times on a Vulkan device (gr_plan) or on the CPU (the reference interpreter).
 *
 * Contract
 * - Tensors are fp32, contiguous, with 1 to 4 dimensions (images are NCHW). A tensor is a
 *   gr_tensor handle (an index into its graph); 0 is never a valid handle. A Vulkan plan may
 *   store intermediate tensors as IEEE halves (gr_plan_desc.f16_storage); kernels still
 *   compute in fp32, and what crosses the API (gr_plan_set/get) is always fp32.
 * - Builders (gr_add, gr_conv2d, ...) infer the output shape at once. On a bad shape or
 *   argument they record an error naming the current scope (gr_scope_push), the op and the
 *   shapes at fault, and return the invalid handle 0; every later builder given 0 returns
 *   0 too, so a whole model can be built and checked once with gr_graph_status().
 * - Inputs are fed per run; parameters are named, loaded (or set) once per plan; constants
 *   carry their data in the graph. Outputs are marked with gr_output.
 * - A plan (gr_plan_compile) lowers the graph once: dead nodes removed, elementwise
 *   epilogues fused and upsampling, channel concatenations and residual 1x1 convs fused into
 *   convolutions (unless disabled), a memory plan of tensor lifetimes, kernels chosen, and
 *   one command stream recorded; gr_plan_run replays it.
 * - The CPU reference (gr_cpu_*) runs the same graph with plain loops: the oracle of every
 *   test.
 * - Nothing here knows about operators, losses or the method: that is app/.
 */
#ifndef APS_GRAPH_H
#define APS_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "aps_status.h"
#include "rt.h"

enum { GR_MAX_DIMS = 4, GR_MAX_INPUTS = 6, GR_MAX_NAME = 96 };

typedef uint32_t gr_tensor; /* 0 = invalid */
typedef struct gr_graph gr_graph;
typedef struct gr_plan gr_plan;

typedef struct gr_shape {
  int rank;
  int64_t d[GR_MAX_DIMS];
} gr_shape;

/* --------------------------------------------------------------- the op table */
/* X(id, name, arity): arity -1 = variable. Keep names unique: tests and benches use them. */
#define GR_OPS(X)                 \
  X(INPUT, "input", 0)            \
  X(PARAM, "param", 0)            \
  X(CONST, "const", 0)            \
  X(UNARY, "unary", 1)            \
  X(BINARY, "binary", 2)          \
  X(WHERE, "where", 3)            \
  X(REDUCE, "reduce", 1)          \
  X(MATMUL, "matmul", 2)          \
  X(CONV2D, "conv2d", -1)         \
  X(GROUP_NORM, "group_norm", -1) \
  X(SOFTMAX, "softmax", 1)        \
  X(RESHAPE, "reshape", 1)        \
  X(PERMUTE, "permute", 1)        \
  X(CONCAT, "concat", 2)          \
  X(SLICE, "slice", 1)            \
  X(UPSAMPLE, "upsample", 1)      \
  X(AVG_POOL, "avg_pool", 1)      \
  X(TIME_EMBED, "time_embed", 1)  \
  X(PAD, "pad", 1)                \
  X(SPACE_TO_DEPTH, "space_to_depth", 1) \
  X(DEPTH_TO_SPACE, "depth_to_space", 1) \
  X(GATHER, "gather", 2)          \
  X(RANDOM, "random", 1)          \
  X(INVERSE, "inverse", 1)        \
  X(LU, "lu", 1) /* internal: the factor gr_logabsdet reads */ \
  X(LOGABSDET, "logabsdet", 2)   \
  X(ATTENTION, "attention", 1)   \
  X(ASSIGN, "assign", 2)         \
  X(CONV2D_WGRAD, "conv2d_wgrad", -1) /* partial sums, then their sum (build_conv.c) */ \
  X(FLIP, "flip", 1)

typedef enum gr_op {
#define GR_OP_ENUM(id, name, arity) GR_OP_##id,
  GR_OPS(GR_OP_ENUM)
#undef GR_OP_ENUM
      GR_OP_COUNT
} gr_op;

const char *gr_op_name(gr_op op);

typedef enum gr_unary {
  GR_IDENTITY = 0, GR_EXP, GR_LOG, GR_TANH, GR_SIGMOID, GR_SILU, GR_LEAKY_RELU, GR_SOFTPLUS,
  GR_SQUARE, GR_SQRT, GR_RSQRT, GR_ABS, GR_NEG, GR_RELU,
  GR_AFFINE, /* x * a + b */
  GR_CLAMP,  /* min(max(x, a), b) */
  GR_UNARY_COUNT
} gr_unary;

typedef enum gr_binary { GR_ADD = 0, GR_SUB, GR_MUL, GR_DIV, GR_MAX, GR_MIN, GR_BINARY_COUNT } gr_binary;

typedef enum gr_reduce { GR_SUM = 0, GR_MEAN, GR_VAR, GR_RMAX, GR_SUMSQ, GR_LOGSUMEXP, GR_REDUCE_COUNT } gr_reduce;

const char *gr_unary_name(gr_unary f);
const char *gr_binary_name(gr_binary f);
const char *gr_reduce_name(gr_reduce f);

/* --------------------------------------------------------------- graphs */

gr_graph *gr_graph_create(void);
void gr_graph_destroy(gr_graph *g);
/* APS_OK, or the first builder error (its message is also in aps_last_error()). */
aps_status gr_graph_status(const gr_graph *g);
const char *gr_graph_error(const gr_graph *g);

/* Names of nodes built until the matching pop are prefixed "scope." (nested). */
void gr_scope_push(gr_graph *g, const char *name);
void gr_scope_pop(gr_graph *g);

gr_tensor gr_input(gr_graph *g, const char *name, gr_shape shape);
gr_tensor gr_param(gr_graph *g, const char *name, gr_shape shape);
/* Copies data (shape's element count of floats). */
gr_tensor gr_const(gr_graph *g, const char *name, gr_shape shape, const float *data);
gr_tensor gr_const_scalar(gr_graph *g, float value);
void gr_output(gr_graph *g, gr_tensor t, const char *name);

gr_shape gr_tensor_shape(const gr_graph *g, gr_tensor t);
const char *gr_tensor_name(const gr_graph *g, gr_tensor t);
int64_t gr_shape_count(gr_shape s);
/* "[1, 32, 16, 16]" into buf. */
const char *gr_shape_str(gr_shape s, char *buf, size_t size);
gr_shape gr_shape_make(int rank, const int64_t *d);
#define GR_SHAPE(...) gr_shape_make((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

/* Elementwise. Binary ops broadcast numpy-style (dimensions aligned on the right). */
gr_tensor gr_unary_op(gr_graph *g, gr_unary f, gr_tensor x);
gr_tensor gr_leaky_relu(gr_graph *g, gr_tensor x, float slope);
gr_tensor gr_binary_op(gr_graph *g, gr_binary f, gr_tensor a, gr_tensor b);
gr_tensor gr_add(gr_graph *g, gr_tensor a, gr_tensor b);
gr_tensor gr_sub(gr_graph *g, gr_tensor a, gr_tensor b);
gr_tensor gr_mul(gr_graph *g, gr_tensor a, gr_tensor b);
gr_tensor gr_div(gr_graph *g, gr_tensor a, gr_tensor b);
gr_tensor gr_silu(gr_graph *g, gr_tensor x);
/* y = x * scale + shift (scalars). */
gr_tensor gr_scale_shift(gr_graph *g, gr_tensor x, float scale, float shift);
gr_tensor gr_clamp(gr_graph *g, gr_tensor x, float lo, float hi);
/* mask != 0 ? a : b, broadcasting all three. */
gr_tensor gr_where(gr_graph *g, gr_tensor mask, gr_tensor a, gr_tensor b);

/* Reductions over the axes whose bit is set in axes_mask (bit i = dimension i); the
 * reduced dimensions are kept with size 1. */
gr_tensor gr_reduce_op(gr_graph *g, gr_reduce f, gr_tensor x, unsigned axes_mask);

/* Batched matmul over the last two dimensions, leading dimensions broadcast. */
gr_tensor gr_matmul(gr_graph *g, gr_tensor a, gr_tensor b, int transpose_a, int transpose_b);

typedef enum gr_pad_mode { GR_PAD_ZERO = 0, GR_PAD_REFLECT } gr_pad_mode;

typedef struct gr_conv2d_desc {
  int stride, padding, dilation; /* 0 = 1, 0, 1; padding on every side */
  int groups;                    /* 0 = 1; groups == channels = depthwise */
  gr_pad_mode pad_mode;
} gr_conv2d_desc;

/* x [N, C, H, W], w [O, C/groups, KH, KW], bias [O] or 0. */
gr_tensor gr_conv2d(gr_graph *g, gr_tensor x, gr_tensor w, gr_tensor bias, const gr_conv2d_desc *d);

/* The weight gradient of gr_conv2d(x, w, ., d) given gy = d loss / d y [N, O, OH, OW]:
 * dW [O, C/groups, kh, kw] with dW[o, c, ky, kx] = Σ_{n, oy, ox} gy[n, o, oy, ox] ·
 * x[n, g·C/groups + c, oy·s + ky·dil − p, ox·s + kx·dil − p] (zero outside x; g = o's group).
 * Zero padding only. Built as a split-K GEMM: partial sums over slices of the
 * N·OH·OW reduction, then their sum (two nodes of op conv2d_wgrad). */
gr_tensor gr_conv2d_wgrad(gr_graph *g, gr_tensor x, gr_tensor gy, int kh, int kw, const gr_conv2d_desc *d);

/* x [N, C, ...] normalised over (C/groups channels × spatial) per group, then gamma, beta
 * per channel (each [C] or 0). */
gr_tensor gr_group_norm(gr_graph *g, gr_tensor x, int groups, gr_tensor gamma, gr_tensor beta, float eps);

/* Softmax over the last dimension. */
gr_tensor gr_softmax(gr_graph *g, gr_tensor x);

/* Same elements, new shape (free: a view of the same memory). One dimension may be -1. */
gr_tensor gr_reshape(gr_graph *g, gr_tensor x, gr_shape shape);
/* out.d[i] = x.d[perm[i]]. */
gr_tensor gr_permute(gr_graph *g, gr_tensor x, const int *perm);
gr_tensor gr_concat(gr_graph *g, gr_tensor a, gr_tensor b, int axis);
/* x[..., start:start+length, ...] along axis. */
gr_tensor gr_slice(gr_graph *g, gr_tensor x, int axis, int64_t start, int64_t length);
/* x reversed along the axes whose bit is set in axes_mask (bit i = dimension i; 0 copies):
 * out[..., i, ...] = x[..., d - 1 - i, ...]. Its own inverse. */
gr_tensor gr_flip(gr_graph *g, gr_tensor x, unsigned axes_mask);

typedef enum gr_upsample_mode { GR_NEAREST = 0, GR_BILINEAR } gr_upsample_mode;
gr_tensor gr_upsample2x(gr_graph *g, gr_tensor x, gr_upsample_mode mode);
gr_tensor gr_avg_pool2x(gr_graph *g, gr_tensor x);

/* Scaled dot-product self-attention, one head, over L positions: qkv [N, 3C, L] holds q, k,
 * v as consecutive channel blocks (as a 1×1 conv to 3C channels makes them); the result
 * [N, C, L] is out[:, i] = Σ_j softmax_j(q[:, i]·k[:, j] / sqrt(C)) v[:, j]. L ≤ 4096. */
gr_tensor gr_attention(gr_graph *g, gr_tensor qkv);

/* t [N] -> [N, dim]: sin(t·f_i) for i < dim/2, cos for the rest, f_i = max_period^(-i/(dim/2)). */
gr_tensor gr_time_embed(gr_graph *g, gr_tensor t, int dim, float max_period);

/* ---- padding, pixel (un)shuffle, gather (build_indexing.c), random numbers, small linear
 * algebra (build_ops.c) */

/* x [N, C, H, W] grown by pads = {top, bottom, left, right} (each >= 0) with zeros, or with
 * a mirror image that does not repeat the edge (PyTorch's "reflect": each pad < its side). */
gr_tensor gr_pad(gr_graph *g, gr_tensor x, const int pads[4], gr_pad_mode mode);
/* PyTorch's pixel_unshuffle: [N, C, H, W] -> [N, C·b·b, H/b, W/b] with
 * out[n, c·b·b + i·b + j, h, w] = x[n, c, h·b + i, w·b + j]. depth_to_space (pixel_shuffle)
 * is its exact inverse: [N, C·b·b, H, W] -> [N, C, H·b, W·b]. */
gr_tensor gr_space_to_depth(gr_graph *g, gr_tensor x, int block);
gr_tensor gr_depth_to_space(gr_graph *g, gr_tensor x, int block);
/* out = x indexed along axis by index[0..count): out.d[axis] = count, each index in
 * [0, x.d[axis]) (checked here). The indices live in the graph as a constant tensor of
 * floats holding integers (exact below 2^24), the node's second input. */
gr_tensor gr_gather(gr_graph *g, gr_tensor x, int axis, const int32_t *index, int64_t count);

/* Counter-based random numbers, the same bits on the CPU and every device: element i is
 * word i % 4 of Philox4x32-10(counter = {i / 4, 0, 0, 0}, key = {seed, stream}).
 * Uniform: (word >> 8) · 2^-24, in [0, 1). Normal: Box-Muller on the word pairs (0, 1) and
 * (2, 3) of each block, u1 = ((w0 >> 8) + 1) · 2^-24, angle 2π · (w1 >> 8) · 2^-24, with
 * log/sin/cos as fp32 polynomials shared by both sides (agreeing to about 1e-6).
 * seed is an input tensor so a plan reruns with new seeds without recompiling: [1] holding
 * an integer in [0, 2^24), or [2] holding two integers in [0, 2^16) (seed = s0 + s1 · 2^16).
 * Values outside the range clamp; fractions truncate. stream separates draws sharing a seed. */
typedef enum gr_distribution { GR_UNIFORM = 0, GR_NORMAL, GR_DISTRIBUTION_COUNT } gr_distribution;
gr_tensor gr_random(gr_graph *g, gr_shape shape, gr_tensor seed, uint32_t stream, gr_distribution dist);

/* w [C, C], C <= 512: the inverse, and log|det w| as [1], by LU with partial pivoting in
 * fp32 (one workgroup on Vulkan; the CPU reference works in double). A singular w gives
 * inf/NaN entries and -inf. */
gr_tensor gr_inverse(gr_graph *g, gr_tensor w);
gr_tensor gr_logabsdet(gr_graph *g, gr_tensor w);

/* A parameter that starts at zero by itself (optimizer moments, EMA weights): nothing
 * needs to set it before the first run. */
gr_tensor gr_state(gr_graph *g, const char *name, gr_shape shape);
/* Writes value into the parameter or state `target` when the graph runs; nodes built
 * afterwards see the new value (effects happen in build order). Kept by dead-node
 * removal although nothing reads it. */
gr_tensor gr_assign(gr_graph *g, gr_tensor target, gr_tensor value);

/* --------------------------------------------------------------- gradients (autodiff/) */

/* Reverse-mode differentiation: adds to g the nodes computing d loss / d wrt[i] for each i
 * (grads[i] has wrt[i]'s shape; 0 where loss does not depend on it). loss may have any
 * shape: the seed is all ones, i.e. the gradient of the sum of its elements. Parameters,
 * inputs and intermediate tensors can all be differentiated against.
 * Ops without a vector-Jacobian product (conv2d with reflect padding; assign, an effect
 * rather than a function) fail with APS_ERR_UNSUPPORTED naming the node.
 * At a kink the gradient is a subgradient: relu and abs 0 at 0, leaky_relu 1 at 0, clamp 1
 * strictly inside (lo, hi) only; max/min all to the selected operand, a tie to the first;
 * reduce max split evenly among equal maxima. where gives nothing to its mask, gather
 * nothing to its indices, and random numbers are constants (nothing to the seed). */
aps_status gr_grad(gr_graph *g, gr_tensor loss, uint32_t n_wrt, const gr_tensor *wrt, gr_tensor *grads);

/* --------------------------------------------------------------- inspection */

typedef struct gr_stats {
  uint32_t tensors, nodes, params;
  int64_t param_floats;
  int64_t flops; /* of the conv2d, weight-gradient and matmul nodes that some output or
                    assignment needs, 2 per multiply-add */
} gr_stats;
void gr_graph_get_stats(const gr_graph *g, gr_stats *out);

/* Iterate named parameters (states included) and inputs: return 0 past the end. */
gr_tensor gr_param_at(const gr_graph *g, uint32_t index);
gr_tensor gr_input_at(const gr_graph *g, uint32_t index);
int gr_tensor_is_state(const gr_graph *g, gr_tensor t); /* made by gr_state */
gr_tensor gr_find(const gr_graph *g, const char *name); /* input, param or output by name */

/* --------------------------------------------------------------- the CPU reference */

typedef struct gr_cpu gr_cpu;
aps_status gr_cpu_create(const gr_graph *g, gr_cpu **out);
/* fast = 0: the reference, as gr_cpu_create. fast = 1: the CPU device: conv2d and matmul
 * through oneDNN, the other ops in parallel loops (fp32 sums; matches the reference to
 * about 1e-4). threads: 0 = OpenMP's default (OMP_NUM_THREADS or every core). Where other
 * processes keep cores busy, OMP_WAIT_POLICY=passive or fewer threads avoid OpenMP's
 * spinning waits (measured 30x slower at batch 1 with one of two cores taken).
 * The CPU device (fast = 1) plans its memory as a Vulkan plan does: intermediate tensors share
 * one arena by lifetime (a reshape is a view, elementwise nodes may write over an input that
 * dies there), so after a run gr_cpu_values gives the values of inputs, parameters, states,
 * constants and outputs only; for other tensors it may give another tensor's values, or NULL
 * where no output needs the tensor at all. The reference keeps every tensor. */
/* bf16_frozen (CPU device only): a conv2d whose weights no assignment updates (a frozen
 * network, as the prior inside distillation, and the backward-data convs of its input
 * gradient) reads its input and weights as bfloat16, accumulating and writing fp32, where
 * the CPU has native bf16 dot products (AVX512_BF16, AMX); error about 2e-3 of a conv's
 * output range against about 1e-6. Elsewhere, and for every trained weight, fp32 as without it. */
typedef struct gr_cpu_desc { int fast; int threads; int bf16_frozen; } gr_cpu_desc;
/* Whether bf16_frozen takes effect on this CPU. */
int gr_cpu_has_bf16(void);
aps_status gr_cpu_create_ex(const gr_graph *g, const gr_cpu_desc *desc, gr_cpu **out);
void gr_cpu_destroy(gr_cpu *c);
/* Sets an input or parameter by name (count floats, must match its shape). */
aps_status gr_cpu_set(gr_cpu *c, const char *name, const float *data, int64_t count);
aps_status gr_cpu_run(gr_cpu *c);
/* Any tensor's values after a run (outputs by name via gr_find). */
const float *gr_cpu_values(const gr_cpu *c, gr_tensor t);
/* Host memory of the tensors: own arrays (all of them for the reference), and the CPU
 * device's arena against what its tensors would take one array each. */
typedef struct gr_cpu_memory_stats {
  uint64_t own_bytes, arena_bytes, unplanned_bytes;
  uint32_t shared_tensors; /* views and in-place writes */
  uint32_t grouped_nodes, groups; /* elementwise nodes the CPU device runs as groups (one loop each) */
  uint32_t bf16_convs;            /* convs that read bf16 (gr_cpu_desc.bf16_frozen) */
} gr_cpu_memory_stats;
void gr_cpu_memory(const gr_cpu *c, gr_cpu_memory_stats *out);

/* --------------------------------------------------------------- Vulkan plans */

typedef struct gr_plan_desc {
  int no_fusion;       /* keep every node its own dispatch (for tests and comparison) */
  int fold_norms;      /* fold GroupNorms between convs into them (statistics from the
                          producing conv, normalisation on load in the consumer): 17 fewer
                          U-Net dispatches, but on lavapipe the folded convs cost more than
                          the dispatches they save, so it is off by default (README, "Graph
                          results") */
  int max_timestamps;  /* > 0: time each dispatch */
  int f16_storage;     /* store intermediate tensors as IEEE halves (half the arena and its
                          traffic), converting to fp32 on every load: each tensor whose
                          producing and consuming kernels all handle halves (conv2d, matmul,
                          group norm, elementwise, attention, softmax, concat, slice,
                          permute, upsample, avg pool, time embedding; reductions read halves
                          but write fp32). Inputs, parameters, states, constants, outputs,
                          folded GroupNorm statistics and time_embed's times stay fp32, as
                          does every tensor next to another op. Values keep 11 significant
                          bits (relative error <= 2^-10, the device rounding to nearest or
                          toward zero) and overflow past ±65504. Needs the device's
                          fp16_storage (storageBuffer16BitAccess): without it gr_plan_compile
                          fails with APS_ERR_UNSUPPORTED rather than silently running fp32. */
} gr_plan_desc;

typedef struct gr_plan_stats {
  uint32_t dispatches, barriers, fused_nodes;
  uint64_t arena_bytes;       /* planned peak of intermediate tensors */
  uint64_t unplanned_bytes;   /* sum of all intermediate tensors, for comparison */
  uint64_t param_bytes, io_bytes;
  uint32_t f16_tensors;       /* intermediates stored as halves (f16_storage; views not counted) */
} gr_plan_stats;

aps_status gr_plan_compile(const gr_graph *g, rt_device *dev, const gr_plan_desc *desc, gr_plan **out);
void gr_plan_destroy(gr_plan *p);
aps_status gr_plan_set(gr_plan *p, const char *name, const float *data, int64_t count);
aps_status gr_plan_run(gr_plan *p);
/* Reads an output, or a parameter or state (e.g. after training steps). */
aps_status gr_plan_get(gr_plan *p, const char *name, float *data, int64_t count);
void gr_plan_get_stats(const gr_plan *p, gr_plan_stats *out);
/* After a run with max_timestamps: per-dispatch timings named by node. */
uint32_t gr_plan_timings(gr_plan *p, rt_timing *out, uint32_t max);
/* Where a node has a lavapipe-shaped and a GPU-shaped kernel (conv2d, its weight gradient,
 * matmul), GPUs (and any device under APS_KERNEL_VARIANT=timed) time both the first time the
 * process meets a shape: how many shapes were timed, and how many lowerings reused a choice. */
void gr_variant_stats(uint32_t *timed, uint32_t *reused);

#endif
