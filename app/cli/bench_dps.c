/* aps bench dps: one step of the DPS baseline (app/aps/dps.h): the step graph, the prior's
 * ε-network forward, x̂₀, the operator, the residual norm and its gradient back through the
 * network, one run on the device at batch 1 (latency) and 64 (throughput); inpaint:box=8-16
 * on 32x32x1 images, the prior's architecture with random weights and inputs (the cost does
 * not depend on them). The sampler's host work between steps (its update, about 3 vector
 * operations on the batch) is not in it: a DPS sample at N steps costs about N + 1 of these. */
#include <stdio.h>
#include <stdlib.h>

#include "bench_report.h"
#include "bench_values.h"
#include "cli.h"
#include "dps.h"
#include "runner.h"

static aps_status measure(const cli_options *o, int batch, int reps, bench_stat *st, char *device, size_t size) {
  aps_prior_config c = aps_prior_config_default(1, 32);
  aps_op_spec spec;
  aps_op_layout l;
  gr_graph *g = NULL;
  APS_TRY(aps_op_spec_parse("inpaint:box=8-16", &spec));
  APS_TRY(aps_op_layout_make(&spec, 1, 32, 32, &l));
  aps_status s = aps_dps_graph(&c, &l, batch, NULL, NULL, &g);
  if (s == APS_OK)
    s = bench_time_runner(g, o->device, reps, device, size, st);
  gr_graph_destroy(g);
  return s;
}

int cmd_bench_dps(const cli_options *o) {
  int big = o->quick ? 4 : 64, reps = o->quick ? 2 : 5;
  bench_stat st[2];
  char device[300] = "";
  for (int b = 0; b < 2; b++)
    if (measure(o, b ? big : 1, reps, &st[b], device, sizeof device) != APS_OK) {
      fprintf(stderr, "aps bench dps: %s\n", aps_last_error());
      return 1;
    }
  bench_report_device(device, NULL, 0);
  bench_report_stat("dps step", "ms", st[0], 1);
  bench_report_stat("dps step", "ms", st[1], big);
  bench_report_stat("dps step throughput", "images/s", bench_stat_per(st[1], big * 1e3, 0), big);
  if (o->json)
    printf("{\"device\": \"%s\", \"batch\": %d, \"step_ms_b1\": %.2f, \"step_ms_b%d\": %.2f, \"images_per_s\": %.1f}\n",
           device, big, st[0].median, big, st[1].median, big * 1e3 / st[1].median);
  else {
    printf("DPS step (prior forward + input gradient, inpaint:box=8-16, 32x32x1) on %s, medians of %d\n", device, reps);
    printf("  batch 1    %8.1f ms\n  batch %-4d %8.1f ms  %9.1f img/s\n", st[0].median, big, st[1].median,
           big * 1e3 / st[1].median);
  }
  return 0;
}
