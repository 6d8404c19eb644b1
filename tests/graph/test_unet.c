/* The graph compiler's reference U-Net (widths 32/64/64, two blocks per level, attention at
 * 8×8) runs forward on the device and matches the CPU reference. */
#include "graph_check.h"
#include "graph_internal.h"
#include "layers.h"

rt_device *graph_tests_device(void);

TEST_CASE(unet) {
  gr_unet_config cfg = gr_unet_config_default(1, 32);
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 1, 32, 32)), t = gr_input(g, "t", GR_SHAPE(2));
  gr_output(g, gr_unet(g, &cfg, x, t), "eps");
  gr_stats st;
  gr_graph_get_stats(g, &st);
  fprintf(stderr, "U-Net: %u nodes, %u parameter tensors, %.2f M parameters\n", st.nodes, st.params,
          st.param_floats / 1e6);
  CHECK(st.param_floats > 1000000 && st.param_floats < 2000000, "1-2 M parameters (%lld)", (long long)st.param_floats);
  check_opts o = {.atol = 2e-4f, .rtol = 2e-3f, .fan_in_scale = 1};
  check_graph(graph_tests_device(), g, "U-Net forward", &o);
  fprintf(stderr, "fused: %u dispatches, %u barriers, %u nodes folded, arena %.2f MiB (unplanned %.2f MiB); "
                  "unfused: %u dispatches\n",
          o.fused.dispatches, o.fused.barriers, o.fused.fused_nodes, o.fused.arena_bytes / 1048576.0,
          o.fused.unplanned_bytes / 1048576.0, o.unfused.dispatches);
  /* The fusion target: at most half the unfused dispatches, at most two per conv. */
  uint32_t convs = 0;
  for (uint32_t i = 0; i < g->nn; i++)
    convs += g->n[i].op == GR_OP_CONV2D;
  int full = check_has_buffers(graph_tests_device(), 16); /* else only unary steps fold (APS_LIMITS) */
  CHECK(!full || (2 * o.fused.dispatches <= o.unfused.dispatches && o.fused.dispatches <= 2 * convs),
        "%u fused dispatches: at most half of %u unfused and two per conv (%u convs)", o.fused.dispatches,
        o.unfused.dispatches, convs);
  /* Again with GroupNorms folded into the convs (off by default: slower on lavapipe). */
  check_opts f = {.atol = 2e-4f, .rtol = 2e-3f, .fan_in_scale = 1, .fused_only = 1, .fold_norms = 1};
  check_graph(graph_tests_device(), g, "U-Net forward, norms folded", &f);
  fprintf(stderr, "norms folded: %u dispatches\n", f.fused.dispatches);
  CHECK(f.fused.dispatches + (full ? 17 : 0) == o.fused.dispatches, "%d norms fold (%u vs %u dispatches)",
        full ? 17 : 0, f.fused.dispatches, o.fused.dispatches);
  gr_graph_destroy(g);
}
