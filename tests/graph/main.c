#include "../test.h"

void graph_tests_open(void);
void graph_tests_close(void);

#define CASES(X)                                                                                       \
  X(unary) X(binary) X(where) X(reduce) X(matmul) X(group_norm) X(softmax) X(layout_ops) X(resample)   \
  X(time_embed) X(attention) X(conv2d) X(shape_errors) X(fusion_chains) X(fusion_counts) X(fusion_group_norm) X(fusion_concat) X(fusion_upsample) X(fusion_skip_conv) X(memory_plan) X(unet) X(grad_elementwise) X(grad_reductions) X(grad_layout) X(grad_mlp) X(grad_matmul) X(grad_conv2d_reflect) X(grad_conv2d) X(grad_group_norm) X(grad_attention) X(grad_unet) X(adam_formula) X(schedule) X(train_convnet) \
  X(cpu_device_ops) X(cpu_device_reduce) X(cpu_device_matmul) X(cpu_device_norms) X(cpu_device_layout) \
  X(cpu_device_conv2d) X(cpu_device_unet) X(cpu_device_errors) \
  X(pad) X(pixel_shuffle) X(gather) X(random) X(linalg) X(builder_errors) X(flip) X(grad_flip) \
  X(wgrad) X(wgrad_reference) X(cpu_device_wgrad) X(wgrad_errors) X(grad_conv2d_wgrad) \
  X(grad_piecewise_unary) X(grad_max_min) X(grad_where) X(grad_reduce_max) X(grad_bilinear) X(grad_pad) \
  X(grad_pixel_shuffle) X(grad_gather) X(grad_random) X(grad_linalg) X(grad_assign_unsupported) \
  X(cpu_device_train_plan) \
  X(f16_elementwise) X(f16_reduce) X(f16_matmul) X(f16_conv2d) X(f16_norms) X(f16_layout) X(f16_attention) \
  X(f16_fusion) X(f16_storage) X(f16_unet) X(f16_grad_unet) X(f16_unsupported)

#define DECLARE(name) void test_##name(void);
CASES(DECLARE)
#define ENTRY(name) {#name, test_##name},
static const test_case cases[] = {CASES(ENTRY)};

int main(int argc, char **argv) {
  graph_tests_open();
  int r = test_main(argc, argv, cases, sizeof cases / sizeof *cases);
  graph_tests_close();
  return r || test_failures;
}
