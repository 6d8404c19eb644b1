/* Lowering of conv2d (conv2d_f32 specialised to each layer's geometry) and of its weight
 * gradient (build_conv.c): stage 0 is the split-K GEMM of shaders/conv_wgrad_f32.comp writing
 * the partial sums, stage 1 their sum (shaders/conv_wgrad_sum.comp). The input gradient is a
 * conv2d node. Both GEMMs have GPU-shaped variants (conv2d_tiled_f32, conv_wgrad_tiled_f32),
 * chosen by the rule of the matmul's (gr_lower_variant). */
#include "lower.h"

/* Keep in step with the TILE comments at the top of shaders/conv2d_f32.comp and
 * shaders/depthwise_f32.comp, and with BK, BM_MAX in the tiled shaders (8 KiB of shared
 * arrays; a 4·WG square tile per workgroup). */
enum { CONV_TILE_O = 8, CONV_TILE_P = 32, DEPTHWISE_TILE_P = 64, CONV_TILED_SHARED_BYTES = 8192 };

typedef struct tiled_pc {
  uint32_t N, C, H, W, O, OH, OW, KH, KW, stride, pad, dil, groups, pad_mode, has_bias;
} tiled_pc;

/* conv2d_tiled_f32.comp: the conv as an implicit GEMM over the whole batch's pixels, its
 * geometry in push constants; for nodes without a folded GroupNorm or merged skip conv (the
 * tiled kernel has neither). */
static void conv_tiled_desc(gr_lower *L, const gr_node *n, uint32_t wg, tiled_pc *pc, rt_kernel_desc *kd,
                            rt_dispatch *d) {
  const gr_graph *g = L->g;
  const gr_conv_fusion *cf = &n->cf;
  gr_shape sx = g->t[n->inputs[0]].shape, sw = g->t[n->inputs[1]].shape, so = g->t[n->output].shape;
  uint32_t up = cf->upsample ? 2 : 1, has_bias = n->n_inputs > 2;
  *pc = (tiled_pc){(uint32_t)sx.d[0], (uint32_t)sx.d[1], (uint32_t)sx.d[2] * up, (uint32_t)sx.d[3] * up,
                   (uint32_t)sw.d[0], (uint32_t)so.d[2], (uint32_t)so.d[3], (uint32_t)sw.d[2], (uint32_t)sw.d[3],
                   (uint32_t)n->ia[0], (uint32_t)n->ia[1], (uint32_t)n->ia[2], (uint32_t)n->ia[3], (uint32_t)n->ia[4],
                   has_bias};
  uint64_t pixels = (uint64_t)pc->N * pc->OH * pc->OW, bm = 4 * wg;
  uint32_t og = pc->O / pc->groups;
  *kd = (rt_kernel_desc){.shader = "conv2d_tiled_f32", .spec_count = 2, .spec = {wg, wg}};
  rt_binding x = gr_lower_binding(L, n->inputs[0]);
  *d = (rt_dispatch){.push = pc,
                     .bindings = {x, gr_lower_binding(L, n->inputs[1]),
                                  has_bias ? gr_lower_binding(L, n->inputs[2]) : x, gr_lower_binding(L, n->output)},
                     .groups = {(uint32_t)((pixels + bm - 1) / bm), (og + (uint32_t)bm - 1) / (uint32_t)bm, pc->groups}};
  if (d->groups[0] > 65535) /* the kernel strides over the rest of the pixel tiles */
    d->groups[0] = 65535;
  gr_lower_epilogue(L, n, kd, d, 4);
  kd->spec_count = 31;
  kd->spec[25] = cf->upsample ? 1u : 0u;
  kd->spec[27] = so.d[1] != sw.d[0] ? (uint32_t)so.d[1] : 0;
  kd->spec[28] = (uint32_t)cf->out_c0;
  kd->spec[29] = cf->out2 ? (uint32_t)g->t[cf->out2].shape.d[1] : 0;
  kd->spec[30] = (uint32_t)cf->out2_c0;
  d->bindings[8] = cf->out2 ? gr_lower_binding(L, cf->out2) : d->bindings[3];
}

