/* pad, space/depth shuffles, gather, random numbers and small linear algebra: Vulkan
 * against the CPU reference on odd shapes, plus the exact properties each op promises. */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"
#include "graph_check.h"

rt_device *graph_tests_device(void);

static void run(gr_graph *g, const char *what, check_opts o) {
  check_graph(graph_tests_device(), g, what, &o);
  gr_graph_destroy(g);
}

/* Output `name` of a plan run with one input set (name NULL: none); malloc'd, or NULL. */
static float *plan_output(gr_plan *p, const char *in, const float *v, int64_t nv, const char *name, int64_t n) {
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

TEST_CASE(pad) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 7, 5)), one = gr_input(g, "one", GR_SHAPE(1, 1, 1, 1));
  gr_tensor big = gr_input(g, "big", GR_SHAPE(1, 3, 33, 33));
  gr_output(g, gr_pad(g, x, (int[]){1, 2, 3, 0}, GR_PAD_ZERO), "zero");
  gr_output(g, gr_pad(g, x, (int[]){6, 1, 4, 3}, GR_PAD_REFLECT), "reflect");
  gr_output(g, gr_pad(g, one, (int[]){3, 3, 7, 7}, GR_PAD_ZERO), "zero_1x1");
  gr_output(g, gr_pad(g, one, (int[]){0, 0, 0, 0}, GR_PAD_REFLECT), "reflect_1x1");
  gr_output(g, gr_pad(g, big, (int[]){7, 3, 1, 32}, GR_PAD_REFLECT), "reflect_33");
  run(g, "pad", (check_opts){0});
  /* PyTorch's reflect on a row 0 1 2 3 by 2 on each side: 2 1 0 1 2 3 2 1. */
  g = gr_graph_create();
  x = gr_input(g, "x", GR_SHAPE(1, 1, 1, 4));
  gr_output(g, gr_pad(g, x, (int[]){0, 0, 2, 2}, GR_PAD_REFLECT), "y");
  gr_cpu *c = NULL;
  REQUIRE_OK(gr_cpu_create(g, &c));
  REQUIRE_OK(gr_cpu_set(c, "x", (float[]){0, 1, 2, 3}, 4));
  REQUIRE_OK(gr_cpu_run(c));
  const float want[8] = {2, 1, 0, 1, 2, 3, 2, 1}, *got = gr_cpu_values(c, gr_find(g, "y"));
  CHECK(!memcmp(got, want, sizeof want), "reflect order: %g %g %g ... %g", got[0], got[1], got[2], got[7]);
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

TEST_CASE(pixel_shuffle) {
  gr_graph *g = gr_graph_create();
  gr_tensor a = gr_input(g, "a", GR_SHAPE(2, 3, 6, 9)), b = gr_input(g, "b", GR_SHAPE(1, 28, 3, 33));
  gr_tensor c = gr_input(g, "c", GR_SHAPE(1, 1, 1, 1)), d = gr_input(g, "d", GR_SHAPE(3, 7, 14, 66));
  gr_output(g, gr_space_to_depth(g, a, 3), "s2d_3");
  gr_output(g, gr_depth_to_space(g, b, 2), "d2s_2");
  gr_output(g, gr_space_to_depth(g, c, 1), "s2d_1");
  gr_output(g, gr_space_to_depth(g, d, 2), "s2d_big");
  run(g, "space_to_depth / depth_to_space", (check_opts){0});

  /* PyTorch's pixel_unshuffle(arange(16).view(1, 1, 4, 4), 2). */
  g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(1, 1, 4, 4));
  gr_output(g, gr_space_to_depth(g, x, 2), "y");
  gr_plan *p = NULL;
  REQUIRE_OK(gr_plan_compile(g, graph_tests_device(), NULL, &p));
  float in[16];
  for (int i = 0; i < 16; i++)
    in[i] = (float)i;
  static const float want[16] = {0, 2, 8, 10, 1, 3, 9, 11, 4, 6, 12, 14, 5, 7, 13, 15};
  float *got = plan_output(p, "x", in, 16, "y", 16);
  CHECK(got && !memcmp(got, want, sizeof want), "pixel_unshuffle channel order");
  free(got);
  gr_plan_destroy(p);
  gr_graph_destroy(g);

  /* depth_to_space(space_to_depth(x)) == x, bit for bit, on both sides. */
  static const int64_t shapes[][5] = {{2, 3, 6, 9, 3}, {1, 7, 66, 14, 2}, {1, 1, 1, 1, 1}, {3, 33, 8, 8, 4}};
  for (int k = 0; k < 4; k++) {
    const int64_t *s = shapes[k];
    int64_t n = s[0] * s[1] * s[2] * s[3];
    g = gr_graph_create();
    x = gr_input(g, "x", GR_SHAPE(s[0], s[1], s[2], s[3]));
    gr_output(g, gr_depth_to_space(g, gr_space_to_depth(g, x, (int)s[4]), (int)s[4]), "y");
    float *v = malloc((size_t)n * sizeof *v);
    fill_uniform(v, n, -1, 1, 7u + (uint32_t)k);
    gr_cpu *cpu = NULL;
    REQUIRE_OK(gr_cpu_create(g, &cpu));
    REQUIRE_OK(gr_cpu_set(cpu, "x", v, n));
    REQUIRE_OK(gr_cpu_run(cpu));
    CHECK(!memcmp(gr_cpu_values(cpu, gr_find(g, "y")), v, (size_t)n * 4), "CPU round trip %d is exact", k);
    REQUIRE_OK(gr_plan_compile(g, graph_tests_device(), NULL, &p));
    got = plan_output(p, "x", v, n, "y", n);
    CHECK(got && !memcmp(got, v, (size_t)n * 4), "Vulkan round trip %d is exact", k);
    free(got);
    free(v);
    gr_plan_destroy(p);
    gr_cpu_destroy(cpu);
    gr_graph_destroy(g);
  }
}

