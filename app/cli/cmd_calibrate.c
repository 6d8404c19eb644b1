/* aps calibrate: the latent scales, in the damaged region and elsewhere, at which a flow's
 * 90 % intervals cover the truth 90 % of the time in each on Fashion-MNIST's training images
 * (never the test split `aps eval` reports), written into a copy of the flow as
 * "aps.temperature" (calibrate.h). */
#include <stdio.h>
#include <string.h>

#include "calibrate.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_method.h"

int cmd_calibrate(const cli_options *o, int argc, char **argv) {
  const char *model = NULL, *op = NULL, *out = NULL;
  int n = 200, k = 16, seed = 1;
  float target = 0.9f;
  const cli_arg args[] = {
      {"--model", CLI_STRING, &model, 0, 0, "flow file from aps distill (required)"},
      {"--out", CLI_STRING, &out, 0, 0, "the calibrated flow to write (required; may be --model)"},
      {"--op", CLI_STRING, &op, 0, 0, "operator family to calibrate on (default: the model's)"},
      {"--target", CLI_FLOAT, &target, 0.05, 0.995, "coverage of the 90 % interval wanted in each region (0.9)"},
      {"--n", CLI_INT, &n, 1, 60000, "training images, the first N (200)"},
      {"--k", CLI_INT, &k, 2, 4096, "samples per image (16)"},
      {"--seed", CLI_INT, &seed, 0, 1e9, "seed of operators, noise and samples (1)"},
  };
  const int nargs = (int)(sizeof args / sizeof args[0]);
  if (cli_args_parse("calibrate", argc, argv, args, nargs))
    return 2;
  if (!model || !out) {
    fprintf(stderr, "aps calibrate: --model and --out are required\n");
    cli_args_usage("calibrate", args, nargs);
    return 2;
  }
  aps_posterior *p = NULL;
  aps_dataset *ds = NULL;
  aps_calibrate_result r;
  aps_status s = aps_posterior_open(&(aps_posterior_desc){.model = model, .device = o->device,
                                                         .max_batch = k < 64 ? k : 64, .temperature = {1.0f, 1.0f}},
                                    &p);
  char family[APS_OP_SPEC_MAX] = "";
  if (s == APS_OK)
    s = cli_fashion_mnist_for(model, aps_posterior_get_info(p), 1, op, &ds, family);
  if (s == APS_OK) {
    n = n < aps_dataset_count(ds) ? n : (int)aps_dataset_count(ds);
    fprintf(stderr, "aps: calibrating %s on Fashion-MNIST training images 0-%d, %s, %d samples each\n", model, n - 1,
            family, k);
    s = aps_calibrate(p, aps_dataset_data(ds), n,
                      &(aps_calibrate_desc){.eval = {.spec = op, .k = k, .seed = (uint64_t)seed}, .target = target},
                      &r);
  }
  for (int i = 0; s == APS_OK && i < r.tries; i++) {
    const aps_calibrate_try *t = &r.tried[i];
    printf("temperature %6.4f damaged, %6.4f elsewhere: coverage %.4f (damaged %.4f, elsewhere %.4f), "
           "data consistency %.4f\n", t->temperature[0], t->temperature[1], t->r.coverage90, t->r.coverage90_inside,
           t->r.coverage90_outside, t->r.data_consistency);
  }
  char note[APS_OP_SPEC_MAX + 160];
  if (s == APS_OK) {
    snprintf(note, sizeof note, "coverage90 %.4f, damaged %.4f, elsewhere %.4f (target %g) on fashion-mnist train "
             "images 0-%d, k %d, seed %d, op %s", r.at.coverage90, r.at.coverage90_inside, r.at.coverage90_outside,
             target, n - 1, k, seed, family);
    s = aps_flow_write_temperature(model, out, r.temperature, note);
  }
  if (s == APS_OK)
    printf("temperature %.4g damaged, %.4g elsewhere: coverage %.4f (damaged %.4f, elsewhere %.4f), data "
           "consistency %.4f, PSNR of the mean %.3f dB (one sample %.3f); wrote %s\n", r.temperature[0],
           r.temperature[1], r.at.coverage90, r.at.coverage90_inside, r.at.coverage90_outside, r.at.data_consistency,
           r.at.psnr_mean, r.at.psnr_sample, out);
  aps_dataset_free(ds);
  aps_posterior_close(p);
  if (s != APS_OK) {
    fprintf(stderr, "aps calibrate: %s\n", aps_last_error());
    return 1;
  }
  return 0;
}
