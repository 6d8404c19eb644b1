/* aps degrade: measurements of images through an operator family, as PNGs and as a bundle
 * (measurements.safetensors) that later commands take with --measurements. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aps_file.h"
#include "cli.h"
#include "cli_args.h"
#include "dataset.h"
#include "image_io.h"
#include "image_read.h"
#include "operators.h"

enum { MAX_BATCH = 64 };

/* "3" or "0,5,9" -> indices (malloc'd); the count, or -1 when malformed. */
static int parse_indices(const char *text, int64_t **out) {
  int n = 1;
  for (const char *p = text; *p; p++)
    n += *p == ',';
  int64_t *v = malloc((size_t)n * sizeof *v);
  if (!v)
    return -1;
  const char *p = text;
  for (int i = 0; i < n; i++) {
    char *end;
    errno = 0;
    long long x = strtoll(p, &end, 10);
    if (end == p || errno || x < 0 || (*end != ',' && *end) || (i < n - 1 && *end != ',')) {
      free(v);
      return -1;
    }
    v[i] = x;
    p = end + 1;
  }
  *out = v;
  return n;
}

typedef struct images {
  int c, h, w;
  int64_t count;
  float *x;       /* [count, c, h, w] */
  int64_t *index; /* where each came from */
  char source[512];
} images;

