/* aps bench graph: per-op throughput at U-Net sizes, the U-Net's latency and throughput
 * (fp32, with GroupNorms folded, and with fp16 storage), its planned memory, and what
 * fusion does to its dispatch and barrier counts. */
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

#define CHECK(expr)                                                 \
  do {                                                              \
    if ((expr) != APS_OK) {                                         \
      fprintf(stderr, "aps bench graph: %s\n", aps_last_error());   \
      return 1;                                                     \
    }                                                               \
  } while (0)

/* Median ms of REPS runs after one warm-up. */
static int time_plan(gr_plan *p, double *ms) {
  double t[REPS];
  CHECK(gr_plan_run(p));
  for (int i = 0; i < REPS; i++) {
    double t0 = aps_now_ms();
    CHECK(gr_plan_run(p));
    t[i] = aps_now_ms() - t0;
  }
  *ms = bench_median(t, REPS);
  return 0;
}

typedef struct op_result {
  const char *name;
  double ms, amount; /* amount: GFLOP or GB per run */
  const char *unit;
  bench_stat s; /* the times' spread */
} op_result;

static int bench_op(rt_device *dev, gr_graph *g, op_result *r) {
  gr_plan *p;
  CHECK(gr_plan_compile(g, dev, NULL, &p));
  int fail = bench_fill(g, p, bench_set_plan) != APS_OK || time_plan(p, &r->ms);
  r->s = bench_last();
  gr_plan_destroy(p);
  gr_graph_destroy(g);
  return fail;
}

static gr_graph *conv_graph(int n, int c, int o, int s, int k) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(n, c, s, s));
  gr_output(g, gr_conv2d(g, x, gr_param(g, "w", GR_SHAPE(o, c, k, k)), gr_param(g, "b", GR_SHAPE(o)),
                         &(gr_conv2d_desc){.padding = k / 2}), "y");
  return g;
}

static int bench_ops(rt_device *dev, op_result *r, int *count) {
  int n = 0;
  r[n] = (op_result){"conv2d 3x3 64->64 32x32 b16", 0, 2.0 * 16 * 64 * 32 * 32 * 64 * 9 / 1e9, "GFLOP/s", .s = {0, 0, 0, 0}};
  if (bench_op(dev, conv_graph(16, 64, 64, 32, 3), &r[n++]))
    return 1;
  r[n] = (op_result){"conv2d 1x1 64->64 32x32 b16", 0, 2.0 * 16 * 64 * 32 * 32 * 64 / 1e9, "GFLOP/s", .s = {0, 0, 0, 0}};
  if (bench_op(dev, conv_graph(16, 64, 64, 32, 1), &r[n++]))
    return 1;
  /* The weight gradient of the 3x3 conv above (training's third conv-sized GEMM). */
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(16, 64, 32, 32));
  gr_output(g, gr_conv2d_wgrad(g, x, gr_input(g, "gy", GR_SHAPE(16, 64, 32, 32)), 3, 3,
                               &(gr_conv2d_desc){.padding = 1}), "dw");
  r[n] = (op_result){"conv2d weight grad 3x3 64->64 32x32 b16", 0, 2.0 * 16 * 64 * 32 * 32 * 64 * 9 / 1e9, "GFLOP/s", .s = {0, 0, 0, 0}};
  if (bench_op(dev, g, &r[n++]))
    return 1;
  /* A blur operator's depthwise convolution: a 9x9 kernel per channel, reflect padding. */
  g = gr_graph_create();
  x = gr_input(g, "x", GR_SHAPE(64, 3, 32, 32));
  gr_output(g, gr_conv2d(g, x, gr_param(g, "w", GR_SHAPE(3, 1, 9, 9)), 0,
                         &(gr_conv2d_desc){.padding = 4, .groups = 3, .pad_mode = GR_PAD_REFLECT}), "y");
  r[n] = (op_result){"depthwise 9x9 blur 3ch 32x32 b64", 0, 2.0 * 64 * 3 * 32 * 32 * 81 / 1e9, "GFLOP/s", .s = {0, 0, 0, 0}};
  if (bench_op(dev, g, &r[n++]))
    return 1;
  g = gr_graph_create();
  x = gr_input(g, "x", GR_SHAPE(1024, 1024));
  gr_output(g, gr_matmul(g, x, gr_param(g, "w", GR_SHAPE(1024, 1024)), 0, 0), "y");
  r[n] = (op_result){"matmul 1024^3", 0, 2.0 * 1024 * 1024 * 1024 / 1e9, "GFLOP/s", .s = {0, 0, 0, 0}};
  if (bench_op(dev, g, &r[n++]))
    return 1;
  g = gr_graph_create();
  x = gr_input(g, "x", GR_SHAPE(16, 64, 32, 32));
  gr_output(g, gr_silu(g, gr_group_norm(g, x, 8, gr_param(g, "gamma", GR_SHAPE(64)), gr_param(g, "beta", GR_SHAPE(64)),
                                        1e-5f)), "y");
  r[n] = (op_result){"group norm+SiLU 64ch 32x32 b16", 0, 3.0 * 16 * 64 * 32 * 32 * 4 / 1e9, "GB/s", .s = {0, 0, 0, 0}};
  if (bench_op(dev, g, &r[n++]))
    return 1;
  g = gr_graph_create();
  x = gr_input(g, "x", GR_SHAPE(16, 64, 8, 8));
  gr_output(g, gr_layer_attention(g, "attn", x, 8), "y");
  /* qkv and proj 1x1 convs, then two 64x64x64 matmuls per image */
  r[n] = (op_result){"attention block 64ch 8x8 b16", 0,
                     16.0 * (2.0 * 64 * 64 * 4 * 64 + 2.0 * 2 * 64 * 64 * 64) / 1e9, "GFLOP/s", .s = {0, 0, 0, 0}};
  if (bench_op(dev, g, &r[n++]))
    return 1;
  *count = n;
  return 0;
}


