/* Device enumeration, the selection policy, and device creation. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

static int type_rank(rt_device_type t) {
  switch (t) {
  case RT_DEVICE_DISCRETE_GPU: return 4;
  case RT_DEVICE_INTEGRATED_GPU: return 3;
  case RT_DEVICE_VIRTUAL_GPU: return 2;
  case RT_DEVICE_CPU: return 1;
  default: return 0;
  }
}

static int contains_nocase(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++) {
    size_t i = 0;
    while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
      i++;
    if (i == n)
      return 1;
  }
  return n == 0;
}

int rt_select_device(const rt_caps *caps, uint32_t n, const char *want) {
  if (want && *want) {
    char *end;
    long idx = strtol(want, &end, 10);
    if (*end == 0)
      return idx >= 0 && (uint32_t)idx < n ? (int)idx : -1;
    for (uint32_t i = 0; i < n; i++)
      if (contains_nocase(caps[i].name, want) || contains_nocase(caps[i].driver_name, want))
        return (int)i;
    return -1;
  }
  int best = -1;
  for (uint32_t i = 0; i < n; i++) {
    if (caps[i].api_version < VK_API_VERSION_1_2)
      continue;
    if (best < 0 || type_rank(caps[i].type) > type_rank(caps[best].type))
      best = (int)i;
  }
  return best;
}

static void describe_devices(const rt_device_list *list, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = 0;
  for (uint32_t i = 0; i < list->count && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%u: %s (%s)", i ? "; " : "", i, list->caps[i].name,
                     rt_device_type_name(list->caps[i].type));
    if (n < 0)
      break;
    used += (size_t)n;
  }
  if (list->count == 0)
    snprintf(buf, size, "none");
}

static aps_status list_devices(rt_instance *inst, rt_device_list *out, VkPhysicalDevice *handles) {
  uint32_t n = 0;
  RT_VK(vkEnumeratePhysicalDevices(inst->instance, &n, NULL));
  if (n > RT_MAX_DEVICES)
    n = RT_MAX_DEVICES;
  VkResult r = vkEnumeratePhysicalDevices(inst->instance, &n, handles);
  if (r != VK_SUCCESS && r != VK_INCOMPLETE)
    return rt_vk_fail(r, "vkEnumeratePhysicalDevices");
  out->count = n;
  for (uint32_t i = 0; i < n; i++) {
    rt_caps_probe(handles[i], &out->caps[i]);
    rt_caps_apply_quirks(&out->caps[i]);
    APS_TRY(rt_caps_apply_limits(&out->caps[i]));
  }
  return APS_OK;
}

/* Enumerates, chooses, and (for lavapipe in single-thread mode) recreates the instance
 * with LP_NUM_THREADS=0, which lavapipe reads when it enumerates its device. */
static aps_status open_and_choose(rt_instance *inst, unsigned *msgs, const char *want,
                                  rt_device_list *list, VkPhysicalDevice *handles) {
  APS_TRY(rt_instance_create(inst, msgs));
  aps_status s = list_devices(inst, list, handles);
  if (s != APS_OK) {
    rt_instance_destroy(inst);
    return s;
  }
  if (list->count == 0) {
    rt_instance_destroy(inst);
    return aps_fail(APS_ERR_NO_DEVICE,
                    "no Vulkan device found; install a driver (on Debian: apt-get install "
                    "mesa-vulkan-drivers for the CPU device lavapipe)");
  }
  if (!want || !*want)
    want = getenv("APS_DEVICE");
  int chosen = rt_select_device(list->caps, list->count, want);
  if (chosen < 0) {
    char names[2048];
    describe_devices(list, names, sizeof names);
    rt_instance_destroy(inst);
    if (want && *want)
      return aps_fail(APS_ERR_INVALID_ARG, "device '%s' (APS_DEVICE or --device) matches no device; available: %s",
                      want, names);
    return aps_fail(APS_ERR_NO_DEVICE, "no device supports Vulkan 1.2; found: %s", names);
  }
  list->chosen = (uint32_t)chosen;
  const rt_caps *c = &list->caps[chosen];
  if (c->api_version < VK_API_VERSION_1_2) {
    rt_instance_destroy(inst);
    return aps_fail(APS_ERR_NO_DEVICE, "device %d (%s) supports only Vulkan %u.%u; aps needs 1.2", chosen,
                    c->name, VK_API_VERSION_MAJOR(c->api_version), VK_API_VERSION_MINOR(c->api_version));
  }
  if (c->is_lavapipe && c->quirks[RT_QUIRK_LVP_SINGLE_THREAD] && !getenv("LP_NUM_THREADS")) {
    rt_instance_destroy(inst);
    setenv("LP_NUM_THREADS", "0", 1);
    return open_and_choose(inst, msgs, want, list, handles);
  }
  return APS_OK;
}

aps_status rt_enumerate(rt_device_list *out) {
  memset(out, 0, sizeof *out);
  rt_instance inst;
  VkPhysicalDevice handles[RT_MAX_DEVICES];
  APS_TRY(open_and_choose(&inst, NULL, NULL, out, handles));
  rt_instance_destroy(&inst);
  return APS_OK;
}

