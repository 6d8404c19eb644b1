/* The gradient checker (fd_check.h). */
#include "fd_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_check.h"

rt_device *graph_tests_device(void);

static void fill_plain(const fd_opts *o, float *v, int64_t n, uint32_t seed) {
  fill_uniform(v, n, o->lo == o->hi ? -1.0f : o->lo, o->lo == o->hi ? 1.0f : o->hi, seed);
}

static double loss_sum(const gr_cpu *c, const gr_graph *g, gr_tensor t) {
  const float *v = gr_cpu_values(c, t);
  double s = 0;
  for (int64_t i = 0; i < gr_shape_count(gr_tensor_shape(g, t)); i++)
    s += v[i];
  return s;
}

typedef struct leaf {
  gr_tensor t;
  const char *name;
  int64_t n;
  float *v;
} leaf;

/* Every input and parameter, with values from o->fill. */
static int make_leaves(const gr_graph *g, const fd_opts *o, leaf *out, int max) {
  int nl = 0;
  for (int kind = 0; kind < 2; kind++)
    for (uint32_t i = 0; nl < max; i++) {
      gr_tensor t = kind ? gr_param_at(g, i) : gr_input_at(g, i);
      if (!t)
        break;
      leaf *l = &out[nl++];
      l->t = t;
      l->name = gr_tensor_name(g, t);
      l->n = gr_shape_count(gr_tensor_shape(g, t));
      l->v = malloc((size_t)l->n * sizeof *l->v);
      if (o->fill)
        o->fill(l->name, l->v, l->n, 7919u * t + 17u);
      else
        fill_plain(o, l->v, l->n, 7919u * t + 17u);
    }
  return nl;
}

static double fd_at(gr_cpu *c, const gr_graph *g, gr_tensor loss, leaf *l, int64_t j, double h) {
  float keep = l->v[j];
  l->v[j] = (float)(keep + h);
  double hp = (double)l->v[j] - keep; /* the step as the float input really took it */
  gr_cpu_set(c, l->name, l->v, l->n);
  gr_cpu_run(c);
  double lp = loss_sum(c, g, loss);
  l->v[j] = (float)(keep - h);
  double hm = keep - (double)l->v[j];
  gr_cpu_set(c, l->name, l->v, l->n);
  gr_cpu_run(c);
  double lm = loss_sum(c, g, loss);
  l->v[j] = keep;
  gr_cpu_set(c, l->name, l->v, l->n);
  return (lp - lm) / (hp + hm);
}

/* The forward+backward graph on the device (fused and unfused plans) against the CPU
 * values of every output, with the same leaf values. */
static void device_check(gr_graph *g, gr_cpu *c, leaf *leaves, int nl, const gr_tensor *outs, int nout,
                         const char *what) {
  int64_t compared = 0;
  for (int fused = 1; fused >= 0; fused--) {
    gr_plan *p = NULL;
    aps_status s = gr_plan_compile(g, graph_tests_device(), &(gr_plan_desc){.no_fusion = !fused}, &p);
    CHECK(s == APS_OK, "%s: compile: %s", what, aps_last_error());
    for (int l = 0; l < nl && s == APS_OK; l++)
      s = gr_plan_set(p, leaves[l].name, leaves[l].v, leaves[l].n);
    if (s == APS_OK)
      s = gr_plan_run(p);
    CHECK(s == APS_OK, "%s: device run: %s", what, aps_last_error());
    for (int k = 0; k < nout && s == APS_OK; k++) {
      gr_tensor t = outs[k];
      const char *nm = gr_tensor_name(g, t);
      int64_t n = gr_shape_count(gr_tensor_shape(g, t)), bad = 0, first = -1;
      float *got = malloc((size_t)n * sizeof *got);
      s = gr_plan_get(p, nm, got, n);
      const float *want = gr_cpu_values(c, t);
      compared += s == APS_OK ? n : 0;
      for (int64_t i = 0; i < n && s == APS_OK; i++)
        if (!(fabs((double)got[i] - want[i]) <= 1e-4 + 1e-3 * fabs(want[i])) && bad++ == 0)
          first = i;
      CHECK(bad == 0, "%s (%s plan): %s: %lld of %lld values off the CPU (first [%lld]: %g vs %g)", what,
            fused ? "fused" : "unfused", nm, (long long)bad, (long long)n, (long long)first,
            first >= 0 ? got[first] : 0.0, first >= 0 ? want[first] : 0.0);
      free(got);
    }
    gr_plan_destroy(p);
  }
  fprintf(stderr, "%s: %lld values compared between the device and the CPU\n", what, (long long)compared);
}

