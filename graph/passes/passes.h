/* The compiler passes that turn a built graph into something to lower: liveness.c, fusion.c,
 * fusion_conv.c, f16_storage.c, memory_plan.c (one header: the passes share its helpers). */
#ifndef APS_GRAPH_PASSES_H
#define APS_GRAPH_PASSES_H
#include "graph_internal.h"

/* ---- liveness.c */
/* Marks nodes that no output depends on as dead. Fails if there is no output. */
aps_status gr_pass_dead_nodes(gr_graph *g);
enum {
  GR_TENSOR_LIVE = 1,   /* an output, or read or written by a live node */
  GR_TENSOR_PINNED = 2, /* input, parameter, constant or output (or what an output views):
                           lives outside the arena for the plan's whole life */
  GR_TENSOR_F16 = 4,    /* stored as IEEE halves (gr_pass_f16_storage) */
};
/* Bytes per element of a tensor with these flags. */
static inline uint64_t gr_elem_bytes(uint8_t flags) { return flags & GR_TENSOR_F16 ? 2 : 4; }
/* One byte of flags per tensor (g->nt of them), after dead-node removal and fusion. */
void gr_pass_tensor_flags(const gr_graph *g, uint8_t *flags);
/* Every tensor a node reads (inputs, epilogue operands, folded norm and second-input
 * tensors; at most GR_MAX_READS), and how many live nodes read each tensor (a calloc'd array
 * of g->nt; NULL when out of memory). */
int gr_node_reads(const gr_node *n, uint32_t *out);
uint32_t *gr_count_uses(const gr_graph *g);

/* ---- f16_storage.c */
/* Marks the intermediate tensors that a plan with fp16 storage keeps as halves (views too),
 * counting them (views not counted). */
aps_status gr_pass_f16_storage(const gr_graph *g, uint8_t *flags, uint32_t *count);
/* ---- fusion.c */
/* Folds chains of elementwise nodes into the epilogue of the node producing their input
 * (conv, matmul, group norm, elementwise), then the fusions into convolutions below (and,
 * with fold_norms, GroupNorms between convs), counting folded nodes. max_buffers: the
 * device's storage buffers per stage; fusions whose kernels would need more are not made
 * (binary epilogue steps need 8, the conv fusions with extra tensors 16). */
enum { GR_FUSE_EPILOGUE_BUFFERS = 8, GR_FUSE_CONV_BUFFERS = 16 };
aps_status gr_pass_fuse(gr_graph *g, int fold_norms, uint32_t max_buffers, uint32_t *fused);

/* ---- fusion_conv.c */
/* Fusions into convolutions, each removing one node (counted in *fused):
 * a residual block's 1x1 skip conv merged into the conv whose output it adds; nearest 2x
 * upsampling read by the conv that consumes it; a channel concatenation of conv outputs
 * written by those convs in place. */
aps_status gr_pass_fuse_skip_convs(gr_graph *g, uint32_t *fused);
aps_status gr_pass_fuse_upsample(gr_graph *g, uint32_t *fused);
aps_status gr_pass_fuse_concats(gr_graph *g, uint32_t *fused);

/* ---- memory_plan.c */
/* A range of an arena in use from node `first` to node `last` (inclusive), in any unit. */
typedef struct gr_slot {
  uint64_t size, offset;
  uint32_t first, last;
} gr_slot;
/* Sets each slot's offset, largest first, to the lowest offset clear of every slot already
 * placed whose lifetime overlaps its own; *arena gets the end of the highest one. Shared by
 * the Vulkan plan (bytes) and the CPU device's plan (cpu/fast_memory_plan.c, floats). */
aps_status gr_place_slots(gr_slot *slots, uint32_t count, uint64_t *arena);

typedef struct gr_memory_plan {
  uint64_t *offset;         /* per tensor: offset in the arena, or UINT64_MAX if not in it */
  uint64_t arena_bytes;     /* the planned peak */
  uint64_t unplanned_bytes; /* one slot per tensor, for comparison */
} gr_memory_plan;
/* Places intermediate tensors in one arena by lifetime: tensors alive at the same time
 * never overlap; elementwise nodes write in place over an input that dies there. */
aps_status gr_pass_memory_plan(const gr_graph *g, const uint8_t *flags, gr_memory_plan *out);
#endif
