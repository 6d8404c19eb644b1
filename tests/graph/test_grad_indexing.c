/* Gradients of the indexing ops (pad, the pixel shuffles, gather: autodiff/vjp_indexing.c)
 * against finite differences on the CPU reference, then on the device (fd_check.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fd_check.h"
#include "graph_check.h"

rt_device *graph_tests_device(void);

TEST_CASE(grad_pad) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 5, 4)), small = gr_param(g, "small", GR_SHAPE(1, 2, 2, 3));
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_pad(g, x, (int[]){2, 1, 3, 1}, GR_PAD_REFLECT), "r1"));
  l = fd_join(g, l, fd_weighted(g, gr_pad(g, x, (int[]){1, 0, 2, 3}, GR_PAD_ZERO), "r2"));
  l = fd_join(g, l, fd_weighted(g, gr_pad(g, x, (int[]){0, 0, 1, 0}, GR_PAD_REFLECT), "r3"));
  /* Both borders fold onto the same rows (each pad = side - 1). */
  l = fd_join(g, l, fd_weighted(g, gr_pad(g, gr_unary_op(g, GR_TANH, small), (int[]){1, 1, 2, 2}, GR_PAD_REFLECT), "r4"));
  gr_tensor wrt[2] = {x, small};
  fd_check(g, l, 2, wrt, "pad (zero, reflect)", (fd_opts){0});
}

TEST_CASE(grad_pixel_shuffle) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 4, 6)), q = gr_param(g, "q", GR_SHAPE(1, 18, 2, 3));
  gr_tensor y = fd_weighted(g, gr_space_to_depth(g, x, 2), "r1");                          /* [2, 12, 2, 3] */
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_unary_op(g, GR_TANH, gr_depth_to_space(g, y, 2)), "r2"));
  l = fd_join(g, l, fd_weighted(g, gr_depth_to_space(g, q, 3), "r3"));             /* [1, 2, 6, 9] */
  gr_tensor wrt[2] = {x, q};
  fd_check(g, l, 2, wrt, "space_to_depth, depth_to_space", (fd_opts){0});
}

TEST_CASE(grad_gather) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 5, 4));
  static const int32_t perm[5] = {3, 0, 4, 1, 2}, rep[6] = {0, 3, 3, 1, 0, 3};
  static const int32_t many[12] = {0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1}; /* 8 repeats: the one-hot matmul */
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_gather(g, x, 1, perm, 5), "r1"));       /* a permutation */
  l = fd_join(g, l, fd_weighted(g, gr_gather(g, x, 2, rep, 6), "r2"));     /* repeats, index 2 unused */
  l = fd_join(g, l, fd_weighted(g, gr_gather(g, gr_unary_op(g, GR_TANH, x), 0, many, 12), "r3"));
  l = fd_join(g, l, fd_weighted(g, gr_gather(g, x, 2, (int32_t[]){2}, 1), "r4")); /* one column */
  fd_check(g, l, 1, &x, "gather (permutation, repeats, one-hot)", (fd_opts){0});
}