typedef struct unet_result {
  int batch;
  double ms, ms_fold, ms_f16; /* same process: fold first, then fp32 and fp16 alternately */
  gr_plan_stats fused, unfused, fold, f16;
  bench_stat s, s_fold, s_f16; /* the times' spreads */
  int64_t params;
} unet_result;

/* Medians of REPS runs of a and b taken alternately (after a warm-up of each), so that the
 * shared machine's swings hit both plans alike. */
static int time_pair(gr_plan *a, gr_plan *b, double *ms_a, double *ms_b, bench_stat *s_a, bench_stat *s_b) {
  double t[2][REPS];
  CHECK(gr_plan_run(a));
  CHECK(gr_plan_run(b));
  for (int i = 0; i < REPS; i++)
    for (int k = 0; k < 2; k++) {
      double t0 = aps_now_ms();
      CHECK(gr_plan_run(k ? b : a));
      t[k][i] = aps_now_ms() - t0;
    }
  *ms_a = bench_median(t[0], REPS);
  *s_a = bench_last();
  *ms_b = bench_median(t[1], REPS);
  *s_b = bench_last();
  return 0;
}

static int bench_unet(rt_device *dev, int batch, unet_result *r) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(batch, 1, 32, 32)), t = gr_input(g, "t", GR_SHAPE(batch));
  gr_output(g, gr_unet(g, bench_unet_config(), x, t), "eps");
  gr_stats gs;
  gr_graph_get_stats(g, &gs);
  r->batch = batch;
  r->params = gs.param_floats;
  gr_plan *p;
  CHECK(gr_plan_compile(g, dev, &(gr_plan_desc){.no_fusion = 1}, &p));
  gr_plan_get_stats(p, &r->unfused);
  gr_plan_destroy(p);
  gr_plan *q;
  CHECK(gr_plan_compile(g, dev, &(gr_plan_desc){.fold_norms = 1}, &q));
  gr_plan_get_stats(q, &r->fold);
  int fail = bench_fill(g, q, bench_set_plan) != APS_OK || time_plan(q, &r->ms_fold);
  r->s_fold = bench_last();
  gr_plan_destroy(q);
  CHECK(gr_plan_compile(g, dev, NULL, &p));
  gr_plan_get_stats(p, &r->fused);
  if (rt_device_caps(dev)->fp16_storage) {
    CHECK(gr_plan_compile(g, dev, &(gr_plan_desc){.f16_storage = 1}, &q));
    gr_plan_get_stats(q, &r->f16);
    fail = fail || bench_fill(g, p, bench_set_plan) != APS_OK || bench_fill(g, q, bench_set_plan) != APS_OK ||
           time_pair(p, q, &r->ms, &r->ms_f16, &r->s, &r->s_f16);
    gr_plan_destroy(q);
  } else {
    fail = fail || bench_fill(g, p, bench_set_plan) != APS_OK || time_plan(p, &r->ms);
    r->s = bench_last();
  }
  gr_plan_destroy(p);
  gr_graph_destroy(g);
  return fail;
}

