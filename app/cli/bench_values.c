#include "bench_values.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"


const gr_unet_config *bench_unet_config(void) {
  static gr_unet_config c;
  c = gr_unet_config_default(1, 32);
  return &c;
}

aps_status bench_set_plan(void *plan, const char *name, const float *v, int64_t n) {
  return gr_plan_set(plan, name, v, n);
}
aps_status bench_set_cpu(void *cpu, const char *name, const float *v, int64_t n) { return gr_cpu_set(cpu, name, v, n); }

aps_status bench_fill(const gr_graph *g, void *target, bench_set_fn set) {
  uint32_t seed = 12345;
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t i = 0;; i++) {
      gr_tensor t = pass ? gr_param_at(g, i) : gr_input_at(g, i);
      if (!t)
        break;
      if (gr_tensor_is_state(g, t))
        continue;
      gr_shape s = gr_tensor_shape(g, t);
      int64_t n = gr_shape_count(s);
      float *v = malloc((size_t)n * sizeof *v);
      if (!v)
        return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
      float scale = pass && s.rank >= 2 ? 1.0f / sqrtf((float)(n / s.d[0])) : 1.0f;
      int times = !pass && !strcmp(gr_tensor_name(g, t), "t");
      for (int64_t k = 0; k < n; k++) {
        seed = seed * 1664525u + 1013904223u;
        float u = (float)(seed >> 8) / 16777216.0f; /* [0, 1) */
        v[k] = times ? u : scale * (2.0f * u - 1.0f);
      }
      aps_status st = set(target, gr_tensor_name(g, t), v, n);
      free(v);
      APS_TRY(st);
    }
  return APS_OK;
}

static aps_status set_runner(void *r, const char *name, const float *v, int64_t n) { return aps_runner_set(r, name, v, n); }

aps_status bench_time_runner(const gr_graph *g, const char *device_req, int reps, char *device, size_t size,
                             bench_stat *st) {
  if (reps < 1 || reps > 16)
    return aps_fail(APS_ERR_INVALID_ARG, "bench_time_runner: %d repeats (1 to 16)", reps);
  aps_runner *r = NULL;
  aps_status s = aps_runner_create(g, &(aps_runner_desc){.device = device_req, .vulkan = 1, .quiet = 1}, &r);
  if (s == APS_OK) {
    snprintf(device, size, "%s", aps_runner_device_name(r));
    s = bench_fill(g, r, set_runner);
  }
  double t[16];
  for (int i = -1; s == APS_OK && i < reps; i++) { /* one warm-up run */
    double t0 = aps_now_ms();
    s = aps_runner_run(r);
    if (i >= 0)
      t[i] = aps_now_ms() - t0;
  }
  if (s == APS_OK)
    *st = bench_stat_of(t, reps);
  aps_runner_destroy(r);
  return s;
}
