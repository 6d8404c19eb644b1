/* runtime/ — the layer through which aps reaches a Vulkan device.
 *
 * Contract
 * - It knows buffers, kernels (compute shaders by name) and streams of dispatches; never
 *   tensors or layers. Vulkan types do not appear here: the layers above never call Vulkan.
 * - Every fallible call returns an aps_status and leaves a message (aps_last_error()).
 *   Nothing aborts. Zero-initialised descriptor structs mean defaults.
 * - Lifetime: rt_device_create -> buffers, streams -> rt_device_destroy. Objects made by a
 *   device must be destroyed before it. A device is used from one thread at a time.
 *
 * Environment
 *   APS_DEVICE=<index|name substring>  pick a device (else: discrete > integrated > CPU)
 *   APS_VALIDATE=1                     Khronos validation layer + debug messenger; every
 *                                      message is counted (rt_device_validation_messages)
 *   APS_VALIDATE_SYNC=1                also synchronization validation
 *   APS_VULKAN_LIBRARY=<path>          load this Vulkan loader instead of libvulkan.so.1
 *   APS_QUIRK_<NAME>=0|1               override a quirk flag (see rt_quirk)
 *   APS_LIMITS=device|vulkan-min       the limits kernels and plans must respect: the device's
 *                                      own (default), or clamped to the Vulkan 1.1 required
 *                                      minimums (rt_caps.limits names the profile in effect)
 *   XDG_CACHE_HOME                     the pipeline cache lives in $XDG_CACHE_HOME/aps/
 *   APS_PIPELINE_CACHE=0               do not read or write the on-disk pipeline cache
 *
 * Memory
 *   Buffers are suballocated from a few large VkDeviceMemory blocks. On unified-memory
 *   devices (integrated GPUs, lavapipe) device buffers are host-visible and mapped, and
 *   rt_buffer_write/read are plain copies; elsewhere they go through a staging buffer.
 *   Writes and reads are synchronous and must not overlap work in flight on the buffer.
 *
 * Streams
 *   A stream records dispatches and copies into one command buffer. Each binding of a
 *   dispatch names a buffer range; whether the kernel reads or writes it comes from the
 *   kernel's SPIR-V (NonWritable/NonReadable). A barrier is recorded only when a range
 *   written earlier in the stream (and not yet behind a barrier) is read or written again,
 *   or a range read earlier is written. Once ended, a stream can be submitted any number
 *   of times (the recording is replayed; buffer contents may change between submits).
 */
#ifndef APS_RT_H
#define APS_RT_H

#include <stddef.h>
#include <stdint.h>

#include "aps_status.h"

typedef struct rt_device rt_device;
typedef struct rt_buffer rt_buffer;
typedef struct rt_kernel rt_kernel;
typedef struct rt_stream rt_stream;

/* ---------------------------------------------------------------- capabilities */

typedef enum rt_device_type {
  RT_DEVICE_OTHER = 0,
  RT_DEVICE_CPU,
  RT_DEVICE_VIRTUAL_GPU,
  RT_DEVICE_INTEGRATED_GPU,
  RT_DEVICE_DISCRETE_GPU,
} rt_device_type;

/* Named driver quirks. Each has a default derived from the driver and can be overridden
 * by APS_QUIRK_<NAME>=0|1 (NAME as in rt_quirk_name, upper case). */
typedef enum rt_quirk {
  /* lavapipe: run without worker threads (LP_NUM_THREADS=0) — cheaper dispatches, less
   * throughput on big kernels. See docs/LAVAPIPE.md for the measurement behind the default. */
  RT_QUIRK_LVP_SINGLE_THREAD = 0,
  /* Do not use VK_KHR_push_descriptor even if present (descriptor sets from a pool). */
  RT_QUIRK_NO_PUSH_DESCRIPTOR,
  /* Treat the device as discrete: device buffers are not mapped, transfers use staging. */
  RT_QUIRK_FORCE_STAGING,
  /* Do not use 16-bit storage buffers even if the device has them (fp16_storage reads 0). */
  RT_QUIRK_NO_FP16_STORAGE,
  RT_QUIRK_COUNT
} rt_quirk;

