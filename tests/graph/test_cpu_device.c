/* The CPU device (gr_cpu_desc.fast: oneDNN and parallel loops) against the CPU reference:
 * every op on the odd shapes of test_ops.c, the conv cases of test_conv2d, the U-Net. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "graph_check.h"
#include "graph_internal.h"
#include "layers.h"

/* Set: check_fast runs the CPU device in a thread of its own, not the one that made it (as
 * the viewer's worker does). */
static int in_other_thread;

static void *run_thread(void *c) {
  static aps_status s;
  s = gr_cpu_run(c);
  return &s;
}

static aps_status run_fast(gr_cpu *c) {
  if (!in_other_thread)
    return gr_cpu_run(c);
  pthread_t th;
  void *r = NULL;
  if (pthread_create(&th, NULL, run_thread, c) || pthread_join(th, &r))
    return aps_fail(APS_ERR_UNSUPPORTED, "cannot run a thread");
  return *(aps_status *)r;
}

/* Same random inputs (fan-in scaled parameters optional) into the reference and the CPU
 * device; every output must agree to atol + rtol * |reference|. */
static void check_fast(gr_graph *g, const char *what, float lo, float hi, int fan_in, float atol, float rtol,
                       int threads) {
  gr_cpu *ref = NULL, *fast = NULL;
  if (gr_graph_status(g) != APS_OK) {
    CHECK(0, "%s: graph failed to build: %s", what, gr_graph_error(g));
    gr_graph_destroy(g);
    return;
  }
  aps_status s = gr_cpu_create(g, &ref);
  if (s == APS_OK)
    s = gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1, .threads = threads}, &fast);
  for (uint32_t t = 1; t < g->nt && s == APS_OK; t++)
    if (g->t[t].kind == GR_OP_INPUT || g->t[t].kind == GR_OP_PARAM) {
      gr_shape sh = g->t[t].shape;
      int64_t n = gr_shape_count(sh);
      float *v = malloc((size_t)n * sizeof *v);
      fill_uniform(v, n, lo, hi, t * 2654435761u);
      if (fan_in && g->t[t].kind == GR_OP_PARAM && sh.rank >= 2)
        for (int64_t i = 0; i < n; i++)
          v[i] /= sqrtf((float)(sh.rank == 4 ? n / sh.d[0] : sh.d[0]));
      s = gr_cpu_set(ref, g->t[t].name, v, n);
      if (s == APS_OK)
        s = gr_cpu_set(fast, g->t[t].name, v, n);
      free(v);
    }
  if (s == APS_OK)
    s = gr_cpu_run(ref);
  if (s == APS_OK)
    s = run_fast(fast);
  CHECK(s == APS_OK, "%s: %s", what, aps_last_error());
  for (uint32_t t = 1; t < g->nt && s == APS_OK; t++) {
    if (!g->t[t].output)
      continue;
    const float *want = gr_cpu_values(ref, t), *got = gr_cpu_values(fast, t);
    int64_t n = gr_shape_count(g->t[t].shape), bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
      if (!(fabsf(got[i] - want[i]) <= atol + rtol * fabsf(want[i])) && !(isinf(want[i]) && got[i] == want[i])) {
        bad++;
        first = first < 0 ? i : first;
      }
    CHECK(bad == 0, "%s, output %s: %lld of %lld values off (first at %lld: %g vs reference %g)", what,
          g->t[t].name, (long long)bad, (long long)n, (long long)first, first >= 0 ? got[first] : 0.0,
          first >= 0 ? want[first] : 0.0);
  }
  gr_cpu_destroy(fast);
  gr_cpu_destroy(ref);
  gr_graph_destroy(g);
}

static void check_ops(gr_graph *g, const char *what, float lo, float hi) {
  check_fast(g, what, lo, hi, 0, 1e-4f, 1e-4f, 0);
}

