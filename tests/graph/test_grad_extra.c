/* Gradients of the ops autodiff_extra.c differentiates (relu, leaky_relu, abs, clamp,
 * max/min, where, reduce max, bilinear upsampling, pad, the pixel shuffles, gather, random
 * numbers, inverse, logabsdet), each against finite differences on the CPU reference and then
 * the whole forward+backward graph on the device against the CPU.
 *
 * The checker is fd_check.h's (Richardson-extrapolated central differences, the loss summed
 * in double, tolerance 1e-4 + 1e-4 |fd| unless a case says otherwise). The inputs are
 * kept away from every kink by at least 0.0375 > h = 0.01 (values on a lattice of 0.25-wide
 * cells, a tensor named "b..." in the other half of each cell than the others, so
 * |a - b| >= 0.075 too), distinct where a maximum is taken, and the matrices of the linear
 * algebra well conditioned. */
#include <math.h>
#include <stdlib.h>

#include "fd_check.h"
#include "graph_check.h"

rt_device *graph_tests_device(void);

static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }
static float unit(uint32_t *s) { return (float)(lcg(s) >> 8) / 16777216.0f; }

/* In [-1, 1), at least 0.0375 from every multiple of 0.25 (the kinks the tests use: 0 and
 * ±0.5), and tensors named "b..." in the other half of each cell, so that a - b is at least
 * 0.075 from 0. "mask..." tensors get 0 or 1, "seed..." an integer. */
static void fill_away(const char *name, float *v, int64_t n, uint32_t seed) {
  float phase = name[0] == 'b' ? 0.75f : 0.25f;
  for (int64_t i = 0; i < n; i++) {
    if (!strncmp(name, "mask", 4)) {
      v[i] = (float)(lcg(&seed) >> 31);
      continue;
    }
    if (!strncmp(name, "seed", 4)) {
      v[i] = (float)(1000 + (lcg(&seed) >> 20));
      continue;
    }
    int cell = (int)(lcg(&seed) >> 29); /* 0..7 */
    v[i] = -1.0f + 0.25f * ((float)cell + phase + 0.2f * (unit(&seed) - 0.5f));
  }
}

/* A shuffle of n evenly spaced values in [-1, 1): every maximum unique, with a gap of 2/n. */
static void fill_distinct(const char *name, float *v, int64_t n, uint32_t seed) {
  (void)name;
  for (int64_t i = 0; i < n; i++)
    v[i] = -1.0f + 2.0f * ((float)i + 0.5f) / (float)n;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)(lcg(&seed) % (uint32_t)(i + 1));
    float t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
}

/* Square "w" [c, c]: 0.4·U(-1, 1) ± 2·P with P the cyclic shift (pivoting needed; the sign
 * chosen so that det < 0; condition number a few); anything else 0.4·U(-1, 1). */
static void fill_matrix(const char *name, float *v, int64_t n, uint32_t seed) {
  fill_uniform(v, n, -0.4f, 0.4f, seed);
  if (name[0] != 'w')
    return;
  int c = (int)lround(sqrt((double)n));
  for (int i = 0; i < c; i++)
    v[i * c + (i + 1) % c] += c % 2 ? -2.0f : 2.0f; /* det ≈ (±2)^c · (-1)^(c-1) < 0 */
}

static gr_tensor weighted(gr_graph *g, gr_tensor y, const char *rname) {
  return gr_mul(g, y, gr_input(g, rname, gr_tensor_shape(g, y)));
}

/* The loss: every term flattened and concatenated (no sum in fp32 inside the graph; the
 * checker sums in double). */
static gr_tensor join(gr_graph *g, gr_tensor loss, gr_tensor term) {
  gr_tensor flat = gr_reshape(g, term, GR_SHAPE(gr_shape_count(gr_tensor_shape(g, term))));
  return loss ? gr_concat(g, loss, flat, 0) : flat;
}

TEST_CASE(grad_piecewise_unary) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 7)), p = gr_param(g, "p", GR_SHAPE(2, 3, 5));
  gr_tensor l = join(g, 0, weighted(g, gr_unary_op(g, GR_RELU, x), "r1"));
  l = join(g, l, weighted(g, gr_leaky_relu(g, x, 0.2f), "r2"));
  l = join(g, l, weighted(g, gr_unary_op(g, GR_ABS, x), "r3"));
  l = join(g, l, weighted(g, gr_clamp(g, x, -0.5f, 0.5f), "r4"));
  /* Chained on a parameter, a negative leaky slope, and products of kinked functions. */
  gr_tensor q = gr_clamp(g, gr_unary_op(g, GR_RELU, p), 0.0f, 0.5f);
  q = gr_add(g, q, gr_leaky_relu(g, gr_scale_shift(g, p, 1.0f, 0.0f), -0.3f));
  l = join(g, l, weighted(g, gr_mul(g, q, gr_unary_op(g, GR_ABS, p)), "r5"));
  gr_tensor wrt[2] = {x, p};
  fd_check(g, l, 2, wrt, "relu, leaky_relu, abs, clamp", (fd_opts){.fill = fill_away});
}

