/* Kernels: compute pipelines made lazily from the embedded SPIR-V, one per
 * (shader, specialization), with layouts derived by reflection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"
#include "shader_table.h"

static int cmp_entry(const void *key, const void *elem) {
  return strcmp(key, ((const aps_shader_entry *)elem)->name);
}

static const aps_shader_entry *find_shader(const char *name) {
  return bsearch(name, aps_shader_table, aps_shader_count, sizeof *aps_shader_table, cmp_entry);
}

static int same_desc(const rt_kernel_desc *a, const rt_kernel_desc *b) {
  return a->spec_count == b->spec_count && a->f16_mask == b->f16_mask &&
         !memcmp(a->spec, b->spec, a->spec_count * sizeof a->spec[0]);
}

static void kernel_free(rt_device *dev, rt_kernel *k) {
  if (k->pipeline)
    vkDestroyPipeline(dev->device, k->pipeline, NULL);
  if (k->layout)
    vkDestroyPipelineLayout(dev->device, k->layout, NULL);
  if (k->set_layout)
    vkDestroyDescriptorSetLayout(dev->device, k->set_layout, NULL);
  free(k);
}

void rt_kernels_destroy(rt_device *dev) {
  while (dev->kernels) {
    rt_kernel *next = dev->kernels->next;
    kernel_free(dev, dev->kernels);
    dev->kernels = next;
  }
}

/* Every pipeline is checked against the caps before it is made, so that a kernel never
 * exceeds a device's limits silently (or, with APS_LIMITS, the profile's). */
static aps_status check_limits(const rt_caps *c, const char *shader, const rt_kernel_info *i) {
  const char *dev = c->name, *prof = c->limits;
  if (i->binding_count > c->max_storage_buffers)
    return aps_fail(APS_ERR_UNSUPPORTED,
                    "shader %s needs %u storage buffers per stage; %s (limits %s) allows %u "
                    "(maxPerStageDescriptorStorageBuffers)",
                    shader, i->binding_count, dev, prof, c->max_storage_buffers);
  uint64_t inv = (uint64_t)i->local_size[0] * i->local_size[1] * i->local_size[2];
  if (inv > c->max_workgroup_invocations)
    return aps_fail(APS_ERR_UNSUPPORTED,
                    "shader %s has workgroups of %llu invocations; %s (limits %s) allows %u "
                    "(maxComputeWorkGroupInvocations)",
                    shader, (unsigned long long)inv, dev, prof, c->max_workgroup_invocations);
  for (int d = 0; d < 3; d++)
    if (i->local_size[d] > c->max_workgroup_size[d])
      return aps_fail(APS_ERR_UNSUPPORTED,
                      "shader %s has local_size_%c %u; %s (limits %s) allows %u (maxComputeWorkGroupSize[%d])",
                      shader, "xyz"[d], i->local_size[d], dev, prof, c->max_workgroup_size[d], d);
  if (i->shared_bytes > c->max_shared_memory)
    return aps_fail(APS_ERR_UNSUPPORTED,
                    "shader %s needs %u bytes of shared memory; %s (limits %s) allows %u "
                    "(maxComputeSharedMemorySize)",
                    shader, i->shared_bytes, dev, prof, c->max_shared_memory);
  if (i->push_size > c->max_push_constants_size)
    return aps_fail(APS_ERR_UNSUPPORTED,
                    "shader %s needs %u bytes of push constants; %s (limits %s) allows %u (maxPushConstantsSize)",
                    shader, i->push_size, dev, prof, c->max_push_constants_size);
  return APS_OK;
}

aps_status rt_shader_info(const char *shader, rt_kernel_info *out) {
  memset(out, 0, sizeof *out);
  const aps_shader_entry *e = shader ? find_shader(shader) : NULL;
  if (!e)
    return aps_fail(APS_ERR_INVALID_ARG, "no shader named '%s' is built into aps", shader ? shader : "(null)");
  rt_reflection refl;
  APS_TRY(rt_reflect(e->words, *e->size, e->name, &refl));
  *out = refl.info;
  return APS_OK;
}

