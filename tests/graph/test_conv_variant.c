/* The conv kernels' two variants, each forced with APS_KERNEL_VARIANT: GPU-shaped
 * (shaders/conv2d_tiled_f32.comp, conv_wgrad_tiled_f32.comp) and lavapipe-shaped (conv2d_f32,
 * conv_wgrad_f32). Both against the CPU reference at odd sizes (1, 7, 33 and 257 among batch,
 * channels and width), every geometry conv2d allows (1x1, 3x3 pad 1, 5x5, 3x1, stride 2,
 * dilation 2, groups, reflect padding), the fusions the tiled kernel takes (epilogue,
 * upsampled input, a place in a concatenation, a second output), and the input and weight
 * gradients; then which kernels ran. Each test case is its own process, so no other case
 * made pipelines here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_check.h"
#include "layers.h"

rt_device *graph_tests_device(void);

typedef struct ccase {
  int n, c, h, w, o, kh, kw, stride, pad, dil, groups, reflect, bias;
} ccase;

static const ccase fwd[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0},     {7, 33, 7, 7, 1, 3, 3, 1, 1, 1, 1, 0, 1},
    {1, 7, 33, 33, 257, 3, 3, 1, 1, 1, 1, 0, 1}, {33, 7, 1, 257, 7, 1, 1, 1, 0, 1, 1, 0, 1},
    {2, 4, 9, 9, 6, 3, 3, 2, 1, 1, 2, 0, 0},     {1, 5, 12, 12, 5, 3, 3, 1, 2, 2, 1, 0, 1},
    {1, 3, 7, 9, 2, 3, 3, 1, 1, 1, 1, 1, 0},     {1, 2, 7, 7, 3, 5, 5, 1, 2, 1, 1, 0, 1},
    {3, 6, 8, 8, 9, 3, 3, 1, 1, 1, 3, 0, 1},     {1, 7, 7, 33, 33, 3, 1, 2, 1, 1, 1, 0, 1},
};

/* Case c as input x<i>, weights w<i> (and bias b<i>). */
static gr_tensor conv_of(gr_graph *g, const ccase *c, int i, gr_tensor *x, gr_tensor *w) {
  char name[16];
  snprintf(name, sizeof name, "x%d", i);
  *x = gr_input(g, name, GR_SHAPE(c->n, c->c, c->h, c->w));
  snprintf(name, sizeof name, "w%d", i);
  *w = gr_param(g, name, GR_SHAPE(c->o, c->c / c->groups, c->kh, c->kw));
  snprintf(name, sizeof name, "b%d", i);
  gr_tensor b = c->bias ? gr_param(g, name, GR_SHAPE(c->o)) : 0;
  gr_conv2d_desc d = {c->stride, c->pad, c->dil, c->groups, c->reflect ? GR_PAD_REFLECT : GR_PAD_ZERO};
  return gr_conv2d(g, *x, *w, b, &d);
}

/* Every case of fwd, and convs with each fusion the tiled kernel supports. */
static gr_graph *forward_graph(void) {
  gr_graph *g = gr_graph_create();
  char name[16];
  gr_tensor x, w;
  for (int i = 0; i < (int)(sizeof fwd / sizeof *fwd); i++) {
    snprintf(name, sizeof name, "y%d", i);
    gr_output(g, conv_of(g, &fwd[i], i, &x, &w), name);
  }
  /* bias, SiLU and a residual add in the epilogue */
  gr_tensor e = gr_input(g, "e", GR_SHAPE(2, 7, 9, 33));
  gr_tensor h = gr_conv2d(g, e, gr_param(g, "we", GR_SHAPE(7, 7, 3, 3)), gr_param(g, "be", GR_SHAPE(7)),
                          &(gr_conv2d_desc){.padding = 1});
  gr_output(g, gr_add(g, e, gr_silu(g, h)), "epilogue");
  /* nearest-upsampled input, zero and reflect padding */
  gr_tensor u = gr_input(g, "u", GR_SHAPE(3, 7, 5, 9));
  gr_output(g, gr_layer_conv(g, "up1", gr_upsample2x(g, u, GR_NEAREST), 33, 3, 1), "up1");
  gr_output(g, gr_conv2d(g, gr_upsample2x(g, u, GR_NEAREST), gr_param(g, "wu", GR_SHAPE(7, 7, 3, 3)), 0,
                         &(gr_conv2d_desc){.padding = 1, .pad_mode = GR_PAD_REFLECT}),
            "up2");
  /* stored into a concatenation, once also read by another node (a second output) */
  gr_tensor v = gr_input(g, "v", GR_SHAPE(1, 3, 7, 33));
  gr_tensor a = gr_layer_conv(g, "a", v, 7, 3, 1), p = gr_layer_conv(g, "p", v, 33, 1, 1);
  gr_output(g, gr_concat(g, p, a, 1), "cat");
  gr_output(g, gr_silu(g, gr_layer_conv(g, "a2", a, 3, 3, 1)), "after_a");
  return g;
}

/* d sum(conv(x, w, b) · r) / d {x, w}: the input gradient is a conv, the weight gradient
 * gr_conv2d_wgrad; 257 output channels once, and reductions long enough to be split. */
