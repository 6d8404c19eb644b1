/* aps bench train: one training step (forward, backward, Adam) of the U-Net of
 * `aps bench graph` at batch 64, on the Vulkan device and on the CPU device.
 * Conv weight gradients are the dedicated split-K op gr_conv2d_wgrad (one pipeline for every
 * layer; before it they were correlations whose kernel was the layer's output size, and
 * lavapipe compiled those pipelines for many minutes, so this benchmark never finished there).
 * Measured on the 2-vCPU development machine while other jobs kept it busy (load 3-4), batch 64:
 *   lavapipe (Mesa 25.0.7): ~28 s per step, 4143 dispatches; cold (no Mesa or pipeline
 *     cache) every pipeline of the step compiles in ~45 s (`--quick`: 49 s wall), the
 *     weight-gradient pair in ~3 s;
 *   CPU device: 2.1-2.8 s per step before and after the op (back-to-back pairs moved ±50 %
 *     with the load: 4.1 vs 6.6 s, 2.8 vs 2.4 s); its weight gradients, now oneDNN's
 *     backward-weights convolution (cpu_dnnl.c), measured in one process: 167-236 GFLOP/s
 *     against 28-87 for the old correlations (U-Net layer shapes, 2.5-6x faster).
 *   CPU device with its memory plan (cpu_plan.c), pads folded into the backward-data convs,
 *     run-wise reductions and wide broadcast rows: back-to-back with the build before,
 *     1.04 vs 1.34 s and 1.64 vs 2.29 s per step; 776 MB resident instead of 6.6 GB (the
 *     activations plan into 639 MiB, 4.6 GiB one array each), 7-11 s for the whole command
 *     instead of 34-38 s. With 1x1 weight gradients as sgemms and 2 MB conv chunks, three
 *     alternating rounds (load 3.2-3.9), medians: previous build 2518 ms, this one 1482 ms,
 *     PyTorch 1.13 (tools/pytorch_unet.py's step, 2 threads) 12571 ms with its default
 *     OpenMP waits, 2053 ms with OMP_WAIT_POLICY=PASSIVE; on a quiet spell 740-880 ms
 *     against PyTorch's 1.1-1.2 s. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_report.h"
#include "bench_values.h"
#include "cli.h"
#include "graph.h"
#include "layers.h"
#include "optim.h"

enum { REPS = 5 };


/* Every input and parameter (bench_fill), and a small learning rate. */
static aps_status fill_all(const gr_graph *g, void *target, bench_set_fn set) {
  float lr = 1e-4f, step = 1.0f;
  APS_TRY(bench_fill(g, target, set));
  APS_TRY(set(target, "optim.step", &step, 1));
  return set(target, "optim.lr", &lr, 1);
}

static gr_graph *train_graph(int batch, uint64_t *param_bytes) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(batch, 1, 32, 32)), t = gr_input(g, "t", GR_SHAPE(batch));
  gr_tensor target = gr_input(g, "target", GR_SHAPE(batch, 1, 32, 32));
  gr_tensor loss = gr_reduce_op(g, GR_MEAN, gr_unary_op(g, GR_SQUARE, gr_sub(g, gr_unet(g, bench_unet_config(), x, t), target)), 15u);
  gr_output(g, loss, "loss");
  gr_adam_outputs ao;
  if (gr_adam(g, loss, &(gr_adam_desc){.max_grad_norm = 1.0f}, &ao) != APS_OK) {
    gr_graph_destroy(g);
    return NULL;
  }
  gr_stats st;
  gr_graph_get_stats(g, &st);
  *param_bytes = (uint64_t)st.param_floats * 4; /* weights and both Adam moments */
  return g;
}

typedef aps_status (*step_fn)(void *runner, int step);
static aps_status step_plan(void *p, int step) {
  float s = (float)step;
  APS_TRY(gr_plan_set(p, "optim.step", &s, 1));
  return gr_plan_run(p);
}
static aps_status step_cpu(void *c, int step) {
  float s = (float)step;
  APS_TRY(gr_cpu_set(c, "optim.step", &s, 1));
  return gr_cpu_run(c);
}

