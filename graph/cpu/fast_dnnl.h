/* The CPU device's oneDNN bridge (fast_dnnl.c, Debian's libdnnl-dev): conv2d, the conv2d
 * weight gradient, matmul and attention. */
#ifndef APS_GRAPH_FAST_DNNL_H
#define APS_GRAPH_FAST_DNNL_H
#include "graph_internal.h"

typedef struct gr_dnnl gr_dnnl;
/* Creates a oneDNN primitive for every conv2d and conv2d_wgrad node that oneDNN can run;
 * bf16_frozen as gr_cpu_desc's. */
aps_status gr_dnnl_create(const gr_graph *g, int bf16_frozen, gr_dnnl **out);
void gr_dnnl_destroy(gr_dnnl *d);
/* Per node, the tensor a conv reads as its input 0 where it folds the zero pads before it
 * (0 elsewhere), or NULL when none does. */
const uint32_t *gr_dnnl_read0(const gr_dnnl *d);
/* How many convs read bf16 (bf16_frozen). */
int gr_dnnl_bf16_convs(const gr_dnnl *d);
/* Runs node `node` when oneDNN takes it (*done = 1), else leaves it to the caller. */
aps_status gr_dnnl_run(gr_dnnl *d, uint32_t node, const float *const *in, float *out, int *done);
#endif
