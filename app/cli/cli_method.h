/* The sampling method, shared by `aps sample`, `aps eval` and `aps calibrate`: a distilled
 * flow (the default) or DPS from the diffusion prior (docs/METHOD.md §7) through the same
 * posterior API, and the images the last two measure it on. */
#ifndef APS_CLI_METHOD_H
#define APS_CLI_METHOD_H
#include "aps.h"
#include "cli_args.h"
#include "dataset.h"

typedef struct cli_method {
  const char *method, *rule;
  int steps;
  float zeta, eta;
  const char *temperature; /* flow: "T" or "T_DAMAGED,T_ELSEWHERE"; NULL: the model's */
} cli_method;

#define CLI_METHOD_DEFAULT {.method = "flow", .rule = "em", .eta = 1.0f}
#define CLI_METHOD_ARGS(m)                                                                                        \
  {"--method", CLI_STRING, &(m).method, 0, 0, "flow (default), or dps: --model is then the prior and --op the family"}, \
      {"--steps", CLI_INT, &(m).steps, 1, 100000, "dps: steps (1000)"},                                           \
      {"--zeta", CLI_FLOAT, &(m).zeta, 1e-6, 1e4, "dps: guidance step size (min(250 / steps, 2.5))"},             \
      {"--rule", CLI_STRING, &(m).rule, 0, 0, "dps: em (default) or ddim"},                                       \
      {"--eta", CLI_FLOAT, &(m).eta, 0, 1, "dps: ddim's eta, 0 deterministic to 1 ancestral (1)"},                \
      {"--temperature", CLI_STRING, &(m).temperature, 0, 0,                                                         \
       "flow: the latent's scale T, or T_DAMAGED,T_ELSEWHERE (the model's: 1 unless aps calibrate set them)"}

/* Sets d's method fields from m and the family op; 0, or prints what is wrong and returns 2. */
int cli_method_desc(const char *command, const cli_method *m, const char *op, aps_posterior_desc *d);
/* Fashion-MNIST's training (train) or test split into *ds, refused unless its images have the
 * model's size (in: the opened posterior's info), and the canonical text of the operator
 * family op (NULL: the model's) into family. */
aps_status cli_fashion_mnist_for(const char *model, const aps_posterior_info *in, int train, const char *op,
                                 aps_dataset **ds, char family[APS_OP_SPEC_MAX]);
#endif
