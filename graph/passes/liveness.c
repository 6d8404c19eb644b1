/* Liveness: what each node reads, which nodes some output needs, how many live nodes read
 * each tensor, and the flags of every tensor that the later passes and plans go by. */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

int gr_node_reads(const gr_node *n, uint32_t *out) {
  int k = 0;
  for (int i = 0; i < n->n_inputs; i++)
    out[k++] = n->inputs[i];
  for (int i = 0; i < n->ep.count; i++)
    if (n->ep.step[i].is_binary)
      out[k++] = n->ep.step[i].operand;
  const uint32_t more[6] = {n->norm_in.stats, n->norm_in.gamma, n->norm_in.beta, n->cf.x2, n->cf.w2, n->cf.b2};
  for (int i = 0; i < 6; i++)
    if (more[i])
      out[k++] = more[i];
  return k;
}

aps_status gr_pass_dead_nodes(gr_graph *g) {
  uint8_t *live = calloc(g->nt, 1);
  if (!live)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  int outputs = 0;
  for (uint32_t t = 1; t < g->nt; t++)
    if (g->t[t].output) {
      live[t] = 1;
      outputs++;
    }
  for (uint32_t i = 0; i < g->nn; i++) /* assignments are effects: always kept */
    if (g->n[i].op == GR_OP_ASSIGN && !g->n[i].dead) {
      live[g->n[i].output] = 1;
      outputs++;
    }
  /* Runs again after fusion: it only ever removes nodes, never revives a folded one. */
  for (uint32_t i = g->nn; i-- > 0;) {
    gr_node *n = &g->n[i];
    n->dead = n->dead || !(live[n->output] || (n->cf.out2 && live[n->cf.out2]));
    if (n->dead)
      continue;
    uint32_t reads[GR_MAX_READS];
    int k = gr_node_reads(n, reads);
    for (int j = 0; j < k; j++)
      live[reads[j]] = 1;
  }
  free(live);
  return outputs ? APS_OK : aps_fail(APS_ERR_INVALID_ARG, "the graph has no outputs (gr_output)");
}

void gr_pass_tensor_flags(const gr_graph *g, uint8_t *flags) {
  memset(flags, 0, g->nt);
  for (uint32_t t = 1; t < g->nt; t++) {
    const gr_tensor_info *ti = &g->t[t];
    if (ti->output)
      flags[t] |= GR_TENSOR_LIVE | GR_TENSOR_PINNED;
    if (ti->output && ti->alias)
      flags[ti->alias] |= GR_TENSOR_LIVE | GR_TENSOR_PINNED; /* the memory an output views */
    if (ti->kind == GR_OP_INPUT || ti->kind == GR_OP_PARAM || ti->kind == GR_OP_CONST)
      flags[t] |= GR_TENSOR_PINNED;
  }
  for (uint32_t i = 0; i < g->nn; i++) {
    if (g->n[i].dead)
      continue;
    uint32_t reads[GR_MAX_READS];
    int k = gr_node_reads(&g->n[i], reads);
    for (int j = 0; j < k; j++)
      flags[reads[j]] |= GR_TENSOR_LIVE, flags[gr_root_of(g, reads[j])] |= GR_TENSOR_LIVE;
    const uint32_t writes[3] = {g->n[i].output, g->n[i].stats_out, g->n[i].cf.out2};
    for (int j = 0; j < 3; j++)
      if (writes[j])
        flags[writes[j]] |= GR_TENSOR_LIVE;
  }
}

uint32_t *gr_count_uses(const gr_graph *g) {
  uint32_t *uses = calloc(g->nt, sizeof *uses);
  for (uint32_t i = 0; uses && i < g->nn; i++) {
    if (g->n[i].dead)
      continue;
    uint32_t reads[GR_MAX_READS];
    int k = gr_node_reads(&g->n[i], reads);
    for (int j = 0; j < k; j++)
      uses[reads[j]]++;
  }
  return uses;
}
