/* What the lowering functions of every op share: bindings of tensors, the epilogue's
 * specialisation constants, workgroup counts, and recording a dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lower.h"

rt_binding gr_lower_binding(gr_lower *L, uint32_t tensor) {
  const gr_storage *s = &L->st[gr_root_of(L->g, tensor)];
  return (rt_binding){s->buffer, s->offset, (uint64_t)gr_shape_count(L->g->t[tensor].shape) * (s->f16 ? 2 : 4), s->f16};
}

rt_binding gr_lower_dummy(gr_lower *L) { return (rt_binding){.buffer = L->dummy}; }

void gr_lower_epilogue(gr_lower *L, const gr_node *n, rt_kernel_desc *kd, rt_dispatch *d, int first) {
  if (kd->spec_count < 21)
    kd->spec_count = 21;
  kd->spec[8] = (uint32_t)n->ep.count;
  for (int i = 0; i < 4; i++) {
    const gr_epilogue_step *s = &n->ep.step[i];
    if (i < n->ep.count) {
      kd->spec[9 + i] = s->fn | (s->is_binary ? 256u : 0u) | ((uint32_t)s->bcast << 9) | (s->operand_first ? 2048u : 0u) |
                        (s->window_channels << 12);
      kd->spec[13 + i] = gr_float_bits(s->a);
      kd->spec[17 + i] = gr_float_bits(s->b);
    }
    d->bindings[first + i] = i < n->ep.count && s->is_binary ? gr_lower_binding(L, s->operand)
                                                             : gr_lower_dummy(L);
  }
}

/* On a device with fewer storage buffers per stage than a shader declares (4 at Vulkan's
 * minimum), its <name>_b4 variant (cmake/shaders.cmake) runs instead, provided every binding
 * it lacks is one the node does not use: the dummy, or a range it binds anyway. */
static aps_status few_bindings(gr_lower *L, const gr_node *n, const rt_dispatch *d, const char *shader,
                               char *variant, size_t size) {
  const rt_caps *c = rt_device_caps(L->dev);
  rt_kernel_info full, few;
  if (c->max_storage_buffers >= RT_MAX_BINDINGS || rt_shader_info(shader, &full) != APS_OK ||
      full.binding_count <= c->max_storage_buffers)
    return APS_OK;
  snprintf(variant, size, "%s_b4", shader);
  if (rt_shader_info(variant, &few) != APS_OK) {
    variant[0] = 0;
    return APS_OK; /* rt_kernel_get refuses it, naming the limit */
  }
  for (uint32_t b = few.binding_count; b < full.binding_count; b++) {
    const rt_binding *x = &d->bindings[b];
    int spare = x->buffer == L->dummy;
    for (uint32_t a = 0; a < few.binding_count && !spare; a++)
      spare = x->buffer == d->bindings[a].buffer && x->offset == d->bindings[a].offset && x->size == d->bindings[a].size;
    if (!spare)
      return aps_fail(APS_ERR_UNSUPPORTED,
                      "node %s: shader %s needs binding %u (a fused operand, statistics or second input), but %s "
                      "(limits %s) allows %u storage buffers per stage (maxPerStageDescriptorStorageBuffers)",
                      n->name, shader, b, c->name, c->limits, c->max_storage_buffers);
  }
  return APS_OK;
}

aps_status gr_lower_kernel(gr_lower *L, const gr_node *n, const rt_kernel_desc *kd, rt_dispatch *d) {
  rt_kernel_desc f16 = *kd; /* the bindings that hold halves pick the shader's fp16 variant */
  char variant[64] = "";
  APS_TRY(few_bindings(L, n, d, kd->shader, variant, sizeof variant));
  if (variant[0])
    f16.shader = variant;
  for (int b = 0; b < RT_MAX_BINDINGS; b++)
    f16.f16_mask |= d->bindings[b].f16 ? 1u << b : 0u;
  rt_kernel *k;
  aps_status s = rt_kernel_get(L->dev, &f16, &k);
  if (s != APS_OK)
    return aps_fail_context(s, "node %s: ", n->name);
  d->kernel = k;
  d->name = n->name;
  return APS_OK;
}

aps_status gr_lower_dispatch(gr_lower *L, const gr_node *n, const rt_kernel_desc *kd, rt_dispatch *d) {
  APS_TRY(gr_lower_kernel(L, n, kd, d));
  aps_status s = rt_stream_dispatch(L->stream, d);
  return s == APS_OK ? APS_OK : aps_fail_context(s, "node %s: ", n->name);
}

aps_status gr_lower_one_to_one(gr_lower *L, const gr_node *n, const rt_kernel_desc *kd, const void *push,
                               uint64_t workgroups) {
  rt_dispatch d = {.push = push, .bindings = {gr_lower_binding(L, n->inputs[0]), gr_lower_binding(L, n->output)}};
  gr_lower_groups(L, workgroups, d.groups);
  return gr_lower_dispatch(L, n, kd, &d);
}

void gr_lower_groups(gr_lower *L, uint64_t groups, uint32_t out[3]) {
  uint64_t maxx = rt_device_caps(L->dev)->max_workgroup_count[0];
  if (maxx > 65535)
    maxx = 65535;
  if (groups == 0)
    groups = 1;
  out[0] = (uint32_t)(groups < maxx ? groups : maxx);
  out[1] = (uint32_t)((groups + out[0] - 1) / out[0]);
  out[2] = 1;
}

/* GPU-shaped kernels (big workgroups, shared-memory tiles) on GPUs; lavapipe-shaped ones
 * (one 8-lane subgroup per workgroup, broadcasts) on lavapipe and other CPU devices, where
 * shared memory does not pay (docs/LAVAPIPE.md). APS_KERNEL_VARIANT=gpu|lavapipe forces one
 * (tests run the GPU variants on lavapipe this way). The tiled variant needs `shared` bytes. */
aps_status gr_lower_variant(gr_lower *L, const gr_node *n, uint32_t shared, int *tiled, uint32_t *wg) {
  const rt_caps *c = rt_device_caps(L->dev);
  const char *v = getenv("APS_KERNEL_VARIANT");
  if (v && *v && strcmp(v, "gpu") && strcmp(v, "lavapipe") && strcmp(v, "timed"))
    return aps_fail(APS_ERR_INVALID_ARG,
                    "node %s: APS_KERNEL_VARIANT='%s' is not a variant (known: gpu, lavapipe, timed)", n->name, v);
  /* GPUs time both once per shape (lower_timed.c), where their timestamps allow; lavapipe is
   * known to want its own */
  int gpu = !c->is_lavapipe && c->type != RT_DEVICE_CPU;
  if (v && *v)
    *tiled = !strcmp(v, "gpu") ? GR_VARIANT_TILED : !strcmp(v, "timed") ? GR_VARIANT_TIMED : GR_VARIANT_PLAIN;
  else
    *tiled = !gpu ? GR_VARIANT_PLAIN : c->timestamp_valid_bits ? GR_VARIANT_TIMED : GR_VARIANT_TILED;
  *wg = c->max_workgroup_invocations >= 256 && c->max_workgroup_size[0] >= 16 && c->max_workgroup_size[1] >= 16 ? 16
                                                                                                               : 8;
  if (*tiled == GR_VARIANT_TIMED && !c->timestamp_valid_bits)
    *tiled = GR_VARIANT_TILED;
  if (*tiled && c->max_shared_memory < shared)
    *tiled = GR_VARIANT_PLAIN;
  return APS_OK;
}