static aps_status load_images(const char *data, const char *split, const char *index, int n, const char *image,
                              int size, int channels, images *im) {
  memset(im, 0, sizeof *im);
  if (image) {
    APS_TRY(aps_png_read_image(image, &im->c, &im->h, &im->w, &im->x));
    im->count = 1;
    im->index = calloc(1, sizeof *im->index);
    snprintf(im->source, sizeof im->source, "%s", image);
    return im->index ? APS_OK : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  aps_dataset *ds = NULL;
  int fmnist = !strcmp(data, "fashion-mnist");
  APS_TRY(fmnist ? aps_dataset_load_fashion_mnist(NULL, !strcmp(split, "train"), &ds)
                 : aps_dataset_load(data, size, channels, &ds));
  im->c = aps_dataset_channels(ds), im->h = aps_dataset_height(ds), im->w = aps_dataset_width(ds);
  int64_t have = aps_dataset_count(ds), per = (int64_t)im->c * im->h * im->w;
  aps_status s = APS_OK;
  if (index) {
    int k = parse_indices(index, &im->index);
    im->count = k;
    if (k < 0)
      s = aps_fail(APS_ERR_INVALID_ARG, "--index '%s': expected an index or a list like 0,1,2", index);
  } else {
    im->count = n < have ? n : have;
    if ((im->index = malloc((size_t)im->count * sizeof *im->index)))
      for (int64_t i = 0; i < im->count; i++)
        im->index[i] = i;
  }
  if (s == APS_OK && !im->index)
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (int64_t i = 0; s == APS_OK && i < im->count; i++)
    if (im->index[i] >= have)
      s = aps_fail(APS_ERR_INVALID_ARG, "--index %lld: %s holds %lld images", (long long)im->index[i],
                   aps_dataset_source(ds), (long long)have);
  if (s == APS_OK && !(im->x = malloc((size_t)(im->count * per) * sizeof(float))))
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (int64_t i = 0; s == APS_OK && i < im->count; i++)
    memcpy(im->x + i * per, aps_dataset_data(ds) + im->index[i] * per, (size_t)per * sizeof(float));
  if (s == APS_OK) {
    int used = snprintf(im->source, sizeof im->source, "%s%s%s #", fmnist ? "fashion-mnist " : aps_dataset_source(ds),
                        fmnist ? split : "", fmnist ? " split" : "");
    for (int64_t i = 0; i < im->count && used < (int)sizeof im->source - 24; i++)
      used += snprintf(im->source + used, sizeof im->source - (size_t)used, "%s%lld", i ? "," : "",
                       (long long)im->index[i]);
    if (used >= (int)sizeof im->source - 24)
      snprintf(im->source + used, sizeof im->source - (size_t)used, ",...");
  }
  aps_dataset_free(ds);
  return s;
}

/* Row i of a batch into row j of another of the same layout. */
static void copy_row(const aps_op_batch *from, int i, aps_op_batch *to, int j) {
  const aps_op_layout *l = &from->l;
  int64_t hw = (int64_t)l->h * l->w, kk = (int64_t)l->ksize * l->ksize, nn = (int64_t)l->c * l->mh * l->mw;
  memcpy(to->param + j * hw, from->param + i * hw, (size_t)hw * sizeof(float));
  memcpy(to->descriptor + j * hw, from->descriptor + i * hw, (size_t)hw * sizeof(float));
  if (kk)
    memcpy(to->kernel + j * kk, from->kernel + i * kk, (size_t)kk * sizeof(float));
  memcpy(to->noise + j * nn, from->noise + i * nn, (size_t)nn * sizeof(float));
  to->sigma_b[j] = from->sigma_b[i], to->sigma_y[j] = from->sigma_y[i];
  to->member[j] = from->member[i], to->seed[j] = from->seed[i];
}

/* The measurements of every image: y [count, C, MH, MW] and on the grid [count, C, H, W]. */
static aps_status measure(const cli_options *o, const aps_op_family *f, const images *im, aps_op_batch *all, float *y,
                          float *grid) {
  const aps_op_layout *l = aps_op_family_layout(f);
  int batch = im->count < MAX_BATCH ? (int)im->count : MAX_BATCH;
  gr_graph *g = gr_graph_create();
  aps_op_graph op;
  gr_tensor x = gr_input(g, "x", GR_SHAPE(batch, l->c, l->h, l->w));
  gr_tensor noise = gr_input(g, "noise", GR_SHAPE(batch, l->c, l->mh, l->mw));
  aps_status s = aps_op_graph_inputs(g, l, batch, NULL, &op);
  gr_tensor yt = aps_op_simulate(g, &op, x, noise);
  gr_tensor gt = aps_op_on_grid(g, &op, yt);
  gr_output(g, yt, "y");
  int same = gt == yt; /* y is on the grid already (not sr): one output */
  if (!same)
    gr_output(g, gt, "grid");
  aps_runner *r = NULL;
  aps_op_batch part = {0};
  if (s == APS_OK)
    s = aps_runner_create(g, &(aps_runner_desc){.device = o->device}, &r);
  if (s == APS_OK)
    s = aps_op_batch_alloc(l, batch, &part);
  int64_t per = (int64_t)l->c * l->h * l->w, mper = (int64_t)l->c * l->mh * l->mw;
  float *xb = malloc((size_t)(batch * per) * sizeof(float)), *yb = malloc((size_t)(batch * mper) * sizeof(float));
  float *gb = malloc((size_t)(batch * per) * sizeof(float));
  if (s == APS_OK && (!xb || !yb || !gb))
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (int64_t start = 0; s == APS_OK && start < im->count; start += batch) {
    int64_t m = im->count - start < batch ? im->count - start : batch;
    for (int j = 0; j < batch; j++) { /* a short last batch repeats its first image; only m count */
      int64_t i = start + (j < m ? j : 0);
      copy_row(all, (int)i, &part, j);
      memcpy(xb + j * per, im->x + i * per, (size_t)per * sizeof(float));
    }
    if ((s = aps_runner_set(r, "x", xb, batch * per)) == APS_OK &&
        (s = aps_runner_set(r, "noise", part.noise, batch * mper)) == APS_OK &&
        (s = aps_op_graph_set(r, g, &op, &part)) == APS_OK && (s = aps_runner_run(r)) == APS_OK &&
        (s = aps_runner_get(r, "y", yb, batch * mper)) == APS_OK)
      s = same ? APS_OK : aps_runner_get(r, "grid", gb, batch * per);
    if (same)
      memcpy(gb, yb, (size_t)(batch * per) * sizeof(float));
    if (s == APS_OK) {
      memcpy(y + start * mper, yb, (size_t)(m * mper) * sizeof(float));
      memcpy(grid + start * per, gb, (size_t)(m * per) * sizeof(float));
    }
  }
  free(xb), free(yb), free(gb);
  aps_op_batch_free(&part);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  return s;
}

/* The descriptor for display: 0 → −1 (black), its family's largest value → 1 (white). */
static void descriptor_image(const aps_op_layout *l, const float *d, int channels, float *out) {
  int64_t hw = (int64_t)l->h * l->w;
  for (int k = 0; k < channels; k++)
    for (int64_t i = 0; i < hw; i++)
      out[k * hw + i] = 2.0f * d[i] / (l->desc_max > 0 ? l->desc_max : 1.0f) - 1.0f;
}

static aps_status write_pngs(const char *dir, const char *grid_path, const images *im, const aps_op_batch *all,
                             const float *grid) {
  const aps_op_layout *l = &all->l;
  int64_t per = (int64_t)l->c * l->h * l->w, n = im->count;
  float *desc = malloc((size_t)(n * per) * sizeof(float));
  if (!desc)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  aps_status s = APS_OK;
  for (int64_t i = 0; i < n; i++)
    descriptor_image(l, all->descriptor + i * l->h * l->w, l->c, desc + i * per);
  char path[4200];
  for (int64_t i = 0; s == APS_OK && i < n; i++) {
    const char *what[3] = {"measurement", "descriptor", "clean"};
    const float *img[3] = {grid + i * per, desc + i * per, im->x + i * per};
    for (int k = 0; s == APS_OK && k < 3; k++) {
      snprintf(path, sizeof path, "%s/%05lld-%s.png", dir, (long long)im->index[i], what[k]);
      /* the descriptor as one grey channel */
      s = aps_png_write_grid(path, img[k], 1, k == 1 ? 1 : l->c, l->h, l->w, 1, 0);
    }
  }
  if (s == APS_OK && grid_path) { /* rows: clean, descriptor, measurement */
    float *rows = malloc((size_t)(3 * n * per) * sizeof(float));
    if (!rows)
      s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    else {
      memcpy(rows, im->x, (size_t)(n * per) * sizeof(float));
      memcpy(rows + n * per, desc, (size_t)(n * per) * sizeof(float));
      memcpy(rows + 2 * n * per, grid, (size_t)(n * per) * sizeof(float));
      s = aps_png_write_grid(grid_path, rows, (int)(3 * n), l->c, l->h, l->w, (int)n, 2);
      free(rows);
    }
  }
  free(desc);
  return s;
}

int cmd_degrade(const cli_options *o, int argc, char **argv) {
  const char *op = NULL, *data = NULL, *split = "test", *index = NULL, *image = NULL, *out = NULL, *grid_path = NULL;
  int n = 0, seed = 1, size = 32, channels = 1;
  const cli_arg args[] = {
      {"--op", CLI_STRING, &op, 0, 0, "operator family, e.g. inpaint:box=8-16,noise=0.05 (required)"},
      {"--data", CLI_STRING, &data, 0, 0, "fashion-mnist | a folder of PNGs"},
      {"--split", CLI_STRING, &split, 0, 0, "test | train, for fashion-mnist (test)"},
      {"--index", CLI_STRING, &index, 0, 0, "the images to use: N or N,M,... (default: the first --n)"},
      {"--n", CLI_INT, &n, 1, 1e7, "the first K images (1)"},
      {"--image", CLI_STRING, &image, 0, 0, "one PNG instead of --data"},
      {"--size", CLI_INT, &size, 2, 16384, "image side for a folder of PNGs (32)"},
      {"--channels", CLI_INT, &channels, 1, 3, "1 or 3, for a folder of PNGs (1)"},
      {"--out", CLI_STRING, &out, 0, 0, "folder for the PNGs and measurements.safetensors (required)"},
      {"--grid", CLI_STRING, &grid_path, 0, 0, "also one PNG: rows clean, descriptor, measurement"},
      {"--seed", CLI_INT, &seed, 0, 1e9, "seed of the operators and noise (1)"},
  };
  const int nargs = (int)(sizeof args / sizeof args[0]);
  if (cli_args_parse("degrade", argc, argv, args, nargs))
    return 2;
  const char *problem = !op || !out ? "--op and --out are required"
                        : !data == !image ? "give one of --data and --image"
                        : image && (index || n) ? "--index and --n go with --data"
                        : index && n ? "give --index or --n, not both"
                        : data && strcmp(split, "test") && strcmp(split, "train") ? "--split must be test or train"
                        : NULL;
  if (problem) {
    fprintf(stderr, "aps degrade: %s\n", problem);
    cli_args_usage("degrade", args, nargs);
    return 2;
  }
  aps_op_spec spec;
  aps_op_family *f = NULL;
  images im = {0};
  aps_op_batch all = {0};
  float *y = NULL, *grid = NULL;
  aps_status s = aps_op_spec_parse(op, &spec);
  if (s == APS_OK)
    s = load_images(data, split, index, n ? n : 1, image, size, channels, &im);
  if (s == APS_OK)
    s = aps_op_family_create(&spec, im.c, im.h, im.w, &f);
  if (s == APS_OK)
    s = aps_op_batch_alloc(aps_op_family_layout(f), (int)im.count, &all);
  for (int64_t i = 0; s == APS_OK && i < im.count; i++) /* each image's draw from its own index */
    s = aps_op_draw(f, aps_op_seed((uint64_t)seed, (uint64_t)im.index[i]), &all, (int)i);
  if (s == APS_OK && aps_file_make_dirs(out))
    s = aps_fail(APS_ERR_IO, "%s: cannot create the folder: %s", out, strerror(errno));
  if (s == APS_OK) {
    const aps_op_layout *l = aps_op_family_layout(f);
    y = malloc((size_t)(im.count * l->c * l->mh * l->mw) * sizeof(float));
    grid = malloc((size_t)(im.count * l->c * l->h * l->w) * sizeof(float));
    s = y && grid ? measure(o, f, &im, &all, y, grid) : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  if (s == APS_OK)
    s = write_pngs(out, grid_path, &im, &all, grid);
  char path[4200], canon[APS_OP_SPEC_MAX] = "";
  snprintf(path, sizeof path, "%s/measurements.safetensors", out);
  if (s == APS_OK)
    s = aps_measurements_write(path, &spec, &all, y, im.source);
  if (s == APS_OK)
    s = aps_op_spec_format(&spec, canon, sizeof canon);
  if (s == APS_OK)
    fprintf(stderr, "aps: wrote %s and %lld x 3 PNGs%s%s (%s, seed %d, from %s)\n", path, (long long)im.count,
            grid_path ? " and " : "", grid_path ? grid_path : "", canon, seed, im.source);
  free(y), free(grid), free(im.x), free(im.index);
  aps_op_batch_free(&all);
  aps_op_family_destroy(f);
  if (s != APS_OK) {
    fprintf(stderr, "aps degrade: %s\n", aps_last_error());
    return 1;
  }
  return 0;
}