static void report_unet(const char *name, bench_stat s, const unet_result *u, const gr_plan_stats *ps) {
  bench_report_add(&(bench_figure){name, "ms", s, u->batch,
                                   .peak_memory_bytes = (int64_t)(ps->arena_bytes + ps->unplanned_bytes + u->params * 4),
                                   .counts = 1, .dispatches = ps->dispatches, .barriers = ps->barriers});
}

/* The figures into the bench report (bench_report.h); memory: the activations' arena, the
 * arrays left unplanned and the fp32 weights. */
static void report(const rt_caps *c, const op_result *ops, int nops, const unet_result *u) {
  bench_report_device(c->name, c->driver_info, c->api_version);
  for (int i = 0; i < nops; i++)
    bench_report_stat(ops[i].name, ops[i].unit, bench_stat_per(ops[i].s, ops[i].amount * 1e3, 0), 0);
  for (int i = 0; i < 2; i++) {
    report_unet("U-Net forward", u[i].s, &u[i], &u[i].fused);
    report_unet("U-Net forward, GroupNorm folded", u[i].s_fold, &u[i], &u[i].fold);
    if (c->fp16_storage)
      report_unet("U-Net forward, fp16 storage", u[i].s_f16, &u[i], &u[i].f16);
    bench_report_stat("U-Net forward throughput", "images/s", bench_stat_per(u[i].s, u[i].batch * 1e3, 0), u[i].batch);
  }
}

