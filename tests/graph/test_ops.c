/* Every op: Vulkan against the CPU reference on odd shapes (1, 3, 7, 33, ...). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_check.h"

static rt_device *dev;

static void run(gr_graph *g, const char *what, check_opts o) {
  check_graph(dev, g, what, &o);
  gr_graph_destroy(g);
}

static gr_graph *one_input(gr_shape s, gr_tensor *x) {
  gr_graph *g = gr_graph_create();
  *x = gr_input(g, "x", s);
  return g;
}

TEST_CASE(unary) {
  for (int f = 0; f < GR_UNARY_COUNT; f++) {
    gr_tensor x;
    gr_graph *g = one_input(GR_SHAPE(3, 7, 33), &x);
    gr_tensor y = f == GR_LEAKY_RELU ? gr_leaky_relu(g, x, 0.2f)
                  : f == GR_AFFINE   ? gr_scale_shift(g, x, 1.5f, -0.25f)
                  : f == GR_CLAMP    ? gr_clamp(g, x, -0.3f, 0.4f)
                                     : gr_unary_op(g, (gr_unary)f, x);
    gr_output(g, y, "y");
    int positive = f == GR_LOG || f == GR_SQRT || f == GR_RSQRT;
    run(g, gr_unary_name((gr_unary)f), (check_opts){.lo = positive ? 0.1f : -3.0f, .hi = 3.0f});
  }
}

TEST_CASE(binary) {
  for (int f = 0; f < GR_BINARY_COUNT; f++) {
    gr_graph *g = gr_graph_create();
    gr_tensor a = gr_input(g, "a", GR_SHAPE(2, 3, 7, 33)), b = gr_input(g, "b", GR_SHAPE(3, 1, 33));
    gr_output(g, gr_binary_op(g, (gr_binary)f, a, b), "y");
    gr_output(g, gr_binary_op(g, (gr_binary)f, b, a), "y_swapped");
    run(g, gr_binary_name((gr_binary)f), (check_opts){.lo = f == GR_DIV ? 0.5f : -1.0f, .hi = 2.0f});
  }
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(1)), b = gr_input(g, "b", GR_SHAPE(65));
  gr_output(g, gr_mul(g, a, b), "y");
  run(g, "scalar * vector", (check_opts){0});
}

TEST_CASE(where) {
  gr_graph *g = gr_graph_create();
  gr_tensor m = gr_input(g, "mask", GR_SHAPE(1, 7, 1)), a = gr_input(g, "a", GR_SHAPE(3, 7, 33));
  gr_tensor b = gr_input(g, "b", GR_SHAPE(33));
  gr_output(g, gr_where(g, gr_unary_op(g, GR_RELU, m), a, b), "y"); /* mask: about half zeros */
  run(g, "where", (check_opts){0});
}

TEST_CASE(reduce) {
  static const unsigned masks[] = {1, 2, 8, 5, 15, 6};
  for (int f = 0; f < GR_REDUCE_COUNT; f++)
    for (int m = 0; m < 6; m++) {
      gr_tensor x;
      gr_graph *g = one_input(GR_SHAPE(3, 7, 5, 33), &x);
      gr_output(g, gr_reduce_op(g, (gr_reduce)f, x, masks[m]), "y");
      char what[64];
      snprintf(what, sizeof what, "%s over axes 0x%x", gr_reduce_name((gr_reduce)f), masks[m]);
      run(g, what, (check_opts){.atol = 1e-4f});
    }
}

TEST_CASE(matmul) {
  static const int64_t s[][3] = {{1, 1, 1}, {7, 33, 7}, {33, 7, 257}, {64, 64, 64}, {3, 5, 1}};
  for (int i = 0; i < 5; i++) {
    gr_graph *g = gr_graph_create();
    gr_tensor a = gr_input(g, "a", GR_SHAPE(s[i][0], s[i][1])), b = gr_input(g, "b", GR_SHAPE(s[i][1], s[i][2]));
    gr_output(g, gr_matmul(g, a, b, 0, 0), "y");
    run(g, "matmul", (check_opts){.atol = 1e-4f});
  }
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(2, 3, 33, 7)), b = gr_input(g, "b", GR_SHAPE(7, 5));
  gr_output(g, gr_matmul(g, a, b, 0, 0), "batched_broadcast");
  gr_tensor c = gr_input(g, "c", GR_SHAPE(2, 3, 5, 7));
  gr_output(g, gr_matmul(g, a, c, 0, 1), "batched_bt");
  gr_tensor d = gr_input(g, "d", GR_SHAPE(33, 4));
  gr_output(g, gr_matmul(g, a, d, 1, 0), "at_broadcast");
  run(g, "batched matmul with transposes", (check_opts){.atol = 1e-4f});
}

