/* aps bench runtime: the fixed costs and ceilings of the device layer — dispatch overhead
 * (independent dispatches, and dispatches separated by barriers), copy bandwidth, and
 * fp32 GEMM throughput, each next to a theoretical figure where one can be derived. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_report.h"
#include "cli.h"
#include "gemm_f32.h"
#include "graph.h" /* and through it rt.h: the devices and kernels measured here */

enum { REPS = 5 };

typedef struct results {
  double empty_submit_us, dispatch_us, dispatch_barrier_us;
  double copy_gbs, shader_copy_gbs;
  int gemm_count;
  int gemm_size[3];
  double gemm_gflops[3];
  double peak_gflops;
  char peak_how[160];
  /* lavapipe only: the same dispatch and 1024^3 GEMM figures with LP_NUM_THREADS=0 */
  int single_thread;
  double st_dispatch_us, st_dispatch_barrier_us, st_gemm1024;
  /* the same figures' spreads over the repeats, for the report */
  bench_stat s_empty, s_dispatch, s_barrier, s_copy, s_shader_copy, s_gemm[3], s_st_dispatch, s_st_barrier, s_st_gemm;
  int dispatches;
} results;

#define CHECK(expr)                                                   \
  do {                                                                \
    if ((expr) != APS_OK) {                                           \
      fprintf(stderr, "aps bench runtime: %s\n", aps_last_error());   \
      return 1;                                                       \
    }                                                                 \
  } while (0)

/* Median wall time (ms) of REPS submit+wait of an ended stream, after one warm-up. */
static int time_stream(rt_stream *s, double *ms) {
  double t[REPS];
  CHECK(rt_stream_run(s));
  for (int i = 0; i < REPS; i++) {
    double t0 = aps_now_ms();
    CHECK(rt_stream_run(s));
    t[i] = aps_now_ms() - t0;
  }
  *ms = bench_median(t, REPS);
  return 0;
}

static int bench_dispatch(rt_device *dev, int n, results *r) {
  rt_kernel *noop, *inc;
  CHECK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "rt_noop"}, &noop));
  CHECK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "rt_add_inplace"}, &inc));
  rt_buffer *buf;
  CHECK(rt_buffer_create(dev, 256, RT_MEMORY_DEVICE, &buf));
  rt_stream *s;
  CHECK(rt_stream_create(dev, NULL, &s));
  double empty, indep, dep;
  CHECK(rt_stream_begin(s));
  CHECK(rt_stream_end(s));
  if (time_stream(s, &empty))
    return 1;
  bench_stat s_empty = bench_last();
  /* n dispatches reading one buffer: no hazards, no barriers. */
  CHECK(rt_stream_begin(s));
  for (int i = 0; i < n; i++)
    CHECK(rt_stream_dispatch(s, &(rt_dispatch){.kernel = noop, .bindings = {{buf}}, .groups = {1}, .name = "noop"}));
  CHECK(rt_stream_end(s));
  if (time_stream(s, &indep))
    return 1;
  bench_stat s_indep = bench_last();
  /* n dispatches updating one buffer in place: a barrier before each but the first. */
  struct { uint32_t n; float b; } push = {64, 1.0f};
  CHECK(rt_stream_begin(s));
  for (int i = 0; i < n; i++)
    CHECK(rt_stream_dispatch(s, &(rt_dispatch){.kernel = inc, .bindings = {{buf}}, .push = &push, .groups = {1},
                                               .name = "add"}));
  CHECK(rt_stream_end(s));
  if (time_stream(s, &dep))
    return 1;
  r->s_empty = bench_stat_map(s_empty, 1e3, 0);
  r->s_dispatch = bench_stat_map(s_indep, 1e3 / n, -empty * 1e3 / n);
  r->s_barrier = bench_stat_map(bench_last(), 1e3 / n, -empty * 1e3 / n);
  r->dispatches = n;
  r->empty_submit_us = empty * 1e3;
  r->dispatch_us = (indep - empty) * 1e3 / n;
  r->dispatch_barrier_us = (dep - empty) * 1e3 / n;
  rt_stream_destroy(s);
  rt_buffer_destroy(buf);
  return 0;
}

