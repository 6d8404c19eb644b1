/* Fusion and memory planning: fused and unfused plans agree with the reference, fusion
 * removes dispatches, and the memory plan reuses space. */
#include "graph_check.h"
#include "layers.h"

rt_device *graph_tests_device(void);

/* Fused and unfused plans against the reference (check_graph), the counts printed, and, where
 * both plans ran, each fused node one dispatch fewer. */
static void check_fusion(gr_graph *g, const char *what, check_opts *o) {
  check_graph(graph_tests_device(), g, what, o);
  fprintf(stderr, "%s: fused %u dispatches, %u nodes folded; unfused %u dispatches\n", what, o->fused.dispatches,
          o->fused.fused_nodes, o->unfused.dispatches);
  if (!o->fused_only)
    CHECK(o->fused.dispatches + o->fused.fused_nodes == o->unfused.dispatches,
          "%s: each fold removes one dispatch (%u + %u vs %u)", what, o->fused.dispatches, o->fused.fused_nodes,
          o->unfused.dispatches);
}

/* conv -> + per-(n,c) bias -> silu -> + residual; group norm -> silu -> * (1 + s) + t. */
static gr_graph *chains(void) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 8, 9, 7)), temb = gr_input(g, "temb", GR_SHAPE(2, 8, 1, 1));
  gr_tensor w = gr_param(g, "w", GR_SHAPE(8, 8, 3, 3)), b = gr_param(g, "b", GR_SHAPE(8));
  gr_tensor h = gr_conv2d(g, x, w, b, &(gr_conv2d_desc){.padding = 1});
  h = gr_add(g, h, temb);
  h = gr_silu(g, h);
  h = gr_add(g, x, h); /* residual, operand first */
  gr_output(g, h, "conv_chain");
  gr_tensor s = gr_input(g, "s", GR_SHAPE(2, 8, 1, 1)), t = gr_input(g, "t", GR_SHAPE(1, 8, 1, 1));
  gr_tensor n = gr_group_norm(g, x, 4, gr_param(g, "gamma", GR_SHAPE(8)), 0, 1e-5f);
  n = gr_mul(g, n, gr_scale_shift(g, s, 1.0f, 1.0f));
  n = gr_add(g, n, t);
  n = gr_silu(g, n);
  gr_output(g, n, "norm_chain");
  gr_tensor m = gr_input(g, "m", GR_SHAPE(5, 12)), mw = gr_param(g, "mw", GR_SHAPE(12, 16));
  gr_tensor mb = gr_param(g, "mb", GR_SHAPE(16));
  gr_output(g, gr_leaky_relu(g, gr_add(g, gr_matmul(g, m, mw, 0, 0), mb), 0.1f), "linear_chain");
  /* actnorm after a 1x1 conv: both broadcasts fold into the conv. */
  gr_tensor w1 = gr_param(g, "w1", GR_SHAPE(8, 8, 1, 1));
  gr_output(g, gr_layer_actnorm(g, "actnorm", gr_conv2d(g, x, w1, 0, NULL)), "conv_actnorm");
  /* Elementwise anchors: (a - b) * 2 then exp. */
  gr_output(g, gr_unary_op(g, GR_EXP, gr_scale_shift(g, gr_sub(g, m, gr_const_scalar(g, 0.5f)), 2.0f, 0)), "eltwise_chain");
  return g;
}

TEST_CASE(fusion_chains) {
  gr_graph *g = chains();
  check_opts o = {.atol = 1e-4f};
  check_fusion(g, "fusion chains", &o);
  if (check_has_buffers(graph_tests_device(), 16))
    CHECK(o.fused.fused_nodes >= 11, "the chains were folded (%u nodes)", o.fused.fused_nodes);
  else /* no operands: only the unary steps fold (silu, silu, leaky_relu, the affine, exp) */
    CHECK(o.fused.fused_nodes == 5, "only the unary steps were folded (%u nodes)", o.fused.fused_nodes);
  gr_graph_destroy(g);
}

/* What must not fuse: a tensor used twice, an output, a broadcast the epilogue cannot
 * express, and an operand computed after the anchor. */