/* The GPU-shaped GEMM (shaders/gemm_tiled_f32.comp, forced here with APS_KERNEL_VARIANT=gpu)
 * against the CPU reference at odd sizes (1, 7, 33, 257 in every role), batched, broadcast
 * and transposed, with a fused epilogue; and proof that it, not gemm_f32, ran (each test case
 * is its own process, so no other case made pipelines here). An unknown variant is refused. */
TEST_CASE(matmul_gpu_variant) {
  setenv("APS_KERNEL_VARIANT", "gpu", 1);
  static const int64_t s[][3] = {{1, 1, 1}, {7, 33, 257}, {257, 7, 33}, {33, 257, 7}, {1, 257, 1}, {257, 257, 257}};
  gr_graph *g = gr_graph_create();
  for (int i = 0; i < 6; i++) {
    char na[8], nb[8], ny[8];
    snprintf(na, sizeof na, "a%d", i), snprintf(nb, sizeof nb, "b%d", i), snprintf(ny, sizeof ny, "y%d", i);
    gr_tensor a = gr_input(g, na, GR_SHAPE(s[i][0], s[i][1])), b = gr_input(g, nb, GR_SHAPE(s[i][1], s[i][2]));
    gr_output(g, gr_matmul(g, a, b, 0, 0), ny);
  }
  gr_tensor a = gr_input(g, "a", GR_SHAPE(2, 3, 33, 7)), b = gr_input(g, "b", GR_SHAPE(7, 257));
  gr_tensor bias = gr_input(g, "bias", GR_SHAPE(257));
  gr_output(g, gr_leaky_relu(g, gr_add(g, gr_matmul(g, a, b, 0, 0), bias), 0.1f), "batched_broadcast_epilogue");
  gr_tensor c = gr_input(g, "c", GR_SHAPE(2, 3, 1, 7));
  gr_output(g, gr_matmul(g, a, c, 0, 1), "batched_bt");
  check_opts o = {.atol = 1e-4f, .rtol = 1e-3f};
  check_graph(dev, g, "GPU-shaped matmul", &o);
  unsigned tiled = rt_kernel_count(dev, "gemm_tiled_f32") + rt_kernel_count(dev, "gemm_tiled_f32_b4");
  unsigned plain = rt_kernel_count(dev, "gemm_f32") + rt_kernel_count(dev, "gemm_f32_b4");
  CHECK(tiled > 0 && plain == 0, "the tiled GEMM ran (%u pipelines), not gemm_f32 (%u)", tiled, plain);
  setenv("APS_KERNEL_VARIANT", "fastest", 1);
  gr_plan *p = NULL;
  aps_status st = gr_plan_compile(g, dev, NULL, &p);
  CHECK(st == APS_ERR_INVALID_ARG && !p && strstr(aps_last_error(), "'fastest'"), "unknown variant refused: %s",
        aps_last_error());
  gr_plan_destroy(p);
  unsetenv("APS_KERNEL_VARIANT");
  gr_graph_destroy(g);
}

TEST_CASE(group_norm) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 6, 7, 5));
  gr_tensor ga = gr_param(g, "gamma", GR_SHAPE(6)), be = gr_param(g, "beta", GR_SHAPE(6));
  gr_output(g, gr_group_norm(g, x, 3, ga, be, 1e-5f), "affine");
  gr_output(g, gr_group_norm(g, x, 6, 0, 0, 1e-5f), "plain");
  gr_output(g, gr_group_norm(g, x, 1, ga, 0, 1e-3f), "gamma_only");
  gr_tensor big = gr_input(g, "big", GR_SHAPE(2, 64, 32, 32));
  gr_output(g, gr_group_norm(g, big, 32, 0, 0, 1e-5f), "unet_size");
  /* channels of 64 values or more take the kernel's channel-at-a-time pass: 81 and 64 here */
  gr_tensor w = gr_input(g, "w", GR_SHAPE(3, 6, 9, 9)), e = gr_input(g, "e", GR_SHAPE(1, 6, 8, 8));
  gr_output(g, gr_group_norm(g, w, 3, ga, be, 1e-5f), "affine_81");
  gr_output(g, gr_group_norm(g, w, 2, 0, be, 1e-5f), "beta_only_81");
  gr_output(g, gr_silu(g, gr_group_norm(g, e, 3, ga, be, 1e-5f)), "affine_silu_64");
  run(g, "group_norm", (check_opts){.atol = 1e-4f});
}