TEST_CASE(cpu_device_ops) {
  for (int f = 0; f < GR_UNARY_COUNT; f++) {
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 7, 33)), big = gr_input(g, "big", GR_SHAPE(2, 64, 16, 16));
    for (int k = 0; k < 2; k++) {
      gr_tensor in = k ? big : x;
      gr_output(g, f == GR_LEAKY_RELU ? gr_leaky_relu(g, in, 0.2f)
                   : f == GR_AFFINE   ? gr_scale_shift(g, in, 1.5f, -0.25f)
                   : f == GR_CLAMP    ? gr_clamp(g, in, -0.3f, 0.4f)
                                      : gr_unary_op(g, (gr_unary)f, in), k ? "big_y" : "y");
    }
    int positive = f == GR_LOG || f == GR_SQRT || f == GR_RSQRT;
    check_ops(g, gr_unary_name((gr_unary)f), positive ? 0.1f : -3.0f, 3.0f);
  }
  for (int f = 0; f < GR_BINARY_COUNT; f++) {
    gr_graph *g = gr_graph_create();
    gr_tensor a = gr_input(g, "a", GR_SHAPE(2, 3, 7, 33)), b = gr_input(g, "b", GR_SHAPE(3, 1, 33));
    gr_tensor c = gr_input(g, "c", GR_SHAPE(2, 64, 16, 16)), d = gr_input(g, "d", GR_SHAPE(2, 64, 1, 1));
    gr_output(g, gr_binary_op(g, (gr_binary)f, a, b), "y");
    gr_output(g, gr_binary_op(g, (gr_binary)f, b, a), "y_swapped");
    gr_output(g, gr_binary_op(g, (gr_binary)f, c, d), "per_channel");
    gr_output(g, gr_binary_op(g, (gr_binary)f, c, c), "same_shape");
    gr_output(g, gr_binary_op(g, (gr_binary)f, gr_input(g, "s", GR_SHAPE(1)), c), "scalar");
    check_ops(g, gr_binary_name((gr_binary)f), f == GR_DIV ? 0.5f : -1.0f, 2.0f);
  }
  gr_graph *g = gr_graph_create();
  gr_tensor m = gr_input(g, "mask", GR_SHAPE(1, 7, 1)), a = gr_input(g, "a", GR_SHAPE(3, 7, 33));
  gr_output(g, gr_where(g, gr_unary_op(g, GR_RELU, m), a, gr_input(g, "b", GR_SHAPE(33))), "y");
  gr_output(g, gr_where(g, gr_unary_op(g, GR_RELU, a), a, gr_unary_op(g, GR_NEG, a)), "full");
  check_ops(g, "where", -1.0f, 1.0f);
}

TEST_CASE(cpu_device_reduce) {
  static const unsigned masks[] = {1, 2, 8, 5, 15, 6};
  for (int f = 0; f < GR_REDUCE_COUNT; f++) {
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 7, 5, 33));
    for (int m = 0; m < 6; m++) {
      char name[16];
      snprintf(name, sizeof name, "axes_%x", masks[m]);
      gr_output(g, gr_reduce_op(g, (gr_reduce)f, x, masks[m]), name);
    }
    check_ops(g, gr_reduce_name((gr_reduce)f), -1.0f, 1.0f);
  }
  /* Variance of data far from zero (mean 1000, spread 1) over long runs: E[x²] − mean² in
   * float partial sums would lose it to cancellation. */
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 64, 64));
  gr_output(g, gr_reduce_op(g, GR_VAR, x, 14u), "per_sample");
  gr_output(g, gr_reduce_op(g, GR_VAR, x, 15u), "all");
  check_ops(g, "variance, mean 1000", 999.0f, 1001.0f);
}

