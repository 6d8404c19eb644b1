/* The CPU device's elementwise groups (graph/cpu/fast_fusion.c): graphs whose elementwise
 * nodes form groups (chains, broadcast operands, several outputs, values read in place), and
 * the cases that must keep nodes apart (a value read by another node before the group's last
 * node, an assignment in between, rows too narrow). Each graph runs on the CPU device with
 * groups and with APS_CPU_NO_FUSION=1 (the same kernels one node at a time: bit for bit the
 * same values), at 1 and 2 threads, and against the reference (the fast exp: 1e-5). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph_check.h"
#include "graph_internal.h"

static aps_status run_with(gr_graph *g, int fast, int fusion, int threads, int runs, gr_cpu **out,
                           gr_cpu_memory_stats *ms) {
  if (!fusion)
    setenv("APS_CPU_NO_FUSION", "1", 1);
  aps_status s = fast ? gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1, .threads = threads}, out) : gr_cpu_create(g, out);
  unsetenv("APS_CPU_NO_FUSION");
  for (uint32_t t = 1; t < g->nt && s == APS_OK; t++)
    if ((g->t[t].kind == GR_OP_INPUT || g->t[t].kind == GR_OP_PARAM) && !g->t[t].zero_init) {
      int64_t n = gr_shape_count(g->t[t].shape);
      float *v = malloc((size_t)n * sizeof *v);
      fill_uniform(v, n, -2.0f, 2.0f, t * 2654435761u);
      if (!strncmp(g->t[t].name, "mask", 4))
        for (int64_t i = 0; i < n; i++)
          v[i] = v[i] > 0.3f ? 1.0f : 0.0f;
      s = gr_cpu_set(*out, g->t[t].name, v, n);
      free(v);
    }
  for (int r = 0; r < runs && s == APS_OK; r++)
    s = gr_cpu_run(*out);
  if (ms)
    gr_cpu_memory(*out, ms);
  return s;
}

/* Runs g every way; min_grouped: nodes the CPU device must have grouped (-1: none at all). */
static void check_groups(gr_graph *g, const char *what, int min_grouped, int runs) {
  REQUIRE_OK(gr_graph_status(g));
  gr_cpu *ref = NULL;
  REQUIRE_OK(run_with(g, 0, 0, 0, runs, &ref, NULL));
  for (int threads = 1; threads <= 2; threads++) {
    gr_cpu *plain = NULL, *fused = NULL;
    gr_cpu_memory_stats ms;
    aps_status s = run_with(g, 1, 0, threads, runs, &plain, NULL);
    if (s == APS_OK)
      s = run_with(g, 1, 1, threads, runs, &fused, &ms);
    CHECK(s == APS_OK, "%s: %s", what, aps_last_error());
    if (s == APS_OK && min_grouped < 0)
      CHECK(ms.grouped_nodes == 0, "%s: no groups (%u nodes grouped)", what, ms.grouped_nodes);
    else if (s == APS_OK)
      CHECK(ms.grouped_nodes >= (uint32_t)min_grouped, "%s: %u nodes in %u groups, want at least %d", what,
            ms.grouped_nodes, ms.groups, min_grouped);
    for (uint32_t t = 1; t < g->nt && s == APS_OK; t++) {
      if (!g->t[t].output && !(g->t[t].kind == GR_OP_PARAM && g->t[t].zero_init))
        continue;
      const float *want = gr_cpu_values(ref, t), *same = gr_cpu_values(plain, t), *got = gr_cpu_values(fused, t);
      int64_t n = gr_shape_count(g->t[t].shape), differ = 0, off = 0;
      for (int64_t i = 0; i < n; i++) {
        differ += memcmp(&got[i], &same[i], sizeof *got) != 0;
        off += !(fabsf(got[i] - want[i]) <= 1e-5f + 1e-5f * fabsf(want[i]));
      }
      CHECK(differ == 0, "%s (%d threads), %s: %lld of %lld values differ from the ungrouped run", what, threads,
            g->t[t].name, (long long)differ, (long long)n);
      CHECK(off == 0, "%s (%d threads), %s: %lld of %lld values off the reference", what, threads, g->t[t].name,
            (long long)off, (long long)n);
    }
    gr_cpu_destroy(plain);
    gr_cpu_destroy(fused);
  }
  gr_cpu_destroy(ref);
  gr_graph_destroy(g);
}