static const ccase bwd[] = {
    {2, 7, 33, 33, 257, 3, 3, 1, 1, 1, 1, 0, 1}, {9, 3, 33, 33, 7, 3, 3, 1, 1, 1, 1, 0, 1},
    {3, 6, 9, 7, 9, 3, 3, 2, 1, 1, 3, 0, 0},     {1, 33, 7, 7, 1, 1, 1, 1, 0, 1, 1, 0, 1},
    {2, 4, 11, 10, 6, 3, 3, 1, 2, 2, 1, 0, 1},   {7, 1, 1, 1, 33, 1, 1, 1, 0, 1, 1, 0, 0},
};

static gr_graph *backward_graph(void) {
  gr_graph *g = gr_graph_create();
  for (int i = 0; i < (int)(sizeof bwd / sizeof *bwd); i++) {
    gr_tensor x, w, y = conv_of(g, &bwd[i], 100 + i, &x, &w);
    char name[16];
    snprintf(name, sizeof name, "r%d", i);
    gr_tensor r = gr_input(g, name, gr_tensor_shape(g, y)), loss = gr_mul(g, y, r);
    gr_tensor wrt[2] = {x, w}, d[2];
    if (gr_grad(g, loss, 2, wrt, d) != APS_OK)
      return g; /* check_graph reports the graph's error */
    snprintf(name, sizeof name, "dx%d", i);
    gr_output(g, d[0], name);
    snprintf(name, sizeof name, "dw%d", i);
    gr_output(g, d[1], name);
  }
  return g;
}

static unsigned count(const char *shader) {
  char b4[64];
  snprintf(b4, sizeof b4, "%s_b4", shader);
  return rt_kernel_count(graph_tests_device(), shader) + rt_kernel_count(graph_tests_device(), b4);
}

static void run_variant(const char *variant) {
  setenv("APS_KERNEL_VARIANT", variant, 1);
  int gpu = !strcmp(variant, "gpu");
  char what[64];
  snprintf(what, sizeof what, "conv2d, APS_KERNEL_VARIANT=%s", variant);
  gr_graph *g = forward_graph();
  check_opts o = {.atol = 1e-4f, .rtol = 1e-3f, .fan_in_scale = 1};
  check_graph(graph_tests_device(), g, what, &o);
  gr_graph_destroy(g);
  snprintf(what, sizeof what, "conv2d gradients, APS_KERNEL_VARIANT=%s", variant);
  g = backward_graph();
  o = (check_opts){.atol = 1e-3f, .rtol = 1e-3f};
  check_graph(graph_tests_device(), g, what, &o);
  gr_graph_destroy(g);
  unsigned tiled = count("conv2d_tiled_f32"), plain = count("conv2d_f32");
  unsigned wtiled = count("conv_wgrad_tiled_f32"), wplain = count("conv_wgrad_f32");
  fprintf(stderr, "%s: pipelines conv2d_tiled_f32 %u, conv2d_f32 %u, conv_wgrad_tiled_f32 %u, conv_wgrad_f32 %u\n",
          variant, tiled, plain, wtiled, wplain);
  if (gpu)
    CHECK(tiled > 0 && plain == 0 && wtiled > 0 && wplain == 0, "only the tiled conv kernels ran");
  else
    CHECK(tiled == 0 && plain > 0 && wtiled == 0 && wplain > 0, "only the lavapipe-shaped conv kernels ran");
  unsetenv("APS_KERNEL_VARIANT");
}

TEST_CASE(conv2d_gpu_variant) { run_variant("gpu"); }
TEST_CASE(conv2d_lavapipe_variant) { run_variant("lavapipe"); }

/* APS_KERNEL_VARIANT=timed (what GPUs do by default): each shape's two kernels are timed once
 * when the plan is compiled. Whichever won, the results match the reference; both variants'
 * pipelines were made; compiling the same graphs again times nothing and reuses the choices. */
TEST_CASE(conv2d_timed_variant) {
  setenv("APS_KERNEL_VARIANT", "timed", 1);
  uint32_t timed[3], reused[3];
  gr_variant_stats(&timed[0], &reused[0]);
  for (int pass = 1; pass <= 2; pass++) {
    gr_graph *g = forward_graph();
    gr_tensor a = gr_input(g, "ma", GR_SHAPE(33, 7)), b = gr_input(g, "mb", GR_SHAPE(7, 257));
    gr_output(g, gr_matmul(g, a, b, 0, 0), "mm");
    check_opts o = {.atol = 1e-4f, .rtol = 1e-3f, .fan_in_scale = 1};
    check_graph(graph_tests_device(), g, "conv2d and matmul, APS_KERNEL_VARIANT=timed", &o);
    gr_graph_destroy(g);
    g = backward_graph();
    o = (check_opts){.atol = 1e-3f, .rtol = 1e-3f};
    check_graph(graph_tests_device(), g, "conv2d gradients, APS_KERNEL_VARIANT=timed", &o);
    gr_graph_destroy(g);
    gr_variant_stats(&timed[pass], &reused[pass]);
  }
  fprintf(stderr, "timed: %u shapes timed on the first compile, %u on the second; %u choices reused on the second\n",
          timed[1] - timed[0], timed[2] - timed[1], reused[2] - reused[1]);
  CHECK(timed[1] > timed[0], "the first compile timed the variants");
  CHECK(timed[2] == timed[1] && reused[2] > reused[1], "the second compile reused every choice");
  CHECK(count("conv2d_tiled_f32") > 0 && count("conv2d_f32") > 0 && count("conv_wgrad_tiled_f32") > 0 &&
            count("conv_wgrad_f32") > 0 && count("gemm_tiled_f32") > 0 && count("gemm_f32") > 0,
        "both variants of each kernel were built to be timed");
  unsetenv("APS_KERNEL_VARIANT");
}
