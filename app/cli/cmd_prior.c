/* aps prior-sample and aps elbo: use a trained prior file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "dataset.h"
#include "image_io.h"
#include "sampler.h"

/* The model's config from its file, a graph built by `build` at the batch, and a runner
 * holding the file's weights. */
static aps_status open_model(const char *path, const char *device, int f16_storage, int batch,
                             aps_status (*build)(const aps_prior_config *, int, gr_graph **),
                             aps_prior_config *cfg, gr_graph **g, aps_runner **r) {
  gr_st *st = NULL;
  *g = NULL, *r = NULL;
  aps_status s = gr_st_open(path, &st);
  if (s == APS_OK)
    s = aps_prior_config_from_file(st, cfg);
  if (s == APS_OK)
    s = build(cfg, batch, g);
  if (s == APS_OK)
    s = aps_runner_create(*g, &(aps_runner_desc){.device = device, .f16_storage = f16_storage}, r);
  if (s == APS_OK)
    s = aps_runner_load(*r, st);
  gr_st_close(st);
  return s;
}


int cmd_prior_sample(const cli_options *o, int argc, char **argv) {
  const char *model = NULL, *out = NULL, *sampler = "em";
  int steps = 500, count = 64, batch = 64, seed = 1, cols = 0, f16 = 0;
  const cli_arg args[] = {
      {"--model", CLI_STRING, &model, 0, 0, "prior file (required)"},
      {"--out", CLI_STRING, &out, 0, 0, "PNG grid to write (required)"},
      {"--sampler", CLI_STRING, &sampler, 0, 0, "em | ddim | ode (em)"},
      {"--steps", CLI_INT, &steps, 1, 100000, "steps from t = 1 to eps (500)"},
      {"--n", CLI_INT, &count, 1, 100000, "samples (64)"},
      {"--batch", CLI_INT, &batch, 1, 4096, "samples per network evaluation (64)"},
      {"--cols", CLI_INT, &cols, 0, 1000, "grid columns (0: about square)"},
      {"--seed", CLI_INT, &seed, 0, 1e9, "seed (1)"},
      {"--f16-storage", CLI_FLAG, &f16, 0, 0, "Vulkan: keep intermediates as IEEE halves"},
  };
  const int nargs = (int)(sizeof args / sizeof args[0]);
  if (cli_args_parse("prior-sample", argc, argv, args, nargs))
    return 2;
  int kind = aps_sampler_parse(sampler);
  if (!model || !out || kind < 0) {
    fprintf(stderr, "aps prior-sample: %s\n", kind < 0 ? "--sampler must be em, ddim or ode" : "--model and --out are required");
    cli_args_usage("prior-sample", args, nargs);
    return 2;
  }
  batch = batch < count ? batch : count;
  aps_prior_config cfg;
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  aps_status s = open_model(model, o->device, f16, batch, aps_prior_eps_graph, &cfg, &g, &r);
  int c = cfg.unet.image_channels, sz = cfg.unet.image_size;
  int64_t per = (int64_t)c * sz * sz;
  float *all = s == APS_OK ? malloc((size_t)((count + batch) * per) * sizeof *all) : NULL;
  if (s == APS_OK && !all)
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  uint64_t rng = 0x853c49e6748fea9bull ^ (uint64_t)seed;
  for (int done = 0; s == APS_OK && done < count; done += batch) {
    s = aps_prior_sample(r, &cfg, batch, (aps_sampler)kind, steps, &rng, all + done * per);
    fprintf(stderr, "aps: %d/%d samples\n", done + batch < count ? done + batch : count, count);
  }
  if (s == APS_OK)
    s = aps_png_write_grid(out, all, count, c, sz, sz, cols ? cols : (int)ceil(sqrt((double)count)), 2);
  if (s == APS_OK)
    fprintf(stderr, "aps: wrote %s (%d samples, %s, %d steps)\n", out, count, sampler, steps);
  free(all);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  if (s != APS_OK) {
    fprintf(stderr, "aps prior-sample: %s\n", aps_last_error());
    return 1;
  }
  return 0;
}