TEST_CASE(cpu_device_matmul) {
  static const int64_t s[][3] = {{1, 1, 1}, {7, 33, 7}, {33, 7, 257}, {64, 64, 64}, {3, 5, 1}, {130, 300, 70}};
  for (int i = 0; i < 6; i++) {
    gr_graph *g = gr_graph_create();
    gr_tensor a = gr_input(g, "a", GR_SHAPE(s[i][0], s[i][1])), b = gr_input(g, "b", GR_SHAPE(s[i][1], s[i][2]));
    gr_output(g, gr_matmul(g, a, b, 0, 0), "y");
    check_ops(g, "matmul", -1.0f, 1.0f);
  }
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(2, 3, 33, 7)), b = gr_input(g, "b", GR_SHAPE(7, 5));
  gr_output(g, gr_matmul(g, a, b, 0, 0), "batched_broadcast");
  gr_output(g, gr_matmul(g, a, gr_input(g, "c", GR_SHAPE(2, 3, 5, 7)), 0, 1), "batched_bt");
  gr_output(g, gr_matmul(g, a, gr_input(g, "d", GR_SHAPE(33, 4)), 1, 0), "at_broadcast");
  gr_output(g, gr_matmul(g, gr_input(g, "e", GR_SHAPE(3, 1, 4, 7)), gr_input(g, "f", GR_SHAPE(1, 2, 7, 6)), 0, 0),
            "both_broadcast");
  gr_tensor q = gr_input(g, "q", GR_SHAPE(16, 64, 64)); /* attention at batch 16: one gemm per thread */
  gr_output(g, gr_matmul(g, q, q, 1, 0), "attention_scores");
  check_ops(g, "batched matmul with transposes", -1.0f, 1.0f);
}

TEST_CASE(cpu_device_norms) { /* and attention: the ops with a softmax or statistics */
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 6, 7, 5));
  gr_tensor ga = gr_param(g, "gamma", GR_SHAPE(6)), be = gr_param(g, "beta", GR_SHAPE(6));
  gr_output(g, gr_group_norm(g, x, 3, ga, be, 1e-5f), "affine");
  gr_output(g, gr_group_norm(g, x, 6, 0, 0, 1e-5f), "plain");
  gr_output(g, gr_group_norm(g, x, 1, ga, 0, 1e-3f), "gamma_only");
  gr_output(g, gr_group_norm(g, x, 3, 0, be, 1e-5f), "beta_only");
  gr_output(g, gr_group_norm(g, gr_input(g, "big", GR_SHAPE(2, 64, 32, 32)), 32, 0, 0, 1e-5f), "unet_size");
  gr_tensor a = gr_input(g, "a", GR_SHAPE(7, 33)), c = gr_input(g, "c", GR_SHAPE(2, 300));
  gr_output(g, gr_softmax(g, a), "softmax");
  gr_output(g, gr_softmax(g, gr_input(g, "b", GR_SHAPE(3, 1))), "softmax_1");
  gr_output(g, gr_softmax(g, gr_scale_shift(g, c, 20.0f, 0)), "softmax_sharp");
  gr_output(g, gr_softmax(g, gr_input(g, "d", GR_SHAPE(16, 64, 64))), "softmax_attention");
  gr_output(g, gr_attention(g, gr_input(g, "qkv", GR_SHAPE(3, 3 * 16, 64))), "attention");
  gr_output(g, gr_attention(g, gr_input(g, "qkv1", GR_SHAPE(1, 3 * 8, 300))), "attention_long");
  check_ops(g, "group_norm, softmax and attention", -1.0f, 1.0f);
}

