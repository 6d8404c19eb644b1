/* The CPU device's figures (gr_cpu_desc.fast): conv2d and matmul throughput through
 * oneDNN and the U-Net's forward latency, medians of REPS runs after a warm-up, for
 * `aps bench graph` to print. APS_CPU_CONV_FORMAT=nchw|any forces one conv layout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_operators.h"
#include "bench_report.h"
#include "bench_values.h"
#include "cli.h"
#include "graph.h"
#include "layers.h"

enum { REPS = 5 };

/* Median milliseconds of REPS runs of g on the CPU device, after one warm-up run. */
static aps_status time_graph(gr_graph *g, double *ms) {
  APS_TRY(gr_graph_status(g));
  gr_cpu *c = NULL;
  APS_TRY(gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1}, &c));
  aps_status st = bench_fill(g, c, bench_set_cpu);
  double t[REPS];
  for (int r = -1; r < REPS && st == APS_OK; r++) {
    double t0 = aps_now_ms();
    st = gr_cpu_run(c);
    if (r >= 0)
      t[r] = aps_now_ms() - t0;
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
  aps_status st = time_graph(g, &ms);
  gr_graph_destroy(g);
  *gflops = 2.0 * N * C * C * k * k * S * S / (ms * 1e6);
  if (st == APS_OK)
    bench_report_stat(k == 3 ? "conv2d 3x3 64->64 32x32 b16" : "conv2d 1x1 64->64 32x32 b16", "GFLOP/s",
                      bench_stat_per(bench_last(), 2.0 * N * C * C * k * k * S * S / 1e6, 0), 0);
  return st;
}

/* A blur operator's depthwise convolution, as `aps bench graph` measures it on Vulkan. */
static aps_status bench_depthwise(double *gflops) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(64, 3, 32, 32));
  gr_output(g, gr_conv2d(g, x, gr_param(g, "w", GR_SHAPE(3, 1, 9, 9)), 0,
                         &(gr_conv2d_desc){.padding = 4, .groups = 3, .pad_mode = GR_PAD_REFLECT}), "y");
  double ms = 0;
  aps_status st = time_graph(g, &ms);
  gr_graph_destroy(g);
  *gflops = 2.0 * 64 * 3 * 32 * 32 * 81 / (ms * 1e6);
  if (st == APS_OK)
    bench_report_stat("depthwise 9x9 blur 3ch 32x32 b64", "GFLOP/s",
                      bench_stat_per(bench_last(), 2.0 * 64 * 3 * 32 * 32 * 81 / 1e6, 0), 0);
  return st;
}

static aps_status bench_matmul(double *gflops) {
  const int64_t M = 1024;
  gr_graph *g = gr_graph_create();
  gr_tensor ab[2] = {gr_input(g, "a", GR_SHAPE(M, M)), gr_input(g, "b", GR_SHAPE(M, M))};
  gr_output(g, gr_matmul(g, ab[0], ab[1], 0, 0), "y");
  double ms = 0;
  aps_status st = time_graph(g, &ms);
  gr_graph_destroy(g);
  *gflops = 2.0 * M * M * M / (ms * 1e6);
  if (st == APS_OK)
    bench_report_stat("matmul 1024^3", "GFLOP/s", bench_stat_per(bench_last(), 2.0 * M * M * M / 1e6, 0), 0);
  return st;
}

/* The U-Net of the graph issue: widths 32/64/64, 2 blocks per level, attention at 8x8. */
static aps_status bench_unet(int batch, double *ms) {
  gr_graph *g = gr_graph_create();
  gr_tensor in[2] = {gr_input(g, "x", GR_SHAPE(batch, 1, 32, 32)), gr_input(g, "t", GR_SHAPE(batch))};
  gr_output(g, gr_unet(g, bench_unet_config(), in[0], in[1]), "eps");
  aps_status st = time_graph(g, ms);
  gr_graph_destroy(g);
  if (st == APS_OK) {
    bench_report_stat("U-Net forward", "ms", bench_last(), batch);
    bench_report_stat("U-Net forward throughput", "images/s", bench_stat_per(bench_last(), batch * 1e3, 0), batch);
  }
  return st;
}

int bench_cpu_device(int json) {
  double conv3 = 0, conv1 = 0, dw = 0, mm = 0, b1 = 0, b64 = 0;
  bench_report_device("CPU device (oneDNN + OpenMP)", NULL, 0);
  aps_status st = bench_conv(3, &conv3);
  if (st == APS_OK)
    st = bench_conv(1, &conv1);
  if (st == APS_OK)
    st = bench_depthwise(&dw);
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
  bench_op_row op_rows[BENCH_OP_ROWS]; /* the operators at batch 64, beside the U-Net's */
  int nop = bench_operators_run(NULL, 64, op_rows, BENCH_OP_ROWS);
  if (nop < 0)
    return 1;
  if (json) {
    printf("{\"cpu_device\": {\"conv3x3_64_32x32_b16_gflops\": %.1f, \"conv1x1_64_32x32_b16_gflops\": %.1f, "
           "\"depthwise9x9_3ch_32x32_b64_gflops\": %.1f, \"matmul_1024_gflops\": %.1f, \"unet_b1_ms\": %.2f, "
           "\"unet_b64_ms\": %.1f}", conv3, conv1, dw, mm, b1, b64);
    bench_operators_print(op_rows, nop, b64, 1);
    printf("}\n");
  } else {
    printf("CPU device (oneDNN + OpenMP), medians of %d runs:\n", REPS);
    printf("  conv2d 3x3 64->64 32x32 batch 16  %7.1f GFLOP/s\n", conv3);
    printf("  conv2d 1x1 64->64 32x32 batch 16  %7.1f GFLOP/s\n", conv1);
    printf("  depthwise 9x9 blur 3ch 32x32 b64  %7.1f GFLOP/s\n", dw);
    printf("  matmul 1024^3                     %7.1f GFLOP/s\n", mm);
    printf("  U-Net forward, batch 1            %7.2f ms\n", b1);
    printf("  U-Net forward, batch 64           %7.1f ms\n", b64);
    bench_operators_print(op_rows, nop, b64, 0);
  }
  return 0;
}
