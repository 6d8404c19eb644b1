/* The conv2d weight gradient (gr_conv2d_wgrad): Vulkan against the CPU reference, the CPU
 * device against the reference, the reference against a direct sum, shape errors, and
 * finite differences through the conv2d VJP (strides, padding, dilation, groups). */
#include <math.h>
#include <stdlib.h>

#include "graph_check.h"
#include "graph_internal.h"

rt_device *graph_tests_device(void);

typedef struct wcase {
  int n, c, o, h, w, kh, kw, stride, pad, dil, groups;
} wcase;

/* Odd channel counts and sizes (1, 3, 7, 33), strides, padding, dilation, groups, a 1x1
 * kernel, sizes whose pixel count is not a multiple of 8, and reductions long enough to be
 * split (N·OH·OW >= 4096). */
static const wcase cases[] = {
    {1, 1, 1, 5, 5, 3, 3, 1, 1, 1, 1},    {2, 3, 7, 7, 7, 3, 3, 1, 1, 1, 1},   {2, 33, 7, 9, 9, 3, 3, 2, 1, 1, 1},
    {3, 7, 33, 8, 8, 1, 1, 1, 0, 1, 1},   {2, 4, 6, 11, 10, 3, 3, 1, 2, 2, 1}, {2, 6, 4, 8, 8, 3, 3, 1, 1, 1, 2},
    {2, 4, 4, 6, 6, 3, 3, 1, 1, 1, 4},    {2, 3, 5, 12, 12, 5, 5, 1, 2, 1, 1}, {1, 3, 2, 9, 7, 3, 1, 2, 0, 1, 1},
    {4, 16, 16, 32, 32, 3, 3, 1, 1, 1, 1}, {4, 8, 8, 32, 32, 3, 3, 2, 1, 1, 1}, {9, 3, 7, 33, 33, 3, 3, 1, 1, 1, 1},
    {16, 8, 12, 16, 16, 1, 1, 1, 0, 1, 1}, {3, 6, 9, 7, 7, 3, 3, 1, 3, 3, 3},
};
enum { NCASES = sizeof cases / sizeof *cases };

static gr_conv2d_desc desc_of(const wcase *c) {
  return (gr_conv2d_desc){.stride = c->stride, .padding = c->pad, .dilation = c->dil, .groups = c->groups};
}

static int64_t out_size(int in, int k, const wcase *c) { return (in + 2 * c->pad - c->dil * (k - 1) - 1) / c->stride + 1; }

/* Graph: inputs x, gy; output "dw". */
static gr_graph *wgrad_graph(const wcase *c, char *what, size_t size) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(c->n, c->c, c->h, c->w));
  gr_tensor gy = gr_input(g, "gy", GR_SHAPE(c->n, c->o, out_size(c->h, c->kh, c), out_size(c->w, c->kw, c)));
  gr_conv2d_desc d = desc_of(c);
  gr_output(g, gr_conv2d_wgrad(g, x, gy, c->kh, c->kw, &d), "dw");
  snprintf(what, size, "wgrad x [%d, %d, %d, %d] -> %d, %dx%d stride %d pad %d dil %d groups %d", c->n, c->c, c->h,
           c->w, c->o, c->kh, c->kw, c->stride, c->pad, c->dil, c->groups);
  return g;
}

/* Tolerance for sums of N·OH·OW products of values in [-1, 1). */
static float sum_atol(const wcase *c) {
  return 2e-6f * sqrtf((float)c->n * (float)out_size(c->h, c->kh, c) * (float)out_size(c->w, c->kw, c)) + 1e-5f;
}

TEST_CASE(wgrad) {
  for (int i = 0; i < NCASES; i++) {
    char what[160];
    gr_graph *g = wgrad_graph(&cases[i], what, sizeof what);
    check_opts o = {.atol = sum_atol(&cases[i]) * 10, .rtol = 1e-4f, .fused_only = 1};
    check_graph(graph_tests_device(), g, what, &o);
    gr_graph_destroy(g);
  }
}

