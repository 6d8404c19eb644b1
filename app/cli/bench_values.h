/* Values for benchmarks: every input and parameter of a graph, uniform in [-1, 1),
 * parameters of rank >= 2 scaled by 1/sqrt(fan-in) as at initialisation, inputs named "t"
 * (diffusion times) in [0, 1). States keep their zeros. */
#ifndef APS_BENCH_VALUES_H
#define APS_BENCH_VALUES_H
#include "graph.h"
#include "layers.h"

/* The U-Net every benchmark measures: the project's default (gr_unet_config_default) on
 * 32x32x1 images (≈ 1.6 M parameters). */
const gr_unet_config *bench_unet_config(void);

typedef aps_status (*bench_set_fn)(void *target, const char *name, const float *v, int64_t n);
aps_status bench_set_plan(void *plan, const char *name, const float *v, int64_t n);
aps_status bench_set_cpu(void *cpu, const char *name, const float *v, int64_t n);
aps_status bench_fill(const gr_graph *g, void *target, bench_set_fn set);
#endif