TEST_CASE(gather) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 7, 33)), one = gr_input(g, "one", GR_SHAPE(1));
  gr_tensor img = gr_input(g, "img", GR_SHAPE(2, 33, 3, 5));
  int32_t rev[7] = {6, 5, 4, 3, 2, 1, 0}, idx[40], perm[33], dup[3] = {0, 0, 0};
  for (int i = 0; i < 40; i++)
    idx[i] = (i * 17 + 5) % 33;
  for (int i = 0; i < 33; i++)
    perm[i] = (i * 10 + 3) % 33; /* 10 is prime to 33: a permutation */
  gr_output(g, gr_gather(g, x, 1, rev, 7), "reverse_axis1");
  gr_output(g, gr_gather(g, x, 2, idx, 40), "repeat_axis2");
  gr_output(g, gr_gather(g, x, 0, (int32_t[]){2}, 1), "pick_axis0");
  gr_output(g, gr_gather(g, one, 0, dup, 3), "broadcast_one");
  gr_tensor shuffled = gr_gather(g, img, 1, perm, 33);
  gr_output(g, shuffled, "channel_perm");
  /* The inverse permutation restores the input: what a flow's inverse does. */
  int32_t inv[33];
  for (int i = 0; i < 33; i++)
    inv[perm[i]] = i;
  gr_output(g, gr_sub(g, gr_gather(g, shuffled, 1, inv, 33), img), "restored_minus_input");
  check_opts o = {0};
  check_graph(graph_tests_device(), g, "gather", &o);
  gr_cpu *c = NULL;
  REQUIRE_OK(gr_cpu_create(g, &c));
  float v[2 * 33 * 15];
  fill_uniform(v, 2 * 33 * 15, -1, 1, 3);
  gr_cpu_set(c, "img", v, 2 * 33 * 15);
  gr_cpu_set(c, "x", v, 3 * 7 * 33);
  gr_cpu_set(c, "one", v, 1);
  REQUIRE_OK(gr_cpu_run(c));
  const float *r = gr_cpu_values(c, gr_find(g, "restored_minus_input"));
  int zero = 1;
  for (int i = 0; i < 2 * 33 * 15; i++)
    zero &= r[i] == 0.0f;
  CHECK(zero, "gather by the inverse permutation restores the input");
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

/* ---- random numbers */

