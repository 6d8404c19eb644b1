/* aps bench profile: where the U-Net forward spends its time, per dispatch (fp32, with
 * GroupNorms folded, with fp16 storage). Each
 * dispatch's minimum over REPS timed runs (minima are what survive a shared, noisy
 * machine), then the same grouped by kernel kind, largest first; --json lists every dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "bench_values.h"
#include "cli.h"
#include "graph.h"
#include "layers.h"

enum { REPS = 5, MAX_DISPATCHES = 1024 };

#define CHECK(expr)                                                   \
  do {                                                                \
    if ((expr) != APS_OK) {                                           \
      fprintf(stderr, "aps bench profile: %s\n", aps_last_error());   \
      goto fail;                                                      \
    }                                                                 \
  } while (0)

typedef struct row {
  char name[GR_MAX_NAME];
  double ms;
  int count;
} row;

static int by_ms(const void *a, const void *b) {
  double d = ((const row *)b)->ms - ((const row *)a)->ms;
  return (d > 0) - (d < 0);
}

/* The kind of a dispatch: its op, from the node name "scope.path.op#id". */
static void kind_of(const char *name, char *out, size_t size) {
  const char *dot = strrchr(name, '.');
  snprintf(out, size, "%s", dot ? dot + 1 : name);
  char *hash = strchr(out, '#');
  if (hash)
    *hash = 0;
}

static int profile_batch(rt_device *dev, int batch, int fold, int f16, int json) {
  int rc = 1;
  gr_plan *p = NULL;
  row *rows = calloc(MAX_DISPATCHES, sizeof *rows), *kinds = calloc(MAX_DISPATCHES, sizeof *kinds);
  rt_timing *t = calloc(MAX_DISPATCHES, sizeof *t);
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(batch, 1, 32, 32)), tt = gr_input(g, "t", GR_SHAPE(batch));
  gr_output(g, gr_unet(g, bench_unet_config(), x, tt), "eps");
  if (!rows || !kinds || !t)
    goto fail;
  CHECK(gr_plan_compile(g, dev, &(gr_plan_desc){.max_timestamps = MAX_DISPATCHES, .fold_norms = fold, .f16_storage = f16},
                        &p));
  CHECK(bench_fill(g, p, bench_set_plan));
  CHECK(gr_plan_run(p));
  uint32_t n = 0;
  double wall[REPS];
  for (int r = 0; r < REPS; r++) {
    double t0 = aps_now_ms();
    CHECK(gr_plan_run(p));
    wall[r] = aps_now_ms() - t0;
    n = gr_plan_timings(p, t, MAX_DISPATCHES);
    for (uint32_t i = 0; i < n; i++) {
      if (r == 0 || t[i].ms < rows[i].ms)
        rows[i].ms = t[i].ms;
      if (r == 0)
        snprintf(rows[i].name, sizeof rows[i].name, "%s", t[i].name ? t[i].name : "?");
    }
  }
  double total = 0;
  uint32_t nk = 0;
  for (uint32_t i = 0; i < n; i++) {
    char k[GR_MAX_NAME];
    kind_of(rows[i].name, k, sizeof k);
    uint32_t j = 0;
    while (j < nk && strcmp(kinds[j].name, k))
      j++;
    if (j == nk)
      snprintf(kinds[nk++].name, sizeof kinds[0].name, "%s", k);
    kinds[j].ms += rows[i].ms;
    kinds[j].count++;
    total += rows[i].ms;
  }
  qsort(kinds, nk, sizeof *kinds, by_ms);
  qsort(rows, n, sizeof *rows, by_ms);
  if (json) {
    printf("{\"batch\": %d, \"fold_norms\": %d, \"f16_storage\": %d, \"dispatches\": %u, \"sum_of_minima_ms\": %.3f, "
           "\"run_median_ms\": %.3f, \"kinds\": [", batch, fold, f16, n, total, bench_median(wall, REPS));
    for (uint32_t i = 0; i < nk; i++)
      printf("%s{\"kind\": \"%s\", \"count\": %d, \"ms\": %.3f}", i ? ", " : "", kinds[i].name, kinds[i].count,
             kinds[i].ms);
    printf("], \"dispatches_by_ms\": [");
    for (uint32_t i = 0; i < n; i++)
      printf("%s{\"name\": \"%s\", \"ms\": %.3f}", i ? ", " : "", rows[i].name, rows[i].ms);
    printf("]}\n");
  } else {
    printf("U-Net batch %d%s: %u dispatches, sum of per-dispatch minima over %d runs %.2f ms "
           "(whole runs, timed: median %.2f ms)\n", batch, fold ? " (GroupNorm folded)" : f16 ? " (fp16 storage)" : "", n,
           REPS, total,
           bench_median(wall, REPS));
    printf("  %-28s %6s %10s %7s\n", "kind", "count", "ms", "share");
    for (uint32_t i = 0; i < nk; i++)
      printf("  %-28s %6d %10.3f %6.1f%%\n", kinds[i].name, kinds[i].count, kinds[i].ms, 100 * kinds[i].ms / total);
    printf("  slowest dispatches:\n");
    for (uint32_t i = 0; i < n && i < 12; i++)
      printf("  %-44s %10.3f\n", rows[i].name, rows[i].ms);
  }
  rc = 0;
fail:
  gr_plan_destroy(p);
  gr_graph_destroy(g);
  free(rows);
  free(kinds);
  free(t);
  return rc;
}

int cmd_bench_profile(const cli_options *o) {
  rt_device *dev;
  if (rt_device_create(&(rt_device_desc){.device = o->device}, &dev) != APS_OK) {
    fprintf(stderr, "aps bench profile: %s\n", aps_last_error());
    return 1;
  }
  if (!o->json)
    printf("device: %s (%s)\n", rt_device_caps(dev)->name, rt_device_caps(dev)->driver_info);
  int batch = o->quick ? 2 : 64;
  int fail = profile_batch(dev, 1, 0, 0, o->json) || profile_batch(dev, batch, 0, 0, o->json) ||
             profile_batch(dev, batch, 1, 0, o->json) ||
             (rt_device_caps(dev)->fp16_storage && profile_batch(dev, batch, 0, 1, o->json));
  rt_device_destroy(dev);
  return fail;
}
