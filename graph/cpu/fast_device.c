/* The CPU device: oneDNN and parallel loops over the reference interpreter's order of
 * nodes, only those some output or assignment needs, and the intermediate tensors in one
 * arena planned by lifetime (fast_memory_plan.c): a training step of the U-Net at batch 64
 * touched 4.6 GB of them one array each (6.6 GB resident), and spent more time in DRAM and
 * page walks than in arithmetic. */
#include "fast_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "aps_clock.h"
#include "fast_dnnl.h"
#include "fast_fusion.h"
#include "fast_memory_plan.h"
#include "reference_ops.h"

/* APS_CPU_PROFILE=1: the CPU device's time per op (unary, binary and reduce per function),
 * summed over its runs, printed to stderr when it is destroyed; APS_CPU_PROFILE=2 adds the
 * slowest nodes (APS_CPU_PROFILE_TOP of them, 40 by default) with their names and shapes,
 * and whether oneDNN ran them. */
typedef struct op_time { double s; long n; } op_time;
enum { PROF_FNS = 16 };

struct gr_fast {
  const gr_graph *g;
  int threads;      /* OpenMP threads, 0 = its default */
  uint8_t *needed;  /* per node, whether an output or an assignment needs it */
  gr_dnnl *dnnl;    /* oneDNN state */
  gr_fast_fusion *fusion; /* elementwise groups */
  float *const *bound;    /* the values the groups were bound to */
  gr_cpu_plan plan; /* where each tensor lives */
  float *arena;     /* the intermediate tensors (plan.offset) */
  op_time *prof;    /* APS_CPU_PROFILE: per op and function */
  op_time *node_prof; /* APS_CPU_PROFILE=2: per node */
  uint8_t *by_dnnl;   /* ... 1: oneDNN ran it, 1 + k: it ran a group of k elementwise nodes */
};

/* The tensor node i reads as input k (a conv may read past the pads it folds). */
static uint32_t input_of(const gr_fast *f, uint32_t i, int k) {
  const uint32_t *r0 = gr_dnnl_read0(f->dnnl);
  return k == 0 && r0 && r0[i] ? r0[i] : f->g->n[i].inputs[k];
}

/* The CPU device skips nodes that no output or assignment needs, as a Vulkan plan's
 * dead-node pass does (e.g. the weight gradients in a graph differentiated w.r.t. its input
 * only); the reference runs every node, so tests can read any tensor. */
static uint8_t *needed_nodes(const gr_fast *f) {
  const gr_graph *g = f->g;
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
      live[input_of(f, i, k)] = 1;
  }
  free(live);
  return needed;
}

aps_status gr_fast_create(const gr_graph *g, int threads, int bf16_frozen, gr_fast **out) {
  *out = NULL;
  gr_fast *f = calloc(1, sizeof *f);
  if (!f)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  f->g = g;
  f->threads = threads;
  aps_status st = gr_dnnl_create(g, bf16_frozen, &f->dnnl);
  if (st == APS_OK && !(f->needed = needed_nodes(f)))
    st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (st == APS_OK)
    st = gr_fast_fusion_make(g, f->needed, gr_dnnl_read0(f->dnnl), &f->fusion);
  if (st == APS_OK)
    st = gr_cpu_plan_make(g, f->needed, gr_dnnl_read0(f->dnnl), gr_fast_fusion_at(f->fusion),
                          gr_fast_fusion_internal(f->fusion), &f->plan);
  if (st == APS_OK && getenv("APS_CPU_PROFILE") && !(f->prof = calloc((GR_OP_COUNT + 1) * PROF_FNS, sizeof *f->prof)))
    st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  const char *prof = getenv("APS_CPU_PROFILE");
  if (st == APS_OK && prof && atoi(prof) >= 2 &&
      (!(f->node_prof = calloc(g->nn ? g->nn : 1, sizeof *f->node_prof)) || !(f->by_dnnl = calloc(g->nn ? g->nn : 1, 1))))
    st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (st == APS_OK && f->plan.arena_floats) {
    size_t bytes = (size_t)f->plan.arena_floats * sizeof(float), huge = (size_t)2 << 20;
    bytes = (bytes + huge - 1) & ~(huge - 1);
    if (posix_memalign((void **)&f->arena, huge, bytes)) {
      f->arena = NULL;
      st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory for the CPU device's arena (%zu bytes)", bytes);
    } else {
#ifdef MADV_HUGEPAGE
      madvise(f->arena, bytes, MADV_HUGEPAGE); /* fewer TLB misses over the big activations */
#endif
      memset(f->arena, 0, bytes);
    }
  }
  if (st != APS_OK) {
    gr_fast_destroy(f);
    return st;
  }
  *out = f;
  return APS_OK;
}

