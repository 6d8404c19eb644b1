/* test_app: the method library (app/aps). One ctest test per case (app.<case>).
 * To add a file's cases: define its list below as NAME_CASES(X), add it to CASES, and in
 * tests/CMakeLists.txt add the file with target_sources(test_app ...) and its case names
 * with list(APPEND app_cases ...). */
#include "../test.h"

/* test_dataset.c: IDX and PNG-folder readers, batches, PNG grids. */
#define DATASET_CASES(X)                                                                                  \
  X(dataset_fashion_mnist) X(dataset_idx) X(dataset_idx_errors) X(dataset_png_dir) X(dataset_png_errors) \
  X(dataset_batch) X(image_grid) X(image_grid_errors)

/* test_prior.c: the VP-SDE, the ELBO, training, checkpoints, reloads. */
#define PRIOR_CASES(X)                                                                               \
  X(sde_schedule) X(importance_density) X(elbo_gaussian) X(prior_train) X(prior_resume) X(prior_reload) \
  X(prior_config_errors) X(elbo_input_grad) X(prior_nan_loss)

/* test_flow.c: flow layers and architectures invert, log-dets, ActNorm init, configs, files. */
#define FLOW_CASES(X) X(flow_layers_roundtrip) X(flow_glow_roundtrip) X(flow_realnvp_roundtrip) X(flow_logdet_jacobian) \
  X(flow_actnorm_init) X(flow_config) X(flow_reload) X(flow_gaussian_random_a) X(flow_gaussian_blur_a)     \
  X(flow_distill_glow)

#define CASES(X) DATASET_CASES(X) PRIOR_CASES(X) FLOW_CASES(X)

#define DECLARE(name) void test_##name(void);
CASES(DECLARE)
#define ENTRY(name) {#name, test_##name},
static const test_case cases[] = {CASES(ENTRY)};

int main(int argc, char **argv) { return test_main(argc, argv, cases, sizeof cases / sizeof *cases); }
