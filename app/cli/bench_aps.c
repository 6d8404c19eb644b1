/* aps bench aps: the method's two costs on one device. Sampling the default conditional glow
 * with the head, as the shipped inpainting flow (1x32x32 images, 3 condition channels, its
 * initial weights) at batch 1, 8 and 64, and one
 * distillation step at batch 64 (the shipped prior assets/prior-fmnist32.safetensors, the
 * operator family inpaint:box=8-16, fashion-mnist behind the simulated measurements): the
 * measurements and conditions of a batch (the feed), then the loss graph's forward, backward
 * and Adam update. Vulkan by default, --device cpu for the CPU device. APS_BENCH_PRIOR names
 * another prior file; by default the one in ./assets or the source tree's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_report.h"
#include "cli.h"
#include "dataset.h"
#include "distill_family.h"
#include "flow.h"
#include "runner.h"

#ifndef APS_ASSETS_DIR
#define APS_ASSETS_DIR "assets"
#endif

typedef struct bench_result {
  double ms[3];       /* sampling, per call, at each batch */
  bench_stat sample[3], step, step_fp32; /* their spreads, and a whole distillation step's */
  double step_ms;     /* a whole distillation step, as aps distill runs it */
  double step_fp32_ms; /* ... with the prior's convs in fp32, where the default is bf16 (else 0) */
  int bf16;           /* the default runs the prior's convs in bf16 (CPU device, native bf16) */
  double feed_ms;     /* ... of which the feed */
  double step_cpu_ms; /* the process's CPU time in a step (all threads): on a shared machine
                         a steadier figure of the work than the wall clock */
  int64_t params, flops; /* the flow's parameters, its FLOPs per sample (convs and matmuls) */
  int64_t step_flops;    /* a distillation step's (convs, weight gradients, matmuls) */
  char device[300];
} bench_result;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Flow sampling at one batch: the sampling graph on the device, its median per call (a run
 * and reading the samples back). */
static aps_status bench_sample(const cli_options *o, const aps_flow_config *c, int batch, int reps, double *ms,
                               bench_result *res) {
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  float *x = malloc((size_t)(aps_flow_dim(c) * batch) * sizeof *x);
  float *cond = calloc((size_t)gr_shape_count(aps_flow_cond_shape(c, batch)), sizeof *cond);
  aps_status s = x && cond ? aps_flow_sample_graph(c, batch, &g) : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (s == APS_OK)
    s = aps_runner_create(g, &(aps_runner_desc){.device = o->device, .vulkan = 1, .quiet = 1}, &r);
  uint64_t rng = 1;
  if (s == APS_OK)
    s = aps_flow_init_params(g, c, r, &rng);
  for (int64_t i = 0; cond && i < gr_shape_count(aps_flow_cond_shape(c, batch)); i++)
    cond[i] = (float)((i * 37) % 101) / 101.0f; /* any condition: the cost does not depend on it */
  float seed[2] = {1, 2};
  int64_t dim = aps_flow_dim(c);
  float *temp = s == APS_OK ? malloc(sizeof(float) * (size_t)dim) : NULL;
  if (s == APS_OK && !temp)
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (int64_t i = 0; temp && i < dim; i++)
    temp[i] = 1.0f;
  if (s == APS_OK && (s = aps_runner_set(r, "temperature", temp, dim)) == APS_OK &&
      (s = aps_runner_set(r, "seed", seed, 2)) == APS_OK)
    s = aps_runner_set(r, "cond", cond, gr_shape_count(aps_flow_cond_shape(c, batch)));
  if (s == APS_OK) {
    gr_stats st;
    gr_graph_get_stats(g, &st);
    res->params = st.param_floats;
    res->flops = st.flops / batch;
    snprintf(res->device, sizeof res->device, "%s", aps_runner_device_name(r));
  }
  double t[16];
  for (int i = -1; s == APS_OK && i < reps; i++) { /* one warm-up call */
    double t0 = aps_now_ms();
    s = aps_runner_run(r);
    if (s == APS_OK)
      s = aps_runner_get(r, "x", x, aps_flow_dim(c) * batch);
    if (i >= 0)
      t[i] = aps_now_ms() - t0;
  }
  if (s == APS_OK)
    *ms = bench_median(t, reps);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  free(x), free(cond), free(temp);
  return s;
}

