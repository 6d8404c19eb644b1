/* The CPU device's elementwise groups (fast_fusion.c): connected unary, binary and where
 * nodes of one output shape run as one loop over blocks of a few hundred values, each node's
 * block in a small buffer that stays in the L1 cache, so that a chain such as SiLU's gradient
 * (sigmoid, 1 − s, x·(1 − s), + 1, · s, · g) reads and writes memory once instead of six
 * times, in one parallel region instead of six. A group runs where its last node stood;
 * values only its own nodes read get no memory at all, the others are written as before.
 * APS_CPU_NO_FUSION=1 leaves every node to itself. */
#ifndef APS_GRAPH_FAST_FUSION_H
#define APS_GRAPH_FAST_FUSION_H
#include "graph_internal.h"

typedef struct gr_fast_fusion gr_fast_fusion;

/* Groups among the needed nodes (read0 as gr_cpu_plan_make's: what convs really read). Per
 * node, at[i] is where it runs (its group's last node, else i) and per tensor internal[t]
 * says it lives only inside a group's blocks; both for the memory plan (fast_memory_plan.c). */
aps_status gr_fast_fusion_make(const gr_graph *g, const uint8_t *needed, const uint32_t *read0,
                               gr_fast_fusion **out);
void gr_fast_fusion_free(gr_fast_fusion *fu);
const uint32_t *gr_fast_fusion_at(const gr_fast_fusion *fu);
const uint8_t *gr_fast_fusion_internal(const gr_fast_fusion *fu);
/* Once the plan has placed the tensors (v: every tensor's values): which outputs can be
 * written straight to their memory (none of the group's inputs shares it), the block
 * buffers, and room for them for up to `threads` threads (groups run on at most as many). */
aps_status gr_fast_fusion_bind(gr_fast_fusion *fu, float *const *v, int threads);
/* 0: node i runs by itself; 1: it is a group's last node, and the group ran; 2: it belongs to
 * a group that runs at a later node (skip it). */
int gr_fast_fusion_run(const gr_fast_fusion *fu, uint32_t i, float *const *v);
/* How many groups, and nodes in them. */
void gr_fast_fusion_count(const gr_fast_fusion *fu, uint32_t *groups, uint32_t *nodes);
/* Members of the group node i runs, or 0. */
int gr_fast_fusion_size(const gr_fast_fusion *fu, uint32_t i);
#endif
