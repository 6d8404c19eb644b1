/* A PNG as one image (image_read.h), through stb_image (Debian's libstb). */
#include "image_read.h"

#include <stdint.h>
#include <stdlib.h>

#include <stb/stb_image.h>

aps_status aps_png_read_image(const char *path, int *c, int *h, int *w, float **out) {
  *out = NULL;
  int comp = 0;
  if (!stbi_info(path, w, h, &comp)) {
    const char *why = stbi_failure_reason();
    return aps_fail(APS_ERR_FORMAT, "%s: cannot read it as an image (stb_image: %s)", path, why ? why : "unknown");
  }
  if (*w < 1 || *h < 1 || *w > 16384 || *h > 16384 || comp < 1 || comp > 4)
    return aps_fail(APS_ERR_FORMAT, "%s: %dx%d with %d channels (sides 1-16384, 1-4 channels)", path, *w, *h, comp);
  int deep = stbi_is_16_bit(path), have = 0;
  void *px = deep ? (void *)stbi_load_16(path, w, h, &have, comp) : (void *)stbi_load(path, w, h, &have, comp);
  if (!px) {
    const char *why = stbi_failure_reason();
    return aps_fail(APS_ERR_FORMAT, "%s: cannot decode the image (stb_image: %s)", path, why ? why : "unknown");
  }
  *c = comp >= 3 ? 3 : 1;
  int64_t hw = (int64_t)*h * *w;
  float *v = malloc((size_t)(hw * *c) * sizeof *v);
  if (!v) {
    stbi_image_free(px);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
  }
  double half = deep ? 32767.5 : 127.5;
  for (int k = 0; k < *c; k++)
    for (int64_t i = 0; i < hw; i++) {
      int64_t at = i * comp + k;
      double raw = deep ? ((const uint16_t *)px)[at] : ((const uint8_t *)px)[at];
      v[k * hw + i] = (float)(raw / half - 1.0);
    }
  stbi_image_free(px);
  *out = v;
  return APS_OK;
}
