/* Private to graph/: the structs behind graph.h, the per-op interface, and the helpers
 * that op files share. */
#ifndef APS_GRAPH_INTERNAL_H
#define APS_GRAPH_INTERNAL_H

#include "graph.h"

enum { GR_NONE = 0, GR_MAX_ATTR_I = 12, GR_MAX_ATTR_F = 4, GR_MAX_EPILOGUE = 4 };

/* A fused elementwise step applied to each output value of a node, in order. */
typedef enum gr_bcast {
  GR_BCAST_FULL = 0, /* operand has the output's shape */
  GR_BCAST_NC,       /* [N, C, 1, 1]: one value per sample and channel */
  GR_BCAST_C,        /* [C] or [1, C, 1, 1]: one value per channel */
  GR_BCAST_SCALAR,   /* one value */
} gr_bcast;

typedef struct gr_epilogue_step {
  uint8_t is_binary; /* else unary */
  uint8_t fn;        /* gr_unary or gr_binary */
  uint8_t bcast;     /* gr_bcast of the operand (binary) */
  uint8_t operand_first; /* binary: 1 = operand ∘ value, 0 = value ∘ operand */
  uint32_t operand;  /* tensor (binary) */
  float a, b;        /* unary parameters (leaky slope, affine, clamp); for a windowed
                        per-(n,c) operand: its row length and first column */
  uint32_t window_channels; /* > 0: the operand is columns [b, b + this) of an [N, a] matrix */
} gr_epilogue_step;

typedef struct gr_epilogue {
  int count;
  gr_epilogue_step step[GR_MAX_EPILOGUE];
} gr_epilogue;

/* A GroupNorm folded away (passes/fusion.c): the conv that produces its input writes partial
 * statistics of that output (stats_out), and the conv that consumes its output reads the
 * un-normalised tensor and normalises each value on load (norm_in): then gamma, beta and,
 * if silu, SiLU, as the GroupNorm and its fused SiLU would have. */
typedef struct gr_norm_fold {
  uint32_t stats;       /* the partial statistics tensor (0: no fold) */
  uint32_t gamma, beta; /* 0: none */
  int groups, silu;
  float eps;
} gr_norm_fold;

/* What the fusions into convolutions (passes/fusion_conv.c) add to a conv2d node. */
typedef struct gr_conv_fusion {
  uint32_t x2, w2, b2; /* x2: 0, or + conv1x1(x2, w2) (+ b2 if not 0) summed with the main conv
                          (a residual block's skip conv, merged into the conv it adds to) */
  int upsample;        /* input 0 is read upsampled 2x (nearest) */
  int64_t out_c0;      /* the output is channels [out_c0, out_c0 + O) of the node's output
                          tensor (a concatenation; else 0 and the whole tensor) */
  uint32_t out2;       /* 0, or a concatenation also written, at channels [out2_c0, out2_c0 + O) */
  int64_t out2_c0;
} gr_conv_fusion;

/* Partial GroupNorm statistics as conv2d_f32.comp writes them for an [N, C, H, W] output:
 * a (mean, M2) pair per (sample, unit of min(C/groups, 8) channels, tile of 32 pixels). */
enum { GR_NORM_TILE = 32, GR_MAX_READS = GR_MAX_INPUTS + GR_MAX_EPILOGUE + 6 };
static inline int64_t gr_norm_stats_count(gr_shape s, int groups) {
  int64_t cg = s.d[1] / groups, unit = cg < 8 ? cg : 8, pixels = s.d[2] * s.d[3];
  return s.d[0] * (s.d[1] / unit) * ((pixels + GR_NORM_TILE - 1) / GR_NORM_TILE) * 2;
}

typedef struct gr_node {
  gr_op op;
  int n_inputs;
  uint32_t inputs[GR_MAX_INPUTS];
  uint32_t output;
  int64_t ia[GR_MAX_ATTR_I];
  float fa[GR_MAX_ATTR_F];
  char name[GR_MAX_NAME];
  gr_epilogue ep; /* filled by fusion in a plan's copy of the graph */
  uint32_t stats_out;  /* fusion: a conv also writes GroupNorm partials of its output here */
  int stats_groups;    /* ... for this many groups */
  gr_norm_fold norm_in; /* fusion: a conv group-normalises its input 0 on load */
  gr_conv_fusion cf;    /* fusion: a conv's second input, upsampled input, concat outputs */
  int dead;       /* removed by a pass */
} gr_node;

typedef struct gr_tensor_info {
  gr_shape shape;
  gr_op kind;     /* GR_OP_INPUT, GR_OP_PARAM, GR_OP_CONST, or the producing node's op */
  uint32_t node;  /* producing node index + 1, or 0 */
  uint32_t alias; /* reshape: the tensor whose memory this is (else 0) */
  int output;     /* marked with gr_output */
  int zero_init;  /* a state: starts at zero */
  char name[GR_MAX_NAME];
  float *data;    /* constants */
} gr_tensor_info;

