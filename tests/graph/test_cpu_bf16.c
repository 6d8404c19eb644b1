/* gr_cpu_desc.bf16_frozen: on a CPU with native bf16, a conv whose weights no assignment
 * updates (and the backward-data conv of its input gradient) reads bf16: within bf16's error
 * of the reference, and not equal to fp32, which shows it ran; a conv whose weights an
 * assignment updates stays fp32. Without native bf16 the option changes nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "graph_check.h"
#include "graph_internal.h"

/* The largest |got - want| over the largest |want|. */
static double rel_err(const float *got, const float *want, int64_t n) {
  double e = 0, m = 0;
  for (int64_t i = 0; i < n; i++) {
    e = fmax(e, fabs((double)got[i] - want[i]));
    m = fmax(m, fabs((double)want[i]));
  }
  return m > 0 ? e / m : e;
}

TEST_CASE(cpu_device_bf16_frozen) {
  gr_graph *g = gr_graph_create();
  /* Big enough for oneDNN's blocked layout (the only one bf16 takes): 4x(16+24)x24x24 values. */
  gr_tensor x = gr_input(g, "x", GR_SHAPE(4, 16, 24, 24));
  gr_tensor wf = gr_param(g, "frozen", GR_SHAPE(24, 16, 3, 3)), wt = gr_param(g, "trained", GR_SHAPE(24, 16, 3, 3));
  gr_tensor yf = gr_conv2d(g, x, wf, 0, &(gr_conv2d_desc){.padding = 1});
  gr_tensor yt = gr_conv2d(g, x, wt, 0, &(gr_conv2d_desc){.padding = 1});
  gr_tensor r = gr_input(g, "r", gr_tensor_shape(g, yf)), dx;
  REQUIRE_OK(gr_grad(g, gr_reduce_op(g, GR_SUM, gr_mul(g, yf, r), 15u), 1, &x, &dx));
  gr_assign(g, wt, gr_scale_shift(g, wt, 0.5f, 0.0f));
  gr_output(g, yf, "yf");
  gr_output(g, yt, "yt");
  gr_output(g, dx, "dx");
  REQUIRE_OK(gr_graph_status(g));

  gr_cpu *ref = NULL, *fast = NULL;
  REQUIRE_OK(gr_cpu_create(g, &ref));
  aps_status s = gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1, .bf16_frozen = 1}, &fast);
  CHECK(s == APS_OK, "CPU device: %s", aps_last_error());
  const char *names[4] = {"x", "frozen", "trained", "r"};
  for (int k = 0; k < 4 && s == APS_OK; k++) {
    gr_tensor t = gr_find(g, names[k]);
    int64_t n = gr_shape_count(gr_tensor_shape(g, t));
    float *v = malloc((size_t)n * sizeof *v);
    fill_uniform(v, n, -1.0f, 1.0f, 77u + (uint32_t)k);
    if ((s = gr_cpu_set(ref, names[k], v, n)) == APS_OK)
      s = gr_cpu_set(fast, names[k], v, n);
    free(v);
  }
  if (s == APS_OK && (s = gr_cpu_run(ref)) == APS_OK)
    s = gr_cpu_run(fast);
  CHECK(s == APS_OK, "run: %s", aps_last_error());
  gr_cpu_memory_stats ms;
  gr_cpu_memory(fast, &ms);
  double e[3];
  const char *outs[3] = {"yf", "yt", "dx"};
  for (int k = 0; k < 3 && s == APS_OK; k++) {
    gr_tensor t = gr_find(g, outs[k]);
    e[k] = rel_err(gr_cpu_values(fast, t), gr_cpu_values(ref, t), gr_shape_count(gr_tensor_shape(g, t)));
  }
  if (s == APS_OK)
    printf("relative errors: frozen conv %.3g, trained conv %.3g, input gradient %.3g; %u convs in bf16\n", e[0], e[1],
           e[2], ms.bf16_convs);
  if (s == APS_OK && gr_cpu_has_bf16()) {
    CHECK(ms.bf16_convs == 2, "convs in bf16: %u, want 2 (the frozen conv and its backward-data conv)", ms.bf16_convs);
    CHECK(e[0] > 1e-5 && e[0] < 2e-2, "frozen conv: relative error %g, want bf16's (1e-5 .. 2e-2)", e[0]);
    CHECK(e[2] > 1e-5 && e[2] < 2e-2, "its input gradient: relative error %g, want bf16's (1e-5 .. 2e-2)", e[2]);
  } else if (s == APS_OK) {
    printf("this CPU has no native bf16: the option must change nothing\n");
    CHECK(ms.bf16_convs == 0, "convs in bf16: %u without native bf16", ms.bf16_convs);
    CHECK(e[0] < 1e-5 && e[2] < 1e-5, "without native bf16 fp32 is expected: errors %g, %g", e[0], e[2]);
  }
  CHECK(s != APS_OK || e[1] < 1e-5, "trained conv: relative error %g, want fp32's (< 1e-5)", e[1]);
  gr_cpu_destroy(fast);
  gr_cpu_destroy(ref);
  gr_graph_destroy(g);
}
