/* Gradients of the non-smooth ops (relu, leaky_relu, abs, clamp, max/min, where, reduce
 * max: autodiff/vjp_elementwise.c), each against finite differences on the CPU reference and
 * then the whole forward+backward graph on the device against the CPU.
 *
 * The checker is fd_check.h's (Richardson-extrapolated central differences, the loss summed
 * in double, tolerance 1e-4 + 1e-4 |fd| unless a case says otherwise). The inputs are
 * kept away from every kink by at least 0.0375 > h = 0.01 (values on a lattice of 0.25-wide
 * cells, a tensor named "b..." in the other half of each cell than the others, so
 * |a - b| >= 0.075 too), and distinct where a maximum is taken. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fd_check.h"
#include "graph_check.h"

rt_device *graph_tests_device(void);

TEST_CASE(grad_piecewise_unary) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 7)), p = gr_param(g, "p", GR_SHAPE(2, 3, 5));
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_unary_op(g, GR_RELU, x), "r1"));
  l = fd_join(g, l, fd_weighted(g, gr_leaky_relu(g, x, 0.2f), "r2"));
  l = fd_join(g, l, fd_weighted(g, gr_unary_op(g, GR_ABS, x), "r3"));
  l = fd_join(g, l, fd_weighted(g, gr_clamp(g, x, -0.5f, 0.5f), "r4"));
  /* Chained on a parameter, a negative leaky slope, and products of kinked functions. */
  gr_tensor q = gr_clamp(g, gr_unary_op(g, GR_RELU, p), 0.0f, 0.5f);
  q = gr_add(g, q, gr_leaky_relu(g, gr_scale_shift(g, p, 1.0f, 0.0f), -0.3f));
  l = fd_join(g, l, fd_weighted(g, gr_mul(g, q, gr_unary_op(g, GR_ABS, p)), "r5"));
  gr_tensor wrt[2] = {x, p};
  fd_check(g, l, 2, wrt, "relu, leaky_relu, abs, clamp", (fd_opts){.fill = fd_fill_away});
}

TEST_CASE(grad_max_min) {
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(3, 7)), b = gr_input(g, "b", GR_SHAPE(7));
  gr_tensor a2 = gr_param(g, "a2", GR_SHAPE(2, 1, 4)), b2 = gr_param(g, "b2", GR_SHAPE(2, 3, 1));
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_binary_op(g, GR_MAX, a, b), "r1"));
  l = fd_join(g, l, fd_weighted(g, gr_binary_op(g, GR_MIN, a, b), "r2"));
  l = fd_join(g, l, fd_weighted(g, gr_binary_op(g, GR_MIN, b, a), "r3"));
  /* Both operands broadcast; max(x, x) is a tie everywhere (all to the first: 1 in all). */
  l = fd_join(g, l, fd_weighted(g, gr_binary_op(g, GR_MAX, b2, a2), "r4"));
  l = fd_join(g, l, fd_weighted(g, gr_binary_op(g, GR_MAX, a2, a2), "r5"));
  gr_tensor wrt[4] = {a, b, a2, b2};
  fd_check(g, l, 4, wrt, "max, min", (fd_opts){.fill = fd_fill_away});
}

TEST_CASE(grad_where) {
  gr_graph *g = gr_graph_create();
  gr_tensor mask = gr_input(g, "mask", GR_SHAPE(3, 1)), a = gr_input(g, "a", GR_SHAPE(3, 6));
  gr_tensor b = gr_param(g, "b", GR_SHAPE(6)), mask2 = gr_input(g, "mask2", GR_SHAPE(3, 6));
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_where(g, mask, a, b), "r1"));
  l = fd_join(g, l, fd_weighted(g, gr_where(g, mask2, gr_unary_op(g, GR_TANH, a), gr_mul(g, b, b)), "r2"));
  gr_tensor wrt[2] = {a, b}, grads[2];
  /* The mask gets no gradient: its handle is 0. */
  gr_graph *g2 = gr_graph_create();
  gr_tensor m2 = gr_input(g2, "mask", GR_SHAPE(4)), a3 = gr_input(g2, "a", GR_SHAPE(4));
  aps_status s = gr_grad(g2, gr_where(g2, m2, a3, gr_const_scalar(g2, 1.0f)), 2, (gr_tensor[]){m2, a3}, grads);
  CHECK(s == APS_OK && grads[0] == 0 && grads[1] != 0, "where: nothing to the mask (%s)", aps_last_error());
  gr_graph_destroy(g2);
  fd_check(g, l, 2, wrt, "where", (fd_opts){.fill = fd_fill_away});
}

TEST_CASE(grad_reduce_max) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 5));
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_reduce_op(g, GR_RMAX, x, 4u), "r1"));
  l = fd_join(g, l, fd_weighted(g, gr_reduce_op(g, GR_RMAX, x, 3u), "r2"));
  l = fd_join(g, l, gr_reduce_op(g, GR_RMAX, gr_unary_op(g, GR_TANH, x), 7u));
  fd_check(g, l, 1, &x, "reduce max", (fd_opts){.fill = fd_fill_distinct});

  /* Ties split the gradient evenly, on the CPU and the device alike. */
  g = gr_graph_create();
  x = gr_input(g, "x", GR_SHAPE(3, 4));
  gr_tensor grad;
  REQUIRE_OK(gr_grad(g, gr_reduce_op(g, GR_RMAX, x, 2u), 1, &x, &grad));
  gr_output(g, grad, "grad");
  static const float in[12] = {1, 3, 3, 2, 5, 5, 5, 0, -1, -2, -3, -4};
  static const float want[12] = {0, 0.5f, 0.5f, 0, 1 / 3.0f, 1 / 3.0f, 1 / 3.0f, 0, 1, 0, 0, 0};
  gr_cpu *c = NULL;
  gr_plan *p = NULL;
  REQUIRE_OK(gr_cpu_create(g, &c));
  REQUIRE_OK(gr_cpu_set(c, "x", in, 12));
  REQUIRE_OK(gr_cpu_run(c));
  REQUIRE_OK(gr_plan_compile(g, graph_tests_device(), NULL, &p));
  float got[12];
  REQUIRE_OK(gr_plan_set(p, "x", in, 12));
  REQUIRE_OK(gr_plan_run(p));
  REQUIRE_OK(gr_plan_get(p, "grad", got, 12));
  const float *ref = gr_cpu_values(c, grad);
  for (int i = 0; i < 12; i++)
    CHECK(fabsf(ref[i] - want[i]) < 1e-6f && fabsf(got[i] - want[i]) < 1e-6f, "tie [%d]: CPU %g, device %g, want %g",
          i, ref[i], got[i], want[i]);
  gr_plan_destroy(p);
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}
