/* The CPU reference kernels, one per op (gr_cpu_fn; the op table names them): plain loops,
 * the oracle of every test. */
#ifndef APS_GRAPH_REFERENCE_OPS_H
#define APS_GRAPH_REFERENCE_OPS_H
#include "graph_internal.h"

#define GR_CPU_FN(name) void gr_cpu_##name(const gr_graph *g, const gr_node *n, const float *const *in, float *out)
/* reference_ops.c */
GR_CPU_FN(unary);
GR_CPU_FN(binary);
GR_CPU_FN(where);
GR_CPU_FN(reduce);
GR_CPU_FN(matmul);
GR_CPU_FN(group_norm);
GR_CPU_FN(softmax);
GR_CPU_FN(reshape);
GR_CPU_FN(permute);
GR_CPU_FN(concat);
GR_CPU_FN(slice);
GR_CPU_FN(flip);
GR_CPU_FN(upsample);
GR_CPU_FN(avg_pool);
GR_CPU_FN(time_embed);
GR_CPU_FN(attention);
GR_CPU_FN(assign);
/* reference_conv.c */
GR_CPU_FN(conv2d);
GR_CPU_FN(conv2d_wgrad);
/* reference_indexing.c */
GR_CPU_FN(pad);
GR_CPU_FN(space_to_depth);
GR_CPU_FN(depth_to_space);
GR_CPU_FN(gather);
/* reference_random.c */
GR_CPU_FN(random);
/* reference_linalg.c */
GR_CPU_FN(inverse);
GR_CPU_FN(lu);
GR_CPU_FN(logabsdet);

/* What a node does besides its output, once it has run: an assignment writes its target.
 * v: every tensor's values. */
void gr_cpu_effects(const gr_graph *g, const gr_node *n, float *const *v);

/* Index of a padded coordinate (reflect: PyTorch's, without repeating the edge), or -1 for
 * a zero pad. */
int64_t gr_cpu_pad_index(int64_t i, int64_t size, int reflect);

/* The pieces of gr_random (graph.h), for the tests: one Philox4x32-10 block, the seed
 * read from its tensor, and the Box-Muller pair of two words. shaders/random.comp mirrors them. */
void gr_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
uint32_t gr_random_seed(const float *seed, int64_t count);
void gr_box_muller(uint32_t w0, uint32_t w1, float out[2]);
#endif
