/* Fusion: chains of elementwise nodes folded into the epilogue of the node producing their
 * input, GroupNorms between convolutions folded into them (fold_norms), then the fusions into
 * convolutions of fusion_conv.c. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"

static const gr_node *producer(const gr_graph *g, uint32_t t) {
  return g->t[t].node ? &g->n[g->t[t].node - 1] : NULL;
}

/* How an operand of `shape` broadcasts against an anchor's output, or -1 if the epilogue
 * cannot express it. Channel = dimension 1 of NCHW, or the last dimension (matmul). */
static int classify(gr_shape operand, gr_shape out, int channel_last) {
  if (operand.rank == out.rank && !memcmp(operand.d, out.d, sizeof(int64_t) * (size_t)out.rank))
    return GR_BCAST_FULL;
  if (gr_shape_count(operand) == 1)
    return GR_BCAST_SCALAR;
  int64_t o[4], p[4];
  gr_shape4(out, o);
  gr_shape4(operand, p);
  if (channel_last)
    return p[0] == 1 && p[1] == 1 && p[2] == 1 && p[3] == o[3] ? GR_BCAST_C : -1;
  if (out.rank != 4 || p[2] != 1 || p[3] != 1 || p[1] != o[1])
    return -1;
  /* Per sample first, so a batch of one can still read a windowed operand. */
  return p[0] == o[0] ? GR_BCAST_NC : p[0] == 1 ? GR_BCAST_C : -1;
}

/* A per-(n,c) operand that is a column window of a wider [N, ld] matrix (a slice, seen
 * through a reshape) is read from that matrix directly, so the slice need not run:
 * a network's time-embedding projections can then be one matmul for all blocks. */
static void window(const gr_graph *g, gr_epilogue_step *s, int64_t channels, uint32_t anchor) {
  const gr_node *sl = producer(g, gr_root_of(g, s->operand));
  if (!sl || sl->op != GR_OP_SLICE || sl->ia[0] != 1)
    return;
  gr_shape src = g->t[sl->inputs[0]].shape;
  const gr_node *pm = producer(g, gr_root_of(g, sl->inputs[0]));
  if (src.rank != 2 || (pm && pm - g->n >= (ptrdiff_t)anchor) || src.d[1] >= (1 << 24))
    return;
  s->operand = sl->inputs[0];
  s->a = (float)src.d[1];
  s->b = (float)sl->ia[1];
  s->window_channels = (uint32_t)channels;
}

/* GroupNorm (+ SiLU) between two convolutions runs as no dispatch of its own: the conv
 * that produces its input also writes partial statistics (conv2d_f32.comp, any other
 * readers of that output are unaffected), and the conv that is the normalised tensor's
 * only reader normalises on load. The U-Net's norms all take this form, except where the
 * normalised tensor is a concatenation. */
enum { GR_NORM_FOLD_SILU_MAX = 4096 }; /* values per sample */

static aps_status fold_group_norms(gr_graph *g, uint32_t *fused) {
  uint32_t *uses = gr_count_uses(g);
  if (!uses)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  aps_status st = APS_OK;
  for (uint32_t i = 0; i < g->nn && st == APS_OK; i++) {
    gr_node *m = &g->n[i];
    if (m->dead || m->op != GR_OP_GROUP_NORM)
      continue;
    int silu = m->ep.count == 1 && !m->ep.step[0].is_binary && m->ep.step[0].fn == GR_SILU;
    uint32_t x = m->inputs[0], y = m->output;
    gr_shape sx = g->t[x].shape;
    gr_node *pr = g->t[x].alias ? NULL : (gr_node *)producer(g, x);
    int groups = (int)m->ia[0];
    int64_t cg = sx.rank == 4 ? sx.d[1] / groups : 0;
    /* The consumer applies the normalisation (and SiLU) to every value it loads, about
     * KH x O/8 times per value (once per kernel row and per 8 output channels): an FMA is
     * cheap, but SiLU's exp and division per load made the U-Net's large 3x3 convs slower
     * than the separate norm dispatch they save (lavapipe, Mesa 25). So SiLU folds only where
     * tensors are small (per sample, what the 8x8 level holds), and dispatch overhead rules. */
    if (silu && sx.rank == 4 && sx.d[1] * sx.d[2] * sx.d[3] > GR_NORM_FOLD_SILU_MAX)
      continue;
    if ((m->ep.count && !silu) || !pr || pr->dead || pr->op != GR_OP_CONV2D || pr->stats_out || !cg ||
        (cg % 8 && 8 % cg) || groups > 64 || uses[y] != 1 || g->t[y].output)
      continue;
    gr_node *c = NULL;
    for (uint32_t j = i + 1; j < g->nn && !c; j++) {
      uint32_t reads[GR_MAX_READS];
      int k = g->n[j].dead ? 0 : gr_node_reads(&g->n[j], reads);
      for (int r = 0; r < k; r++)
        if (reads[r] == y)
          c = &g->n[j];
    }
    if (!c || c->op != GR_OP_CONV2D || c->inputs[0] != y || c->ia[3] != 1 || c->norm_in.stats)
      continue;
    gr_tensor stats = gr_tensor_new(g, GR_OP_CONV2D, "", GR_SHAPE(gr_norm_stats_count(sx, groups)));
    if (!stats) {
      st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory folding %s", m->name);
      break;
    }
    g->t[stats].node = g->t[x].node;
    pr->stats_out = stats;
    pr->stats_groups = groups;
    int has_g = (int)m->ia[1], has_b = (int)m->ia[2];
    c->norm_in = (gr_norm_fold){.stats = stats, .gamma = has_g ? m->inputs[1] : 0,
                                .beta = has_b ? m->inputs[1 + has_g] : 0, .groups = groups, .silu = silu,
                                .eps = m->fa[0]};
    c->inputs[0] = x;
    m->dead = 1;
    (*fused)++;
  }
  free(uses);
  return st;
}