TEST_CASE(softmax) {
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(7, 33)), b = gr_input(g, "b", GR_SHAPE(3, 1)), c = gr_input(g, "c", GR_SHAPE(2, 300));
  gr_output(g, gr_softmax(g, a), "a_out");
  gr_output(g, gr_softmax(g, b), "b_out");
  gr_output(g, gr_softmax(g, gr_scale_shift(g, c, 20.0f, 0)), "c_out");
  run(g, "softmax", (check_opts){.atol = 1e-6f});
}

TEST_CASE(layout_ops) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 7, 5)), z = gr_input(g, "z", GR_SHAPE(2, 4, 7, 5));
  const int p[4] = {0, 2, 3, 1}, q[3] = {2, 0, 1};
  gr_output(g, gr_permute(g, x, p), "nhwc");
  gr_output(g, gr_permute(g, gr_reshape(g, x, GR_SHAPE(6, 7, 5)), q), "permute3");
  gr_output(g, gr_concat(g, x, z, 1), "concat_c");
  gr_output(g, gr_concat(g, x, x, 3), "concat_w");
  gr_output(g, gr_slice(g, z, 1, 1, 2), "slice_c");
  gr_output(g, gr_slice(g, x, 3, 4, 1), "slice_w");
  gr_output(g, gr_reshape(g, gr_silu(g, x), GR_SHAPE(-1, 35)), "reshaped");
  run(g, "layout ops", (check_opts){0});
}

/* flip moves values only: Vulkan (fused and unfused plans, reading an input or an
 * intermediate) and the CPU device match the reference exactly, on every rank and odd shapes; the order
 * is the promised one, flip is its own inverse, and a mask past the rank is refused. */
TEST_CASE(flip) {
  static const struct {
    int rank;
    int64_t d[4];
    unsigned axes;
  } cases[] = {{1, {7}, 1},           {2, {3, 33}, 2},        {2, {3, 33}, 3},     {3, {2, 3, 5}, 5},
               {4, {2, 3, 7, 33}, 12}, {4, {1, 1, 1, 1}, 15}, {4, {2, 3, 5, 4}, 0}, {4, {3, 1, 4, 65}, 9}};
  gr_graph *g = gr_graph_create();
  char name[16];
  for (int k = 0; k < 8; k++) {
    snprintf(name, sizeof name, "x%d", k);
    gr_tensor x = gr_input(g, name, gr_shape_make(cases[k].rank, cases[k].d));
    snprintf(name, sizeof name, "y%d", k);
    gr_output(g, gr_flip(g, k % 2 ? gr_unary_op(g, GR_NEG, x) : x, cases[k].axes), name); /* exact */
  }
  gr_cpu *ref = NULL, *fast = NULL;
  REQUIRE_OK(gr_cpu_create(g, &ref));
  REQUIRE_OK(gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1}, &fast));
  for (int k = 0; k < 8; k++) {
    int64_t n = gr_shape_count(gr_shape_make(cases[k].rank, cases[k].d));
    float *v = malloc((size_t)n * sizeof *v);
    fill_uniform(v, n, -1, 1, 11u + (uint32_t)k);
    snprintf(name, sizeof name, "x%d", k);
    REQUIRE_OK(gr_cpu_set(ref, name, v, n));
    REQUIRE_OK(gr_cpu_set(fast, name, v, n));
    free(v);
  }
  REQUIRE_OK(gr_cpu_run(ref));
  REQUIRE_OK(gr_cpu_run(fast));
  for (int k = 0; k < 8; k++) {
    snprintf(name, sizeof name, "y%d", k);
    gr_tensor y = gr_find(g, name);
    CHECK(!memcmp(gr_cpu_values(ref, y), gr_cpu_values(fast, y), (size_t)gr_shape_count(gr_tensor_shape(g, y)) * 4),
          "flip case %d: the CPU device differs from the reference", k);
  }
  gr_cpu_destroy(fast);
  gr_cpu_destroy(ref);
  run(g, "flip", (check_opts){.atol = 1e-30f, .rtol = 1e-30f});

  /* [[0 1 2] [3 4 5]] flipped along W, then both axes; twice is the identity. */
  g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3));
  gr_output(g, gr_flip(g, x, 2u), "w");
  gr_output(g, gr_flip(g, x, 3u), "hw");
  gr_output(g, gr_flip(g, gr_flip(g, x, 3u), 3u), "twice");
  gr_cpu *c = NULL;
  REQUIRE_OK(gr_cpu_create(g, &c));
  static const float v[6] = {0, 1, 2, 3, 4, 5}, w[6] = {2, 1, 0, 5, 4, 3}, hw[6] = {5, 4, 3, 2, 1, 0};
  REQUIRE_OK(gr_cpu_set(c, "x", v, 6));
  REQUIRE_OK(gr_cpu_run(c));
  CHECK(!memcmp(gr_cpu_values(c, gr_find(g, "w")), w, sizeof w), "flip along W");
  CHECK(!memcmp(gr_cpu_values(c, gr_find(g, "hw")), hw, sizeof hw), "flip along H and W");
  CHECK(!memcmp(gr_cpu_values(c, gr_find(g, "twice")), v, sizeof v), "flip twice");
  gr_cpu_destroy(c);
  gr_graph_destroy(g);

  g = gr_graph_create();
  gr_scope_push(g, "outer");
  CHECK(!gr_flip(g, gr_input(g, "x", GR_SHAPE(2, 3)), 4u) && strstr(gr_graph_error(g), "outer: flip") &&
            strstr(gr_graph_error(g), "[2, 3]"),
        "a mask past the rank: %s", gr_graph_error(g));
  gr_graph_destroy(g);
}

