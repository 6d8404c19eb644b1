/* conv2d and matmul of the CPU device through oneDNN (Debian's libdnnl-dev, C API).
 * Each zero-padded conv2d node, and each weight-gradient node (gr_conv2d_wgrad), gets its
 * primitive once, at gr_cpu_create_ex; reflect padding goes to fast_ops.c's loop; matmul
 * and attention go to fast_sgemm.c. */
#include "fast_dnnl.h"

#include "fast_ops.h"
#include "fast_sgemm.h"

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

enum { SRC, WEI, DST, NMEM };

typedef struct gr_dnnl_conv {
  dnnl_primitive_t conv;
  dnnl_memory_t user[NMEM], bias; /* the graph's plain layouts; data set per run */
  dnnl_memory_t inner[NMEM];      /* the primitive's layouts where they differ (else NULL) */
  dnnl_primitive_t reorder[NMEM]; /* user -> inner (src, weights), inner -> user (dst) */
  int64_t chunk, batch;           /* images per execution, of the node's batch */
  uint32_t src;                   /* the tensor read as input 0 (past folded pads) */
  int slot0_only;                 /* wgrad: only the sum node reads the partial sums */
  int gemm;                       /* a plain 1x1 conv or its wgrad: sgemms (no primitive) */
  int bf16;                       /* reads src and weights as bf16 (gr_cpu_desc.bf16_frozen) */
  dnnl_memory_t pad;              /* the primitive's scratchpad (NULL: it needs none) */
} gr_dnnl_conv;

struct gr_dnnl {
  const gr_graph *g;
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  gr_dnnl_conv **conv; /* per node; NULL = not a oneDNN conv */
  uint32_t *read0;     /* per node: the tensor a conv reads past its folded pads, or 0 */
  uint8_t *copy_slot0; /* per node: a wgrad sum whose partials oneDNN wrote all to slot 0 */
  int folded;          /* some conv folds pads */
  int bf16_convs;      /* convs that read bf16 */
  /* The inner (reordered) memories of every primitive share one scratch array per role
   * (src, weights, dst): nodes run one at a time, and one array stays in cache. */
  size_t scratch_bytes[NMEM];
  void *scratch[NMEM];
  /* Every primitive's scratchpad, passed by us (dnnl_scratchpad_mode_user): oneDNN's own
   * lives per thread, and a plan made in one thread and run in another (the viewer's worker)
   * found none there, crashing the im2col convolutions. Shared like the arrays above. */
  size_t pad_bytes;
  void *pad;
};

#define DN(call)                                                                                          \
  do {                                                                                                    \
    dnnl_status_t dn_s_ = (call);                                                                         \
    if (dn_s_ != dnnl_success)                                                                            \
      return aps_fail(APS_ERR_UNSUPPORTED, "CPU device, node '%s': oneDNN %s failed: %s", n->name, #call, \
                      dnnl_status2str(dn_s_));                                                            \
  } while (0)

/* Which layout a conv runs in, chosen by measurement (bench_cpu_device on the 2-core
 * AVX-512 machine, conv 64->64 32x32 batch 16, GFLOP/s, 2 threads / 1 thread):
 *   plain nchw (oneDNN's im2col + gemm):        3x3 173 / 86    1x1 138 / 143
 *   oneDNN's choice (nhwc brgconv) + reorders:  3x3 274 / 146   1x1 110 / 75
 * and the U-Net at batch 64: nchw 473 ms, any 351 ms, this mix 287 ms (2 threads). A 1x1
 * conv in nchw is a plain gemm with no copies; a 3x3 conv gains more from the blocked
 * kernels than its two reorders cost, unless the conv is so small that each reorder's fixed
 * cost (a primitive and a parallel region) dominates: below CONV_ANY_MIN values in and out
 * over the batch, nchw (the flow's sampling at batch 1, five runs on the shared 2-core machine:
 * 5.5-7.3 ms in nchw, 9.3-15.4 ms in oneDNN's layout). APS_CPU_CONV_FORMAT=nchw|any forces one
 * layout. */
enum { CONV_ANY_MIN = 1 << 16 };
static int conv_any(const gr_node *n, int64_t k, int64_t values) {
  const char *e = getenv("APS_CPU_CONV_FORMAT");
  if (e && (!strcmp(e, "nchw") || !strcmp(e, "any")))
    return !strcmp(e, "any");
  return !(k == 1 && n->ia[0] == 1 && n->ia[1] == 0) && values >= CONV_ANY_MIN;
}

