/* The operators' rows of `aps bench graph`: A and Aᵀ of each family at the prior's batch, on
 * the bench's Vulkan device or the CPU device, beside the prior's forward at that batch. */
#include <stdio.h>
#include <string.h>

#include "bench_operators.h"
#include "bench_util.h"
#include "bench_values.h"
#include "operators.h"

enum { REPS = 5 };

/* The families `aps degrade` and the assets show. Every inpaint family (and denoise) runs the
 * same graph (m ⊙ x with m an input), as do global and painted blur (w an input): the rows
 * differ by the noise of the machine only. The map file is never read here. */
static const char *const families[] = {"denoise",     "inpaint:box=8-16",   "inpaint:pixels=0.1-0.3",
                                       "inpaint:strokes", "inpaint:half",   "blur:sigma=0.5-2.5",
                                       "blur:sigma=2,map=painted.png", "blur:sigma=0.5-3", "sr:2", "sr:4"};

/* Median ms of REPS runs (after a warm-up) of g on dev, or on the CPU device when dev is NULL. */
static aps_status time_graph(rt_device *dev, const gr_graph *g, double *ms) {
  APS_TRY(gr_graph_status(g));
  gr_plan *p = NULL;
  gr_cpu *c = NULL;
  aps_status s = dev ? gr_plan_compile(g, dev, NULL, &p) : gr_cpu_create_ex(g, &(gr_cpu_desc){.fast = 1}, &c);
  if (s == APS_OK)
    s = dev ? bench_fill(g, p, bench_set_plan) : bench_fill(g, c, bench_set_cpu);
  double t[REPS];
  for (int r = -1; r < REPS && s == APS_OK; r++) {
    double t0 = aps_now_ms();
    s = dev ? gr_plan_run(p) : gr_cpu_run(c);
    if (r >= 0)
      t[r] = aps_now_ms() - t0;
  }
  gr_plan_destroy(p);
  gr_cpu_destroy(c);
  if (s == APS_OK)
    *ms = bench_median(t, REPS);
  return s;
}

/* A (adjoint = 0) or Aᵀ of a family at the batch, on 1x32x32 images. */
static aps_status time_op(rt_device *dev, const char *family, int batch, int adjoint, double *ms) {
  aps_op_spec spec;
  aps_op_layout l;
  APS_TRY(aps_op_spec_parse(family, &spec));
  APS_TRY(aps_op_layout_make(&spec, 1, 32, 32, &l));
  gr_graph *g = gr_graph_create();
  aps_op_graph op;
  aps_status s = aps_op_graph_inputs(g, &l, batch, NULL, &op);
  if (adjoint)
    gr_output(g, aps_op_adjoint(g, &op, gr_input(g, "y", GR_SHAPE(batch, 1, l.mh, l.mw))), "aty");
  else
    gr_output(g, aps_op_forward(g, &op, gr_input(g, "x", GR_SHAPE(batch, 1, 32, 32))), "ax");
  if (s == APS_OK)
    s = time_graph(dev, g, ms);
  gr_graph_destroy(g);
  return s;
}

int bench_operators_run(rt_device *dev, int batch, bench_op_row *rows, int max) {
  int n = 0;
  for (size_t i = 0; i < sizeof families / sizeof *families && n < max; i++, n++) {
    snprintf(rows[n].family, sizeof rows[n].family, "%s", families[i]);
    rows[n].batch = batch;
    if (time_op(dev, families[i], batch, 0, &rows[n].a_ms) != APS_OK ||
        time_op(dev, families[i], batch, 1, &rows[n].at_ms) != APS_OK) {
      fprintf(stderr, "aps bench graph: operator %s: %s\n", families[i], aps_last_error());
      return -1;
    }
  }
  return n;
}

void bench_operators_print(const bench_op_row *rows, int n, double prior_ms, int json) {
  if (json) {
    printf(",\n \"operators\": [");
    for (int i = 0; i < n; i++)
      printf("%s\n  {\"family\": \"%s\", \"batch\": %d, \"a_ms\": %.3f, \"at_ms\": %.3f, \"a_pct_prior\": %.2f, "
             "\"at_pct_prior\": %.2f}", i ? "," : "", rows[i].family, rows[i].batch, rows[i].a_ms, rows[i].at_ms,
             100 * rows[i].a_ms / prior_ms, 100 * rows[i].at_ms / prior_ms);
    printf("]");
    return;
  }
  printf("operators on 1x32x32 images, batch %d, against the prior's forward at that batch (%.2f ms):\n",
         n ? rows[0].batch : 0, prior_ms);
  printf("%-32s %10s %8s %10s %8s\n", "family", "A ms", "% prior", "A^T ms", "% prior");
  for (int i = 0; i < n; i++)
    printf("%-32s %10.3f %7.2f%% %10.3f %7.2f%%\n", rows[i].family, rows[i].a_ms, 100 * rows[i].a_ms / prior_ms,
           rows[i].at_ms, 100 * rows[i].at_ms / prior_ms);
}
