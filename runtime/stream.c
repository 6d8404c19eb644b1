/* Streams: one reusable command buffer of dispatches and copies, with barriers placed by
 * hazard tracking over buffer byte ranges (read-after-write, write-after-write,
 * write-after-read), and optional per-dispatch timestamps. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

typedef struct access_range {
  VkBuffer buffer;
  uint64_t begin, end;
  int write;
} access_range;

enum { SETS_PER_POOL = 256 };

struct rt_stream {
  rt_device *dev;
  VkCommandPool pool;
  VkCommandBuffer cmd;
  VkFence fence;
  int recording, ended, in_flight;

  /* descriptor pools for devices without push descriptors; reset at each begin */
  VkDescriptorPool *desc_pools;
  uint32_t desc_pool_count, desc_pool_used, sets_in_pool;

  /* ranges touched since the last barrier */
  access_range *pending;
  uint32_t pending_count, pending_cap;

  /* dispatch names of this recording (for timings and device-lost messages) */
  char **names;
  uint32_t name_count, name_cap;

  VkQueryPool queries;
  uint32_t max_timestamps, timestamps_used;
  uint32_t *timed_name; /* names[] index of each timed dispatch */
  uint64_t *ticks;

  rt_stream_stats stats;
};

static const VkPipelineStageFlags all_work = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
static const VkAccessFlags all_writes = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
static const VkAccessFlags all_access = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                        VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;

aps_status rt_stream_create(rt_device *dev, const rt_stream_desc *desc, rt_stream **out) {
  static const rt_stream_desc defaults = {0};
  if (!desc)
    desc = &defaults;
  *out = NULL;
  rt_stream *s = calloc(1, sizeof *s);
  if (!s)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  s->dev = dev;
  *out = s; /* destroy handles partial construction */
  VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                .queueFamilyIndex = dev->queue_family};
  VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
  VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VkResult r = vkCreateCommandPool(dev->device, &pi, NULL, &s->pool);
  if (r == VK_SUCCESS) {
    ai.commandPool = s->pool;
    r = vkAllocateCommandBuffers(dev->device, &ai, &s->cmd);
  }
  if (r == VK_SUCCESS)
    r = vkCreateFence(dev->device, &fi, NULL, &s->fence);
  if (r == VK_SUCCESS && desc->max_timestamps) {
    if (!dev->caps.timestamp_valid_bits) {
      rt_stream_destroy(s);
      *out = NULL;
      return aps_fail(APS_ERR_UNSUPPORTED, "device %s has no timestamps on its compute queue", dev->caps.name);
    }
    s->max_timestamps = desc->max_timestamps;
    VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                .queryCount = s->max_timestamps + 1};
    r = vkCreateQueryPool(dev->device, &qi, NULL, &s->queries);
    s->timed_name = calloc(s->max_timestamps, sizeof *s->timed_name);
    s->ticks = calloc(s->max_timestamps + 1, sizeof *s->ticks);
    if (r == VK_SUCCESS && (!s->timed_name || !s->ticks))
      r = VK_ERROR_OUT_OF_HOST_MEMORY;
  }
  if (r != VK_SUCCESS) {
    rt_stream_destroy(s);
    *out = NULL;
    return rt_vk_fail(r, "creating a stream");
  }
  return APS_OK;
}

static void drop_names(rt_stream *s) {
  for (uint32_t i = 0; i < s->name_count; i++)
    free(s->names[i]);
  s->name_count = 0;
}

void rt_stream_destroy(rt_stream *s) {
  if (!s)
    return;
  VkDevice d = s->dev->device;
  if (s->in_flight)
    vkWaitForFences(d, 1, &s->fence, VK_TRUE, UINT64_MAX);
  for (uint32_t i = 0; i < s->desc_pool_count; i++)
    vkDestroyDescriptorPool(d, s->desc_pools[i], NULL);
  if (s->queries)
    vkDestroyQueryPool(d, s->queries, NULL);
  if (s->fence)
    vkDestroyFence(d, s->fence, NULL);
  if (s->pool)
    vkDestroyCommandPool(d, s->pool, NULL);
  drop_names(s);
  free(s->names);
  free(s->desc_pools);
  free(s->pending);
  free(s->timed_name);
  free(s->ticks);
  free(s);
}

