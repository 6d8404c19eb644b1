/* The CPU device's memory plan (fast_memory_plan.c): intermediate tensors share one arena by
 * lifetime, as a Vulkan plan's (passes/memory_plan.c) do, so that a training step touches a
 * few hundred megabytes again and again instead of gigabytes once each. */
#ifndef APS_GRAPH_FAST_MEMORY_PLAN_H
#define APS_GRAPH_FAST_MEMORY_PLAN_H
#include "graph_internal.h"

enum { GR_CPU_OWN = 0, GR_CPU_ARENA = 1, GR_CPU_NONE = 2 };

typedef struct gr_cpu_plan {
  uint8_t *where;     /* per tensor: GR_CPU_OWN (its own array: inputs, parameters, states,
                         constants, outputs), GR_CPU_ARENA, GR_CPU_NONE (no node needs it) */
  uint64_t *offset;   /* per tensor in the arena: offset in floats */
  uint8_t *view;      /* per node: a reshape whose output is its input's memory (skip it) */
  uint64_t arena_floats;     /* the planned peak */
  uint64_t unplanned_floats; /* the same tensors one array each, for comparison */
  uint32_t shared;           /* tensors placed over a dead one's memory or viewing another's */
} gr_cpu_plan;

/* Plans the tensors of the nodes with needed[i] set. read0, if not NULL, gives per node the
 * tensor that node really reads as its input 0 (0 = inputs[0]): a conv that folds the zero
 * pads before it reads the unpadded tensor (fast_dnnl.c). at, if not NULL, gives per node
 * where it really runs (an elementwise group's last node, fast_fusion.c), and internal per
 * tensor those that live only inside a group (no memory: GR_CPU_NONE). */
aps_status gr_cpu_plan_make(const gr_graph *g, const uint8_t *needed, const uint32_t *read0, const uint32_t *at,
                            const uint8_t *internal, gr_cpu_plan *out);
void gr_cpu_plan_free(gr_cpu_plan *p);
#endif
