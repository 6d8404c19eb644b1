/* The operators as graphs, on the CPU device and on Vulkan (lavapipe under the validation
 * layer): the adjoint identity, the VJP against finite differences, the devices agreeing,
 * seeds, one compiled graph for a mixed batch against a host reference, the data term's σ_y
 * floor, and misuse. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "../test.h"
#include "dataset.h"
#include "operators.h"
#include "sampler.h"

static const char *const devices[2] = {"cpu", "0"};

/* A blur map for the painted-blur case: the left half blurred, a ramp across the middle. */
static const char *map_path(void) {
  static char path[128];
  if (path[0])
    return path;
  char dir[64] = "/tmp/aps-test-opmap-XXXXXX";
  if (!mkdtemp(dir))
    return "/nonexistent";
  snprintf(path, sizeof path, "%s/map.png", dir);
  unsigned char px[12 * 12];
  for (int i = 0; i < 144; i++)
    px[i] = (unsigned char)(i % 12 < 5 ? 255 : i % 12 < 8 ? 60 * (8 - i % 12) : 0);
  stbi_write_png(path, 12, 12, 1, px, 12);
  return path;
}

typedef struct op_case {
  const char *spec;
  int c, n;
} op_case;

/* Every operator and mix on 12x12 images (n, channels varied). */
static const op_case cases[] = {
    {"denoise", 2, 3},
    {"inpaint:box=3-6", 1, 3},
    {"inpaint:pixels=0.1-0.3", 2, 2},
    {"inpaint:strokes", 1, 3},
    {"inpaint:half,noise=0", 3, 2},
    {"blur:sigma=0.5-2.5", 2, 3},
    {"blur:sigma=1.5,map=MAP", 1, 3},
    {"sr:2", 2, 3},
    {"sr:4,noise=0.01-0.1", 1, 2},
    {"mix:inpaint:box=3-6+inpaint:strokes+inpaint:pixels=0.3+denoise", 1, 6},
    {"mix:blur:sigma=0.5-1+blur:sigma=2,map=MAP+denoise", 2, 6},
};
enum { NCASES = sizeof cases / sizeof *cases, S = 12 };

static void case_spec(const op_case *c, char *buf, size_t size) {
  size_t used = 0;
  for (const char *p = c->spec; *p && used + 1 < size;) {
    if (!strncmp(p, "MAP", 3)) {
      used += (size_t)snprintf(buf + used, size - used, "%s", map_path());
      p += 3;
    } else {
      buf[used++] = *p++;
    }
  }
  buf[used < size ? used : size - 1] = 0;
}

/* One family, its draws and its graph: inputs x, y, noise and the operator's; outputs ax,
 * aty, sim, cond, data. */
typedef struct op_setup {
  aps_op_family *f;
  aps_op_batch b;
  gr_graph *g;
  aps_op_graph op;
  int64_t nx, ny;
  float *x, *y;
} op_setup;

static aps_status setup(const op_case *c, uint64_t seed, op_setup *s) {
  memset(s, 0, sizeof *s);
  char text[600];
  case_spec(c, text, sizeof text);
  aps_op_spec spec;
  APS_TRY(aps_op_spec_parse(text, &spec));
  APS_TRY(aps_op_family_create(&spec, c->c, S, S, &s->f));
  const aps_op_layout *l = aps_op_family_layout(s->f);
  APS_TRY(aps_op_batch_alloc(l, c->n, &s->b));
  for (int i = 0; i < c->n; i++)
    APS_TRY(aps_op_draw(s->f, aps_op_seed(seed, (uint64_t)i), &s->b, i));
  s->nx = (int64_t)c->n * c->c * S * S, s->ny = (int64_t)c->n * c->c * l->mh * l->mw;
  s->x = malloc((size_t)s->nx * sizeof(float));
  s->y = malloc((size_t)s->ny * sizeof(float));
  s->g = gr_graph_create();
  gr_graph *g = s->g;
  gr_tensor x = gr_input(g, "x", GR_SHAPE(c->n, c->c, S, S));
  gr_tensor y = gr_input(g, "y", GR_SHAPE(c->n, c->c, l->mh, l->mw));
  gr_tensor noise = gr_input(g, "noise", GR_SHAPE(c->n, c->c, l->mh, l->mw));
  APS_TRY(aps_op_graph_inputs(g, l, c->n, NULL, &s->op));
  gr_output(g, aps_op_forward(g, &s->op, x), "ax");
  gr_output(g, aps_op_adjoint(g, &s->op, y), "aty");
  gr_output(g, aps_op_simulate(g, &s->op, x, noise), "sim");
  gr_output(g, aps_op_condition(g, &s->op, y), "cond");
  gr_output(g, aps_op_data_term(g, &s->op, x, y), "data");
  return gr_graph_status(g);
}

