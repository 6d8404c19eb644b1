/* The CPU reference interpreter: every tensor gets its own array; nodes run in order
 * through the reference kernels of cpu_ops.c. With gr_cpu_desc.fast it is the CPU device:
 * the same order, but conv2d and matmul through oneDNN and the other ops through the
 * parallel kernels of cpu_fast.c (cpu_dnnl.h), only the nodes some output or assignment
 * needs, and the intermediate tensors in one arena planned by lifetime (cpu_plan.c): a
 * training step of the U-Net at batch 64 touched 4.6 GB of them one array each (6.6 GB
 * resident), and spent more time in DRAM and page walks than in arithmetic. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_dnnl.h"
#include "cpu_plan.h"
#include <sys/mman.h>
#include "graph_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <time.h>

/* APS_CPU_PROFILE=1: the CPU device's time per op (unary, binary and reduce per function),
 * summed over its runs, printed to stderr when it is destroyed. */
typedef struct op_time { double s; long n; } op_time;
enum { PROF_FNS = 16 };
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct gr_cpu {
  const gr_graph *g;
  float **v; /* per tensor */
  uint8_t *is_set;
  int threads;   /* fast mode: OpenMP threads, 0 = its default */
  uint8_t *needed; /* fast mode: per node, whether an output or an assignment needs it */
  gr_dnnl *dnnl; /* fast mode: oneDNN state (NULL = the reference) */
  gr_cpu_plan plan; /* fast mode: where each tensor lives */
  int planned;
  float *arena;     /* fast mode: the intermediate tensors (plan.offset) */
  op_time *prof;    /* APS_CPU_PROFILE: per op and function */
};

/* The tensor node i reads as input k (a conv may read past the pads it folds). */
static uint32_t input_of(const gr_cpu *c, uint32_t i, int k) {
  const uint32_t *r0 = c->dnnl ? gr_dnnl_read0(c->dnnl) : NULL;
  return k == 0 && r0 && r0[i] ? r0[i] : c->g->n[i].inputs[k];
}

/* The CPU device skips nodes that no output or assignment needs, as a Vulkan plan's
 * dead-node pass does (e.g. the weight gradients in a graph differentiated w.r.t. its input
 * only); the reference runs every node, so tests can read any tensor. */
static uint8_t *needed_nodes(const gr_cpu *c) {
  const gr_graph *g = c->g;
  uint8_t *live = calloc(g->nt, 1), *needed = calloc(g->nn ? g->nn : 1, 1);
  if (!live || !needed) {
    free(live), free(needed);
    return NULL;
  }
  for (uint32_t t = 1; t < g->nt; t++)
    live[t] = g->t[t].output;
  for (uint32_t i = g->nn; i-- > 0;) {
    const gr_node *n = &g->n[i];
    if (!live[n->output] && n->op != GR_OP_ASSIGN)
      continue;
    needed[i] = 1;
    for (int k = 0; k < n->n_inputs; k++)
      live[input_of(c, i, k)] = 1;
  }
  free(live);
  return needed;
}

aps_status gr_cpu_create(const gr_graph *g, gr_cpu **out) { return gr_cpu_create_ex(g, NULL, out); }

