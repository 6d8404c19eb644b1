/* aps sample: posterior samples of one measurement from a distilled flow, as PNGs: the
 * measurement, its descriptor, the clean image when known, the samples, their mean and
 * standard deviation (a heat map with a colour bar), and one row of all of them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aps.h"
#include "aps_file.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_method.h"
#include "dataset.h"
#include "evaluate.h"
#include "heatmap.h"
#include "image_fit.h"
#include "image_io.h"
#include "image_read.h"

enum { MAX_BATCH = 64 };

typedef struct request {
  const char *image, *data, *split, *bundle, *op, *out;
  int measured, index, k, seed;
} request;

/* Sets p's measurement from the request. */
static aps_status set_measurement(aps_posterior *p, const request *q) {
  const aps_posterior_info *in = aps_posterior_get_info(p);
  uint64_t op_seed = aps_op_seed((uint64_t)q->seed, (uint64_t)(q->image ? 0 : q->index));
  if (q->bundle) {
    aps_measurements *m = NULL;
    APS_TRY(aps_measurements_load(q->bundle, &(aps_measurements_expect){0}, &m));
    aps_status s = q->index >= m->b.n ? aps_fail(APS_ERR_INVALID_ARG, "--index %d: %s holds %d measurements",
                                                 q->index, q->bundle, m->b.n)
                   : aps_posterior_set_bundle(p, m, q->index) != APS_OK
                       ? aps_fail_context(APS_ERR_INVALID_ARG, "--measurements %s: ", q->bundle)
                       : APS_OK;
    aps_measurements_free(m);
    return s;
  }
  if (q->data) {
    aps_dataset *ds = NULL;
    APS_TRY(!strcmp(q->data, "fashion-mnist") ? aps_dataset_load_fashion_mnist(NULL, !strcmp(q->split, "train"), &ds)
                                              : aps_dataset_load(q->data, in->height, in->channels, &ds));
    aps_status s = APS_OK;
    if (aps_dataset_channels(ds) != in->channels || aps_dataset_height(ds) != in->height ||
        aps_dataset_width(ds) != in->width)
      s = aps_fail(APS_ERR_INVALID_ARG, "--data %s: images of %dx%dx%d (c x h x w), but %s takes %dx%dx%d", q->data,
                   aps_dataset_channels(ds), aps_dataset_height(ds), aps_dataset_width(ds), in->model, in->channels,
                   in->height, in->width);
    else if (q->index >= aps_dataset_count(ds))
      s = aps_fail(APS_ERR_INVALID_ARG, "--index %d: %s holds %lld images", q->index, aps_dataset_source(ds),
                   (long long)aps_dataset_count(ds));
    else
      s = aps_posterior_set_clean(p, aps_dataset_data(ds) + (int64_t)q->index * in->channels * in->height * in->width,
                                  q->op, op_seed);
    aps_dataset_free(ds);
    return s;
  }
  int c, h, w;
  float *raw = NULL, *fit = NULL;
  char note[128], what[4200];
  snprintf(what, sizeof what, "--image %s", q->image);
  APS_TRY(aps_png_read_image(q->image, &c, &h, &w, &raw));
  /* a measurement keeps its size (super-resolution's may be smaller) */
  aps_status s = q->measured ? aps_image_fit(raw, c, h, w, in->channels, h, w, 0, what, &fit, note, sizeof note)
                             : aps_image_fit(raw, c, h, w, in->channels, in->height, in->width, 1, what, &fit, note,
                                             sizeof note);
  if (s == APS_OK && note[0])
    fprintf(stderr, "aps: %s: %s\n", what, note);
  if (s == APS_OK)
    s = q->measured ? aps_posterior_set_measured(p, fit, h, w, q->op)
                    : aps_posterior_set_clean(p, fit, q->op, op_seed);
  if (s != APS_OK && q->measured)
    s = aps_fail_context(s, "--measured: ");
  free(raw), free(fit);
  return s;
}

/* One PNG into dir; its path printed. */
static aps_status write_png(const char *dir, const char *name, const float *img, int c, int h, int w) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  APS_TRY(aps_png_write_grid(path, img, 1, c, h, w, 1, 0));
  printf("%s\n", path);
  return APS_OK;
}

/* Grey [C, H, W] as RGB into rgb [3, H, W] (RGB images are copied). */
static void to_rgb(const float *v, int c, int64_t hw, float *rgb) {
  for (int k = 0; k < 3; k++)
    memcpy(rgb + k * hw, v + (c == 3 ? k : 0) * hw, (size_t)hw * sizeof *rgb);
}

static float max_of(const float *v, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; i++)
    m = v[i] > m ? v[i] : m;
  return m;
}