static void teardown(op_setup *s) {
  aps_op_batch_free(&s->b);
  aps_op_family_destroy(s->f);
  gr_graph_destroy(s->g);
  free(s->x), free(s->y);
}

static void fill(float *v, int64_t n, float lo, float hi, uint64_t seed) {
  uint64_t r = seed;
  for (int64_t i = 0; i < n; i++)
    v[i] = lo + (hi - lo) * (float)((aps_rng_next(&r) >> 40) * 0x1p-24);
}

/* Runs the setup's graph with its x and y; out[k] receives output k of names. */
static const char *const outs[5] = {"ax", "aty", "sim", "cond", "data"};
static aps_status run(aps_runner *r, op_setup *s, float **out) {
  APS_TRY(aps_runner_set(r, "x", s->x, s->nx));
  APS_TRY(aps_runner_set(r, "y", s->y, s->ny));
  APS_TRY(aps_runner_set(r, "noise", s->b.noise, s->ny));
  APS_TRY(aps_op_graph_set(r, s->g, &s->op, &s->b));
  APS_TRY(aps_runner_run(r));
  for (int k = 0; k < 5; k++)
    if (out[k])
      APS_TRY(aps_runner_get(r, outs[k], out[k], gr_shape_count(gr_tensor_shape(s->g, gr_find(s->g, outs[k])))));
  return APS_OK;
}

static int64_t out_count(const op_setup *s, int k) { return gr_shape_count(gr_tensor_shape(s->g, gr_find(s->g, outs[k]))); }

static double dot(const float *a, const float *b, int64_t n) {
  double d = 0;
  for (int64_t i = 0; i < n; i++)
    d += (double)a[i] * b[i];
  return d;
}

TEST_CASE(op_adjoint) {
  for (int dv = 0; dv < 2; dv++)
    for (int ci = 0; ci < NCASES; ci++) {
      op_setup s;
      REQUIRE_OK(setup(&cases[ci], 7 + (uint64_t)ci, &s));
      aps_runner *r = NULL;
      REQUIRE_OK(aps_runner_create(s.g, &(aps_runner_desc){.device = devices[dv], .quiet = 1}, &r));
      float *ax = malloc((size_t)s.ny * sizeof(float)), *aty = malloc((size_t)s.nx * sizeof(float));
      for (int signed_data = 0; signed_data < 2; signed_data++) {
        /* Positive data keeps both sides far from zero (a plain relative error); signed data
         * is compared on the scale of |Ax| |y| (Cauchy-Schwarz). */
        fill(s.x, s.nx, signed_data ? -1.0f : 0.0f, 1.0f, 100 + (uint64_t)ci);
        fill(s.y, s.ny, signed_data ? -1.0f : 0.0f, 1.0f, 200 + (uint64_t)ci);
        REQUIRE_OK(run(r, &s, (float *[5]){ax, aty, NULL, NULL, NULL}));
        double lhs = dot(ax, s.y, s.ny), rhs = dot(s.x, aty, s.nx);
        double scale = signed_data ? sqrt(dot(ax, ax, s.ny) * dot(s.y, s.y, s.ny)) : fabs(lhs);
        CHECK(fabs(lhs - rhs) <= 1e-5 * scale, "%s on %s, %s data: <Ax, y> = %.9g, <x, A^T y> = %.9g (rel %.2e)",
              cases[ci].spec, devices[dv], signed_data ? "signed" : "positive", lhs, rhs, fabs(lhs - rhs) / scale);
        if (!signed_data)
          fprintf(stderr, "%-62s %-4s <Ax,y> %.8g  <x,A^T y> %.8g  rel %.1e\n", cases[ci].spec, devices[dv], lhs, rhs,
                  fabs(lhs - rhs) / scale);
      }
      free(ax), free(aty);
      aps_runner_destroy(r);
      teardown(&s);
    }
  CHECK(rt_validation_messages_total() == 0, "%u validation messages", rt_validation_messages_total());
}