/* depthwise_f32.comp: groups == input channels, no folded GroupNorm (the blur operators). */
static aps_status lower_depthwise(gr_lower *L, const gr_node *n, const void *pc, uint32_t pixels, uint32_t o,
                                  uint32_t batch) {
  gr_shape sw = L->g->t[n->inputs[1]].shape;
  int has_bias = n->n_inputs > 2;
  rt_kernel_desc kd = {.shader = "depthwise_f32",
                       .spec_count = 7,
                       .spec = {(uint32_t)sw.d[2], (uint32_t)sw.d[3], (uint32_t)n->ia[0], (uint32_t)n->ia[1],
                                (uint32_t)n->ia[2], (uint32_t)n->ia[4], (uint32_t)has_bias}};
  rt_binding x = gr_lower_binding(L, n->inputs[0]);
  rt_dispatch d = {.push = pc,
                   .bindings = {x, gr_lower_binding(L, n->inputs[1]), has_bias ? gr_lower_binding(L, n->inputs[2]) : x,
                                gr_lower_binding(L, n->output)},
                   .groups = {(pixels + DEPTHWISE_TILE_P - 1) / DEPTHWISE_TILE_P, o, batch}};
  if (d.groups[0] > 65535) /* the kernel strides over the rest of the pixel tiles */
    d.groups[0] = 65535;
  gr_lower_epilogue(L, n, &kd, &d, 4);
  return gr_lower_dispatch(L, n, &kd, &d);
}

typedef struct plain_pc {
  uint32_t N, C, H, W, O, OH, OW, C2;
} plain_pc;

/* conv2d_f32.comp, with every fusion (passes/fusion.c, fusion_conv.c). */
static void conv_plain_desc(gr_lower *L, const gr_node *n, const plain_pc *pc, rt_kernel_desc *kd, rt_dispatch *d) {
  const gr_graph *g = L->g;
  const gr_conv_fusion *cf = &n->cf;
  gr_shape sw = g->t[n->inputs[1]].shape, so = g->t[n->output].shape;
  int has_bias = n->n_inputs > 2;
  *kd = (rt_kernel_desc){.shader = "conv2d_f32",
                         .spec_count = 8,
                         .spec = {(uint32_t)sw.d[2], (uint32_t)sw.d[3], (uint32_t)n->ia[0], (uint32_t)n->ia[1],
                                  (uint32_t)n->ia[2], (uint32_t)n->ia[3], (uint32_t)n->ia[4], (uint32_t)has_bias}};
  rt_binding x = gr_lower_binding(L, n->inputs[0]);
  *d = (rt_dispatch){.push = pc,
                     .bindings = {x, gr_lower_binding(L, n->inputs[1]),
                                  has_bias ? gr_lower_binding(L, n->inputs[2]) : x, gr_lower_binding(L, n->output)},
                     .groups = {(pc->OH * pc->OW + CONV_TILE_P - 1) / CONV_TILE_P,
                                (pc->O + CONV_TILE_O - 1) / CONV_TILE_O, pc->N}};
  if (d->groups[0] > 65535) /* the kernel strides over the rest of the pixel tiles */
    d->groups[0] = 65535;
  gr_lower_epilogue(L, n, kd, d, 4);
  /* Folded GroupNorms (passes/fusion.c): partial statistics of the output at binding 8 (else the
   * output itself, so that no extra range is written), and the input's normalisation from
   * bindings 9-11 (else the dummy). */
  const gr_norm_fold *nf = &n->norm_in;
  kd->spec[21] = n->stats_out ? (uint32_t)n->stats_groups : 0;
  kd->spec[22] = nf->stats ? (uint32_t)nf->groups : 0;
  kd->spec[23] = (nf->gamma ? 1u : 0u) | (nf->beta ? 2u : 0u) | (nf->silu ? 4u : 0u);
  kd->spec[24] = gr_float_bits(nf->stats ? nf->eps : 0.0f);
  d->bindings[8] = n->stats_out ? gr_lower_binding(L, n->stats_out) : d->bindings[3];
  d->bindings[9] = nf->stats ? gr_lower_binding(L, nf->stats) : gr_lower_dummy(L);
  d->bindings[10] = nf->gamma ? gr_lower_binding(L, nf->gamma) : gr_lower_dummy(L);
  d->bindings[11] = nf->beta ? gr_lower_binding(L, nf->beta) : gr_lower_dummy(L);
  /* Upsampled input, a second input through a 1x1 kernel, the output's place in a
   * concatenation and a second output (else the output again, as for the statistics), all
   * from passes/fusion_conv.c. */
  int placed = so.d[1] != sw.d[0];
  kd->spec_count = 31;
  kd->spec[25] = cf->upsample ? 1u : 0u;
  kd->spec[26] = (cf->x2 ? 1u : 0u) | (cf->b2 ? 2u : 0u);
  kd->spec[27] = placed ? (uint32_t)so.d[1] : 0;
  kd->spec[28] = (uint32_t)cf->out_c0;
  kd->spec[29] = cf->out2 ? (uint32_t)g->t[cf->out2].shape.d[1] : 0;
  kd->spec[30] = (uint32_t)cf->out2_c0;
  d->bindings[12] = cf->out2 ? gr_lower_binding(L, cf->out2) : d->bindings[3];
  d->bindings[13] = cf->x2 ? gr_lower_binding(L, cf->x2) : gr_lower_dummy(L);
  d->bindings[14] = cf->w2 ? gr_lower_binding(L, cf->w2) : gr_lower_dummy(L);
  d->bindings[15] = cf->b2 ? gr_lower_binding(L, cf->b2) : gr_lower_dummy(L);
}