/* The reference against a direct triple loop (independent of the split into partial sums). */
TEST_CASE(wgrad_reference) {
  for (int i = 0; i < NCASES; i++) {
    const wcase *c = &cases[i];
    char what[160];
    gr_graph *g = wgrad_graph(c, what, sizeof what);
    gr_cpu *cpu = NULL;
    REQUIRE_OK(gr_graph_status(g));
    REQUIRE_OK(gr_cpu_create(g, &cpu));
    int64_t oh = out_size(c->h, c->kh, c), ow = out_size(c->w, c->kw, c);
    int64_t nx = (int64_t)c->n * c->c * c->h * c->w, ng = (int64_t)c->n * c->o * oh * ow;
    float *x = malloc((size_t)nx * sizeof *x), *gy = malloc((size_t)ng * sizeof *gy);
    fill_uniform(x, nx, -1.0f, 1.0f, 11u + (uint32_t)i);
    fill_uniform(gy, ng, -1.0f, 1.0f, 97u + (uint32_t)i);
    REQUIRE_OK(gr_cpu_set(cpu, "x", x, nx));
    REQUIRE_OK(gr_cpu_set(cpu, "gy", gy, ng));
    REQUIRE_OK(gr_cpu_run(cpu));
    const float *dw = gr_cpu_values(cpu, gr_find(g, "dw"));
    int og = c->o / c->groups, ig = c->c / c->groups, bad = 0;
    for (int o = 0; o < c->o; o++)
      for (int ci = 0; ci < ig; ci++)
        for (int ky = 0; ky < c->kh; ky++)
          for (int kx = 0; kx < c->kw; kx++) {
            double s = 0;
            for (int b = 0; b < c->n; b++)
              for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                  int iy = oy * c->stride + ky * c->dil - c->pad, ix = ox * c->stride + kx * c->dil - c->pad;
                  if (iy >= 0 && iy < c->h && ix >= 0 && ix < c->w)
                    s += (double)gy[((b * c->o + o) * oh + oy) * ow + ox] *
                         x[((b * c->c + o / og * ig + ci) * c->h + iy) * c->w + ix];
                }
            float got = dw[((o * ig + ci) * c->kh + ky) * c->kw + kx];
            bad += !(fabs(got - s) <= 1e-5 + 1e-5 * fabs(s));
          }
    CHECK(bad == 0, "%s: %d weights differ from the direct sum", what, bad);
    free(x);
    free(gy);
    gr_cpu_destroy(cpu);
    gr_graph_destroy(g);
  }
}

/* The CPU device (parallel im2col + sgemm) against the reference. */
TEST_CASE(cpu_device_wgrad) {
  for (int i = 0; i < NCASES; i++) {
    const wcase *c = &cases[i];
    char what[160];
    gr_graph *g = wgrad_graph(c, what, sizeof what);
    gr_cpu *ref = NULL, *fast = NULL;
    REQUIRE_OK(gr_graph_status(g));
    REQUIRE_OK(gr_cpu_create(g, &ref));
    REQUIRE_OK(gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1}, &fast));
    const char *names[2] = {"x", "gy"};
    for (int k = 0; k < 2; k++) {
      int64_t n = gr_shape_count(gr_tensor_shape(g, gr_find(g, names[k])));
      float *v = malloc((size_t)n * sizeof *v);
      fill_uniform(v, n, -1.0f, 1.0f, 31u * (uint32_t)(i + 1) + (uint32_t)k);
      REQUIRE_OK(gr_cpu_set(ref, names[k], v, n));
      REQUIRE_OK(gr_cpu_set(fast, names[k], v, n));
      free(v);
    }
    REQUIRE_OK(gr_cpu_run(ref));
    REQUIRE_OK(gr_cpu_run(fast));
    gr_tensor t = gr_find(g, "dw");
    const float *want = gr_cpu_values(ref, t), *got = gr_cpu_values(fast, t);
    int64_t n = gr_shape_count(gr_tensor_shape(g, t)), bad = 0;
    float atol = sum_atol(c) * 10;
    for (int64_t j = 0; j < n; j++)
      bad += !(fabsf(got[j] - want[j]) <= atol + 1e-4f * fabsf(want[j]));
    CHECK(bad == 0, "%s: %lld of %lld values off", what, (long long)bad, (long long)n);
    gr_cpu_destroy(fast);
    gr_cpu_destroy(ref);
    gr_graph_destroy(g);
  }
}

