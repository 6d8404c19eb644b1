/* The CPU device (gr_cpu_desc.fast, fast_device.c): the nodes some output or assignment needs,
 * in the graph's order, each through oneDNN where it takes the node (fast_dnnl.c), else the
 * op's parallel kernel (the op table's fast column, fast_ops.c), else the reference; the
 * intermediate tensors in one arena planned by lifetime (fast_memory_plan.c). reference.c
 * owns the tensors' values and hands them in. */
#ifndef APS_GRAPH_FAST_DEVICE_H
#define APS_GRAPH_FAST_DEVICE_H
#include "graph_internal.h"

typedef struct gr_fast gr_fast;
/* threads: OpenMP threads for runs, 0 = its default. */
aps_status gr_fast_create(const gr_graph *g, int threads, int bf16_frozen, gr_fast **out);
void gr_fast_destroy(gr_fast *f); /* NULL is fine */
/* Where tensor t lives: returns 1 when it needs an array of its own (inputs, parameters,
 * states, constants, outputs), else 0 with *at its place in the arena, or NULL where no
 * needed node reads or writes it. */
int gr_fast_place(const gr_fast *f, uint32_t t, float **at);
/* Runs the needed nodes; v: every tensor's values (the arena's included). */
aps_status gr_fast_run(gr_fast *f, float *const *v);
/* Fills the arena's part of the memory statistics. */
void gr_fast_memory(const gr_fast *f, gr_cpu_memory_stats *out);
#endif