aps_status gr_lower_conv2d(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  const gr_conv_fusion *cf = &n->cf;
  gr_shape sx = g->t[n->inputs[0]].shape, sw = g->t[n->inputs[1]].shape, so = g->t[n->output].shape;
  uint32_t up = cf->upsample ? 2 : 1;
  /* H, W: the input as the kernel sees it (upsampled); O from the weights, since the output
   * tensor may be a concatenation with more channels (passes/fusion_conv.c). */
  plain_pc pc = {(uint32_t)sx.d[0], (uint32_t)sx.d[1], (uint32_t)sx.d[2] * up, (uint32_t)sx.d[3] * up,
                 (uint32_t)sw.d[0], (uint32_t)so.d[2], (uint32_t)so.d[3], cf->x2 ? (uint32_t)g->t[cf->x2].shape.d[1] : 0};
  /* depthwise_f32.comp reads the first seven push constants; it has none of the fusions */
  if ((int64_t)n->ia[3] == sx.d[1] && sx.d[1] > 1 && !n->stats_out && !n->norm_in.stats && !cf->x2 &&
      !cf->upsample && !cf->out_c0 && !cf->out2 && so.d[1] == sw.d[0])
    return lower_depthwise(L, n, &pc, pc.OH * pc.OW, pc.O, pc.N);
  int tiled;
  uint32_t wg;
  APS_TRY(gr_lower_variant(L, n, CONV_TILED_SHARED_BYTES, &tiled, &wg));
  if (n->stats_out || n->norm_in.stats || cf->x2) /* fusions only conv2d_f32 has */
    tiled = GR_VARIANT_PLAIN;
  rt_kernel_desc kd[2];
  rt_dispatch d[2];
  tiled_pc tpc;
  if (tiled != GR_VARIANT_TILED)
    conv_plain_desc(L, n, &pc, &kd[0], &d[0]);
  if (tiled != GR_VARIANT_PLAIN)
    conv_tiled_desc(L, n, wg, &tpc, &kd[1], &d[1]);
  if (tiled == GR_VARIANT_TIMED)
    return gr_lower_pick(L, n, kd, d);
  return gr_lower_dispatch(L, n, &kd[tiled], &d[tiled]);
}

