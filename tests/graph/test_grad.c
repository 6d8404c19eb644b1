/* Gradients: every implemented vector-Jacobian product against central finite differences
 * on the CPU reference, then the whole forward+backward graph on the device against the
 * CPU. */
#include <math.h>
#include <stdlib.h>

#include "graph_check.h"
#include "layers.h"

rt_device *graph_tests_device(void);

static double total(const gr_cpu *c, const gr_graph *g, gr_tensor t) {
  const float *v = gr_cpu_values(c, t);
  double s = 0;
  for (int64_t i = 0; i < gr_shape_count(gr_tensor_shape(g, t)); i++)
    s += v[i];
  return s;
}

/* d sum(loss) / d wrt[i] by autodiff vs finite differences (a few elements of each). */
static void check_grad(gr_graph *g, gr_tensor loss, int n, const gr_tensor *wrt, const char *what, float lo, float hi) {
  gr_tensor grads[8];
  aps_status s = gr_grad(g, loss, (uint32_t)n, wrt, grads);
  CHECK(s == APS_OK, "%s: gr_grad: %s", what, aps_last_error());
  if (s != APS_OK) {
    gr_graph_destroy(g);
    return;
  }
  gr_output(g, loss, "loss");
  for (int i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "grad%d", i);
    CHECK(grads[i] != 0, "%s: gradient %d exists", what, i);
    if (grads[i])
      gr_output(g, grads[i], name);
  }
  gr_cpu *c = NULL;
  if (gr_cpu_create(g, &c) != APS_OK) {
    CHECK(0, "%s: %s", what, aps_last_error());
    gr_graph_destroy(g);
    return;
  }
  /* Random values for every input and parameter, kept to perturb. */
  enum { MAX_LEAVES = 1024 };
  float **vals = calloc(MAX_LEAVES, sizeof *vals);
  gr_tensor *leaf = calloc(MAX_LEAVES, sizeof *leaf);
  int nl = 0;
  for (uint32_t t = 1; nl < MAX_LEAVES; t++) {
    const char *nm = gr_tensor_name(g, t);
    if (!nm[0])
      break;
    if (gr_find(g, nm) != t || !strncmp(nm, "grad", 4) || !strcmp(nm, "loss"))
      continue;
    int64_t cnt = gr_shape_count(gr_tensor_shape(g, t));
    vals[nl] = malloc((size_t)cnt * sizeof(float));
    fill_uniform(vals[nl], cnt, lo, hi, t * 7919u);
    gr_cpu_set(c, nm, vals[nl], cnt);
    leaf[nl++] = t;
  }
  REQUIRE_OK(gr_cpu_run(c));
  int bad = 0, checked = 0;
  for (int i = 0; i < n; i++) {
    int l = 0;
    while (l < nl && leaf[l] != wrt[i])
      l++;
    if (l == nl || !grads[i])
      continue;
    const char *nm = gr_tensor_name(g, wrt[i]);
    int64_t cnt = gr_shape_count(gr_tensor_shape(g, wrt[i]));
    float *an = malloc((size_t)cnt * sizeof *an);
    memcpy(an, gr_cpu_values(c, grads[i]), (size_t)cnt * sizeof *an);
    for (int64_t j = 0; j < cnt; j += cnt > 12 ? cnt / 12 + 1 : 1) {
      const float eps = 1e-2f, keep = vals[l][j];
      vals[l][j] = keep + eps;
      gr_cpu_set(c, nm, vals[l], cnt);
      gr_cpu_run(c);
      double lp = total(c, g, loss);
      vals[l][j] = keep - eps;
      gr_cpu_set(c, nm, vals[l], cnt);
      gr_cpu_run(c);
      double lm = total(c, g, loss);
      vals[l][j] = keep;
      double fd = (lp - lm) / (2.0 * eps);
      checked++;
      if (fabs(fd - an[j]) > 5e-3 + 2e-2 * fabs(fd)) {
        bad++;
        fprintf(stderr, "%s: d/d %s[%lld]: autodiff %g, finite differences %g\n", what, nm, (long long)j, an[j], fd);
      }
    }
    gr_cpu_set(c, nm, vals[l], cnt);
    gr_cpu_run(c); /* the next gradient is read at the unperturbed point */
    free(an);
  }
  CHECK(bad == 0 && checked > 0, "%s: %d of %d gradient entries disagree with finite differences", what, bad, checked);
  for (int l = 0; l < nl; l++)
    free(vals[l]);
  free(vals);
  free(leaf);
  gr_cpu_destroy(c);
  /* Forward and backward on the device against the CPU reference. */
  check_opts o = {.lo = lo, .hi = hi, .atol = 1e-4f, .rtol = 1e-3f};
  check_graph(graph_tests_device(), g, what, &o);
  gr_graph_destroy(g);
}

