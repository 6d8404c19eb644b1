/* Lowering of the elementwise, reduction, matmul, normalisation, layout, resampling,
 * attention, random and small linear algebra ops: each op's Vulkan dispatch(es), recorded
 * into the plan's stream. Shapes are padded to 4-D; push-constant layouts mirror the shaders
 * named in each function. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_f32.h"
#include "lower.h"

/* eltwise.comp */
static aps_status lower_eltwise(gr_lower *L, const gr_node *n, uint32_t kind) {
  const gr_graph *g = L->g;
  struct {
    uint32_t dims[4], sa[4], sb[4], sc[4], count;
  } pc;
  memset(&pc, 0, sizeof pc);
  gr_shape so = SHAPE(n->output);
  int64_t d[4], st[4];
  gr_shape4(so, d);
  for (int i = 0; i < 4; i++)
    pc.dims[i] = (uint32_t)d[i];
  uint32_t *strides[3] = {pc.sa, pc.sb, pc.sc};
  for (int k = 0; k < n->n_inputs; k++) {
    gr_bcast_strides(SHAPE(n->inputs[k]), so, st);
    for (int i = 0; i < 4; i++)
      strides[k][i] = (uint32_t)st[i];
  }
  pc.count = (uint32_t)gr_shape_count(so);
  rt_kernel_desc kd = {.shader = "eltwise", .spec_count = 4, .spec = {kind, (uint32_t)n->ia[0]}};
  kd.spec[2] = gr_float_bits(n->fa[0]);
  kd.spec[3] = gr_float_bits(n->fa[1]);
  rt_dispatch d4 = {.push = &pc};
  for (int k = 0; k < 3; k++)
    d4.bindings[k] = gr_lower_binding(L, n->inputs[k < n->n_inputs ? k : 0]);
  d4.bindings[3] = gr_lower_binding(L, n->output);
  gr_lower_epilogue(L, n, &kd, &d4, 4);
  gr_lower_groups(L, (pc.count + 63) / 64, d4.groups);
  return gr_lower_dispatch(L, n, &kd, &d4);
}

aps_status gr_lower_unary(gr_lower *L, const gr_node *n) { return lower_eltwise(L, n, 0); }
aps_status gr_lower_binary(gr_lower *L, const gr_node *n) { return lower_eltwise(L, n, 1); }
aps_status gr_lower_where(gr_lower *L, const gr_node *n) { return lower_eltwise(L, n, 2); }

/* reduce.comp */
aps_status gr_lower_reduce(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  struct {
    uint32_t kept[4], red[4], stride[4], outputs;
  } pc;
  gr_shape sx = SHAPE(n->inputs[0]);
  int64_t d[4];
  gr_shape4(sx, d);
  unsigned axes = (unsigned)n->ia[1] << (4 - sx.rank);
  uint32_t acc = 1;
  for (int i = 3; i >= 0; i--) {
    pc.stride[i] = acc;
    acc *= (uint32_t)d[i];
    pc.red[i] = axes & (1u << i) ? (uint32_t)d[i] : 1;
    pc.kept[i] = axes & (1u << i) ? 1 : (uint32_t)d[i];
  }
  pc.outputs = (uint32_t)gr_shape_count(SHAPE(n->output));
  rt_kernel_desc kd = {.shader = "reduce", .spec_count = 1, .spec = {(uint32_t)n->ia[0]}};
  return gr_lower_one_to_one(L, n, &kd, &pc, pc.outputs);
}

/* gemm_f32.comp, or gemm_tiled_f32.comp by the rule of gr_lower_variant (lower_common.c);
 * transposes were made explicit permutes by gr_matmul. */