static void full_barrier(VkCommandBuffer cmd, VkPipelineStageFlags src_stage, VkAccessFlags src,
                         VkPipelineStageFlags dst_stage, VkAccessFlags dst) {
  VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = src, .dstAccessMask = dst};
  vkCmdPipelineBarrier(cmd, src_stage, dst_stage, 0, 1, &mb, 0, NULL, 0, NULL);
}

aps_status rt_stream_begin(rt_stream *s) {
  if (s->in_flight)
    APS_TRY(rt_stream_wait(s, UINT64_MAX));
  RT_VK(vkResetCommandBuffer(s->cmd, 0));
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  RT_VK(vkBeginCommandBuffer(s->cmd, &bi));
  for (uint32_t i = 0; i < s->desc_pool_count; i++)
    vkResetDescriptorPool(s->dev->device, s->desc_pools[i], 0);
  s->desc_pool_used = 0;
  s->sets_in_pool = 0;
  s->pending_count = 0;
  s->timestamps_used = 0;
  drop_names(s);
  memset(&s->stats, 0, sizeof s->stats);
  s->recording = 1;
  s->ended = 0;
  /* Order this recording after everything submitted before it (earlier streams, earlier
   * replays of this one, staging copies). Not counted in stats: it is not between dispatches. */
  full_barrier(s->cmd, all_work, all_writes, all_work, all_access);
  if (s->queries) {
    vkCmdResetQueryPool(s->cmd, s->queries, 0, s->max_timestamps + 1);
    vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, s->queries, 0);
  }
  return APS_OK;
}

static aps_status not_recording(const char *what) {
  return aps_fail(APS_ERR_INVALID_ARG, "%s outside rt_stream_begin/rt_stream_end", what);
}

static aps_status remember_name(rt_stream *s, const char *name) {
  if (s->name_count == s->name_cap) {
    uint32_t cap = s->name_cap ? s->name_cap * 2 : 64;
    char **grown = realloc(s->names, cap * sizeof *grown);
    if (!grown)
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    s->names = grown;
    s->name_cap = cap;
  }
  s->names[s->name_count] = strdup(name ? name : "(unnamed)");
  if (!s->names[s->name_count])
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  s->name_count++;
  return APS_OK;
}

/* Barrier if any of `ranges` conflicts with what is pending; then add them to pending. */
static aps_status track(rt_stream *s, const access_range *ranges, uint32_t n) {
  int hazard = 0;
  for (uint32_t i = 0; i < n && !hazard; i++)
    for (uint32_t j = 0; j < s->pending_count && !hazard; j++) {
      const access_range *p = &s->pending[j];
      hazard = p->buffer == ranges[i].buffer && p->begin < ranges[i].end && ranges[i].begin < p->end &&
               (p->write || ranges[i].write);
    }
  if (hazard) {
    full_barrier(s->cmd, all_work, all_writes, all_work, all_access);
    s->stats.barriers++;
    s->pending_count = 0;
  }
  if (s->pending_count + n > s->pending_cap) {
    uint32_t cap = (s->pending_count + n) * 2;
    access_range *grown = realloc(s->pending, cap * sizeof *grown);
    if (!grown)
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    s->pending = grown;
    s->pending_cap = cap;
  }
  memcpy(s->pending + s->pending_count, ranges, n * sizeof *ranges);
  s->pending_count += n;
  return APS_OK;
}

