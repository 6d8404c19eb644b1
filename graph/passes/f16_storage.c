/* Which intermediate tensors a plan with gr_plan_desc.f16_storage keeps as IEEE halves.
 *
 * A tensor is stored as half when it lives in the arena (not an input, parameter, state,
 * constant or output, nor memory an output views) and the kernels on both sides of it
 * handle halves: its producer writes it, and every reader reads it, through
 * shaders/storage.glsl. Every other tensor stays fp32, so an op without an fp16 kernel
 * never fails and only costs the memory it would have saved. A reshape is a view: it has
 * the element type of the tensor it views. */
#include <stdlib.h>

#include "passes.h"

/* Which ops' kernels read or write halves is the f16 column of the op table (op_table.c):
 * each shader these ops lower to includes storage.glsl (else gr_plan_compile fails naming
 * the shader without an fp16 variant; tests/graph/test_f16.c runs every such op). */
static int writes_f16(gr_op op) { return (gr_op_impls[op].f16 & GR_F16_WRITE) != 0; }
static int reads_f16(gr_op op) { return (gr_op_impls[op].f16 & GR_F16_READ) != 0; }

aps_status gr_pass_f16_storage(const gr_graph *g, uint8_t *flags, uint32_t *count) {
  *count = 0;
  uint8_t *ok = calloc(g->nt, 1);
  if (!ok)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (uint32_t i = 0; i < g->nn; i++) {
    const gr_node *n = &g->n[i];
    uint32_t t = n->output;
    if (!n->dead && writes_f16(n->op) && !g->t[t].alias && (flags[t] & GR_TENSOR_LIVE) &&
        !(flags[t] & GR_TENSOR_PINNED))
      ok[t] = 1;
  }
  for (uint32_t i = 0; i < g->nn; i++) {
    const gr_node *n = &g->n[i];
    if (n->dead || n->op == GR_OP_RESHAPE) /* a view: its own readers are checked below */
      continue;
    for (int k = 0; k < n->n_inputs; k++)
      if (!reads_f16(n->op))
        ok[gr_root_of(g, n->inputs[k])] = 0;
    for (int k = 0; k < n->ep.count; k++)
      if (n->ep.step[k].is_binary && !reads_f16(n->op))
        ok[gr_root_of(g, n->ep.step[k].operand)] = 0;
    /* A folded GroupNorm's statistics (sums of squares) and its gamma, beta stay fp32. */
    const uint32_t fp32[4] = {n->stats_out, n->norm_in.stats, n->norm_in.gamma, n->norm_in.beta};
    for (int k = 0; k < 4; k++)
      if (fp32[k])
        ok[gr_root_of(g, fp32[k])] = 0;
  }
  for (uint32_t t = 1; t < g->nt; t++)
    if (ok[gr_root_of(g, t)] && (flags[t] & GR_TENSOR_LIVE)) {
      flags[t] |= GR_TENSOR_F16;
      *count += !g->t[t].alias;
    }
  free(ok);
  return APS_OK;
}