aps_status gr_lower_matmul(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  gr_shape sa = SHAPE(n->inputs[0]), sb = SHAPE(n->inputs[1]), so = SHAPE(n->output);
  int64_t a4[4], b4[4], o4[4];
  gr_shape4(sa, a4);
  gr_shape4(sb, b4);
  gr_shape4(so, o4);
  int64_t batches = o4[0] * o4[1], ba = a4[0] * a4[1], bb = b4[0] * b4[1];
  if ((ba != 1 && ba != batches) || (bb != 1 && bb != batches))
    return aps_fail(APS_ERR_UNSUPPORTED, "node %s: matmul broadcasting over two batch dimensions at once", n->name);
  uint32_t m = (uint32_t)o4[2], nn = (uint32_t)o4[3], k = (uint32_t)a4[3];
  aps_gemm_f32_push pc = {.m = m, .n = nn, .k = k, .alpha = 1.0f,
                          .stride_a = ba == 1 ? 0 : m * k, .stride_b = bb == 1 ? 0 : k * nn, .stride_c = m * nn};
  rt_kernel_desc kd = {.shader = "gemm_f32"};
  rt_dispatch dd = {.push = &pc,
                    .bindings = {gr_lower_binding(L, n->inputs[0]), gr_lower_binding(L, n->inputs[1]),
                                 gr_lower_binding(L, n->output)},
                    .groups = {(nn + APS_GEMM_F32_TILE_N - 1) / APS_GEMM_F32_TILE_N,
                               (m + APS_GEMM_F32_TILE_M - 1) / APS_GEMM_F32_TILE_M, (uint32_t)batches}};
  int tiled;
  uint32_t wg;
  APS_TRY(gr_lower_variant(L, n, APS_GEMM_TILED_SHARED_BYTES, &tiled, &wg));
  rt_kernel_desc kv[2] = {kd, {.shader = "gemm_tiled_f32", .spec_count = 2, .spec = {wg, wg}}};
  rt_dispatch dv[2] = {dd, dd};
  dv[1].groups[0] = (nn + 4 * wg - 1) / (4 * wg);
  dv[1].groups[1] = (m + 4 * wg - 1) / (4 * wg);
  for (int v = 0; v < 2; v++)
    gr_lower_epilogue(L, n, &kv[v], &dv[v], 3);
  if (tiled == GR_VARIANT_TIMED)
    return gr_lower_pick(L, n, kv, dv);
  return gr_lower_dispatch(L, n, &kv[tiled], &dv[tiled]);
}

/* group_norm.comp */
aps_status gr_lower_group_norm(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  gr_shape s = SHAPE(n->output);
  struct {
    uint32_t N, C, spatial, groups;
    float eps;
  } pc = {(uint32_t)s.d[0], (uint32_t)s.d[1], (uint32_t)(gr_shape_count(s) / (s.d[0] * s.d[1])), (uint32_t)n->ia[0],
          n->fa[0]};
  int has_g = (int)n->ia[1], has_b = (int)n->ia[2];
  rt_kernel_desc kd = {.shader = "group_norm", .spec_count = 2, .spec = {(uint32_t)has_g, (uint32_t)has_b}};
  rt_binding x = gr_lower_binding(L, n->inputs[0]);
  rt_dispatch dd = {.push = &pc,
                    .bindings = {x, has_g ? gr_lower_binding(L, n->inputs[1]) : x,
                                 has_b ? gr_lower_binding(L, n->inputs[1 + has_g]) : x, gr_lower_binding(L, n->output)}};
  gr_lower_epilogue(L, n, &kd, &dd, 4);
  gr_lower_groups(L, (uint64_t)pc.N * pc.groups, dd.groups);
  return gr_lower_dispatch(L, n, &kd, &dd);
}

/* softmax.comp */
aps_status gr_lower_softmax(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  gr_shape s = SHAPE(n->output);
  struct {
    uint32_t rows, cols;
  } pc = {(uint32_t)(gr_shape_count(s) / s.d[s.rank - 1]), (uint32_t)s.d[s.rank - 1]};
  rt_kernel_desc kd = {.shader = "softmax"};
  return gr_lower_one_to_one(L, n, &kd, &pc, pc.rows);
}

/* A reshape is a view: nothing to run. */
aps_status gr_lower_reshape(gr_lower *L, const gr_node *n) {
  (void)L;
  (void)n;
  return APS_OK;
}

/* copy_strided.comp: dst[dst_off + at·dst] = src[src_off + at·src] over dims. */
static aps_status strided_copy(gr_lower *L, const gr_node *n, uint32_t src, uint32_t dst, const int64_t dims[4],
                               const int64_t sst[4], const int64_t dstt[4], int64_t src_off, int64_t dst_off) {
  struct {
    uint32_t dims[4], src[4], dst[4], src_offset, dst_offset, count;
  } pc;
  int64_t count = 1;
  for (int i = 0; i < 4; i++) {
    pc.dims[i] = (uint32_t)dims[i];
    pc.src[i] = (uint32_t)sst[i];
    pc.dst[i] = (uint32_t)dstt[i];
    count *= dims[i];
  }
  pc.src_offset = (uint32_t)src_off;
  pc.dst_offset = (uint32_t)dst_off;
  pc.count = (uint32_t)count;
  rt_kernel_desc kd = {.shader = "copy_strided"};
  rt_dispatch dd = {.push = &pc, .bindings = {gr_lower_binding(L, src), gr_lower_binding(L, dst)}};
  gr_lower_groups(L, (pc.count + 63) / 64, dd.groups);
  return gr_lower_dispatch(L, n, &kd, &dd);
}

