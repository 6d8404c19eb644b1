/* aps bench prior: the prior's ε-network forward, and forward + the gradient w.r.t. its
 * input (what the ELBO's x-gradient costs, weights frozen), at batch 1 (latency) and 64
 * (throughput), on a Vulkan device (default) or the CPU device (--device cpu). The
 * network is the shipped prior's architecture with random weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_report.h"
#include "bench_values.h"
#include "cli.h"
#include "prior.h"
#include "runner.h"

/* Forward (grad = 0) or forward + d(Σ ε_θ · v)/dx (grad = 1), with input "v". */
static aps_status bench_graph(const aps_prior_config *c, int batch, int grad, gr_graph **out) {
  gr_graph *g = gr_graph_create();
  gr_shape img = GR_SHAPE(batch, c->unet.image_channels, c->unet.image_size, c->unet.image_size);
  gr_tensor x = gr_input(g, "x", img), t = gr_input(g, "t", GR_SHAPE(batch));
  gr_tensor eps = aps_prior_eps(g, c, x, t);
  gr_output(g, eps, "eps");
  if (grad) {
    gr_tensor dx = 0;
    aps_status s = gr_grad(g, gr_mul(g, eps, gr_input(g, "v", img)), 1, &x, &dx);
    if (s != APS_OK) {
      gr_graph_destroy(g);
      return s;
    }
    gr_output(g, dx, "dx");
  }
  *out = g;
  return gr_graph_status(g);
}

static aps_status measure(const cli_options *o, const aps_prior_config *c, int batch, int grad, int reps,
                          bench_stat *st, char *device, size_t device_size) {
  gr_graph *g = NULL;
  aps_status s = bench_graph(c, batch, grad, &g);
  if (s == APS_OK)
    s = bench_time_runner(g, o->device, reps, device, device_size, st);
  gr_graph_destroy(g);
  return s;
}

int cmd_bench_prior(const cli_options *o) {
  aps_prior_config c = aps_prior_config_default(1, 32);
  int big = o->quick ? 4 : 64, reps = o->quick ? 2 : 5;
  double ms[2][2] = {{0}};
  char device[300] = "";
  for (int grad = 0; grad < 2; grad++)
    for (int b = 0; b < 2; b++) {
      bench_stat st;
      aps_status s = measure(o, &c, b ? big : 1, grad, reps, &st, device, sizeof device);
      if (s != APS_OK) {
        fprintf(stderr, "aps bench prior: %s\n", aps_last_error());
        return 1;
      }
      ms[grad][b] = st.median;
      const char *name = grad ? "forward + input gradient" : "forward";
      bench_report_stat(name, "ms", st, b ? big : 1);
      if (b)
        bench_report_stat(grad ? "forward + input gradient throughput" : "forward throughput", "images/s",
                          bench_stat_per(st, big * 1e3, 0), big);
    }
  bench_report_device(device, NULL, 0);
  if (o->json) {
    printf("{\"device\": \"%s\", \"batch\": %d, \"forward_ms_b1\": %.2f, \"forward_images_per_s\": %.1f, "
           "\"input_grad_ms_b1\": %.2f, \"input_grad_images_per_s\": %.1f}\n",
           device, big, ms[0][0], big * 1000.0 / ms[0][1], ms[1][0], big * 1000.0 / ms[1][1]);
  } else {
    printf("prior ε-network (U-Net 32/64/64, 32x32x1) on %s, medians of %d\n", device, reps);
    printf("  %-34s %10s %14s\n", "", "batch 1", "batch " "64 or --quick");
    printf("  %-34s %7.1f ms %9.1f img/s  (%.0f ms)\n", "forward", ms[0][0], big * 1000.0 / ms[0][1], ms[0][1]);
    printf("  %-34s %7.1f ms %9.1f img/s  (%.0f ms)\n", "forward + gradient w.r.t. input", ms[1][0],
           big * 1000.0 / ms[1][1], ms[1][1]);
  }
  return 0;
}
