#include "graph_check.h"

#include <math.h>
#include <stdlib.h>

#include "graph_internal.h"

void fill_uniform(float *v, int64_t n, float lo, float hi, uint32_t seed) {
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = lo + (hi - lo) * (float)(seed >> 8) / 16777216.0f;
  }
}

float half_round(float x) {
  float a = fabsf(x);
  if (!isfinite(x) || a == 0.0f)
    return x;
  if (a >= 65520.0f) /* halfway between 65504 and the next step rounds up, to inf */
    return copysignf(INFINITY, x);
  int e;
  frexpf(a, &e); /* a in [2^(e-1), 2^e): 11 significant bits, or subnormal steps of 2^-24 */
  float step = ldexpf(1.0f, e - 11 < -24 ? -24 : e - 11);
  return copysignf(nearbyintf(a / step) * step, x);
}

static int compare(const float *got, const float *want, int64_t n, check_opts *o, const char *what,
                   const char *plan, const char *name) {
  int64_t bad = 0, first = -1, nonfinite = 0;
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(got[i]) || !isfinite(want[i])) {
      nonfinite++;
      continue;
    }
    double err = fabs((double)got[i] - want[i]), tol = o->atol + o->rtol * fabs(want[i]);
    if (err > tol) {
      bad++;
      if (first < 0)
        first = i;
    }
    if (err / tol > worst)
      worst = err / tol;
  }
  if (worst > o->worst)
    o->worst = worst;
  CHECK(bad == 0 && nonfinite == 0, "%s (%s plan), output %s: %lld of %lld values off (first at %lld: %g vs %g), "
        "%lld non-finite, worst error %.2f x tolerance", what, plan, name, (long long)bad, (long long)n,
        (long long)first, first >= 0 ? got[first] : 0.0, first >= 0 ? want[first] : 0.0, (long long)nonfinite, worst);
  return bad || nonfinite;
}

int check_graph(rt_device *dev, gr_graph *g, const char *what, check_opts *o) {
  if (o->hi == o->lo) {
    o->lo = -1.0f;
    o->hi = 1.0f;
  }
  if (o->atol == 0)
    o->atol = 1e-5f;
  if (o->rtol == 0)
    o->rtol = 1e-4f;
  if (gr_graph_status(g) != APS_OK) {
    CHECK(0, "%s: graph failed to build: %s", what, gr_graph_error(g));
    return 1;
  }
  gr_cpu *cpu = NULL;
  if (gr_cpu_create(g, &cpu) != APS_OK) {
    CHECK(0, "%s: %s", what, aps_last_error());
    return 1;
  }
  int fails = 0;
  /* Random values for every input and parameter. */
  for (uint32_t t = 1; t < g->nt; t++)
    if (g->t[t].kind == GR_OP_INPUT || g->t[t].kind == GR_OP_PARAM) {
      int64_t n = gr_shape_count(g->t[t].shape);
      float *v = malloc((size_t)n * sizeof *v);
      fill_uniform(v, n, o->lo, o->hi, t * 2654435761u);
      gr_shape sh = g->t[t].shape;
      if (o->fan_in_scale && g->t[t].kind == GR_OP_PARAM && sh.rank >= 2) {
        float scale = 1.0f / sqrtf((float)(sh.rank == 4 ? n / sh.d[0] : sh.d[0]));
        for (int64_t i = 0; i < n; i++)
          v[i] *= scale;
      }
      for (int64_t i = 0; o->f16 && i < n; i++)
        v[i] = half_round(v[i]);
      gr_cpu_set(cpu, g->t[t].name, v, n);
      free(v);
    }
  if (gr_cpu_run(cpu) != APS_OK) {
    CHECK(0, "%s: CPU run: %s", what, aps_last_error());
    gr_cpu_destroy(cpu);
    return 1;
  }
  for (int fused = 1; fused >= (o->fused_only ? 1 : 0); fused--) {
    gr_plan *p = NULL;
    aps_status s = gr_plan_compile(
        g, dev, &(gr_plan_desc){.no_fusion = !fused, .fold_norms = fused && o->fold_norms, .f16_storage = o->f16}, &p);
    if (s != APS_OK) {
      CHECK(0, "%s: compile (%s): %s", what, fused ? "fused" : "unfused", aps_last_error());
      fails++;
      continue;
    }
    gr_plan_get_stats(p, fused ? &o->fused : &o->unfused);
    for (uint32_t t = 1; t < g->nt && s == APS_OK; t++)
      if (g->t[t].kind == GR_OP_INPUT || g->t[t].kind == GR_OP_PARAM)
        s = gr_plan_set(p, g->t[t].name, gr_cpu_values(cpu, t), gr_shape_count(g->t[t].shape));
    if (s == APS_OK)
      s = gr_plan_run(p);
    for (uint32_t t = 1; t < g->nt && s == APS_OK; t++)
      if (g->t[t].output) {
        int64_t n = gr_shape_count(g->t[t].shape);
        float *got = malloc((size_t)n * sizeof *got);
        s = gr_plan_get(p, g->t[t].name, got, n);
        if (s == APS_OK)
          fails += compare(got, gr_cpu_values(cpu, t), n, o, what, fused ? "fused" : "unfused", g->t[t].name);
        free(got);
      }
    if (s != APS_OK) {
      CHECK(0, "%s: run (%s): %s", what, fused ? "fused" : "unfused", aps_last_error());
      fails++;
    }
    gr_plan_destroy(p);
  }
  gr_cpu_destroy(cpu);
  return fails;
}