/* bf16 (gr_cpu_desc.bf16_frozen), measured on the 2-core AVX512_BF16 machine (batch 16, GFLOP/s,
 * oneDNN's layouts, no reorders): 3x3 64->64 32x32 223 fp32 / 445 bf16, 3x3 128->64 16x16
 * 249 / 494. Only where the CPU has the dot-product instructions:
 * oneDNN emulates bf16 elsewhere, slower than fp32. */
int gr_cpu_has_bf16(void) {
  return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

/* Whether w, a conv's weights, belongs to a frozen network: a parameter no assignment updates
 * or a constant, read through layout ops only (the flipped, transposed kernel of the
 * backward-data conv, autodiff/vjp_conv.c). */
static int weights_frozen(const gr_graph *g, const uint8_t *assigned, uint32_t w) {
  for (;;) {
    const gr_tensor_info *t = &g->t[w];
    if (t->kind == GR_OP_PARAM || t->kind == GR_OP_CONST)
      return !assigned[w];
    const gr_node *p = t->node ? &g->n[t->node - 1] : NULL;
    if (!p || (p->op != GR_OP_RESHAPE && p->op != GR_OP_PERMUTE && p->op != GR_OP_FLIP))
      return 0;
    w = p->inputs[0];
  }
}

/* Images per execution of a conv that reorders: a divisor of the batch whose activations
 * fit in about two megabytes, so that the reorders and the conv meet in cache rather than
 * in DRAM (the U-Net's 3x3 convs at batch 64, one thread: 295 -> 280 ms, 5-10 %), in few
 * enough executions: each is three parallel regions, and with OMP_WAIT_POLICY=passive every
 * region wakes the sleeping threads (training step, batch 64, 2 threads, 512 KB -> 2 MB:
 * 810 -> 737 ms, system time 1.0 -> 0.65 s per 7 steps). */
static int64_t conv_chunk(int64_t batch, int64_t per_image) {
  const char *e = getenv("APS_CPU_CONV_CHUNK_KB");
  int64_t budget = (e ? atoll(e) : 2048) * 256, best = 1;
  for (int64_t k = 1; k <= batch; k++)
    if (batch % k == 0 && k * per_image <= budget)
      best = k;
  return best;
}

static void conv_destroy(gr_dnnl_conv *c) {
  if (!c)
    return;
  dnnl_primitive_destroy(c->conv);
  dnnl_memory_destroy(c->bias);
  dnnl_memory_destroy(c->pad);
  for (int i = 0; i < NMEM; i++) {
    dnnl_memory_destroy(c->user[i]);
    dnnl_memory_destroy(c->inner[i]);
    dnnl_primitive_destroy(c->reorder[i]);
  }
  free(c);
}

/* A primitive descriptor whose scratchpad we pass (gr_dnnl.pad). */
static dnnl_status_t pd_create_user_pad(dnnl_primitive_desc_t *pd, const void *op_desc, dnnl_engine_t eng,
                                        const_dnnl_primitive_desc_t hint) {
  dnnl_primitive_attr_t attr = NULL;
  dnnl_status_t s = dnnl_primitive_attr_create(&attr);
  if (s == dnnl_success)
    s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  if (s == dnnl_success)
    s = dnnl_primitive_desc_create(pd, op_desc, attr, eng, hint);
  dnnl_primitive_attr_destroy(attr);
  return s;
}

/* c->pad for the primitive's scratchpad, if it needs one; its size joins d->pad_bytes. */
static aps_status pad_create(gr_dnnl *d, const gr_node *n, gr_dnnl_conv *c, const_dnnl_primitive_desc_t pd) {
  const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  size_t bytes = md ? dnnl_memory_desc_get_size(md) : 0;
  if (!bytes)
    return APS_OK;
  DN(dnnl_memory_create(&c->pad, md, d->eng, DNNL_MEMORY_NONE));
  if (bytes > d->pad_bytes)
    d->pad_bytes = bytes;
  return APS_OK;
}

/* Makes c->inner[i] and its reorder when the primitive wants another layout than the user's
 * (the reorder runs inner -> user for the primitive's output: dst, or the weight gradient). */
static aps_status conv_layout(gr_dnnl *d, const gr_node *n, gr_dnnl_conv *c, const_dnnl_primitive_desc_t pd,
                              int i, dnnl_query_t q) {
  int output = i == (n->op == GR_OP_CONV2D_WGRAD ? WEI : DST);
  const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, q, 0), *have = NULL;
  DN(dnnl_memory_get_memory_desc(c->user[i], &have));
  if (dnnl_memory_desc_equal(want, have))
    return APS_OK;
  DN(dnnl_memory_create(&c->inner[i], want, d->eng, DNNL_MEMORY_NONE));
  size_t bytes = dnnl_memory_desc_get_size(want);
  if (bytes > d->scratch_bytes[i])
    d->scratch_bytes[i] = bytes;
  dnnl_primitive_desc_t rpd = NULL;
  if (output)
    DN(dnnl_reorder_primitive_desc_create(&rpd, want, d->eng, have, d->eng, NULL));
  else
    DN(dnnl_reorder_primitive_desc_create(&rpd, have, d->eng, want, d->eng, NULL));
  dnnl_status_t s = dnnl_primitive_create(&c->reorder[i], rpd);
  dnnl_primitive_desc_destroy(rpd);
  DN(s);
  return APS_OK;
}

