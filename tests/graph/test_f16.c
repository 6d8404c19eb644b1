/* fp16 storage (gr_plan_desc.f16_storage): every op with an fp16 kernel against the CPU
 * reference while it reads and writes halves; that intermediates really are halves; that
 * ops without fp16 kernels, reductions' results and diffusion times stay fp32; the U-Net.
 *
 * Inputs and parameters are rounded to half before both runs (check_opts.f16), so a single
 * op differs from the reference only by its result's rounding to half (at most 2^-10
 * relative, whether the device rounds to nearest or toward zero) and fp32 arithmetic:
 * tolerance 2e-3 relative. Chains accumulate one such rounding per stored tensor. */
#include <math.h>
#include <stdlib.h>

#include "graph_check.h"
#include "layers.h"

rt_device *graph_tests_device(void);

/* An input seen through an identity step, whose result (an intermediate) is stored as half:
 * the op under test then reads halves. */
static gr_tensor in16(gr_graph *g, const char *name, gr_shape s) {
  return gr_scale_shift(g, gr_input(g, name, s), 1, 0);
}

/* An output behind an identity step: the op under test writes halves in the unfused plan
 * (fused, the step becomes its epilogue and it writes the fp32 output itself). */
static void out16(gr_graph *g, gr_tensor t, const char *name) { gr_output(g, gr_scale_shift(g, t, 1, 0), name); }

/* Without fp16 storage (a device that lacks it, or APS_LIMITS=vulkan-min) the fp16 cases have
 * nothing to run; f16_unsupported checks that such plans are refused, naming the feature. */
static int no_f16(void) {
  const rt_caps *c = rt_device_caps(graph_tests_device());
  if (c->fp16_storage)
    return 0;
  fprintf(stderr, "skipped: %s has no fp16 storage (limits %s, quirk no_fp16_storage %d)\n", c->name, c->limits,
          c->quirks[RT_QUIRK_NO_FP16_STORAGE]);
  return 1;
}

static check_opts one_op(float lo, float hi) {
  return (check_opts){.lo = lo, .hi = hi, .atol = 1e-4f, .rtol = 2e-3f, .f16 = 1};
}

static void run(gr_graph *g, const char *what, check_opts o) {
  check_graph(graph_tests_device(), g, what, &o);
  CHECK(o.unfused.f16_tensors > 0, "%s: the unfused plan stores halves", what);
  gr_graph_destroy(g);
}

TEST_CASE(f16_elementwise) {
  if (no_f16())
    return;
  for (int f = 0; f < GR_UNARY_COUNT; f++) {
    gr_graph *g = gr_graph_create();
    gr_tensor x = in16(g, "x", GR_SHAPE(3, 7, 33));
    gr_tensor y = f == GR_LEAKY_RELU ? gr_leaky_relu(g, x, 0.2f)
                  : f == GR_AFFINE   ? gr_scale_shift(g, x, 1.5f, -0.25f)
                  : f == GR_CLAMP    ? gr_clamp(g, x, -0.3f, 0.4f)
                                     : gr_unary_op(g, (gr_unary)f, x);
    out16(g, y, "y");
    int positive = f == GR_LOG || f == GR_SQRT || f == GR_RSQRT;
    run(g, gr_unary_name((gr_unary)f), one_op(positive ? 0.1f : -3.0f, 3.0f));
  }
  for (int f = 0; f < GR_BINARY_COUNT; f++) {
    gr_graph *g = gr_graph_create();
    gr_tensor a = in16(g, "a", GR_SHAPE(2, 3, 7, 33)), b = in16(g, "b", GR_SHAPE(3, 1, 33));
    out16(g, gr_binary_op(g, (gr_binary)f, a, b), "y");
    out16(g, gr_binary_op(g, (gr_binary)f, b, a), "y_swapped");
    run(g, gr_binary_name((gr_binary)f), one_op(f == GR_DIV ? 0.5f : -1.0f, 2.0f));
  }
  gr_graph *g = gr_graph_create();
  out16(g, gr_mul(g, in16(g, "a", GR_SHAPE(1)), in16(g, "b", GR_SHAPE(65))), "y");
  run(g, "scalar * vector", one_op(-1, 1));
  g = gr_graph_create();
  gr_tensor m = in16(g, "mask", GR_SHAPE(1, 7, 1)), a = in16(g, "a", GR_SHAPE(3, 7, 33));
  out16(g, gr_where(g, gr_unary_op(g, GR_RELU, m), a, in16(g, "b", GR_SHAPE(33))), "y");
  run(g, "where", one_op(-1, 1));
}