TEST_CASE(wgrad_errors) {
  struct {
    int64_t x[4], gy[4];
    int kh, kw;
    gr_conv2d_desc d;
    const char *expect;
  } bad[] = {
      {{1, 2, 5, 5}, {1, 3, 5, 5}, 3, 3, {.padding = 1, .pad_mode = GR_PAD_REFLECT}, "zero padding"},
      {{1, 2, 5, 5}, {1, 3, 4, 5}, 3, 3, {.padding = 1}, "does not match"},
      {{2, 2, 5, 5}, {1, 3, 5, 5}, 3, 3, {.padding = 1}, "does not match"},
      {{1, 3, 5, 5}, {1, 4, 5, 5}, 3, 3, {.padding = 1, .groups = 2}, "groups 2"},
      {{1, 2, 5, 5}, {1, 3, 5, 5}, 0, 3, {.padding = 1}, "kernel 0x3"},
      {{1, 2, 2, 2}, {1, 3, 1, 1}, 5, 5, {0}, "does not match"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", gr_shape_make(4, bad[i].x)), gy = gr_input(g, "gy", gr_shape_make(4, bad[i].gy));
    gr_tensor dw = gr_conv2d_wgrad(g, x, gy, bad[i].kh, bad[i].kw, &bad[i].d);
    CHECK(dw == 0 && gr_graph_status(g) != APS_OK && strstr(gr_graph_error(g), "conv2d_wgrad") &&
              strstr(gr_graph_error(g), bad[i].expect),
          "case %zu: expected an error with '%s', got: %s", i, bad[i].expect, gr_graph_error(g));
    gr_graph_destroy(g);
  }
  /* A 3-D tensor. */
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 5, 5)), gy = gr_input(g, "gy", GR_SHAPE(1, 3, 5, 5));
  CHECK(gr_conv2d_wgrad(g, x, gy, 3, 3, NULL) == 0 && strstr(gr_graph_error(g), "4-D"), "rank: %s",
        gr_graph_error(g));
  gr_graph_destroy(g);
}

static double loss_sum(const gr_cpu *c, gr_tensor t, int64_t n) {
  const float *v = gr_cpu_values(c, t);
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += v[i];
  return s;
}

/* d sum(conv2d(x, w, b) · r) / d {x, w, b}: autodiff (through gr_conv2d_wgrad for w) against
 * central differences on the CPU reference, then the whole graph on the device. */
