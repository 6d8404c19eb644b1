/* aps distill: distils the diffusion prior into a conditional flow for an operator family
 * (docs/METHOD.md §5), from simulated measurements of training images or from a bundle of
 * recorded ones; checkpoints, --resume, SIGINT; saves the flow's EMA weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "distill_family.h"
#include "trainer.h"

int cmd_distill(const cli_options *o, int argc, char **argv) {
  const char *prior = NULL, *op = NULL, *out = NULL, *ckpt = NULL, *csv = NULL, *arch = "glow", *data = "fashion-mnist";
  const char *measurements = NULL, *init = NULL, *objective = "reverse", *train_only = NULL;
  int steps = 4000, batch = 64, every = 200, resume = 0, warmup = 200, seed = 1, t_draws = 1, cosine = 0, prior_fp32 = 0;
  int levels = 0, flow_steps = 0, hidden = 0, pixels = -1, head = -1;
  float lr = 5e-4f, ema = 0.999f, forward_weight = 1.0f;
  const cli_arg args[] = {
      {"--prior", CLI_STRING, &prior, 0, 0, "the diffusion prior's model file (required)"},
      {"--op", CLI_STRING, &op, 0, 0, "operator family, e.g. inpaint:box=8-16 (required without --measurements)"},
      {"--out", CLI_STRING, &out, 0, 0, "flow model file to write, EMA weights (required)"},
      {"--measurements", CLI_STRING, &measurements, 0, 0, "a bundle of recorded measurements (aps degrade) instead"},
      {"--data", CLI_STRING, &data, 0, 0, "clean training images behind the simulated measurements (fashion-mnist); "
                                          "with --objective forward, a folder of the prior's samples"},
      {"--objective", CLI_STRING, &objective, 0, 0, "reverse: the method's KL through the prior's ELBO (default); forward: "
                                                    "fit the prior's own samples (aps prior-sample --dir), a warm start; "
                                                    "mixed: reverse + --forward-weight x forward on those samples"},
      {"--forward-weight", CLI_FLOAT, &forward_weight, 1e-3, 1e3, "mixed: the forward term's weight (1; "
                                                                   "--objective reverse leaves it out)"},
      {"--arch", CLI_STRING, &arch, 0, 0, "glow (realnvp-fc takes vectors: refused for image families)"},
      {"--levels", CLI_INT, &levels, 0, 6, "glow: scales (3)"},
      {"--flow-steps", CLI_INT, &flow_steps, 0, 64, "glow: steps per scale (4); realnvp-fc: blocks (8)"},
      {"--hidden", CLI_INT, &hidden, 0, 4096, "coupling nets' width (64)"},
      {"--pixels", CLI_INT, &pixels, 0, 1, "glow: 1 gives the finest couplings the condition's pixels (1; "
                                           "an --init flow without them grows them)"},
      {"--head", CLI_INT, &head, 0, 1, "glow: 1 ends the flow with a per-pixel affine map set by the condition "
                                       "(0; an --init flow without it grows it, as the identity)"},
      {"--train-only", CLI_STRING, &train_only, 0, 0, "train only these parts of the flow: head (glow with "
                                                      "--head 1), l0 (the finest level), ..., comma-separated; "
                                                      "the rest is held as --init left it"},
      {"--steps", CLI_INT, &steps, 1, 1e8, "train until this step (4000)"},
      {"--batch", CLI_INT, &batch, 2, 4096, "measurements per step (64)"},
      {"--t-draws", CLI_INT, &t_draws, 1, 64, "ELBO draws per sample (1)"},
      {"--lr", CLI_FLOAT, &lr, 1e-7, 1, "peak learning rate (5e-4)"},
      {"--warmup", CLI_INT, &warmup, 0, 1e8, "linear warm-up steps (200)"},
      {"--cosine", CLI_FLAG, &cosine, 0, 0, "cosine decay to 0 at the last step (default: constant)"},
      {"--ema", CLI_FLOAT, &ema, 0.5, 0.99999, "decay of the weights' moving average, which --out saves (0.999)"},
      {"--checkpoint", CLI_STRING, &ckpt, 0, 0, "checkpoint path (<out>.ckpt)"},
      {"--checkpoint-every", CLI_INT, &every, 0, 1e8, "steps between checkpoints (200; 0 = at the end)"},
      {"--resume", CLI_FLAG, &resume, 0, 0, "continue from the checkpoint"},
      {"--init", CLI_STRING, &init, 0, 0, "start from this flow's weights (same config), e.g. another family's; "
                                          "with --resume the checkpoint's weights win"},
      {"--csv", CLI_STRING, &csv, 0, 0, "loss log (<out>.csv)"},
      {"--seed", CLI_INT, &seed, 0, 1e9, "seed of the initial weights, batches and operators (1)"},
      {"--prior-fp32", CLI_FLAG, &prior_fp32, 0, 0, "CPU device: the prior's convs (and those --train-only "
                                                     "holds) in fp32 (default: bf16 inputs and weights where the "
                                                     "CPU has native bf16)"},
  };
  const int nargs = (int)(sizeof args / sizeof args[0]);
  if (cli_args_parse("distill", argc, argv, args, nargs))
    return 2;
  if (!prior || !out || (!op && !measurements)) {
    fprintf(stderr, "aps distill: --prior, --out and --op (or --measurements) are required\n");
    cli_args_usage("distill", args, nargs);
    return 2;
  }
  int forward = !strcmp(objective, "forward"), mixed = !strcmp(objective, "mixed");
  if (!forward && !mixed && strcmp(objective, "reverse")) {
    fprintf(stderr, "aps distill: --objective '%s': expected reverse, forward or mixed\n", objective);
    return 2;
  }
  /* The forward term learns from pairs of images and their measurements: they must be the
   * prior's samples, or the flow would be trained on clean/damaged pairs. */
  if ((forward || mixed) && (!strcmp(data, "fashion-mnist") || measurements)) {
    fprintf(stderr, "aps distill: --objective %s fits the prior's own samples: give --data a folder written "
                    "by aps prior-sample --dir (not %s)\n", objective,
            measurements ? "--measurements" : "the fashion-mnist training set");
    return 2;
  }
  if (strcmp(arch, "glow") && strcmp(arch, "realnvp-fc")) {
    fprintf(stderr, "aps distill: --arch '%s': expected glow or realnvp-fc\n", arch);
    return 2;
  }
  size_t len = strlen(out) + 8;
  char *ckpt_buf = malloc(len), *csv_buf = malloc(len);
  if (!ckpt_buf || !csv_buf)
    return free(ckpt_buf), free(csv_buf), 1;
  snprintf(ckpt_buf, len, "%s.ckpt", out);
  snprintf(csv_buf, len, "%s.csv", out);
  ckpt = ckpt ? ckpt : ckpt_buf;
  csv = csv ? csv : csv_buf;

  aps_dataset *ds = NULL;
  aps_distill_run *run = NULL;
  /* Resuming, the checkpoint holds the weights and the flow's config: --init is then only
   * compared with the first run's settings (aps.train), and its file need not exist any more. */
  gr_st *init_st = NULL;
  const char *config_from = resume ? (access(ckpt, F_OK) ? NULL : ckpt) : init; /* a missing one: aps_train says so */
  aps_status s = config_from ? gr_st_open(config_from, &init_st) : APS_OK;
  char train_s[512];
  char ema_s[32] = ""; /* named only when not the default, so older checkpoints still resume */
  if (ema != 0.999f)
    snprintf(ema_s, sizeof ema_s, " ema=%g", ema);
  char part_s[96] = ""; /* likewise */
  if (train_only)
    snprintf(part_s, sizeof part_s, " train_only=%.80s", train_only);
  snprintf(train_s, sizeof train_s, "lr=%g warmup=%d schedule=%s%s%s%s%.160s", lr, warmup,
           cosine ? "cosine" : "constant", ema_s, part_s, init ? " init=" : "", init ? init : "");
  aps_distill_objective obj = forward ? APS_DISTILL_FORWARD : mixed ? APS_DISTILL_MIXED : APS_DISTILL_REVERSE;
  aps_distill_run_desc d = {.prior_path = prior, .spec = op, .objective = obj, .forward_weight = forward_weight,
                            .trained_part = train_only, .measurements = measurements, .batch = batch,
                            .t_draws = t_draws, .device = o->device, .prior_bf16 = !prior_fp32, .ema_decay = ema,
                            .seed = (uint64_t)seed, .train = train_s};
  if (s == APS_OK) { /* the flow's config: the defaults for the prior's images, then the flags */
    gr_st *st = NULL;
    aps_prior_config pc;
    if ((s = gr_st_open(prior, &st)) == APS_OK && (s = aps_prior_config_from_file(st, &pc)) == APS_OK) {
      int c = pc.unet.image_channels, sz = pc.unet.image_size;
      if (init_st)
        s = aps_flow_config_from_file(init_st, &d.flow);
      else
        d.flow = !strcmp(arch, "glow") ? aps_flow_config_glow(c, sz, c + 2)
                                       : aps_flow_config_realnvp(c * sz * sz, (c + 2) * sz * sz);
      if (levels && d.flow.arch == APS_FLOW_GLOW)
        d.flow.levels = levels;
      if (flow_steps)
        d.flow.steps = flow_steps;
      if (hidden)
        d.flow.hidden = hidden;
      if (pixels >= 0 && d.flow.arch == APS_FLOW_GLOW)
        d.flow.pixels = pixels;
      if (head >= 0 && d.flow.arch == APS_FLOW_GLOW)
        d.flow.head = head;
      if (s == APS_OK)
        s = aps_flow_config_check(&d.flow);
      if (s == APS_OK && !measurements)
        s = !strcmp(data, "fashion-mnist") ? aps_dataset_load_fashion_mnist(NULL, 1, &ds) : aps_dataset_load(data, sz, c, &ds);
      d.data = ds;
    }
    gr_st_close(st);
  }
  if (s == APS_OK)
    s = aps_distill_run_create(&d, &run);
  if (s == APS_OK && !resume)
    s = init ? aps_distill_run_init_from(run, init_st) : aps_distill_run_init(run);
  aps_train_result res = {0};
  const gr_st_meta *meta = s == APS_OK ? aps_distill_run_meta(run) : NULL;
  if (s == APS_OK) {
    int bf16 = !prior_fp32 && aps_runner_is_cpu(aps_distill_run_runner(run)) && gr_cpu_has_bf16();
    if (forward)
      fprintf(stderr, "aps: fitting a %s flow for %s to the prior's samples in %s, batch %d, to step %d\n", arch,
              meta[2].value, data, batch, steps);
    else
      fprintf(stderr, "aps: distilling %s into a %s flow for %s, batch %d, to step %d%s\n", prior, arch, meta[2].value,
              batch, steps, bf16 ? " (the prior's convs in bf16: --prior-fp32 for fp32)" : "");
    if (mixed)
      fprintf(stderr, "aps: measurements simulated from the prior's samples in %s, which the forward term fits "
                      "(weight %g)\n", data, forward_weight);
    aps_train_desc td = {.steps = steps,
                         .schedule = {.lr = lr, .warmup = warmup, .total = cosine ? steps : 0},
                         .checkpoint = ckpt,
                         .checkpoint_every = every,
                         .resume = resume,
                         .csv = csv,
                         .output = out,
                         .meta = meta,
                         .n_meta = APS_DISTILL_META,
                         .n_meta_info = APS_DISTILL_META_INFO,
                         .rng = aps_distill_run_rng(run),
                         .feed = aps_distill_run_feed,
                         .user = run};
    s = aps_train(aps_distill_run_runner(run), &td, &res);
  }
  if (s == APS_OK && !res.interrupted) {
    s = aps_runner_save(aps_distill_run_runner(run), out, APS_SAVE_EMA, meta, APS_DISTILL_META);
    if (s == APS_OK)
      fprintf(stderr, "aps: wrote %s (the flow's EMA weights; last loss %.5f, %.1f s this run)\n", out, res.last_loss,
              res.seconds);
  }
  aps_distill_run_destroy(run);
  gr_st_close(init_st);
  aps_dataset_free(ds);
  free(ckpt_buf), free(csv_buf);
  if (s != APS_OK) {
    fprintf(stderr, "aps distill: %s\n", aps_last_error());
    return 1;
  }
  return res.interrupted ? 130 : 0;
}