TEST_CASE(f16_reduce) {
  if (no_f16())
    return;
  static const unsigned masks[] = {1, 2, 8, 5, 15, 6};
  for (int f = 0; f < GR_REDUCE_COUNT; f++)
    for (int m = 0; m < 6; m++) {
      gr_graph *g = gr_graph_create();
      out16(g, gr_reduce_op(g, (gr_reduce)f, in16(g, "x", GR_SHAPE(3, 7, 5, 33)), masks[m]), "y");
      char what[64];
      snprintf(what, sizeof what, "%s over axes 0x%x", gr_reduce_name((gr_reduce)f), masks[m]);
      run(g, what, one_op(-1, 1));
    }
  /* A sum past half's range (65504) is no trouble: reductions write fp32. */
  gr_graph *g = gr_graph_create();
  out16(g, gr_reduce_op(g, GR_SUM, in16(g, "x", GR_SHAPE(3, 4096)), 2), "sum");
  run(g, "sum of 4096 values near 30", one_op(29, 31));
}

TEST_CASE(f16_matmul) {
  if (no_f16())
    return;
  static const int64_t s[][3] = {{1, 1, 1}, {7, 33, 7}, {33, 7, 257}, {64, 64, 64}, {3, 5, 1}};
  for (int i = 0; i < 5; i++) {
    gr_graph *g = gr_graph_create();
    gr_tensor a = in16(g, "a", GR_SHAPE(s[i][0], s[i][1])), b = in16(g, "b", GR_SHAPE(s[i][1], s[i][2]));
    out16(g, gr_matmul(g, a, b, 0, 0), "y");
    run(g, "matmul", one_op(-1, 1));
  }
  gr_graph *g = gr_graph_create();
  gr_tensor a = in16(g, "a", GR_SHAPE(2, 3, 33, 7)), b = in16(g, "b", GR_SHAPE(7, 5));
  out16(g, gr_matmul(g, a, b, 0, 0), "batched_broadcast");
  out16(g, gr_matmul(g, a, in16(g, "c", GR_SHAPE(2, 3, 5, 7)), 0, 1), "batched_bt");
  out16(g, gr_matmul(g, a, in16(g, "d", GR_SHAPE(33, 4)), 1, 0), "at_broadcast");
  run(g, "batched matmul with transposes", one_op(-1, 1));
}

TEST_CASE(f16_conv2d) {
  if (no_f16())
    return;
  char what[96];
  gr_graph *g;
  for (size_t i = 0; (g = conv_case_f16(i, what, sizeof what)); i++) {
    check_opts o = one_op(-1, 1);
    o.fan_in_scale = 1;
    run(g, what, o);
  }
}

