/* Where a graph runs: a Vulkan device or the CPU device (gr_cpu_desc.fast), chosen by one
 * policy, so the method's floor never picks a Vulkan device itself.
 *
 * Policy: `request` NULL or "auto" takes a GPU when Vulkan has one (discrete > integrated
 * > virtual), and otherwise the CPU device, which is faster than a CPU Vulkan driver such
 * as lavapipe on the same cores; with `vulkan` set, "auto" takes the best Vulkan device
 * even if it is a CPU driver (benchmarks of the Vulkan path). APS_DEVICE, when set, counts
 * as a Vulkan request. "cpu" forces the CPU device; anything else (an index or part of a
 * name, as APS_DEVICE) picks that Vulkan device, lavapipe included. */
#ifndef APS_GRAPH_DEVICE_H
#define APS_GRAPH_DEVICE_H

#include "graph.h"

typedef struct gr_device gr_device;

typedef struct gr_device_desc {
  const char *request; /* NULL, "auto", "cpu", or an index or part of a Vulkan device's name */
  int vulkan;          /* "auto" never takes the CPU device */
  int quiet;           /* else the choice is printed ("aps: running on ...") */
} gr_device_desc;

aps_status gr_device_open(const gr_device_desc *desc, gr_device **out);
void gr_device_close(gr_device *d);
/* "NVIDIA H200 (Vulkan)", "CPU device (oneDNN + OpenMP)". */
const char *gr_device_name(const gr_device *d);
/* The Vulkan device, or NULL for the CPU device. */
rt_device *gr_device_vulkan(const gr_device *d);
/* The memory a graph may plan on it: the largest device-local heap of a Vulkan device, the
 * physical memory for the CPU device (0: unknown). */
uint64_t gr_device_memory_bytes(const gr_device *d);
/* Whether the choice was automatic (the request was NULL or "auto"). */
int gr_device_automatic(const gr_device *d);

#endif