const char *rt_quirk_name(rt_quirk q); /* "lvp_single_thread", ... */

typedef struct rt_coopmat_shape {
  uint32_t m, n, k;
  uint32_t a_type, b_type, c_type, result_type; /* VkComponentTypeKHR values */
  uint32_t scope;                               /* VkScopeKHR value */
} rt_coopmat_shape;

enum { RT_MAX_COOPMAT_SHAPES = 16 };

/* Everything aps needs to know about a device, probed once. Kernels read this; nothing
 * else guesses. */
typedef struct rt_caps {
  char name[256];
  char driver_name[256];
  char driver_info[256];
  rt_device_type type;
  uint32_t vendor_id, device_id, driver_id, driver_version, api_version;
  uint8_t pipeline_cache_uuid[16];
  int is_lavapipe;

  /* limits */
  uint64_t max_storage_buffer_range;
  uint64_t max_memory_allocation_size;
  uint64_t device_local_heap_size; /* largest DEVICE_LOCAL heap */
  uint64_t min_storage_buffer_offset_alignment;
  uint32_t max_shared_memory;
  uint32_t max_workgroup_invocations;
  uint32_t max_workgroup_size[3];
  uint32_t max_workgroup_count[3];
  uint32_t max_push_constants_size;
  uint32_t max_storage_buffers; /* maxPerStageDescriptorStorageBuffers */
  char limits[16];              /* the APS_LIMITS profile in effect: "device" or "vulkan-min" */

  /* subgroups */
  uint32_t subgroup_size, min_subgroup_size, max_subgroup_size;
  uint32_t subgroup_ops; /* VkSubgroupFeatureFlags in compute */
  int subgroup_size_control;

  /* precisions */
  int fp16_storage, fp16_arithmetic, int8_storage, int8_arithmetic;

  /* cooperative matrix (VK_KHR_cooperative_matrix) */
  int coopmat;
  uint32_t coopmat_shape_count;
  rt_coopmat_shape coopmat_shapes[RT_MAX_COOPMAT_SHAPES];

  /* memory model and queues */
  int unified_memory;        /* device-local memory is host-visible and mapped */
  int push_descriptor;       /* VK_KHR_push_descriptor is used */
  int pipeline_feedback;     /* VK_EXT_pipeline_creation_feedback: cache hits are reported */
  float timestamp_period_ns; /* ns per timestamp tick */
  uint32_t timestamp_valid_bits;

  int quirks[RT_QUIRK_COUNT];
} rt_caps;

const char *rt_device_type_name(rt_device_type t); /* "discrete GPU", "CPU", ... */

/* ---------------------------------------------------------------- devices */

enum { RT_MAX_DEVICES = 16 };

typedef struct rt_device_list {
  uint32_t count;
  rt_caps caps[RT_MAX_DEVICES];
  uint32_t chosen; /* index the selection policy and APS_DEVICE pick */
} rt_device_list;

/* Lists every Vulkan device with its capabilities and which one would be chosen.
 * Fails (with the list of devices in the message) when APS_DEVICE matches none. */
aps_status rt_enumerate(rt_device_list *out);

/* The selection policy, exposed for tests: the index of the best device among types[n]
 * (discrete > integrated > virtual > CPU > other; first wins ties), or, when `want` is
 * non-NULL and non-empty, the device it names by index or case-insensitive name
 * substring. Returns -1 when `want` matches nothing. */
int rt_select_device(const rt_caps *caps, uint32_t n, const char *want);

typedef struct rt_device_desc {
  const char *device;   /* like APS_DEVICE; NULL = use APS_DEVICE or the policy */
  uint64_t block_size;  /* suballocator block size; 0 = default (64 MiB, clamped) */
  int quiet;            /* do not print which device runs */
} rt_device_desc;