/* d/dx Σ A(x) ⊙ r by gr_grad against central differences of the same sum (in double), and
 * against the adjoint built by aps_op_adjoint. */
TEST_CASE(op_vjp_fd) {
  for (int dv = 0; dv < 2; dv++)
    for (int ci = 0; ci < NCASES; ci++) {
      op_setup s;
      REQUIRE_OK(setup(&cases[ci], 31 + (uint64_t)ci, &s));
      gr_graph *g = s.g;
      gr_tensor x = gr_find(g, "x"), y = gr_find(g, "y"), gx = 0;
      gr_tensor loss = gr_mul(g, gr_find(g, "ax"), y);
      REQUIRE_OK(gr_grad(g, loss, 1, &x, &gx));
      gr_output(g, gx, "gx");
      REQUIRE_OK(gr_graph_status(g));
      aps_runner *r = NULL;
      REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = devices[dv], .quiet = 1}, &r));
      float *ax = malloc((size_t)s.ny * sizeof(float)), *aty = malloc((size_t)s.nx * sizeof(float));
      float *grad = malloc((size_t)s.nx * sizeof(float));
      fill(s.x, s.nx, -1, 1, 300 + (uint64_t)ci);
      fill(s.y, s.ny, -1, 1, 400 + (uint64_t)ci);
      REQUIRE_OK(run(r, &s, (float *[5]){ax, aty, NULL, NULL, NULL}));
      REQUIRE_OK(aps_runner_get(r, "gx", grad, s.nx));
      double worst = 0, worst_adj = 0;
      const double h = 0.5; /* A is linear: central differences are exact up to rounding */
      for (int p = 0; p < 24; p++) {
        int64_t i = p == 23 ? s.nx - 1 : (int64_t)p * s.nx / 23;
        float keep = s.x[i];
        double l[2];
        for (int side = 0; side < 2; side++) {
          s.x[i] = keep + (float)(side ? -h : h);
          REQUIRE_OK(run(r, &s, (float *[5]){ax, NULL, NULL, NULL, NULL}));
          l[side] = dot(ax, s.y, s.ny);
        }
        s.x[i] = keep;
        double fd = (l[0] - l[1]) / (2 * h), err = fabs(grad[i] - fd) / (1e-3 + fabs(fd));
        worst = fmax(worst, err);
        CHECK(fabs(grad[i] - fd) <= 2e-5 + 1e-4 * fabs(fd), "%s on %s: d/dx[%lld] autodiff %.8g, differences %.8g",
              cases[ci].spec, devices[dv], (long long)i, grad[i], fd);
      }
      for (int64_t i = 0; i < s.nx; i++) {
        worst_adj = fmax(worst_adj, fabs(grad[i] - aty[i]));
        if (fabs(grad[i] - aty[i]) > 1e-5 + 1e-5 * fabs(aty[i])) {
          CHECK(0, "%s on %s: VJP %.8g vs A^T y %.8g at %lld", cases[ci].spec, devices[dv], grad[i], aty[i],
                (long long)i);
          break;
        }
      }
      fprintf(stderr, "%-62s %-4s VJP vs differences: worst %.1e; vs A^T: %.1e\n", cases[ci].spec, devices[dv], worst,
              worst_adj);
      free(ax), free(aty), free(grad);
      aps_runner_destroy(r);
      teardown(&s);
    }
  CHECK(rt_validation_messages_total() == 0, "%u validation messages", rt_validation_messages_total());
}

