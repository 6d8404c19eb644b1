/* The VkPipelineCache persisted in $XDG_CACHE_HOME/aps/ behind a header of our own that
 * must match this device, driver and library exactly; anything else is ignored with a
 * warning (never trusted: some drivers crash on foreign cache data). Written to a
 * temporary file, fsync'd and renamed, so a crash never leaves a torn cache. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aps_file.h"
#include "rt_internal.h"

#define CACHE_MAGIC "APSPIPE1"
#define LIBRARY_VERSION "aps-0.1.0"

typedef struct cache_header {
  char magic[8];
  char library[16];
  uint32_t vendor_id, device_id, driver_id, driver_version;
  uint8_t uuid[16];
  uint64_t data_size;
  uint64_t checksum; /* FNV-1a 64 of the data */
} cache_header;

static uint64_t fnv1a(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static void make_header(const rt_caps *c, cache_header *h) {
  memset(h, 0, sizeof *h);
  memcpy(h->magic, CACHE_MAGIC, 8);
  snprintf(h->library, sizeof h->library, "%s", LIBRARY_VERSION);
  h->vendor_id = c->vendor_id;
  h->device_id = c->device_id;
  h->driver_id = c->driver_id;
  h->driver_version = c->driver_version;
  memcpy(h->uuid, c->pipeline_cache_uuid, 16);
}

static int mkdirs(char *path) {
  for (char *p = path + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      int r = mkdir(path, 0755);
      *p = '/';
      if (r && errno != EEXIST)
        return -1;
    }
  return 0;
}

static void choose_path(rt_device *dev) {
  dev->pipeline_cache_path[0] = 0;
  if (!rt_env_flag("APS_PIPELINE_CACHE", 1))
    return;
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  char dir[768];
  if (xdg && *xdg)
    snprintf(dir, sizeof dir, "%s/aps", xdg);
  else if (home && *home)
    snprintf(dir, sizeof dir, "%s/.cache/aps", home);
  else
    return;
  snprintf(dev->pipeline_cache_path, sizeof dev->pipeline_cache_path, "%s/pipelines-%04x-%04x.bin", dir,
           dev->caps.vendor_id, dev->caps.device_id);
}

/* Returns a malloc'd blob of validated cache data, or NULL (with a warning when a file
 * existed but could not be used). */
static void *read_cache(rt_device *dev, size_t *size) {
  const char *path = dev->pipeline_cache_path;
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  cache_header want, got;
  make_header(&dev->caps, &want);
  void *data = NULL;
  const char *why = NULL;
  if (fread(&got, sizeof got, 1, f) != 1)
    why = "truncated header";
  else if (memcmp(got.magic, want.magic, 8))
    why = "not an aps pipeline cache";
  else if (memcmp(got.library, want.library, sizeof want.library))
    why = "written by another aps version";
  else if (got.vendor_id != want.vendor_id || got.device_id != want.device_id)
    why = "written for another device";
  else if (got.driver_id != want.driver_id || got.driver_version != want.driver_version)
    why = "written by another driver version";
  else if (memcmp(got.uuid, want.uuid, 16))
    why = "pipeline cache UUID differs";
  else if (got.data_size == 0 || got.data_size > (256ull << 20))
    why = "implausible data size";
  else if (!(data = malloc(got.data_size)))
    why = "out of host memory";
  else if (fread(data, 1, got.data_size, f) != got.data_size)
    why = "truncated data";
  else if (fnv1a(data, got.data_size) != got.checksum)
    why = "checksum mismatch (corrupt file)";
  fclose(f);
  if (why) {
    aps_warn("pipeline cache %s ignored: %s", path, why);
    free(data);
    return NULL;
  }
  *size = got.data_size;
  return data;
}

void rt_pipeline_cache_open(rt_device *dev) {
  choose_path(dev);
  size_t size = 0;
  void *data = dev->pipeline_cache_path[0] ? read_cache(dev, &size) : NULL;
  VkPipelineCacheCreateInfo ci = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
      .initialDataSize = size,
      .pInitialData = data,
  };
  VkResult r = vkCreatePipelineCache(dev->device, &ci, NULL, &dev->pipeline_cache);
  if (r != VK_SUCCESS && data) {
    aps_warn("pipeline cache %s rejected by the driver (%s); starting empty", dev->pipeline_cache_path,
             rt_vk_result_name(r));
    ci.initialDataSize = 0;
    ci.pInitialData = NULL;
    r = vkCreatePipelineCache(dev->device, &ci, NULL, &dev->pipeline_cache);
    size = 0;
  }
  if (r != VK_SUCCESS)
    dev->pipeline_cache = VK_NULL_HANDLE; /* pipelines still work without one */
  dev->pipeline_stats.cache_loaded = size > 0;
  dev->pipeline_stats.cache_bytes_loaded = size;
  free(data);
}

aps_status rt_pipeline_cache_save(rt_device *dev) {
  if (!dev->pipeline_cache || !dev->pipeline_cache_path[0] || !dev->pipeline_cache_dirty)
    return APS_OK;
  size_t size = 0;
  RT_VK(vkGetPipelineCacheData(dev->device, dev->pipeline_cache, &size, NULL));
  void *data = malloc(size ? size : 1);
  if (!data)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory saving the pipeline cache");
  VkResult r = vkGetPipelineCacheData(dev->device, dev->pipeline_cache, &size, data);
  if (r != VK_SUCCESS) {
    free(data);
    return rt_vk_fail(r, "vkGetPipelineCacheData");
  }
  cache_header h;
  make_header(&dev->caps, &h);
  h.data_size = size;
  h.checksum = fnv1a(data, size);

  aps_status s = APS_OK;
  if (mkdirs(dev->pipeline_cache_path))
    s = aps_fail(APS_ERR_IO, "cannot create the folder of pipeline cache %s: %s", dev->pipeline_cache_path,
                 strerror(errno));
  else
    s = aps_file_write_atomic(dev->pipeline_cache_path, (aps_file_part[]){{&h, sizeof h}, {data, size}}, 2);
  free(data);
  if (s == APS_OK)
    dev->pipeline_cache_dirty = 0;
  return s;
}

void rt_pipeline_cache_close(rt_device *dev) {
  if (!dev->pipeline_cache)
    return;
  if (rt_pipeline_cache_save(dev) != APS_OK)
    aps_warn("%s", aps_last_error());
  vkDestroyPipelineCache(dev->device, dev->pipeline_cache, NULL);
  dev->pipeline_cache = VK_NULL_HANDLE;
}

const char *rt_pipeline_cache_path(const rt_device *dev) { return dev->pipeline_cache_path; }
