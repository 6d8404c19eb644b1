/* The suballocator, buffer round trips across blocks and staging, and allocation limits. */
#include <stdint.h>
#include <stdlib.h>

#include "../test.h"
#include "suballoc.h"

TEST_CASE(suballoc) {
  rt_suballoc a;
  CHECK(rt_suballoc_init(&a, 1 << 20) == 0, "init");
  enum { N = 200 };
  uint64_t off[N], size[N];
  unsigned seed = 1;
  int live = 0;
  for (int i = 0; i < N; i++) {
    seed = seed * 1103515245u + 12345u;
    size[i] = 1 + (seed >> 8) % 9000;
    uint64_t align = 1ull << ((seed >> 4) % 9);
    if (rt_suballoc_alloc(&a, size[i], align, &off[i])) {
      size[i] = 0;
      continue;
    }
    live++;
    CHECK(off[i] % align == 0, "offset %llu aligned to %llu", (unsigned long long)off[i], (unsigned long long)align);
    CHECK(off[i] + size[i] <= a.capacity, "inside the block");
    for (int j = 0; j < i; j++)
      if (size[j])
        CHECK(off[i] + size[i] <= off[j] || off[j] + size[j] <= off[i], "allocations %d and %d overlap", i, j);
  }
  CHECK(live > 100, "most allocations fit (%d)", live);
  uint64_t big;
  CHECK(rt_suballoc_alloc(&a, 1 << 20, 1, &big) != 0, "a full-size allocation cannot fit while others live");
  for (int i = 0; i < N; i += 2) /* free in two interleaved passes to exercise merging */
    if (size[i])
      rt_suballoc_free(&a, off[i], size[i]);
  for (int i = 1; i < N; i += 2)
    if (size[i])
      rt_suballoc_free(&a, off[i], size[i]);
  CHECK(a.used == 0, "all returned (%llu used)", (unsigned long long)a.used);
  CHECK(a.free_count == 1 && a.free[0].size == a.capacity, "free ranges merged back into one (%u)", a.free_count);
  CHECK(rt_suballoc_alloc(&a, 1 << 20, 1, &big) == 0 && big == 0, "the whole block is free again");
  rt_suballoc_release_all(&a);
}

static void fill_pattern(uint8_t *p, uint64_t n, uint32_t seed) {
  for (uint64_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (uint8_t)(seed >> 24);
  }
}

/* forced: the force_staging quirk is on. Buffers are staged then, and on any device
 * without unified memory (a discrete GPU). */
static void roundtrip(int forced) {
  rt_device *dev = test_device_open(&(rt_device_desc){.block_size = 8u << 20});
  if (!dev)
    return;
  int staging = forced || !rt_device_caps(dev)->unified_memory;
  static const uint64_t sizes[] = {1, 3, 255, 256, 4097, (1u << 20) + 7, 3u << 20, 5u << 20, 16u << 20, 64u << 20};
  enum { NS = sizeof sizes / sizeof sizes[0] };
  rt_buffer *bufs[NS] = {0};
  uint8_t *src = malloc(64u << 20), *dst = malloc(64u << 20);
  for (int i = 0; i < NS && src && dst; i++) {
    REQUIRE_OK(rt_buffer_create(dev, sizes[i], RT_MEMORY_DEVICE, &bufs[i]));
    CHECK((rt_buffer_map(bufs[i]) == NULL) == staging, "mapped iff unified memory and not forced to stage (size %llu)",
          (unsigned long long)sizes[i]);
    fill_pattern(src, sizes[i], (uint32_t)i + 7);
    memset(dst, 0, sizes[i]);
    REQUIRE_OK(rt_buffer_write(bufs[i], 0, src, sizes[i]));
    REQUIRE_OK(rt_buffer_read(bufs[i], 0, dst, sizes[i]));
    CHECK(memcmp(src, dst, sizes[i]) == 0, "round trip of %llu bytes", (unsigned long long)sizes[i]);
    if (sizes[i] > 10) { /* a partial read at an odd offset */
      REQUIRE_OK(rt_buffer_read(bufs[i], 3, dst, sizes[i] - 5));
      CHECK(memcmp(src + 3, dst, sizes[i] - 5) == 0, "partial read of %llu bytes", (unsigned long long)sizes[i]);
    }
  }
  /* Everything still holds what was written after later allocations filled new blocks. */
  for (int i = 0; i < NS && src && dst; i++) {
    fill_pattern(src, sizes[i], (uint32_t)i + 7);
    REQUIRE_OK(rt_buffer_read(bufs[i], 0, dst, sizes[i]));
    CHECK(memcmp(src, dst, sizes[i]) == 0, "buffer %d intact after other allocations", i);
  }
  rt_memory_stats st;
  rt_memory_get_stats(dev, &st);
  fprintf(stderr, "blocks %llu (%llu dedicated), %.1f MiB in blocks, %llu live buffers\n",
          (unsigned long long)st.blocks, (unsigned long long)st.dedicated, st.block_bytes / 1048576.0,
          (unsigned long long)st.live_buffers);
  CHECK(st.blocks >= 3 && st.dedicated >= 2, "allocations crossed blocks (%llu blocks, %llu dedicated)",
        (unsigned long long)st.blocks, (unsigned long long)st.dedicated);
  uint8_t byte = 0;
  CHECK(rt_buffer_read(bufs[0], 1, &byte, 1) == APS_ERR_INVALID_ARG, "a read past the end is refused");
  for (int i = 0; i < NS; i++)
    rt_buffer_destroy(bufs[i]);
  rt_memory_get_stats(dev, &st);
  CHECK(st.live_buffers == (uint64_t)staging && st.dedicated == (uint64_t)staging,
        "dedicated blocks freed with their buffers (only the staging buffer may remain)");
  free(src);
  free(dst);
  test_device_close(dev);
}

TEST_CASE(buffer_roundtrip) { roundtrip(0); }

TEST_CASE(buffer_roundtrip_staging) {
  setenv("APS_QUIRK_FORCE_STAGING", "1", 1);
  roundtrip(1);
}

TEST_CASE(alloc_too_large) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  const rt_caps *c = rt_device_caps(dev);
  rt_buffer *buf = NULL;
  aps_status s = rt_buffer_create(dev, c->max_memory_allocation_size + 1, RT_MEMORY_DEVICE, &buf);
  fprintf(stderr, "message: %s\n", aps_last_error());
  CHECK(s == APS_ERR_OUT_OF_MEMORY, "status %s", aps_status_name(s));
  CHECK(buf == NULL, "no buffer returned");
  CHECK(strstr(aps_last_error(), "maxMemoryAllocationSize") != NULL, "the message names the limit");
  s = rt_buffer_create(dev, 0, RT_MEMORY_DEVICE, &buf);
  CHECK(s == APS_ERR_INVALID_ARG, "a zero-size buffer is refused");
  /* The device keeps working after the failures. */
  REQUIRE_OK(rt_buffer_create(dev, 1024, RT_MEMORY_DEVICE, &buf));
  rt_buffer_destroy(buf);
  test_device_close(dev);
}