static int by_time(const void *a, const void *b, void *ctx) {
  const op_time *t = ctx;
  double x = t[*(const uint32_t *)a].s, y = t[*(const uint32_t *)b].s;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* The slowest nodes, each with its op, shape, input shapes and time per run. */
static void print_nodes(const gr_fast *f) {
  const gr_graph *g = f->g;
  uint32_t *order = malloc((g->nn ? g->nn : 1) * sizeof *order), m = 0;
  if (!order)
    return;
  double total = 0;
  for (uint32_t i = 0; i < g->nn; i++)
    if (f->node_prof[i].n) {
      order[m++] = i;
      total += f->node_prof[i].s;
    }
  qsort_r(order, m, sizeof *order, by_time, f->node_prof);
  const char *e = getenv("APS_CPU_PROFILE_TOP");
  uint32_t top = e ? (uint32_t)atoi(e) : 40;
  fprintf(stderr, "CPU device: %u nodes ran, %.1f ms in all; the slowest (ms per run):\n", m, total * 1e3);
  for (uint32_t k = 0; k < m && k < top; k++) {
    const gr_node *n = &g->n[order[k]];
    char ins[160] = "", sh[64], how[16] = "";
    uint8_t by = f->by_dnnl[order[k]];
    if (by)
      snprintf(how, sizeof how, by == 1 ? "dnnl" : "grp%d", by - 1);
    for (int j = 0, at = 0; j < n->n_inputs && at < (int)sizeof ins - 1; j++)
      at += snprintf(ins + at, sizeof ins - (size_t)at, "%s%s", j ? " " : "",
                     gr_shape_str(g->t[n->inputs[j]].shape, sh, sizeof sh));
    fprintf(stderr, "  %8.2f %-14s %-5s fn %2d %-40s -> %-18s <- %s\n", f->node_prof[order[k]].s * 1e3 / (double)f->node_prof[order[k]].n,
            gr_op_name(n->op), how, n->op == GR_OP_UNARY || n->op == GR_OP_BINARY || n->op == GR_OP_REDUCE ? (int)n->ia[0] : 0,
            n->name, gr_shape_str(g->t[n->output].shape, sh, sizeof sh), ins);
  }
  free(order);
}

void gr_fast_destroy(gr_fast *f) {
  if (!f)
    return;
  if (f->node_prof)
    print_nodes(f);
  free(f->node_prof);
  free(f->by_dnnl);
  free(f->arena);
  gr_fast_fusion_free(f->fusion);
  for (int k = 0; f->prof && k < (GR_OP_COUNT + 1) * PROF_FNS; k++) /* the last row: elementwise groups by size */
    if (f->prof[k].n)
      fprintf(stderr, "CPU device: %-16s %s %2d %7ld nodes %9.1f ms\n",
              k / PROF_FNS < GR_OP_COUNT ? gr_op_name((gr_op)(k / PROF_FNS)) : "group", k / PROF_FNS < GR_OP_COUNT ? "fn" : "of",
              k % PROF_FNS, f->prof[k].n, f->prof[k].s * 1e3);
  free(f->prof);
  gr_cpu_plan_free(&f->plan);
  free(f->needed);
  gr_dnnl_destroy(f->dnnl);
  free(f);
}

int gr_fast_place(const gr_fast *f, uint32_t t, float **at) {
  *at = f->plan.where[t] == GR_CPU_ARENA ? f->arena + f->plan.offset[t] : NULL;
  return f->plan.where[t] == GR_CPU_OWN;
}

void gr_fast_memory(const gr_fast *f, gr_cpu_memory_stats *out) {
  out->arena_bytes = f->plan.arena_floats * sizeof(float);
  out->unplanned_bytes = f->plan.unplanned_floats * sizeof(float);
  out->shared_tensors = f->plan.shared;
  gr_fast_fusion_count(f->fusion, &out->groups, &out->grouped_nodes);
  out->bf16_convs = (uint32_t)gr_dnnl_bf16_convs(f->dnnl);
}

/* oneDNN where it takes the node, else the parallel kernel, else the reference. The thread
 * count is set for this thread's parallel regions (oneDNN's too). */
aps_status gr_fast_run(gr_fast *f, float *const *v) {
  const gr_graph *g = f->g;
#ifdef _OPENMP
  int before = omp_get_max_threads();
  if (f->threads)
    omp_set_num_threads(f->threads);
#endif
  aps_status st = APS_OK;
  if (f->bound != v) {
    int threads = f->threads;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    st = gr_fast_fusion_bind(f->fusion, v, threads);
    f->bound = st == APS_OK ? v : NULL;
  }
  for (uint32_t i = 0; i < g->nn && st == APS_OK; i++) {
    const gr_node *n = &g->n[i];
    if (!f->needed[i] || f->plan.view[i])
      continue;
    const float *in[GR_MAX_INPUTS];
    for (int k = 0; k < n->n_inputs; k++)
      in[k] = v[input_of(f, i, k)];
    int done = 0, group = gr_fast_fusion_size(f->fusion, i);
    double t0 = f->prof ? aps_now_s() : 0;
    int fused = gr_fast_fusion_run(f->fusion, i, v);
    if (fused == 2)
      continue;
    if (!fused)
      st = gr_dnnl_run(f->dnnl, i, in, v[n->output], &done);
    if (st == APS_OK && !done && !fused) {
      gr_cpu_fn fast = gr_op_impls[n->op].fast;
      (fast ? fast : gr_op_impls[n->op].cpu)(g, n, in, v[n->output]);
      gr_cpu_effects(g, n, v);
    }
    if (f->prof) {
      int fn = group ? group : n->op == GR_OP_UNARY || n->op == GR_OP_BINARY || n->op == GR_OP_REDUCE ? (int)n->ia[0] : 0;
      op_time *p = &f->prof[(group ? GR_OP_COUNT : (int)n->op) * PROF_FNS + (fn >= 0 && fn < PROF_FNS ? fn : PROF_FNS - 1)];
      double dt = aps_now_s() - t0;
      p->s += dt;
      p->n++;
      if (f->node_prof) {
        f->node_prof[i].s += dt;
        f->node_prof[i].n++;
        f->by_dnnl[i] = (uint8_t)(done ? 1 : fused ? 1 + group : 0);
      }
    }
  }
#ifdef _OPENMP
  omp_set_num_threads(before);
#endif
  return st;
}
