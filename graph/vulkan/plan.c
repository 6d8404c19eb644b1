/* Plans: a graph compiled for one device. Passes: dead-node removal -> fusion (epilogues,
 * then into convolutions) -> memory plan -> lowering into one recorded stream (the runtime
 * places barriers where buffer ranges really conflict). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower.h"
#include "passes/passes.h"

enum { ALIGN = 256 };

enum { HOME_NONE, HOME_PARAMS, HOME_IO }; /* pinned tensors, before buffers exist */

struct gr_plan {
  gr_graph *g; /* the plan's own copy, after passes */
  rt_device *dev;
  rt_stream *stream;
  rt_buffer *params, *io, *arena, *dummy;
  gr_storage *st;   /* per tensor */
  uint8_t *is_set;  /* inputs and parameters given a value */
  gr_plan_stats stats;
  int f16_storage; /* gr_plan_desc.f16_storage */
};

static uint64_t align_up(uint64_t x) { return (x + ALIGN - 1) & ~(uint64_t)(ALIGN - 1); }

/* ---- memory */

static aps_status place_tensors(gr_plan *p) {
  gr_graph *g = p->g;
  uint8_t *flags = malloc(g->nt), *home = calloc(g->nt, 1);
  if (!flags || !home) {
    free(flags), free(home);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  gr_pass_tensor_flags(g, flags);
  aps_status s = p->f16_storage ? gr_pass_f16_storage(g, flags, &p->stats.f16_tensors) : APS_OK;
  for (uint32_t t = 1; t < g->nt; t++)
    p->st[t].f16 = (flags[t] & GR_TENSOR_F16) != 0;
  /* Leaves and outputs live in their own buffers for the whole plan. */
  uint64_t param_bytes = 0, io_bytes = 0;
  for (uint32_t t = 1; t < g->nt; t++) {
    const gr_tensor_info *ti = &g->t[t];
    uint64_t bytes = align_up((uint64_t)gr_shape_count(ti->shape) * sizeof(float));
    if (ti->alias || !(flags[t] & GR_TENSOR_LIVE) || !(flags[t] & GR_TENSOR_PINNED))
      continue;
    int param = ti->kind == GR_OP_PARAM || ti->kind == GR_OP_CONST;
    p->st[t].offset = param ? param_bytes : io_bytes;
    *(param ? &param_bytes : &io_bytes) += bytes;
    home[t] = param ? HOME_PARAMS : HOME_IO;
  }
  gr_memory_plan mp;
  if (s == APS_OK)
    s = gr_pass_memory_plan(g, flags, &mp);
  free(flags);
  if (s != APS_OK) {
    free(home);
    return s;
  }
  p->stats.arena_bytes = mp.arena_bytes;
  p->stats.unplanned_bytes = mp.unplanned_bytes;
  p->stats.param_bytes = param_bytes;
  p->stats.io_bytes = io_bytes;
  if ((param_bytes && (s = rt_buffer_create(p->dev, param_bytes, RT_MEMORY_DEVICE, &p->params)) != APS_OK) ||
      (io_bytes && (s = rt_buffer_create(p->dev, io_bytes, RT_MEMORY_DEVICE, &p->io)) != APS_OK) ||
      (mp.arena_bytes && (s = rt_buffer_create(p->dev, mp.arena_bytes, RT_MEMORY_DEVICE, &p->arena)) != APS_OK) ||
      (s = rt_buffer_create(p->dev, 256, RT_MEMORY_DEVICE, &p->dummy)) != APS_OK) {
    free(mp.offset);
    free(home);
    return aps_fail_context(s, "allocating the plan's memory: ");
  }
  for (uint32_t t = 1; t < g->nt; t++) {
    if (home[t] != HOME_NONE)
      p->st[t].buffer = home[t] == HOME_PARAMS ? p->params : p->io;
    else if (mp.offset[t] != UINT64_MAX) {
      p->st[t].buffer = p->arena;
      p->st[t].offset = mp.offset[t];
    }
  }
  free(mp.offset);
  free(home);
  s = rt_buffer_fill(p->dummy, 0, 256, 0);
  for (uint32_t t = 1; t < g->nt && s == APS_OK; t++)
    if (g->t[t].kind == GR_OP_CONST && g->t[t].data && p->st[t].buffer)
      s = rt_buffer_write(p->st[t].buffer, p->st[t].offset, g->t[t].data,
                          (uint64_t)gr_shape_count(g->t[t].shape) * sizeof(float));
  return s;
}

/* ---- compile */

static aps_status record(gr_plan *p) {
  gr_lower L = {p->g, p->dev, p->stream, p->st, p->dummy};
  APS_TRY(rt_stream_begin(p->stream));
  for (uint32_t i = 0; i < p->g->nn; i++) {
    const gr_node *n = &p->g->n[i];
    if (n->dead)
      continue;
    if (!gr_op_impls[n->op].lower)
      return aps_fail(APS_ERR_UNSUPPORTED, "node %s: op %s has no Vulkan kernel yet", n->name, gr_op_name(n->op));
    APS_TRY(gr_op_impls[n->op].lower(&L, n));
  }
  APS_TRY(rt_stream_end(p->stream));
  rt_stream_stats ss;
  rt_stream_get_stats(p->stream, &ss);
  p->stats.dispatches = ss.dispatches + ss.copies;
  p->stats.barriers = ss.barriers;
  return APS_OK;
}

aps_status gr_plan_compile(const gr_graph *graph, rt_device *dev, const gr_plan_desc *desc, gr_plan **out) {
  static const gr_plan_desc defaults = {0};
  if (!desc)
    desc = &defaults;
  *out = NULL;
  if (graph->status != APS_OK)
    return aps_fail(graph->status, "cannot compile a graph that failed to build: %s", graph->error);
  gr_plan *p = calloc(1, sizeof *p);
  if (!p || !(p->g = gr_graph_clone(graph))) {
    free(p);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory compiling a graph");
  }
  p->dev = dev;
  p->f16_storage = desc->f16_storage;
  if (desc->f16_storage && !rt_device_caps(dev)->fp16_storage) {
    gr_plan_destroy(p);
    return aps_fail(APS_ERR_UNSUPPORTED, "fp16 storage (gr_plan_desc.f16_storage) needs storageBuffer16BitAccess, "
                    "which %s lacks: compile without it for fp32", rt_device_caps(dev)->name);
  }
  aps_status s = gr_pass_dead_nodes(p->g);
  if (s == APS_OK && !desc->no_fusion)
    s = gr_pass_fuse(p->g, desc->fold_norms, rt_device_caps(dev)->max_storage_buffers,
                     &p->stats.fused_nodes); /* may add tensors (GroupNorm statistics) */
  if (s == APS_OK && !desc->no_fusion)
    s = gr_pass_dead_nodes(p->g); /* slices that fusion reads through are no longer needed */
  if (s == APS_OK) {
    p->st = calloc(p->g->nt, sizeof *p->st);
    p->is_set = calloc(p->g->nt, 1);
    if (!p->st || !p->is_set)
      s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  if (s == APS_OK)
    s = place_tensors(p);
  if (s == APS_OK)
    s = rt_stream_create(dev, &(rt_stream_desc){.max_timestamps = (uint32_t)desc->max_timestamps}, &p->stream);
  if (s == APS_OK)
    s = record(p);
  if (s != APS_OK) {
    gr_plan_destroy(p);
    return s;
  }
  for (uint32_t t = 1; t < p->g->nt && s == APS_OK; t++) {
    const gr_tensor_info *ti = &p->g->t[t];
    p->is_set[t] = ti->kind == GR_OP_CONST || ti->zero_init;
    if (ti->zero_init && p->st[t].buffer)
      s = rt_buffer_fill(p->st[t].buffer, p->st[t].offset, (uint64_t)gr_shape_count(ti->shape) * sizeof(float), 0);
  }
  if (s != APS_OK) {
    gr_plan_destroy(p);
    return s;
  }
  *out = p;
  return APS_OK;
}

void gr_plan_destroy(gr_plan *p) {
  if (!p)
    return;
  rt_stream_destroy(p->stream);
  rt_buffer_destroy(p->params);
  rt_buffer_destroy(p->io);
  rt_buffer_destroy(p->arena);
  rt_buffer_destroy(p->dummy);
  gr_graph_destroy(p->g);
  free(p->st);
  free(p->is_set);
  free(p);
}

static aps_status find_named(gr_plan *p, const char *name, int64_t count, int writing, uint32_t *out) {
  gr_tensor t = gr_find(p->g, name);
  if (!t)
    return aps_fail(APS_ERR_INVALID_ARG, "the graph has no %s named '%s'", writing ? "input or parameter" : "output",
                    name);
  const gr_tensor_info *ti = &p->g->t[t];
  if (!writing && ti->kind == GR_OP_INPUT)
    return aps_fail(APS_ERR_INVALID_ARG, "'%s' is an input, not an output or parameter", name);
  if (writing && ti->kind != GR_OP_INPUT && ti->kind != GR_OP_PARAM)
    return aps_fail(APS_ERR_INVALID_ARG, "'%s' is an output, not an input or parameter", name);
  int64_t want = gr_shape_count(ti->shape);
  if (count != want) {
    char buf[64];
    return aps_fail(APS_ERR_INVALID_ARG, "'%s' has shape %s (%" PRId64 " values), given %" PRId64, name,
                    gr_shape_str(ti->shape, buf, sizeof buf), want, count);
  }
  *out = t;
  return APS_OK;
}

aps_status gr_plan_set(gr_plan *p, const char *name, const float *data, int64_t count) {
  uint32_t t = 0;
  APS_TRY(find_named(p, name, count, 1, &t));
  if (!p->st[t].buffer) { /* declared but unused by any output */
    p->is_set[t] = 1;
    return APS_OK;
  }
  APS_TRY(rt_buffer_write(p->st[t].buffer, p->st[t].offset, data, (uint64_t)count * sizeof(float)));
  p->is_set[t] = 1;
  return APS_OK;
}

aps_status gr_plan_run(gr_plan *p) {
  for (uint32_t t = 1; t < p->g->nt; t++)
    if ((p->g->t[t].kind == GR_OP_INPUT || p->g->t[t].kind == GR_OP_PARAM) && !p->is_set[t] && p->st[t].buffer)
      return aps_fail(APS_ERR_INVALID_ARG, "%s '%s' was never given a value", gr_op_name(p->g->t[t].kind),
                      p->g->t[t].name);
  return rt_stream_run(p->stream);
}

aps_status gr_plan_get(gr_plan *p, const char *name, float *data, int64_t count) {
  uint32_t t = 0;
  APS_TRY(find_named(p, name, count, 0, &t));
  uint32_t r = gr_root_of(p->g, t);
  if (!p->st[r].buffer)
    return aps_fail(APS_ERR_INVALID_ARG, "'%s' has no storage in this plan", name);
  return rt_buffer_read(p->st[r].buffer, p->st[r].offset, data, (uint64_t)count * sizeof(float));
}

void gr_plan_get_stats(const gr_plan *p, gr_plan_stats *out) { *out = p->stats; }

uint32_t gr_plan_timings(gr_plan *p, rt_timing *out, uint32_t max) { return rt_stream_timings(p->stream, out, max); }

const gr_graph *gr_plan_graph(const gr_plan *p) { return p->g; }