TEST_CASE(f16_norms) {
  if (no_f16())
    return;
  gr_graph *g = gr_graph_create();
  gr_tensor x = in16(g, "x", GR_SHAPE(3, 6, 7, 5));
  gr_tensor ga = gr_scale_shift(g, gr_param(g, "gamma", GR_SHAPE(6)), 1, 0), be = gr_param(g, "beta", GR_SHAPE(6));
  out16(g, gr_group_norm(g, x, 3, ga, be, 1e-5f), "affine");
  out16(g, gr_group_norm(g, x, 6, 0, 0, 1e-5f), "plain");
  out16(g, gr_group_norm(g, x, 1, ga, 0, 1e-3f), "gamma_only");
  out16(g, gr_group_norm(g, in16(g, "big", GR_SHAPE(2, 64, 32, 32)), 32, 0, 0, 1e-5f), "unet_size");
  run(g, "group_norm", one_op(-1, 1));
  g = gr_graph_create();
  out16(g, gr_softmax(g, in16(g, "a", GR_SHAPE(7, 33))), "a_out");
  out16(g, gr_softmax(g, in16(g, "b", GR_SHAPE(3, 1))), "b_out");
  /* logits to ±16: a power of two keeps the scaled halves exact */
  out16(g, gr_softmax(g, gr_scale_shift(g, in16(g, "c", GR_SHAPE(2, 300)), 16.0f, 0)), "c_out");
  run(g, "softmax", one_op(-1, 1));
}

TEST_CASE(f16_layout) {
  if (no_f16())
    return;
  gr_graph *g = gr_graph_create();
  gr_tensor x = in16(g, "x", GR_SHAPE(2, 3, 7, 5)), z = in16(g, "z", GR_SHAPE(2, 4, 7, 5));
  const int p[4] = {0, 2, 3, 1}, q[3] = {2, 0, 1};
  out16(g, gr_permute(g, x, p), "nhwc");
  out16(g, gr_permute(g, gr_reshape(g, x, GR_SHAPE(6, 7, 5)), q), "permute3");
  out16(g, gr_concat(g, x, z, 1), "concat_c");
  out16(g, gr_concat(g, x, x, 3), "concat_w");
  out16(g, gr_slice(g, z, 1, 1, 2), "slice_c");
  out16(g, gr_slice(g, x, 3, 4, 1), "slice_w");
  out16(g, gr_flip(g, x, 10u), "flip_cw");
  out16(g, gr_reshape(g, gr_silu(g, x), GR_SHAPE(-1, 35)), "reshaped");
  run(g, "layout ops", one_op(-1, 1));
  g = gr_graph_create();
  x = in16(g, "x", GR_SHAPE(2, 3, 7, 5));
  out16(g, gr_upsample2x(g, x, GR_NEAREST), "nearest");
  out16(g, gr_upsample2x(g, x, GR_BILINEAR), "bilinear");
  out16(g, gr_avg_pool2x(g, in16(g, "e", GR_SHAPE(1, 2, 6, 8))), "pool");
  out16(g, gr_upsample2x(g, in16(g, "one", GR_SHAPE(1, 1, 1, 1)), GR_BILINEAR), "bilinear_1x1");
  run(g, "resampling", one_op(-1, 1));
}

TEST_CASE(f16_attention) {
  if (no_f16())
    return;
  static const int64_t shapes[][3] = {{1, 1, 1}, {2, 3, 7}, {3, 8, 64}, {1, 33, 70}, {2, 64, 64}};
  for (int i = 0; i < 5; i++) {
    gr_graph *g = gr_graph_create();
    out16(g, gr_attention(g, in16(g, "x", GR_SHAPE(shapes[i][0], 3 * shapes[i][1], shapes[i][2]))), "y");
    run(g, "attention", one_op(-2, 2));
  }
  /* Times scaled on the device stay fp32 (in half, t = 700 would be off by up to 0.25). */
  gr_graph *g = gr_graph_create();
  gr_tensor t = gr_scale_shift(g, gr_input(g, "t", GR_SHAPE(7)), 1000.0f, 0.0f);
  out16(g, gr_time_embed(g, t, 64, 10000.0f), "emb");
  out16(g, gr_time_embed(g, t, 2, 100.0f), "emb2");
  check_opts o = one_op(0, 1);
  o.atol = 2e-4f; /* as the fp32 test: sin of large arguments */
  run(g, "time_embed", o);
}