static gr_graph *conv_graph(size_t i, int f16, char *what, size_t what_size) {
  typedef struct {
    int n, c, h, w, o, k, stride, pad, dil, groups, reflect, bias;
  } cfg;
  static const cfg cases[] = {
      {1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0},   {1, 3, 7, 7, 7, 3, 1, 1, 1, 1, 0, 1},
      {3, 7, 33, 33, 3, 3, 1, 1, 1, 1, 0, 1}, {2, 33, 7, 3, 33, 1, 1, 0, 1, 1, 0, 1},
      {2, 4, 9, 9, 6, 3, 2, 1, 1, 2, 0, 0},   {1, 5, 12, 12, 5, 3, 1, 2, 2, 1, 0, 1},
      {2, 8, 8, 8, 8, 3, 1, 1, 1, 8, 0, 1},   {1, 3, 7, 9, 2, 3, 1, 1, 1, 1, 1, 0},
      {2, 16, 32, 32, 16, 3, 1, 1, 1, 1, 0, 1}, {1, 2, 7, 7, 3, 5, 1, 2, 1, 1, 0, 1},
      {2, 64, 16, 16, 64, 3, 2, 1, 1, 1, 0, 1}, {4, 64, 32, 32, 64, 1, 1, 0, 1, 1, 0, 1},
      /* depthwise (depthwise_f32.comp): blur-sized kernels, reflect, rows not a multiple of
       * 8 pixels, two outputs per channel, stride and dilation, more than 16 taps a row */
      {1, 3, 33, 33, 3, 9, 1, 4, 1, 3, 1, 0},   {2, 3, 32, 32, 6, 9, 1, 4, 1, 3, 1, 1},
      {3, 7, 16, 16, 7, 3, 2, 2, 2, 7, 0, 1},   {1, 2, 40, 40, 2, 17, 1, 8, 1, 2, 0, 0},
  };
  if (i >= sizeof cases / sizeof *cases)
    return NULL;
  const cfg *c = &cases[i];
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(c->n, c->c, c->h, c->w));
  gr_tensor w = gr_param(g, "w", GR_SHAPE(c->o, c->c / c->groups, c->k, c->k));
  gr_tensor b = c->bias ? gr_param(g, "b", GR_SHAPE(c->o)) : 0;
  if (f16) {
    x = gr_scale_shift(g, x, 1, 0);
    w = gr_scale_shift(g, w, 1, 0);
    b = b ? gr_scale_shift(g, b, 1, 0) : 0;
  }
  gr_conv2d_desc d = {c->stride, c->pad, c->dil, c->groups, c->reflect ? GR_PAD_REFLECT : GR_PAD_ZERO};
  gr_tensor y = gr_conv2d(g, x, w, b, &d);
  gr_output(g, f16 ? gr_scale_shift(g, y, 1, 0) : y, "y");
  snprintf(what, what_size, "conv2d case %zu (%dx%d, stride %d, pad %d, dil %d, groups %d%s)", i, c->k, c->k,
           c->stride, c->pad, c->dil, c->groups, c->reflect ? ", reflect" : "");
  return g;
}

gr_graph *conv_case(size_t i, char *what, size_t what_size) { return conv_graph(i, 0, what, what_size); }
gr_graph *conv_case_f16(size_t i, char *what, size_t what_size) { return conv_graph(i, 1, what, what_size); }

void check_graph_free(rt_device *dev, gr_graph *g, const char *what, check_opts o) {
  check_graph(dev, g, what, &o);
  gr_graph_destroy(g);
}

float *plan_output(gr_plan *p, const char *in, const float *v, int64_t nv, const char *name, int64_t n) {
  float *out = malloc((size_t)n * sizeof *out);
  aps_status s = in ? gr_plan_set(p, in, v, nv) : APS_OK;
  if (s == APS_OK)
    s = gr_plan_run(p);
  if (s == APS_OK)
    s = gr_plan_get(p, name, out, n);
  CHECK(s == APS_OK, "plan run: %s", aps_last_error());
  if (s != APS_OK) {
    free(out);
    return NULL;
  }
  return out;
}
