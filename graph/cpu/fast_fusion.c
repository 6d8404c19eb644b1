/* The CPU device's elementwise groups (fast_fusion.h).
 *
 * Forming them: the needed nodes in order; an elementwise node joins the groups of the
 * elementwise nodes of its shape that produce its inputs (all of them merged, or else the
 * first that may take it). A group runs at its last node, so a node may join only if no
 * other node before it reads a value of the group (that reader would run too early) and no
 * assignment lies between the group's first node and it (a member would read the assigned
 * value). Values of the group that only the group reads (and no output) are internal.
 *
 * Running them: the output's values are cut into rows over which every input of the group
 * is either contiguous or one value (fast_ops.c's broadcast rows), rows into blocks of
 * BLOCK values; per block each node runs fast_ops.c's serial kernel into a buffer of its
 * own (or straight into its memory), then the values read outside are copied out. A block's
 * inputs are all read before any output of the block is written, so an output may share the
 * memory of an input (fast_memory_plan.c's in-place rule) wherever that input is read. */
#include "fast_fusion.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fast_ops.h"

enum { BLOCK = 512, MAX_OPS = 64, MAX_EXT = 16, MIN_WIDTH = 64 };
enum { SRC_EXT = 0, SRC_OP = 1 };

typedef struct fu_op {
  uint32_t node;
  uint8_t src[3];   /* SRC_EXT: idx is an input of the group; SRC_OP: an earlier op of it */
  uint16_t idx[3];
  int16_t tmp;      /* its block buffer, or -1 (direct) */
  uint8_t store;    /* read outside the group: written to its memory */
  uint8_t direct;   /* computed straight into its memory (no input shares it) */
} fu_op;

typedef struct fu_ext {
  uint32_t t;
  int64_t st[4];
  int contig; /* 1: contiguous along a row, 0: one value per row */
} fu_ext;

typedef struct fu_group {
  uint32_t op0, n_ops, ext0, n_ext, exec;
  int rdim, n_tmp;
  int64_t o[4], width, count;
} fu_group;

struct gr_fast_fusion {
  const gr_graph *g;
  uint32_t *at;      /* per node */
  uint8_t *internal; /* per tensor */
  int32_t *group;    /* per node: its group, or -1 */
  fu_group *groups;
  fu_op *ops;
  fu_ext *ext;
  uint32_t n_groups;
  float *scratch;      /* block buffers: per thread, max_tmp · BLOCK values */
  int scratch_threads, max_tmp;
};

static int elementwise(const gr_node *n) {
  return n->op == GR_OP_UNARY || n->op == GR_OP_BINARY || n->op == GR_OP_WHERE;
}

static int same_shape(gr_shape a, gr_shape b) {
  int64_t x[4], y[4];
  gr_shape4(a, x);
  gr_shape4(b, y);
  return !memcmp(x, y, sizeof x);
}

/* Formation state: per node its (provisional) group id, members of groups as linked lists. */
typedef struct former {
  const gr_graph *g;
  const uint8_t *needed;
  uint32_t *cons_start, *cons; /* per tensor: the needed nodes that read it (CSR) */
  uint32_t *assigns;           /* prefix counts of needed assignments over the nodes */
  int32_t *gid;                /* per node: group id (representative node), or -1 */
  uint32_t *next, *head_of, *count_of; /* members: linked list per group id */
  uint32_t *min_of;            /* per group id: its first node */
} former;

static int in_set(const former *F, uint32_t node, const int32_t *ids, int n_ids, uint32_t extra) {
  if (node == extra)
    return 1;
  int32_t g = F->gid[node];
  for (int k = 0; g >= 0 && k < n_ids; k++)
    if (ids[k] == g)
      return 1;
  return 0;
}

