/* The CPU device's fast paths, used by cpu.c when gr_cpu_desc.fast is set: conv2d, matmul
 * and attention through oneDNN (cpu_dnnl.c), the other ops as OpenMP loops (cpu_fast.c). The
 * reference kernels of cpu_ops.c stay the plain, single-threaded oracle. */
#ifndef APS_CPU_DNNL_H
#define APS_CPU_DNNL_H
#include "graph_internal.h"

typedef struct gr_dnnl gr_dnnl;
/* Creates a oneDNN primitive for every conv2d and conv2d_wgrad node that oneDNN can run. */
aps_status gr_dnnl_create(const gr_graph *g, gr_dnnl **out);
void gr_dnnl_destroy(gr_dnnl *d);
/* Per node, the tensor a conv reads as its input 0 where it folds the zero pads before it
 * (0 elsewhere), or NULL when none does. */
const uint32_t *gr_dnnl_read0(const gr_dnnl *d);
/* Runs node `node` when oneDNN takes it (*done = 1), else leaves it to the caller. */
aps_status gr_dnnl_run(gr_dnnl *d, uint32_t node, const float *const *in, float *out, int *done);

/* cpu_fast.c: the parallel kernel of an op, or NULL where the reference serves. */
typedef void (*gr_cpu_fn)(const gr_graph *g, const gr_node *n, const float *const *in, float *out);
gr_cpu_fn gr_cpu_fast_fn(gr_op op);
/* conv_wgrad.c: the sum of gr_conv2d_wgrad's partial sums, in parallel (its first stage runs
 * in oneDNN). */
void gr_fast_conv2d_wgrad(const gr_graph *g, const gr_node *n, const float *const *in, float *out);
/* Softmax of one row of cols values (y may be x), for attention. */
void gr_fast_softmax_row(const float *x, float *y, int64_t cols);
#endif