static void contiguous_strides(const int64_t d[4], int64_t st[4]) {
  int64_t acc = 1;
  for (int i = 3; i >= 0; i--) {
    st[i] = acc;
    acc *= d[i];
  }
}

aps_status gr_lower_permute(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  gr_shape sx = SHAPE(n->inputs[0]), so = SHAPE(n->output);
  int64_t xd[4], xs[4], od[4], os[4], src[4] = {0, 0, 0, 0};
  gr_shape4(sx, xd);
  contiguous_strides(xd, xs);
  gr_shape4(so, od);
  contiguous_strides(od, os);
  int pad = 4 - so.rank;
  for (int i = 0; i < so.rank; i++)
    src[pad + i] = xs[pad + n->ia[i]];
  return strided_copy(L, n, n->inputs[0], n->output, od, src, os, 0, 0);
}

aps_status gr_lower_slice(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  gr_shape sx = SHAPE(n->inputs[0]), so = SHAPE(n->output);
  int64_t xd[4], xs[4], od[4], os[4];
  gr_shape4(sx, xd);
  contiguous_strides(xd, xs);
  gr_shape4(so, od);
  contiguous_strides(od, os);
  int axis4 = 4 - sx.rank + (int)n->ia[0];
  return strided_copy(L, n, n->inputs[0], n->output, od, xs, os, n->ia[1] * xs[axis4], 0);
}

/* copy_strided.comp reading backwards along the flipped axes: the source offset at their last
 * element and negative strides (uint arithmetic wraps modulo 2^32, so the sums are exact). */
aps_status gr_lower_flip(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  gr_shape so = SHAPE(n->output);
  int64_t od[4], os[4], src[4], offset = 0;
  gr_shape4(so, od);
  contiguous_strides(od, os);
  unsigned axes = (unsigned)n->ia[0] << (4 - so.rank);
  for (int i = 0; i < 4; i++) {
    int back = axes >> i & 1;
    src[i] = back ? -os[i] : os[i];
    offset += back ? (od[i] - 1) * os[i] : 0;
  }
  return strided_copy(L, n, n->inputs[0], n->output, od, src, os, offset, 0);
}

/* concat.comp */
aps_status gr_lower_concat(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  gr_shape so = SHAPE(n->output);
  int axis = (int)n->ia[0];
  uint32_t inner = 1;
  for (int i = axis + 1; i < so.rank; i++)
    inner *= (uint32_t)so.d[i];
  struct {
    uint32_t la, lb, inner, count;
  } pc = {(uint32_t)SHAPE(n->inputs[0]).d[axis], (uint32_t)SHAPE(n->inputs[1]).d[axis], inner,
          (uint32_t)gr_shape_count(so)};
  rt_kernel_desc kd = {.shader = "concat"};
  rt_dispatch dd = {.push = &pc,
                    .bindings = {gr_lower_binding(L, n->inputs[0]), gr_lower_binding(L, n->inputs[1]),
                                 gr_lower_binding(L, n->output)}};
  gr_lower_groups(L, (pc.count + 63) / 64, dd.groups);
  return gr_lower_dispatch(L, n, &kd, &dd);
}

/* resample2x.comp */
static aps_status resample(gr_lower *L, const gr_node *n, uint32_t mode) {
  const gr_graph *g = L->g;
  gr_shape sx = SHAPE(n->inputs[0]);
  struct {
    uint32_t planes, H, W, count;
  } pc = {.planes = (uint32_t)(sx.d[0] * sx.d[1]), .H = (uint32_t)sx.d[2], .W = (uint32_t)sx.d[3],
          .count = (uint32_t)gr_shape_count(SHAPE(n->output))};
  rt_kernel_desc kd = {.shader = "resample2x", .spec_count = 1, .spec = {mode}};
  return gr_lower_one_to_one(L, n, &kd, &pc, (pc.count + 63) / 64);
}

aps_status gr_lower_upsample(gr_lower *L, const gr_node *n) { return resample(L, n, n->ia[0] == GR_BILINEAR); }
aps_status gr_lower_avg_pool(gr_lower *L, const gr_node *n) { return resample(L, n, 2); }