TEST_CASE(cpu_device_fusion) {
  { /* SiLU's gradient on odd shapes, with a per-channel scale, a scalar and a mask (where) */
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 5, 37, 29)), dy = gr_input(g, "dy", GR_SHAPE(3, 5, 37, 29));
    gr_tensor c = gr_input(g, "c", GR_SHAPE(1, 5, 1, 1)), k = gr_input(g, "k", GR_SHAPE(1));
    gr_tensor mask = gr_input(g, "mask", GR_SHAPE(3, 5, 37, 29));
    gr_tensor h = gr_add(g, gr_mul(g, x, c), k), s = gr_unary_op(g, GR_SIGMOID, h);
    gr_tensor one_minus = gr_scale_shift(g, s, -1.0f, 1.0f);
    gr_tensor d = gr_mul(g, dy, gr_mul(g, s, gr_scale_shift(g, gr_mul(g, h, one_minus), 1.0f, 1.0f)));
    gr_tensor y = gr_where(g, mask, d, gr_unary_op(g, GR_EXP, gr_unary_op(g, GR_NEG, h)));
    gr_output(g, y, "y");
    gr_output(g, s, "sigmoid"); /* an intermediate read outside: written as well */
    check_groups(g, "silu gradient", 8, 1);
  }
  { /* long in-place chains, outputs of several sizes, rows of one value per sample */
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(4, 64, 16, 16)), b = gr_input(g, "b", GR_SHAPE(4, 1, 1, 1));
    gr_tensor v = x;
    for (int i = 0; i < 12; i++)
      v = i % 3 == 0 ? gr_unary_op(g, GR_TANH, v) : i % 3 == 1 ? gr_sub(g, v, b) : gr_leaky_relu(g, v, 0.1f);
    gr_output(g, gr_mul(g, v, x), "chain");
    gr_output(g, gr_reduce_op(g, GR_SUM, gr_unary_op(g, GR_SQUARE, v), 14u), "sumsq");
    check_groups(g, "chain", 12, 1);
  }
  { /* a stored value in place over an input that later nodes of the group read too */
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(3, 7, 40, 40));
    gr_tensor a = gr_slice(g, x, 1, 1, 5), c = gr_scale_shift(g, a, 2.0f, 0.5f), d = gr_add(g, a, gr_mul(g, c, a));
    gr_output(g, d, "d");
    gr_output(g, gr_reduce_op(g, GR_SUM, c, 15u), "sum_c");
    check_groups(g, "in place", 3, 2);
  }
  { /* a value read by another node before the group's last node: that reader must see it */
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 8, 32, 32));
    gr_tensor e = gr_unary_op(g, GR_EXP, gr_scale_shift(g, x, 0.5f, 0.0f));
    gr_tensor r = gr_reduce_op(g, GR_MEAN, e, 14u); /* [2, 1, 1, 1]... read between */
    gr_tensor z = gr_mul(g, gr_sub(g, e, r), x);
    gr_output(g, z, "z");
    gr_output(g, gr_reshape(g, r, GR_SHAPE(2)), "r");
    check_groups(g, "reader in between", 2, 1);
  }
  { /* Adam-like state updates: an assignment between nodes that read the state */
    gr_graph *g = gr_graph_create();
    gr_tensor p = gr_state(g, "m", GR_SHAPE(8, 300)), x = gr_input(g, "x", GR_SHAPE(8, 300));
    gr_tensor a = gr_add(g, gr_scale_shift(g, p, 0.9f, 0.0f), x);
    gr_assign(g, p, gr_unary_op(g, GR_TANH, a));
    gr_tensor after = gr_mul(g, gr_add(g, p, x), a); /* reads the assigned value */
    gr_output(g, after, "after");
    check_groups(g, "assignment between", 0, 3);
  }
  { /* rows of 3 values (an operand constant along W only): the nodes run alone */
    gr_graph *g = gr_graph_create();
    gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 40, 50, 3)), w = gr_input(g, "w", GR_SHAPE(1, 1, 1, 3));
    gr_tensor y = gr_unary_op(g, GR_EXP, gr_mul(g, gr_add(g, x, w), w));
    gr_output(g, y, "y");
    check_groups(g, "narrow rows", -1, 1);
  }
}