TEST_CASE(grad_max_min) {
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(3, 7)), b = gr_input(g, "b", GR_SHAPE(7));
  gr_tensor a2 = gr_param(g, "a2", GR_SHAPE(2, 1, 4)), b2 = gr_param(g, "b2", GR_SHAPE(2, 3, 1));
  gr_tensor l = join(g, 0, weighted(g, gr_binary_op(g, GR_MAX, a, b), "r1"));
  l = join(g, l, weighted(g, gr_binary_op(g, GR_MIN, a, b), "r2"));
  l = join(g, l, weighted(g, gr_binary_op(g, GR_MIN, b, a), "r3"));
  /* Both operands broadcast; max(x, x) is a tie everywhere (all to the first: 1 in all). */
  l = join(g, l, weighted(g, gr_binary_op(g, GR_MAX, b2, a2), "r4"));
  l = join(g, l, weighted(g, gr_binary_op(g, GR_MAX, a2, a2), "r5"));
  gr_tensor wrt[4] = {a, b, a2, b2};
  fd_check(g, l, 4, wrt, "max, min", (fd_opts){.fill = fill_away});
}

TEST_CASE(grad_where) {
  gr_graph *g = gr_graph_create();
  gr_tensor mask = gr_input(g, "mask", GR_SHAPE(3, 1)), a = gr_input(g, "a", GR_SHAPE(3, 6));
  gr_tensor b = gr_param(g, "b", GR_SHAPE(6)), mask2 = gr_input(g, "mask2", GR_SHAPE(3, 6));
  gr_tensor l = join(g, 0, weighted(g, gr_where(g, mask, a, b), "r1"));
  l = join(g, l, weighted(g, gr_where(g, mask2, gr_unary_op(g, GR_TANH, a), gr_mul(g, b, b)), "r2"));
  gr_tensor wrt[2] = {a, b}, grads[2];
  /* The mask gets no gradient: its handle is 0. */
  gr_graph *g2 = gr_graph_create();
  gr_tensor m2 = gr_input(g2, "mask", GR_SHAPE(4)), a3 = gr_input(g2, "a", GR_SHAPE(4));
  aps_status s = gr_grad(g2, gr_where(g2, m2, a3, gr_const_scalar(g2, 1.0f)), 2, (gr_tensor[]){m2, a3}, grads);
  CHECK(s == APS_OK && grads[0] == 0 && grads[1] != 0, "where: nothing to the mask (%s)", aps_last_error());
  gr_graph_destroy(g2);
  fd_check(g, l, 2, wrt, "where", (fd_opts){.fill = fill_away});
}

TEST_CASE(grad_reduce_max) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 5));
  gr_tensor l = join(g, 0, weighted(g, gr_reduce_op(g, GR_RMAX, x, 4u), "r1"));
  l = join(g, l, weighted(g, gr_reduce_op(g, GR_RMAX, x, 3u), "r2"));
  l = join(g, l, gr_reduce_op(g, GR_RMAX, gr_unary_op(g, GR_TANH, x), 7u));
  fd_check(g, l, 1, &x, "reduce max", (fd_opts){.fill = fill_distinct});

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

TEST_CASE(grad_bilinear) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 4, 5)), one = gr_param(g, "one", GR_SHAPE(1, 1, 1, 1));
  gr_tensor row = gr_input(g, "row", GR_SHAPE(1, 2, 1, 3));
  gr_tensor l = join(g, 0, weighted(g, gr_upsample2x(g, x, GR_BILINEAR), "r1"));
  l = join(g, l, weighted(g, gr_upsample2x(g, one, GR_BILINEAR), "r2"));
  l = join(g, l, weighted(g, gr_upsample2x(g, gr_unary_op(g, GR_TANH, row), GR_BILINEAR), "r3"));
  gr_tensor wrt[3] = {x, one, row};
  fd_check(g, l, 3, wrt, "bilinear upsample", (fd_opts){0});
}

TEST_CASE(grad_pad) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 5, 4)), small = gr_param(g, "small", GR_SHAPE(1, 2, 2, 3));
  gr_tensor l = join(g, 0, weighted(g, gr_pad(g, x, (int[]){2, 1, 3, 1}, GR_PAD_REFLECT), "r1"));
  l = join(g, l, weighted(g, gr_pad(g, x, (int[]){1, 0, 2, 3}, GR_PAD_ZERO), "r2"));
  l = join(g, l, weighted(g, gr_pad(g, x, (int[]){0, 0, 1, 0}, GR_PAD_REFLECT), "r3"));
  /* Both borders fold onto the same rows (each pad = side - 1). */
  l = join(g, l, weighted(g, gr_pad(g, gr_unary_op(g, GR_TANH, small), (int[]){1, 1, 2, 2}, GR_PAD_REFLECT), "r4"));
  gr_tensor wrt[2] = {x, small};
  fd_check(g, l, 2, wrt, "pad (zero, reflect)", (fd_opts){0});
}