TEST_CASE(op_devices_agree) {
  for (int ci = 0; ci < NCASES; ci++) {
    op_setup s;
    REQUIRE_OK(setup(&cases[ci], 55 + (uint64_t)ci, &s));
    fill(s.x, s.nx, -1, 1, 500 + (uint64_t)ci);
    fill(s.y, s.ny, -1, 1, 600 + (uint64_t)ci);
    float *v[2][5];
    for (int dv = 0; dv < 2; dv++) {
      for (int k = 0; k < 5; k++)
        v[dv][k] = malloc((size_t)out_count(&s, k) * sizeof(float));
      aps_runner *r = NULL;
      REQUIRE_OK(aps_runner_create(s.g, &(aps_runner_desc){.device = devices[dv], .quiet = 1}, &r));
      REQUIRE_OK(run(r, &s, v[dv]));
      aps_runner_destroy(r);
    }
    for (int k = 0; k < 5; k++) {
      double worst = 0, rel = k == 4 ? 1e-5 : 1e-6; /* the data term: sums over / 2σ² */
      for (int64_t i = 0; i < out_count(&s, k); i++)
        worst = fmax(worst, fabs(v[0][k][i] - v[1][k][i]) / (1e-6 / rel + fabs(v[0][k][i])));
      CHECK(worst <= rel * 10, "%s: %s differs between the CPU device and Vulkan by %.2e (relative)", cases[ci].spec,
            outs[k], worst);
      free(v[0][k]), free(v[1][k]);
    }
    teardown(&s);
  }
  CHECK(rt_validation_messages_total() == 0, "%u validation messages", rt_validation_messages_total());
}

/* The same seeds give the same draws, bit for bit, and the same measurements on every run;
 * the devices agree on them. */
TEST_CASE(op_seed) {
  for (int ci = 0; ci < NCASES; ci++) {
    op_setup a, b;
    REQUIRE_OK(setup(&cases[ci], 99, &a));
    REQUIRE_OK(setup(&cases[ci], 99, &b));
    const aps_op_layout *l = &a.b.l;
    int n = a.b.n;
    size_t plane = (size_t)n * l->h * l->w * sizeof(float);
    CHECK(!memcmp(a.b.param, b.b.param, plane) && !memcmp(a.b.descriptor, b.b.descriptor, plane) &&
              !memcmp(a.b.noise, b.b.noise, (size_t)a.ny * sizeof(float)) &&
              !memcmp(a.b.sigma_y, b.b.sigma_y, (size_t)n * sizeof(float)) &&
              !memcmp(a.b.sigma_b, b.b.sigma_b, (size_t)n * sizeof(float)) &&
              !memcmp(a.b.member, b.b.member, (size_t)n * sizeof(int)) &&
              (!l->ksize || !memcmp(a.b.kernel, b.b.kernel, (size_t)n * l->ksize * l->ksize * sizeof(float))),
          "%s: the same seeds draw the same operators and noise", cases[ci].spec);
    /* Another seed draws another noise (and, where random, another mask). */
    aps_op_batch other;
    REQUIRE_OK(aps_op_batch_alloc(l, n, &other));
    REQUIRE_OK(aps_op_draw(a.f, aps_op_seed(100, 0), &other, 0));
    CHECK(memcmp(other.noise, a.b.noise, (size_t)(a.ny / n) * sizeof(float)), "%s: another seed, other noise",
          cases[ci].spec);
    aps_op_batch_free(&other);
    fill(a.x, a.nx, -1, 1, 700 + (uint64_t)ci);
    int64_t count = out_count(&a, 2);
    float *sim[3];
    for (int k = 0; k < 3; k++) { /* CPU device twice, then Vulkan */
      sim[k] = malloc((size_t)count * sizeof(float));
      aps_runner *r = NULL;
      REQUIRE_OK(aps_runner_create(a.g, &(aps_runner_desc){.device = devices[k == 2], .quiet = 1}, &r));
      fill(a.y, a.ny, 0, 0, 0);
      REQUIRE_OK(run(r, &a, (float *[5]){NULL, NULL, sim[k], NULL, NULL}));
      aps_runner_destroy(r);
    }
    double worst = 0;
    for (int64_t i = 0; i < count; i++)
      worst = fmax(worst, fabs(sim[0][i] - sim[2][i]));
    CHECK(!memcmp(sim[0], sim[1], (size_t)count * sizeof(float)), "%s: two runs, the same measurements",
          cases[ci].spec);
    CHECK(worst < 1e-6, "%s: the CPU device and Vulkan measure the same to %.1e", cases[ci].spec, worst);
    for (int k = 0; k < 3; k++)
      free(sim[k]);
    teardown(&a), teardown(&b);
  }
  CHECK(rt_validation_messages_total() == 0, "%u validation messages", rt_validation_messages_total());
}