void fd_check(gr_graph *g, gr_tensor loss, int n, const gr_tensor *wrt, const char *what, fd_opts o) {
  enum { MAX_LEAVES = 1024, MAX_WRT = 8 };
  if (o.atol == 0)
    o.atol = 1e-4;
  if (o.rtol == 0)
    o.rtol = 1e-4;
  if (o.h == 0)
    o.h = 1e-2;
  if (o.points == 0)
    o.points = 64;
  gr_tensor grads[MAX_WRT] = {0};
  if (n > MAX_WRT) {
    CHECK(0, "%s: at most %d tensors to differentiate against", what, MAX_WRT);
    gr_graph_destroy(g);
    return;
  }
  aps_status s = gr_grad(g, loss, (uint32_t)n, wrt, grads);
  CHECK(s == APS_OK, "%s: gr_grad: %s", what, aps_last_error());
  gr_cpu *c = NULL;
  if (s == APS_OK) {
    gr_output(g, loss, "loss");
    for (int i = 0; i < n; i++) {
      char name[32];
      snprintf(name, sizeof name, "grad%d", i);
      CHECK(grads[i] != 0, "%s: gradient %d exists", what, i);
      if (grads[i])
        gr_output(g, grads[i], name);
    }
    s = gr_cpu_create(g, &c);
    CHECK(s == APS_OK, "%s: %s", what, aps_last_error());
  }
  if (s != APS_OK) {
    gr_graph_destroy(g);
    return;
  }
  leaf *leaves = calloc(MAX_LEAVES, sizeof *leaves);
  int nl = make_leaves(g, &o, leaves, MAX_LEAVES);
  for (int l = 0; l < nl; l++)
    gr_cpu_set(c, leaves[l].name, leaves[l].v, leaves[l].n);
  s = gr_cpu_run(c);
  CHECK(s == APS_OK, "%s: CPU run: %s", what, aps_last_error());
  /* Every analytic gradient before any perturbed run. */
  float *an[MAX_WRT] = {0};
  for (int i = 0; i < n && s == APS_OK; i++)
    if (grads[i]) {
      int64_t cnt = gr_shape_count(gr_tensor_shape(g, wrt[i]));
      an[i] = malloc((size_t)cnt * sizeof *an[i]);
      memcpy(an[i], gr_cpu_values(c, grads[i]), (size_t)cnt * sizeof *an[i]);
    }
  int bad = 0, checked = 0;
  double worst = 0, worst_abs = 0;
  for (int i = 0; i < n && s == APS_OK; i++) {
    int l = 0;
    while (l < nl && leaves[l].t != wrt[i])
      l++;
    if (l == nl || !grads[i])
      continue;
    int64_t cnt = leaves[l].n, stride = cnt > o.points ? cnt / o.points + 1 : 1;
    for (int64_t j = 0; j < cnt; j = j + stride < cnt || j == cnt - 1 ? j + stride : cnt - 1) {
      double d1 = fd_at(c, g, loss, &leaves[l], j, o.h), d2 = fd_at(c, g, loss, &leaves[l], j, o.h / 2);
      double fd = (4 * d2 - d1) / 3, err = fabs(fd - an[i][j]), tol = o.atol + o.rtol * fabs(fd);
      checked++;
      worst = fmax(worst, err / tol);
      worst_abs = fmax(worst_abs, err);
      if (!(err <= tol) || getenv("FD_VERBOSE")) {
        bad += !(err <= tol);
        fprintf(stderr, "%s: d/d %s[%lld]: autodiff %.7g, finite differences %.7g (h: %.7g, h/2: %.7g)\n", what,
                leaves[l].name, (long long)j, an[i][j], fd, d1, d2);
      }
    }
  }
  for (int i = 0; i < n; i++)
    free(an[i]);
  fprintf(stderr, "%s: %d gradient entries, worst |autodiff - fd| %.2g (%.2f of the tolerance)\n", what, checked,
          worst_abs, worst);
  CHECK(bad == 0 && checked > 0, "%s: %d of %d gradient entries disagree with finite differences", what, bad, checked);
  /* Rerun at the unperturbed values, then the device against it. */
  gr_tensor outs[MAX_WRT + 1] = {loss};
  int nout = 1;
  for (int i = 0; i < n; i++)
    if (grads[i])
      outs[nout++] = grads[i];
  if (s == APS_OK && gr_cpu_run(c) == APS_OK)
    device_check(g, c, leaves, nl, outs, nout, what);
  for (int l = 0; l < nl; l++)
    free(leaves[l].v);
  free(leaves);
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

/* ---- fills and losses for the gradient tests */

static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }
static float unit(uint32_t *s) { return (float)(lcg(s) >> 8) / 16777216.0f; }

/* In [-1, 1), at least 0.0375 from every multiple of 0.25 (the kinks the tests use: 0 and
 * ±0.5), and tensors named "b..." in the other half of each cell, so that a - b is at least
 * 0.075 from 0. "mask..." tensors get 0 or 1, "seed..." an integer. */
void fd_fill_away(const char *name, float *v, int64_t n, uint32_t seed) {
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
void fd_fill_distinct(const char *name, float *v, int64_t n, uint32_t seed) {
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
void fd_fill_matrix(const char *name, float *v, int64_t n, uint32_t seed) {
  fill_uniform(v, n, -0.4f, 0.4f, seed);
  if (name[0] != 'w')
    return;
  int c = (int)lround(sqrt((double)n));
  for (int i = 0; i < c; i++)
    v[i * c + (i + 1) % c] += c % 2 ? -2.0f : 2.0f; /* det ≈ (±2)^c · (-1)^(c-1) < 0 */
}

gr_tensor fd_weighted(gr_graph *g, gr_tensor y, const char *rname) {
  return gr_mul(g, y, gr_input(g, rname, gr_tensor_shape(g, y)));
}

/* The loss: every term flattened and concatenated (no sum in fp32 inside the graph; the
 * checker sums in double). */
gr_tensor fd_join(gr_graph *g, gr_tensor loss, gr_tensor term) {
  gr_tensor flat = gr_reshape(g, term, GR_SHAPE(gr_shape_count(gr_tensor_shape(g, term))));
  return loss ? gr_concat(g, loss, flat, 0) : flat;
}