int cmd_bench_graph(const cli_options *o) {
  rt_device *dev;
  aps_status st = rt_device_create(&(rt_device_desc){.device = o->device}, &dev);
  if ((st == APS_ERR_NO_LOADER || st == APS_ERR_NO_DEVICE) && !o->device) {
    fprintf(stderr, "aps bench graph: %s\naps bench graph: no Vulkan device; measuring the CPU device\n",
            aps_last_error());
    return bench_cpu_device(o->json);
  }
  CHECK(st);
  const rt_caps *c = rt_device_caps(dev);
  op_result ops[10];
  int nops = 0;
  unet_result u[2] = {{0}};
  int fail = bench_ops(dev, ops, &nops) || bench_unet(dev, 1, &u[0]) || bench_unet(dev, o->quick ? 2 : 64, &u[1]);
  bench_op_row op_rows[BENCH_OP_ROWS]; /* the operators at the prior's batch */
  int nop = fail ? 0 : bench_operators_run(dev, u[1].batch, op_rows, BENCH_OP_ROWS);
  fail = fail || nop < 0;
  if (!fail)
    report(c, ops, nops, u);
  if (!fail && o->json) {
    printf("{\"device\": \"%s\", \"driver\": \"%s\",\n \"ops\": [", c->name, c->driver_info);
    for (int i = 0; i < nops; i++)
      printf("%s\n  {\"op\": \"%s\", \"ms\": %.3f, \"%s\": %.2f}", i ? "," : "", ops[i].name, ops[i].ms,
             ops[i].unit[1] == 'F' ? "gflops" : "gbs", ops[i].amount / (ops[i].ms * 1e-3));
    printf("],\n \"unet\": {\"params\": %lld", (long long)u[0].params);
    for (int i = 0; i < 2; i++)
      printf(", \"batch%d\": {\"ms\": %.2f, \"images_per_s\": %.1f, \"ms_fold_norms\": %.2f, "
             "\"dispatches_fold_norms\": %u, \"dispatches\": %u, \"dispatches_unfused\": %u, "
             "\"barriers\": %u, \"barriers_unfused\": %u, \"arena_mib\": %.2f, \"unplanned_mib\": %.2f, "
             "\"ms_f16\": %.2f, \"arena_mib_f16\": %.2f, \"f16_tensors\": %u}",
             u[i].batch, u[i].ms, u[i].batch / (u[i].ms * 1e-3), u[i].ms_fold, u[i].fold.dispatches,
             u[i].fused.dispatches, u[i].unfused.dispatches,
             u[i].fused.barriers, u[i].unfused.barriers, u[i].fused.arena_bytes / 1048576.0,
             u[i].fused.unplanned_bytes / 1048576.0, u[i].ms_f16, u[i].f16.arena_bytes / 1048576.0,
             u[i].f16.f16_tensors);
    printf("}");
    bench_operators_print(op_rows, nop, u[1].ms, 1);
    printf("}\n");
  } else if (!fail) {
    printf("device: %s (%s)\n%-40s %10s %14s\n", c->name, c->driver_info, "op", "ms", "throughput");
    for (int i = 0; i < nops; i++)
      printf("%-40s %10.3f %8.2f %s\n", ops[i].name, ops[i].ms, ops[i].amount / (ops[i].ms * 1e-3), ops[i].unit);
    printf("U-Net %.2f M parameters (widths 32/64/64, 2 blocks per level, attention at 8x8):\n", u[0].params / 1e6);
    printf("%-8s %10s %10s %12s %12s %10s %12s %14s\n", "batch", "ms", "images/s", "dispatches", "(unfused)",
           "barriers", "(unfused)", "arena MiB");
    for (int i = 0; i < 2; i++)
      printf("%-8d %10.2f %10.1f %12u %12u %10u %12u %7.2f of %.2f\n", u[i].batch, u[i].ms,
             u[i].batch / (u[i].ms * 1e-3), u[i].fused.dispatches, u[i].unfused.dispatches, u[i].fused.barriers,
             u[i].unfused.barriers, u[i].fused.arena_bytes / 1048576.0, u[i].fused.unplanned_bytes / 1048576.0);
    printf("with GroupNorm folded into convs (gr_plan_desc.fold_norms), measured just before:\n");
    for (int i = 0; i < 2; i++)
      printf("%-8d %10.2f %10.1f %12u\n", u[i].batch, u[i].ms_fold, u[i].batch / (u[i].ms_fold * 1e-3),
             u[i].fold.dispatches);
    if (c->fp16_storage) {
      printf("with fp16 storage (gr_plan_desc.f16_storage), runs alternating with the fp32 plan above:\n");
      printf("%-8s %10s %10s %12s %14s\n", "batch", "ms", "images/s", "halves", "arena MiB");
      for (int i = 0; i < 2; i++)
        printf("%-8d %10.2f %10.1f %12u %7.2f of %.2f\n", u[i].batch, u[i].ms_f16, u[i].batch / (u[i].ms_f16 * 1e-3),
               u[i].f16.f16_tensors, u[i].f16.arena_bytes / 1048576.0, u[i].f16.unplanned_bytes / 1048576.0);
    } else {
      printf("fp16 storage: %s lacks storageBuffer16BitAccess\n", c->name);
    }
    bench_operators_print(op_rows, nop, u[1].ms, 0);
  }
  rt_device_destroy(dev);
  return fail;
}