/* pads: {top, bottom, left, right} of zero pad nodes folded into the conv, whose input 0
 * is then c->src. */
static aps_status conv_create(gr_dnnl *d, const gr_node *n, gr_dnnl_conv *c, const int64_t pads4[4], int bf16) {
  const gr_graph *g = d->g;
  gr_shape sx = gr_t(g, c->src)->shape, sw = gr_t(g, n->inputs[1])->shape, so = gr_t(g, n->output)->shape;
  int64_t groups = n->ia[3], stride = n->ia[0], pad = n->ia[1], dil = n->ia[2];
  dnnl_dims_t x = {sx.d[0], sx.d[1], sx.d[2], sx.d[3]}, y = {so.d[0], so.d[1], so.d[2], so.d[3]};
  dnnl_dims_t w = {groups, sw.d[0] / groups, sw.d[1], sw.d[2], sw.d[3]}, b = {sw.d[0]};
  dnnl_dims_t strides = {stride, stride}, dilates = {dil - 1, dil - 1};
  dnnl_dims_t pads = {pad + pads4[0], pad + pads4[2]}, pads_r = {pad + pads4[1], pad + pads4[3]};
  int wrank = groups > 1 ? 5 : 4;
  dnnl_format_tag_t wtag = groups > 1 ? dnnl_goihw : dnnl_oihw;
  if (groups == 1)
    memmove(w, w + 1, 4 * sizeof *w);
  int64_t per_image = sx.d[1] * sx.d[2] * sx.d[3] + so.d[1] * so.d[2] * so.d[3];
  int use_any = conv_any(n, sw.d[2] * sw.d[3], sx.d[0] * per_image);
  c->bf16 = bf16 && use_any; /* bf16 goes through the reorders a blocked layout makes anyway */
  c->batch = sx.d[0];
  c->chunk = use_any ? conv_chunk(sx.d[0], per_image) : sx.d[0];
  x[0] = y[0] = c->chunk;
  dnnl_memory_desc_t md[NMEM], any[NMEM], bmd;
  DN(dnnl_memory_desc_init_by_tag(&md[SRC], 4, x, dnnl_f32, dnnl_nchw));
  DN(dnnl_memory_desc_init_by_tag(&md[WEI], wrank, w, dnnl_f32, wtag));
  DN(dnnl_memory_desc_init_by_tag(&md[DST], 4, y, dnnl_f32, dnnl_nchw));
  DN(dnnl_memory_desc_init_by_tag(&bmd, 1, b, dnnl_f32, dnnl_x));
  for (int i = 0; i < NMEM; i++) {
    any[i] = md[i];
    if (use_any)
      DN(dnnl_memory_desc_init_by_tag(&any[i], i == WEI ? wrank : 4, i == SRC ? x : i == WEI ? w : y,
                                      c->bf16 && i != DST ? dnnl_bf16 : dnnl_f32, dnnl_format_tag_any));
  }
  dnnl_convolution_desc_t cd;
  DN(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &any[SRC],
                                                &any[WEI], n->n_inputs > 2 ? &bmd : NULL, &any[DST], strides,
                                                dilates, pads, pads_r));
  dnnl_primitive_desc_t pd = NULL;
  if (c->bf16 && pd_create_user_pad(&pd, &cd, d->eng, NULL) != dnnl_success) /* no bf16 kernel: fp32 */
    return conv_create(d, n, c, pads4, 0);
  if (!c->bf16)
    DN(pd_create_user_pad(&pd, &cd, d->eng, NULL));
  d->bf16_convs += c->bf16;
  aps_status st = pad_create(d, n, c, pd);
  static const dnnl_query_t q[NMEM] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md};
  for (int i = 0; i < NMEM && st == APS_OK; i++) {
    dnnl_status_t s = dnnl_memory_create(&c->user[i], &md[i], d->eng, DNNL_MEMORY_NONE);
    st = s == dnnl_success ? conv_layout(d, n, c, pd, i, q[i])
                           : aps_fail(APS_ERR_OUT_OF_MEMORY, "CPU device, node '%s': oneDNN memory: %s", n->name,
                                      dnnl_status2str(s));
  }
  if (st == APS_OK) {
    dnnl_status_t s = dnnl_memory_create(&c->bias, &bmd, d->eng, DNNL_MEMORY_NONE);
    if (s == dnnl_success)
      s = dnnl_primitive_create(&c->conv, pd);
    if (s != dnnl_success)
      st = aps_fail(APS_ERR_UNSUPPORTED, "CPU device, node '%s': oneDNN convolution: %s", n->name,
                    dnnl_status2str(s));
  }
  dnnl_primitive_desc_destroy(pd);
  return st;
}

