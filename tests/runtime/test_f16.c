/* fp16-storage kernel variants (rt_kernel_desc.f16_mask): the mask picks <name>_f16 and,
 * per binding, halves or floats; bindings must agree with it; shaders without a variant and
 * devices without 16-bit storage are refused by name. */
#include <string.h>

#include "../test.h"

/* copy_strided.comp: a 1-D copy of n values. */
typedef struct copy_push {
  uint32_t dims[4], src[4], dst[4], src_offset, dst_offset, count;
} copy_push;

static aps_status copy(rt_device *dev, rt_stream *s, uint32_t mask, rt_buffer *src, rt_buffer *dst, uint32_t n) {
  rt_kernel *k;
  APS_TRY(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "copy_strided", .f16_mask = mask}, &k));
  copy_push pc = {{1, 1, 1, n}, {0, 0, 0, 1}, {0, 0, 0, 1}, 0, 0, n};
  rt_dispatch d = {.kernel = k, .push = &pc, .groups = {1},
                   .bindings = {{src, 0, n * (mask & 1 ? 2u : 4u), mask & 1}, {dst, 0, n * (mask & 2 ? 2u : 4u), mask >> 1}}};
  APS_TRY(rt_stream_begin(s));
  APS_TRY(rt_stream_dispatch(s, &d));
  APS_TRY(rt_stream_end(s));
  return rt_stream_run(s);
}

TEST_CASE(f16_variant) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  rt_kernel *k;
  CHECK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "rt_noop", .f16_mask = 1}, &k) == APS_ERR_UNSUPPORTED &&
            strstr(aps_last_error(), "no fp16-storage variant"),
        "a shader without storage.glsl has no fp16 variant: %s", aps_last_error());
  if (!rt_device_caps(dev)->fp16_storage) {
    CHECK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "copy_strided", .f16_mask = 1}, &k) == APS_ERR_UNSUPPORTED,
          "no 16-bit storage on this device: refused");
    test_device_close(dev);
    return;
  }
  enum { N = 6 };
  rt_buffer *h, *f;
  REQUIRE_OK(rt_buffer_create(dev, 256, RT_MEMORY_DEVICE, &h));
  REQUIRE_OK(rt_buffer_create(dev, 256, RT_MEMORY_DEVICE, &f));
  rt_stream *s;
  REQUIRE_OK(rt_stream_create(dev, NULL, &s));
  /* halves -> floats: 1, -2.5, 65504, 2^-14 (smallest normal), 0.0999755859375, inf */
  const uint16_t halves[N] = {0x3C00, 0xC100, 0x7BFF, 0x0400, 0x2E66, 0x7C00};
  const float floats[N] = {1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 0.0999755859375f, 1.0f / 0.0f};
  REQUIRE_OK(rt_buffer_write(h, 0, halves, sizeof halves));
  REQUIRE_OK(copy(dev, s, 1, h, f, N));
  float got[N];
  REQUIRE_OK(rt_buffer_read(f, 0, got, sizeof got));
  for (int i = 0; i < N; i++)
    CHECK(got[i] == floats[i], "half 0x%04x read as %.9g, not %.9g", halves[i], got[i], floats[i]);
  /* floats -> halves: 2049 and 0.1 are not halves; nearest-even and toward-zero agree on them */
  const float in[N] = {1.0f, -2.5f, 2049.0f, 6.103515625e-05f, 0.1f, -1.0f / 0.0f};
  const uint16_t want[N] = {0x3C00, 0xC100, 0x6800, 0x0400, 0x2E66, 0xFC00};
  REQUIRE_OK(rt_buffer_write(f, 0, in, sizeof in));
  REQUIRE_OK(copy(dev, s, 2, f, h, N));
  uint16_t back[N];
  REQUIRE_OK(rt_buffer_read(h, 0, back, sizeof back));
  for (int i = 0; i < N; i++)
    CHECK(back[i] == want[i], "%.9g stored as 0x%04x, not 0x%04x", in[i], back[i], want[i]);
  /* halves -> halves */
  REQUIRE_OK(rt_buffer_write(f, 0, halves, sizeof halves));
  REQUIRE_OK(copy(dev, s, 3, f, h, N));
  REQUIRE_OK(rt_buffer_read(h, 0, back, sizeof back));
  CHECK(!memcmp(back, halves, sizeof back), "halves copied as halves");
  /* A binding that holds halves where the kernel expects floats is refused. */
  REQUIRE_OK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "copy_strided", .f16_mask = 1}, &k));
  copy_push pc = {{1, 1, 1, N}, {0, 0, 0, 1}, {0, 0, 0, 1}, 0, 0, N};
  REQUIRE_OK(rt_stream_begin(s));
  aps_status st = rt_stream_dispatch(
      s, &(rt_dispatch){.kernel = k, .push = &pc, .bindings = {{h, 0, 2 * N, 1}, {f, 0, 4 * N, 1}}});
  CHECK(st == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "binding 1 holds IEEE halves"),
        "a mismatched binding is named: %s", aps_last_error());
  REQUIRE_OK(rt_stream_end(s));
  rt_stream_destroy(s);
  rt_buffer_destroy(h);
  rt_buffer_destroy(f);
  test_device_close(dev);
}
