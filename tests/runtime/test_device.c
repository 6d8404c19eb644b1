/* Device enumeration, selection, capabilities, and the errors when there is no device. */
#include <stdlib.h>

#include "../test.h"

TEST_CASE(select_policy) {
  rt_caps c[3] = {0};
  const char *names[3] = {"llvmpipe (LLVM 19.1.7, 256 bits)", "Intel(R) Iris Xe", "NVIDIA H100"};
  const rt_device_type types[3] = {RT_DEVICE_CPU, RT_DEVICE_INTEGRATED_GPU, RT_DEVICE_DISCRETE_GPU};
  for (int i = 0; i < 3; i++) {
    snprintf(c[i].name, sizeof c[i].name, "%s", names[i]);
    c[i].type = types[i];
    c[i].api_version = (1u << 22) | (3u << 12);
  }
  CHECK(rt_select_device(c, 3, NULL) == 2, "discrete GPU must win");
  CHECK(rt_select_device(c, 2, NULL) == 1, "integrated GPU must beat the CPU device");
  CHECK(rt_select_device(c, 1, NULL) == 0, "the CPU device is used when it is all there is");
  CHECK(rt_select_device(c, 3, "0") == 0, "index selects");
  CHECK(rt_select_device(c, 3, "iris") == 1, "case-insensitive name substring selects");
  CHECK(rt_select_device(c, 3, "LLVMPIPE") == 0, "name substring selects the CPU device");
  CHECK(rt_select_device(c, 3, "99") == -1, "out-of-range index matches nothing");
  CHECK(rt_select_device(c, 3, "radeon") == -1, "unknown name matches nothing");
  c[2].api_version = (1u << 22) | (1u << 12);
  CHECK(rt_select_device(c, 3, NULL) == 1, "a Vulkan 1.1 device is never chosen by the policy");
}

TEST_CASE(bad_device_env) {
  setenv("APS_DEVICE", "99", 1);
  rt_device *dev = NULL;
  aps_status s = rt_device_create(&(rt_device_desc){.quiet = 1}, &dev);
  const char *msg = aps_last_error();
  fprintf(stderr, "message: %s\n", msg);
  CHECK(s == APS_ERR_INVALID_ARG, "status %s", aps_status_name(s));
  CHECK(dev == NULL, "no device returned");
  CHECK(strstr(msg, "'99'") != NULL, "the message names the bad value");
  CHECK(strstr(msg, "available: 0: ") != NULL, "the message lists the devices");
  rt_device_list list;
  unsetenv("APS_DEVICE");
  REQUIRE_OK(rt_enumerate(&list));
  CHECK(strstr(msg, list.caps[0].name) != NULL, "the message names device 0 (%s)", list.caps[0].name);
}

TEST_CASE(device_by_name) {
  rt_device_list list;
  REQUIRE_OK(rt_enumerate(&list));
  char want[32];
  snprintf(want, sizeof want, "%.8s", list.caps[list.count - 1].name);
  rt_device *dev = test_device_open(&(rt_device_desc){.device = want});
  if (!dev)
    return;
  CHECK(strncmp(rt_device_caps(dev)->name, want, strlen(want)) == 0, "chose %s for '%s'", rt_device_caps(dev)->name,
        want);
  test_device_close(dev);
}

TEST_CASE(no_loader) {
  setenv("APS_VULKAN_LIBRARY", "/nonexistent/libvulkan.so.1", 1);
  rt_device *dev = NULL;
  aps_status s = rt_device_create(&(rt_device_desc){.quiet = 1}, &dev);
  fprintf(stderr, "message: %s\n", aps_last_error());
  CHECK(s == APS_ERR_NO_LOADER, "status %s", aps_status_name(s));
  CHECK(strstr(aps_last_error(), "/nonexistent/libvulkan.so.1") != NULL, "names the library");
  CHECK(strstr(aps_last_error(), "apt-get install") != NULL, "says how to fix it");
}

TEST_CASE(caps) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  const rt_caps *c = rt_device_caps(dev);
  fprintf(stderr, "%s: subgroup %u (%u-%u), storage range %llu, alloc %llu, shared %u, fp16 %d/%d, int8 %d/%d, "
                  "unified %d, push desc %d, ts %.2f ns\n",
          c->name, c->subgroup_size, c->min_subgroup_size, c->max_subgroup_size,
          (unsigned long long)c->max_storage_buffer_range, (unsigned long long)c->max_memory_allocation_size,
          c->max_shared_memory, c->fp16_storage, c->fp16_arithmetic, c->int8_storage, c->int8_arithmetic,
          c->unified_memory, c->push_descriptor, c->timestamp_period_ns);
  CHECK(c->subgroup_size >= 1 && c->min_subgroup_size <= c->subgroup_size && c->subgroup_size <= c->max_subgroup_size,
        "subgroup sizes %u in %u-%u", c->subgroup_size, c->min_subgroup_size, c->max_subgroup_size);
  CHECK(c->max_storage_buffer_range >= (1u << 27) - 1 || c->type != RT_DEVICE_CPU, "storage range");
  CHECK(c->max_memory_allocation_size > 0, "maxMemoryAllocationSize probed");
  CHECK(c->max_workgroup_invocations >= 128, "Vulkan guarantees 128 invocations");
  CHECK(c->max_push_constants_size >= 128, "Vulkan guarantees 128 bytes of push constants");
  CHECK(c->timestamp_period_ns > 0, "timestamp period");
  CHECK(c->api_version >= (1u << 22 | 2u << 12), "Vulkan 1.2");
  CHECK(c->driver_name[0] != 0, "driver name");
  if (c->is_lavapipe)
    CHECK(c->unified_memory && c->type == RT_DEVICE_CPU, "lavapipe is a CPU device with unified memory");
  test_device_close(dev);
}