static VkDescriptorSet allocate_set(rt_stream *s, VkDescriptorSetLayout layout, aps_status *st) {
  VkDevice d = s->dev->device;
  if (s->desc_pool_used == 0 || s->sets_in_pool == SETS_PER_POOL) {
    if (s->desc_pool_used == s->desc_pool_count) {
      VkDescriptorPoolSize size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * RT_MAX_BINDINGS};
      VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                       .maxSets = SETS_PER_POOL, .poolSizeCount = 1, .pPoolSizes = &size};
      VkDescriptorPool *grown = realloc(s->desc_pools, (s->desc_pool_count + 1) * sizeof *grown);
      if (!grown) {
        *st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
        return VK_NULL_HANDLE;
      }
      s->desc_pools = grown;
      VkResult r = vkCreateDescriptorPool(d, &pi, NULL, &s->desc_pools[s->desc_pool_count]);
      if (r != VK_SUCCESS) {
        *st = rt_vk_fail(r, "vkCreateDescriptorPool");
        return VK_NULL_HANDLE;
      }
      s->desc_pool_count++;
    }
    s->desc_pool_used++;
    s->sets_in_pool = 0;
  }
  VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                    .descriptorPool = s->desc_pools[s->desc_pool_used - 1],
                                    .descriptorSetCount = 1,
                                    .pSetLayouts = &layout};
  VkDescriptorSet set = VK_NULL_HANDLE;
  VkResult r = vkAllocateDescriptorSets(d, &ai, &set);
  if (r != VK_SUCCESS)
    *st = rt_vk_fail(r, "vkAllocateDescriptorSets");
  s->sets_in_pool++;
  return set;
}

aps_status rt_stream_dispatch(rt_stream *s, const rt_dispatch *d) {
  if (!s->recording)
    return not_recording("rt_stream_dispatch");
  const char *name = d->name ? d->name : (d->kernel ? d->kernel->shader_name : "(null)");
  if (!d->kernel)
    return aps_fail(APS_ERR_INVALID_ARG, "dispatch %s has no kernel", name);
  const rt_kernel *k = d->kernel;
  const rt_caps *c = &s->dev->caps;
  access_range ranges[RT_MAX_BINDINGS];
  VkDescriptorBufferInfo infos[RT_MAX_BINDINGS];
  VkWriteDescriptorSet writes[RT_MAX_BINDINGS];
  for (uint32_t i = 0; i < k->info.binding_count; i++) {
    const rt_binding *b = &d->bindings[i];
    if (!b->buffer)
      return aps_fail(APS_ERR_INVALID_ARG, "dispatch %s (%s): binding %u has no buffer", name, k->shader_name, i);
    uint64_t size = b->size ? b->size : (b->offset < b->buffer->size ? b->buffer->size - b->offset : 0);
    if (b->offset >= b->buffer->size || size > b->buffer->size - b->offset)
      return aps_fail(APS_ERR_INVALID_ARG,
                      "dispatch %s (%s): binding %u range [%" PRIu64 ", +%" PRIu64 ") is outside its buffer of %" PRIu64
                      " bytes", name, k->shader_name, i, b->offset, size, b->buffer->size);
    if (size > c->max_storage_buffer_range)
      return aps_fail(APS_ERR_UNSUPPORTED,
                      "dispatch %s (%s): binding %u spans %" PRIu64 " bytes; %s binds at most %" PRIu64, name,
                      k->shader_name, i, size, c->name, c->max_storage_buffer_range);
    if (b->offset % c->min_storage_buffer_offset_alignment)
      return aps_fail(APS_ERR_INVALID_ARG, "dispatch %s (%s): binding %u offset %" PRIu64 " is not a multiple of %" PRIu64,
                      name, k->shader_name, i, b->offset, c->min_storage_buffer_offset_alignment);
    if (!b->f16 != !(k->desc.f16_mask >> i & 1u))
      return aps_fail(APS_ERR_INVALID_ARG, "dispatch %s (%s): binding %u %s IEEE halves, but the kernel's fp16 mask "
                      "0x%x says otherwise", name, k->shader_name, i, b->f16 ? "holds" : "does not hold",
                      k->desc.f16_mask);
    uint64_t start = b->buffer->offset + b->offset;
    ranges[i] = (access_range){b->buffer->block->buffer, start, start + size, (k->info.access[i] & RT_ACCESS_WRITE) != 0};
    infos[i] = (VkDescriptorBufferInfo){b->buffer->block->buffer, start, size};
    writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                       .dstBinding = i,
                                       .descriptorCount = 1,
                                       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                       .pBufferInfo = &infos[i]};
  }
  if (k->info.push_size && !d->push)
    return aps_fail(APS_ERR_INVALID_ARG, "dispatch %s (%s) needs %u bytes of push constants", name, k->shader_name,
                    k->info.push_size);
  uint32_t g[3];
  for (int i = 0; i < 3; i++) {
    g[i] = d->groups[i] ? d->groups[i] : 1;
    if (g[i] > c->max_workgroup_count[i])
      return aps_fail(APS_ERR_UNSUPPORTED, "dispatch %s (%s): %u workgroups in dimension %d; %s allows %u", name,
                      k->shader_name, g[i], i, c->name, c->max_workgroup_count[i]);
  }
  APS_TRY(track(s, ranges, k->info.binding_count));
  APS_TRY(remember_name(s, name));

  vkCmdBindPipeline(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, k->pipeline);
  if (c->push_descriptor) {
    vkCmdPushDescriptorSetKHR(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, k->layout, 0, k->info.binding_count, writes);
  } else if (k->info.binding_count) {
    aps_status st = APS_OK;
    VkDescriptorSet set = allocate_set(s, k->set_layout, &st);
    if (st != APS_OK)
      return st;
    for (uint32_t i = 0; i < k->info.binding_count; i++)
      writes[i].dstSet = set;
    vkUpdateDescriptorSets(s->dev->device, k->info.binding_count, writes, 0, NULL);
    vkCmdBindDescriptorSets(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, k->layout, 0, 1, &set, 0, NULL);
  }
  if (k->info.push_size)
    vkCmdPushConstants(s->cmd, k->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, k->info.push_size, d->push);
  vkCmdDispatch(s->cmd, g[0], g[1], g[2]);
  s->stats.dispatches++;
  if (s->queries && s->timestamps_used < s->max_timestamps) {
    s->timed_name[s->timestamps_used] = s->name_count - 1;
    vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s->queries, ++s->timestamps_used);
  }
  return APS_OK;
}

