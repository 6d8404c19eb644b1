#include "runner.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aps_log.h"

struct aps_runner {
  const gr_graph *g;
  gr_device *dev;
  gr_plan *plan; /* on a Vulkan device */
  gr_cpu *cpu;   /* on the CPU device */
};

aps_status aps_runner_create(const gr_graph *g, const aps_runner_desc *desc, aps_runner **out) {
  aps_runner_desc d = desc ? *desc : (aps_runner_desc){0};
  *out = NULL;
  APS_TRY(gr_graph_status(g));
  aps_runner *r = calloc(1, sizeof *r);
  if (!r)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  r->g = g;
  aps_status s = gr_device_open(&(gr_device_desc){.request = d.device, .vulkan = d.vulkan, .quiet = 1}, &r->dev);
  rt_device *vk = s == APS_OK ? gr_device_vulkan(r->dev) : NULL;
  /* A budget before building: weights that cannot fit the device are refused before the
   * plan allocates anything (with the weights' gradients and Adam moments a training
   * graph holds them several times over, so this is a floor, not the peak). */
  gr_stats st;
  gr_graph_get_stats(g, &st);
  uint64_t need = (uint64_t)st.param_floats * sizeof(float), have = s == APS_OK ? gr_device_memory_bytes(r->dev) : 0;
  if (s == APS_OK && have && need > have / 2)
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "the graph's %u parameters take %.2f GiB, over half of the %.2f GiB of %s",
                 st.params, need / 1073741824.0, have / 1073741824.0, gr_device_name(r->dev));
  if (s == APS_OK && !vk && d.f16_storage)
    s = aps_fail(APS_ERR_UNSUPPORTED, "fp16 storage is an option of Vulkan plans; the CPU device%s stores fp32 "
                 "(choose a Vulkan device with --device)", gr_device_automatic(r->dev) ? ", chosen as no GPU was found," : "");
  else if (s == APS_OK && !vk)
    s = gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1, .bf16_frozen = d.cpu_bf16}, &r->cpu);
  else if (s == APS_OK)
    s = gr_plan_compile(g, vk, &(gr_plan_desc){.f16_storage = d.f16_storage}, &r->plan);
  if (s != APS_OK) {
    aps_runner_destroy(r);
    return s;
  }
  if (!d.quiet)
    aps_info("running on %s", gr_device_name(r->dev));
  *out = r;
  return APS_OK;
}

void aps_runner_destroy(aps_runner *r) {
  if (!r)
    return;
  gr_plan_destroy(r->plan);
  gr_cpu_destroy(r->cpu);
  gr_device_close(r->dev);
  free(r);
}

const char *aps_runner_device_name(const aps_runner *r) { return gr_device_name(r->dev); }
int aps_runner_is_cpu(const aps_runner *r) { return r->cpu != NULL; }

aps_status aps_runner_set(aps_runner *r, const char *name, const float *data, int64_t count) {
  return r->cpu ? gr_cpu_set(r->cpu, name, data, count) : gr_plan_set(r->plan, name, data, count);
}
aps_status aps_runner_run(aps_runner *r) { return r->cpu ? gr_cpu_run(r->cpu) : gr_plan_run(r->plan); }
aps_status aps_runner_load(aps_runner *r, const gr_st *st) {
  return r->cpu ? gr_cpu_load(r->cpu, st) : gr_plan_load(r->plan, st);
}

int aps_runner_has(const aps_runner *r, const char *name) { return gr_find(r->g, name) != 0; }

aps_status aps_runner_get(aps_runner *r, const char *name, float *data, int64_t count) {
  if (!r->cpu)
    return gr_plan_get(r->plan, name, data, count);
  gr_tensor t = gr_find(r->g, name);
  if (!t)
    return aps_fail(APS_ERR_INVALID_ARG, "no tensor named '%s'", name);
  int64_t have = gr_shape_count(gr_tensor_shape(r->g, t));
  if (have != count)
    return aps_fail(APS_ERR_INVALID_ARG, "'%s' holds %" PRId64 " values, not %" PRId64, name, have, count);
  memcpy(data, gr_cpu_values(r->cpu, t), (size_t)count * sizeof *data);
  return APS_OK;
}

/* The tensors a save writes: parameter t under `*saved` name, or skip it (0). */
static int selected(const gr_graph *g, gr_tensor t, aps_save_what what, const char **source, const char **saved) {
  const char *name = gr_tensor_name(g, t);
  *source = *saved = name;
  if (what == APS_SAVE_ALL)
    return 1;
  if (gr_tensor_is_state(g, t))
    return 0;
  if (what == APS_SAVE_EMA) {
    static _Thread_local char ema[512];
    snprintf(ema, sizeof ema, "ema.%s", name);
    if (!gr_find(g, ema))
      return 0; /* frozen, or not trained: no average kept */
    *source = ema;
  }
  return 1;
}

aps_status aps_runner_save(aps_runner *r, const char *path, aps_save_what what, const gr_st_meta *meta,
                           uint32_t n_meta) {
  uint32_t n = 0;
  while (gr_param_at(r->g, n))
    n++;
  gr_st_tensor *ts = calloc(n ? n : 1, sizeof *ts);
  char **names = calloc(n ? n : 1, sizeof *names);
  aps_status s = ts && names ? APS_OK : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  uint32_t m = 0;
  for (uint32_t i = 0; s == APS_OK && i < n; i++) {
    gr_tensor t = gr_param_at(r->g, i);
    const char *source, *saved;
    if (!selected(r->g, t, what, &source, &saved))
      continue;
    gr_shape sh = gr_tensor_shape(r->g, t);
    int64_t count = gr_shape_count(sh);
    float *v = malloc((size_t)count * sizeof *v);
    names[m] = strdup(saved);
    if (!v || !names[m]) {
      free(v);
      free(names[m]);
      s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
      break;
    }
    ts[m] = (gr_st_tensor){.name = names[m], .rank = sh.rank, .data = v};
    memcpy(ts[m].dims, sh.d, sizeof ts[m].dims);
    m++;
    s = aps_runner_get(r, source, v, count);
    for (int64_t k = 0; s == APS_OK && k < count; k++)
      if (!isfinite(v[k]))
        s = aps_fail(APS_ERR_INVALID_ARG, "%s: not saved: '%s' holds %s at element %" PRId64, path, source,
                     isnan(v[k]) ? "NaN" : "Inf", k);
  }
  if (s == APS_OK && what == APS_SAVE_EMA && m == 0)
    s = aps_fail(APS_ERR_INVALID_ARG, "%s: the graph keeps no EMA weights to save", path);
  if (s == APS_OK)
    s = gr_st_write(path, ts, m, meta, n_meta);
  for (uint32_t i = 0; i < m; i++) {
    free((void *)ts[i].data);
    free(names[i]);
  }
  free(ts);
  free(names);
  return s;
}