/* Stage 0 of gr_conv2d_wgrad (build_conv.c) as oneDNN's backward-weights convolution over the
 * whole batch, in the layouts it picks. Measured on the 2-core AVX-512 machine (batch 64, 3x3,
 * 32 ch 32x32 / 64 ch 16x16 / 64 ch 8x8, GFLOP/s, reorders included): blocked jit 218 / 270 /
 * 279; plain nchw (oneDNN's gemm) 29 / 142 / 127; im2col + dnnl_sgemm per slice of the
 * reduction, slices in parallel, 19 / 45 / 41. The whole sum goes to slot 0 of the partial
 * sums, the other slots are zeroed (only the sum over slots is defined), unless only the sum
 * node reads them (slot0_only: it then copies slot 0). 1x1 layers go to wgrad_gemm instead.
 * SRC = x, DST = gy, WEI = the weight gradient. */
static aps_status wgrad_create(gr_dnnl *d, const gr_node *n, gr_dnnl_conv *c) {
  const gr_graph *g = d->g;
  gr_shape sx = gr_t(g, n->inputs[0])->shape, sy = gr_t(g, n->inputs[1])->shape;
  int64_t stride = n->ia[0], pad = n->ia[1], dil = n->ia[2], groups = n->ia[3], kh = n->ia[4], kw = n->ia[5];
  dnnl_dims_t x = {sx.d[0], sx.d[1], sx.d[2], sx.d[3]}, y = {sy.d[0], sy.d[1], sy.d[2], sy.d[3]};
  dnnl_dims_t w = {groups, sy.d[1] / groups, sx.d[1] / groups, kh, kw};
  dnnl_dims_t strides = {stride, stride}, dilates = {dil - 1, dil - 1}, pads = {pad, pad};
  int wrank = groups > 1 ? 5 : 4;
  if (groups == 1)
    memmove(w, w + 1, 4 * sizeof *w);
  c->batch = c->chunk = sx.d[0];
  dnnl_memory_desc_t md[NMEM], any[NMEM];
  DN(dnnl_memory_desc_init_by_tag(&md[SRC], 4, x, dnnl_f32, dnnl_nchw));
  DN(dnnl_memory_desc_init_by_tag(&md[WEI], wrank, w, dnnl_f32, groups > 1 ? dnnl_goihw : dnnl_oihw));
  DN(dnnl_memory_desc_init_by_tag(&md[DST], 4, y, dnnl_f32, dnnl_nchw));
  for (int i = 0; i < NMEM; i++)
    DN(dnnl_memory_desc_init_by_tag(&any[i], i == WEI ? wrank : 4, i == SRC ? x : i == WEI ? w : y, dnnl_f32,
                                    dnnl_format_tag_any));
  dnnl_convolution_desc_t fd, bd;
  DN(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &any[SRC],
                                                &any[WEI], NULL, &any[DST], strides, dilates, pads, pads));
  DN(dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &any[SRC], &any[WEI], NULL,
                                                         &any[DST], strides, dilates, pads, pads));
  dnnl_primitive_desc_t fpd = NULL, pd = NULL;
  DN(dnnl_primitive_desc_create(&fpd, &fd, NULL, d->eng, NULL));
  dnnl_status_t s = pd_create_user_pad(&pd, &bd, d->eng, fpd);
  dnnl_primitive_desc_destroy(fpd);
  DN(s);
  aps_status st = pad_create(d, n, c, pd);
  static const dnnl_query_t q[NMEM] = {dnnl_query_src_md, dnnl_query_diff_weights_md, dnnl_query_diff_dst_md};
  for (int i = 0; i < NMEM && st == APS_OK; i++) {
    s = dnnl_memory_create(&c->user[i], &md[i], d->eng, DNNL_MEMORY_NONE);
    st = s == dnnl_success ? conv_layout(d, n, c, pd, i, q[i])
                           : aps_fail(APS_ERR_OUT_OF_MEMORY, "CPU device, node '%s': oneDNN memory: %s", n->name,
                                      dnnl_status2str(s));
  }
  if (st == APS_OK && (s = dnnl_primitive_create(&c->conv, pd)) != dnnl_success)
    st = aps_fail(APS_ERR_UNSUPPORTED, "CPU device, node '%s': oneDNN backward-weights convolution: %s", n->name,
                  dnnl_status2str(s));
  dnnl_primitive_desc_destroy(pd);
  return st;
}