/* Whether node i may join the union of groups ids[0..n): see the header comment. */
static int may_join(const former *F, const int32_t *ids, int n_ids, uint32_t i) {
  uint32_t members = 1, first = i;
  for (int k = 0; k < n_ids; k++) {
    members += F->count_of[ids[k]];
    first = F->min_of[ids[k]] < first ? F->min_of[ids[k]] : first;
  }
  if (members > MAX_OPS || F->assigns[i] != F->assigns[first])
    return 0;
  uint32_t ext[MAX_EXT + 1] = {0}, n_ext = 0;
  for (int k = 0; k <= n_ids; k++)
    for (uint32_t m = k < n_ids ? F->head_of[ids[k]] : i; m != UINT32_MAX; m = k < n_ids ? F->next[m] : UINT32_MAX) {
      const gr_node *n = &F->g->n[m];
      for (uint32_t c = F->cons_start[n->output]; c < F->cons_start[n->output + 1]; c++)
        if (F->cons[c] < i && !in_set(F, F->cons[c], ids, n_ids, i))
          return 0;
      for (int j = 0; j < n->n_inputs; j++) {
        uint32_t t = n->inputs[j], p = F->g->t[t].node;
        if (p && in_set(F, p - 1, ids, n_ids, i))
          continue;
        uint32_t e = 0;
        while (e < n_ext && ext[e] != t)
          e++;
        if (e == n_ext && (ext[n_ext++] = t, n_ext > MAX_EXT))
          return 0;
      }
    }
  return 1;
}

static void join(former *F, const int32_t *ids, int n_ids, uint32_t i) {
  int32_t to = n_ids ? ids[0] : (int32_t)i;
  if (!n_ids) {
    F->head_of[i] = UINT32_MAX;
    F->count_of[i] = 0;
    F->min_of[i] = i;
  }
  for (int k = 1; k < n_ids; k++) { /* relabel and splice the other lists in */
    for (uint32_t m = F->head_of[ids[k]]; m != UINT32_MAX; m = F->next[m])
      F->gid[m] = to;
    uint32_t *tail = &F->head_of[to];
    while (*tail != UINT32_MAX)
      tail = &F->next[*tail];
    *tail = F->head_of[ids[k]];
    F->count_of[to] += F->count_of[ids[k]];
    F->min_of[to] = F->min_of[ids[k]] < F->min_of[to] ? F->min_of[ids[k]] : F->min_of[to];
  }
  uint32_t *tail = &F->head_of[to];
  while (*tail != UINT32_MAX)
    tail = &F->next[*tail];
  *tail = i;
  F->next[i] = UINT32_MAX;
  F->count_of[to]++;
  F->gid[i] = to;
}