/* Keep in step with TILE_M / TILE_N at the top of shaders/conv_wgrad_f32.comp. */
enum { WGRAD_TILE_M = 32, WGRAD_TILE_N = 16 };

aps_status gr_lower_conv2d_wgrad(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  if (n->ia[8]) {
    struct {
      uint32_t count, splits;
    } pc = {(uint32_t)gr_shape_count(SHAPE(n->output)), (uint32_t)n->ia[6]};
    rt_kernel_desc kd = {.shader = "conv_wgrad_sum"};
    return gr_lower_one_to_one(L, n, &kd, &pc, ((uint64_t)pc.count + 255) / 256);
  }
  gr_shape sx = SHAPE(n->inputs[0]), sg = SHAPE(n->inputs[1]);
  struct {
    uint32_t N, C, H, W, O, OH, OW, KH, KW, stride, pad, dil, groups, splits, chunk;
  } pc = {(uint32_t)sx.d[0], (uint32_t)sx.d[1], (uint32_t)sx.d[2], (uint32_t)sx.d[3], (uint32_t)sg.d[1],
          (uint32_t)sg.d[2], (uint32_t)sg.d[3], (uint32_t)n->ia[4], (uint32_t)n->ia[5], (uint32_t)n->ia[0],
          (uint32_t)n->ia[1], (uint32_t)n->ia[2], (uint32_t)n->ia[3], (uint32_t)n->ia[6], (uint32_t)n->ia[7]};
  uint64_t cols = (uint64_t)(pc.C / pc.groups) * pc.KH * pc.KW, rows = pc.O / pc.groups;
  uint64_t z = (uint64_t)pc.groups * pc.splits;
  const uint32_t *max = rt_device_caps(L->dev)->max_workgroup_count;
  rt_dispatch d = {.push = &pc,
                   .bindings = {gr_lower_binding(L, n->inputs[0]), gr_lower_binding(L, n->inputs[1]),
                                gr_lower_binding(L, n->output)},
                   .groups = {(uint32_t)((cols + WGRAD_TILE_N - 1) / WGRAD_TILE_N),
                              (uint32_t)((rows + WGRAD_TILE_M - 1) / WGRAD_TILE_M), (uint32_t)z}};
  int tiled;
  uint32_t wg;
  APS_TRY(gr_lower_variant(L, n, CONV_TILED_SHARED_BYTES, &tiled, &wg));
  /* [1]: conv_wgrad_tiled_f32.comp, 4·wg square tiles, same z */
  rt_kernel_desc kd[2] = {{.shader = "conv_wgrad_f32"},
                          {.shader = "conv_wgrad_tiled_f32", .spec_count = 2, .spec = {wg, wg}}};
  rt_dispatch dv[2] = {d, d};
  dv[1].groups[0] = (uint32_t)((cols + 4 * wg - 1) / (4 * wg));
  dv[1].groups[1] = (uint32_t)((rows + 4 * wg - 1) / (4 * wg));
  int over[2] = {-1, -1}; /* per variant, the first axis past the device's workgroup counts */
  for (int v = 0; v < 2; v++)
    for (int i = 2; i >= 0; i--)
      over[v] = dv[v].groups[i] > max[i] ? i : over[v];
  if (tiled == GR_VARIANT_TIMED && (over[0] >= 0) != (over[1] >= 0)) /* only one can run: no timing */
    tiled = over[0] >= 0 ? GR_VARIANT_TILED : GR_VARIANT_PLAIN;
  for (int v = 0; v < 2; v++)
    if ((v == tiled || tiled == GR_VARIANT_TIMED) && over[v] >= 0)
      return aps_fail(APS_ERR_UNSUPPORTED, "node %s: %s needs %u workgroups along %c, the device allows %u",
                      n->name, kd[v].shader, dv[v].groups[over[v]], "xyz"[over[v]], max[over[v]]);
  if (tiled == GR_VARIANT_TIMED)
    return gr_lower_pick(L, n, kd, dv);
  return gr_lower_dispatch(L, n, &kd[tiled], &dv[tiled]);
}