static int plain_1x1(const gr_graph *g, const gr_node *n) {
  gr_shape sw = gr_t(g, n->inputs[1])->shape;
  return sw.d[2] == 1 && sw.d[3] == 1 && n->ia[0] == 1 && n->ia[1] == 0 && n->ia[3] == 1;
}

/* The zero pads right before conv node i that it can take as its own asymmetric padding:
 * pad nodes whose output only that conv (or the next pad) reads. Backward-data convs read
 * their gradient padded by two such nodes (autodiff/vjp_conv.c's fit), which then never run. */
static uint32_t fold_pads(const gr_graph *g, const uint32_t *uses, uint32_t i, int64_t pads[4]) {
  uint32_t t = g->n[i].inputs[0];
  for (;;) {
    const gr_node *p = g->t[t].node ? &g->n[g->t[t].node - 1] : NULL;
    if (!p || p->op != GR_OP_PAD || p->ia[4] != GR_PAD_ZERO || uses[t] != 1 || g->t[t].output)
      return t;
    for (int k = 0; k < 4; k++)
      pads[k] += p->ia[k];
    t = p->inputs[0];
  }
}

aps_status gr_dnnl_create(const gr_graph *g, int bf16_frozen, gr_dnnl **out) {
  *out = NULL;
  gr_dnnl *d = calloc(1, sizeof *d);
  uint32_t *uses = calloc(g->nt, sizeof *uses);
  uint8_t *assigned = calloc(g->nt, 1);
  if (!d || !uses || !assigned || !(d->conv = calloc(g->nn ? g->nn : 1, sizeof *d->conv)) ||
      !(d->read0 = calloc(g->nn ? g->nn : 1, sizeof *d->read0)) || !(d->copy_slot0 = calloc(g->nn ? g->nn : 1, 1))) {
    free(uses), free(assigned);
    if (d)
      free(d->conv), free(d->read0);
    free(d);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  for (uint32_t i = 0; i < g->nn; i++) {
    for (int k = 0; k < g->n[i].n_inputs; k++)
      uses[g->n[i].inputs[k]]++;
    if (g->n[i].op == GR_OP_ASSIGN)
      assigned[g->n[i].inputs[0]] = 1;
  }
  bf16_frozen = bf16_frozen && gr_cpu_has_bf16();
  d->g = g;
  dnnl_status_t s = dnnl_engine_create(&d->eng, dnnl_cpu, 0);
  if (s == dnnl_success)
    s = dnnl_stream_create(&d->stream, d->eng, dnnl_stream_default_flags);
  if (s != dnnl_success) {
    free(uses), free(assigned);
    gr_dnnl_destroy(d);
    return aps_fail(APS_ERR_UNSUPPORTED, "CPU device: oneDNN engine: %s", dnnl_status2str(s));
  }
  for (uint32_t i = 0; i < g->nn; i++) {
    const gr_node *n = &g->n[i];
    int wgrad = n->op == GR_OP_CONV2D_WGRAD && n->ia[8] == 0;
    if (!wgrad && (n->op != GR_OP_CONV2D || n->ia[4] != GR_PAD_ZERO))
      continue;
    if (!(d->conv[i] = calloc(1, sizeof **d->conv))) {
      free(uses), free(assigned);
      gr_dnnl_destroy(d);
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    int64_t pads[4] = {0, 0, 0, 0};
    d->conv[i]->src = wgrad || getenv("APS_CPU_NO_PAD_FOLD") ? n->inputs[0] : fold_pads(g, uses, i, pads);
    if (d->conv[i]->src != n->inputs[0]) {
      d->read0[i] = d->conv[i]->src;
      d->folded = 1;
    }
    d->conv[i]->gemm = wgrad ? n->ia[0] == 1 && n->ia[1] == 0 && n->ia[2] == 1 && n->ia[3] == 1 && n->ia[4] == 1 &&
                                   n->ia[5] == 1 && !getenv("APS_CPU_NO_WGRAD_GEMM")
                             : plain_1x1(g, n) && d->conv[i]->src == n->inputs[0] && !getenv("APS_CPU_NO_CONV_GEMM");
    aps_status st = d->conv[i]->gemm ? APS_OK
                    : wgrad          ? wgrad_create(d, n, d->conv[i])
                                     : conv_create(d, n, d->conv[i], pads, bf16_frozen && weights_frozen(g, assigned, n->inputs[1]));
    if (st != APS_OK) {
      free(uses), free(assigned);
      gr_dnnl_destroy(d);
      return st;
    }
  }
  /* A weight gradient's sum node whose partials only it reads copies slot 0, and oneDNN's
   * stage leaves the other slots alone (they were zeroed, then summed: ~7 MB of traffic per
   * layer at batch 64, for a result of a few hundred kilobytes). */
  for (uint32_t i = 0; i < g->nn; i++) {
    const gr_node *n = &g->n[i];
    if (n->op != GR_OP_CONV2D_WGRAD || !n->ia[8])
      continue;
    uint32_t part = n->inputs[0], j = g->t[part].node;
    if (j && d->conv[j - 1] && g->n[j - 1].op == GR_OP_CONV2D_WGRAD && uses[part] == 1 && !g->t[part].output) {
      d->conv[j - 1]->slot0_only = 1;
      d->copy_slot0[i] = 1;
    }
  }
  free(uses), free(assigned);
  for (int i = 0; i < NMEM; i++)
    if (d->scratch_bytes[i] && posix_memalign(&d->scratch[i], 64, d->scratch_bytes[i])) {
      gr_dnnl_destroy(d);
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "CPU device: out of host memory for oneDNN's reorders");
    }
  if (d->pad_bytes && posix_memalign(&d->pad, 64, d->pad_bytes)) {
    gr_dnnl_destroy(d);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "CPU device: out of host memory for oneDNN's scratchpad");
  }
  dnnl_status_t hs = dnnl_success;
  for (uint32_t i = 0; i < g->nn; i++) {
    gr_dnnl_conv *c = d->conv[i];
    for (int k = 0; c && k < NMEM; k++)
      if (c->inner[k] && hs == dnnl_success)
        hs = dnnl_memory_set_data_handle(c->inner[k], d->scratch[k]);
    if (c && c->pad && hs == dnnl_success)
      hs = dnnl_memory_set_data_handle(c->pad, d->pad);
  }
  if (hs != dnnl_success) {
    gr_dnnl_destroy(d);
    return aps_fail(APS_ERR_UNSUPPORTED, "CPU device: oneDNN memory handle: %s", dnnl_status2str(hs));
  }
  *out = d;
  return APS_OK;
}

