/* aps train-prior: trains the diffusion prior (docs/METHOD.md §2) on Fashion-MNIST or a folder
 * of PNGs, with checkpoints and --resume; saves the EMA weights with their config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "dataset.h"
#include "prior.h"
#include "trainer.h"

int cmd_train_prior(const cli_options *o, int argc, char **argv) {
  const char *data = NULL, *out = NULL, *ckpt = NULL, *csv = NULL, *widths = "32,64,64";
  int steps = 20000, batch = 64, size = 32, channels = 1, hflip = 0, every = 500, resume = 0, warmup = 500, seed = 1;
  int blocks = 2, attention = 4, groups = 8, time_dim = 32, cosine = 0;
  float lr = 2e-4f;
  const cli_arg args[] = {
      {"--data", CLI_STRING, &data, 0, 0, "fashion-mnist | a folder of PNGs (required)"},
      {"--out", CLI_STRING, &out, 0, 0, "model file to write, EMA weights (required)"},
      {"--steps", CLI_INT, &steps, 1, 1e8, "train until this step (20000)"},
      {"--batch", CLI_INT, &batch, 1, 4096, "images per step (64)"},
      {"--lr", CLI_FLOAT, &lr, 1e-7, 1, "peak learning rate (2e-4)"},
      {"--warmup", CLI_INT, &warmup, 0, 1e8, "linear warm-up steps (500)"},
      {"--cosine", CLI_FLAG, &cosine, 0, 0, "cosine decay to 0 at the last step (default: constant)"},
      {"--size", CLI_INT, &size, 4, 1024, "image size for PNG folders (32)"},
      {"--channels", CLI_INT, &channels, 1, 3, "1 or 3, for PNG folders (1)"},
      {"--hflip", CLI_FLAG, &hflip, 0, 0, "random horizontal flips"},
      {"--checkpoint", CLI_STRING, &ckpt, 0, 0, "checkpoint path (<out>.ckpt)"},
      {"--checkpoint-every", CLI_INT, &every, 0, 1e8, "steps between checkpoints (500; 0 = at the end)"},
      {"--resume", CLI_FLAG, &resume, 0, 0, "continue from the checkpoint"},
      {"--csv", CLI_STRING, &csv, 0, 0, "loss log (<out>.csv)"},
      {"--seed", CLI_INT, &seed, 0, 1e9, "seed of the initial weights and the batches (1)"},
      {"--widths", CLI_STRING, &widths, 0, 0, "channels per U-Net level (32,64,64)"},
      {"--blocks", CLI_INT, &blocks, 1, 8, "residual blocks per level (2)"},
      {"--attention", CLI_INT, &attention, 0, 15, "bit mask of levels with attention (4: the third)"},
      {"--groups", CLI_INT, &groups, 1, 64, "GroupNorm groups (8)"},
      {"--time-dim", CLI_INT, &time_dim, 2, 1024, "sinusoidal time embedding size (32)"},
  };
  const int nargs = (int)(sizeof args / sizeof args[0]);
  if (cli_args_parse("train-prior", argc, argv, args, nargs))
    return 2;
  if (!data || !out) {
    fprintf(stderr, "aps train-prior: --data and --out are required\n");
    cli_args_usage("train-prior", args, nargs);
    return 2;
  }
  aps_prior_config cfg = aps_prior_config_default(channels, size);
  cfg.unet.levels = cli_parse_ints(widths, cfg.unet.widths, 4);
  cfg.unet.blocks_per_level = blocks, cfg.unet.attention_level_mask = attention;
  cfg.unet.groups = groups, cfg.unet.time_dim = time_dim;
  if (!cfg.unet.levels) {
    fprintf(stderr, "aps train-prior: --widths '%s': expected 1 to 4 comma-separated positive integers\n", widths);
    return 2;
  }
  /* Derived paths as long as --out needs (a fixed buffer would cut them into --out itself). */
  size_t len = strlen(out) + 8;
  char *ckpt_buf = malloc(len), *csv_buf = malloc(len);
  if (!ckpt_buf || !csv_buf) {
    free(ckpt_buf), free(csv_buf);
    fprintf(stderr, "aps train-prior: out of host memory\n");
    return 1;
  }
  snprintf(ckpt_buf, len, "%s.ckpt", out);
  snprintf(csv_buf, len, "%s.csv", out);
  ckpt = ckpt ? ckpt : ckpt_buf;
  csv = csv ? csv : csv_buf;

  aps_dataset *ds = NULL;
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  aps_prior_feed f = {.rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)seed, .batch = batch, .hflip = hflip};
  aps_status s = aps_dataset_load(data, size, channels, &ds);
  if (s == APS_OK && (aps_dataset_height(ds) != size || aps_dataset_channels(ds) != channels))
    s = aps_fail(APS_ERR_INVALID_ARG, "%s: images are %dx%dx%d, the model wants %dx%dx%d", aps_dataset_source(ds),
                 aps_dataset_channels(ds), aps_dataset_height(ds), aps_dataset_width(ds), channels, size, size);
  if (s == APS_OK)
    s = aps_prior_train_graph(&cfg, batch, &g);
  if (s == APS_OK)
    s = aps_runner_create(g, &(aps_runner_desc){.device = o->device}, &r);
  uint64_t init_rng = (uint64_t)seed * 0x2545f4914f6cdd1dull + 1;
  if (s == APS_OK && !resume)
    s = aps_prior_init_params(g, r, &init_rng);
  /* The model's config and the run's settings: a --resume with other values is refused. */
  char unet_s[256], sde_s[256], train_s[512];
  gr_st_meta meta[APS_PRIOR_META + 2];
  aps_prior_config_meta(&cfg, unet_s, sde_s, meta);
  snprintf(train_s, sizeof train_s, "data=%s batch=%d lr=%g warmup=%d schedule=%s hflip=%d seed=%d", data, batch, lr,
           warmup, cosine ? "cosine" : "constant", hflip, seed);
  meta[APS_PRIOR_META] = (gr_st_meta){"aps.train", train_s};
  aps_train_result res = {0};
  if (s == APS_OK) {
    fprintf(stderr, "aps: training the prior on %s (%lld images), batch %d, to step %d\n", aps_dataset_source(ds),
            (long long)aps_dataset_count(ds), batch, steps);
    f.data = ds;
    aps_train_desc td = {.steps = steps,
                         .schedule = {.lr = lr, .warmup = warmup, .total = cosine ? steps : 0},
                         .checkpoint = ckpt,
                         .checkpoint_every = every,
                         .resume = resume,
                         .csv = csv,
                         .output = out,
                         .meta = meta,
                         .n_meta = APS_PRIOR_META + 1,
                         .rng = &f.rng,
                         .feed = aps_prior_feed_fn,
                         .user = &f};
    s = aps_train(r, &td, &res);
  }
  if (s == APS_OK && !res.interrupted) {
    char step_s[32];
    int step = res.last_step ? res.last_step : res.first_step - 1; /* nothing ran: the checkpoint's step */
    snprintf(step_s, sizeof step_s, "%d", step);
    meta[APS_PRIOR_META + 1] = (gr_st_meta){"aps.step", step_s};
    s = aps_runner_save(r, out, APS_SAVE_EMA, meta, APS_PRIOR_META + 2);
    if (s == APS_OK && res.last_step)
      fprintf(stderr, "aps: wrote %s (EMA weights, step %s; last loss %.5f, %.1f s this run)\n", out, step_s,
              res.last_loss, res.seconds);
    else if (s == APS_OK)
      fprintf(stderr, "aps: wrote %s (EMA weights of the checkpoint, step %s; no steps left to run)\n", out, step_s);
  }
  free(f.buf);
  free(ckpt_buf), free(csv_buf);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  aps_dataset_free(ds);
  if (s != APS_OK) {
    fprintf(stderr, "aps train-prior: %s\n", aps_last_error());
    return 1;
  }
  return res.interrupted ? 130 : 0;
}
