/* Random numbers: Philox's known answers, the fp32 Box-Muller against double, the same values
 * from the CPU reference and Vulkan (rerun with new seeds); and their gradient (none). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/reference_ops.h"
#include "fd_check.h"
#include "graph_check.h"

rt_device *graph_tests_device(void);

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

TEST_CASE(grad_random) {
  gr_graph *g = gr_graph_create();
  gr_tensor seed = gr_input(g, "seed", GR_SHAPE(1)), x = gr_input(g, "x", GR_SHAPE(4, 6));
  gr_tensor z = gr_random(g, GR_SHAPE(4, 6), seed, 0, GR_NORMAL), u = gr_random(g, GR_SHAPE(6), seed, 1, GR_UNIFORM);
  gr_tensor l = fd_join(g, 0, fd_weighted(g, gr_add(g, gr_mul(g, x, z), gr_mul(g, gr_unary_op(g, GR_SQUARE, x), u)), "r1"));
  /* The random numbers are constants: nothing flows to the seed. */
  gr_tensor grads[2];
  REQUIRE_OK(gr_grad(g, l, 2, (gr_tensor[]){seed, x}, grads));
  CHECK(grads[0] == 0 && grads[1] != 0, "random: no gradient to the seed");
  fd_check(g, l, 1, &x, "random (a constant)", (fd_opts){.fill = fd_fill_away});
}