static int bench_copy(rt_device *dev, uint64_t bytes, results *r) {
  rt_buffer *a, *b;
  CHECK(rt_buffer_create(dev, bytes, RT_MEMORY_DEVICE, &a));
  CHECK(rt_buffer_create(dev, bytes, RT_MEMORY_DEVICE, &b));
  CHECK(rt_buffer_fill(a, 0, bytes, 0x3f800000u));
  rt_stream *s;
  CHECK(rt_stream_create(dev, NULL, &s));
  double empty, t;
  CHECK(rt_stream_begin(s));
  CHECK(rt_stream_end(s));
  if (time_stream(s, &empty))
    return 1;
  CHECK(rt_stream_begin(s));
  CHECK(rt_stream_copy(s, a, 0, b, 0, bytes));
  CHECK(rt_stream_end(s));
  if (time_stream(s, &t))
    return 1;
  r->copy_gbs = bytes / ((t - empty) * 1e6);
  r->s_copy = bench_stat_per(bench_last(), bytes / 1e6, empty);
  rt_kernel *k;
  CHECK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "copy_vec4"}, &k));
  uint32_t n4 = (uint32_t)(bytes / 16), groups = (n4 + 63) / 64;
  uint32_t gx = groups < 65535 ? groups : 65535, gy = (groups + gx - 1) / gx;
  CHECK(rt_stream_begin(s));
  CHECK(rt_stream_dispatch(s, &(rt_dispatch){.kernel = k, .bindings = {{a}, {b}}, .push = &n4, .groups = {gx, gy},
                                             .name = "copy_vec4"}));
  CHECK(rt_stream_end(s));
  if (time_stream(s, &t))
    return 1;
  r->shader_copy_gbs = bytes / ((t - empty) * 1e6);
  r->s_shader_copy = bench_stat_per(bench_last(), bytes / 1e6, empty);
  rt_stream_destroy(s);
  rt_buffer_destroy(a);
  rt_buffer_destroy(b);
  return 0;
}

static int bench_gemm(rt_device *dev, int size, double *gflops, bench_stat *spread) {
  uint64_t bytes = (uint64_t)size * size * 4;
  rt_buffer *a, *b, *c;
  CHECK(rt_buffer_create(dev, bytes, RT_MEMORY_DEVICE, &a));
  CHECK(rt_buffer_create(dev, bytes, RT_MEMORY_DEVICE, &b));
  CHECK(rt_buffer_create(dev, bytes, RT_MEMORY_DEVICE, &c));
  CHECK(rt_buffer_fill(a, 0, bytes, 0x3c23d70au)); /* 0.01f */
  CHECK(rt_buffer_fill(b, 0, bytes, 0x3c23d70au));
  rt_kernel *k;
  CHECK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "gemm_f32"}, &k));
  aps_gemm_f32_push push = {.m = (uint32_t)size, .n = (uint32_t)size, .k = (uint32_t)size, .alpha = 1.0f};
  rt_stream *s;
  CHECK(rt_stream_create(dev, NULL, &s));
  CHECK(rt_stream_begin(s));
  CHECK(rt_stream_dispatch(s, &(rt_dispatch){
                                  .kernel = k,
                                  .bindings = {{a}, {b}, {c}, {a}, {a}, {a}, {a}},
                                  .push = &push,
                                  .groups = {(size + APS_GEMM_F32_TILE_N - 1) / APS_GEMM_F32_TILE_N,
                                             (size + APS_GEMM_F32_TILE_M - 1) / APS_GEMM_F32_TILE_M, 1},
                                  .name = "gemm_f32"}));
  CHECK(rt_stream_end(s));
  double ms;
  if (time_stream(s, &ms))
    return 1;
  *gflops = 2.0 * size * size * (double)size / (ms * 1e6);
  *spread = bench_stat_per(bench_last(), 2.0 * size * size * (double)size / 1e6, 0);
  rt_stream_destroy(s);
  rt_buffer_destroy(a);
  rt_buffer_destroy(b);
  rt_buffer_destroy(c);
  return 0;
}