static void random_case(gr_shape shape, gr_distribution dist, const float *seed, int64_t seed_n, const float *seed2) {
  gr_graph *g = gr_graph_create();
  gr_tensor s = gr_input(g, "seed", seed_n == 1 ? GR_SHAPE(1) : GR_SHAPE(2));
  gr_output(g, gr_random(g, shape, s, 3, dist), "r");
  int64_t n = gr_shape_count(shape);
  gr_plan *p = NULL;
  gr_cpu *c = NULL;
  REQUIRE_OK(gr_plan_compile(g, graph_tests_device(), NULL, &p));
  REQUIRE_OK(gr_cpu_create(g, &c));
  for (int run = 0; run < 2; run++) { /* a new seed reruns the same plan */
    const float *sd = run ? seed2 : seed;
    REQUIRE_OK(gr_cpu_set(c, "seed", sd, seed_n));
    REQUIRE_OK(gr_cpu_run(c));
    const float *want = gr_cpu_values(c, gr_find(g, "r"));
    float *got = plan_output(p, "seed", sd, seed_n, "r", n);
    if (!got)
      break;
    int64_t bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
      double e = fabs((double)got[i] - want[i]);
      worst = e > worst ? e : worst;
      bad += dist == GR_UNIFORM ? memcmp(&got[i], &want[i], 4) != 0 : !(e <= 1e-5);
    }
    CHECK(bad == 0, "%s, %lld values, seed %g: %lld differ (worst %.3g)", dist ? "normal" : "uniform", (long long)n,
          sd[0], (long long)bad, worst);
    free(got);
  }
  gr_cpu_destroy(c);
  gr_plan_destroy(p);
  gr_graph_destroy(g);
}

