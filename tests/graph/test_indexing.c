/* The indexing ops (pad, the pixel shuffles, gather): Vulkan and the CPU device against the
 * CPU reference on odd shapes, plus the exact properties each op promises; and the errors
 * of the builders outside the core (indexing, random numbers, linear algebra). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph_check.h"

rt_device *graph_tests_device(void);

TEST_CASE(pad) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3, 7, 5)), one = gr_input(g, "one", GR_SHAPE(1, 1, 1, 1));
  gr_tensor big = gr_input(g, "big", GR_SHAPE(1, 3, 33, 33));
  gr_output(g, gr_pad(g, x, (int[]){1, 2, 3, 0}, GR_PAD_ZERO), "zero");
  gr_output(g, gr_pad(g, x, (int[]){6, 1, 4, 3}, GR_PAD_REFLECT), "reflect");
  gr_output(g, gr_pad(g, one, (int[]){3, 3, 7, 7}, GR_PAD_ZERO), "zero_1x1");
  gr_output(g, gr_pad(g, one, (int[]){0, 0, 0, 0}, GR_PAD_REFLECT), "reflect_1x1");
  gr_output(g, gr_pad(g, big, (int[]){7, 3, 1, 32}, GR_PAD_REFLECT), "reflect_33");
  check_graph_free(graph_tests_device(), g, "pad", (check_opts){0});
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
  check_graph_free(graph_tests_device(), g, "space_to_depth / depth_to_space", (check_opts){0});

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

/* Every builder names the op and the shapes at fault. */
TEST_CASE(builder_errors) {
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