static void print_results(const rt_caps *c, const results *r, int json) {
  const char *threads = getenv("LP_NUM_THREADS");
  if (json) {
    printf("{\"device\": \"%s\", \"driver\": \"%s\", \"lp_num_threads\": \"%s\",\n", c->name, c->driver_info,
           threads ? threads : "default");
    printf(" \"empty_submit_us\": %.1f, \"dispatch_overhead_us\": %.2f, \"dispatch_with_barrier_us\": %.2f,\n",
           r->empty_submit_us, r->dispatch_us, r->dispatch_barrier_us);
    printf(" \"copy_gbs\": %.2f, \"shader_copy_gbs\": %.2f,\n", r->copy_gbs, r->shader_copy_gbs);
    printf(" \"gemm\": [");
    for (int i = 0; i < r->gemm_count; i++)
      printf("%s{\"size\": %d, \"gflops\": %.1f}", i ? ", " : "", r->gemm_size[i], r->gemm_gflops[i]);
    printf("],\n \"peak_gflops\": %.1f, \"peak_derivation\": \"%s\"", r->peak_gflops, r->peak_how);
    if (r->single_thread)
      printf(",\n \"lp_num_threads_0\": {\"dispatch_overhead_us\": %.2f, \"dispatch_with_barrier_us\": %.2f, "
             "\"gemm_gflops\": %.1f, \"gemm_size\": %d}",
             r->st_dispatch_us, r->st_dispatch_barrier_us, r->st_gemm1024, r->gemm_size[1]);
    printf("}\n");
    return;
  }
  printf("device: %s (%s), LP_NUM_THREADS=%s\n", c->name, c->driver_info, threads ? threads : "(default)");
  printf("%-34s %12s %s\n", "measure", "value", "theoretical");
  printf("%-34s %9.1f us\n", "empty submit + wait", r->empty_submit_us);
  printf("%-34s %9.2f us\n", "dispatch, independent", r->dispatch_us);
  printf("%-34s %9.2f us\n", "dispatch, barrier before each", r->dispatch_barrier_us);
  printf("%-34s %7.2f GB/s  n/a\n", "vkCmdCopyBuffer (bytes copied)", r->copy_gbs);
  printf("%-34s %7.2f GB/s  n/a\n", "copy shader, vec4", r->shader_copy_gbs);
  for (int i = 0; i < r->gemm_count; i++) {
    char label[64];
    snprintf(label, sizeof label, "GEMM fp32 %d^3 (median of %d)", r->gemm_size[i], REPS);
    if (r->peak_gflops > 0)
      printf("%-34s %6.1f GFLOP/s %.1f (%.0f%%)\n", label, r->gemm_gflops[i], r->peak_gflops,
             100 * r->gemm_gflops[i] / r->peak_gflops);
    else
      printf("%-34s %6.1f GFLOP/s n/a\n", label, r->gemm_gflops[i]);
  }
  if (r->peak_gflops > 0)
    printf("theoretical peak: %s = %.1f GFLOP/s\n", r->peak_how, r->peak_gflops);
  if (r->single_thread)
    printf("with LP_NUM_THREADS=0 (same run): dispatch %.2f us, with barrier %.2f us, GEMM %d^3 %.1f GFLOP/s\n",
           r->st_dispatch_us, r->st_dispatch_barrier_us, r->gemm_size[1], r->st_gemm1024);
}

