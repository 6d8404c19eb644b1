#include "../test.h"

#define CASES(X)                                                                                    \
  X(select_policy) X(bad_device_env) X(device_by_name) X(no_loader) X(caps) X(quirk_single_thread) X(suballoc)             \
  X(buffer_roundtrip) X(buffer_roundtrip_staging) X(alloc_too_large) X(reflect) X(spec_constants)   \
  X(chain_200) X(descriptor_sets) X(push_descriptors) X(independent_no_barrier) X(copy_hazard) X(replay) X(timestamps)  \
  X(bad_dispatch) X(pipeline_cache_child) X(pipeline_cache_hit) X(pipeline_cache_corrupt) X(gemm) X(f16_variant)

#define DECLARE(name) void test_##name(void);
CASES(DECLARE)
#define ENTRY(name) {#name, test_##name},
static const test_case cases[] = {CASES(ENTRY)};

int main(int argc, char **argv) { return test_main(argc, argv, cases, sizeof cases / sizeof *cases); }