const uint32_t *gr_dnnl_read0(const gr_dnnl *d) { return d->folded ? d->read0 : NULL; }

int gr_dnnl_bf16_convs(const gr_dnnl *d) { return d->bf16_convs; }

void gr_dnnl_destroy(gr_dnnl *d) {
  if (!d)
    return;
  for (uint32_t i = 0; d->conv && i < d->g->nn; i++)
    conv_destroy(d->conv[i]);
  free(d->conv);
  free(d->read0);
  free(d->copy_slot0);
  for (int i = 0; i < NMEM; i++)
    free(d->scratch[i]);
  free(d->pad);
  dnnl_stream_destroy(d->stream);
  dnnl_engine_destroy(d->eng);
  free(d);
}

static aps_status reorder(gr_dnnl *d, const gr_node *n, dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to) {
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  DN(dnnl_primitive_execute(r, d->stream, 2, args));
  return APS_OK;
}

static aps_status conv_run(gr_dnnl *d, const gr_node *n, gr_dnnl_conv *c, const float *const *in, float *out) {
  const gr_graph *g = d->g;
  int64_t x_image = gr_shape_count(gr_t(g, c->src)->shape) / c->batch;
  int64_t y_image = gr_shape_count(gr_t(g, n->output)->shape) / c->batch;
  dnnl_memory_t m[NMEM];
  for (int i = 0; i < NMEM; i++)
    m[i] = c->inner[i] ? c->inner[i] : c->user[i];
  /* oneDNN takes non-const handles; it only reads src, weights and bias. */
  DN(dnnl_memory_set_data_handle(c->user[WEI], (void *)in[1]));
  if (c->reorder[WEI])
    APS_TRY(reorder(d, n, c->reorder[WEI], c->user[WEI], c->inner[WEI]));
  dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, m[SRC]}, {DNNL_ARG_WEIGHTS, m[WEI]}, {DNNL_ARG_DST, m[DST]}};
  int nargs = 3;
  if (n->n_inputs > 2) {
    DN(dnnl_memory_set_data_handle(c->bias, (void *)in[2]));
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, c->bias};
  }
  if (c->pad)
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, c->pad};
  for (int64_t b = 0; b < c->batch; b += c->chunk) {
    DN(dnnl_memory_set_data_handle(c->user[SRC], (void *)(in[0] + b * x_image)));
    DN(dnnl_memory_set_data_handle(c->user[DST], out + b * y_image));
    if (c->reorder[SRC])
      APS_TRY(reorder(d, n, c->reorder[SRC], c->user[SRC], c->inner[SRC]));
    DN(dnnl_primitive_execute(c->conv, d->stream, nargs, args));
    if (c->reorder[DST])
      APS_TRY(reorder(d, n, c->reorder[DST], c->inner[DST], c->user[DST]));
  }
  DN(dnnl_stream_wait(d->stream));
  return APS_OK;
}

