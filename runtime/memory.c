/* Device memory: a few large blocks, each one VkDeviceMemory with one VkBuffer over it;
 * a buffer is a range of a block. Allocations too large for a block get their own. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

enum { RT_ALIGN = 256 }; /* ≥ every minStorageBufferOffsetAlignment seen; keeps vec4 loads aligned */
static const VkBufferUsageFlags usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                        VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;

static uint32_t find_type(const VkPhysicalDeviceMemoryProperties *mp, uint32_t allowed,
                          VkMemoryPropertyFlags need, VkMemoryPropertyFlags prefer, VkMemoryPropertyFlags avoid) {
  uint32_t best = UINT32_MAX;
  int best_score = -1;
  for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
    VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
    if (!(allowed & (1u << i)) || (f & need) != need)
      continue;
    int score = ((f & prefer) == prefer ? 2 : 0) + ((f & avoid) ? 0 : 1);
    if (score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

aps_status rt_memory_init(rt_device *dev) {
  /* Which memory types can hold our storage buffers. */
  VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 4096, .usage = usage};
  VkBuffer probe;
  RT_VK(vkCreateBuffer(dev->device, &bi, NULL, &probe));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(dev->device, probe, &req);
  vkDestroyBuffer(dev->device, probe, NULL);

  const VkPhysicalDeviceMemoryProperties *mp = &dev->memory_props;
  const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  rt_memory_pool *d = &dev->pools[RT_MEMORY_DEVICE], *h = &dev->pools[RT_MEMORY_HOST];
  if (dev->caps.unified_memory) {
    d->type_index = find_type(mp, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | host,
                              VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
    d->mapped = 1;
  } else {
    d->type_index = find_type(mp, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0, 0);
    d->mapped = 0;
  }
  h->type_index = find_type(mp, req.memoryTypeBits, host, VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
  h->mapped = 1;
  if (d->type_index == UINT32_MAX || h->type_index == UINT32_MAX)
    return aps_fail(APS_ERR_UNSUPPORTED, "device %s has no memory type for storage buffers (%s)", dev->caps.name,
                    d->type_index == UINT32_MAX ? "device-local" : "host-visible");

  uint64_t block = dev->block_size ? dev->block_size : 64ull << 20;
  if (block > dev->caps.max_memory_allocation_size && dev->caps.max_memory_allocation_size)
    block = dev->caps.max_memory_allocation_size;
  if (dev->caps.device_local_heap_size && block > dev->caps.device_local_heap_size / 8)
    block = dev->caps.device_local_heap_size / 8;
  dev->block_size = block;
  return APS_OK;
}

static void block_destroy(rt_device *dev, rt_block *b) {
  if (b->mapped)
    vkUnmapMemory(dev->device, b->memory);
  if (b->buffer)
    vkDestroyBuffer(dev->device, b->buffer, NULL);
  if (b->memory)
    vkFreeMemory(dev->device, b->memory, NULL);
  rt_suballoc_release_all(&b->alloc);
  free(b);
}

void rt_memory_shutdown(rt_device *dev) {
  for (uint32_t i = 0; i < dev->block_count; i++)
    block_destroy(dev, dev->blocks[i]);
  dev->block_count = 0;
}

static aps_status block_create(rt_device *dev, rt_memory mem, uint64_t size, int dedicated, rt_block **out) {
  if (dev->block_count == RT_MAX_BLOCKS)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "too many memory blocks (%d) on %s", RT_MAX_BLOCKS, dev->caps.name);
  const rt_memory_pool *pool = &dev->pools[mem];
  rt_block *b = calloc(1, sizeof *b);
  if (!b || rt_suballoc_init(&b->alloc, size)) {
    free(b);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  b->size = size;
  b->type_index = pool->type_index;
  b->dedicated = dedicated;
  VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size, .usage = usage};
  VkResult r = vkCreateBuffer(dev->device, &bi, NULL, &b->buffer);
  VkMemoryRequirements req = {0};
  if (r == VK_SUCCESS) {
    vkGetBufferMemoryRequirements(dev->device, b->buffer, &req);
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                               .allocationSize = req.size,
                               .memoryTypeIndex = pool->type_index};
    r = vkAllocateMemory(dev->device, &ai, NULL, &b->memory);
  }
  if (r == VK_SUCCESS)
    r = vkBindBufferMemory(dev->device, b->buffer, b->memory, 0);
  if (r == VK_SUCCESS && pool->mapped)
    r = vkMapMemory(dev->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped);
  if (r != VK_SUCCESS) {
    block_destroy(dev, b);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
      return aps_fail(APS_ERR_OUT_OF_MEMORY,
                      "out of device memory on %s allocating %.1f MiB (%" PRIu64 " buffers, %.1f MiB live)",
                      dev->caps.name, size / 1048576.0, dev->live_buffers, dev->live_bytes / 1048576.0);
    return rt_vk_fail(r, "allocating a memory block");
  }
  dev->blocks[dev->block_count++] = b;
  *out = b;
  return APS_OK;
}

aps_status rt_buffer_create(rt_device *dev, uint64_t size, rt_memory mem, rt_buffer **out) {
  *out = NULL;
  if (size == 0)
    return aps_fail(APS_ERR_INVALID_ARG, "buffer of size 0");
  if ((unsigned)mem > RT_MEMORY_HOST)
    return aps_fail(APS_ERR_INVALID_ARG, "unknown memory kind %d", (int)mem);
  uint64_t limit = dev->caps.max_memory_allocation_size;
  if (limit && size > limit)
    return aps_fail(APS_ERR_OUT_OF_MEMORY,
                    "buffer of %" PRIu64 " bytes (%.1f GiB) exceeds the largest allocation %s allows "
                    "(maxMemoryAllocationSize %" PRIu64 " bytes, %.1f GiB)",
                    size, size / 1073741824.0, dev->caps.name, limit, limit / 1073741824.0);
  rt_buffer *buf = calloc(1, sizeof *buf);
  if (!buf)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  buf->dev = dev;
  buf->size = size;
  buf->mem = mem;
  uint64_t rounded = (size + RT_ALIGN - 1) & ~(uint64_t)(RT_ALIGN - 1);
  if (rounded > dev->block_size / 2) {
    aps_status s = block_create(dev, mem, rounded, 1, &buf->block);
    if (s != APS_OK) {
      free(buf);
      return s;
    }
    rt_suballoc_alloc(&buf->block->alloc, rounded, RT_ALIGN, &buf->offset);
  } else {
    for (uint32_t i = 0; i < dev->block_count && !buf->block; i++) {
      rt_block *b = dev->blocks[i];
      if (!b->dedicated && b->type_index == dev->pools[mem].type_index &&
          (b->mapped != NULL) == (dev->pools[mem].mapped != 0) &&
          rt_suballoc_alloc(&b->alloc, rounded, RT_ALIGN, &buf->offset) == 0)
        buf->block = b;
    }
    if (!buf->block) {
      aps_status s = block_create(dev, mem, dev->block_size, 0, &buf->block);
      if (s != APS_OK) {
        free(buf);
        return s;
      }
      rt_suballoc_alloc(&buf->block->alloc, rounded, RT_ALIGN, &buf->offset);
    }
  }
  dev->live_buffers++;
  dev->live_bytes += size;
  *out = buf;
  return APS_OK;
}

void rt_buffer_destroy(rt_buffer *buf) {
  if (!buf)
    return;
  rt_device *dev = buf->dev;
  rt_block *b = buf->block;
  uint64_t rounded = (buf->size + RT_ALIGN - 1) & ~(uint64_t)(RT_ALIGN - 1);
  rt_suballoc_free(&b->alloc, buf->offset, rounded);
  dev->live_buffers--;
  dev->live_bytes -= buf->size;
  /* Dedicated blocks go back at once; shared blocks stay for reuse. */
  if (b->dedicated) {
    for (uint32_t i = 0; i < dev->block_count; i++)
      if (dev->blocks[i] == b) {
        dev->blocks[i] = dev->blocks[--dev->block_count];
        break;
      }
    block_destroy(dev, b);
  }
  free(buf);
}

uint64_t rt_buffer_size(const rt_buffer *buf) { return buf->size; }

void *rt_buffer_map(rt_buffer *buf) {
  return buf->block->mapped ? (char *)buf->block->mapped + buf->offset : NULL;
}

void rt_memory_get_stats(const rt_device *dev, rt_memory_stats *out) {
  memset(out, 0, sizeof *out);
  for (uint32_t i = 0; i < dev->block_count; i++) {
    out->blocks++;
    out->block_bytes += dev->blocks[i]->size;
    out->dedicated += dev->blocks[i]->dedicated;
  }
  out->live_buffers = dev->live_buffers;
  out->live_bytes = dev->live_bytes;
}
