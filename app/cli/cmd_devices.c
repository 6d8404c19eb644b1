/* aps devices: every Vulkan device, its capability struct, and which one would run. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "graph.h" /* and through it rt.h: the devices and kernels measured here */

static void print_caps_text(const rt_caps *c, unsigned index, int chosen) {
  printf("%s device %u: %s\n", chosen ? "*" : " ", index, c->name);
  printf("    type %s, vendor 0x%04x, device 0x%04x, driver %s (%s), Vulkan %u.%u.%u\n",
         rt_device_type_name(c->type), c->vendor_id, c->device_id, c->driver_name, c->driver_info,
         c->api_version >> 22, (c->api_version >> 12) & 0x3ff, c->api_version & 0xfff);
  printf("    limits (profile %s): storage buffer range %.0f MiB, allocation %.0f MiB, device-local heap %.0f MiB,\n"
         "            shared memory %u KiB, workgroup %u invocations (%u, %u, %u), push constants %u B,\n"
         "            %u storage buffers per stage\n",
         c->limits, c->max_storage_buffer_range / 1048576.0, c->max_memory_allocation_size / 1048576.0,
         c->device_local_heap_size / 1048576.0, c->max_shared_memory / 1024, c->max_workgroup_invocations,
         c->max_workgroup_size[0], c->max_workgroup_size[1], c->max_workgroup_size[2], c->max_push_constants_size,
         c->max_storage_buffers);
  printf("    subgroup size %u (range %u-%u%s), ops 0x%x\n", c->subgroup_size, c->min_subgroup_size,
         c->max_subgroup_size, c->subgroup_size_control ? ", controllable" : "", c->subgroup_ops);
  printf("    fp16 storage/arith %d/%d, int8 storage/arith %d/%d, cooperative matrix %s (%u shapes)\n",
         c->fp16_storage, c->fp16_arithmetic, c->int8_storage, c->int8_arithmetic, c->coopmat ? "yes" : "no",
         c->coopmat_shape_count);
  for (uint32_t i = 0; i < c->coopmat_shape_count; i++)
    printf("      coopmat %ux%ux%u types A%u B%u C%u R%u scope %u\n", c->coopmat_shapes[i].m, c->coopmat_shapes[i].n,
           c->coopmat_shapes[i].k, c->coopmat_shapes[i].a_type, c->coopmat_shapes[i].b_type,
           c->coopmat_shapes[i].c_type, c->coopmat_shapes[i].result_type, c->coopmat_shapes[i].scope);
  printf("    unified memory %d, push descriptors %d, timestamps %.3f ns/tick (%u bits)\n", c->unified_memory,
         c->push_descriptor, c->timestamp_period_ns, c->timestamp_valid_bits);
  printf("    quirks:");
  for (int q = 0; q < RT_QUIRK_COUNT; q++)
    printf(" %s=%d", rt_quirk_name((rt_quirk)q), c->quirks[q]);
  printf("\n");
}

static void print_caps_json(const rt_caps *c, unsigned index, int chosen, int last) {
  printf("    {\"index\": %u, \"chosen\": %s, \"name\": \"%s\", \"type\": \"%s\", \"vendor_id\": %u, "
         "\"device_id\": %u, \"driver\": \"%s\", \"driver_info\": \"%s\", \"api_version\": \"%u.%u.%u\",\n",
         index, chosen ? "true" : "false", c->name, rt_device_type_name(c->type), c->vendor_id, c->device_id,
         c->driver_name, c->driver_info, c->api_version >> 22, (c->api_version >> 12) & 0x3ff,
         c->api_version & 0xfff);
  printf("     \"max_storage_buffer_range\": %llu, \"max_memory_allocation_size\": %llu, "
         "\"device_local_heap_size\": %llu, \"max_shared_memory\": %u, \"max_workgroup_invocations\": %u, "
         "\"max_workgroup_size\": [%u, %u, %u], \"max_push_constants_size\": %u, \"max_storage_buffers\": %u, "
         "\"limits\": \"%s\",\n",
         (unsigned long long)c->max_storage_buffer_range, (unsigned long long)c->max_memory_allocation_size,
         (unsigned long long)c->device_local_heap_size, c->max_shared_memory, c->max_workgroup_invocations,
         c->max_workgroup_size[0], c->max_workgroup_size[1], c->max_workgroup_size[2], c->max_push_constants_size,
         c->max_storage_buffers, c->limits);
  printf("     \"subgroup_size\": %u, \"min_subgroup_size\": %u, \"max_subgroup_size\": %u, \"subgroup_ops\": %u, "
         "\"fp16_storage\": %d, \"fp16_arithmetic\": %d, \"int8_storage\": %d, \"int8_arithmetic\": %d, "
         "\"cooperative_matrix_shapes\": %u, \"unified_memory\": %d, \"push_descriptor\": %d, "
         "\"timestamp_period_ns\": %g, \"quirks\": {",
         c->subgroup_size, c->min_subgroup_size, c->max_subgroup_size, c->subgroup_ops, c->fp16_storage,
         c->fp16_arithmetic, c->int8_storage, c->int8_arithmetic, c->coopmat_shape_count, c->unified_memory,
         c->push_descriptor, c->timestamp_period_ns);
  for (int q = 0; q < RT_QUIRK_COUNT; q++)
    printf("%s\"%s\": %d", q ? ", " : "", rt_quirk_name((rt_quirk)q), c->quirks[q]);
  printf("}}%s\n", last ? "" : ",");
}

int cmd_devices(const cli_options *o) {
  static rt_device_list list;
  if (o->device)
    setenv("APS_DEVICE", o->device, 1);
  aps_status s = rt_enumerate(&list);
  if (s != APS_OK) {
    fprintf(stderr, "aps devices: %s\n", aps_last_error());
    return 1;
  }
  if (o->json) {
    printf("{\"chosen\": %u, \"devices\": [\n", list.chosen);
    for (uint32_t i = 0; i < list.count; i++)
      print_caps_json(&list.caps[i], i, i == list.chosen, i + 1 == list.count);
    printf("]}\n");
    return 0;
  }
  for (uint32_t i = 0; i < list.count; i++)
    print_caps_text(&list.caps[i], i, i == list.chosen);
  printf("chosen: device %u (%s)%s\n", list.chosen, list.caps[list.chosen].name,
         list.caps[list.chosen].type == RT_DEVICE_CPU ? " — a CPU implementation of Vulkan" : "");
  return 0;
}