static int reflect(int i, int n) {
  i = i < 0 ? -i : i;
  return i >= n ? 2 * (n - 1) - i : i;
}

/* A x on the host, in double, for sample i of a batch. */
static void host_forward(const aps_op_batch *b, const float *x, int i, double *out) {
  const aps_op_layout *l = &b->l;
  int hw = l->h * l->w, r = l->ksize / 2;
  for (int c = 0; c < l->c; c++) {
    const float *xp = x + ((int64_t)i * l->c + c) * hw, *p = b->param + (int64_t)i * hw;
    double *o = out + (int64_t)c * l->mh * l->mw;
    for (int y = 0; y < l->mh; y++)
      for (int xx = 0; xx < l->mw; xx++) {
        if (l->cls == APS_OPC_MASK) {
          o[y * l->w + xx] = (double)p[y * l->w + xx] * xp[y * l->w + xx];
        } else if (l->cls == APS_OPC_SR) {
          double s = 0;
          for (int u = 0; u < l->factor; u++)
            for (int v = 0; v < l->factor; v++)
              s += xp[(y * l->factor + u) * l->w + xx * l->factor + v];
          o[y * l->mw + xx] = s / (l->factor * l->factor);
        } else {
          const float *k = b->kernel + (int64_t)i * l->ksize * l->ksize;
          double s = 0, w = p[y * l->w + xx];
          for (int u = 0; u < l->ksize; u++)
            for (int v = 0; v < l->ksize; v++)
              s += k[u * l->ksize + v] * xp[reflect(y + u - r, l->h) * l->w + reflect(xx + v - r, l->w)];
          o[y * l->w + xx] = w * s + (1 - w) * xp[y * l->w + xx];
        }
      }
  }
}

/* One compiled graph serves every draw of a mixed family: two batches of different members
 * through the same runner, each against the host. */
TEST_CASE(op_reference) {
  for (int dv = 0; dv < 2; dv++)
    for (int ci = 0; ci < NCASES; ci++) {
      op_setup s;
      REQUIRE_OK(setup(&cases[ci], 1, &s));
      aps_runner *r = NULL;
      REQUIRE_OK(aps_runner_create(s.g, &(aps_runner_desc){.device = devices[dv], .quiet = 1}, &r));
      int64_t per = s.ny / s.b.n;
      float *ax = malloc((size_t)s.ny * sizeof(float));
      double *want = malloc((size_t)per * sizeof(double));
      int members = 0;
      for (int round = 0; round < 2; round++) {
        for (int i = 0; i < s.b.n; i++) {
          REQUIRE_OK(aps_op_draw(s.f, aps_op_seed(1000 + (uint64_t)round, (uint64_t)i), &s.b, i));
          members |= 1 << s.b.member[i];
        }
        fill(s.x, s.nx, -1, 1, 800 + (uint64_t)round);
        REQUIRE_OK(run(r, &s, (float *[5]){ax, NULL, NULL, NULL, NULL}));
        double worst = 0;
        for (int i = 0; i < s.b.n; i++) {
          host_forward(&s.b, s.x, i, want);
          for (int64_t k = 0; k < per; k++)
            worst = fmax(worst, fabs(ax[i * per + k] - want[k]));
        }
        CHECK(worst < 2e-6, "%s on %s, draw %d: A x differs from the host's by %.2e", cases[ci].spec, devices[dv],
              round, worst);
      }
      int want_members = (1 << aps_op_family_spec(s.f)->count) - 1;
      CHECK(members == want_members, "%s: the draws used members %#x of %#x", cases[ci].spec, members, want_members);
      free(ax), free(want);
      aps_runner_destroy(r);
      teardown(&s);
    }
  CHECK(rt_validation_messages_total() == 0, "%u validation messages", rt_validation_messages_total());
}

/* ||y − A x||² / (2 max(σ_y, floor)²) per sample; σ_y = 0 takes the floor. The condition's
 * channels. */