/* conv -> + per-(n,c) operand -> silu -> + residual, with every operand a half. */
TEST_CASE(f16_fusion) {
  if (no_f16())
    return;
  gr_graph *g = gr_graph_create();
  gr_tensor x = in16(g, "x", GR_SHAPE(2, 8, 9, 7)), temb = in16(g, "temb", GR_SHAPE(2, 8, 1, 1));
  gr_tensor w = gr_param(g, "w", GR_SHAPE(8, 8, 3, 3)), b = gr_param(g, "b", GR_SHAPE(8));
  gr_tensor h = gr_silu(g, gr_add(g, gr_conv2d(g, x, w, b, &(gr_conv2d_desc){.padding = 1}), temb));
  gr_output(g, gr_add(g, x, h), "conv_chain");
  gr_tensor s = in16(g, "s", GR_SHAPE(2, 8, 1, 1));
  gr_tensor n = gr_silu(g, gr_group_norm(g, x, 4, 0, 0, 1e-5f));
  gr_output(g, gr_add(g, gr_mul(g, n, gr_scale_shift(g, s, 1, 1)), temb), "norm_chain");
  /* A chain: each stored intermediate (|v| up to ~2) is off by up to 2^-10 |v|, and the
   * sums after it cancel down to values near 0: an absolute tolerance of 2e-3. */
  check_opts o = {.atol = 2e-3f, .rtol = 2e-3f, .fan_in_scale = 1, .f16 = 1};
  check_graph(graph_tests_device(), g, "fusion chains, fp16 storage", &o);
  fprintf(stderr, "worst error %.2f x tolerance\n", o.worst);
  CHECK(o.fused.fused_nodes >= 5 && o.fused.f16_tensors >= 3, "fused %u nodes, %u halves", o.fused.fused_nodes,
        o.fused.f16_tensors);
  gr_graph_destroy(g);
}

/* Intermediates really are halves: values round, the arena halves, other ops stay fp32. */
TEST_CASE(f16_storage) {
  if (no_f16())
    return;
  rt_device *dev = graph_tests_device();
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(5));
  gr_output(g, gr_scale_shift(g, gr_scale_shift(g, x, 1, 0), 1, 0), "y");
  /* 2049 and 0.1 are not halves; either rounding (nearest even, toward zero) gives 2048
   * and 0.0999755859375. The others are. */
  const float in[5] = {2049.0f, 0.1f, 1000.5f, -3.0f, 65504.0f}, want[5] = {2048.0f, 0.0999755859375f, 1000.5f, -3.0f,
                                                                            65504.0f};
  for (int f16 = 0; f16 <= 1; f16++) {
    gr_plan *p;
    REQUIRE_OK(gr_plan_compile(g, dev, &(gr_plan_desc){.no_fusion = 1, .f16_storage = f16}, &p));
    float got[5];
    REQUIRE_OK(gr_plan_set(p, "x", in, 5));
    REQUIRE_OK(gr_plan_run(p));
    REQUIRE_OK(gr_plan_get(p, "y", got, 5));
    for (int i = 0; i < 5; i++)
      CHECK(got[i] == (f16 ? want[i] : in[i]), "%s plan: %.9g came back as %.9g", f16 ? "fp16" : "fp32", in[i],
            got[i]);
    CHECK(half_round(in[0]) == want[0] && half_round(in[1]) == want[1], "the host rounding agrees");
    gr_plan_stats st;
    gr_plan_get_stats(p, &st);
    CHECK(st.f16_tensors == (uint32_t)f16, "%u halves", st.f16_tensors);
    gr_plan_destroy(p);
  }
  gr_graph_destroy(g);

  /* A chain of four steps over 2×64×32×32: the arena holds one tensor, in half the bytes. */
  g = gr_graph_create();
  gr_tensor h = gr_input(g, "x", GR_SHAPE(2, 64, 32, 32));
  for (int i = 0; i < 4; i++)
    h = gr_unary_op(g, i % 2 ? GR_TANH : GR_SILU, h);
  gr_output(g, h, "y");
  gr_plan_stats st[2];
  for (int f16 = 0; f16 <= 1; f16++) {
    gr_plan *p;
    REQUIRE_OK(gr_plan_compile(g, dev, &(gr_plan_desc){.no_fusion = 1, .f16_storage = f16}, &p));
    gr_plan_get_stats(p, &st[f16]);
    gr_plan_destroy(p);
  }
  fprintf(stderr, "chain arena: fp32 %llu bytes, fp16 %llu bytes (%u halves)\n", (unsigned long long)st[0].arena_bytes,
          (unsigned long long)st[1].arena_bytes, st[1].f16_tensors);
  CHECK(st[0].arena_bytes == 2 * 64 * 32 * 32 * 4 && st[1].arena_bytes * 2 == st[0].arena_bytes,
        "the arena halves (%llu -> %llu bytes)", (unsigned long long)st[0].arena_bytes,
        (unsigned long long)st[1].arena_bytes);
  CHECK(st[1].unplanned_bytes * 2 == st[0].unplanned_bytes && st[1].f16_tensors == 3 && st[0].f16_tensors == 0,
        "three intermediates, each half the bytes (%u)", st[1].f16_tensors);
  gr_graph_destroy(g);

  /* pad has no fp16 kernel: what it reads and writes stays fp32, the rest need not. */
  g = gr_graph_create();
  x = gr_scale_shift(g, gr_input(g, "x", GR_SHAPE(2, 3, 7, 5)), 2, 0);
  h = gr_pad(g, x, (const int[4]){1, 0, 2, 1}, GR_PAD_REFLECT);
  gr_output(g, gr_silu(g, gr_scale_shift(g, h, 1, 0.5f)), "y");
  check_opts o = one_op(-1, 1);
  check_graph(dev, g, "a pad between steps, fp16 storage", &o);
  CHECK(o.unfused.f16_tensors == 1, "only the step after the pad is half (%u)", o.unfused.f16_tensors);
  gr_graph_destroy(g);
}