TEST_CASE(fusion_counts) {
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(2, 3, 4, 5)), b = gr_input(g, "b", GR_SHAPE(2, 3, 4, 5));
  gr_tensor s = gr_add(g, a, b);
  gr_output(g, gr_mul(g, gr_silu(g, s), s), "used_twice"); /* s feeds two nodes: silu cannot fold into add */
  gr_tensor o1 = gr_silu(g, a);
  gr_output(g, o1, "out1");
  gr_output(g, gr_unary_op(g, GR_EXP, o1), "after_output"); /* o1 is an output: exp cannot fold */
  gr_tensor row = gr_input(g, "row", GR_SHAPE(5));
  gr_output(g, gr_add(g, gr_silu(g, b), row), "w_broadcast"); /* [5] broadcasts along W: not an epilogue form */
  gr_tensor sb = gr_silu(g, b);
  gr_tensor late = gr_unary_op(g, GR_ABS, gr_input(g, "c", GR_SHAPE(2, 3, 4, 5)));
  gr_output(g, late, "late");
  gr_output(g, gr_add(g, sb, late), "late_operand"); /* late is computed after sb */
  check_opts o = {0};
  check_graph(graph_tests_device(), g, "fusion limits", &o);
  fprintf(stderr, "folded %u nodes\n", o.fused.fused_nodes);
  uint32_t want = check_has_buffers(graph_tests_device(), 8) ? 1 : 0; /* a binary step needs 8 */
  CHECK(o.fused.fused_nodes == want, "only silu(s) * s folds (into silu), given 8 storage buffers — %u folded, %u expected",
        o.fused.fused_nodes, want);
  gr_graph_destroy(g);
}

/* A long chain of same-sized intermediates needs two slots, not one per tensor. */
TEST_CASE(memory_plan) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(4, 16, 16, 16));
  gr_tensor w = gr_param(g, "w", GR_SHAPE(16, 16, 3, 3));
  gr_tensor h = x;
  for (int i = 0; i < 12; i++)
    h = gr_conv2d(g, gr_silu(g, h), w, 0, &(gr_conv2d_desc){.padding = 1});
  gr_output(g, h, "y");
  check_opts o = {.atol = 1e-4f, .rtol = 1e-3f, .fan_in_scale = 1};
  check_graph(graph_tests_device(), g, "memory plan chain", &o);
  uint64_t tensor = 4 * 16 * 16 * 16 * 4;
  fprintf(stderr, "unfused: arena %llu bytes for %llu bytes of intermediates; fused: arena %llu of %llu\n",
          (unsigned long long)o.unfused.arena_bytes, (unsigned long long)o.unfused.unplanned_bytes,
          (unsigned long long)o.fused.arena_bytes, (unsigned long long)o.fused.unplanned_bytes);
  CHECK(o.unfused.unplanned_bytes == 23 * tensor, "23 intermediates");
  CHECK(o.unfused.arena_bytes <= 2 * tensor, "in place and reuse: at most 2 live slots (%llu)",
        (unsigned long long)o.unfused.arena_bytes);
  gr_graph_destroy(g);
}

/* GroupNorm between two convolutions folds away (statistics from the producing conv, the
 * normalisation on the consuming conv's loads): groups of 4, 24, 2 and 16 channels, pixel
 * counts that are not multiples of the 32-pixel tile, rows that are not multiples of 4,
 * reflect padding, a strided consumer, a mean far from zero, with and without gamma, beta
 * and SiLU, and a producer output that other nodes also read. A norm with SiLU on a large
 * tensor (32x16x16 per sample) stays a dispatch of its own (see passes/fusion.c). */