TEST_CASE(grad_conv2d_wgrad) {
  static const wcase gcases[] = {
      {2, 3, 4, 7, 6, 3, 3, 1, 1, 1, 1}, {1, 2, 3, 8, 8, 3, 3, 2, 1, 1, 1}, {2, 4, 6, 9, 8, 3, 3, 1, 2, 2, 1},
      {2, 6, 4, 7, 7, 3, 3, 2, 1, 1, 2}, {1, 4, 4, 6, 5, 3, 3, 1, 1, 1, 4}, {1, 3, 2, 9, 9, 3, 3, 2, 3, 2, 1},
      {2, 2, 3, 5, 5, 1, 1, 1, 0, 1, 1}, {1, 2, 2, 6, 7, 5, 3, 1, 2, 1, 2},
  };
  for (size_t i = 0; i < sizeof gcases / sizeof *gcases; i++) {
    const wcase *c = &gcases[i];
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(c->n, c->c, c->h, c->w));
    gr_tensor w = gr_param(g, "w", GR_SHAPE(c->o, c->c / c->groups, c->kh, c->kw));
    gr_tensor b = gr_param(g, "b", GR_SHAPE(c->o));
    gr_conv2d_desc d = desc_of(c);
    gr_tensor y = gr_conv2d(g, x, w, b, &d);
    gr_tensor r = gr_input(g, "r", gr_tensor_shape(g, y));
    gr_tensor loss = gr_mul(g, y, r), wrt[3] = {x, w, b}, grads[3];
    char what[160];
    snprintf(what, sizeof what, "conv2d VJP, %dx%d stride %d pad %d dil %d groups %d on [%d, %d, %d, %d]", c->kh,
             c->kw, c->stride, c->pad, c->dil, c->groups, c->n, c->c, c->h, c->w);
    aps_status s = gr_grad(g, loss, 3, wrt, grads);
    CHECK(s == APS_OK, "%s: gr_grad: %s", what, aps_last_error());
    if (s != APS_OK) {
      gr_graph_destroy(g);
      continue;
    }
    gr_output(g, loss, "loss");
    gr_output(g, grads[0], "dx");
    gr_output(g, grads[1], "dw");
    gr_output(g, grads[2], "db");
    gr_cpu *cpu = NULL;
    REQUIRE_OK(gr_cpu_create(g, &cpu));
    gr_tensor leaves[4] = {x, w, b, r};
    float *vals[4];
    int64_t counts[4];
    for (int k = 0; k < 4; k++) {
      counts[k] = gr_shape_count(gr_tensor_shape(g, leaves[k]));
      vals[k] = malloc((size_t)counts[k] * sizeof(float));
      fill_uniform(vals[k], counts[k], -1.0f, 1.0f, 7919u * (uint32_t)(k + 1) + (uint32_t)i);
      REQUIRE_OK(gr_cpu_set(cpu, gr_tensor_name(g, leaves[k]), vals[k], counts[k]));
    }
    REQUIRE_OK(gr_cpu_run(cpu));
    int64_t nl = gr_shape_count(gr_tensor_shape(g, loss));
    int bad = 0, checked = 0;
    float *analytic[3];
    for (int k = 0; k < 3; k++) { /* before any perturbed run */
      analytic[k] = malloc((size_t)counts[k] * sizeof(float));
      memcpy(analytic[k], gr_cpu_values(cpu, grads[k]), (size_t)counts[k] * sizeof(float));
    }
    for (int k = 0; k < 3; k++) {
      int64_t cnt = counts[k];
      float *an = analytic[k];
      const char *nm = gr_tensor_name(g, leaves[k]);
      for (int64_t j = 0; j < cnt; j += cnt > 16 ? cnt / 16 + 1 : 1) {
        const float eps = 1e-2f, keep = vals[k][j];
        vals[k][j] = keep + eps;
        gr_cpu_set(cpu, nm, vals[k], cnt);
        gr_cpu_run(cpu);
        double lp = loss_sum(cpu, loss, nl);
        vals[k][j] = keep - eps;
        gr_cpu_set(cpu, nm, vals[k], cnt);
        gr_cpu_run(cpu);
        double lm = loss_sum(cpu, loss, nl);
        vals[k][j] = keep;
        gr_cpu_set(cpu, nm, vals[k], cnt);
        double fd = (lp - lm) / (2.0 * eps);
        checked++;
        if (fabs(fd - an[j]) > 5e-3 + 2e-2 * fabs(fd)) {
          bad++;
          fprintf(stderr, "%s: d/d %s[%lld]: autodiff %g, finite differences %g\n", what, nm, (long long)j, an[j], fd);
        }
      }
      free(an);
    }
    CHECK(bad == 0 && checked > 0, "%s: %d of %d entries disagree with finite differences", what, bad, checked);
    for (int k = 0; k < 4; k++)
      free(vals[k]);
    gr_cpu_destroy(cpu);
    check_opts o = {.atol = 1e-4f, .rtol = 1e-3f};
    check_graph(graph_tests_device(), g, what, &o);
    gr_graph_destroy(g);
  }
}