static aps_status time_steps(void *runner, step_fn step, double *ms) {
  double t[REPS];
  APS_TRY(step(runner, 1));
  for (int i = 0; i < REPS; i++) {
    double t0 = aps_now_ms();
    APS_TRY(step(runner, i + 2));
    t[i] = aps_now_ms() - t0;
  }
  *ms = bench_median(t, REPS); /* bench_last() has the spread */
  return APS_OK;
}

int cmd_bench_train(const cli_options *o) {
  int batch = o->quick ? 2 : 64;
  uint64_t param_bytes = 0;
  gr_graph *g = train_graph(batch, &param_bytes);
  if (!g) {
    fprintf(stderr, "aps bench train: %s\n", aps_last_error());
    return 1;
  }
  double ms = 0;
  bench_stat spread = {0};
  uint32_t api = 0;
  char driver[256] = "";
  gr_plan_stats ps = {0};
  aps_status st;
  const char *device = o->device && !strcmp(o->device, "cpu") ? "CPU device (oneDNN + OpenMP)" : NULL;
  char name[300] = "";
  if (device) {
    gr_cpu *c = NULL;
    st = gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1}, &c);
    if (st == APS_OK && (st = fill_all(g, c, bench_set_cpu)) == APS_OK)
      st = time_steps(c, step_cpu, &ms);
    spread = bench_last();
    if (c) {
      gr_cpu_memory_stats ms_;
      gr_cpu_memory(c, &ms_);
      ps.arena_bytes = ms_.arena_bytes;
      ps.unplanned_bytes = ms_.unplanned_bytes;
    }
    gr_cpu_destroy(c);
    snprintf(name, sizeof name, "%s", device);
  } else {
    rt_device *dev = NULL;
    gr_plan *p = NULL;
    st = rt_device_create(&(rt_device_desc){.device = o->device}, &dev);
    if (st == APS_OK) {
      snprintf(name, sizeof name, "%s", rt_device_caps(dev)->name);
      snprintf(driver, sizeof driver, "%s", rt_device_caps(dev)->driver_info);
      api = rt_device_caps(dev)->api_version;
    }
    if (st == APS_OK && (st = gr_plan_compile(g, dev, NULL, &p)) == APS_OK && (st = fill_all(g, p, bench_set_plan)) == APS_OK)
      st = time_steps(p, step_plan, &ms);
    spread = bench_last();
    if (p)
      gr_plan_get_stats(p, &ps);
    gr_plan_destroy(p);
    rt_device_destroy(dev);
  }
  gr_graph_destroy(g);
  if (st != APS_OK) {
    fprintf(stderr, "aps bench train: %s\n", aps_last_error());
    return 1;
  }
  bench_report_device(name, driver[0] ? driver : NULL, api);
  /* Memory: the activations' arena (one array each where unplanned) and weights with both
   * Adam moments; the CPU device counts no dispatches. */
  bench_report_add(&(bench_figure){.name = "training step", .unit = "ms", .s = spread, .batch = batch,
                                   .peak_memory_bytes = (int64_t)(ps.arena_bytes + ps.unplanned_bytes + param_bytes),
                                   .counts = !device, .dispatches = ps.dispatches, .barriers = ps.barriers});
  if (o->json)
    printf("{\"device\": \"%s\", \"batch\": %d, \"ms_per_step\": %.1f, \"dispatches\": %u, \"arena_mib\": %.1f, "
           "\"params_and_state_mib\": %.1f}\n",
           name, batch, ms, ps.dispatches, ps.arena_bytes / 1048576.0, param_bytes / 1048576.0);
  else if (device)
    printf("U-Net training step (forward, backward, Adam), batch %d, on %s: %.1f ms (median of %d)\n"
           "  activations planned into %.1f MiB (%.1f MiB one array each), weights and Adam state %.1f MiB\n",
           batch, name, ms, REPS, ps.arena_bytes / 1048576.0, ps.unplanned_bytes / 1048576.0,
           param_bytes / 1048576.0);
  else
    printf("U-Net training step (forward, backward, Adam), batch %d, on %s: %.1f ms (median of %d)\n"
           "  %u dispatches, activations planned into %.1f MiB, weights and Adam state %.1f MiB\n",
           batch, name, ms, REPS, ps.dispatches, ps.arena_bytes / 1048576.0, param_bytes / 1048576.0);
  return 0;
}
