/* Probes a physical device once into rt_caps, and derives the quirk flags. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

/* VK_KHR_cooperative_matrix is newer than Debian 12's Vulkan headers (1.3.239); these are
 * its published structure and enum values. */
#define RT_KHR_COOPMAT_NAME "VK_KHR_cooperative_matrix"
#define RT_STYPE_COOPMAT_PROPERTIES_KHR ((VkStructureType)1000506001)
typedef struct rt_vk_coopmat_props {
  VkStructureType sType;
  void *pNext;
  uint32_t MSize, NSize, KSize;
  uint32_t AType, BType, CType, ResultType;
  VkBool32 saturatingAccumulation;
  uint32_t scope;
} rt_vk_coopmat_props;
typedef VkResult(VKAPI_PTR *rt_pfn_coopmat_props)(VkPhysicalDevice, uint32_t *, rt_vk_coopmat_props *);

const char *rt_device_type_name(rt_device_type t) {
  switch (t) {
  case RT_DEVICE_CPU: return "CPU";
  case RT_DEVICE_VIRTUAL_GPU: return "virtual GPU";
  case RT_DEVICE_INTEGRATED_GPU: return "integrated GPU";
  case RT_DEVICE_DISCRETE_GPU: return "discrete GPU";
  default: return "other";
  }
}

const char *rt_quirk_name(rt_quirk q) {
  static const char *const names[] = {
      [RT_QUIRK_LVP_SINGLE_THREAD] = "lvp_single_thread",
      [RT_QUIRK_NO_PUSH_DESCRIPTOR] = "no_push_descriptor",
      [RT_QUIRK_FORCE_STAGING] = "force_staging",
      [RT_QUIRK_NO_FP16_STORAGE] = "no_fp16_storage",
  };
  _Static_assert(sizeof(names) / sizeof(names[0]) == RT_QUIRK_COUNT, "a quirk has no name");
  return (unsigned)q < RT_QUIRK_COUNT ? names[q] : "unknown";
}

static int has_device_extension(VkPhysicalDevice pd, const char *name) {
  uint32_t n = 0;
  if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS)
    return 0;
  VkExtensionProperties *props = calloc(n ? n : 1, sizeof *props);
  int found = 0;
  if (props && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, props) == VK_SUCCESS)
    for (uint32_t i = 0; i < n; i++)
      found |= strcmp(props[i].extensionName, name) == 0;
  free(props);
  return found;
}

static rt_device_type map_type(VkPhysicalDeviceType t) {
  switch (t) {
  case VK_PHYSICAL_DEVICE_TYPE_CPU: return RT_DEVICE_CPU;
  case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return RT_DEVICE_VIRTUAL_GPU;
  case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return RT_DEVICE_INTEGRATED_GPU;
  case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return RT_DEVICE_DISCRETE_GPU;
  default: return RT_DEVICE_OTHER;
  }
}