aps_status rt_device_create(const rt_device_desc *desc, rt_device **out);
void rt_device_destroy(rt_device *dev);
const rt_caps *rt_device_caps(const rt_device *dev);
/* Validation messages (warnings and errors) seen since the device was created. */
unsigned rt_device_validation_messages(const rt_device *dev);
/* Validation messages seen by this process so far, including during device teardown. */
unsigned rt_validation_messages_total(void);

/* ---------------------------------------------------------------- memory */

typedef enum rt_memory {
  RT_MEMORY_DEVICE = 0, /* for kernels; mapped on unified-memory devices */
  RT_MEMORY_HOST,       /* host-visible (staging, read-back); kernels may use it too */
} rt_memory;

typedef struct rt_memory_stats {
  uint64_t blocks, block_bytes;   /* VkDeviceMemory objects and their total size */
  uint64_t live_buffers, live_bytes;
  uint64_t dedicated;             /* allocations too large for a block */
} rt_memory_stats;

aps_status rt_buffer_create(rt_device *dev, uint64_t size, rt_memory mem, rt_buffer **out);
void rt_buffer_destroy(rt_buffer *buf);
uint64_t rt_buffer_size(const rt_buffer *buf);
/* The host pointer of a mapped buffer, or NULL when the buffer is not host-visible. */
void *rt_buffer_map(rt_buffer *buf);
aps_status rt_buffer_write(rt_buffer *buf, uint64_t offset, const void *src, uint64_t size);
aps_status rt_buffer_read(rt_buffer *buf, uint64_t offset, void *dst, uint64_t size);
aps_status rt_buffer_fill(rt_buffer *buf, uint64_t offset, uint64_t size, uint32_t value);
void rt_memory_get_stats(const rt_device *dev, rt_memory_stats *out);

/* ---------------------------------------------------------------- kernels */

/* RT_SPEC_F16_MASK: the constant_id of a kernel's fp16-storage mask (rt_kernel_desc.f16_mask). */
enum { RT_MAX_BINDINGS = 16, RT_MAX_SPEC = 32, RT_SPEC_F16_MASK = 31 };

typedef enum rt_access { RT_ACCESS_READ = 1, RT_ACCESS_WRITE = 2, RT_ACCESS_READ_WRITE = 3 } rt_access;

/* What a kernel's SPIR-V says about its interface. */
typedef struct rt_kernel_info {
  uint32_t binding_count; /* bindings 0..binding_count-1 of set 0, all storage buffers */
  rt_access access[RT_MAX_BINDINGS];
  uint32_t push_size;     /* bytes of the push-constant block */
  uint32_t local_size[3]; /* after specialization */
  uint32_t shared_bytes;  /* workgroup (shared) memory, after specialization */
} rt_kernel_info;

typedef struct rt_kernel_desc {
  const char *shader; /* name of shaders/<name>.comp */
  uint32_t spec_count;
  uint32_t spec[RT_MAX_SPEC]; /* values of constant_id 0..spec_count-1 (32-bit each) */
  /* fp16 storage: bit b set = binding b holds IEEE halves. Non-zero selects the shader's
   * variant <name>_f16 (built with -DAPS_F16, see shaders/storage.glsl) with the mask as
   * constant_id RT_SPEC_F16_MASK (then spec_count <= RT_SPEC_F16_MASK); needs the device's
   * fp16_storage. Each dispatch's bindings must agree (rt_binding.f16). */
  uint32_t f16_mask;
} rt_kernel_desc;

/* Returns the pipeline for (shader, specialization), created on first request and kept
 * by the device (do not destroy it). Before creating it, the reflected interface is checked
 * against the caps (storage buffers per stage, workgroup size and invocations, shared
 * memory, push constants): APS_ERR_UNSUPPORTED naming the shader and the limit otherwise. */