static aps_status fail_destroy(gr_cpu *c, aps_status st) {
  gr_cpu_destroy(c);
  return st;
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
    c->threads = desc->threads;
    aps_status st = gr_dnnl_create(g, &c->dnnl);
    if (st != APS_OK)
      return fail_destroy(c, st);
    if (!(c->needed = needed_nodes(c)))
      return fail_destroy(c, aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory"));
    if ((st = gr_cpu_plan_make(g, c->needed, gr_dnnl_read0(c->dnnl), &c->plan)) != APS_OK)
      return fail_destroy(c, st);
    c->planned = 1;
    if (getenv("APS_CPU_PROFILE") && !(c->prof = calloc(GR_OP_COUNT * PROF_FNS, sizeof *c->prof)))
      return fail_destroy(c, aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory"));
    if (c->plan.arena_floats) {
      size_t bytes = (size_t)c->plan.arena_floats * sizeof(float), huge = (size_t)2 << 20;
      bytes = (bytes + huge - 1) & ~(huge - 1);
      if (posix_memalign((void **)&c->arena, huge, bytes))
        return fail_destroy(c, aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory for the CPU device's arena (%zu bytes)", bytes));
#ifdef MADV_HUGEPAGE
      madvise(c->arena, bytes, MADV_HUGEPAGE); /* fewer TLB misses over the big activations */
#endif
      memset(c->arena, 0, bytes);
    }
  }
  for (uint32_t t = 1; t < g->nt; t++) {
    size_t bytes = (size_t)gr_shape_count(g->t[t].shape) * sizeof(float);
    if (c->planned && c->plan.where[t] != GR_CPU_OWN) {
      c->v[t] = c->plan.where[t] == GR_CPU_ARENA ? c->arena + c->plan.offset[t] : NULL;
      continue;
    }
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
    if (!c->planned || c->plan.where[t] == GR_CPU_OWN)
      free(c->v[t]);
  free(c->v);
  free(c->arena);
  for (int k = 0; c->prof && k < GR_OP_COUNT * PROF_FNS; k++)
    if (c->prof[k].n)
      fprintf(stderr, "CPU device: %-16s fn %2d %7ld nodes %9.1f ms\n", gr_op_name((gr_op)(k / PROF_FNS)), k % PROF_FNS,
              c->prof[k].n, c->prof[k].s * 1e3);
  free(c->prof);
  gr_cpu_plan_free(&c->plan);
  free(c->is_set);
  free(c->needed);
  gr_dnnl_destroy(c->dnnl);
  free(c);
}

void gr_cpu_memory(const gr_cpu *c, gr_cpu_memory_stats *out) {
  memset(out, 0, sizeof *out);
  for (uint32_t t = 1; t < c->g->nt; t++)
    if (!c->planned || c->plan.where[t] == GR_CPU_OWN)
      out->own_bytes += (uint64_t)gr_shape_count(c->g->t[t].shape) * sizeof(float);
  if (c->planned) {
    out->arena_bytes = c->plan.arena_floats * sizeof(float);
    out->unplanned_bytes = c->plan.unplanned_floats * sizeof(float);
    out->shared_tensors = c->plan.shared;
  }
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

/* An assignment also writes its target (targets are leaves with their own arrays; a reshape
 * of the target made before the assignment keeps the old values, as its copy was taken). */
static void apply_effects(gr_cpu *c, const gr_node *n) {
  if (n->op == GR_OP_ASSIGN)
    memcpy(c->v[n->inputs[0]], c->v[n->output], (size_t)gr_shape_count(c->g->t[n->output].shape) * sizeof(float));
}

/* The CPU device: oneDNN where it takes the node, else the parallel kernel, else the
 * reference. The thread count is set for this thread's parallel regions (oneDNN's too). */
static aps_status run_fast(gr_cpu *c) {
  const gr_graph *g = c->g;
#ifdef _OPENMP
  int before = omp_get_max_threads();
  if (c->threads)
    omp_set_num_threads(c->threads);
#endif
  aps_status st = APS_OK;
  for (uint32_t i = 0; i < g->nn && st == APS_OK; i++) {
    const gr_node *n = &g->n[i];
    if (!c->needed[i] || c->plan.view[i])
      continue;
    const float *in[GR_MAX_INPUTS];
    for (int k = 0; k < n->n_inputs; k++)
      in[k] = c->v[input_of(c, i, k)];
    int done = 0;
    double t0 = c->prof ? now_s() : 0;
    st = gr_dnnl_run(c->dnnl, i, in, c->v[n->output], &done);
    if (st == APS_OK && !done) {
      gr_cpu_fn fast = gr_cpu_fast_fn(n->op);
      (fast ? fast : gr_op_impls[n->op].cpu)(g, n, in, c->v[n->output]);
      apply_effects(c, n);
    }
    if (c->prof) {
      int f = n->op == GR_OP_UNARY || n->op == GR_OP_BINARY || n->op == GR_OP_REDUCE ? (int)n->ia[0] : 0;
      op_time *p = &c->prof[n->op * PROF_FNS + (f >= 0 && f < PROF_FNS ? f : 0)];
      p->s += now_s() - t0;
      p->n++;
    }
  }
#ifdef _OPENMP
  omp_set_num_threads(before);
#endif
  return st;
}

aps_status gr_cpu_run(gr_cpu *c) {
  const gr_graph *g = c->g;
  for (uint32_t t = 1; t < g->nt; t++)
    if ((g->t[t].kind == GR_OP_INPUT || g->t[t].kind == GR_OP_PARAM) && !c->is_set[t])
      return aps_fail(APS_ERR_INVALID_ARG, "%s '%s' was never given a value", gr_op_name(g->t[t].kind), g->t[t].name);
  if (c->dnnl)
    return run_fast(c);
  for (uint32_t i = 0; i < g->nn; i++) {
    const gr_node *n = &g->n[i];
    const float *in[GR_MAX_INPUTS];
    for (int k = 0; k < n->n_inputs; k++)
      in[k] = c->v[n->inputs[k]];
    gr_op_impls[n->op].cpu(g, n, in, c->v[n->output]);
    apply_effects(c, n);
  }
  return APS_OK;
}

const float *gr_cpu_values(const gr_cpu *c, gr_tensor t) { return t && t < c->g->nt ? c->v[t] : NULL; }

const gr_graph *gr_cpu_graph(const gr_cpu *c) { return c->g; }
