/* Gradients of the smooth ops and of layers built from them (elementwise, reductions,
 * layout, bilinear upsampling, matmul, conv2d, group norm, attention, an MLP, a U-Net)
 * against finite differences on the CPU reference, then the forward+backward graph on the
 * device (fd_check.h); and the error of differentiating through an assignment. */
#include <stdio.h>
#include <string.h>

#include "fd_check.h"
#include "graph_check.h"
#include "layers.h"

TEST_CASE(grad_elementwise) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 7)), y = gr_param(g, "y", GR_SHAPE(7)), r = gr_input(g, "r", GR_SHAPE(3, 7));
  gr_tensor sq = gr_scale_shift(g, gr_unary_op(g, GR_SQUARE, x), 1.0f, 1.0f);
  gr_tensor e = gr_mul(g, gr_unary_op(g, GR_TANH, x), gr_unary_op(g, GR_SIGMOID, y));
  e = gr_add(g, e, gr_div(g, gr_silu(g, x), gr_scale_shift(g, gr_unary_op(g, GR_SQUARE, y), 1.0f, 1.0f)));
  e = gr_sub(g, e, gr_unary_op(g, GR_SQRT, sq));
  e = gr_add(g, e, gr_unary_op(g, GR_LOG, sq));
  e = gr_add(g, e, gr_unary_op(g, GR_RSQRT, gr_scale_shift(g, sq, 1.0f, 1.0f)));
  e = gr_add(g, e, gr_mul(g, gr_unary_op(g, GR_SOFTPLUS, x), gr_unary_op(g, GR_EXP, gr_scale_shift(g, y, 0.5f, 0))));
  e = gr_add(g, e, gr_unary_op(g, GR_NEG, gr_mul(g, x, y)));
  gr_tensor loss = gr_mul(g, e, r);
  gr_tensor wrt[2] = {x, y};
  fd_check(g, loss, 2, wrt, "elementwise", (fd_opts){.lo = -1.5f, .hi = 1.5f});
}

TEST_CASE(grad_reductions) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 5)), r = gr_input(g, "r", GR_SHAPE(2, 3, 5));
  gr_tensor l = gr_reduce_op(g, GR_MEAN, gr_mul(g, gr_softmax(g, x), r), 6u);
  l = gr_add(g, l, gr_reduce_op(g, GR_VAR, x, 1u));
  l = gr_add(g, l, gr_reduce_op(g, GR_LOGSUMEXP, gr_mul(g, x, r), 5u));
  l = gr_add(g, l, gr_scale_shift(g, gr_reduce_op(g, GR_SUMSQ, x, 7u), 0.1f, 0.0f));
  l = gr_add(g, l, gr_reduce_op(g, GR_SUM, gr_mul(g, x, r), 2u));
  /* the loss is a few values each summed in fp32 inside the graph: a larger step keeps their
   * rounding out of the differences (the ops are smooth, so truncation stays O(h⁴)) */
  fd_check(g, l, 1, &x, "reductions and softmax", (fd_opts){.h = 0.05});
}

TEST_CASE(grad_layout) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 4, 6)), t = gr_input(g, "t", GR_SHAPE(2));
  gr_tensor r = gr_input(g, "r", GR_SHAPE(2, 6, 8, 12));
  const int perm[4] = {0, 2, 3, 1};
  gr_tensor p = gr_permute(g, gr_unary_op(g, GR_TANH, x), perm);             /* [2, 4, 6, 3] */
  gr_tensor back = gr_reshape(g, p, GR_SHAPE(2, 3, 4, 6));                   /* a different layout */
  gr_tensor up = gr_upsample2x(g, gr_concat(g, x, back, 1), GR_NEAREST);     /* [2, 6, 8, 12] */
  gr_tensor l = gr_mul(g, up, r);
  gr_tensor pooled = gr_avg_pool2x(g, gr_slice(g, l, 1, 1, 4));             /* [2, 4, 4, 6] */
  gr_tensor emb = gr_time_embed(g, t, 8, 100.0f);                            /* [2, 8] */
  gr_tensor loss = gr_add(g, gr_reduce_op(g, GR_SUM, pooled, 14u), gr_reshape(g, emb, GR_SHAPE(2, 8, 1, 1)));
  gr_tensor wrt[2] = {x, t};
  fd_check(g, loss, 2, wrt, "layout, resampling, time embedding", (fd_opts){0});
}

