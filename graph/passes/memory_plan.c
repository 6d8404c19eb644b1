/* The memory plan: slots placed in one arena by lifetime (greedy by size, shared with the
 * CPU device's plan), and a Vulkan plan's intermediate tensors placed in them, elementwise
 * nodes writing in place over an input that dies there. */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

static int by_size_desc(const void *x, const void *y) {
  const gr_slot *a = *(gr_slot *const *)x, *b = *(gr_slot *const *)y;
  return (a->size < b->size) - (a->size > b->size);
}

static int by_offset(const void *x, const void *y) {
  const gr_slot *a = *(gr_slot *const *)x, *b = *(gr_slot *const *)y;
  return (a->offset > b->offset) - (a->offset < b->offset);
}

aps_status gr_place_slots(gr_slot *slots, uint32_t count, uint64_t *arena) {
  *arena = 0;
  gr_slot **order = malloc((count ? count : 1) * sizeof *order), **near = malloc((count ? count : 1) * sizeof *near);
  if (!order || !near) {
    free(order), free(near);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory planning memory");
  }
  for (uint32_t s = 0; s < count; s++)
    order[s] = &slots[s];
  qsort(order, count, sizeof *order, by_size_desc);
  for (uint32_t s = 0; s < count; s++) {
    gr_slot *x = order[s];
    uint32_t m = 0;
    for (uint32_t p = 0; p < s; p++)
      if (order[p]->first <= x->last && x->first <= order[p]->last)
        near[m++] = order[p];
    qsort(near, m, sizeof *near, by_offset); /* the first gap below them that fits */
    uint64_t offset = 0;
    for (uint32_t p = 0; p < m; p++) {
      if (near[p]->offset >= offset + x->size)
        break;
      if (near[p]->offset + near[p]->size > offset)
        offset = near[p]->offset + near[p]->size;
    }
    x->offset = offset;
    if (offset + x->size > *arena)
      *arena = offset + x->size;
  }
  free(order);
  free(near);
  return APS_OK;
}

static uint64_t align256(uint64_t x) { return (x + 255) & ~(uint64_t)255; }

aps_status gr_pass_memory_plan(const gr_graph *g, const uint8_t *flags, gr_memory_plan *out) {
  memset(out, 0, sizeof *out);
  uint32_t nt = g->nt;
  out->offset = malloc(nt * sizeof *out->offset);
  uint32_t *slot_of = malloc(nt * sizeof *slot_of), *last = calloc(nt, sizeof *last);
  gr_slot *slots = calloc(nt, sizeof *slots);
  if (!out->offset || !slot_of || !last || !slots) {
    free(slot_of), free(last), free(slots), free(out->offset);
    out->offset = NULL;
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory planning memory");
  }
  for (uint32_t t = 0; t < nt; t++) {
    out->offset[t] = UINT64_MAX;
    slot_of[t] = UINT32_MAX;
  }
  for (uint32_t i = 0; i < g->nn; i++) {
    if (g->n[i].dead)
      continue;
    uint32_t reads[GR_MAX_READS];
    int k = gr_node_reads(&g->n[i], reads);
    for (int j = 0; j < k; j++)
      last[gr_root_of(g, reads[j])] = i;
  }
  uint32_t ns = 0;
  for (uint32_t i = 0; i < g->nn; i++) {
    const gr_node *n = &g->n[i];
    if (n->dead)
      continue;
    for (int j = 0; j < 2; j++) { /* GroupNorm statistics, a concatenation also written: own slots */
      uint32_t so = j ? n->cf.out2 : n->stats_out;
      if (!so || g->t[so].alias || (flags[so] & GR_TENSOR_PINNED) || slot_of[so] != UINT32_MAX)
        continue;
      uint64_t sb = align256((uint64_t)gr_shape_count(g->t[so].shape) * gr_elem_bytes(flags[so]));
      out->unplanned_bytes += sb;
      slots[ns] = (gr_slot){sb, 0, i, last[so] > i ? last[so] : i};
      slot_of[so] = ns++;
    }
    uint32_t t = n->output;
    /* A concatenation that convs store into (fusion_conv.c) has several writers: its slot
     * starts at the first. */
    if (g->t[t].alias || (flags[t] & GR_TENSOR_PINNED) || slot_of[t] != UINT32_MAX)
      continue;
    uint64_t bytes = align256((uint64_t)gr_shape_count(g->t[t].shape) * gr_elem_bytes(flags[t]));
    out->unplanned_bytes += bytes;
    uint32_t end = last[t] > i ? last[t] : i;
    /* In place: an elementwise node may overwrite a same-shaped input that dies here. */
    uint32_t share = UINT32_MAX;
    uint32_t reads[GR_MAX_READS];
    int nr = gr_node_reads(n, reads);
    if (n->op == GR_OP_UNARY || n->op == GR_OP_BINARY || n->op == GR_OP_WHERE)
      for (int j = 0; j < n->n_inputs && share == UINT32_MAX; j++) {
        uint32_t u = gr_root_of(g, n->inputs[j]);
        int once = 0; /* read at exactly one place, so each invocation reads only its own index */
        for (int k = 0; k < nr; k++)
          once += gr_root_of(g, reads[k]) == u;
        if (once == 1 && slot_of[u] != UINT32_MAX && last[u] == i && slots[slot_of[u]].size == bytes &&
            !memcmp(&g->t[n->inputs[j]].shape, &g->t[t].shape, sizeof(gr_shape)) &&
            gr_elem_bytes(flags[u]) == gr_elem_bytes(flags[t])) /* element i over element i only */
          share = slot_of[u];
      }
    if (share == UINT32_MAX) {
      share = ns++;
      slots[share] = (gr_slot){bytes, 0, i, end};
    } else if (end > slots[share].last) {
      slots[share].last = end;
    }
    slot_of[t] = share;
  }
  aps_status st = gr_place_slots(slots, ns, &out->arena_bytes);
  for (uint32_t t = 1; t < nt; t++)
    if (slot_of[t] != UINT32_MAX)
      out->offset[t] = slots[slot_of[t]].offset;
  free(slot_of);
  free(last);
  free(slots);
  return st;
}
