/* Values for benchmarks: every input and parameter of a graph, uniform in [-1, 1),
 * parameters of rank >= 2 scaled by 1/sqrt(fan-in) as at initialisation, inputs named "t"
 * (diffusion times) in [0, 1). States keep their zeros. */
#ifndef APS_BENCH_VALUES_H
#define APS_BENCH_VALUES_H
#include <stddef.h>

#include "bench_util.h"
#include "graph.h"
#include "layers.h"

/* The U-Net every benchmark measures: the project's default (gr_unet_config_default) on
 * 32x32x1 images (≈ 1.6 M parameters). */
const gr_unet_config *bench_unet_config(void);

typedef aps_status (*bench_set_fn)(void *target, const char *name, const float *v, int64_t n);
aps_status bench_set_plan(void *plan, const char *name, const float *v, int64_t n);
aps_status bench_set_cpu(void *cpu, const char *name, const float *v, int64_t n);
aps_status bench_fill(const gr_graph *g, void *target, bench_set_fn set);
/* g on a runner (runner.h; device_req NULL: the best Vulkan device) filled by bench_fill:
 * one warm-up run, then reps (1 to 16) timed runs into *st; the device's name into device. */
aps_status bench_time_runner(const gr_graph *g, const char *device_req, int reps, char *device, size_t size,
                             bench_stat *st);
#endif