static void probe_coopmat(VkPhysicalDevice pd, rt_caps *c) {
  if (!has_device_extension(pd, RT_KHR_COOPMAT_NAME))
    return;
  rt_pfn_coopmat_props get = (rt_pfn_coopmat_props)vkGetInstanceProcAddr(
      volkGetLoadedInstance(), "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
  if (!get)
    return;
  uint32_t n = 0;
  if (get(pd, &n, NULL) != VK_SUCCESS)
    return;
  rt_vk_coopmat_props props[64];
  if (n > 64)
    n = 64;
  for (uint32_t i = 0; i < n; i++)
    props[i] = (rt_vk_coopmat_props){.sType = RT_STYPE_COOPMAT_PROPERTIES_KHR};
  if (get(pd, &n, props) != VK_SUCCESS && n == 0)
    return;
  c->coopmat = 1;
  for (uint32_t i = 0; i < n && c->coopmat_shape_count < RT_MAX_COOPMAT_SHAPES; i++)
    c->coopmat_shapes[c->coopmat_shape_count++] = (rt_coopmat_shape){
        props[i].MSize, props[i].NSize, props[i].KSize, props[i].AType,
        props[i].BType, props[i].CType, props[i].ResultType, props[i].scope};
}

static void probe_memory(VkPhysicalDevice pd, rt_caps *c) {
  VkPhysicalDeviceMemoryProperties mp;
  vkGetPhysicalDeviceMemoryProperties(pd, &mp);
  int local_mappable = 0;
  for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
    if ((mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
        mp.memoryHeaps[i].size > c->device_local_heap_size)
      c->device_local_heap_size = mp.memoryHeaps[i].size;
  for (uint32_t i = 0; i < mp.memoryTypeCount; i++) {
    VkMemoryPropertyFlags f = mp.memoryTypes[i].propertyFlags;
    const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT |
                                       VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                       VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    /* Only the heap that holds all device memory counts, not a small BAR window. */
    if ((f & want) == want && mp.memoryHeaps[mp.memoryTypes[i].heapIndex].size == c->device_local_heap_size)
      local_mappable = 1;
  }
  c->unified_memory = local_mappable && (c->type == RT_DEVICE_INTEGRATED_GPU || c->type == RT_DEVICE_CPU);
}

void rt_caps_probe(VkPhysicalDevice pd, rt_caps *c) {
  memset(c, 0, sizeof *c);
  VkPhysicalDeviceProperties base;
  vkGetPhysicalDeviceProperties(pd, &base);
  c->api_version = base.apiVersion;
  c->vendor_id = base.vendorID;
  c->device_id = base.deviceID;
  c->driver_version = base.driverVersion;
  c->type = map_type(base.deviceType);
  snprintf(c->name, sizeof c->name, "%s", base.deviceName);
  memcpy(c->pipeline_cache_uuid, base.pipelineCacheUUID, 16);
  const VkPhysicalDeviceLimits *l = &base.limits;
  c->max_storage_buffer_range = l->maxStorageBufferRange;
  c->min_storage_buffer_offset_alignment = l->minStorageBufferOffsetAlignment;
  c->max_shared_memory = l->maxComputeSharedMemorySize;
  c->max_workgroup_invocations = l->maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; i++) {
    c->max_workgroup_size[i] = l->maxComputeWorkGroupSize[i];
    c->max_workgroup_count[i] = l->maxComputeWorkGroupCount[i];
  }
  c->max_push_constants_size = l->maxPushConstantsSize;
  c->max_storage_buffers = l->maxPerStageDescriptorStorageBuffers;
  snprintf(c->limits, sizeof c->limits, "device");
  c->timestamp_period_ns = l->timestampPeriod;
  probe_memory(pd, c);
  if (base.apiVersion < VK_API_VERSION_1_2)
    return; /* listed, but rt_enumerate marks it unusable */

  VkPhysicalDeviceSubgroupSizeControlProperties sgc = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
  VkPhysicalDeviceVulkan12Properties p12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES};
  VkPhysicalDeviceVulkan11Properties p11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES,
                                            .pNext = &p12};
  /* By extension, not core 1.3: the instance asks for Vulkan 1.2. */
  c->subgroup_size_control = has_device_extension(pd, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
  if (c->subgroup_size_control)
    p12.pNext = &sgc;
  VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &p11};
  vkGetPhysicalDeviceProperties2(pd, &p2);
  c->max_memory_allocation_size = p11.maxMemoryAllocationSize;
  c->subgroup_size = p11.subgroupSize;
  c->subgroup_ops = (p11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ? p11.subgroupSupportedOperations : 0;
  c->min_subgroup_size = c->subgroup_size_control ? sgc.minSubgroupSize : p11.subgroupSize;
  c->max_subgroup_size = c->subgroup_size_control ? sgc.maxSubgroupSize : p11.subgroupSize;
  c->driver_id = p12.driverID;
  snprintf(c->driver_name, sizeof c->driver_name, "%s", p12.driverName);
  snprintf(c->driver_info, sizeof c->driver_info, "%s", p12.driverInfo);
  c->is_lavapipe = p12.driverID == VK_DRIVER_ID_MESA_LLVMPIPE;

  VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                          .pNext = &f12};
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
  vkGetPhysicalDeviceFeatures2(pd, &f2);
  c->fp16_storage = f11.storageBuffer16BitAccess;
  c->fp16_arithmetic = f12.shaderFloat16;
  c->int8_storage = f12.storageBuffer8BitAccess;
  c->int8_arithmetic = f12.shaderInt8;
  c->push_descriptor = has_device_extension(pd, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
  c->pipeline_feedback = has_device_extension(pd, VK_EXT_PIPELINE_CREATION_FEEDBACK_EXTENSION_NAME);
  probe_coopmat(pd, c);

  uint32_t nq = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
  VkQueueFamilyProperties q[16];
  if (nq > 16)
    nq = 16;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, q);
  for (uint32_t i = 0; i < nq; i++)
    if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
      c->timestamp_valid_bits = q[i].timestampValidBits;
      break;
    }
}