struct gr_graph {
  gr_tensor_info *t; /* t[0] unused: handle 0 is invalid */
  uint32_t nt, cap_t;
  gr_node *n;
  uint32_t nn, cap_n;
  char scope[512];
  uint16_t scope_len[32]; /* length of scope before each push, for pop */
  int scope_depth;
  aps_status status;
  char error[1024];
};

/* The tensor whose memory t uses: t itself, or the tensor a view (reshape) aliases. */
/* FNV-1a 64 over n bytes, continuing from h (start from GR_FNV1A_INIT): content digests
 * (gr_st_digest) and cache keys (vulkan/lower_timed.c). */
#define GR_FNV1A_INIT 0xcbf29ce484222325ull
static inline uint64_t gr_fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static inline uint32_t gr_root_of(const gr_graph *g, uint32_t t) { return g->t[t].alias ? g->t[t].alias : t; }

/* ---- building (ir.c) */
gr_tensor_info *gr_t(const gr_graph *g, gr_tensor t);
/* Checks handles, returns 0 if the graph already failed or a handle is bad. */
int gr_ok(gr_graph *g, int n, const gr_tensor *ts);
/* Records the first error, prefixed with the scope and op. Returns 0 (the bad handle). */
gr_tensor gr_error(gr_graph *g, const char *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Appends a node with its output tensor; returns the output handle (0 on failure). */
gr_tensor gr_node_add(gr_graph *g, gr_op op, const char *label, int n_in, const gr_tensor *in, gr_shape out,
                      gr_node **node_out);
gr_tensor gr_tensor_new(gr_graph *g, gr_op kind, const char *name, gr_shape s);
gr_graph *gr_graph_clone(const gr_graph *g);
/* Broadcast shape of a and b (numpy rules), 0 on mismatch. */
int gr_broadcast_shape(gr_shape a, gr_shape b, gr_shape *out);
/* Pads a shape on the left to 4 dims (for kernels). */
void gr_shape4(gr_shape s, int64_t out[4]);

/* ---- scalar functions shared by the CPU reference and the epilogue (scalar.c) */
float gr_unary_eval(gr_unary f, float x, float a, float b); /* a, b: see gr_unary */
float gr_binary_eval(gr_binary f, float a, float b);

/* Strides (in elements) of `s` seen as a 4-D broadcast against `out`: 0 where s has 1 (ir.c). */
void gr_bcast_strides(gr_shape s, gr_shape out, int64_t st[4]);

/* The shape of tensor x in the graph `g` of the function using it (op files), and a shape
 * as text for a message. */
#define SHAPE(x) (g->t[(x)].shape)
#define SHAPE_STR(s) gr_shape_str((s), (char[64]){0}, 64)

/* The graph a plan or CPU interpreter runs (vulkan/plan.c, cpu/reference.c). */
const gr_graph *gr_plan_graph(const gr_plan *p);
const gr_graph *gr_cpu_graph(const gr_cpu *c);

/* ---- the op table (op_table.c): one row per op, every implementation of it */
typedef struct gr_lower gr_lower; /* vulkan/lower.h */
/* A CPU kernel: in[i] = values of the node's inputs, out = its output (already sized). */
typedef void (*gr_cpu_fn)(const gr_graph *g, const gr_node *n, const float *const *in, float *out);
/* A vector-Jacobian product: builds the adjoint of each input from gy into d[0..n_inputs)
 * (0 where an input gets none); returns 0 where the op (or its function) has none. */
typedef int (*gr_vjp_fn)(gr_graph *g, const gr_node *n, gr_tensor gy, gr_tensor *d);
/* Storage of halves (gr_plan_desc.f16_storage, passes/f16_storage.c): the op's shader reads
 * its inputs and epilogue operands, or writes its output, through shaders/storage.glsl. */
enum { GR_F16_READ = 1, GR_F16_WRITE = 2, GR_F16_RW = 3 };
typedef struct gr_op_impl {
  gr_cpu_fn cpu;  /* the reference (cpu/): plain loops, the oracle of every test */
  gr_cpu_fn fast; /* the CPU device's parallel kernel (cpu/fast_ops.c); NULL: the reference
                     runs there. oneDNN takes its nodes first (cpu/fast_dnnl.c). */
  /* Vulkan (vulkan/): records the node's dispatch(es) into the plan's stream. */
  aps_status (*lower)(gr_lower *L, const gr_node *n);
  gr_vjp_fn vjp; /* the vector-Jacobian product (autodiff/); NULL: gr_grad fails naming the node */
  int fusable; /* may this node take an epilogue (fusion anchor)? */
  int f16;     /* GR_F16_READ | GR_F16_WRITE */
} gr_op_impl;
extern const gr_op_impl gr_op_impls[GR_OP_COUNT];

#endif