/* The figures into the bench report (bench_report.h). */
static void report(const rt_caps *c, const results *r) {
  bench_report_device(c->name, c->driver_info, c->api_version);
  uint32_t n = (uint32_t)r->dispatches;
  bench_report_stat("empty submit + wait", "us", r->s_empty, 0);
  bench_report_add(&(bench_figure){"dispatch, independent", "us", r->s_dispatch, .counts = 1, .dispatches = n});
  bench_report_add(&(bench_figure){"dispatch, barrier before each", "us", r->s_barrier, .counts = 1, .dispatches = n,
                                   .barriers = n - 1});
  bench_report_stat("vkCmdCopyBuffer", "GB/s", r->s_copy, 0);
  bench_report_stat("copy shader, vec4", "GB/s", r->s_shader_copy, 0);
  for (int i = 0; i < r->gemm_count; i++) {
    char name[64];
    snprintf(name, sizeof name, "GEMM fp32 %d^3", r->gemm_size[i]);
    bench_report_stat(name, "GFLOP/s", r->s_gemm[i], 0);
  }
  if (r->single_thread) {
    char name[64];
    bench_report_stat("dispatch, independent (LP_NUM_THREADS=0)", "us", r->s_st_dispatch, 0);
    bench_report_stat("dispatch, barrier before each (LP_NUM_THREADS=0)", "us", r->s_st_barrier, 0);
    snprintf(name, sizeof name, "GEMM fp32 %d^3 (LP_NUM_THREADS=0)", r->gemm_size[1]);
    bench_report_stat(name, "GFLOP/s", r->s_st_gemm, 0);
  }
}

/* lavapipe reads LP_NUM_THREADS when an instance enumerates it: a second device made with
 * it set measures the single-threaded figures in the same run. */
static int bench_single_thread(const cli_options *o, results *r) {
  setenv("LP_NUM_THREADS", "0", 1);
  rt_device *dev;
  CHECK(rt_device_create(&(rt_device_desc){.device = o->device, .quiet = 1}, &dev));
  results st = {0};
  int fail = bench_dispatch(dev, o->quick ? 50 : 1000, &st) || bench_gemm(dev, r->gemm_size[1], &r->st_gemm1024, &r->s_st_gemm);
  r->st_dispatch_us = st.dispatch_us;
  r->st_dispatch_barrier_us = st.dispatch_barrier_us;
  r->s_st_dispatch = st.s_dispatch;
  r->s_st_barrier = st.s_barrier;
  r->single_thread = !fail;
  rt_device_destroy(dev);
  unsetenv("LP_NUM_THREADS");
  return fail;
}

int cmd_bench_runtime(const cli_options *o) {
  rt_device *dev;
  CHECK(rt_device_create(&(rt_device_desc){.device = o->device}, &dev));
  const rt_caps *c = rt_device_caps(dev);
  results r = {0};
  int fail = bench_dispatch(dev, o->quick ? 50 : 1000, &r) || bench_copy(dev, o->quick ? 1u << 20 : 64u << 20, &r);
  const int sizes[3] = {512, 1024, 2048};
  for (int i = 0; i < 3 && !fail; i++) {
    r.gemm_size[i] = o->quick ? 33 << i : sizes[i];
    fail = bench_gemm(dev, r.gemm_size[i], &r.gemm_gflops[i], &r.s_gemm[i]);
    r.gemm_count = i + 1;
  }
  if (c->type == RT_DEVICE_CPU)
    r.peak_gflops = cpu_peak_gflops_lavapipe(r.peak_how, sizeof r.peak_how);
  else
    snprintf(r.peak_how, sizeof r.peak_how, "not derivable from Vulkan for this device");
  int lavapipe = c->is_lavapipe && !getenv("LP_NUM_THREADS");
  rt_caps caps = *c;
  rt_device_destroy(dev);
  if (!fail && lavapipe)
    fail = bench_single_thread(o, &r);
  if (!fail) {
    report(&caps, &r);
    print_results(&caps, &r, o->json);
  }
  unsigned msgs = rt_validation_messages_total();
  if (msgs) {
    fprintf(stderr, "aps bench runtime: %u validation messages\n", msgs);
    return 1;
  }
  return fail;
}