/* time_embed.comp */
aps_status gr_lower_time_embed(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  struct {
    uint32_t N, half_dim;
    float log_max_period;
  } pc = {(uint32_t)SHAPE(n->inputs[0]).d[0], (uint32_t)n->ia[0] / 2, logf(n->fa[0])};
  rt_kernel_desc kd = {.shader = "time_embed"};
  rt_dispatch dd = {.push = &pc,
                    .bindings = {gr_lower_binding(L, n->inputs[0]), gr_lower_binding(L, n->output)},
                    .groups = {(pc.N * pc.half_dim + 63) / 64}};
  return gr_lower_dispatch(L, n, &kd, &dd);
}

/* attention.comp: one workgroup per (sample, block of query positions). */
aps_status gr_lower_attention(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  gr_shape s = SHAPE(n->output);
  struct {
    uint32_t N, C, L;
    float scale;
  } pc = {(uint32_t)s.d[0], (uint32_t)s.d[1], (uint32_t)s.d[2], 1.0f / sqrtf((float)s.d[1])};
  uint32_t qb = pc.L * 8 <= 4096 && pc.C <= 256 ? 8 : 1; /* the shader's shared-memory bounds */
  rt_kernel_desc kd = {.shader = "attention", .spec_count = 1, .spec = {qb}};
  /* The shader's shared arrays take 4096 + 2048 + 16 floats. Where the device has less shared
   * memory, they shrink to this node's needs (fewer queries per workgroup if that fits); if
   * even that does not fit, rt_kernel_get refuses it naming maxComputeSharedMemorySize. */
  uint32_t shared = rt_device_caps(L->dev)->max_shared_memory;
  if (shared < (4096 + 2048 + 16) * 4) {
    if (qb == 8 && (8 * pc.L + 8 * pc.C + 16) * 4 > shared)
      qb = 1;
    kd = (rt_kernel_desc){.shader = "attention", .spec_count = 3, .spec = {qb, qb * pc.L, qb * pc.C}};
  }
  return gr_lower_one_to_one(L, n, &kd, &pc, (uint64_t)pc.N * ((pc.L + qb - 1) / qb));
}

/* A copy into the target's storage; the stream orders it after every earlier reader. */
aps_status gr_lower_assign(gr_lower *L, const gr_node *n) {
  rt_binding dst = gr_lower_binding(L, n->inputs[0]), src = gr_lower_binding(L, n->inputs[1]);
  aps_status s = rt_stream_copy(L->stream, src.buffer, src.offset, dst.buffer, dst.offset, dst.size);
  return s == APS_OK ? APS_OK : aps_fail_context(s, "node %s: ", n->name);
}

/* random.comp: one invocation per block of 4 elements. */
aps_status gr_lower_random(gr_lower *L, const gr_node *n) {
  const gr_graph *g = L->g;
  struct {
    uint32_t count, stream, seed_count;
  } pc = {(uint32_t)gr_shape_count(SHAPE(n->output)), (uint32_t)n->ia[1],
          (uint32_t)gr_shape_count(SHAPE(n->inputs[0]))};
  rt_kernel_desc kd = {.shader = "random", .spec_count = 1, .spec = {n->ia[0] == GR_NORMAL}};
  return gr_lower_one_to_one(L, n, &kd, &pc, (((uint64_t)pc.count + 3) / 4 + 63) / 64);
}

/* lu.comp: one workgroup. */
static aps_status dense(gr_lower *L, const gr_node *n, uint32_t mode, uint32_t input) {
  const gr_graph *g = L->g;
  struct {
    uint32_t C;
  } pc = {(uint32_t)SHAPE(input).d[0]};
  /* lu.comp's workgroup: 256 invocations, or the largest power of two the device allows. */
  const rt_caps *c = rt_device_caps(L->dev);
  uint32_t size = 256;
  while (size > 1 && (size > c->max_workgroup_invocations || size > c->max_workgroup_size[0]))
    size /= 2;
  rt_kernel_desc kd = {.shader = "lu", .spec_count = 2, .spec = {mode, size}};
  rt_dispatch d = {.push = &pc, .bindings = {gr_lower_binding(L, input), gr_lower_binding(L, n->output)},
                   .groups = {1, 1, 1}};
  return gr_lower_dispatch(L, n, &kd, &d);
}

aps_status gr_lower_inverse(gr_lower *L, const gr_node *n) { return dense(L, n, 0, n->inputs[0]); }
aps_status gr_lower_lu(gr_lower *L, const gr_node *n) { return dense(L, n, 1, n->inputs[0]); }
aps_status gr_lower_logabsdet(gr_lower *L, const gr_node *n) { return dense(L, n, 2, n->inputs[1]); }
