/* aps eval: a distilled flow's posterior on Fashion-MNIST's test images with simulated
 * measurements: quality of samples and of their mean, the measurement's own, data
 * consistency, 90 % interval coverage, spread inside and outside the damaged region, speed.
 * The loop is aps_evaluate (app/aps/evaluate.c); this parses and prints. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_method.h"
#include "dataset.h"
#include "evaluate.h"

static void progress(void *user, int done, int total) {
  (void)user;
  if (done == total || done % 50 == 0)
    fprintf(stderr, "aps: %d/%d images\n", done, total);
}

/* A number for JSON: NaN (no such pixels) as null. */
static void json_num(const char *key, double v, const char *fmt, int last) {
  printf("\"%s\": ", key);
  if (isfinite(v))
    printf(fmt, v);
  else
    printf("null");
  printf("%s", last ? "" : ", ");
}

/* A string for JSON: quotes and backslashes escaped, control characters dropped. */
static void json_str(const char *key, const char *v) {
  printf("\"%s\": \"", key);
  for (const char *c = v; *c; c++)
    if (*c == '"' || *c == '\\')
      printf("\\%c", *c);
    else if ((unsigned char)*c >= 0x20)
      putchar(*c);
  printf("\", ");
}

int cmd_eval(const cli_options *o, int argc, char **argv) {
  const char *model = NULL, *op = NULL, *split = "test";
  int n = 100, k = 8, seed = 1, json = 0;
  cli_method m = CLI_METHOD_DEFAULT;
  const cli_arg args[] = {
      {"--model", CLI_STRING, &model, 0, 0, "flow file from aps distill (required); with dps the prior"},
      {"--op", CLI_STRING, &op, 0, 0, "operator family (default: the model's)"},
      {"--n", CLI_INT, &n, 1, 60000, "images, the first N of the split (100)"},
      {"--split", CLI_STRING, &split, 0, 0, "test (default), or train: e.g. to tune DPS's zeta away from the test set"},
      {"--k", CLI_INT, &k, 2, 4096, "samples per image (8)"},
      {"--seed", CLI_INT, &seed, 0, 1e9, "seed of operators, noise and samples (1)"},
      {"--json", CLI_FLAG, &json, 0, 0, "one JSON object on stdout"},
      CLI_METHOD_ARGS(m),
  };
  const int nargs = (int)(sizeof args / sizeof args[0]);
  if (cli_args_parse("eval", argc, argv, args, nargs))
    return 2;
  if (!model) {
    fprintf(stderr, "aps eval: --model is required\n");
    cli_args_usage("eval", args, nargs);
    return 2;
  }
  if (strcmp(split, "test") && strcmp(split, "train")) {
    fprintf(stderr, "aps eval: --split '%s': expected test or train\n", split);
    return 2;
  }
  json |= o->json;
  aps_posterior *p = NULL;
  aps_dataset *ds = NULL;
  aps_eval_result r;
  aps_posterior_desc pd = {.model = model, .device = o->device, .max_batch = k < 64 ? k : 64, .quiet = json};
  if (cli_method_desc("eval", &m, op, &pd))
    return 2;
  aps_status s = aps_posterior_open(&pd, &p);
  const aps_posterior_info *in = s == APS_OK ? aps_posterior_get_info(p) : NULL;
  char op_text[APS_OP_SPEC_MAX] = "";
  if (s == APS_OK)
    s = cli_fashion_mnist_for(model, in, !strcmp(split, "train"), op, &ds, op_text);
  if (s == APS_OK) {
    n = n < aps_dataset_count(ds) ? n : (int)aps_dataset_count(ds);
    s = aps_evaluate(p, aps_dataset_data(ds), n,
                     &(aps_eval_desc){.spec = op, .k = k, .seed = (uint64_t)seed, .progress = json ? NULL : progress},
                     &r);
  }
  if (s == APS_OK && json) {
    printf("{");
    json_str("model", model);
    json_str("op", op_text);
    json_str("split", split);
    json_str("method", in->flow);
    json_num("temperature_damaged", in->temperature[0], "%g", 0);
    json_num("temperature_elsewhere", in->temperature[1], "%g", 0);
    printf("\"images\": %d, \"k\": %d, ", r.images, r.k);
    json_num("psnr_sample", r.psnr_sample, "%.3f", 0);
    json_num("psnr_mean", r.psnr_mean, "%.3f", 0);
    json_num("ssim_sample", r.ssim_sample, "%.4f", 0);
    json_num("ssim_mean", r.ssim_mean, "%.4f", 0);
    json_num("psnr_measurement", r.psnr_measurement, "%.3f", 0);
    json_num("ssim_measurement", r.ssim_measurement, "%.4f", 0);
    json_num("data_consistency", r.data_consistency, "%.4f", 0);
    json_num("coverage90", r.coverage90, "%.4f", 0);
    json_num("std_inside", r.std_inside, "%.4f", 0);
    json_num("std_outside", r.std_outside, "%.4f", 0);
    json_num("coverage90_inside", r.coverage90_inside, "%.4f", 0);
    json_num("coverage90_outside", r.coverage90_outside, "%.4f", 0);
    json_num("ms_per_sample", r.ms_per_sample, "%.4f", 0);
    json_str("device", in->device);
    printf("\"seed\": %d}\n", seed);
  } else if (s == APS_OK) {
    printf("%s (%s; temperature %g damaged, %g elsewhere) on Fashion-MNIST %s images 0-%d, operator %s, %d samples "
           "each (seed %d)\n", model, in->flow, in->temperature[0], in->temperature[1], split, r.images - 1, op_text,
           r.k, seed);
    printf("  PSNR  one sample %7.3f dB   mean of %d %7.3f dB   measurement %7.3f dB\n", r.psnr_sample, r.k,
           r.psnr_mean, r.psnr_measurement);
    printf("  SSIM  one sample %7.4f      mean of %d %7.4f      measurement %7.4f\n", r.ssim_sample, r.k, r.ssim_mean,
           r.ssim_measurement);
    printf("  data consistency ||y - A x|| / (sigma sqrt(m)) %.4f (1 fits as the truth does)\n", r.data_consistency);
    char in_text[32] = "none", out_text[32] = "none", cin_text[32] = "none", cout_text[32] = "none";
    if (isfinite(r.coverage90_inside))
      snprintf(cin_text, sizeof cin_text, "%.4f", r.coverage90_inside);
    if (isfinite(r.coverage90_outside))
      snprintf(cout_text, sizeof cout_text, "%.4f", r.coverage90_outside);
    printf("  90 %% interval coverage %.4f (damaged region %s, elsewhere %s)\n", r.coverage90, cin_text, cout_text);
    if (isfinite(r.std_inside))
      snprintf(in_text, sizeof in_text, "%.4f", r.std_inside);
    if (isfinite(r.std_outside))
      snprintf(out_text, sizeof out_text, "%.4f", r.std_outside);
    printf("  mean per-pixel std: damaged region %s, elsewhere %s\n", in_text, out_text);
    printf("  %.3f ms per sample on %s\n", r.ms_per_sample, in->device);
  }
  aps_dataset_free(ds);
  aps_posterior_close(p);
  if (s != APS_OK) {
    fprintf(stderr, "aps eval: %s\n", aps_last_error());
    return 1;
  }
  return 0;
}