/* The U-Net forward with fp16 storage, fused, unfused and with norms folded, against the
 * CPU reference. About 60 stored tensors deep, so the tolerance is a chain's: |error| <=
 * 2e-3 + 5e-3 |value| (fp32 plans: 2e-4 + 2e-3 |value|). */
TEST_CASE(f16_unet) {
  if (no_f16())
    return;
  gr_unet_config cfg = gr_unet_config_default(1, 32);
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 1, 32, 32)), t = gr_input(g, "t", GR_SHAPE(2));
  gr_output(g, gr_unet(g, &cfg, x, t), "eps");
  rt_device *dev = graph_tests_device();
  check_opts o = {.atol = 2e-3f, .rtol = 5e-3f, .fan_in_scale = 1, .f16 = 1};
  check_graph(dev, g, "U-Net forward, fp16 storage", &o);
  check_opts f = {.atol = 2e-3f, .rtol = 5e-3f, .fan_in_scale = 1, .f16 = 1, .fused_only = 1, .fold_norms = 1};
  check_graph(dev, g, "U-Net forward, fp16 storage, norms folded", &f);
  gr_plan *p;
  REQUIRE_OK(gr_plan_compile(g, dev, NULL, &p));
  gr_plan_stats fp32;
  gr_plan_get_stats(p, &fp32);
  gr_plan_destroy(p);
  fprintf(stderr, "fp16 storage: worst error %.3f x tolerance (%.3f folded); %u halves fused, %u unfused; arena "
          "%.3f MiB against %.3f MiB fp32 (unplanned %.2f against %.2f)\n", o.worst, f.worst, o.fused.f16_tensors,
          o.unfused.f16_tensors, o.fused.arena_bytes / 1048576.0, fp32.arena_bytes / 1048576.0,
          o.fused.unplanned_bytes / 1048576.0, fp32.unplanned_bytes / 1048576.0);
  CHECK(fp32.f16_tensors == 0, "an fp32 plan stores no halves");
  CHECK(o.fused.arena_bytes * 10 <= fp32.arena_bytes * 6, "the arena shrinks to at most 60 %% (%llu vs %llu bytes)",
        (unsigned long long)o.fused.arena_bytes, (unsigned long long)fp32.arena_bytes);
  CHECK(o.fused.dispatches == fp32.dispatches, "the same dispatches (%u vs %u)", o.fused.dispatches, fp32.dispatches);
  gr_graph_destroy(g);
}