TEST_CASE(cpu_device_layout) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 7, 5)), z = gr_input(g, "z", GR_SHAPE(2, 4, 7, 5));
  const int p[4] = {0, 2, 3, 1}, q[3] = {2, 0, 1}, r[3] = {0, 2, 1};
  gr_output(g, gr_permute(g, x, p), "nhwc");
  gr_output(g, gr_permute(g, gr_reshape(g, x, GR_SHAPE(6, 7, 5)), q), "permute3");
  gr_output(g, gr_permute(g, gr_input(g, "w", GR_SHAPE(4, 96, 64)), r), "transpose_big");
  gr_output(g, gr_concat(g, x, z, 1), "concat_c");
  gr_output(g, gr_concat(g, x, x, 3), "concat_w");
  gr_output(g, gr_slice(g, z, 1, 1, 2), "slice_c");
  gr_output(g, gr_slice(g, x, 3, 4, 1), "slice_w");
  gr_output(g, gr_reshape(g, gr_silu(g, x), GR_SHAPE(-1, 35)), "reshaped");
  gr_tensor e = gr_input(g, "e", GR_SHAPE(1, 2, 6, 8)), big = gr_input(g, "big", GR_SHAPE(2, 32, 16, 16));
  gr_output(g, gr_upsample2x(g, x, GR_NEAREST), "nearest");
  gr_output(g, gr_upsample2x(g, x, GR_BILINEAR), "bilinear");
  gr_output(g, gr_upsample2x(g, big, GR_NEAREST), "nearest_big");
  gr_output(g, gr_upsample2x(g, big, GR_BILINEAR), "bilinear_big");
  gr_output(g, gr_upsample2x(g, gr_input(g, "one", GR_SHAPE(1, 1, 1, 1)), GR_BILINEAR), "bilinear_1x1");
  gr_output(g, gr_avg_pool2x(g, e), "pool");
  gr_output(g, gr_avg_pool2x(g, big), "pool_big");
  check_ops(g, "layout and resampling", -1.0f, 1.0f);
  g = gr_graph_create();
  gr_tensor t = gr_input(g, "t", GR_SHAPE(7));
  gr_output(g, gr_time_embed(g, t, 64, 10000.0f), "emb");
  check_fast(g, "time_embed", 0.0f, 1000.0f, 0, 2e-4f, 1e-4f, 0);
}

TEST_CASE(cpu_device_conv2d) {
  char what[96];
  gr_graph *g;
  /* Fan-in scaled weights keep sums near 1, as in a network (and the 1e-4 tolerance fair). */
  for (size_t i = 0; (g = conv_case(i, what, sizeof what)); i++)
    check_fast(g, what, -1.0f, 1.0f, 1, 1e-4f, 1e-4f, i % 2 ? 1 : 0);
}

/* A plan made in one thread and run in another: every conv and weight gradient, small
 * (plain layout, oneDNN's im2col needing a scratchpad) and large (oneDNN's layout). */
TEST_CASE(cpu_device_other_thread) {
  char what[128];
  gr_graph *g;
  in_other_thread = 1;
  for (size_t i = 0; (g = conv_case(i, what, sizeof what)); i++)
    check_fast(g, what, -1.0f, 1.0f, 1, 1e-4f, 1e-4f, 0);
  g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 5, 9, 9)), w = gr_param(g, "w", GR_SHAPE(6, 5, 3, 3)), d[2];
  gr_tensor y = gr_conv2d(g, x, w, 0, &(gr_conv2d_desc){.padding = 1});
  gr_tensor wrt[2] = {x, w};
  if (gr_grad(g, gr_mul(g, y, gr_input(g, "r", gr_tensor_shape(g, y))), 2, wrt, d) == APS_OK) {
    gr_output(g, d[0], "dx");
    gr_output(g, d[1], "dw");
  }
  check_fast(g, "a conv's gradients, run in another thread", -1.0f, 1.0f, 1, 1e-4f, 1e-4f, 0);
  in_other_thread = 0;
}

TEST_CASE(cpu_device_unet) {
  gr_unet_config cfg = gr_unet_config_default(1, 32);
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 1, 32, 32)), t = gr_input(g, "t", GR_SHAPE(2));
  gr_output(g, gr_unet(g, &cfg, x, t), "eps");
  check_fast(g, "U-Net forward on the CPU device", -1.0f, 1.0f, 1, 1e-4f, 1e-4f, 0);
}

/* Bad descriptors and failed graphs give statuses, not crashes. */
TEST_CASE(cpu_device_errors) {
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(3, 4));
  gr_output(g, gr_silu(g, a), "y");
  gr_cpu *c = NULL;
  CHECK(gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1, .threads = -2}, &c) == APS_ERR_INVALID_ARG && !c,
        "negative thread count refused");
  REQUIRE_OK(gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1}, &c));
  CHECK(gr_cpu_run(c) == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "'a'"), "running without input refused");
  gr_cpu_destroy(c);
  CHECK(gr_add(g, a, gr_input(g, "b", GR_SHAPE(5))) == 0, "bad add");
  CHECK(gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1}, &c) == APS_ERR_INVALID_ARG && !c, "a failed graph refused");
  gr_graph_destroy(g);
}