/* APS_QUIRK_LVP_SINGLE_THREAD=1 makes lavapipe run without worker threads. */
TEST_CASE(quirk_single_thread) {
  setenv("APS_QUIRK_LVP_SINGLE_THREAD", "1", 1);
  unsetenv("LP_NUM_THREADS");
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  const rt_caps *c = rt_device_caps(dev);
  if (c->is_lavapipe) {
    const char *v = getenv("LP_NUM_THREADS");
    CHECK(c->quirks[RT_QUIRK_LVP_SINGLE_THREAD] == 1, "quirk set from the environment");
    CHECK(v && !strcmp(v, "0"), "LP_NUM_THREADS=0 before lavapipe was enumerated (%s)", v ? v : "unset");
  } else {
    CHECK(c->quirks[RT_QUIRK_LVP_SINGLE_THREAD] == 0, "a lavapipe quirk never applies to another driver");
  }
  test_device_close(dev);
}

/* APS_LIMITS=vulkan-min: the caps are clamped to Vulkan 1.1's required minimums (never
 * raised), and an unknown profile is refused by name. */
TEST_CASE(limits_profile) {
  const char *was = getenv("APS_LIMITS");
  char saved[64] = "";
  if (was)
    snprintf(saved, sizeof saved, "%s", was);
  unsetenv("APS_LIMITS");
  rt_device_list own;
  REQUIRE_OK(rt_enumerate(&own));
  const rt_caps *d = &own.caps[own.chosen];
  CHECK(!strcmp(d->limits, "device"), "default profile 'device' (%s)", d->limits);
  CHECK(d->max_storage_buffers >= 4, "maxPerStageDescriptorStorageBuffers probed (%u)", d->max_storage_buffers);
  setenv("APS_LIMITS", "vulkan-min", 1);
  rt_device *dev = test_device_open(NULL);
  if (dev) {
    const rt_caps *c = rt_device_caps(dev);
    CHECK(!strcmp(c->limits, "vulkan-min"), "profile named (%s)", c->limits);
#define MIN_OF(field, min) ((d->field) < (min) ? (d->field) : (min))
    CHECK(c->max_shared_memory == MIN_OF(max_shared_memory, 16384u), "shared memory %u", c->max_shared_memory);
    CHECK(c->max_workgroup_invocations == MIN_OF(max_workgroup_invocations, 128u), "invocations %u",
          c->max_workgroup_invocations);
    CHECK(c->max_workgroup_size[0] == MIN_OF(max_workgroup_size[0], 128u) &&
              c->max_workgroup_size[1] == MIN_OF(max_workgroup_size[1], 128u) &&
              c->max_workgroup_size[2] == MIN_OF(max_workgroup_size[2], 64u),
          "workgroup size (%u, %u, %u)", c->max_workgroup_size[0], c->max_workgroup_size[1], c->max_workgroup_size[2]);
    CHECK(c->max_push_constants_size == MIN_OF(max_push_constants_size, 128u), "push constants %u",
          c->max_push_constants_size);
    CHECK(c->max_storage_buffers == MIN_OF(max_storage_buffers, 4u), "storage buffers %u", c->max_storage_buffers);
    CHECK(c->max_storage_buffer_range == MIN_OF(max_storage_buffer_range, (uint64_t)1 << 27), "range %llu",
          (unsigned long long)c->max_storage_buffer_range);
#undef MIN_OF
    CHECK(!c->fp16_storage && !c->fp16_arithmetic && !c->int8_storage && !c->int8_arithmetic, "no fp16 or int8");
    CHECK(!c->coopmat && c->coopmat_shape_count == 0, "no cooperative matrices");
    test_device_close(dev);
  }
  setenv("APS_LIMITS", "vulkan-tiny", 1);
  rt_device *bad = NULL;
  aps_status s = rt_device_create(&(rt_device_desc){.quiet = 1}, &bad);
  fprintf(stderr, "message: %s\n", aps_last_error());
  CHECK(s == APS_ERR_INVALID_ARG && !bad, "unknown profile refused (%s)", aps_status_name(s));
  CHECK(strstr(aps_last_error(), "'vulkan-tiny'") != NULL, "the message names the value");
  if (saved[0])
    setenv("APS_LIMITS", saved, 1);
  else
    unsetenv("APS_LIMITS");
}
