/* Images brought to a model's shape (image_fit.h). */
#include "image_fit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

aps_status aps_image_fit(const float *in, int c, int h, int w, int C, int H, int W, int resize, const char *what,
                         float **out, char *note, size_t note_size) {
  *out = NULL;
  if (note_size)
    note[0] = 0;
  if (c != C && !((c == 3 && C == 1) || (c == 1 && C == 3)))
    return aps_fail(APS_ERR_INVALID_ARG, "%s has %d channels; the model takes %d", what, c, C);
  int f = h % H == 0 && w % W == 0 && h / H == w / W ? h / H : 0; /* an exact multiple */
  int pad = h == 28 && w == 28 && H == 32 && W == 32;
  int same = h == H && w == W;
  if (!same && (!resize || (!f && !pad)))
    return aps_fail(APS_ERR_INVALID_ARG, "%s is %dx%d (width x height); the model takes %dx%d%s", what, w, h, W, H,
                    resize ? " (or a multiple of that, or Fashion-MNIST's 28x28)" : "");
  /* channels first, at the input's size */
  int64_t hw = (int64_t)h * w;
  float *v = malloc((size_t)(C * hw) * sizeof *v), *o = malloc((size_t)C * H * W * sizeof *o);
  if (!v || !o) {
    free(v), free(o);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  for (int64_t i = 0; i < hw; i++)
    for (int k = 0; k < C; k++)
      v[k * hw + i] = c == C ? in[k * hw + i]
                      : c == 1 ? in[i]
                               : 0.299f * in[i] + 0.587f * in[hw + i] + 0.114f * in[2 * hw + i];
  for (int k = 0; k < C; k++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        float *d = o + ((int64_t)k * H + y) * W + x;
        if (pad) {
          int sy = y - 2, sx = x - 2;
          *d = sy >= 0 && sy < 28 && sx >= 0 && sx < 28 ? v[k * hw + sy * 28 + sx] : -1.0f;
        } else {
          int g = same ? 1 : f;
          double sum = 0;
          for (int a = 0; a < g; a++)
            for (int b = 0; b < g; b++)
              sum += v[k * hw + (int64_t)(y * g + a) * w + x * g + b];
          *d = (float)(sum / (g * g));
        }
      }
  free(v);
  int n = 0;
  if (c != C && note_size)
    n = snprintf(note, note_size, "%s", C == 1 ? "converted to grey" : "grey copied to RGB");
  if (!same && note_size && n >= 0 && (size_t)n < note_size)
    snprintf(note + n, note_size - (size_t)n, "%s%s %dx%d to %dx%d", n ? ", " : "",
             pad ? "centred" : "averaged down", w, h, W, H);
  *out = o;
  return APS_OK;
}
