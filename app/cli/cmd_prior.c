/* aps prior-sample and aps elbo: use a trained prior file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aps_file.h"
#include "cli.h"
#include "cli_args.h"
#include "dataset.h"
#include "elbo.h"
#include "image_io.h"
#include "sampler.h"

int cmd_prior_sample(const cli_options *o, int argc, char **argv) {
  const char *model = NULL, *out = NULL, *dir = NULL, *sampler = "em";
  int steps = 500, count = 64, batch = 64, seed = 1, cols = 0, f16 = 0, fp32 = 0;
  const cli_arg args[] = {
      {"--model", CLI_STRING, &model, 0, 0, "prior file (required)"},
      {"--out", CLI_STRING, &out, 0, 0, "PNG grid to write (--out or --dir required)"},
      {"--dir", CLI_STRING, &dir, 0, 0, "folder for one PNG per sample (sample-000000.png, ...): data for aps distill --objective forward"},
      {"--sampler", CLI_STRING, &sampler, 0, 0, "em | ddim | ode (em)"},
      {"--steps", CLI_INT, &steps, 1, 100000, "steps from t = 1 to eps (500)"},
      {"--n", CLI_INT, &count, 1, 100000, "samples (64)"},
      {"--batch", CLI_INT, &batch, 1, 4096, "samples per network evaluation (64)"},
      {"--cols", CLI_INT, &cols, 0, 1000, "grid columns (0: about square)"},
      {"--seed", CLI_INT, &seed, 0, 1e9, "seed (1)"},
      {"--f16-storage", CLI_FLAG, &f16, 0, 0, "Vulkan: keep intermediates as IEEE halves"},
      {"--fp32", CLI_FLAG, &fp32, 0, 0, "CPU device: convs in fp32 (default: bf16 inputs and weights where the CPU has native bf16)"},
  };
  const int nargs = (int)(sizeof args / sizeof args[0]);
  if (cli_args_parse("prior-sample", argc, argv, args, nargs))
    return 2;
  int kind = aps_sampler_parse(sampler);
  if (!model || !(out || dir) || kind < 0) {
    fprintf(stderr, "aps prior-sample: %s\n",
            kind < 0 ? "--sampler must be em, ddim or ode" : "--model and --out or --dir are required");
    cli_args_usage("prior-sample", args, nargs);
    return 2;
  }
  /* Outputs are checked before any work (aps_file.h); --out over --model would destroy it. */
  struct stat ms, os;
  if ((out && aps_file_check_target(out, "--out") != APS_OK) || (dir && aps_file_make_dirs(dir) != 0) ||
      (out && stat(model, &ms) == 0 && stat(out, &os) == 0 && ms.st_dev == os.st_dev && ms.st_ino == os.st_ino &&
       aps_fail(APS_ERR_INVALID_ARG, "--out %s is the --model file; writing the PNG would destroy it", out))) {
    fprintf(stderr, "aps prior-sample: %s\n", aps_last_error());
    return 2;
  }
  batch = batch < count ? batch : count;
  aps_prior_config cfg = {0}; /* read below even when opening failed */
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  aps_status s = aps_prior_open(model, &(aps_runner_desc){.device = o->device, .f16_storage = f16, .cpu_bf16 = !fp32}, batch,
                                aps_prior_eps_graph, &cfg, &g, &r);
  int c = cfg.unet.image_channels, sz = cfg.unet.image_size;
  int64_t per = (int64_t)c * sz * sz;
  float *all = s == APS_OK ? malloc((size_t)((count + batch) * per) * sizeof *all) : NULL;
  if (s == APS_OK && !all)
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  uint64_t rng = 0x853c49e6748fea9bull ^ (uint64_t)seed;
  for (int done = 0; s == APS_OK && done < count; done += batch) {
    if ((s = aps_prior_sample(r, &cfg, batch, (aps_sampler)kind, steps, &rng, all + done * per)) != APS_OK)
      aps_fail_context(s, "%s: ", model);
    fprintf(stderr, "aps: %d/%d samples\n", done + batch < count ? done + batch : count, count);
  }
  if (s == APS_OK && out)
    s = aps_png_write_grid(out, all, count, c, sz, sz, cols ? cols : (int)ceil(sqrt((double)count)), 2);
  char path[4096];
  for (int i = 0; s == APS_OK && dir && i < count; i++) {
    snprintf(path, sizeof path, "%s/sample-%06d.png", dir, i);
    s = aps_png_write_grid(path, all + i * per, 1, c, sz, sz, 1, 0);
  }
  if (s == APS_OK)
    fprintf(stderr, "aps: wrote %s%s%s (%d samples, %s, %d steps)\n", out ? out : "", out && dir ? " and " : "",
            dir ? dir : "", count, sampler, steps);
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
  aps_prior_config cfg = {0}; /* read below even when opening failed */
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  aps_dataset *ds = NULL;
  aps_elbo_result res = {0};
  aps_status s = aps_prior_open(model, &(aps_runner_desc){.device = o->device, .f16_storage = f16}, batch,
                                aps_prior_elbo_graph, &cfg, &g, &r);
  if (s == APS_OK)
    s = !strcmp(data, "fashion-mnist")
            ? aps_dataset_load_fashion_mnist(NULL, !strcmp(split, "train"), &ds)
            : aps_dataset_load(data, cfg.unet.image_size, cfg.unet.image_channels, &ds);
  if (s == APS_OK)
    if ((s = aps_elbo_estimate(r, &cfg, batch, ds, limit, draws, (uint64_t)seed, &res)) != APS_OK)
      aps_fail_context(s, "%s: ", model);
  if (s == APS_OK) {
    long long images = (long long)(res.samples / draws);
    if (o->json)
      printf("{\"model\": \"%s\", \"data\": \"%s\", \"images\": %lld, \"draws\": %d, \"bits_per_dim\": %.4f, "
             "\"stderr\": %.4f}\n", model, aps_dataset_source(ds), images, draws, res.bits_per_dim, res.stderr_bpd);
    else
      printf("%s on %s: %.4f ± %.4f bits/dim (−ELBO, %lld images × %d draws, uniform dequantisation, ± one "
             "standard error)\n", model, aps_dataset_source(ds), res.bits_per_dim, res.stderr_bpd, images, draws);
  }
  aps_dataset_free(ds);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  if (s != APS_OK) {
    fprintf(stderr, "aps elbo: %s\n", aps_last_error());
    return 1;
  }
  return 0;
}
