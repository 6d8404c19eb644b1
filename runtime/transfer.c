/* Host <-> device copies. Mapped buffers are plain memcpy; others go through a staging
 * buffer in chunks, each a small command buffer submitted and waited on. */
#include <inttypes.h>
#include <string.h>

#include "rt_internal.h"

enum { RT_STAGING_SIZE = 16 << 20 };

aps_status rt_transfer_init(rt_device *dev) {
  VkCommandPoolCreateInfo pi = {
      .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
      .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
      .queueFamilyIndex = dev->queue_family,
  };
  RT_VK(vkCreateCommandPool(dev->device, &pi, NULL, &dev->transfer_pool));
  VkCommandBufferAllocateInfo ai = {
      .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
      .commandPool = dev->transfer_pool,
      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
      .commandBufferCount = 1,
  };
  RT_VK(vkAllocateCommandBuffers(dev->device, &ai, &dev->transfer_cmd));
  VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  RT_VK(vkCreateFence(dev->device, &fi, NULL, &dev->transfer_fence));
  return APS_OK;
}

void rt_transfer_shutdown(rt_device *dev) {
  if (dev->staging)
    rt_buffer_destroy(dev->staging);
  dev->staging = NULL;
  if (dev->transfer_fence)
    vkDestroyFence(dev->device, dev->transfer_fence, NULL);
  if (dev->transfer_pool)
    vkDestroyCommandPool(dev->device, dev->transfer_pool, NULL);
}

/* Records one transfer command with `record`, submits it and waits. */
typedef void (*record_fn)(VkCommandBuffer cmd, const void *args);

static aps_status submit_once(rt_device *dev, record_fn record, const void *args, const char *what) {
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
  RT_VK(vkResetCommandBuffer(dev->transfer_cmd, 0));
  RT_VK(vkBeginCommandBuffer(dev->transfer_cmd, &bi));
  record(dev->transfer_cmd, args);
  /* Make the transfer visible to later work and to the host. */
  VkMemoryBarrier mb = {
      .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
      .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
      .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
  };
  vkCmdPipelineBarrier(dev->transfer_cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0,
                       NULL);
  RT_VK(vkEndCommandBuffer(dev->transfer_cmd));
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                     .pCommandBuffers = &dev->transfer_cmd};
  RT_VK(vkResetFences(dev->device, 1, &dev->transfer_fence));
  VkResult r = vkQueueSubmit(dev->queue, 1, &si, dev->transfer_fence);
  if (r == VK_SUCCESS)
    r = vkWaitForFences(dev->device, 1, &dev->transfer_fence, VK_TRUE, UINT64_MAX);
  if (r != VK_SUCCESS)
    return rt_vk_fail(r, what);
  return APS_OK;
}

typedef struct copy_args {
  VkBuffer src, dst;
  VkBufferCopy region;
} copy_args;

static void record_copy(VkCommandBuffer cmd, const void *p) {
  const copy_args *a = p;
  vkCmdCopyBuffer(cmd, a->src, a->dst, 1, &a->region);
}

aps_status rt_transfer_copy(rt_device *dev, VkBuffer src, uint64_t src_off, VkBuffer dst, uint64_t dst_off,
                            uint64_t size) {
  copy_args a = {src, dst, {src_off, dst_off, size}};
  return submit_once(dev, record_copy, &a, "vkQueueSubmit (buffer copy)");
}

static aps_status check_range(const rt_buffer *buf, uint64_t offset, uint64_t size, const char *what) {
  if (offset > buf->size || size > buf->size - offset)
    return aps_fail(APS_ERR_INVALID_ARG, "%s of %" PRIu64 " bytes at offset %" PRIu64 " overruns a buffer of %" PRIu64
                    " bytes", what, size, offset, buf->size);
  return APS_OK;
}

static aps_status ensure_staging(rt_device *dev) {
  if (dev->staging)
    return APS_OK;
  return rt_buffer_create(dev, RT_STAGING_SIZE, RT_MEMORY_HOST, &dev->staging);
}

aps_status rt_buffer_write(rt_buffer *buf, uint64_t offset, const void *src, uint64_t size) {
  APS_TRY(check_range(buf, offset, size, "write"));
  void *p = rt_buffer_map(buf);
  if (p) {
    memcpy((char *)p + offset, src, size);
    return APS_OK;
  }
  rt_device *dev = buf->dev;
  APS_TRY(ensure_staging(dev));
  for (uint64_t done = 0; done < size;) {
    uint64_t n = size - done < RT_STAGING_SIZE ? size - done : RT_STAGING_SIZE;
    memcpy(rt_buffer_map(dev->staging), (const char *)src + done, n);
    APS_TRY(rt_transfer_copy(dev, dev->staging->block->buffer, dev->staging->offset, buf->block->buffer,
                             buf->offset + offset + done, n));
    done += n;
  }
  return APS_OK;
}

aps_status rt_buffer_read(rt_buffer *buf, uint64_t offset, void *dst, uint64_t size) {
  APS_TRY(check_range(buf, offset, size, "read"));
  void *p = rt_buffer_map(buf);
  if (p) {
    memcpy(dst, (const char *)p + offset, size);
    return APS_OK;
  }
  rt_device *dev = buf->dev;
  APS_TRY(ensure_staging(dev));
  for (uint64_t done = 0; done < size;) {
    uint64_t n = size - done < RT_STAGING_SIZE ? size - done : RT_STAGING_SIZE;
    APS_TRY(rt_transfer_copy(dev, buf->block->buffer, buf->offset + offset + done, dev->staging->block->buffer,
                             dev->staging->offset, n));
    memcpy((char *)dst + done, rt_buffer_map(dev->staging), n);
    done += n;
  }
  return APS_OK;
}

typedef struct fill_args {
  VkBuffer dst;
  uint64_t offset, size;
  uint32_t value;
} fill_args;

static void record_fill(VkCommandBuffer cmd, const void *p) {
  const fill_args *a = p;
  vkCmdFillBuffer(cmd, a->dst, a->offset, a->size, a->value);
}

aps_status rt_buffer_fill(rt_buffer *buf, uint64_t offset, uint64_t size, uint32_t value) {
  APS_TRY(check_range(buf, offset, size, "fill"));
  if (offset % 4 || size % 4)
    return aps_fail(APS_ERR_INVALID_ARG, "fill offset %" PRIu64 " and size %" PRIu64 " must be multiples of 4",
                    offset, size);
  if (size == 0)
    return APS_OK;
  fill_args a = {buf->block->buffer, buf->offset + offset, size, value};
  return submit_once(buf->dev, record_fill, &a, "vkQueueSubmit (buffer fill)");
}
