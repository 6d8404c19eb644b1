/* Differential testing of graphs: the same graph with the same random inputs run by the CPU
 * reference and by Vulkan plans (fused and unfused), outputs compared elementwise. */
#ifndef APS_GRAPH_CHECK_H
#define APS_GRAPH_CHECK_H
#include "../test.h"
#include "graph.h"

typedef struct check_opts {
  float lo, hi;      /* inputs and parameters drawn uniformly from [lo, hi); default [-1, 1) */
  float atol, rtol;  /* |vk - cpu| <= atol + rtol * |cpu|; defaults 1e-5, 1e-4 */
  int fused_only;    /* skip the unfused plan */
  int fan_in_scale;  /* parameters of rank >= 2 scaled by 1/sqrt(fan-in), as a network is initialised */
  int fold_norms;    /* the fused plan folds GroupNorms into convs (gr_plan_desc.fold_norms) */
  int f16;           /* plans store intermediates as halves (gr_plan_desc.f16_storage); inputs
                        and parameters are rounded to half first, so that the reference and the
                        device start from the same values */
  gr_plan_stats fused, unfused; /* filled in */
  double worst;                 /* filled in: the largest error / tolerance met */
} check_opts;

/* Returns 0 when every output of every plan matched the reference (failures are CHECKed). */
int check_graph(rt_device *dev, gr_graph *g, const char *what, check_opts *o);
/* check_graph, then destroys g. */
void check_graph_free(rt_device *dev, gr_graph *g, const char *what, check_opts o);
/* Output `name` of a plan run with input `in` set (in NULL: none); malloc'd, or NULL after a
 * failed CHECK. */
float *plan_output(gr_plan *p, const char *in, const float *v, int64_t nv, const char *name, int64_t n);
void fill_uniform(float *v, int64_t n, float lo, float hi, uint32_t seed);
/* x rounded to the nearest IEEE half (ties to even), as a float; past the range, inf. */
float half_round(float x);

/* The conv2d cases every device is tested on: returns a graph (output "y") and a
 * description of case i, or NULL past the last case. */
gr_graph *conv_case(size_t i, char *what, size_t what_size);
/* The same with input, weights and bias passed through an identity step (scale 1, shift 0)
 * and the output through another, so that with fp16 storage the conv reads and writes halves. */
gr_graph *conv_case_f16(size_t i, char *what, size_t what_size);
/* Whether the device has `buffers` storage buffers per stage: fusions whose kernels need more
 * are not made (graph/passes/passes.h: binary epilogue steps need 8, the conv fusions with
 * extra tensors 16), so fusion counts depend on it (APS_LIMITS=vulkan-min has 4). */
static inline int check_has_buffers(rt_device *dev, uint32_t buffers) {
  return rt_device_caps(dev)->max_storage_buffers >= buffers;
}
#endif