static aps_status create_pipeline(rt_device *dev, rt_kernel *k, const aps_shader_entry *e) {
  const rt_caps *c = &dev->caps;
  VkDescriptorSetLayoutBinding b[RT_MAX_BINDINGS];
  for (uint32_t i = 0; i < k->info.binding_count; i++)
    b[i] = (VkDescriptorSetLayoutBinding){i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL};
  VkDescriptorSetLayoutCreateInfo dsl = {
      .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
      .flags = c->push_descriptor ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0,
      .bindingCount = k->info.binding_count,
      .pBindings = b,
  };
  RT_VK(vkCreateDescriptorSetLayout(dev->device, &dsl, NULL, &k->set_layout));
  VkPushConstantRange pcr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, k->info.push_size};
  VkPipelineLayoutCreateInfo pl = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
      .setLayoutCount = 1,
      .pSetLayouts = &k->set_layout,
      .pushConstantRangeCount = k->info.push_size ? 1 : 0,
      .pPushConstantRanges = &pcr,
  };
  RT_VK(vkCreatePipelineLayout(dev->device, &pl, NULL, &k->layout));

  VkShaderModuleCreateInfo smi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                  .codeSize = *e->size, .pCode = e->words};
  VkShaderModule module;
  RT_VK(vkCreateShaderModule(dev->device, &smi, NULL, &module));
  VkSpecializationMapEntry map[RT_MAX_SPEC];
  uint32_t values[RT_MAX_SPEC], n = k->desc.spec_count;
  for (uint32_t i = 0; i < n; i++) {
    map[i] = (VkSpecializationMapEntry){i, i * 4, 4};
    values[i] = k->desc.spec[i];
  }
  if (k->desc.f16_mask) { /* spec_count <= RT_SPEC_F16_MASK (rt_kernel_get) */
    map[n] = (VkSpecializationMapEntry){RT_SPEC_F16_MASK, n * 4, 4};
    values[n++] = k->desc.f16_mask;
  }
  VkSpecializationInfo spec = {n, map, n * 4, values};
  VkPipelineCreationFeedback feedback = {0};
  VkPipelineCreationFeedbackCreateInfo fb = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO,
      .pPipelineCreationFeedback = &feedback,
  };
  VkComputePipelineCreateInfo ci = {
      .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
      .pNext = c->pipeline_feedback ? &fb : NULL,
      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = module,
                .pName = "main",
                .pSpecializationInfo = n ? &spec : NULL},
      .layout = k->layout,
  };
  double t0 = aps_now_ms();
  VkResult r = vkCreateComputePipelines(dev->device, dev->pipeline_cache, 1, &ci, NULL, &k->pipeline);
  dev->pipeline_stats.create_ms += aps_now_ms() - t0;
  vkDestroyShaderModule(dev->device, module, NULL);
  if (r != VK_SUCCESS)
    return aps_fail_context(rt_vk_fail(r, "vkCreateComputePipelines"), "shader %s: ", e->name);
  dev->pipeline_stats.pipelines_created++;
  if (feedback.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT)
    dev->pipeline_stats.cache_hits++;
  else
    dev->pipeline_cache_dirty = 1;
  return APS_OK;
}

aps_status rt_kernel_get(rt_device *dev, const rt_kernel_desc *desc, rt_kernel **out) {
  *out = NULL;
  if (!desc || !desc->shader)
    return aps_fail(APS_ERR_INVALID_ARG, "kernel without a shader name");
  if (desc->spec_count > RT_MAX_SPEC)
    return aps_fail(APS_ERR_INVALID_ARG, "shader %s: %u specialization constants (at most %d)", desc->shader,
                    desc->spec_count, RT_MAX_SPEC);
  const aps_shader_entry *e = find_shader(desc->shader);
  if (!e)
    return aps_fail(APS_ERR_INVALID_ARG, "no shader named '%s' is built into aps (shaders/%s.comp)", desc->shader,
                    desc->shader);
  if (desc->f16_mask) { /* the fp16-storage variant of the same shader */
    char name[128];
    snprintf(name, sizeof name, "%s_f16", desc->shader);
    if (desc->spec_count > RT_SPEC_F16_MASK)
      return aps_fail(APS_ERR_INVALID_ARG, "shader %s: constant_id %d holds the fp16 mask; %u constants given",
                      desc->shader, RT_SPEC_F16_MASK, desc->spec_count);
    if (!(e = find_shader(name)))
      return aps_fail(APS_ERR_UNSUPPORTED, "shader %s has no fp16-storage variant (it does not include storage.glsl)",
                      desc->shader);
    if (!dev->caps.fp16_storage)
      return aps_fail(APS_ERR_UNSUPPORTED, "shader %s: fp16 storage asked for, but %s lacks storageBuffer16BitAccess",
                      desc->shader, dev->caps.name);
  }
  for (rt_kernel *k = dev->kernels; k; k = k->next)
    if (k->shader_name == e->name && same_desc(&k->desc, desc)) {
      *out = k;
      return APS_OK;
    }
  rt_kernel *k = calloc(1, sizeof *k);
  if (!k)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  k->desc = *desc;
  k->desc.shader = k->shader_name = e->name;
  rt_reflection refl;
  aps_status s = rt_reflect_spec(e->words, *e->size, e->name, desc->spec, desc->spec_count, &refl);
  if (s == APS_OK) {
    k->info = refl.info;
    for (int d = 0; d < 3; d++)
      if (refl.local_size_spec[d] < desc->spec_count)
        k->info.local_size[d] = desc->spec[refl.local_size_spec[d]];
    s = check_limits(&dev->caps, e->name, &k->info);
  }
  if (s == APS_OK)
    s = create_pipeline(dev, k, e);
  if (s != APS_OK) {
    kernel_free(dev, k);
    return s;
  }
  k->next = dev->kernels;
  dev->kernels = k;
  *out = k;
  return APS_OK;
}

const rt_kernel_info *rt_kernel_get_info(const rt_kernel *k) { return &k->info; }

uint32_t rt_kernel_count(const rt_device *dev, const char *shader) {
  uint32_t n = 0;
  for (const rt_kernel *k = dev->kernels; k; k = k->next)
    n += shader && !strcmp(k->shader_name, shader);
  return n;
}

void rt_pipeline_get_stats(const rt_device *dev, rt_pipeline_stats *out) { *out = dev->pipeline_stats; }
