/* One compiled graph on whichever device runs it: a Vulkan plan or the CPU device.
 * The method's commands build a graph, make a runner, and then only set, run and get by
 * name, so every trainer and sampler works on both.
 *
 * Device choice is graph/'s policy (graph/device.h): `device` NULL or "auto" takes a GPU
 * when Vulkan has one and otherwise the CPU device; "cpu" forces the CPU device; anything
 * else (an index or part of a name, as APS_DEVICE) picks that Vulkan device. The choice is
 * printed unless quiet. */
#ifndef APS_RUNNER_H
#define APS_RUNNER_H
#include "device.h"
#include "graph.h"
#include "safetensors.h"

typedef struct aps_runner aps_runner;

typedef struct aps_runner_desc {
  const char *device;
  int vulkan;  /* "auto" takes the best Vulkan device even if it is a CPU driver (benchmarks) */
  int quiet;
  int f16_storage; /* Vulkan: intermediates stored as halves (gr_plan_desc.f16_storage); the
                      CPU device refuses it (it computes and stores fp32) */
  int cpu_bf16;    /* CPU device: the convs of a frozen network (weights no assignment updates)
                      read bf16 where the CPU has native bf16 (gr_cpu_desc.bf16_frozen); Vulkan
                      ignores it */
} aps_runner_desc;

aps_status aps_runner_create(const gr_graph *g, const aps_runner_desc *desc, aps_runner **out);
void aps_runner_destroy(aps_runner *r);
const char *aps_runner_device_name(const aps_runner *r);
int aps_runner_is_cpu(const aps_runner *r);
aps_status aps_runner_set(aps_runner *r, const char *name, const float *data, int64_t count);
aps_status aps_runner_run(aps_runner *r);
/* Whether the graph has an input, parameter, state or output of that name. */
int aps_runner_has(const aps_runner *r, const char *name);
/* An output, parameter or state by name. */
aps_status aps_runner_get(aps_runner *r, const char *name, float *data, int64_t count);
/* Every parameter (states included) from st, all checked before any is set. */
aps_status aps_runner_load(aps_runner *r, const gr_st *st);

/* Which tensors a save writes. */
typedef enum aps_save_what {
  APS_SAVE_ALL = 0,  /* every parameter and state (a training checkpoint) */
  APS_SAVE_PARAMS,   /* trainable parameters only, under their names */
  APS_SAVE_EMA,      /* "ema.<p>" written as "<p>": the averaged weights, for sampling */
} aps_save_what;
/* Writes a safetensors file (temporary file, fsync, rename: an existing file survives any
 * failure). Values are checked finite first; a NaN/Inf names its tensor and nothing is
 * written. */
aps_status aps_runner_save(aps_runner *r, const char *path, aps_save_what what, const gr_st_meta *meta,
                           uint32_t n_meta);
#endif