static int by_node(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Rows: trailing dimensions merged while every input is contiguous along them or one value
 * across them (as fast_ops.c's broadcast). */
static void rows_of(fu_group *G, fu_ext *ext) {
  int rdim = 4;
  int64_t width = 1;
  int mode[MAX_EXT];
  for (uint32_t e = 0; e < G->n_ext; e++)
    mode[e] = -1;
  while (rdim > 0) {
    int j = rdim - 1, ok = 1;
    if (G->o[j] != 1)
      for (uint32_t e = 0; e < G->n_ext; e++) {
        int m = ext[e].st[j] == 0 ? 0 : ext[e].st[j] == width ? 1 : -2;
        ok &= m != -2 && (mode[e] == -1 || mode[e] == m);
      }
    if (!ok)
      break;
    if (G->o[j] != 1)
      for (uint32_t e = 0; e < G->n_ext; e++)
        mode[e] = ext[e].st[j] != 0;
    width *= G->o[j];
    rdim = j;
  }
  for (uint32_t e = 0; e < G->n_ext; e++)
    ext[e].contig = mode[e] != 0;
  G->rdim = rdim;
  G->width = width;
}

/* Turns the formed groups into programs; groups too small or with too narrow rows dissolve. */
static aps_status programs(gr_fast_fusion *fu, former *F) {
  const gr_graph *g = fu->g;
  uint32_t nn = g->nn;
  fu->groups = calloc(nn ? nn : 1, sizeof *fu->groups);
  fu->ops = calloc(nn ? nn : 1, sizeof *fu->ops);
  fu->ext = calloc((size_t)(nn ? nn : 1) * 3, sizeof *fu->ext);
  uint32_t *list = malloc((MAX_OPS + 1) * sizeof *list);
  if (!fu->groups || !fu->ops || !fu->ext || !list) {
    free(list);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  const char *off = getenv("APS_CPU_NO_FUSION");
  uint32_t n_ops = 0, n_ext = 0;
  for (uint32_t r = 0; r < nn; r++) {
    if (F->gid[r] != (int32_t)r || F->count_of[r] < 2 || (off && atoi(off)))
      continue;
    uint32_t k = 0;
    for (uint32_t m = F->head_of[r]; m != UINT32_MAX; m = F->next[m])
      list[k++] = m;
    qsort(list, k, sizeof *list, by_node);
    fu_group *G = &fu->groups[fu->n_groups];
    *G = (fu_group){.op0 = n_ops, .n_ops = k, .ext0 = n_ext, .exec = list[k - 1]};
    gr_shape so = g->t[g->n[list[k - 1]].output].shape;
    gr_shape4(so, G->o);
    G->count = gr_shape_count(so);
    fu_ext *ext = fu->ext + n_ext;
    for (uint32_t q = 0; q < k; q++) {
      const gr_node *n = &g->n[list[q]];
      fu_op *op = &fu->ops[n_ops + q];
      *op = (fu_op){.node = list[q], .tmp = -1};
      for (int j = 0; j < n->n_inputs; j++) {
        uint32_t t = n->inputs[j], p = g->t[t].node, w = 0;
        while (p && w < q && list[w] != p - 1)
          w++;
        if (p && w < q) {
          op->src[j] = SRC_OP, op->idx[j] = (uint16_t)w;
          continue;
        }
        uint32_t e = 0;
        while (e < G->n_ext && ext[e].t != t)
          e++;
        if (e == G->n_ext) {
          ext[e].t = t;
          gr_bcast_strides(g->t[t].shape, so, ext[e].st);
          G->n_ext++;
        }
        op->src[j] = SRC_EXT, op->idx[j] = (uint16_t)e;
      }
      const gr_tensor_info *ti = &g->t[n->output];
      int outside = ti->output;
      for (uint32_t c = F->cons_start[n->output]; c < F->cons_start[n->output + 1]; c++)
        outside |= F->gid[F->cons[c]] != (int32_t)r;
      op->store = (uint8_t)outside;
    }
    rows_of(G, ext);
    if (G->width < MIN_WIDTH && G->width < G->count)
      continue; /* narrow rows: per-row overheads would eat the gain; the nodes run alone */
    for (uint32_t q = 0; q < k; q++) {
      fu->group[list[q]] = (int32_t)fu->n_groups;
      fu->at[list[q]] = G->exec;
      fu->internal[g->n[list[q]].output] = !fu->ops[n_ops + q].store;
    }
    n_ops += k, n_ext += G->n_ext;
    fu->n_groups++;
  }
  free(list);
  return APS_OK;
}

/* The tensor node i reads as input k (a conv may read past the zero pads it folds). */
static uint32_t input_of(const gr_graph *g, const uint32_t *read0, uint32_t i, int k) {
  return k == 0 && read0 && read0[i] ? read0[i] : g->n[i].inputs[k];
}

aps_status gr_fast_fusion_make(const gr_graph *g, const uint8_t *needed, const uint32_t *read0, gr_fast_fusion **out) {
  *out = NULL;
  uint32_t nn = g->nn ? g->nn : 1, nt = g->nt;
  gr_fast_fusion *fu = calloc(1, sizeof *fu);
  former F = {.g = g, .needed = needed};
  if (fu) {
    fu->g = g;
    fu->at = malloc(nn * sizeof *fu->at);
    fu->internal = calloc(nt, 1);
    fu->group = malloc(nn * sizeof *fu->group);
  }
  F.cons_start = calloc(nt + 1, sizeof *F.cons_start);
  F.assigns = calloc(nn, sizeof *F.assigns);
  F.gid = malloc(nn * sizeof *F.gid);
  F.next = malloc(nn * sizeof *F.next);
  F.head_of = malloc(nn * sizeof *F.head_of);
  F.count_of = calloc(nn, sizeof *F.count_of);
  F.min_of = calloc(nn, sizeof *F.min_of);
  aps_status st = APS_OK;
  if (!fu || !fu->at || !fu->internal || !fu->group || !F.cons_start || !F.assigns || !F.gid || !F.next ||
      !F.head_of || !F.count_of || !F.min_of)
    st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  uint32_t total = 0;
  for (uint32_t i = 0; st == APS_OK && i < g->nn; i++)
    if (needed[i])
      for (int k = 0; k < g->n[i].n_inputs; k++, total++)
        F.cons_start[input_of(g, read0, i, k) + 1]++;
  if (st == APS_OK && !(F.cons = malloc((total ? total : 1) * sizeof *F.cons)))
    st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (st == APS_OK) {
    for (uint32_t t = 0; t < nt; t++)
      F.cons_start[t + 1] += F.cons_start[t];
    uint32_t *fill = calloc(nt, sizeof *fill), assigns = 0;
    if (!fill)
      st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    for (uint32_t i = 0; fill && i < g->nn; i++) {
      fu->at[i] = i;
      fu->group[i] = -1;
      F.gid[i] = -1;
      F.assigns[i] = assigns += needed[i] && g->n[i].op == GR_OP_ASSIGN;
      if (needed[i])
        for (int k = 0; k < g->n[i].n_inputs; k++) {
          uint32_t t = input_of(g, read0, i, k);
          F.cons[F.cons_start[t] + fill[t]++] = i;
        }
    }
    free(fill);
  }
  for (uint32_t i = 0; st == APS_OK && i < g->nn; i++) {
    const gr_node *n = &g->n[i];
    if (!needed[i] || !elementwise(n))
      continue;
    int32_t ids[GR_MAX_INPUTS];
    int n_ids = 0;
    for (int k = 0; k < n->n_inputs; k++) {
      uint32_t p = g->t[n->inputs[k]].node;
      if (!p || F.gid[p - 1] < 0 || !same_shape(g->t[n->inputs[k]].shape, g->t[n->output].shape))
        continue;
      int dup = 0;
      for (int j = 0; j < n_ids; j++)
        dup |= ids[j] == F.gid[p - 1];
      if (!dup)
        ids[n_ids++] = F.gid[p - 1];
    }
    if (n_ids > 1 && !may_join(&F, ids, n_ids, i)) { /* all of them, else the first that may take it */
      int k = 0;
      while (k < n_ids && !may_join(&F, ids + k, 1, i))
        k++;
      ids[0] = k < n_ids ? ids[k] : -1;
      n_ids = k < n_ids;
    } else if (n_ids == 1 && !may_join(&F, ids, 1, i)) {
      n_ids = 0;
    }
    join(&F, ids, n_ids, i);
  }
  if (st == APS_OK)
    st = programs(fu, &F);
  free(F.cons_start), free(F.cons), free(F.assigns), free(F.gid), free(F.next), free(F.head_of), free(F.count_of);
  free(F.min_of);
  if (st != APS_OK) {
    gr_fast_fusion_free(fu);
    return st;
  }
  *out = fu;
  return APS_OK;
}

void gr_fast_fusion_free(gr_fast_fusion *fu) {
  if (!fu)
    return;
  free(fu->at), free(fu->internal), free(fu->group), free(fu->groups), free(fu->ops), free(fu->ext);
  free(fu->scratch);
  free(fu);
}

const uint32_t *gr_fast_fusion_at(const gr_fast_fusion *fu) { return fu->at; }
const uint8_t *gr_fast_fusion_internal(const gr_fast_fusion *fu) { return fu->internal; }

void gr_fast_fusion_count(const gr_fast_fusion *fu, uint32_t *groups, uint32_t *nodes) {
  *groups = fu->n_groups;
  *nodes = 0;
  for (uint32_t k = 0; k < fu->n_groups; k++)
    *nodes += fu->groups[k].n_ops;
}

int gr_fast_fusion_size(const gr_fast_fusion *fu, uint32_t i) {
  int32_t k = fu->group[i];
  return k >= 0 && fu->groups[k].exec == i ? (int)fu->groups[k].n_ops : 0;
}

static int overlaps(const float *a, int64_t na, const float *b, int64_t nb) { return a < b + nb && b < a + na; }

aps_status gr_fast_fusion_bind(gr_fast_fusion *fu, float *const *v, int threads) {
  const gr_graph *g = fu->g;
  fu->max_tmp = 0;
  for (uint32_t k = 0; k < fu->n_groups; k++) {
    fu_group *G = &fu->groups[k];
    fu_op *ops = fu->ops + G->op0;
    int16_t last[MAX_OPS]; /* per op, the last op that reads it (stored ones: the end) */
    for (uint32_t q = 0; q < G->n_ops; q++) {
      fu_op *op = &ops[q];
      op->direct = op->store;
      for (uint32_t e = 0; op->direct && e < G->n_ext; e++) {
        uint32_t t = fu->ext[G->ext0 + e].t;
        op->direct = !overlaps(v[g->n[op->node].output], G->count, v[t], gr_shape_count(g->t[t].shape));
      }
      last[q] = op->store ? (int16_t)G->n_ops : (int16_t)q;
      for (uint32_t r = q + 1; r < G->n_ops; r++)
        for (int j = 0; j < g->n[ops[r].node].n_inputs; j++)
          if (ops[r].src[j] == SRC_OP && ops[r].idx[j] == q && !op->store)
            last[q] = (int16_t)r;
    }
    /* Buffers by liveness within the block program. */
    int16_t owner[MAX_OPS];
    int n_tmp = 0;
    for (uint32_t q = 0; q < G->n_ops; q++) {
      ops[q].tmp = -1;
      if (ops[q].direct)
        continue;
      int b = 0;
      while (b < n_tmp && owner[b] >= 0 && last[owner[b]] >= (int16_t)q)
        b++;
      if (b == n_tmp)
        n_tmp++;
      owner[b] = (int16_t)q;
      ops[q].tmp = (int16_t)b;
    }
    G->n_tmp = n_tmp;
    fu->max_tmp = n_tmp > fu->max_tmp ? n_tmp : fu->max_tmp;
  }
  free(fu->scratch);
  fu->scratch = NULL;
  fu->scratch_threads = threads < 1 ? 1 : threads;
  size_t bytes = (size_t)fu->scratch_threads * (size_t)(fu->max_tmp ? fu->max_tmp : 1) * BLOCK * sizeof(float);
  if (fu->n_groups && !(fu->scratch = aligned_alloc(64, bytes)))
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "CPU device: out of host memory for elementwise blocks");
  return APS_OK;
}

static void run_block(const gr_graph *g, const fu_group *G, const fu_op *ops, const fu_ext *ext, float *const *v,
                      float *tmp, int64_t r, int64_t lo, int64_t len) {
  const float *ep[MAX_EXT], *vp[MAX_OPS];
  for (uint32_t e = 0; e < G->n_ext; e++) {
    int64_t off = 0, rest = r;
    for (int j = G->rdim - 1; j >= 0; j--) {
      off += rest % G->o[j] * ext[e].st[j];
      rest /= G->o[j];
    }
    ep[e] = v[ext[e].t] + off + (ext[e].contig ? lo : 0);
  }
  int64_t at = r * G->width + lo;
  for (uint32_t q = 0; q < G->n_ops; q++) {
    const fu_op *op = &ops[q];
    const gr_node *n = &g->n[op->node];
    float *y = op->direct ? v[n->output] + at : tmp + (int64_t)op->tmp * BLOCK;
    const float *p[3];
    int s[3];
    for (int j = 0; j < n->n_inputs; j++) {
      p[j] = op->src[j] == SRC_OP ? vp[op->idx[j]] : ep[op->idx[j]];
      s[j] = op->src[j] == SRC_OP || ext[op->idx[j]].contig;
    }
    if (n->op == GR_OP_UNARY)
      gr_fast_unary_block((gr_unary)n->ia[0], n->fa[0], n->fa[1], p[0], y, len); /* its input has its shape */
    else if (n->op == GR_OP_BINARY)
      gr_fast_binary_block((gr_binary)n->ia[0], p[0], s[0], p[1], s[1], y, len);
    else
      gr_fast_where_block(p[0], s[0], p[1], s[1], p[2], s[2], y, len);
    vp[q] = y;
  }
  for (uint32_t q = 0; q < G->n_ops; q++)
    if (ops[q].store && !ops[q].direct)
      memcpy(v[g->n[ops[q].node].output] + at, vp[q], (size_t)len * sizeof(float));
}

int gr_fast_fusion_run(const gr_fast_fusion *fu, uint32_t i, float *const *v) {
  int32_t k = fu->group[i];
  if (k < 0)
    return 0;
  const fu_group *G = &fu->groups[k];
  if (G->exec != i)
    return 2;
  const fu_op *ops = fu->ops + G->op0;
  const fu_ext *ext = fu->ext + G->ext0;
  int64_t rows = G->count / G->width, pieces = (G->width + BLOCK - 1) / BLOCK;
#pragma omp parallel num_threads(fu->scratch_threads) if (G->count >= GR_FAST_PAR_MIN)
  {
    int id = 0;
#ifdef _OPENMP
    id = omp_get_thread_num();
#endif
    float *tmp = fu->scratch + (size_t)id * (size_t)fu->max_tmp * BLOCK;
#pragma omp for schedule(static)
    for (int64_t rp = 0; rp < rows * pieces; rp++) {
      int64_t r = rp / pieces, lo = rp % pieces * BLOCK, len = G->width - lo < BLOCK ? G->width - lo : BLOCK;
      run_block(fu->g, G, ops, ext, v, tmp, r, lo, len);
    }
  }
  return 1;
}
