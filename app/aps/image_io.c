/* A grid of images as one PNG: encoded in memory by stb_image_write (Debian's libstb),
 * written to a temporary file, then renamed over the target. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "image_io.h"

#include "aps_file.h"

/* stb's PNG writer works in int; keep the grid's byte count well inside that. */
enum { MAX_GRID_BYTES = 1 << 28 };

typedef struct png_buf {
  uint8_t *p;
  size_t n, cap;
  int failed;
} png_buf;

static void png_append(void *ctx, void *data, int size) {
  png_buf *b = ctx;
  if (b->failed || size <= 0)
    return;
  if (b->n + (size_t)size > b->cap) {
    size_t next = b->cap ? b->cap : 4096;
    while (next < b->n + (size_t)size)
      next *= 2;
    uint8_t *grown = realloc(b->p, next);
    if (!grown) {
      b->failed = 1;
      return;
    }
    b->p = grown;
    b->cap = next;
  }
  memcpy(b->p + b->n, data, (size_t)size);
  b->n += (size_t)size;
}

static uint8_t to_byte(float x) {
  x = x > -1.0f ? x : -1.0f; /* NaN → −1 */
  x = x < 1.0f ? x : 1.0f;
  return (uint8_t)((x + 1.0f) * 127.5f + 0.5f);
}

aps_status aps_png_write_grid(const char *path, const float *images, int n, int c, int h, int w, int cols, int pad) {
  if (!path || !images)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_png_write_grid: NULL path or images");
  if (n < 1 || h < 1 || w < 1 || cols < 1 || pad < 0 || (c != 1 && c != 3 && c != 4))
    return aps_fail(APS_ERR_INVALID_ARG, "%s: cannot lay out %d images of %d×%d×%d in %d columns with %d pixels of "
                    "padding (n, h, w, cols ≥ 1, pad ≥ 0, channels 1, 3 or 4)", path, n, c, h, w, cols, pad);
  if (cols > n)
    cols = n;
  int rows = (n + cols - 1) / cols;
  int64_t gw = (int64_t)cols * w + (int64_t)(cols + 1) * pad;
  int64_t gh = (int64_t)rows * h + (int64_t)(rows + 1) * pad;
  if (gw * gh * c > MAX_GRID_BYTES)
    return aps_fail(APS_ERR_INVALID_ARG, "%s: a grid of %" PRId64 "×%" PRId64 " pixels is too large for one PNG",
                    path, gw, gh);
  size_t stride = (size_t)gw * (size_t)c;
  uint8_t *grid = malloc(stride * (size_t)gh);
  if (!grid)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: cannot allocate the %" PRId64 "×%" PRId64 " grid", path, gw, gh);
  memset(grid, APS_GRID_PAD_VALUE, stride * (size_t)gh);
  size_t plane = (size_t)h * (size_t)w;
  for (int i = 0; i < n; i++) {
    const float *img = images + (size_t)i * (size_t)c * plane;
    size_t x0 = (size_t)(pad + (i % cols) * (w + pad)), y0 = (size_t)(pad + (i / cols) * (h + pad));
    for (int y = 0; y < h; y++) {
      uint8_t *row = grid + (y0 + (size_t)y) * stride + x0 * (size_t)c;
      for (int x = 0; x < w; x++)
        for (int k = 0; k < c; k++)
          row[(size_t)x * (size_t)c + (size_t)k] = to_byte(img[(size_t)k * plane + (size_t)y * (size_t)w + (size_t)x]);
    }
  }
  png_buf buf = {0};
  int ok = stbi_write_png_to_func(png_append, &buf, (int)gw, (int)gh, c, grid, (int)stride);
  free(grid);
  aps_status s;
  if (!ok || buf.failed || !buf.n)
    s = aps_fail(buf.failed ? APS_ERR_OUT_OF_MEMORY : APS_ERR_IO, "%s: stb_image_write could not encode the "
                 "%" PRId64 "×%" PRId64 " PNG%s", path, gw, gh, buf.failed ? ": out of memory" : "");
  else
    s = aps_file_write_atomic(path, &(aps_file_part){buf.p, buf.n}, 1);
  free(buf.p);
  return s;
}