/* Every PNG of the run. x [k, C, H, W]. */
static aps_status write_all(aps_posterior *p, const request *q, const float *x, const float *mean, const float *std) {
  const aps_posterior_info *in = aps_posterior_get_info(p);
  aps_posterior_measurement_info mi;
  APS_TRY(aps_posterior_get_measurement_info(p, &mi));
  int c = in->channels, h = in->height, w = in->width, k = q->k;
  int64_t hw = (int64_t)h * w, dim = c * hw;
  int cells = k + 3 + mi.has_clean;
  float *grid = malloc((size_t)(cells * 3 * hw) * sizeof *grid), *meas = malloc((size_t)dim * sizeof *meas);
  float *desc = malloc((size_t)dim * sizeof *desc), *clean = malloc((size_t)dim * sizeof *clean);
  float *sbar = malloc((size_t)(3 * h * aps_heatmap_bar_width(w)) * sizeof *sbar);
  aps_status s = grid && meas && desc && clean && sbar ? APS_OK : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (s == APS_OK)
    s = aps_posterior_get_measurement(p, meas);
  if (s == APS_OK)
    s = aps_posterior_get_descriptor(p, desc);
  if (s == APS_OK && mi.has_clean)
    s = aps_posterior_get_clean(p, clean);
  if (s != APS_OK)
    goto done;
  for (int64_t i = 0; i < hw; i++) /* the descriptor: 0 black, its largest value white */
    desc[i] = 2.0f * desc[i] / (mi.desc_max > 0 ? mi.desc_max : 1.0f) - 1.0f;
  float smax = max_of(std, dim);
  smax = smax > 1e-6f ? smax : 1e-6f;
  char name[64];
  if ((s = write_png(q->out, "measurement.png", meas, c, h, w)) != APS_OK ||
      (s = write_png(q->out, "descriptor.png", desc, 1, h, w)) != APS_OK ||
      (mi.has_clean && (s = write_png(q->out, "clean.png", clean, c, h, w)) != APS_OK))
    goto done;
  for (int j = 0; j < k && s == APS_OK; j++) {
    snprintf(name, sizeof name, "sample-%03d.png", j);
    s = write_png(q->out, name, x + j * dim, c, h, w);
  }
  if (s == APS_OK)
    s = write_png(q->out, "mean.png", mean, c, h, w);
  if (s == APS_OK) { /* the first channel's std (RGB: the mean over channels) */
    float *sd = grid; /* scratch: the grid is filled below */
    for (int64_t i = 0; i < hw; i++) {
      double a = 0;
      for (int ch = 0; ch < c; ch++)
        a += std[ch * hw + i];
      sd[i] = (float)(a / c);
    }
    aps_heatmap_with_bar(sd, h, w, 0.0f, smax, sbar);
    s = write_png(q->out, "std.png", sbar, 3, h, aps_heatmap_bar_width(w));
    if (s == APS_OK) /* the std cell, last */
      aps_heatmap(sd, hw, 0.0f, smax, grid + (int64_t)(cells - 1) * 3 * hw);
  }
  if (s == APS_OK) {
    int cell = 0;
    if (mi.has_clean)
      to_rgb(clean, c, hw, grid + (cell++) * 3 * hw);
    to_rgb(meas, c, hw, grid + (cell++) * 3 * hw);
    for (int j = 0; j < k; j++)
      to_rgb(x + j * dim, c, hw, grid + (cell++) * 3 * hw);
    to_rgb(mean, c, hw, grid + (cell++) * 3 * hw);
    char path[4200];
    snprintf(path, sizeof path, "%s/grid.png", q->out);
    s = aps_png_write_grid(path, grid, cells, 3, h, w, cells, 2);
    if (s == APS_OK)
      printf("%s\n", path);
  }
  if (s == APS_OK)
    printf("std.png: standard deviation from 0 (dark violet) to %.4g (yellow); the bar at its right is the scale\n",
           smax);
done:
  free(grid), free(meas), free(desc), free(clean), free(sbar);
  return s;
}