/* A small MLP with a mean squared error: gradients w.r.t. every weight and the input. */
TEST_CASE(grad_mlp) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(5, 12)), target = gr_input(g, "target", GR_SHAPE(5, 3));
  gr_tensor h = gr_silu(g, gr_layer_linear(g, "l1", x, 16));
  gr_tensor out = gr_unary_op(g, GR_TANH, gr_layer_linear(g, "l2", h, 3));
  gr_tensor loss = gr_reduce_op(g, GR_MEAN, gr_unary_op(g, GR_SQUARE, gr_sub(g, out, target)), 3u);
  gr_tensor wrt[5] = {x, gr_find(g, "l1.weight"), gr_find(g, "l1.bias"), gr_find(g, "l2.weight"),
                      gr_find(g, "l2.bias")};
  fd_check(g, loss, 5, wrt, "MLP", (fd_opts){0});
}

/* Batched matmuls with broadcasting, as attention uses them. */
TEST_CASE(grad_matmul) {
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(2, 3, 4)), b = gr_param(g, "b", GR_SHAPE(4, 5));
  gr_tensor c = gr_input(g, "c", GR_SHAPE(2, 6, 4)), r = gr_input(g, "r", GR_SHAPE(2, 3, 6));
  gr_tensor l = gr_add(g, gr_reduce_op(g, GR_SUM, gr_matmul(g, a, b, 0, 0), 4u),
                       gr_reduce_op(g, GR_SUM, gr_mul(g, gr_matmul(g, a, c, 0, 1), r), 4u));
  gr_tensor wrt[3] = {a, b, c};
  fd_check(g, l, 3, wrt, "batched matmul", (fd_opts){0});
}

/* Reflect-padded convolutions: the conv of the reflect-padded input, back through the pad. */
TEST_CASE(grad_conv2d_reflect) {
  static const int cases[][4] = {/* k, stride, dilation, groups */ {3, 1, 1, 1}, {3, 2, 1, 1}, {3, 1, 2, 2}, {5, 1, 1, 1}};
  for (int i = 0; i < 4; i++) {
    const int *c = cases[i];
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 4, 7, 6));
    gr_tensor w = gr_param(g, "w", GR_SHAPE(4, 4 / c[3], c[0], c[0])), b = gr_param(g, "b", GR_SHAPE(4));
    gr_tensor y = gr_conv2d(g, x, w, b, &(gr_conv2d_desc){.stride = c[1], .padding = c[0] / 2 * c[2], .dilation = c[2],
                                                          .groups = c[3], .pad_mode = GR_PAD_REFLECT});
    gr_tensor r = gr_input(g, "r", gr_tensor_shape(g, y));
    gr_tensor wrt[3] = {x, w, b};
    char what[80];
    snprintf(what, sizeof what, "reflect conv2d %dx%d stride %d dilation %d groups %d", c[0], c[0], c[1], c[2], c[3]);
    fd_check(g, gr_mul(g, y, r), 3, wrt, what, (fd_opts){.h = 0.05}); /* 100-term fp32 sums per output */
  }
}

/* Convolutions of every stride and padding the U-Net uses, and odd sizes. */
TEST_CASE(grad_conv2d) {
  static const int cases[][7] = {/* n, c, o, h, w, k, stride, (pad = k / 2) */
                                 {2, 3, 4, 7, 6, 3, 1}, {1, 2, 3, 8, 8, 3, 2}, {2, 3, 2, 7, 9, 3, 2},
                                 {1, 4, 5, 5, 5, 1, 1}, {1, 2, 2, 6, 5, 5, 1}};
  for (int i = 0; i < 5; i++) {
    const int *c = cases[i];
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(c[0], c[1], c[3], c[4]));
    gr_tensor w = gr_param(g, "w", GR_SHAPE(c[2], c[1], c[5], c[5])), b = gr_param(g, "b", GR_SHAPE(c[2]));
    gr_tensor y = gr_conv2d(g, x, w, b, &(gr_conv2d_desc){.stride = c[6], .padding = c[5] / 2});
    gr_tensor r = gr_input(g, "r", gr_tensor_shape(g, y));
    gr_tensor wrt[3] = {x, w, b};
    char what[64];
    snprintf(what, sizeof what, "conv2d %dx%d stride %d on %dx%d", c[5], c[5], c[6], c[3], c[4]);
    fd_check(g, gr_mul(g, y, r), 3, wrt, what, (fd_opts){0});
  }
}