TEST_CASE(random) {
  /* Random123's known answers for Philox4x32-10. */
  static const uint32_t kat[3][10] = {
      {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {~0u, ~0u, ~0u, ~0u, ~0u, ~0u, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
       0x24126ea1}};
  for (int k = 0; k < 3; k++) {
    uint32_t out[4];
    gr_philox4x32_10(kat[k], kat[k] + 4, out);
    CHECK(!memcmp(out, kat[k] + 6, sizeof out), "Philox known answer %d: %08x %08x %08x %08x", k, out[0], out[1],
          out[2], out[3]);
  }
  /* The fp32 Box-Muller polynomials against double log/cos/sin over a sweep of words. */
  double worst = 0;
  for (uint32_t i = 0; i < 200000; i++) {
    uint32_t w0 = i * 2654435761u, w1 = i * 2246822519u + 12345u;
    if (i < 256) /* the extremes of u1 and of the angle */
      w0 = i << 24 | 0xFFFFFFu, w1 = i << 24;
    float z[2];
    gr_box_muller(w0, w1, z);
    double u1 = ((w0 >> 8) + 1) * 0x1p-24, th = 2 * 3.14159265358979323846 * (w1 >> 8) * 0x1p-24;
    double r = sqrt(-2 * log(u1));
    double e = fmax(fabs(z[0] - r * cos(th)), fabs(z[1] - r * sin(th)));
    worst = e > worst ? e : worst;
  }
  fprintf(stderr, "Box-Muller in fp32 polynomials: worst error %.3g against double\n", worst);
  CHECK(worst < 5e-6, "Box-Muller within 5e-6 of double (%.3g)", worst);

  static const float s1[1] = {12345}, s1b[1] = {16777215}, s2[2] = {65535, 4242}, s2b[2] = {1, 0};
  for (int dist = 0; dist < 2; dist++) {
    random_case(GR_SHAPE(7), (gr_distribution)dist, s1, 1, s1b);
    random_case(GR_SHAPE(1), (gr_distribution)dist, s1, 1, s2b);
    random_case(GR_SHAPE(3, 33, 65), (gr_distribution)dist, s2, 2, s2b);
    random_case(GR_SHAPE(2, 3, 7, 33), (gr_distribution)dist, s1b, 1, s1);
  }

  /* Moments, and distinct streams and seeds give distinct numbers. */
  enum { N = 1 << 16 };
  gr_graph *g = gr_graph_create();
  gr_tensor s = gr_input(g, "seed", GR_SHAPE(1));
  gr_output(g, gr_random(g, GR_SHAPE(N), s, 0, GR_UNIFORM), "u");
  gr_output(g, gr_random(g, GR_SHAPE(N), s, 0, GR_NORMAL), "z");
  gr_output(g, gr_random(g, GR_SHAPE(N), s, 1, GR_UNIFORM), "u_stream1");
  gr_cpu *c = NULL;
  REQUIRE_OK(gr_cpu_create(g, &c));
  REQUIRE_OK(gr_cpu_set(c, "seed", s1, 1));
  REQUIRE_OK(gr_cpu_run(c));
  const float *u = gr_cpu_values(c, gr_find(g, "u")), *z = gr_cpu_values(c, gr_find(g, "z"));
  const float *u1 = gr_cpu_values(c, gr_find(g, "u_stream1"));
  double mu = 0, vu = 0, mz = 0, vz = 0, lo = 1, hi = 0;
  int same = 0;
  for (int i = 0; i < N; i++) {
    mu += u[i], vu += (u[i] - 0.5) * (u[i] - 0.5), mz += z[i], vz += z[i] * z[i];
    lo = fmin(lo, u[i]), hi = fmax(hi, u[i]);
    same += u[i] == u1[i];
  }
  mu /= N, vu /= N, mz /= N, vz /= N;
  fprintf(stderr, "uniform mean %.4f var %.4f in [%g, %g]; normal mean %.4f var %.4f\n", mu, vu, lo, hi, mz, vz);
  CHECK(fabs(mu - 0.5) < 0.01 && fabs(vu - 1.0 / 12) < 0.005 && lo >= 0 && hi < 1, "uniform moments");
  CHECK(fabs(mz) < 0.02 && fabs(vz - 1) < 0.03, "normal moments");
  CHECK(same < 16, "streams differ (%d equal values)", same);
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

/* ---- small linear algebra */

/* kind 0: R + C·I with R uniform in [-1, 1). kind 1: Q·diag(e^s), Q orthogonal (Gram-Schmidt
 * of a random matrix, so pivoting matters) and s in [-1, 1): log|det| = Σ s, cond <= e². */
static double make_matrix(int kind, int C, float *w) {
  double *q = malloc((size_t)C * C * sizeof *q), lad = 0;
  float *r = malloc((size_t)C * C * sizeof *r), s[512];
  fill_uniform(r, (int64_t)C * C, -1, 1, 1000u + (uint32_t)C * 7u + (uint32_t)kind);
  fill_uniform(s, C, -1, 1, 77u + (uint32_t)C);
  for (int i = 0; i < C * C; i++)
    q[i] = r[i];
  if (kind == 0) {
    for (int i = 0; i < C; i++)
      q[i * C + i] += C;
  } else {
    for (int j = 0; j < C; j++) { /* columns orthonormal */
      for (int k = 0; k < j; k++) {
        double d = 0;
        for (int i = 0; i < C; i++)
          d += q[i * C + j] * q[i * C + k];
        for (int i = 0; i < C; i++)
          q[i * C + j] -= d * q[i * C + k];
      }
      double nrm = 0;
      for (int i = 0; i < C; i++)
        nrm += q[i * C + j] * q[i * C + j];
      for (int i = 0; i < C; i++)
        q[i * C + j] /= sqrt(nrm);
    }
    for (int j = 0; j < C; j++) {
      for (int i = 0; i < C; i++)
        q[i * C + j] *= exp(s[j]);
      lad += s[j];
    }
  }
  for (int i = 0; i < C * C; i++)
    w[i] = (float)q[i];
  free(q);
  free(r);
  return lad;
}

static double norm_inf(const float *a, int C) {
  double m = 0;
  for (int i = 0; i < C; i++) {
    double row = 0;
    for (int j = 0; j < C; j++)
      row += fabs(a[i * C + j]);
    m = fmax(m, row);
  }
  return m;
}

static void linalg_case(int kind, int C) {
  gr_graph *g = gr_graph_create();
  gr_tensor w = gr_input(g, "w", GR_SHAPE(C, C));
  gr_output(g, gr_inverse(g, w), "inv");
  gr_output(g, gr_logabsdet(g, w), "lad");
  float *m = malloc((size_t)C * C * sizeof *m);
  double exact = make_matrix(kind, C, m);
  gr_cpu *c = NULL;
  gr_plan *p = NULL;
  REQUIRE_OK(gr_cpu_create(g, &c));
  REQUIRE_OK(gr_cpu_set(c, "w", m, (int64_t)C * C));
  REQUIRE_OK(gr_cpu_run(c));
  REQUIRE_OK(gr_plan_compile(g, graph_tests_device(), NULL, &p));
  const float *inv_ref = gr_cpu_values(c, gr_find(g, "inv")), *lad_ref = gr_cpu_values(c, gr_find(g, "lad"));
  float *inv = plan_output(p, "w", m, (int64_t)C * C, "inv", (int64_t)C * C);
  float *lad = plan_output(p, NULL, NULL, 0, "lad", 1);
  if (inv && lad) {
    /* fp32 LU: errors grow like C · eps · cond. */
    double cond = norm_inf(m, C) * norm_inf(inv_ref, C), eps = 0x1p-24, big = 0, err = 0, res = 0;
    for (int i = 0; i < C * C; i++) {
      big = fmax(big, fabs(inv_ref[i]));
      err = fmax(err, fabs(inv[i] - inv_ref[i]));
    }
    for (int i = 0; i < C; i++)
      for (int j = 0; j < C; j++) {
        double d = -(i == j);
        for (int k = 0; k < C; k++)
          d += (double)m[i * C + k] * inv[k * C + j];
        res = fmax(res, fabs(d));
      }
    double tol = 2.0 * C * eps * cond;
    fprintf(stderr, "%s C=%d: cond %.3g, inverse error %.3g (tol %.3g), residual %.3g, log|det| %.6g vs %.6g "
                    "(exact %.6g)\n",
            kind ? "Q·diag(e^s)" : "R + C·I", C, cond, err / big, tol, res, lad[0], lad_ref[0], kind ? exact : NAN);
    CHECK(err <= tol * big, "inverse within %.3g x max|inv| (%.3g)", tol, err / big);
    CHECK(res <= tol, "w · inverse within %.3g of I (%.3g)", tol, res);
    CHECK(fabs(lad[0] - lad_ref[0]) <= tol + 1e-6 * fabs(lad_ref[0]), "log|det| %.7g vs %.7g", lad[0], lad_ref[0]);
    CHECK(!kind || fabs(lad_ref[0] - exact) <= 1e-5 * C, "reference log|det| %.7g vs exact %.7g", lad_ref[0], exact);
  }
  free(inv);
  free(lad);
  free(m);
  gr_plan_destroy(p);
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

TEST_CASE(linalg) {
  static const int sizes[] = {1, 3, 7, 33, 64};
  for (int kind = 0; kind < 2; kind++)
    for (int i = 0; i < 5; i++)
      linalg_case(kind, sizes[i]);
  /* A scaled, signed permutation: every step pivots; |det| = 3. */
  gr_graph *g = gr_graph_create();
  gr_tensor w = gr_const(g, "w", GR_SHAPE(3, 3), (float[]){0, -2, 0, 0, 0, 0.5f, 3, 0, 0});
  gr_output(g, gr_inverse(g, w), "inv");
  gr_output(g, gr_logabsdet(g, w), "lad");
  run(g, "inverse of a signed permutation", (check_opts){.lo = 0, .hi = 0, .atol = 1e-6f});
}

/* Every builder names the op and the shapes at fault. */
TEST_CASE(extra_errors) {
  static const struct {
    const char *want[3];
  } expect[] = {
      {{"outer: pad", "[1, 2, 3, 4]", "reflect"}}, {{"pad", "[5, 6]", "NCHW"}},
      {{"space_to_depth", "[1, 2, 3, 4]", "block 2"}}, {{"depth_to_space", "[1, 2, 3, 4]", "block 2"}},
      {{"gather", "index[1] = 3", "[1, 2, 3, 4]"}}, {{"gather", "axis 4", "[1, 2, 3, 4]"}},
      {{"random", "seed [3]", "1 or 2"}}, {{"inverse", "[5, 6]", "square"}},
      {{"logabsdet", "[513, 513]", "512"}},
  };
  for (int k = 0; k < 9; k++) {
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(1, 2, 3, 4)), m = gr_input(g, "m", GR_SHAPE(5, 6));
    gr_scope_push(g, "outer");
    gr_tensor y = 1;
    switch (k) {
    case 0: y = gr_pad(g, x, (int[]){0, 3, 0, 0}, GR_PAD_REFLECT); break;
    case 1: y = gr_pad(g, m, (int[]){1, 1, 1, 1}, GR_PAD_ZERO); break;
    case 2: y = gr_space_to_depth(g, x, 2); break;
    case 3: y = gr_depth_to_space(g, x, 2); break;
    case 4: y = gr_gather(g, x, 2, (int32_t[]){0, 3}, 2); break;
    case 5: y = gr_gather(g, x, 4, (int32_t[]){0}, 1); break;
    case 6: y = gr_random(g, GR_SHAPE(4), gr_input(g, "s", GR_SHAPE(3)), 0, GR_UNIFORM); break;
    case 7: y = gr_inverse(g, m); break;
    case 8: y = gr_logabsdet(g, gr_input(g, "big", GR_SHAPE(513, 513))); break;
    }
    const char *e = gr_graph_error(g);
    CHECK(y == 0 && gr_graph_status(g) == APS_ERR_INVALID_ARG, "case %d refused", k);
    for (int j = 0; j < 3; j++)
      CHECK(strstr(e, expect[k].want[j]), "case %d: '%s' names '%s'", k, e, expect[k].want[j]);
    gr_graph_destroy(g);
  }
}
