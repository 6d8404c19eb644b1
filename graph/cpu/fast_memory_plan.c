/* The CPU device's memory plan: every intermediate tensor of a needed node gets a place in
 * one arena, clear of every tensor alive at the same time (greedy by size, as
 * passes/memory_plan.c does for Vulkan plans). Besides lifetimes, two kinds of sharing:
 *   - a reshape of an intermediate is a view: the same memory, and the node does not run;
 *   - an elementwise node (unary, binary, where) writes over a same-sized input that it
 *     reads once and that dies there (fast_ops.c's kernels read index i before writing it);
 *     in an elementwise group (fast_fusion.c), which runs at its last node and reads every
 *     input of a block before writing any output of it, over an input that dies there.
 * Inputs, parameters, states, constants and outputs keep their own arrays. */
#include "fast_memory_plan.h"

#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

void gr_cpu_plan_free(gr_cpu_plan *p) {
  free(p->where);
  free(p->offset);
  free(p->view);
  memset(p, 0, sizeof *p);
}

static uint32_t input_of(const gr_node *n, const uint32_t *read0, uint32_t i, int k) {
  return k == 0 && read0 && read0[i] ? read0[i] : n->inputs[k];
}

aps_status gr_cpu_plan_make(const gr_graph *g, const uint8_t *needed, const uint32_t *read0, const uint32_t *at,
                            const uint8_t *internal, gr_cpu_plan *out) {
  memset(out, 0, sizeof *out);
  uint32_t nt = g->nt, nn = g->nn ? g->nn : 1;
  out->where = malloc(nt);
  out->offset = calloc(nt, sizeof *out->offset);
  out->view = calloc(nn, 1);
  uint32_t *root = malloc(nt * sizeof *root), *last = calloc(nt, sizeof *last);
  uint32_t *slot_of = malloc(nt * sizeof *slot_of);
  gr_slot *slots = calloc(nt, sizeof *slots);
  aps_status st = APS_OK;
  if (!out->where || !out->offset || !out->view || !root || !last || !slot_of || !slots) {
    st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory planning the CPU device's memory");
    goto done;
  }
  for (uint32_t t = 0; t < nt; t++) {
    out->where[t] = g->t[t].node == 0 || g->t[t].output ? GR_CPU_OWN : GR_CPU_NONE;
    root[t] = t;
    slot_of[t] = UINT32_MAX;
  }
  /* Which tensors live in the arena, and which reshapes are views. */
  for (uint32_t i = 0; i < g->nn; i++) {
    const gr_node *n = &g->n[i];
    if (!needed[i])
      continue;
    if (n->op == GR_OP_ASSIGN)
      out->where[n->inputs[0]] = GR_CPU_OWN; /* its target (a leaf already) */
    uint32_t t = n->output;
    if (out->where[t] == GR_CPU_OWN || (internal && internal[t]))
      continue;
    out->where[t] = GR_CPU_ARENA;
    uint32_t r = root[n->inputs[0]];
    if (n->op == GR_OP_RESHAPE && out->where[r] == GR_CPU_ARENA) {
      root[t] = r;
      out->view[i] = 1;
      out->shared++;
    }
  }
  for (uint32_t i = 0; i < g->nn; i++)
    if (needed[i])
      for (int k = 0; k < g->n[i].n_inputs; k++) {
        uint32_t r = root[input_of(&g->n[i], read0, i, k)], when = at ? at[i] : i;
        last[r] = when > last[r] ? when : last[r];
      }
  /* Slots: one per root, or an input's that the node overwrites in place. */
  uint32_t ns = 0;
  for (uint32_t i = 0; i < g->nn; i++) {
    const gr_node *n = &g->n[i];
    uint32_t t = n->output;
    if (!needed[i] || out->view[i] || out->where[t] != GR_CPU_ARENA)
      continue;
    uint64_t size = ((uint64_t)gr_shape_count(g->t[t].shape) + 63) & ~(uint64_t)63;
    out->unplanned_floats += size;
    uint32_t when = at ? at[i] : i, end = last[t] > when ? last[t] : when, share = UINT32_MAX;
    if (n->op == GR_OP_UNARY || n->op == GR_OP_BINARY || n->op == GR_OP_WHERE)
      for (int j = 0; j < n->n_inputs && share == UINT32_MAX; j++) {
        uint32_t u = n->inputs[j], r = root[u];
        int reads = 0;
        for (int k = 0; k < n->n_inputs; k++)
          reads += root[n->inputs[k]] == r;
        /* (the slot's end: a group's second output must not take the slot its first took) */
        if (reads == 1 && slot_of[r] != UINT32_MAX && last[r] == when && slots[slot_of[r]].last == when &&
            gr_shape_count(g->t[u].shape) == gr_shape_count(g->t[t].shape))
          share = slot_of[r];
      }
    if (share == UINT32_MAX) {
      share = ns++;
      slots[share] = (gr_slot){size, 0, when, end};
    } else {
      out->shared++;
      if (end > slots[share].last)
        slots[share].last = end;
    }
    slot_of[t] = share;
  }
  st = gr_place_slots(slots, ns, &out->arena_floats);
  if (st != APS_OK)
    goto done;
  for (uint32_t t = 1; t < nt; t++)
    if (out->where[t] == GR_CPU_ARENA)
      out->offset[t] = slots[slot_of[root[t]]].offset;
done:
  free(root);
  free(last);
  free(slot_of);
  free(slots);
  if (st != APS_OK)
    gr_cpu_plan_free(out);
  return st;
}