aps_status rt_stream_copy(rt_stream *s, rt_buffer *src, uint64_t src_offset, rt_buffer *dst, uint64_t dst_offset,
                          uint64_t size) {
  if (!s->recording)
    return not_recording("rt_stream_copy");
  if (!src || !dst || size == 0 || src_offset > src->size || size > src->size - src_offset ||
      dst_offset > dst->size || size > dst->size - dst_offset)
    return aps_fail(APS_ERR_INVALID_ARG, "copy of %" PRIu64 " bytes is outside its buffers", size);
  uint64_t a = src->offset + src_offset, b = dst->offset + dst_offset;
  if (src->block == dst->block && a < b + size && b < a + size)
    return aps_fail(APS_ERR_INVALID_ARG, "copy source and destination overlap");
  access_range r[2] = {{src->block->buffer, a, a + size, 0}, {dst->block->buffer, b, b + size, 1}};
  APS_TRY(track(s, r, 2));
  VkBufferCopy region = {a, b, size};
  vkCmdCopyBuffer(s->cmd, src->block->buffer, dst->block->buffer, 1, &region);
  s->stats.copies++;
  return APS_OK;
}

aps_status rt_stream_barrier(rt_stream *s) {
  if (!s->recording)
    return not_recording("rt_stream_barrier");
  full_barrier(s->cmd, all_work, all_writes, all_work, all_access);
  s->stats.barriers++;
  s->pending_count = 0;
  return APS_OK;
}

aps_status rt_stream_end(rt_stream *s) {
  if (!s->recording)
    return not_recording("rt_stream_end");
  /* Results become visible to the host (and to whatever is submitted next). */
  full_barrier(s->cmd, all_work, all_writes, all_work | VK_PIPELINE_STAGE_HOST_BIT,
               all_access | VK_ACCESS_HOST_READ_BIT);
  s->recording = 0;
  RT_VK(vkEndCommandBuffer(s->cmd));
  s->ended = 1;
  return APS_OK;
}

static void last_names(const rt_stream *s, char *buf, size_t size) {
  buf[0] = 0;
  size_t used = 0;
  uint32_t first = s->name_count > 4 ? s->name_count - 4 : 0;
  for (uint32_t i = first; i < s->name_count && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%s", i > first ? ", " : "", s->names[i]);
    if (n < 0)
      break;
    used += (size_t)n;
  }
  if (!s->name_count)
    snprintf(buf, size, "(copies only)");
}

