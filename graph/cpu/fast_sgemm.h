/* The CPU device's matmul and attention through oneDNN's sgemm (fast_sgemm.c). */
#ifndef APS_GRAPH_FAST_SGEMM_H
#define APS_GRAPH_FAST_SGEMM_H
#include "graph_internal.h"

/* gr_cpu_matmul's batch loop and broadcast rules, each matrix by one sgemm. */
aps_status gr_sgemm_matmul(const gr_graph *g, const gr_node *n, const float *const *in, float *out);
/* gr_attention over [N, 3C, L] -> [N, C, L], images one per thread. */
aps_status gr_sgemm_attention(const gr_graph *g, const gr_node *n, const float *const *in, float *out);
/* A plain 1x1 conv2d (stride 1, no padding, one group) as one sgemm per image. */
aps_status gr_sgemm_conv1x1(const gr_graph *g, const gr_node *n, const float *const *in, float *out);
#endif