TEST_CASE(grad_group_norm) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 6, 3, 5)), r = gr_input(g, "r", GR_SHAPE(2, 6, 3, 5));
  gr_tensor ga = gr_param(g, "gamma", GR_SHAPE(6)), be = gr_param(g, "beta", GR_SHAPE(6));
  gr_tensor y = gr_silu(g, gr_group_norm(g, x, 3, ga, be, 1e-5f));
  gr_tensor wrt[3] = {x, ga, be};
  fd_check(g, gr_mul(g, y, r), 3, wrt, "group norm + SiLU", (fd_opts){0});
}

TEST_CASE(grad_attention) {
  gr_graph *g = gr_graph_create();
  gr_tensor qkv = gr_input(g, "qkv", GR_SHAPE(2, 3 * 4, 5)), r = gr_input(g, "r", GR_SHAPE(2, 4, 5));
  fd_check(g, gr_mul(g, gr_attention(g, qkv), r), 1, &qkv, "attention", (fd_opts){0});
}

/* A small U-Net end to end: the gradient of a denoising loss w.r.t. a few weights and the
 * input image (the ELBO will need that one). */
TEST_CASE(grad_unet) {
  gr_unet_config cfg = {.image_channels = 1, .image_size = 8, .widths = {8, 16}, .levels = 2,
                        .blocks_per_level = 1, .attention_level_mask = 2, .groups = 4, .time_dim = 8};
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 1, 8, 8)), t = gr_input(g, "t", GR_SHAPE(2));
  gr_tensor target = gr_input(g, "target", GR_SHAPE(2, 1, 8, 8));
  gr_tensor eps = gr_unet(g, &cfg, x, t);
  gr_tensor loss = gr_reduce_op(g, GR_MEAN, gr_unary_op(g, GR_SQUARE, gr_sub(g, eps, target)), 15u);
  gr_tensor wrt[5] = {x, gr_find(g, "stem.weight"), gr_find(g, "down1.attn0.qkv.weight"),
                      gr_find(g, "mid.res0.norm1.gamma"), gr_find(g, "temb_proj.weight")};
  CHECK(wrt[1] && wrt[2] && wrt[3] && wrt[4], "the parameters exist");
  fd_check(g, loss, 5, wrt, "U-Net", (fd_opts){.lo = -0.5f, .hi = 0.5f, .points = 12});
}

/* flip's VJP is flip: along W and H of an image, along the batch and H of x times its
 * mirror image (each element feeding two outputs), and along a vector. */
TEST_CASE(grad_flip) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 5, 4)), v = gr_param(g, "v", GR_SHAPE(7));
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_flip(g, gr_unary_op(g, GR_TANH, x), 12u), "r1"));
  l = fd_join(g, l, fd_weighted(g, gr_mul(g, gr_flip(g, x, 5u), x), "r2"));
  l = fd_join(g, l, fd_weighted(g, gr_flip(g, gr_unary_op(g, GR_SQUARE, v), 1u), "r3"));
  gr_tensor wrt[2] = {x, v};
  fd_check(g, l, 2, wrt, "flip", (fd_opts){0});
}

TEST_CASE(grad_bilinear) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 4, 5)), one = gr_param(g, "one", GR_SHAPE(1, 1, 1, 1));
  gr_tensor row = gr_input(g, "row", GR_SHAPE(1, 2, 1, 3));
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_upsample2x(g, x, GR_BILINEAR), "r1"));
  l = fd_join(g, l, fd_weighted(g, gr_upsample2x(g, one, GR_BILINEAR), "r2"));
  l = fd_join(g, l, fd_weighted(g, gr_upsample2x(g, gr_unary_op(g, GR_TANH, row), GR_BILINEAR), "r3"));
  gr_tensor wrt[3] = {x, one, row};
  fd_check(g, l, 3, wrt, "bilinear upsample", (fd_opts){0});
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