aps_status gr_pass_fuse(gr_graph *g, int fold_norms, uint32_t max_buffers, uint32_t *fused) {
  *fused = 0;
  uint32_t *uses = gr_count_uses(g);
  if (!uses)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (uint32_t i = 0; i < g->nn; i++) {
    gr_node *a = &g->n[i];
    if (a->dead || !gr_op_impls[a->op].fusable)
      continue;
    int channel_last = a->op == GR_OP_MATMUL;
    /* An operand is one more binding of the anchor's kernel (conv2d_f32 declares all 16). */
    int operands = max_buffers >= (a->op == GR_OP_CONV2D ? GR_FUSE_CONV_BUFFERS : GR_FUSE_EPILOGUE_BUFFERS);
    for (;;) {
      uint32_t t = a->output;
      if (a->ep.count == GR_MAX_EPILOGUE || uses[t] != 1 || g->t[t].output)
        break;
      /* The single consumer, if it is the next elementwise step. */
      gr_node *c = NULL;
      for (uint32_t j = i + 1; j < g->nn && !c; j++)
        if (!g->n[j].dead)
          for (int k = 0; k < g->n[j].n_inputs; k++)
            if (g->n[j].inputs[k] == t)
              c = &g->n[j];
      if (!c || (c->op != GR_OP_UNARY && c->op != GR_OP_BINARY))
        break;
      gr_shape so = g->t[t].shape;
      if (memcmp(&g->t[c->output].shape, &so, sizeof so))
        break; /* the step would broadcast the anchor's output itself */
      gr_epilogue_step s = {.fn = (uint8_t)c->ia[0]};
      if (c->op == GR_OP_UNARY) {
        s.a = c->fa[0];
        s.b = c->fa[1];
      } else {
        if (c->inputs[0] == c->inputs[1] || !operands)
          break;
        int first = c->inputs[1] == t;
        uint32_t operand = first ? c->inputs[0] : c->inputs[1];
        int bc = classify(g->t[operand].shape, so, channel_last);
        /* The anchor runs at position i: the operand's data must exist by then (a reshape
         * is only a view, so what counts is the node that produced its root). */
        const gr_node *pr = producer(g, gr_root_of(g, operand));
        if (bc < 0 || (pr && pr - g->n >= (ptrdiff_t)i))
          break;
        s.is_binary = 1;
        s.bcast = (uint8_t)bc;
        s.operand_first = (uint8_t)first;
        s.operand = operand;
        if (bc == GR_BCAST_NC)
          window(g, &s, so.d[1], i);
      }
      a->ep.step[a->ep.count++] = s;
      /* The anchor now produces the consumer's output. */
      a->output = c->output;
      g->t[c->output].node = i + 1;
      g->t[c->output].kind = a->op;
      c->dead = 1;
      uses[t] = 0;
      (*fused)++;
    }
  }
  free(uses);
  /* Norm folding sees each conv as the epilogue pass left it, with its skip conv merged
   * (so a residual block's norm2 still folds); upsampling and concatenations go last, where
   * a norm reading them can no longer fold. */
  /* Upsampling needs no binding; skip convs (x2, w2, b2), folded norms (statistics, gamma,
   * beta) and concatenations (a second output) do. */
  int conv_buffers = max_buffers >= GR_FUSE_CONV_BUFFERS;
  if (conv_buffers)
    APS_TRY(gr_pass_fuse_skip_convs(g, fused));
  if (fold_norms && conv_buffers)
    APS_TRY(fold_group_norms(g, fused));
  APS_TRY(gr_pass_fuse_upsample(g, fused));
  return conv_buffers ? gr_pass_fuse_concats(g, fused) : APS_OK;
}
