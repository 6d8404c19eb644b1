#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aps_log.h"

struct gr_device {
  rt_device *dev; /* NULL: the CPU device */
  int automatic;
  char name[300];
};

/* Is there a Vulkan GPU (not a CPU driver)? Quietly false when Vulkan is absent. */
static int vulkan_has_gpu(void) {
  rt_device_list list;
  if (rt_enumerate(&list) != APS_OK)
    return aps_clear_error(), 0;
  for (uint32_t i = 0; i < list.count; i++)
    if (list.caps[i].type == RT_DEVICE_DISCRETE_GPU || list.caps[i].type == RT_DEVICE_INTEGRATED_GPU ||
        list.caps[i].type == RT_DEVICE_VIRTUAL_GPU)
      return 1;
  return 0;
}

aps_status gr_device_open(const gr_device_desc *desc, gr_device **out) {
  gr_device_desc d = desc ? *desc : (gr_device_desc){0};
  *out = NULL;
  gr_device *r = calloc(1, sizeof *r);
  if (!r)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  const char *env = getenv("APS_DEVICE");
  if ((d.request && !*d.request) || (!d.request && env && !*env)) { /* "" must not silently pick a device */
    free(r);
    return aps_fail(APS_ERR_INVALID_ARG, "%s is an empty string: give cpu, auto, or a Vulkan device's index or "
                    "part of its name", d.request ? "the device request" : "APS_DEVICE");
  }
  r->automatic = !d.request || !strcmp(d.request, "auto");
  int cpu = d.request && !strcmp(d.request, "cpu");
  if (r->automatic && !d.vulkan && !getenv("APS_DEVICE"))
    cpu = !vulkan_has_gpu();
  if (cpu) {
    snprintf(r->name, sizeof r->name, "CPU device (oneDNN + OpenMP)");
  } else {
    aps_status s = rt_device_create(&(rt_device_desc){.device = r->automatic ? NULL : d.request, .quiet = 1}, &r->dev);
    if (s != APS_OK) {
      free(r);
      return s;
    }
    snprintf(r->name, sizeof r->name, "%s (Vulkan)", rt_device_caps(r->dev)->name);
  }
  if (!d.quiet)
    aps_info("running on %s", r->name);
  *out = r;
  return APS_OK;
}

void gr_device_close(gr_device *d) {
  if (!d)
    return;
  rt_device_destroy(d->dev);
  free(d);
}

const char *gr_device_name(const gr_device *d) { return d->name; }
rt_device *gr_device_vulkan(const gr_device *d) { return d->dev; }
int gr_device_automatic(const gr_device *d) { return d->automatic; }

uint64_t gr_device_memory_bytes(const gr_device *d) {
  if (d->dev)
    return rt_device_caps(d->dev)->device_local_heap_size;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}
