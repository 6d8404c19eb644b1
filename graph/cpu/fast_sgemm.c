/* matmul and attention of the CPU device: dnnl_sgemm per batch matrix, and two sgemms around
 * a softmax per image. */
#include "fast_sgemm.h"

#include "fast_ops.h"

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <math.h>
#include <stdlib.h>

/* Runs item(ctx, i) for i < count, one item per thread when `parallel`, else in this thread
 * outside any parallel region: a dnnl_sgemm called inside even an inactive region (if(0))
 * opens a nested one, and libgomp then waited out its whole spin (GOMP_SPINCOUNT) once per
 * call: the flow's sampling at batch 1 took 1.3 ms with no such region and 32 ms in one. The
 * first failure is returned. */
typedef dnnl_status_t (*sgemm_item)(const void *ctx, int64_t i);
static dnnl_status_t for_items(int64_t count, int parallel, sgemm_item item, const void *ctx) {
  dnnl_status_t bad = dnnl_success;
  if (!parallel) {
    for (int64_t i = 0; i < count && bad == dnnl_success; i++)
      bad = item(ctx, i);
    return bad;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; i++) {
    dnnl_status_t s = item(ctx, i);
    if (s != dnnl_success)
#pragma omp critical(gr_sgemm_items)
      bad = s;
  }
  return bad;
}

static aps_status sgemm_status(const gr_node *n, dnnl_status_t s) {
  if (s == dnnl_out_of_memory)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "CPU device, node '%s': out of host memory", n->name);
  if (s != dnnl_success)
    return aps_fail(APS_ERR_UNSUPPORTED, "CPU device, node '%s': oneDNN dnnl_sgemm failed: %s", n->name,
                    dnnl_status2str(s));
  return APS_OK;
}

typedef struct matmul_ctx {
  const float *a, *b;
  float *out;
  int64_t m, n, k, o1, a4[4], b4[4];
} matmul_ctx;

static dnnl_status_t matmul_item(const void *ctx, int64_t pq) {
  const matmul_ctx *c = ctx;
  int64_t p = pq / c->o1, q = pq % c->o1;
  const float *A = c->a + ((c->a4[0] == 1 ? 0 : p) * c->a4[1] + (c->a4[1] == 1 ? 0 : q)) * c->a4[2] * c->a4[3];
  const float *B = c->b + ((c->b4[0] == 1 ? 0 : p) * c->b4[1] + (c->b4[1] == 1 ? 0 : q)) * c->b4[2] * c->b4[3];
  return dnnl_sgemm('N', 'N', c->m, c->n, c->k, 1.0f, A, c->k, B, c->n, 0.0f, c->out + pq * c->m * c->n, c->n);
}

/* The batch loop and broadcast rules of gr_cpu_matmul (reference_ops.c), each matrix by sgemm.
 * Many small matrices (attention at batch 64) go one per thread; oneDNN runs a gemm
 * called inside a parallel region on that thread alone. */
aps_status gr_sgemm_matmul(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sa = gr_t(g, n->inputs[0])->shape, sb = gr_t(g, n->inputs[1])->shape, so = gr_t(g, n->output)->shape;
  matmul_ctx c = {.a = in[0], .b = in[1], .out = out, .m = so.d[so.rank - 2], .n = so.d[so.rank - 1],
                  .k = sa.d[sa.rank - 1]};
  int64_t o4[4];
  gr_shape4(so, o4);
  gr_shape4(sa, c.a4);
  gr_shape4(sb, c.b4);
  c.o1 = o4[1];
  int64_t batches = o4[0] * o4[1];
  return sgemm_status(n, for_items(batches, batches > 1 && c.m * c.n * c.k < (1 << 22), matmul_item, &c));
}

/* One image of gr_attention, ROWS query positions at a time (scratch stays small for long
 * sequences): S = Qᵀ K / sqrt(C), softmax over rows, out = V Sᵀ. */
enum { ROWS = 256 };
typedef struct attention_ctx {
  const float *qkv;
  float *out;
  int64_t C, L;
} attention_ctx;

static dnnl_status_t attention_item(const void *ctx, int64_t b) {
  const attention_ctx *c = ctx;
  int64_t C = c->C, L = c->L;
  const float *q = c->qkv + b * 3 * C * L, *k = q + C * L, *v = k + C * L;
  float *out = c->out + b * C * L, *s = malloc((size_t)(L < ROWS ? L : ROWS) * (size_t)L * sizeof *s);
  dnnl_status_t st = s ? dnnl_success : dnnl_out_of_memory;
  for (int64_t i0 = 0; i0 < L && st == dnnl_success; i0 += ROWS) {
    int64_t rows = L - i0 < ROWS ? L - i0 : ROWS;
    st = dnnl_sgemm('T', 'N', rows, L, C, 1.0f / sqrtf((float)C), q + i0, L, k, L, 0.0f, s, L);
    for (int64_t r = 0; r < rows; r++)
      gr_fast_softmax_row(s + r * L, s + r * L, L);
    if (st == dnnl_success)
      st = dnnl_sgemm('N', 'T', C, rows, L, 1.0f, v, L, s, L, 0.0f, out + i0, L);
  }
  free(s);
  return st;
}

/* Images one per thread when there are several (oneDNN's gemm then runs on that thread). */
aps_status gr_sgemm_attention(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape so = gr_t(g, n->output)->shape;
  attention_ctx c = {.qkv = in[0], .out = out, .C = so.d[1], .L = so.d[2]};
  return sgemm_status(n, for_items(so.d[0], so.d[0] > 1, attention_item, &c));
}

typedef struct conv1x1_ctx {
  const float *x, *w, *bias;
  float *out;
  int64_t I, O, P;
} conv1x1_ctx;

static dnnl_status_t conv1x1_item(const void *ctx, int64_t b) {
  const conv1x1_ctx *c = ctx;
  float *y = c->out + b * c->O * c->P;
  for (int64_t o = 0; c->bias && o < c->O; o++)
    for (int64_t p = 0; p < c->P; p++)
      y[o * c->P + p] = c->bias[o];
  return dnnl_sgemm('N', 'N', c->O, c->P, c->I, 1.0f, c->w, c->I, c->x + b * c->I * c->P, c->P, c->bias ? 1.0f : 0.0f,
                    y, c->P);
}

/* A plain 1x1 conv (stride 1, no padding, one group): y_n = W x_n (+ b), one sgemm per image,
 * the images split between the threads. oneDNN's convolution ran the U-Net's skip
 * projections (batch 128, 32x32, 96 -> 32 and 32 -> 96 channels, 2-core AVX-512 machine) at
 * 35-45 GFLOP/s in nchw and about as slow in its blocked layout, whose reorders cost more than
 * such a light conv; per-image sgemms 95-135. */
aps_status gr_sgemm_conv1x1(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = gr_t(g, n->inputs[0])->shape, so = gr_t(g, n->output)->shape;
  conv1x1_ctx c = {.x = in[0], .w = in[1], .bias = n->n_inputs > 2 ? in[2] : NULL, .out = out, .I = sx.d[1],
                   .O = so.d[1], .P = sx.d[2] * sx.d[3]};
  return sgemm_status(n, for_items(sx.d[0], sx.d[0] > 1, conv1x1_item, &c));
}