aps_status rt_kernel_get(rt_device *dev, const rt_kernel_desc *desc, rt_kernel **out);
const rt_kernel_info *rt_kernel_get_info(const rt_kernel *k);
/* What a built-in shader's SPIR-V says with its default specialization, without making a
 * pipeline (so a lowering can pick a variant that fits the device's limits). Fails when
 * no shader has that name. */
aps_status rt_shader_info(const char *shader, rt_kernel_info *out);
/* How many pipelines the device has made from this shader (exact name, any specialization):
 * lets tests see which kernel variant a plan chose. */
uint32_t rt_kernel_count(const rt_device *dev, const char *shader);

typedef struct rt_pipeline_stats {
  uint32_t pipelines_created;
  uint32_t cache_hits;       /* pipelines the driver reported as found in the cache */
  double create_ms;          /* total time spent creating pipelines */
  int cache_loaded;          /* an on-disk cache was found valid and loaded */
  uint64_t cache_bytes_loaded;
} rt_pipeline_stats;

void rt_pipeline_get_stats(const rt_device *dev, rt_pipeline_stats *out);
/* The file the pipeline cache is read from and written to ("" when disabled). */
const char *rt_pipeline_cache_path(const rt_device *dev);
/* Writes the pipeline cache now (also done by rt_device_destroy). */
aps_status rt_pipeline_cache_save(rt_device *dev);

/* ---------------------------------------------------------------- streams */

typedef struct rt_binding {
  rt_buffer *buffer;
  uint64_t offset;
  uint64_t size; /* 0 = to the end of the buffer */
  int f16;       /* the range holds IEEE halves (the kernel's f16_mask must say so) */
} rt_binding;

typedef struct rt_dispatch {
  rt_kernel *kernel;
  rt_binding bindings[RT_MAX_BINDINGS]; /* one per binding of the kernel */
  const void *push;                     /* kernel's push_size bytes */
  uint32_t groups[3];                   /* 0 counts as 1 */
  const char *name;                     /* for timestamps and error messages */
} rt_dispatch;

typedef struct rt_stream_desc {
  uint32_t max_timestamps; /* 0 = no timing; else time up to this many dispatches */
} rt_stream_desc;

typedef struct rt_stream_stats {
  uint32_t dispatches, copies, barriers;
} rt_stream_stats;

aps_status rt_stream_create(rt_device *dev, const rt_stream_desc *desc, rt_stream **out);
void rt_stream_destroy(rt_stream *s);
/* Starts a new recording (drops the previous one). */
aps_status rt_stream_begin(rt_stream *s);
aps_status rt_stream_dispatch(rt_stream *s, const rt_dispatch *d);
aps_status rt_stream_copy(rt_stream *s, rt_buffer *src, uint64_t src_offset, rt_buffer *dst,
                          uint64_t dst_offset, uint64_t size);
/* Records a full barrier now (rarely needed: hazards are found automatically). */
aps_status rt_stream_barrier(rt_stream *s);
aps_status rt_stream_end(rt_stream *s);
aps_status rt_stream_submit(rt_stream *s);
/* Waits for the last submit; APS_ERR_TIMEOUT after timeout_ns (UINT64_MAX = forever). */
aps_status rt_stream_wait(rt_stream *s, uint64_t timeout_ns);
/* submit + wait forever */
aps_status rt_stream_run(rt_stream *s);
void rt_stream_get_stats(const rt_stream *s, rt_stream_stats *out);

typedef struct rt_timing {
  const char *name; /* the dispatch's name (valid while the recording lives) */
  double ms;        /* GPU time of this dispatch */
} rt_timing;

/* After a wait: the timed dispatches of the last submit, in order. Returns the count. */
uint32_t rt_stream_timings(rt_stream *s, rt_timing *out, uint32_t max);
/* Raw timestamps (ns since the first) of the last submit; count = timed dispatches + 1. */
uint32_t rt_stream_timestamps(rt_stream *s, double *ns_out, uint32_t max);

#endif
