/* The CPU device's figures (gr_cpu_desc.fast): conv2d and matmul throughput through
 * oneDNN and the U-Net's forward latency, medians of REPS runs after a warm-up, for
 * `aps bench graph` to print. APS_CPU_CONV_FORMAT=nchw|any forces one conv layout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "cli.h"
#include "graph.h"
#include "layers.h"

enum { REPS = 5 };

/* Fills every input and parameter: uniform [-1, 1), parameters of rank >= 2 scaled by
 * 1/sqrt(fan-in) as at initialisation; inputs named "t" get diffusion times. */
static aps_status fill_all(gr_cpu *c, const gr_graph *g, gr_tensor *inputs, int n_inputs) {
  uint32_t seed = 12345;
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t i = 0;; i++) {
      gr_tensor t = pass ? gr_param_at(g, i) : i < (uint32_t)n_inputs ? inputs[i] : 0;
      if (!t)
        break;
      gr_shape s = gr_tensor_shape(g, t);
      int64_t n = gr_shape_count(s);
      float *v = malloc((size_t)n * sizeof *v), scale = pass && s.rank >= 2 ? 1.0f / sqrtf((float)(n / s.d[0])) : 1.0f;
      if (!v)
        return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
      for (int64_t k = 0; k < n; k++) {
        seed = seed * 1664525u + 1013904223u;
        v[k] = scale * ((float)(seed >> 8) / 8388608.0f - 1.0f);
      }
      if (!pass && s.rank == 1)
        for (int64_t k = 0; k < n; k++)
          v[k] = 500.0f * (v[k] + 1.0f);
      aps_status st = gr_cpu_set(c, gr_tensor_name(g, t), v, n);
      free(v);
      APS_TRY(st);
    }
  return APS_OK;
}

/* Median milliseconds of REPS runs of g on the CPU device, after one warm-up run. */
static aps_status time_graph(gr_graph *g, gr_tensor *inputs, int n_inputs, double *ms) {
  APS_TRY(gr_graph_status(g));
  gr_cpu *c = NULL;
  APS_TRY(gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1}, &c));
  aps_status st = fill_all(c, g, inputs, n_inputs);
  double t[REPS];
  for (int r = -1; r < REPS && st == APS_OK; r++) {
    double t0 = bench_now_ms();
    st = gr_cpu_run(c);
    if (r >= 0)
      t[r] = bench_now_ms() - t0;
  }
  gr_cpu_destroy(c);
  if (st == APS_OK)
    *ms = bench_median(t, REPS);
  return st;
}

static aps_status bench_conv(int k, double *gflops) {
  const int64_t N = 16, C = 64, S = 32;
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(N, C, S, S));
  gr_tensor y = gr_layer_conv(g, "conv", x, (int)C, k, 1);
  gr_output(g, y, "y");
  double ms = 0;
  aps_status st = time_graph(g, &x, 1, &ms);
  gr_graph_destroy(g);
  *gflops = 2.0 * N * C * C * k * k * S * S / (ms * 1e6);
  return st;
}

static aps_status bench_matmul(double *gflops) {
  const int64_t M = 1024;
  gr_graph *g = gr_graph_create();
  gr_tensor ab[2] = {gr_input(g, "a", GR_SHAPE(M, M)), gr_input(g, "b", GR_SHAPE(M, M))};
  gr_output(g, gr_matmul(g, ab[0], ab[1], 0, 0), "y");
  double ms = 0;
  aps_status st = time_graph(g, ab, 2, &ms);
  gr_graph_destroy(g);
  *gflops = 2.0 * M * M * M / (ms * 1e6);
  return st;
}

/* The U-Net of the graph issue: widths 32/64/64, 2 blocks per level, attention at 8x8. */
static aps_status bench_unet(int batch, double *ms) {
  gr_unet_config cfg = {.image_channels = 1, .image_size = 32, .widths = {32, 64, 64}, .levels = 3,
                        .blocks_per_level = 2, .attention_level_mask = 4, .groups = 8, .time_dim = 32};
  gr_graph *g = gr_graph_create();
  gr_tensor in[2] = {gr_input(g, "x", GR_SHAPE(batch, 1, 32, 32)), gr_input(g, "t", GR_SHAPE(batch))};
  gr_output(g, gr_unet(g, &cfg, in[0], in[1]), "eps");
  aps_status st = time_graph(g, in, 2, ms);
  gr_graph_destroy(g);
  return st;
}

int bench_cpu_device(int json) {
  double conv3 = 0, conv1 = 0, mm = 0, b1 = 0, b64 = 0;
  aps_status st = bench_conv(3, &conv3);
  if (st == APS_OK)
    st = bench_conv(1, &conv1);
  if (st == APS_OK)
    st = bench_matmul(&mm);
  if (st == APS_OK)
    st = bench_unet(1, &b1);
  if (st == APS_OK)
    st = bench_unet(64, &b64);
  if (st != APS_OK) {
    fprintf(stderr, "aps bench: CPU device: %s\n", aps_last_error());
    return 1;
  }
  if (json) {
    printf("{\"cpu_device\": {\"conv3x3_64_32x32_b16_gflops\": %.1f, \"conv1x1_64_32x32_b16_gflops\": %.1f, "
           "\"matmul_1024_gflops\": %.1f, \"unet_b1_ms\": %.2f, \"unet_b64_ms\": %.1f}}\n",
           conv3, conv1, mm, b1, b64);
  } else {
    printf("CPU device (oneDNN + OpenMP), medians of %d runs:\n", REPS);
    printf("  conv2d 3x3 64->64 32x32 batch 16  %7.1f GFLOP/s\n", conv3);
    printf("  conv2d 1x1 64->64 32x32 batch 16  %7.1f GFLOP/s\n", conv1);
    printf("  matmul 1024^3                     %7.1f GFLOP/s\n", mm);
    printf("  U-Net forward, batch 1            %7.2f ms\n", b1);
    printf("  U-Net forward, batch 64           %7.1f ms\n", b64);
  }
  return 0;
}