void test_grad_elementwise(void) {
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
  check_grad(g, loss, 2, wrt, "elementwise", -1.5f, 1.5f);
}

void test_grad_reductions(void) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 5)), r = gr_input(g, "r", GR_SHAPE(2, 3, 5));
  gr_tensor l = gr_reduce_op(g, GR_MEAN, gr_mul(g, gr_softmax(g, x), r), 6u);
  l = gr_add(g, l, gr_reduce_op(g, GR_VAR, x, 1u));
  l = gr_add(g, l, gr_reduce_op(g, GR_LOGSUMEXP, gr_mul(g, x, r), 5u));
  l = gr_add(g, l, gr_scale_shift(g, gr_reduce_op(g, GR_SUMSQ, x, 7u), 0.1f, 0.0f));
  l = gr_add(g, l, gr_reduce_op(g, GR_SUM, gr_mul(g, x, r), 2u));
  check_grad(g, l, 1, &x, "reductions and softmax", -1.0f, 1.0f);
}

void test_grad_layout(void) {
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
  check_grad(g, loss, 2, wrt, "layout, resampling, time embedding", -1.0f, 1.0f);
}

/* A small MLP with a mean squared error: gradients w.r.t. every weight and the input. */
void test_grad_mlp(void) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(5, 12)), target = gr_input(g, "target", GR_SHAPE(5, 3));
  gr_tensor h = gr_silu(g, gr_layer_linear(g, "l1", x, 16));
  gr_tensor out = gr_unary_op(g, GR_TANH, gr_layer_linear(g, "l2", h, 3));
  gr_tensor loss = gr_reduce_op(g, GR_MEAN, gr_unary_op(g, GR_SQUARE, gr_sub(g, out, target)), 3u);
  gr_tensor wrt[5] = {x, gr_find(g, "l1.weight"), gr_find(g, "l1.bias"), gr_find(g, "l2.weight"),
                      gr_find(g, "l2.bias")};
  check_grad(g, loss, 5, wrt, "MLP", -1.0f, 1.0f);
}

/* Batched matmuls with broadcasting, as attention uses them. */
void test_grad_matmul(void) {
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(2, 3, 4)), b = gr_param(g, "b", GR_SHAPE(4, 5));
  gr_tensor c = gr_input(g, "c", GR_SHAPE(2, 6, 4)), r = gr_input(g, "r", GR_SHAPE(2, 3, 6));
  gr_tensor l = gr_add(g, gr_reduce_op(g, GR_SUM, gr_matmul(g, a, b, 0, 0), 4u),
                       gr_reduce_op(g, GR_SUM, gr_mul(g, gr_matmul(g, a, c, 0, 1), r), 4u));
  gr_tensor wrt[3] = {a, b, c};
  check_grad(g, l, 3, wrt, "batched matmul", -1.0f, 1.0f);
}

/* Reflect-padded convolutions: the conv of the reflect-padded input, back through the pad. */
void test_grad_conv2d_reflect(void) {
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
    check_grad(g, gr_mul(g, y, r), 3, wrt, what, -1.0f, 1.0f);
  }
}

/* Convolutions of every stride and padding the U-Net uses, and odd sizes. */
void test_grad_conv2d(void) {
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
    check_grad(g, gr_mul(g, y, r), 3, wrt, what, -1.0f, 1.0f);
  }
}

void test_grad_group_norm(void) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 6, 3, 5)), r = gr_input(g, "r", GR_SHAPE(2, 6, 3, 5));
  gr_tensor ga = gr_param(g, "gamma", GR_SHAPE(6)), be = gr_param(g, "beta", GR_SHAPE(6));
  gr_tensor y = gr_silu(g, gr_group_norm(g, x, 3, ga, be, 1e-5f));
  gr_tensor wrt[3] = {x, ga, be};
  check_grad(g, gr_mul(g, y, r), 3, wrt, "group norm + SiLU", -1.0f, 1.0f);
}

void test_grad_attention(void) {
  gr_graph *g = gr_graph_create();
  gr_tensor qkv = gr_input(g, "qkv", GR_SHAPE(2, 3 * 4, 5)), r = gr_input(g, "r", GR_SHAPE(2, 4, 5));
  check_grad(g, gr_mul(g, gr_attention(g, qkv), r), 1, &qkv, "attention", -1.0f, 1.0f);
}

/* A small U-Net end to end: the gradient of a denoising loss w.r.t. a few weights and the
 * input image (the ELBO will need that one). */
void test_grad_unet(void) {
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
  check_grad(g, loss, 5, wrt, "U-Net", -0.5f, 0.5f);
}
