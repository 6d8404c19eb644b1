/* The CPU interpreter behind gr_cpu_*: every tensor gets its own array and nodes run in
 * order through the op table's reference kernels (reference_*.c). With gr_cpu_desc.fast it is
 * the CPU device (fast_device.c), which runs the needed nodes only and keeps intermediate
 * tensors in its arena. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "fast_device.h"
#include "reference_ops.h"

struct gr_cpu {
  const gr_graph *g;
  float **v; /* per tensor */
  uint8_t *is_set;
  gr_fast *fast; /* the CPU device (NULL = the reference) */
};

aps_status gr_cpu_create(const gr_graph *g, gr_cpu **out) { return gr_cpu_create_ex(g, NULL, out); }

static aps_status fail_destroy(gr_cpu *c, aps_status st) {
  gr_cpu_destroy(c);
  return st;
}

/* Whether tensor t has an array of its own (else it lives in the CPU device's arena). */
static int owns(const gr_cpu *c, uint32_t t) {
  float *at;
  return !c->fast || gr_fast_place(c->fast, t, &at);
}

aps_status gr_cpu_create_ex(const gr_graph *g, const gr_cpu_desc *desc, gr_cpu **out) {
  *out = NULL;
  if (desc && desc->threads < 0)
    return aps_fail(APS_ERR_INVALID_ARG, "CPU device: threads %d (0 = default)", desc->threads);
  if (g->status != APS_OK)
    return aps_fail(g->status, "cannot run a graph that failed to build: %s", g->error);
  gr_cpu *c = calloc(1, sizeof *c);
  if (!c)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  c->g = g;
  c->v = calloc(g->nt, sizeof *c->v);
  c->is_set = calloc(g->nt, 1);
  if (!c->v || !c->is_set)
    return fail_destroy(c, aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory"));
  if (desc && desc->fast) {
    aps_status st = gr_fast_create(g, desc->threads, desc->bf16_frozen, &c->fast);
    if (st != APS_OK)
      return fail_destroy(c, st);
  }
  for (uint32_t t = 1; t < g->nt; t++) {
    size_t bytes = (size_t)gr_shape_count(g->t[t].shape) * sizeof(float);
    if (c->fast && !gr_fast_place(c->fast, t, &c->v[t]))
      continue;
    c->v[t] = calloc(1, bytes);
    if (!c->v[t])
      return fail_destroy(c, aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory for tensor %s (%zu bytes)", g->t[t].name, bytes));
    if (g->t[t].data) {
      memcpy(c->v[t], g->t[t].data, bytes);
      c->is_set[t] = 1;
    }
    c->is_set[t] |= g->t[t].zero_init; /* calloc'd: already zero */
  }
  *out = c;
  return APS_OK;
}

void gr_cpu_destroy(gr_cpu *c) {
  if (!c)
    return;
  for (uint32_t t = 0; c->v && t < c->g->nt; t++)
    if (owns(c, t))
      free(c->v[t]);
  free(c->v);
  gr_fast_destroy(c->fast);
  free(c->is_set);
  free(c);
}

void gr_cpu_memory(const gr_cpu *c, gr_cpu_memory_stats *out) {
  memset(out, 0, sizeof *out);
  for (uint32_t t = 1; t < c->g->nt; t++)
    if (owns(c, t))
      out->own_bytes += (uint64_t)gr_shape_count(c->g->t[t].shape) * sizeof(float);
  if (c->fast)
    gr_fast_memory(c->fast, out);
}

aps_status gr_cpu_set(gr_cpu *c, const char *name, const float *data, int64_t count) {
  gr_tensor t = gr_find(c->g, name);
  if (!t || (c->g->t[t].kind != GR_OP_INPUT && c->g->t[t].kind != GR_OP_PARAM))
    return aps_fail(APS_ERR_INVALID_ARG, "the graph has no input or parameter named '%s'", name);
  int64_t want = gr_shape_count(c->g->t[t].shape);
  if (count != want)
    return aps_fail(APS_ERR_INVALID_ARG, "'%s' has %" PRId64 " values, given %" PRId64, name, want, count);
  memcpy(c->v[t], data, (size_t)count * sizeof(float));
  c->is_set[t] = 1;
  return APS_OK;
}

aps_status gr_cpu_run(gr_cpu *c) {
  const gr_graph *g = c->g;
  for (uint32_t t = 1; t < g->nt; t++)
    if ((g->t[t].kind == GR_OP_INPUT || g->t[t].kind == GR_OP_PARAM) && !c->is_set[t])
      return aps_fail(APS_ERR_INVALID_ARG, "%s '%s' was never given a value", gr_op_name(g->t[t].kind), g->t[t].name);
  if (c->fast)
    return gr_fast_run(c->fast, c->v);
  for (uint32_t i = 0; i < g->nn; i++) {
    const gr_node *n = &g->n[i];
    const float *in[GR_MAX_INPUTS];
    for (int k = 0; k < n->n_inputs; k++)
      in[k] = c->v[n->inputs[k]];
    gr_op_impls[n->op].cpu(g, n, in, c->v[n->output]);
    gr_cpu_effects(g, n, c->v);
  }
  return APS_OK;
}

const float *gr_cpu_values(const gr_cpu *c, gr_tensor t) { return t && t < c->g->nt ? c->v[t] : NULL; }

const gr_graph *gr_cpu_graph(const gr_cpu *c) { return c->g; }