TEST_CASE(fusion_group_norm) {
  gr_graph *g = gr_graph_create();
  /* 1: conv -> + per-(n,c) shift -> GN(4 groups of 4) -> SiLU -> conv, + the first conv's output */
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 16, 9, 7)), shift = gr_input(g, "shift", GR_SHAPE(2, 16, 1, 1));
  gr_tensor a = gr_add(g, gr_conv2d(g, x, gr_param(g, "wa", GR_SHAPE(16, 16, 3, 3)), gr_param(g, "ba", GR_SHAPE(16)),
                                    &(gr_conv2d_desc){.padding = 1}), shift);
  gr_tensor n = gr_silu(g, gr_group_norm(g, a, 4, gr_param(g, "ga", GR_SHAPE(16)), gr_param(g, "bta", GR_SHAPE(16)), 1e-5f));
  gr_tensor b = gr_conv2d(g, n, gr_param(g, "wb", GR_SHAPE(16, 16, 3, 3)), 0, &(gr_conv2d_desc){.padding = 1});
  gr_output(g, gr_add(g, b, a), "y1");
  /* 2: 1x1 conv + 5 -> GN(1 group of 24, beta only) -> reflect-padded conv */
  gr_tensor x2 = gr_input(g, "x2", GR_SHAPE(3, 24, 8, 8));
  gr_tensor a2 = gr_add(g, gr_conv2d(g, x2, gr_param(g, "wc", GR_SHAPE(24, 24, 1, 1)), 0, NULL), gr_const_scalar(g, 5.0f));
  gr_tensor n2 = gr_group_norm(g, a2, 1, 0, gr_param(g, "btc", GR_SHAPE(24)), 1e-5f);
  gr_output(g, gr_conv2d(g, n2, gr_param(g, "wd", GR_SHAPE(8, 24, 3, 3)), 0,
                         &(gr_conv2d_desc){.padding = 1, .pad_mode = GR_PAD_REFLECT}), "y2");
  /* 3: GN(6 groups of 2, gamma only) -> SiLU -> stride-2 conv; 12 channels (not a multiple of 8) */
  gr_tensor x3 = gr_input(g, "x3", GR_SHAPE(1, 5, 5, 5));
  gr_tensor a3 = gr_conv2d(g, x3, gr_param(g, "we", GR_SHAPE(12, 5, 3, 3)), 0, &(gr_conv2d_desc){.padding = 1});
  gr_tensor n3 = gr_silu(g, gr_group_norm(g, a3, 6, gr_param(g, "ge", GR_SHAPE(12)), 0, 1e-5f));
  gr_output(g, gr_conv2d(g, n3, gr_param(g, "wf", GR_SHAPE(4, 12, 3, 3)), 0, &(gr_conv2d_desc){.stride = 2, .padding = 1}),
            "y3");
  /* 4: GN(2 groups of 16) -> SiLU -> conv at 8x8 */
  gr_tensor x4 = gr_input(g, "x4", GR_SHAPE(2, 8, 8, 8));
  gr_tensor a4 = gr_conv2d(g, x4, gr_param(g, "wg", GR_SHAPE(32, 8, 3, 3)), gr_param(g, "bg", GR_SHAPE(32)),
                           &(gr_conv2d_desc){.padding = 1});
  gr_tensor n4 = gr_silu(g, gr_group_norm(g, a4, 2, gr_param(g, "gg", GR_SHAPE(32)), gr_param(g, "btg", GR_SHAPE(32)), 1e-5f));
  gr_output(g, gr_conv2d(g, n4, gr_param(g, "wh", GR_SHAPE(8, 32, 3, 3)), 0, &(gr_conv2d_desc){.padding = 1}), "y4");
  /* 5: as 4 at 16x16: too large to fold SiLU into the consumer's loads */
  gr_tensor x5 = gr_input(g, "x5", GR_SHAPE(1, 8, 16, 16));
  gr_tensor a5 = gr_conv2d(g, x5, gr_param(g, "wi", GR_SHAPE(32, 8, 3, 3)), 0, &(gr_conv2d_desc){.padding = 1});
  gr_tensor n5 = gr_silu(g, gr_group_norm(g, a5, 2, 0, 0, 1e-5f));
  gr_output(g, gr_conv2d(g, n5, gr_param(g, "wj", GR_SHAPE(8, 32, 3, 3)), 0, &(gr_conv2d_desc){.padding = 1}), "y5");
  check_opts o = {.atol = 2e-4f, .rtol = 1e-3f, .fan_in_scale = 1, .fold_norms = 1};
  check_fusion(g, "group norm folded between convs", &o);
  if (check_has_buffers(graph_tests_device(), 16))
    CHECK(o.fused.dispatches == 11, "two convs per case, and case 5's norm (%u dispatches)", o.fused.dispatches);
  else /* the statistics, gamma and beta would be bindings 8-11: no norm folds */
    CHECK(o.fused.dispatches > 11, "no norm folds with %u storage buffers (%u dispatches)",
          rt_device_caps(graph_tests_device())->max_storage_buffers, o.fused.dispatches);
  gr_graph_destroy(g);
}