static aps_status fail_in_flight(rt_stream *s, VkResult r, const char *call) {
  char names[512];
  last_names(s, names, sizeof names);
  aps_status st = rt_vk_fail(r, call);
  if (r == VK_ERROR_DEVICE_LOST)
    return aps_fail(APS_ERR_DEVICE_LOST,
                    "device %s was lost running a stream of %u dispatches; the last submitted: %s",
                    s->dev->caps.name, s->stats.dispatches, names);
  return aps_fail_context(st, "stream ending with %s: ", names);
}

aps_status rt_stream_submit(rt_stream *s) {
  if (!s->ended)
    return aps_fail(APS_ERR_INVALID_ARG, "rt_stream_submit before rt_stream_end");
  if (s->in_flight)
    APS_TRY(rt_stream_wait(s, UINT64_MAX));
  RT_VK(vkResetFences(s->dev->device, 1, &s->fence));
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &s->cmd};
  VkResult r = vkQueueSubmit(s->dev->queue, 1, &si, s->fence);
  if (r != VK_SUCCESS)
    return fail_in_flight(s, r, "vkQueueSubmit");
  s->in_flight = 1;
  return APS_OK;
}

aps_status rt_stream_wait(rt_stream *s, uint64_t timeout_ns) {
  if (!s->in_flight)
    return APS_OK;
  VkResult r = vkWaitForFences(s->dev->device, 1, &s->fence, VK_TRUE, timeout_ns);
  if (r == VK_TIMEOUT) {
    char names[512];
    last_names(s, names, sizeof names);
    return aps_fail(APS_ERR_TIMEOUT, "stream on %s did not finish within %.3f ms (last dispatches: %s)",
                    s->dev->caps.name, timeout_ns / 1e6, names);
  }
  if (r != VK_SUCCESS)
    return fail_in_flight(s, r, "vkWaitForFences");
  s->in_flight = 0;
  if (s->queries && s->timestamps_used) {
    r = vkGetQueryPoolResults(s->dev->device, s->queries, 0, s->timestamps_used + 1,
                              (s->timestamps_used + 1) * sizeof(uint64_t), s->ticks, sizeof(uint64_t),
                              VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r != VK_SUCCESS)
      return rt_vk_fail(r, "vkGetQueryPoolResults");
  }
  return APS_OK;
}

aps_status rt_stream_run(rt_stream *s) {
  APS_TRY(rt_stream_submit(s));
  return rt_stream_wait(s, UINT64_MAX);
}

void rt_stream_get_stats(const rt_stream *s, rt_stream_stats *out) { *out = s->stats; }

static uint64_t tick_mask(const rt_stream *s) {
  uint32_t bits = s->dev->caps.timestamp_valid_bits;
  return bits >= 64 ? UINT64_MAX : (1ull << bits) - 1;
}

uint32_t rt_stream_timestamps(rt_stream *s, double *ns_out, uint32_t max) {
  if (!s->queries || !s->timestamps_used)
    return 0;
  uint32_t n = s->timestamps_used + 1 < max ? s->timestamps_used + 1 : max;
  uint64_t mask = tick_mask(s);
  for (uint32_t i = 0; i < n; i++)
    ns_out[i] = (double)((s->ticks[i] - s->ticks[0]) & mask) * s->dev->caps.timestamp_period_ns;
  return n;
}

uint32_t rt_stream_timings(rt_stream *s, rt_timing *out, uint32_t max) {
  if (!s->queries || !s->timestamps_used)
    return 0;
  uint32_t n = s->timestamps_used < max ? s->timestamps_used : max;
  uint64_t mask = tick_mask(s);
  for (uint32_t i = 0; i < n; i++) {
    out[i].name = s->names[s->timed_name[i]];
    out[i].ms = (double)((s->ticks[i + 1] - s->ticks[i]) & mask) * s->dev->caps.timestamp_period_ns * 1e-6;
  }
  return n;
}