TEST_CASE(resample) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 7, 5)), e = gr_input(g, "e", GR_SHAPE(1, 2, 6, 8));
  gr_output(g, gr_upsample2x(g, x, GR_NEAREST), "nearest");
  gr_output(g, gr_upsample2x(g, x, GR_BILINEAR), "bilinear");
  gr_output(g, gr_avg_pool2x(g, e), "pool");
  gr_tensor one = gr_input(g, "one", GR_SHAPE(1, 1, 1, 1));
  gr_output(g, gr_upsample2x(g, one, GR_BILINEAR), "bilinear_1x1");
  run(g, "resampling", (check_opts){0});
}

TEST_CASE(time_embed) {
  gr_graph *g = gr_graph_create();
  gr_tensor t = gr_input(g, "t", GR_SHAPE(7));
  gr_output(g, gr_time_embed(g, t, 64, 10000.0f), "emb");
  gr_output(g, gr_time_embed(g, t, 2, 100.0f), "emb2");
  run(g, "time_embed", (check_opts){.lo = 0.0f, .hi = 1000.0f, .atol = 2e-4f});
}

TEST_CASE(conv2d) {
  char what[96];
  gr_graph *g;
  for (size_t i = 0; (g = conv_case(i, what, sizeof what)); i++)
    run(g, what, (check_opts){.atol = 1e-4f, .fan_in_scale = 1});
  /* A depthwise conv with fused bias, SiLU and residual add (the depthwise kernel's epilogue). */
  g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 5, 24, 24));
  gr_tensor y = gr_conv2d(g, x, gr_param(g, "w", GR_SHAPE(5, 1, 5, 5)), gr_param(g, "b", GR_SHAPE(5)),
                          &(gr_conv2d_desc){.padding = 2, .groups = 5});
  gr_output(g, gr_add(g, gr_silu(g, y), x), "y");
  run(g, "depthwise conv + SiLU + residual", (check_opts){.atol = 1e-4f, .fan_in_scale = 1});
}

