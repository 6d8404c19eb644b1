/* Fusions into convolutions, after the epilogue pass (fusion.c). Each removes a dispatch and
 * a trip of one tensor through memory; shaders/conv2d_f32.comp does the extra work as it
 * loads and stores (gr_conv_fusion in graph_internal.h):
 *   - skip convs: a residual block ends y = conv2(h) + skip(x) with skip a 1x1 conv, and the
 *     epilogue pass put the add into skip's epilogue. One node sums both convs in the same
 *     accumulators, at skip's place in the order, where all of their inputs exist.
 *   - upsampling: a conv whose input is nearest-upsampled x reads x at (iy/2, ix/2).
 *   - concatenations along channels of conv outputs: each conv stores its slice of the
 *     concatenation (the concatenation's batch stride); a conv whose own output other nodes
 *     read as well stores both. The concat node runs nothing, and the memory plan keeps its
 *     buffer from the first conv's store to its last reader. */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

static gr_node *producer(gr_graph *g, uint32_t t) {
  return g->t[t].node && !g->t[t].alias ? &g->n[g->t[t].node - 1] : NULL;
}

/* A conv that no pass of this file has changed, writing tensor t as its own output. */
static int plain_conv(const gr_node *n, uint32_t t) {
  static const gr_conv_fusion none;
  return n && !n->dead && n->op == GR_OP_CONV2D && n->output == t && !memcmp(&n->cf, &none, sizeof none);
}

/* An assignment between nodes a and b: moving a read from one to the other could change the
 * value it sees. */
static int effects_between(const gr_node *a, const gr_node *b) {
  for (const gr_node *n = a + 1; n < b; n++)
    if (!n->dead && n->op == GR_OP_ASSIGN)
      return 1;
  return 0;
}

/* The single live node reading t, or NULL (uses: gr_count_uses). */
static gr_node *only_reader(gr_graph *g, const uint32_t *uses, uint32_t t) {
  if (uses[t] != 1 || g->t[t].output)
    return NULL;
  for (uint32_t i = 0; i < g->nn; i++) {
    uint32_t reads[GR_MAX_READS];
    int k = g->n[i].dead ? 0 : gr_node_reads(&g->n[i], reads);
    for (int j = 0; j < k; j++)
      if (reads[j] == t)
        return &g->n[i];
  }
  return NULL;
}

aps_status gr_pass_fuse_skip_convs(gr_graph *g, uint32_t *fused) {
  uint32_t *uses = gr_count_uses(g);
  if (!uses)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (uint32_t i = 0; i < g->nn; i++) {
    gr_node *s = &g->n[i];
    if (!plain_conv(s, s->output) || s->stats_out || s->norm_in.stats || !s->ep.count)
      continue;
    gr_shape sw = g->t[s->inputs[1]].shape;
    const gr_epilogue_step *add = &s->ep.step[0];
    /* 1x1, stride 1, no padding, one group: reads x2 at the output's own pixels */
    if (sw.d[2] != 1 || sw.d[3] != 1 || s->ia[0] != 1 || s->ia[1] != 0 || s->ia[3] != 1 || !add->is_binary ||
        add->fn != GR_ADD || add->bcast != GR_BCAST_FULL)
      continue;
    uint32_t t = add->operand;
    gr_node *c = producer(g, t);
    if (!plain_conv(c, t) || c->ep.count || c->stats_out || only_reader(g, uses, t) != s || effects_between(c, s))
      continue;
    gr_node m = *c;
    m.cf.x2 = s->inputs[0];
    m.cf.w2 = s->inputs[1];
    m.cf.b2 = s->n_inputs > 2 ? s->inputs[2] : 0;
    m.ep.count = s->ep.count - 1;
    memcpy(m.ep.step, s->ep.step + 1, sizeof(gr_epilogue_step) * (size_t)m.ep.count);
    m.output = s->output;
    *s = m;
    c->dead = 1;
    uses[t] = 0;
    (*fused)++;
  }
  free(uses);
  return APS_OK;
}

aps_status gr_pass_fuse_upsample(gr_graph *g, uint32_t *fused) {
  uint32_t *uses = gr_count_uses(g);
  if (!uses)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (uint32_t i = 0; i < g->nn; i++) {
    gr_node *u = &g->n[i];
    if (u->dead || u->op != GR_OP_UPSAMPLE || u->ia[0] != GR_NEAREST)
      continue;
    gr_node *c = only_reader(g, uses, u->output);
    /* The statistics of a folded norm count the input's own pixels: not upsampled ones. */
    if (!c || c->op != GR_OP_CONV2D || c->inputs[0] != u->output || c->cf.upsample || c->norm_in.stats ||
        effects_between(u, c))
      continue;
    c->inputs[0] = u->inputs[0];
    c->cf.upsample = 1;
    u->dead = 1;
    (*fused)++;
  }
  free(uses);
  return APS_OK;
}

aps_status gr_pass_fuse_concats(gr_graph *g, uint32_t *fused) {
  uint32_t *uses = gr_count_uses(g);
  if (!uses)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (uint32_t i = 0; i < g->nn; i++) {
    gr_node *k = &g->n[i];
    if (k->dead || k->op != GR_OP_CONCAT || k->ia[0] != 1 || g->t[k->output].shape.rank != 4 ||
        k->inputs[0] == k->inputs[1])
      continue;
    gr_node *p[2];
    int ok = 1;
    for (int j = 0; j < 2; j++) {
      uint32_t t = k->inputs[j];
      p[j] = producer(g, t);
      /* A conv already storing a second output (another concatenation) keeps it. */
      ok = ok && p[j] && !p[j]->dead && p[j]->op == GR_OP_CONV2D && p[j]->output == t && !p[j]->cf.out2;
    }
    if (!ok)
      continue;
    uint32_t cat = k->output;
    for (int j = 0; j < 2; j++) {
      uint32_t t = k->inputs[j];
      int64_t c0 = j ? g->t[k->inputs[0]].shape.d[1] : 0;
      if (only_reader(g, uses, t) == k) { /* the conv's own output is needed no more */
        p[j]->output = cat;
        p[j]->cf.out_c0 = c0;
      } else {
        p[j]->cf.out2 = cat;
        p[j]->cf.out2_c0 = c0;
      }
    }
    /* ordering checks of later passes ask for the node after which the tensor is complete */
    g->t[cat].node = (uint32_t)((p[0] > p[1] ? p[0] : p[1]) - g->n) + 1;
    k->dead = 1;
    (*fused)++;
  }
  free(uses);
  return APS_OK;
}