/* The weight gradient of a 1x1 conv (stride 1, no padding, one group): dW = Σ_n gy_n x_nᵀ,
 * one sgemm per image, the images split between the threads, each summing into its own
 * array (thread 0 into slot 0), then added. oneDNN's backward-weights convolution ran these
 * at 7-40 GFLOP/s (U-Net attention and skip projections, batch 64, 8x8 to 32x32), with a
 * reorder of both operands to its blocked layout first. */
static aps_status wgrad_gemm(gr_dnnl *d, const gr_node *n, gr_dnnl_conv *c, const float *const *in, float *out) {
  gr_shape sx = gr_t(d->g, n->inputs[0])->shape, sy = gr_t(d->g, n->inputs[1])->shape;
  int64_t N = sx.d[0], I = sx.d[1], O = sy.d[1], P = sx.d[2] * sx.d[3], slot = O * I;
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  threads = threads > N ? (int)N : threads;
  float *part = threads > 1 ? malloc((size_t)(threads - 1) * (size_t)slot * sizeof *part) : NULL;
  if (threads > 1 && !part)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "CPU device, node '%s': out of host memory", n->name);
  dnnl_status_t bad = dnnl_success;
  /* One thread: no region at all (a gemm inside even an inactive one nests, fast_sgemm.c). */
  for (int64_t b = 0; threads == 1 && b < N && bad == dnnl_success; b++)
    bad = dnnl_sgemm('N', 'T', O, I, P, 1.0f, in[1] + b * O * P, P, in[0] + b * I * P, P, b ? 1.0f : 0.0f, out, I);
