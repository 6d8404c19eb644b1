#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

const char *rt_vk_result_name(VkResult r) {
  switch (r) {
#define CASE(x) \
  case x:       \
    return #x;
    CASE(VK_SUCCESS)
    CASE(VK_NOT_READY)
    CASE(VK_TIMEOUT)
    CASE(VK_INCOMPLETE)
    CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
    CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    CASE(VK_ERROR_INITIALIZATION_FAILED)
    CASE(VK_ERROR_DEVICE_LOST)
    CASE(VK_ERROR_MEMORY_MAP_FAILED)
    CASE(VK_ERROR_LAYER_NOT_PRESENT)
    CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
    CASE(VK_ERROR_FEATURE_NOT_PRESENT)
    CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
    CASE(VK_ERROR_TOO_MANY_OBJECTS)
    CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
    CASE(VK_ERROR_FRAGMENTED_POOL)
    CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
    CASE(VK_ERROR_INVALID_SHADER_NV)
    CASE(VK_PIPELINE_COMPILE_REQUIRED)
#undef CASE
  default:
    return "VkResult(unknown)";
  }
}

aps_status rt_vk_fail(VkResult r, const char *call) {
  aps_status s = APS_ERR_VULKAN;
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
    s = APS_ERR_OUT_OF_MEMORY;
  else if (r == VK_ERROR_DEVICE_LOST)
    s = APS_ERR_DEVICE_LOST;
  else if (r == VK_TIMEOUT)
    s = APS_ERR_TIMEOUT;
  return aps_fail(s, "%s failed: %s (%d)", call, rt_vk_result_name(r), (int)r);
}

int rt_env_flag(const char *name, int fallback) {
  const char *v = getenv(name);
  if (!v || !*v)
    return fallback;
  return !(strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0 ||
           strcmp(v, "off") == 0);
}