/* A concatenation of conv outputs along channels is stored by the convs in place: batch 3
 * and 1, odd channel counts, a producer whose output other nodes read too (it stores both),
 * with convs in between that reuse memory, the up-path block (GroupNorm and a 1x1 conv both
 * read the concatenation), a concatenation that is itself an output; and concatenations that
 * stay dispatches (an input that no conv produced, another axis). */
TEST_CASE(fusion_concat) {
  gr_graph *g = gr_graph_create();
  /* 1: batch 3; a (7 channels) is also read by a chain ending in b (33 channels) */
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 5, 9, 7));
  gr_tensor a = gr_layer_conv(g, "a", x, 7, 3, 1), h = a;
  const char *chain[3] = {"c0", "c1", "c2"};
  for (int i = 0; i < 3; i++)
    h = gr_silu(g, gr_layer_conv(g, chain[i], h, 7, 3, 1));
  gr_tensor b = gr_layer_conv(g, "b", h, 33, 1, 1);
  gr_tensor cat = gr_concat(g, b, a, 1);
  gr_tensor y = gr_layer_conv(g, "conv2", gr_silu(g, gr_group_norm(g, cat, 1, 0, 0, 1e-5f)), 3, 3, 1);
  gr_tensor skip = gr_layer_conv(g, "skip", cat, 3, 1, 1);
  gr_output(g, gr_add(g, y, skip), "y1");
  /* 2: batch 1, 3 + 3 channels, each conv read by the concatenation only, which is an output */
  gr_tensor x2 = gr_input(g, "x2", GR_SHAPE(1, 3, 6, 8));
  gr_tensor p = gr_layer_conv(g, "p", x2, 3, 3, 1), q = gr_layer_conv(g, "q", x2, 3, 1, 1);
  gr_output(g, gr_concat(g, p, q, 1), "cat2");
  /* 3: not fused */
  gr_output(g, gr_concat(g, gr_layer_conv(g, "r", x2, 3, 3, 1), x2, 1), "cat3");
  gr_tensor s = gr_layer_conv(g, "s", x2, 3, 3, 1), t = gr_layer_conv(g, "t", x2, 3, 1, 1);
  gr_output(g, gr_concat(g, s, t, 2), "cat4");
  check_opts o = {.atol = 1e-4f, .rtol = 1e-3f, .fan_in_scale = 1};
  check_fusion(g, "concatenations stored by convs", &o);
  /* 1: a, c0-c2, b, the norm, conv2 with skip merged; 2: p, q; 3: r, concat, s, t, concat */
  if (check_has_buffers(graph_tests_device(), 16))
    CHECK(o.fused.dispatches == 14, "14 dispatches (%u)", o.fused.dispatches);
  else /* a second output would be binding 12: no concatenation is stored by convs */
    CHECK(o.fused.dispatches > 14, "no concatenation fused (%u dispatches)", o.fused.dispatches);
  gr_graph_destroy(g);
}

/* Nearest 2x upsampling read by a conv is read by the conv: batch 3 and 1, odd sizes and
 * channel counts, output rows that are (the kernel's row windows, odd and even padding) and
 * are not multiples of 4, zero and reflect padding, a strided conv; not folded: bilinear,
 * and an upsampled tensor that is also an output. */