/* A training graph (a small U-Net's denoising loss and its gradients w.r.t. the input and a
 * few weights) with fp16 storage: the backward pass mixes ops with and without fp16
 * kernels (the conv weight gradient stays fp32); against the CPU reference. Gradients are
 * not loss-scaled, so this is a check that nothing breaks, with a chain's tolerance. */
TEST_CASE(f16_grad_unet) {
  if (no_f16())
    return;
  gr_unet_config cfg = {.image_channels = 1, .image_size = 8, .widths = {8, 16}, .levels = 2,
                        .blocks_per_level = 1, .attention_level_mask = 2, .groups = 4, .time_dim = 8};
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 1, 8, 8)), t = gr_input(g, "t", GR_SHAPE(2));
  gr_tensor eps = gr_unet(g, &cfg, x, t);
  gr_tensor d = gr_sub(g, eps, gr_input(g, "target", GR_SHAPE(2, 1, 8, 8)));
  gr_tensor loss = gr_reduce_op(g, GR_MEAN, gr_unary_op(g, GR_SQUARE, d), 15u);
  gr_tensor wrt[4] = {x, gr_find(g, "stem.weight"), gr_find(g, "down1.attn0.qkv.weight"),
                      gr_find(g, "mid.res0.norm1.gamma")}, grads[4];
  REQUIRE_OK(gr_grad(g, loss, 4, wrt, grads));
  gr_output(g, loss, "loss");
  for (int i = 0; i < 4; i++) {
    char name[16];
    snprintf(name, sizeof name, "grad%d", i);
    gr_output(g, grads[i], name);
  }
  check_opts o = {.lo = -0.5f, .hi = 0.5f, .atol = 2e-5f, .rtol = 2e-2f, .fan_in_scale = 1, .f16 = 1};
  check_graph(graph_tests_device(), g, "U-Net loss and gradients, fp16 storage", &o);
  fprintf(stderr, "worst error %.3f x tolerance; %u halves fused, %u unfused\n", o.worst, o.fused.f16_tensors,
          o.unfused.f16_tensors);
  CHECK(o.fused.f16_tensors > 50, "the backward pass stores halves too (%u)", o.fused.f16_tensors);
  gr_graph_destroy(g);
}

/* Without storageBuffer16BitAccess (run with APS_QUIRK_NO_FP16_STORAGE=1) a plan asking for
 * fp16 storage is refused with a message that says why; fp32 plans still compile. */
TEST_CASE(f16_unsupported) {
  rt_device *dev = graph_tests_device();
  gr_graph *g = gr_graph_create();
  gr_output(g, gr_silu(g, gr_silu(g, gr_input(g, "x", GR_SHAPE(3)))), "y");
  gr_plan *p = NULL;
  aps_status s = gr_plan_compile(g, dev, &(gr_plan_desc){.no_fusion = 1, .f16_storage = 1}, &p);
  if (rt_device_caps(dev)->fp16_storage) {
    CHECK(s == APS_OK, "the device has fp16 storage: %s", aps_last_error());
  } else {
    CHECK(s == APS_ERR_UNSUPPORTED && !p && strstr(aps_last_error(), "storageBuffer16BitAccess"),
          "refused, naming the feature: %s", aps_last_error());
  }
  gr_plan_destroy(p);
  p = NULL;
  REQUIRE_OK(gr_plan_compile(g, dev, &(gr_plan_desc){.no_fusion = 1}, &p));
  gr_plan_destroy(p);
  gr_graph_destroy(g);
}