TEST_CASE(attention) {
  static const int64_t shapes[][3] = {{1, 1, 1}, {2, 3, 7}, {3, 8, 64}, {1, 33, 70}, {2, 64, 64}};
  for (int i = 0; i < 5; i++) {
    gr_graph *g = gr_graph_create();
    gr_tensor qkv = gr_input(g, "x", GR_SHAPE(shapes[i][0], 3 * shapes[i][1], shapes[i][2]));
    gr_output(g, gr_attention(g, qkv), "y");
    run(g, "attention", (check_opts){.lo = -2.0f, .hi = 2.0f, .atol = 1e-5f});
  }
  /* The same attention composed from matmuls and a softmax agrees with the fused op. */
  gr_graph *g = gr_graph_create();
  gr_tensor qkv = gr_input(g, "x", GR_SHAPE(2, 3 * 16, 20));
  gr_tensor q = gr_slice(g, qkv, 1, 0, 16), k = gr_slice(g, qkv, 1, 16, 16), v = gr_slice(g, qkv, 1, 32, 16);
  gr_tensor p = gr_softmax(g, gr_scale_shift(g, gr_matmul(g, q, k, 1, 0), 0.25f, 0.0f));
  gr_output(g, gr_sub(g, gr_matmul(g, v, p, 0, 1), gr_attention(g, qkv)), "difference");
  check_opts o = {.atol = 1e-5f};
  check_graph(dev, g, "attention vs composed", &o);
  gr_cpu *c;
  REQUIRE_OK(gr_cpu_create(g, &c));
  float x[2 * 48 * 20];
  fill_uniform(x, 2 * 48 * 20, -2, 2, 5);
  REQUIRE_OK(gr_cpu_set(c, "x", x, 2 * 48 * 20));
  REQUIRE_OK(gr_cpu_run(c));
  const float *d = gr_cpu_values(c, gr_find(g, "difference"));
  float worst = 0;
  for (int i = 0; i < 2 * 16 * 20; i++)
    worst = fabsf(d[i]) > worst ? fabsf(d[i]) : worst;
  CHECK(worst < 1e-5f, "fused and composed attention agree on the CPU (%g)", worst);
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

/* The graph builder reports the scope, the op and the shapes at fault. */
TEST_CASE(shape_errors) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(1, 32, 16, 16));
  gr_scope_push(g, "down1");
  gr_scope_push(g, "res0");
  gr_tensor w = gr_param(g, "conv1.weight", GR_SHAPE(64, 48, 3, 3));
  gr_tensor y = gr_conv2d(g, x, w, 0, &(gr_conv2d_desc){.padding = 1});
  gr_tensor z = gr_silu(g, y); /* the failure propagates */
  CHECK(y == 0 && z == 0, "bad builders return the invalid handle");
  CHECK(gr_graph_status(g) == APS_ERR_INVALID_ARG, "the graph records the failure");
  const char *e = gr_graph_error(g);
  fprintf(stderr, "message: %s\n", e);
  CHECK(strstr(e, "down1.res0") && strstr(e, "conv2d") && strstr(e, "[1, 32, 16, 16]") && strstr(e, "[64, 48, 3, 3]"),
        "the message names the scope, op and shapes");
  CHECK(!strcmp(gr_tensor_name(g, w), "down1.res0.conv1.weight"), "parameters are named by scope (%s)",
        gr_tensor_name(g, w));
  gr_plan *p = NULL;
  CHECK(gr_plan_compile(g, dev, NULL, &p) == APS_ERR_INVALID_ARG && !p, "a failed graph does not compile");
  gr_graph_destroy(g);
  g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(3, 4));
  CHECK(gr_add(g, a, gr_input(g, "b", GR_SHAPE(5))) == 0, "non-broadcastable add refused");
  fprintf(stderr, "message: %s\n", gr_graph_error(g));
  CHECK(strstr(gr_graph_error(g), "[3, 4]") && strstr(gr_graph_error(g), "[5]"), "names both shapes");
  gr_graph_destroy(g);
  g = gr_graph_create();
  a = gr_input(g, "a", GR_SHAPE(3, 4));
  gr_output(g, gr_silu(g, a), "y");
  gr_plan *q = NULL;
  REQUIRE_OK(gr_plan_compile(g, dev, NULL, &q));
  CHECK(gr_plan_run(q) == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "'a'"), "running without input refused");
  float v[5] = {0};
  CHECK(gr_plan_set(q, "a", v, 5) == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "[3, 4]"),
        "wrong input size refused: %s", aps_last_error());
  gr_plan_destroy(q);
  gr_graph_destroy(g);
}

void graph_tests_open(void) { dev = test_device_open(NULL); }
void graph_tests_close(void) { test_device_close(dev); }
TEST_SUITE_HOOKS(graph_tests_open, graph_tests_close)
rt_device *graph_tests_device(void) { return dev; }