TEST_CASE(fusion_upsample) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 7, 5, 8)), x1 = gr_input(g, "x1", GR_SHAPE(1, 3, 4, 4));
  gr_output(g, gr_layer_conv(g, "u1", gr_upsample2x(g, x, GR_NEAREST), 3, 3, 1), "u1");
  gr_output(g, gr_conv2d(g, gr_upsample2x(g, x1, GR_NEAREST), gr_param(g, "w2", GR_SHAPE(33, 3, 3, 3)), 0,
                         &(gr_conv2d_desc){.padding = 1, .pad_mode = GR_PAD_REFLECT}), "u2");
  gr_output(g, gr_conv2d(g, gr_upsample2x(g, x1, GR_NEAREST), gr_param(g, "w3", GR_SHAPE(7, 3, 3, 3)), 0,
                         &(gr_conv2d_desc){.stride = 2, .padding = 1}), "u3");
  gr_output(g, gr_layer_conv(g, "u4", gr_upsample2x(g, x1, GR_BILINEAR), 3, 3, 1), "u4");
  gr_output(g, gr_layer_conv(g, "u6", gr_upsample2x(g, gr_input(g, "x6", GR_SHAPE(1, 3, 3, 5)), GR_NEAREST), 7, 3, 1),
            "u6");
  gr_output(g, gr_layer_conv(g, "u7", gr_upsample2x(g, x1, GR_NEAREST), 3, 5, 1), "u7");
  gr_tensor up = gr_upsample2x(g, x1, GR_NEAREST);
  gr_output(g, up, "u5_up");
  gr_output(g, gr_layer_conv(g, "u5", up, 3, 3, 1), "u5");
  check_opts o = {.atol = 1e-4f, .rtol = 1e-3f, .fan_in_scale = 1};
  check_fusion(g, "upsampling read by convs", &o);
  CHECK(o.fused.dispatches == 9, "u1-u3, u6, u7 one dispatch each, u4 and u5 two (%u)", o.fused.dispatches);
  gr_graph_destroy(g);
}

/* A residual block's 1x1 skip conv merges into the conv whose output it adds: batch 3 and 1,
 * odd channel counts, with and without biases, an epilogue step after the add, a residual
 * block (also with its GroupNorms folded); not merged: a strided skip conv. */
TEST_CASE(fusion_skip_conv) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 33, 6, 5));
  gr_tensor h = gr_layer_conv(g, "h1", x, 7, 3, 1), s = gr_layer_conv(g, "s1", x, 7, 1, 1);
  gr_output(g, gr_silu(g, gr_add(g, h, s)), "y1");
  gr_tensor x2 = gr_input(g, "x2", GR_SHAPE(1, 7, 8, 8));
  h = gr_conv2d(g, x2, gr_param(g, "h2", GR_SHAPE(3, 7, 3, 3)), 0, &(gr_conv2d_desc){.padding = 1});
  s = gr_conv2d(g, x2, gr_param(g, "s2", GR_SHAPE(3, 7, 1, 1)), 0, NULL);
  gr_output(g, gr_add(g, s, h), "y2");
  gr_output(g, gr_layer_resblock(g, "block", gr_input(g, "x3", GR_SHAPE(3, 8, 8, 8)), 0, 16, 4), "y3");
  h = gr_conv2d(g, x2, gr_param(g, "h4", GR_SHAPE(3, 7, 3, 3)), 0, &(gr_conv2d_desc){.stride = 2, .padding = 1});
  s = gr_conv2d(g, x2, gr_param(g, "s4", GR_SHAPE(3, 7, 1, 1)), 0, &(gr_conv2d_desc){.stride = 2});
  gr_output(g, gr_add(g, h, s), "y4");
  for (int fold = 0; fold < 2; fold++) {
    check_opts o = {.atol = 1e-4f, .rtol = 1e-3f, .fan_in_scale = 1, .fused_only = fold, .fold_norms = fold};
    check_fusion(g, fold ? "skip convs merged, norms folded" : "skip convs merged", &o);
    /* y1, y2: one each; y3: the two norms and conv1, conv2 with the skip (its norm2 folds); y4: two */
    if (check_has_buffers(graph_tests_device(), 16))
      CHECK(o.fused.dispatches == 8u - (unsigned)fold, "%u dispatches", o.fused.dispatches);
    else /* x2, w2, b2 would be bindings 13-15: no skip conv merges */
      CHECK(o.fused.dispatches > 8u, "no skip conv merged (%u dispatches)", o.fused.dispatches);
  }
  gr_graph_destroy(g);
}
