/* The CPU device's memory plan (graph/cpu/fast_memory_plan.c): a U-Net training step (forward, backward,
 * Adam) with its intermediate tensors sharing one arena must match the reference, which keeps
 * every tensor, over two steps (the second starts from the arena's leftovers). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_check.h"
#include "graph_internal.h"
#include "layers.h"
#include "optim.h"

static aps_status set_both(gr_cpu *a, gr_cpu *b, const char *name, const float *v, int64_t n) {
  aps_status s = gr_cpu_set(a, name, v, n);
  return s == APS_OK ? gr_cpu_set(b, name, v, n) : s;
}

TEST_CASE(cpu_device_train_plan) {
  gr_unet_config cfg = {.image_channels = 1, .image_size = 16, .widths = {16, 32, 32}, .levels = 3,
                        .blocks_per_level = 1, .attention_level_mask = 4, .groups = 4, .time_dim = 16};
  enum { N = 4 };
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(N, 1, 16, 16)), t = gr_input(g, "t", GR_SHAPE(N));
  gr_tensor target = gr_input(g, "target", GR_SHAPE(N, 1, 16, 16));
  gr_tensor loss = gr_reduce_op(g, GR_MEAN, gr_unary_op(g, GR_SQUARE, gr_sub(g, gr_unet(g, &cfg, x, t), target)), 15u);
  gr_output(g, loss, "loss");
  gr_adam_outputs ao;
  REQUIRE_OK(gr_adam(g, loss, &(gr_adam_desc){.max_grad_norm = 1.0f}, &ao));
  gr_cpu *ref = NULL, *fast = NULL;
  REQUIRE_OK(gr_cpu_create(g, &ref));
  REQUIRE_OK(gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1}, &fast));
  gr_cpu_memory_stats ms;
  gr_cpu_memory(fast, &ms);
  CHECK(ms.arena_bytes > 0 && ms.arena_bytes * 3 < ms.unplanned_bytes && ms.shared_tensors > 100,
        "tensors share memory: arena %llu bytes for %llu unplanned, %u views or in-place writes",
        (unsigned long long)ms.arena_bytes, (unsigned long long)ms.unplanned_bytes, ms.shared_tensors);
  aps_status s = APS_OK;
  /* Inputs and parameters (not the Adam moments, which start at zero). */
  for (int pass = 0; pass < 2 && s == APS_OK; pass++)
    for (uint32_t k = 0; s == APS_OK; k++) {
      gr_tensor p = pass ? gr_param_at(g, k) : gr_input_at(g, k);
      if (!p)
        break;
      if (gr_tensor_is_state(g, p))
        continue;
      const char *name = gr_tensor_name(g, p);
      gr_shape sh = gr_tensor_shape(g, p);
      int64_t n = gr_shape_count(sh);
      float *v = malloc((size_t)n * sizeof *v);
      fill_uniform(v, n, -1.0f, 1.0f, 977u * (k + 1) + (uint32_t)pass);
      if (!strcmp(name, "t"))
        for (int64_t i = 0; i < n; i++)
          v[i] = 0.5f + 0.5f * v[i];
      if (pass && sh.rank >= 2)
        for (int64_t i = 0; i < n; i++)
          v[i] /= sqrtf((float)(n / sh.d[0]));
      if (!strcmp(name, "optim.lr"))
        v[0] = 1e-3f;
      s = set_both(ref, fast, name, v, n);
      free(v);
    }
  for (int step = 1; step <= 2 && s == APS_OK; step++) {
    float sv = (float)step;
    s = set_both(ref, fast, "optim.step", &sv, 1);
    if (s == APS_OK)
      s = gr_cpu_run(ref);
    if (s == APS_OK)
      s = gr_cpu_run(fast);
    CHECK(s == APS_OK, "step %d: %s", step, aps_last_error());
    const float *lr = gr_cpu_values(ref, loss), *lf = gr_cpu_values(fast, loss);
    CHECK(s == APS_OK && fabsf(lr[0] - lf[0]) <= 1e-4f * fabsf(lr[0]) + 1e-6f, "step %d loss %g vs reference %g",
          step, s == APS_OK ? lf[0] : 0.0, s == APS_OK ? lr[0] : 0.0);
    /* Every parameter and Adam moment after the update. */
    int bad_tensors = 0;
    for (uint32_t k = 0; s == APS_OK; k++) {
      gr_tensor p = gr_param_at(g, k);
      if (!p)
        break;
      const float *want = gr_cpu_values(ref, p), *got = gr_cpu_values(fast, p);
      int64_t n = gr_shape_count(gr_tensor_shape(g, p)), bad = 0;
      float scale = 0;
      for (int64_t i = 0; i < n; i++)
        scale = fmaxf(scale, fabsf(want[i]));
      for (int64_t i = 0; i < n; i++)
        bad += !(fabsf(got[i] - want[i]) <= 1e-6f + 1e-3f * scale);
      if (bad && getenv("APS_TEST_VERBOSE"))
        printf("step %d %s: %lld of %lld off (scale %g)\n", step, gr_tensor_name(g, p), (long long)bad, (long long)n, scale);
      if (bad && bad_tensors++ < 5)
        CHECK(0, "step %d, %s: %lld of %lld values off", step, gr_tensor_name(g, p), (long long)bad, (long long)n);
    }
    CHECK(bad_tensors == 0, "step %d: %d parameters or moments differ from the reference", step, bad_tensors);
  }
  gr_cpu_destroy(fast);
  gr_cpu_destroy(ref);
  gr_graph_destroy(g);
}