/* Defaults per driver, then APS_QUIRK_<NAME> overrides. */
void rt_caps_apply_quirks(rt_caps *c) {
  /* lavapipe: measured default (docs/LAVAPIPE.md, the quirks): worker threads are kept,
   * since the big kernels that dominate training lose 15-40% without them. */
  c->quirks[RT_QUIRK_LVP_SINGLE_THREAD] = 0;
  /* lavapipe (Mesa 25.0): replaying a vkCmdPushDescriptorSetKHR costs ~40-50 us per dispatch
   * against ~1-15 us for a bound descriptor set (aps bench runtime), so sets are used there. */
  c->quirks[RT_QUIRK_NO_PUSH_DESCRIPTOR] = !c->push_descriptor || c->is_lavapipe;
  c->quirks[RT_QUIRK_FORCE_STAGING] = 0;
  c->quirks[RT_QUIRK_NO_FP16_STORAGE] = 0;
  for (int q = 0; q < RT_QUIRK_COUNT; q++) {
    char env[64] = "APS_QUIRK_";
    size_t n = strlen(env);
    for (const char *p = rt_quirk_name((rt_quirk)q); *p && n + 1 < sizeof env; p++)
      env[n++] = (char)toupper((unsigned char)*p);
    env[n] = 0;
    c->quirks[q] = rt_env_flag(env, c->quirks[q]);
  }
  if (!c->is_lavapipe)
    c->quirks[RT_QUIRK_LVP_SINGLE_THREAD] = 0;
  if (c->quirks[RT_QUIRK_NO_PUSH_DESCRIPTOR])
    c->push_descriptor = 0;
  if (c->quirks[RT_QUIRK_FORCE_STAGING])
    c->unified_memory = 0;
  if (c->quirks[RT_QUIRK_NO_FP16_STORAGE])
    c->fp16_storage = 0;
}

static void clamp32(uint32_t *v, uint32_t max) {
  if (*v > max)
    *v = max;
}

/* APS_LIMITS=vulkan-min: the Vulkan 1.1 spec's required minimums (Table "Required Limits"),
 * so that kernel choice and plans can be exercised on lavapipe as on the smallest conformant
 * GPU. Only ever lowers a limit or turns a feature off; the device itself is unchanged. */
aps_status rt_caps_apply_limits(rt_caps *c) {
  const char *want = getenv("APS_LIMITS");
  if (!want || !*want || !strcmp(want, "device"))
    return APS_OK;
  if (strcmp(want, "vulkan-min") != 0)
    return aps_fail(APS_ERR_INVALID_ARG, "APS_LIMITS='%s' is not a limits profile (known: device, vulkan-min)", want);
  snprintf(c->limits, sizeof c->limits, "vulkan-min");
  clamp32(&c->max_shared_memory, 16384);
  clamp32(&c->max_workgroup_invocations, 128);
  clamp32(&c->max_workgroup_size[0], 128);
  clamp32(&c->max_workgroup_size[1], 128);
  clamp32(&c->max_workgroup_size[2], 64);
  for (int i = 0; i < 3; i++)
    clamp32(&c->max_workgroup_count[i], 65535);
  clamp32(&c->max_push_constants_size, 128);
  clamp32(&c->max_storage_buffers, 4);
  if (c->max_storage_buffer_range > (1u << 27))
    c->max_storage_buffer_range = 1u << 27;
  /* No fp16 or int8 arithmetic or storage, no cooperative matrices: none is required. */
  c->fp16_storage = c->fp16_arithmetic = c->int8_storage = c->int8_arithmetic = 0;
  c->coopmat = 0;
  c->coopmat_shape_count = 0;
  return APS_OK;
}