#pragma omp parallel num_threads(threads) if (threads > 1)
  if (threads > 1) {
    int t = 0, nt = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    nt = omp_get_num_threads();
#endif
    float *dst = t == 0 ? out : part + (size_t)(t - 1) * (size_t)slot;
    int64_t lo = N * t / nt, hi = N * (t + 1) / nt;
    if (lo == hi)
      memset(dst, 0, (size_t)slot * sizeof *dst);
    for (int64_t b = lo; b < hi; b++) {
      dnnl_status_t st = dnnl_sgemm('N', 'T', O, I, P, 1.0f, in[1] + b * O * P, P, in[0] + b * I * P, P,
                                    b == lo ? 0.0f : 1.0f, dst, I);
      if (st != dnnl_success)
#pragma omp critical(gr_dnnl_wgrad)
        bad = st;
    }
#pragma omp barrier
#pragma omp for schedule(static)
    for (int64_t i = 0; i < slot; i++)
      for (int k = 0; k < nt - 1; k++)
        out[i] += part[(size_t)k * (size_t)slot + (size_t)i];
  }
  free(part);
  if (bad != dnnl_success)
    return aps_fail(APS_ERR_UNSUPPORTED, "CPU device, node '%s': oneDNN dnnl_sgemm failed: %s", n->name,
                    dnnl_status2str(bad));
  int64_t all = gr_shape_count(gr_t(d->g, n->output)->shape);
  if (!c->slot0_only)
    memset(out + slot, 0, (size_t)(all - slot) * sizeof *out);
  return APS_OK;
}

static aps_status wgrad_run(gr_dnnl *d, const gr_node *n, gr_dnnl_conv *c, const float *const *in, float *out) {
  if (c->gemm)
    return wgrad_gemm(d, n, c, in, out);
  dnnl_memory_t m[NMEM];
  for (int i = 0; i < NMEM; i++)
    m[i] = c->inner[i] ? c->inner[i] : c->user[i];
  DN(dnnl_memory_set_data_handle(c->user[SRC], (void *)in[0]));
  DN(dnnl_memory_set_data_handle(c->user[DST], (void *)in[1]));
  DN(dnnl_memory_set_data_handle(c->user[WEI], out));
  if (c->reorder[SRC])
    APS_TRY(reorder(d, n, c->reorder[SRC], c->user[SRC], c->inner[SRC]));
  if (c->reorder[DST])
    APS_TRY(reorder(d, n, c->reorder[DST], c->user[DST], c->inner[DST]));
  dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, m[SRC]}, {DNNL_ARG_DIFF_DST, m[DST]}, {DNNL_ARG_DIFF_WEIGHTS, m[WEI]},
                             {DNNL_ARG_SCRATCHPAD, c->pad}};
  DN(dnnl_primitive_execute(c->conv, d->stream, c->pad ? 4 : 3, args));
  if (c->reorder[WEI])
    APS_TRY(reorder(d, n, c->reorder[WEI], c->inner[WEI], c->user[WEI]));
  DN(dnnl_stream_wait(d->stream));
  int64_t all = gr_shape_count(gr_t(d->g, n->output)->shape), slot = all / n->ia[6];
  if (!c->slot0_only)
    memset(out + slot, 0, (size_t)(all - slot) * sizeof *out);
  return APS_OK;
}

aps_status gr_dnnl_run(gr_dnnl *d, uint32_t node, const float *const *in, float *out, int *done) {
  const gr_node *n = &d->g->n[node];
  *done = 1;
  if (n->op == GR_OP_MATMUL)
    return gr_sgemm_matmul(d->g, n, in, out);
  if (n->op == GR_OP_ATTENTION)
    return gr_sgemm_attention(d->g, n, in, out);
  if (n->op == GR_OP_CONV2D && d->conv[node])
    return d->conv[node]->gemm ? gr_sgemm_conv1x1(d->g, n, in, out) : conv_run(d, n, d->conv[node], in, out);
  if (n->op == GR_OP_CONV2D_WGRAD && d->conv[node])
    return wgrad_run(d, n, d->conv[node], in, out);
  if (d->copy_slot0[node]) {
    memcpy(out, in[0], (size_t)gr_shape_count(gr_t(d->g, n->output)->shape) * sizeof *out);
    return APS_OK;
  }
  *done = 0;
  return APS_OK;
}