/* The prior file: APS_BENCH_PRIOR, ./assets, or the source tree's assets. */
static const char *prior_path(void) {
  const char *e = getenv("APS_BENCH_PRIOR");
  if (e && *e)
    return e;
  return access("assets/prior-fmnist32.safetensors", R_OK) == 0 ? "assets/prior-fmnist32.safetensors"
                                                                   : APS_ASSETS_DIR "/prior-fmnist32.safetensors";
}

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* One distillation step: the median of reps steps after a warm-up one (the first run of a
 * plan or the CPU device's arena pays for first touches and JIT). */
static aps_status bench_distill(const cli_options *o, int batch, int reps, int bf16, bench_result *res) {
  aps_dataset *ds = NULL;
  aps_distill_run *run = NULL;
  aps_status s = aps_dataset_load_fashion_mnist(NULL, 1, &ds);
  if (s == APS_OK)
    s = aps_distill_run_create(&(aps_distill_run_desc){.prior_path = prior_path(),
                                                       .spec = "inpaint:box=8-16",
                                                       .data = ds,
                                                       .batch = batch,
                                                       .device = o->device,
                                                       .vulkan = 1,
                                                       .prior_bf16 = bf16,
                                                       .seed = 1},
                               &run);
  if (s == APS_OK)
    s = aps_distill_run_init(run);
  if (s == APS_OK) {
    gr_stats st;
    gr_graph_get_stats(aps_distill_run_graph(run), &st);
    res->step_flops = st.flops;
  }
  double t[16], feed[16], cpu[16];
  aps_runner *r = s == APS_OK ? aps_distill_run_runner(run) : NULL;
  res->bf16 = bf16 && r && aps_runner_is_cpu(r) && gr_cpu_has_bf16();
  for (int i = -1; s == APS_OK && i < reps; i++) {
    float lr = 1e-4f, step = (float)(i + 2);
    double t0 = aps_now_ms(), c0 = cpu_ms();
    if ((s = aps_runner_set(r, "optim.lr", &lr, 1)) == APS_OK && (s = aps_runner_set(r, "optim.step", &step, 1)) == APS_OK)
      s = aps_distill_run_feed(run, r, i + 1);
    double t1 = aps_now_ms();
    if (s == APS_OK)
      s = aps_runner_run(r);
    float loss = 0;
    if (s == APS_OK)
      s = aps_runner_get(r, "loss", &loss, 1);
    if (i >= 0) {
      t[i] = aps_now_ms() - t0;
      feed[i] = t1 - t0;
      cpu[i] = cpu_ms() - c0;
    }
  }
  if (s == APS_OK) {
    res->step_ms = bench_median(t, reps);
    res->step = bench_last();
    qsort(feed, (size_t)reps, sizeof *feed, cmp_double);
    res->feed_ms = feed[reps / 2];
    res->step_cpu_ms = bench_median(cpu, reps);
  }
  aps_distill_run_destroy(run);
  aps_dataset_free(ds);
  return s;
}

int cmd_bench_aps(const cli_options *o) {
  aps_flow_config c = aps_flow_config_glow(1, 32, 3);
  c.head = 1; /* as the shipped inpainting flow */
  const int batches[3] = {1, 8, 64}, quick_batches[3] = {1, 2, 4};
  const int *b = o->quick ? quick_batches : batches;
  int reps = o->quick ? 2 : 5, step_batch = o->quick ? 2 : 64, step_reps = o->quick ? 1 : 3;
  bench_result res = {0};
  aps_status s = APS_OK;
  for (int i = 0; s == APS_OK && i < 3; i++)
    if ((s = bench_sample(o, &c, b[i], reps, &res.ms[i], &res)) == APS_OK)
      res.sample[i] = bench_last();
  /* As aps distill runs it (the prior's convs in bf16 where the CPU device has it), and in
   * fp32 beside it when that differs. */
  if (s == APS_OK)
    s = bench_distill(o, step_batch, step_reps, 1, &res);
  if (s == APS_OK && res.bf16) {
    bench_result fp = res;
    if ((s = bench_distill(o, step_batch, step_reps, 0, &fp)) == APS_OK) {
      res.step_fp32 = fp.step;
      res.step_fp32_ms = fp.step_ms;
    }
  }
  if (s != APS_OK) {
    fprintf(stderr, "aps bench aps: %s\n", aps_last_error());
    return 1;
  }
  char cfg[256];
  aps_flow_config_string(&c, cfg);
  bench_report_device(res.device, NULL, 0);
  for (int i = 0; i < 3; i++) {
    bench_report_stat("flow sampling", "ms", res.sample[i], b[i]);
    bench_report_stat("flow sampling per sample", "ms", bench_stat_map(res.sample[i], 1.0 / b[i], 0), b[i]);
  }
  bench_report_stat("distillation step", "ms", res.step, step_batch);
  if (res.bf16)
    bench_report_stat("distillation step, fp32 prior", "ms", res.step_fp32, step_batch);
  if (o->json) {
    printf("{\"device\": \"%s\", \"flow\": \"%s\", \"flow_params\": %lld, \"flow_mflop_per_sample\": %.2f", res.device,
           cfg, (long long)res.params, (double)res.flops * 1e-6);
    for (int i = 0; i < 3; i++)
      printf(", \"sample_ms_b%d\": %.3f, \"sample_ms_per_sample_b%d\": %.4f", b[i], res.ms[i], b[i], res.ms[i] / b[i]);
    printf(", \"distill_batch\": %d, \"distill_step_ms\": %.1f, \"distill_feed_ms\": %.1f, \"distill_step_cpu_ms\": %.1f, "
           "\"distill_step_gflop\": %.2f, \"distill_prior_convs\": \"%s\"",
           step_batch, res.step_ms, res.feed_ms, res.step_cpu_ms, (double)res.step_flops * 1e-9, res.bf16 ? "bf16" : "fp32");
    if (res.bf16)
      printf(", \"distill_step_fp32_ms\": %.1f", res.step_fp32_ms);
    printf("}\n");
  } else {
    printf("aps on %s\n", res.device);
    printf("  flow %s\n  %lld parameters, %.1f MFLOP per sample (convs and matmuls)\n", cfg, (long long)res.params,
           (double)res.flops * 1e-6);
    printf("  %-36s %12s %14s   (median of %d)\n", "", "ms per call", "ms per sample", reps);
    for (int i = 0; i < 3; i++)
      printf("  sampling, batch %-19d %12.2f %14.3f\n", b[i], res.ms[i], res.ms[i] / b[i]);
    printf("  distillation step, batch %-10d %12.1f   (feed %.1f ms, CPU time %.0f ms; median of %d; prior's convs %s)\n",
           step_batch, res.step_ms, res.feed_ms, res.step_cpu_ms, step_reps, res.bf16 ? "bf16" : "fp32");
    if (res.bf16)
      printf("  distillation step, prior in fp32      %12.1f   (the same, measured after it)\n", res.step_fp32_ms);
    printf("  %.1f GFLOP per step in convs, weight gradients and matmuls: %.1f GFLOP/s\n", (double)res.step_flops * 1e-9,
           (double)res.step_flops * 1e-6 / res.step_ms);
  }
  return 0;
}
