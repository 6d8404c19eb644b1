/* Private to runtime/: the structs behind the handles of rt.h, and helpers shared by the
 * files of this folder. The only place outside volk.c that sees Vulkan types. */
#ifndef APS_RT_INTERNAL_H
#define APS_RT_INTERNAL_H

#include <volk.h>

#include "aps_clock.h"
#include "rt.h"
#include "suballoc.h"

/* Turns a failed VkResult into a status with the call named. */
aps_status rt_vk_fail(VkResult r, const char *call);
#define RT_VK(call)                                  \
  do {                                               \
    VkResult rt_vk_r_ = (call);                      \
    if (rt_vk_r_ != VK_SUCCESS)                      \
      return rt_vk_fail(rt_vk_r_, #call);            \
  } while (0)

const char *rt_vk_result_name(VkResult r);
int rt_env_flag(const char *name, int fallback); /* "0"/"1" environment flags */

/* ---- instance (instance.c) */
typedef struct rt_instance {
  VkInstance instance;
  VkDebugUtilsMessengerEXT messenger;
  unsigned *message_count; /* where the messenger counts validation messages */
  int validate;
} rt_instance;

/* Opens the loader (APS_VULKAN_LIBRARY or libvulkan.so.1) and creates an instance,
 * with validation when APS_VALIDATE=1. message_count may be NULL until a device owns it. */
aps_status rt_instance_create(rt_instance *inst, unsigned *message_count);
void rt_instance_destroy(rt_instance *inst);

/* ---- capabilities (caps.c) */
void rt_caps_probe(VkPhysicalDevice pd, rt_caps *caps);
void rt_caps_apply_quirks(rt_caps *caps);
/* Clamps the caps to the APS_LIMITS profile; refuses an unknown profile by name. */
aps_status rt_caps_apply_limits(rt_caps *caps);

/* ---- memory (memory.c) */
typedef struct rt_block {
  VkDeviceMemory memory;
  VkBuffer buffer; /* one buffer over the whole block; allocations are ranges of it */
  void *mapped;
  uint64_t size;
  uint32_t type_index;
  int dedicated; /* one allocation that owns the block */
  rt_suballoc alloc;
} rt_block;

enum { RT_MAX_BLOCKS = 256 };

typedef struct rt_memory_pool {
  uint32_t type_index; /* UINT32_MAX = none */
  int mapped;
} rt_memory_pool;

struct rt_buffer {
  rt_device *dev;
  rt_block *block;
  uint64_t offset, size;
  rt_memory mem;
};

/* ---- kernels (pipeline.c, reflect.c, pipeline_cache.c) */
typedef struct rt_reflection {
  rt_kernel_info info;
  uint32_t local_size_spec[3]; /* constant_id of each local size, or UINT32_MAX */
} rt_reflection;

/* Parses SPIR-V: set-0 storage buffer bindings and their access, push-constant size,
 * local size (spec-constant ids too). */
aps_status rt_reflect(const uint32_t *words, size_t size, const char *name, rt_reflection *out);
/* The same with specialization constants 0..spec_count-1 replaced by spec[] (local size and
 * the lengths of shared arrays follow them). */
aps_status rt_reflect_spec(const uint32_t *words, size_t size, const char *name, const uint32_t *spec,
                           uint32_t spec_count, rt_reflection *out);

struct rt_kernel {
  rt_kernel_desc desc;
  const char *shader_name; /* points into the shader table */
  rt_kernel_info info;
  VkDescriptorSetLayout set_layout;
  VkPipelineLayout layout;
  VkPipeline pipeline;
  struct rt_kernel *next;
};

/* ---- device (device.c) */
struct rt_device {
  rt_instance inst;
  unsigned validation_messages;
  VkPhysicalDevice physical;
  VkDevice device;
  VkQueue queue;
  uint32_t queue_family;
  rt_caps caps;
  VkPhysicalDeviceMemoryProperties memory_props;

  /* memory */
  rt_memory_pool pools[2]; /* by rt_memory */
  rt_block *blocks[RT_MAX_BLOCKS];
  uint32_t block_count;
  uint64_t block_size;
  uint64_t live_buffers, live_bytes;

  /* transfers that need staging */
  VkCommandPool transfer_pool;
  VkCommandBuffer transfer_cmd;
  VkFence transfer_fence;
  rt_buffer *staging;

  /* kernels */
  rt_kernel *kernels;
  VkPipelineCache pipeline_cache;
  char pipeline_cache_path[1024];
  rt_pipeline_stats pipeline_stats;
  int pipeline_cache_dirty;
};

/* memory.c */
aps_status rt_memory_init(rt_device *dev);
void rt_memory_shutdown(rt_device *dev);
/* transfer.c: one-off command buffer submitted and waited on, for staging copies */
aps_status rt_transfer_init(rt_device *dev);
void rt_transfer_shutdown(rt_device *dev);
aps_status rt_transfer_copy(rt_device *dev, VkBuffer src, uint64_t src_off, VkBuffer dst,
                            uint64_t dst_off, uint64_t size);
/* pipeline_cache.c */
void rt_pipeline_cache_open(rt_device *dev);
void rt_pipeline_cache_close(rt_device *dev);
/* pipeline.c */
void rt_kernels_destroy(rt_device *dev);

#endif