TEST_CASE(grad_pixel_shuffle) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 4, 6)), q = gr_param(g, "q", GR_SHAPE(1, 18, 2, 3));
  gr_tensor y = weighted(g, gr_space_to_depth(g, x, 2), "r1");                          /* [2, 12, 2, 3] */
  gr_tensor l = join(g, 0, weighted(g, gr_unary_op(g, GR_TANH, gr_depth_to_space(g, y, 2)), "r2"));
  l = join(g, l, weighted(g, gr_depth_to_space(g, q, 3), "r3"));             /* [1, 2, 6, 9] */
  gr_tensor wrt[2] = {x, q};
  fd_check(g, l, 2, wrt, "space_to_depth, depth_to_space", (fd_opts){0});
}

TEST_CASE(grad_gather) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 5, 4));
  static const int32_t perm[5] = {3, 0, 4, 1, 2}, rep[6] = {0, 3, 3, 1, 0, 3};
  static const int32_t many[12] = {0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1}; /* 8 repeats: the one-hot matmul */
  gr_tensor l = join(g, 0, weighted(g, gr_gather(g, x, 1, perm, 5), "r1"));       /* a permutation */
  l = join(g, l, weighted(g, gr_gather(g, x, 2, rep, 6), "r2"));     /* repeats, index 2 unused */
  l = join(g, l, weighted(g, gr_gather(g, gr_unary_op(g, GR_TANH, x), 0, many, 12), "r3"));
  l = join(g, l, weighted(g, gr_gather(g, x, 2, (int32_t[]){2}, 1), "r4")); /* one column */
  fd_check(g, l, 1, &x, "gather (permutation, repeats, one-hot)", (fd_opts){0});
}

TEST_CASE(grad_random) {
  gr_graph *g = gr_graph_create();
  gr_tensor seed = gr_input(g, "seed", GR_SHAPE(1)), x = gr_input(g, "x", GR_SHAPE(4, 6));
  gr_tensor z = gr_random(g, GR_SHAPE(4, 6), seed, 0, GR_NORMAL), u = gr_random(g, GR_SHAPE(6), seed, 1, GR_UNIFORM);
  gr_tensor l = join(g, 0, weighted(g, gr_add(g, gr_mul(g, x, z), gr_mul(g, gr_unary_op(g, GR_SQUARE, x), u)), "r1"));
  /* The random numbers are constants: nothing flows to the seed. */
  gr_tensor grads[2];
  REQUIRE_OK(gr_grad(g, l, 2, (gr_tensor[]){seed, x}, grads));
  CHECK(grads[0] == 0 && grads[1] != 0, "random: no gradient to the seed");
  fd_check(g, l, 1, &x, "random (a constant)", (fd_opts){.fill = fill_away});
}

/* inverse and logabsdet; the flow's 1×1 convolution y = W x at every pixel (a batched
 * matmul here) with its log-determinant H·W·log|det W|. */
TEST_CASE(grad_linalg) {
  gr_graph *g = gr_graph_create();
  gr_tensor w = gr_param(g, "w", GR_SHAPE(5, 5)), x = gr_input(g, "x", GR_SHAPE(2, 5, 12));
  gr_tensor l = join(g, 0, weighted(g, gr_inverse(g, w), "r1"));
  l = join(g, l, gr_scale_shift(g, gr_logabsdet(g, w), 0.7f, 0.0f));
  l = join(g, l, weighted(g, gr_matmul(g, w, x, 0, 0), "r2"));
  l = join(g, l, gr_scale_shift(g, gr_logabsdet(g, w), 12.0f, 0.0f));
  gr_tensor wrt[2] = {w, x};
  fd_check(g, l, 2, wrt, "inverse, logabsdet, 1x1-conv log-det", (fd_opts){.fill = fill_matrix, .h = 0.05, .atol = 4e-4});
}

/* An assignment is an effect, not a function: differentiating through its result stays an
 * error that names the op (gr_grad's "no vector-Jacobian product" path). */
TEST_CASE(grad_assign_unsupported) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(4)), p = gr_param(g, "p", GR_SHAPE(4));
  gr_tensor y = gr_assign(g, p, gr_mul(g, x, x));
  gr_tensor grad;
  aps_status s = gr_grad(g, gr_silu(g, y), 1, &x, &grad);
  fprintf(stderr, "message: %s\n", aps_last_error());
  CHECK(s == APS_ERR_UNSUPPORTED && strstr(aps_last_error(), "assign"), "differentiating through assign names it");
  gr_graph_destroy(g);
}
