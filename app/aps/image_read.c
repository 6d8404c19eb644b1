/* A PNG as one image (image_read.h), through stb_image (Debian's libstb). */
#include "image_read.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

#include "aps_file.h"

aps_status aps_png_file(const char *path, unsigned char **data, size_t *size) {
  APS_TRY(aps_file_read(path, 256u << 20, data, size));
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (*size >= 8 && !memcmp(*data, sig, 8))
    return APS_OK;
  const unsigned char *d = *data;
  const char *looks = *size == 0 ? "it is empty"
                      : *size >= 3 && !memcmp(d, "GIF", 3) ? "it is a GIF"
                      : *size >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff ? "it is a JPEG"
                      : *size >= 2 && !memcmp(d, "BM", 2) ? "it is a BMP"
                      : *size < 8 && !memcmp(d, sig, *size) ? "it is truncated inside the signature"
                      : "it lacks the PNG signature";
  free(*data);
  *data = NULL;
  return aps_fail(APS_ERR_FORMAT, "%s: not a PNG file (%s)", path, looks);
}

aps_status aps_png_read_image(const char *path, int *c, int *h, int *w, float **out) {
  *out = NULL;
  unsigned char *bytes = NULL;
  size_t nbytes = 0;
  APS_TRY(aps_png_file(path, &bytes, &nbytes));
  int comp = 0, len = (int)nbytes;
  if (!stbi_info_from_memory(bytes, len, w, h, &comp)) {
    const char *why = stbi_failure_reason();
    free(bytes);
    return aps_fail(APS_ERR_FORMAT, "%s: cannot read it as an image (stb_image: %s)", path, why ? why : "unknown");
  }
  if (*w < 1 || *h < 1 || *w > 16384 || *h > 16384 || comp < 1 || comp > 4) {
    free(bytes);
    return aps_fail(APS_ERR_FORMAT, "%s: %dx%d with %d channels (sides 1-16384, 1-4 channels)", path, *w, *h, comp);
  }
  int deep = stbi_is_16_bit_from_memory(bytes, len), have = 0;
  void *px = deep ? (void *)stbi_load_16_from_memory(bytes, len, w, h, &have, comp)
                  : (void *)stbi_load_from_memory(bytes, len, w, h, &have, comp);
  free(bytes);
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