static aps_status create_logical(rt_device *dev) {
  uint32_t nq = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(dev->physical, &nq, NULL);
  VkQueueFamilyProperties q[16];
  if (nq > 16)
    nq = 16;
  vkGetPhysicalDeviceQueueFamilyProperties(dev->physical, &nq, q);
  dev->queue_family = UINT32_MAX;
  for (uint32_t i = 0; i < nq && dev->queue_family == UINT32_MAX; i++)
    if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
      dev->queue_family = i;
  if (dev->queue_family == UINT32_MAX)
    return aps_fail(APS_ERR_NO_DEVICE, "device %s has no compute queue", dev->caps.name);

  const rt_caps *c = &dev->caps;
  VkPhysicalDeviceSubgroupSizeControlFeatures sgc = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES,
      .subgroupSizeControl = c->subgroup_size_control,
      .computeFullSubgroups = c->subgroup_size_control,
  };
  VkPhysicalDeviceVulkan12Features f12 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
      .pNext = c->subgroup_size_control ? &sgc : NULL,
      .shaderFloat16 = (VkBool32)c->fp16_arithmetic,
      .shaderInt8 = (VkBool32)c->int8_arithmetic,
      .storageBuffer8BitAccess = (VkBool32)c->int8_storage,
  };
  VkPhysicalDeviceVulkan11Features f11 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
      .pNext = &f12,
      .storageBuffer16BitAccess = (VkBool32)c->fp16_storage,
  };
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
  /* Only ask for subgroup-size control features the device actually reports. */
  if (c->subgroup_size_control) {
    VkPhysicalDeviceSubgroupSizeControlFeatures have = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
    VkPhysicalDeviceFeatures2 probe = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &have};
    vkGetPhysicalDeviceFeatures2(dev->physical, &probe);
    sgc.subgroupSizeControl = have.subgroupSizeControl;
    sgc.computeFullSubgroups = have.computeFullSubgroups;
  }
  const char *exts[4];
  uint32_t n_ext = 0;
  if (c->push_descriptor)
    exts[n_ext++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
  if (c->pipeline_feedback)
    exts[n_ext++] = VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME;
  if (c->subgroup_size_control)
    exts[n_ext++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
  float priority = 1.0f;
  VkDeviceQueueCreateInfo qi = {
      .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
      .queueFamilyIndex = dev->queue_family,
      .queueCount = 1,
      .pQueuePriorities = &priority,
  };
  VkDeviceCreateInfo info = {
      .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
      .pNext = &f2,
      .queueCreateInfoCount = 1,
      .pQueueCreateInfos = &qi,
      .enabledExtensionCount = n_ext,
      .ppEnabledExtensionNames = exts,
  };
  RT_VK(vkCreateDevice(dev->physical, &info, NULL, &dev->device));
  volkLoadDevice(dev->device);
  vkGetDeviceQueue(dev->device, dev->queue_family, 0, &dev->queue);
  vkGetPhysicalDeviceMemoryProperties(dev->physical, &dev->memory_props);
  return APS_OK;
}

aps_status rt_device_create(const rt_device_desc *desc, rt_device **out) {
  static const rt_device_desc defaults = {0};
  if (!desc)
    desc = &defaults;
  *out = NULL;
  rt_device *dev = calloc(1, sizeof *dev);
  if (!dev)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory creating a device");
  rt_device_list *list = calloc(1, sizeof *list);
  VkPhysicalDevice handles[RT_MAX_DEVICES];
  aps_status s = list ? open_and_choose(&dev->inst, &dev->validation_messages, desc->device, list, handles)
                      : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory listing devices");
  if (s != APS_OK) {
    free(list);
    free(dev);
    return s;
  }
  dev->physical = handles[list->chosen];
  dev->caps = list->caps[list->chosen];
  if (!desc->quiet)
    fprintf(stderr, "aps: running on device %u: %s (%s, %s)%s\n", list->chosen, dev->caps.name,
            rt_device_type_name(dev->caps.type), dev->caps.driver_info,
            dev->inst.validate ? " with validation" : "");
  free(list);
  dev->block_size = desc->block_size;
  if ((s = create_logical(dev)) != APS_OK || (s = rt_memory_init(dev)) != APS_OK ||
      (s = rt_transfer_init(dev)) != APS_OK) {
    rt_device_destroy(dev);
    return s;
  }
  rt_pipeline_cache_open(dev);
  *out = dev;
  return APS_OK;
}

void rt_device_destroy(rt_device *dev) {
  if (!dev)
    return;
  if (dev->device) {
    vkDeviceWaitIdle(dev->device);
    rt_pipeline_cache_close(dev);
    rt_kernels_destroy(dev);
    rt_transfer_shutdown(dev);
    rt_memory_shutdown(dev);
    vkDestroyDevice(dev->device, NULL);
  }
  rt_instance_destroy(&dev->inst);
  free(dev);
}

const rt_caps *rt_device_caps(const rt_device *dev) { return &dev->caps; }

unsigned rt_device_validation_messages(const rt_device *dev) { return dev->validation_messages; }
