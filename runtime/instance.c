/* The Vulkan loader and instance: volk over a library we open ourselves (so a missing or
 * wrong loader is a clear error), and the validation layer with a counting messenger. */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

static void *loader_handle;
static atomic_uint messages_total;

unsigned rt_validation_messages_total(void) { return atomic_load(&messages_total); }

static aps_status open_loader(void) {
  if (loader_handle)
    return APS_OK;
  const char *path = getenv("APS_VULKAN_LIBRARY");
  if (!path || !*path)
    path = "libvulkan.so.1";
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h)
    return aps_fail(APS_ERR_NO_LOADER,
                    "no Vulkan loader: cannot open %s (%s); install libvulkan1 and a driver "
                    "(on Debian: apt-get install libvulkan1 mesa-vulkan-drivers)",
                    path, dlerror());
  PFN_vkGetInstanceProcAddr gipa = (PFN_vkGetInstanceProcAddr)dlsym(h, "vkGetInstanceProcAddr");
  if (!gipa) {
    dlclose(h);
    return aps_fail(APS_ERR_NO_LOADER, "no Vulkan loader: %s has no vkGetInstanceProcAddr", path);
  }
  volkInitializeCustom(gipa);
  loader_handle = h;
  return APS_OK;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data,
                                                 void *user) {
  (void)type;
  unsigned *count = user;
  if (count)
    (*count)++;
  atomic_fetch_add(&messages_total, 1);
  fprintf(stderr, "aps: validation %s: %s\n",
          severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? "error" : "warning",
          data->pMessage);
  return VK_FALSE;
}

static int has_layer(const char *name) {
  uint32_t n = 0;
  if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
    return 0;
  VkLayerProperties *props = calloc(n, sizeof *props);
  int found = 0;
  if (props && vkEnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
    for (uint32_t i = 0; i < n; i++)
      found |= strcmp(props[i].layerName, name) == 0;
  free(props);
  return found;
}

static int has_instance_extension(const char *name) {
  uint32_t n = 0;
  if (vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) != VK_SUCCESS)
    return 0;
  VkExtensionProperties *props = calloc(n ? n : 1, sizeof *props);
  int found = 0;
  if (props && vkEnumerateInstanceExtensionProperties(NULL, &n, props) == VK_SUCCESS)
    for (uint32_t i = 0; i < n; i++)
      found |= strcmp(props[i].extensionName, name) == 0;
  free(props);
  return found;
}

aps_status rt_instance_create(rt_instance *inst, unsigned *message_count) {
  memset(inst, 0, sizeof *inst);
  APS_TRY(open_loader());
  uint32_t loader_version = VK_API_VERSION_1_0;
  if (vkEnumerateInstanceVersion)
    vkEnumerateInstanceVersion(&loader_version);
  if (loader_version < VK_API_VERSION_1_2)
    return aps_fail(APS_ERR_NO_DEVICE, "the Vulkan loader supports only Vulkan %u.%u; aps needs 1.2",
                    VK_API_VERSION_MAJOR(loader_version), VK_API_VERSION_MINOR(loader_version));

  const char *layer = "VK_LAYER_KHRONOS_validation";
  inst->validate = rt_env_flag("APS_VALIDATE", 0);
  int sync = rt_env_flag("APS_VALIDATE_SYNC", 0);
  if (sync)
    inst->validate = 1;
  if (inst->validate && !has_layer(layer))
    return aps_fail(APS_ERR_UNSUPPORTED,
                    "APS_VALIDATE=1 but the layer %s is not installed "
                    "(on Debian: apt-get install vulkan-validationlayers)", layer);
  const char *exts[4];
  uint32_t n_ext = 0;
  if (inst->validate)
    exts[n_ext++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
  VkInstanceCreateFlags flags = 0;
  if (has_instance_extension(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
    exts[n_ext++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
    flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
  }

  VkValidationFeatureEnableEXT sync_feature = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
  VkValidationFeaturesEXT features = {
      .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
      .enabledValidationFeatureCount = 1,
      .pEnabledValidationFeatures = &sync_feature,
  };
  VkDebugUtilsMessengerCreateInfoEXT messenger_info = {
      .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
      .pNext = sync ? &features : NULL,
      .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                         VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
      .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
      .pfnUserCallback = on_message,
      .pUserData = message_count,
  };
  VkApplicationInfo app = {
      .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
      .pApplicationName = "aps",
      .pEngineName = "aps",
      .apiVersion = VK_API_VERSION_1_2,
  };
  VkInstanceCreateInfo info = {
      .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
      .pNext = inst->validate ? &messenger_info : NULL, /* also covers create/destroy */
      .flags = flags,
      .pApplicationInfo = &app,
      .enabledLayerCount = inst->validate ? 1 : 0,
      .ppEnabledLayerNames = &layer,
      .enabledExtensionCount = n_ext,
      .ppEnabledExtensionNames = exts,
  };
  RT_VK(vkCreateInstance(&info, NULL, &inst->instance));
  volkLoadInstanceOnly(inst->instance);
  inst->message_count = message_count;
  if (inst->validate) {
    messenger_info.pNext = NULL;
    VkResult r = vkCreateDebugUtilsMessengerEXT(inst->instance, &messenger_info, NULL, &inst->messenger);
    if (r != VK_SUCCESS) {
      vkDestroyInstance(inst->instance, NULL);
      inst->instance = VK_NULL_HANDLE;
      return rt_vk_fail(r, "vkCreateDebugUtilsMessengerEXT");
    }
  }
  return APS_OK;
}

void rt_instance_destroy(rt_instance *inst) {
  if (!inst->instance)
    return;
  if (inst->messenger)
    vkDestroyDebugUtilsMessengerEXT(inst->instance, inst->messenger, NULL);
  vkDestroyInstance(inst->instance, NULL);
  memset(inst, 0, sizeof *inst);
}
