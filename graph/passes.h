/* The compiler passes that turn a built graph into something to lower (passes.c). */
#ifndef APS_GRAPH_PASSES_H
#define APS_GRAPH_PASSES_H
#include "graph_internal.h"

/* Marks nodes that no output depends on as dead. Fails if there is no output. */
aps_status gr_pass_dead_nodes(gr_graph *g);
/* A tensor some live node (or an output) uses. */
int gr_pass_tensor_live(const gr_graph *g, uint32_t t);
/* Folds chains of elementwise nodes into the epilogue of the node producing their input
 * (conv, matmul, group norm, elementwise), counting folded nodes. */
aps_status gr_pass_fuse(gr_graph *g, uint32_t *fused);

typedef struct gr_memory_plan {
  uint64_t *offset;         /* per tensor: offset in the arena, or UINT64_MAX if not in it */
  uint64_t arena_bytes;     /* the planned peak */
  uint64_t unplanned_bytes; /* one slot per tensor, for comparison */
} gr_memory_plan;
/* Places intermediate tensors in one arena by lifetime: tensors alive at the same time
 * never overlap; elementwise nodes write in place over an input that dies there. */
aps_status gr_pass_memory_plan(const gr_graph *g, gr_memory_plan *out);
/* Inputs, parameters, constants and outputs (or tensors an output aliases) live outside
 * the arena for the plan's whole life. */
int gr_pass_pinned(const gr_graph *g, uint32_t t);
#endif