int cmd_sample(const cli_options *o, int argc, char **argv) {
  const char *model = NULL;
  request q = {.split = "test", .k = 8, .seed = 1, .index = -1};
  cli_method m = CLI_METHOD_DEFAULT;
  const cli_arg args[] = {
      {"--model", CLI_STRING, &model, 0, 0, "flow file from aps distill (required); with dps the prior"},
      {"--image", CLI_STRING, &q.image, 0, 0, "a clean PNG to degrade (or, with --measured, the measurement)"},
      {"--measured", CLI_FLAG, &q.measured, 0, 0, "--image is the measurement itself (--op: a deterministic operator)"},
      {"--data", CLI_STRING, &q.data, 0, 0, "fashion-mnist | a folder of PNGs (with --index)"},
      {"--split", CLI_STRING, &q.split, 0, 0, "test | train, for fashion-mnist (test)"},
      {"--measurements", CLI_STRING, &q.bundle, 0, 0, "a bundle from aps degrade (with --index)"},
      {"--index", CLI_INT, &q.index, 0, 1e9, "the image or measurement to use (0)"},
      {"--op", CLI_STRING, &q.op, 0, 0, "operator spec (default: the model's family)"},
      {"--n", CLI_INT, &q.k, 1, 100000, "samples (8)"},
      {"--out", CLI_STRING, &q.out, 0, 0, "folder for the PNGs (required)"},
      {"--seed", CLI_INT, &q.seed, 0, 1e9, "seed of the operator, noise and samples (1)"},
      CLI_METHOD_ARGS(m),
  };
  const int nargs = (int)(sizeof args / sizeof args[0]);
  if (cli_args_parse("sample", argc, argv, args, nargs))
    return 2;
  int sources = !!q.image + !!q.data + !!q.bundle;
  const char *problem = !model || !q.out ? "--model and --out are required"
                        : sources != 1 ? "give one of --image, --data and --measurements"
                        : q.measured && !q.image ? "--measured goes with --image"
                        : q.bundle && q.op ? "--op does not go with --measurements (a bundle holds its operators)"
                        : q.image && q.index >= 0 ? "--index goes with --data or --measurements"
                        : q.data && strcmp(q.split, "test") && strcmp(q.split, "train") ? "--split must be test or train"
                                                                                        : NULL;
  if (problem) {
    fprintf(stderr, "aps sample: %s\n", problem);
    cli_args_usage("sample", args, nargs);
    return 2;
  }
  q.index = q.index < 0 ? 0 : q.index;
  aps_posterior *p = NULL;
  float *x = NULL, *mean = NULL, *std = NULL;
  int batch = q.k < MAX_BATCH ? q.k : MAX_BATCH;
  aps_posterior_desc pd = {.model = model, .device = o->device, .max_batch = batch};
  if (cli_method_desc("sample", &m, q.op, &pd))
    return 2;
  aps_status s = aps_posterior_open(&pd, &p);
  if (s == APS_OK)
    s = set_measurement(p, &q);
  if (s == APS_OK && aps_file_make_dirs(q.out))
    s = aps_fail(APS_ERR_IO, "--out %s: cannot create the folder: %s", q.out, strerror(errno));
  int64_t dim = 0;
  if (s == APS_OK) {
    const aps_posterior_info *in = aps_posterior_get_info(p);
    dim = (int64_t)in->channels * in->height * in->width;
    x = malloc((size_t)(q.k * dim) * sizeof *x), mean = malloc((size_t)dim * sizeof *mean);
    std = calloc((size_t)dim, sizeof *std);
    if (!x || !mean || !std)
      s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory for %d samples", q.k);
  }
  uint64_t sample_seed = aps_eval_sample_seed((uint64_t)q.seed, (uint64_t)q.index);
  if (s == APS_OK && q.k > 1)
    s = aps_posterior_moments(p, q.k, sample_seed, mean, std, x);
  if (s == APS_OK && q.k == 1 && (s = aps_posterior_sample(p, 1, sample_seed, x)) == APS_OK)
    memcpy(mean, x, (size_t)dim * sizeof *mean);
  double ms = s == APS_OK ? aps_posterior_ms_per_sample(p) : 0;
  if (s == APS_OK)
    s = write_all(p, &q, x, mean, std);
  double *dc = s == APS_OK ? malloc((size_t)q.k * sizeof *dc) : NULL;
  if (s == APS_OK && !dc)
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (s == APS_OK)
    s = aps_posterior_data_consistency(p, x, q.k, dc);
  if (s == APS_OK) {
    aps_posterior_measurement_info mi;
    aps_posterior_get_measurement_info(p, &mi);
    double mdc = 0;
    for (int j = 0; j < q.k; j++)
      mdc += dc[j] / q.k;
    printf("operator: %s (sigma_y %.4g)\n", mi.op, mi.sigma_y);
    const float *t = aps_posterior_get_info(p)->temperature;
    if (t[0] != 1.0f || t[1] != 1.0f)
      printf("temperature: %g in the damaged region, %g elsewhere (the latent's scale)\n", t[0], t[1]);
    printf("data consistency ||y - A x|| / (sigma sqrt(m)): %.3f (mean over %d samples)\n", mdc, q.k);
    printf("%.3f ms per sample on %s (%d samples)\n", ms, aps_posterior_get_info(p)->device, q.k);
  }
  free(x), free(mean), free(std), free(dc);
  aps_posterior_close(p);
  if (s != APS_OK) {
    fprintf(stderr, "aps sample: %s\n", aps_last_error());
    return 1;
  }
  return 0;
}