TEST_CASE(op_data_term) {
  for (int dv = 0; dv < 2; dv++) {
    const op_case c = {"mix:inpaint:half,noise=0+inpaint:box=3-6,noise=0.2", 2, 4};
    op_setup s;
    REQUIRE_OK(setup(&c, 5, &s));
    aps_runner *r = NULL;
    REQUIRE_OK(aps_runner_create(s.g, &(aps_runner_desc){.device = devices[dv], .quiet = 1}, &r));
    fill(s.x, s.nx, -1, 1, 1);
    fill(s.y, s.ny, -1, 1, 2);
    float data[4], *cond = malloc((size_t)out_count(&s, 3) * sizeof(float));
    REQUIRE_OK(run(r, &s, (float *[5]){NULL, NULL, NULL, cond, data}));
    int floors = 0;
    for (int i = 0; i < 4; i++) {
      double ss = 0;
      for (int64_t k = 0; k < 2 * 144; k++) {
        double d = s.y[i * 288 + k] - (double)s.b.param[i * 144 + k % 144] * s.x[i * 288 + k];
        ss += d * d;
      }
      double sig = fmax(s.b.sigma_y[i], APS_SIGMA_Y_FLOOR), want = ss / (2 * sig * sig);
      floors += s.b.sigma_y[i] == 0;
      CHECK(fabs(data[i] - want) < 1e-5 * want, "%s sample %d (σ_y %g): data term %.6g, host %.6g", devices[dv], i,
            s.b.sigma_y[i], data[i], want);
      /* channels: y (2), the mask, σ_y */
      for (int k = 0; k < 144; k++) {
        const float *ci = cond + (int64_t)i * 4 * 144;
        if (ci[k] != s.y[i * 288 + k] || ci[144 + k] != s.y[i * 288 + 144 + k] || ci[288 + k] != s.b.param[i * 144 + k] ||
            ci[432 + k] != s.b.sigma_y[i]) {
          CHECK(0, "%s: condition of sample %d at %d", devices[dv], i, k);
          break;
        }
      }
    }
    CHECK(floors > 0 && floors < 4, "both σ_y = 0 and σ_y = 0.2 drawn (%d floors)", floors);
    free(cond);
    aps_runner_destroy(r);
    teardown(&s);
  }
  CHECK(rt_validation_messages_total() == 0, "%u validation messages", rt_validation_messages_total());
}

/* Misuse: tensors of the wrong shape, a batch of another layout. */
TEST_CASE(op_graph_errors) {
  aps_op_spec spec;
  aps_op_layout l, other;
  REQUIRE_OK(aps_op_spec_parse("blur:sigma=1", &spec));
  REQUIRE_OK(aps_op_layout_make(&spec, 1, 16, 16, &l));
  gr_graph *g = gr_graph_create();
  aps_op_graph op;
  REQUIRE_OK(aps_op_graph_inputs(g, &l, 2, "blur", &op));
  CHECK(!strcmp(gr_tensor_name(g, op.kernel), "blur.kernel"), "the prefix names the inputs");
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 1, 8, 8));
  CHECK(aps_op_forward(g, &op, x) == 0 && gr_graph_status(g) == APS_ERR_INVALID_ARG &&
            strstr(gr_graph_error(g), "x is [2, 1, 8, 8], the operator takes [2, 1, 16, 16]"),
        "x of another size: %s", gr_graph_error(g));
  gr_graph_destroy(g);
  g = gr_graph_create();
  REQUIRE_OK(aps_op_graph_inputs(g, &l, 2, NULL, &op));
  gr_output(g, aps_op_forward(g, &op, gr_input(g, "x", GR_SHAPE(2, 1, 16, 16))), "ax");
  REQUIRE_OK(gr_graph_status(g));
  aps_runner *r = NULL;
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r));
  aps_op_batch b;
  REQUIRE_OK(aps_op_spec_parse("blur:sigma=2", &spec));
  REQUIRE_OK(aps_op_layout_make(&spec, 1, 16, 16, &other));
  REQUIRE_OK(aps_op_batch_alloc(&other, 2, &b));
  CHECK(aps_op_graph_set(r, g, &op, &b) == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "K 13"),
        "a batch with another kernel size: %s", aps_last_error());
  aps_op_batch_free(&b);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
}