int cmd_elbo(const cli_options *o, int argc, char **argv) {
  const char *model = NULL, *data = "fashion-mnist", *split = "test";
  int limit = 0, batch = 64, seed = 1, draws = 1, f16 = 0;
  const cli_arg args[] = {
      {"--model", CLI_STRING, &model, 0, 0, "prior file (required)"},
      {"--data", CLI_STRING, &data, 0, 0, "fashion-mnist | a folder of PNGs (fashion-mnist)"},
      {"--split", CLI_STRING, &split, 0, 0, "test | train, for fashion-mnist (test)"},
      {"--n", CLI_INT, &limit, 0, 1e8, "images to use (0: all)"},
      {"--draws", CLI_INT, &draws, 1, 1000, "ELBO draws per image (1)"},
      {"--batch", CLI_INT, &batch, 1, 4096, "images per evaluation (64)"},
      {"--seed", CLI_INT, &seed, 0, 1e9, "seed (1)"},
      {"--f16-storage", CLI_FLAG, &f16, 0, 0, "Vulkan: keep intermediates as IEEE halves"},
  };
  const int nargs = (int)(sizeof args / sizeof args[0]);
  if (cli_args_parse("elbo", argc, argv, args, nargs))
    return 2;
  if (!model || (strcmp(split, "test") && strcmp(split, "train"))) {
    fprintf(stderr, "aps elbo: %s\n", model ? "--split must be test or train" : "--model is required");
    cli_args_usage("elbo", args, nargs);
    return 2;
  }
  aps_prior_config cfg;
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  aps_dataset *ds = NULL;
  aps_status s = open_model(model, o->device, f16, batch, aps_prior_elbo_graph, &cfg, &g, &r);
  int c = cfg.unet.image_channels, sz = cfg.unet.image_size;
  if (s == APS_OK)
    s = !strcmp(data, "fashion-mnist") ? aps_dataset_load_fashion_mnist(NULL, !strcmp(split, "train"), &ds)
                                       : aps_dataset_load(data, sz, c, &ds);
  if (s == APS_OK && (aps_dataset_channels(ds) != c || aps_dataset_height(ds) != sz || aps_dataset_width(ds) != sz))
    s = aps_fail(APS_ERR_INVALID_ARG, "%s: images are %dx%dx%d, the model wants %dx%dx%d", aps_dataset_source(ds),
                 aps_dataset_channels(ds), aps_dataset_height(ds), aps_dataset_width(ds), c, sz, sz);
  int64_t n = s == APS_OK ? aps_dataset_count(ds) : 0, per = (int64_t)c * sz * sz;
  if (limit > 0 && limit < n)
    n = limit;
  float *buf[4] = {0}, *nb = malloc((size_t)batch * sizeof *nb), *tb = malloc((size_t)batch * sizeof *tb);
  for (int k = 0; k < 4; k++)
    buf[k] = malloc((size_t)(batch * per) * sizeof(float));
  if (s == APS_OK && (!buf[0] || !buf[1] || !buf[2] || !buf[3] || !nb || !tb))
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  uint64_t rng = 0xda942042e4dd58b5ull ^ (uint64_t)seed;
  double sum = 0, sumsq = 0, count = 0, dim = (double)per;
  const char *names[4] = {"x", "e_t", "e_1", "e_0"};
  for (int64_t start = 0; s == APS_OK && start < n * draws; start += batch) {
    int64_t m = n * draws - start < batch ? n * draws - start : batch;
    const float *src = aps_dataset_data(ds);
    for (int64_t i = 0; i < batch; i++) { /* a short last batch repeats its first image; only m count */
      int64_t img = (start + (i < m ? i : 0)) % n;
      for (int64_t k = 0; k < per; k++) /* uniform dequantisation over one 8-bit level */
        buf[0][i * per + k] = src[img * per + k] + (float)((aps_rng_next(&rng) >> 40) * 0x1p-24 / 127.5);
      tb[i] = (float)aps_sde_importance_inv(&cfg.sde, (double)(aps_rng_next(&rng) >> 11) * 0x1p-53);
    }
    for (int k = 1; k < 4; k++)
      for (int64_t i = 0; i < batch * per; i++)
        buf[k][i] = aps_rng_normal(&rng);
    for (int k = 0; s == APS_OK && k < 4; k++)
      s = aps_runner_set(r, names[k], buf[k], batch * per);
    if (s == APS_OK && (s = aps_runner_set(r, "t", tb, batch)) == APS_OK && (s = aps_runner_run(r)) == APS_OK)
      s = aps_runner_get(r, "nelbo", nb, batch);
    for (int64_t i = 0; s == APS_OK && i < m; i++) {
      double bpd = (nb[i] / dim + log(127.5)) / log(2.0);
      sum += bpd, sumsq += bpd * bpd, count++;
    }
  }
  if (s == APS_OK) {
    double mean = sum / count, sd = sqrt(fmax(sumsq / count - mean * mean, 0.0));
    if (o->json)
      printf("{\"model\": \"%s\", \"data\": \"%s\", \"images\": %lld, \"draws\": %d, \"bits_per_dim\": %.4f, "
             "\"stderr\": %.4f}\n", model, aps_dataset_source(ds), (long long)n, draws, mean, sd / sqrt(count));
    else
      printf("%s on %s: %.4f ± %.4f bits/dim (−ELBO, %lld images × %d draws, uniform dequantisation, ± one "
             "standard error)\n", model, aps_dataset_source(ds), mean, sd / sqrt(count), (long long)n, draws);
  }
  for (int k = 0; k < 4; k++)
    free(buf[k]);
  free(nb), free(tb);
  aps_dataset_free(ds);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  if (s != APS_OK) {
    fprintf(stderr, "aps elbo: %s\n", aps_last_error());
    return 1;
  }
  return 0;
}
