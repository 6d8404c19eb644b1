/* A person's image brought to a model's C×H×W when that is unambiguous: grey to RGB by
 * copying, RGB to grey by luma (0.299 R + 0.587 G + 0.114 B), an exact integer multiple of
 * the size by averaging blocks, and Fashion-MNIST's own 28×28 centred in 32×32 on the
 * background −1 (as the data set's loader does). Anything else is refused, naming both
 * sizes. Images are [C, H, W] in [-1, 1]. */
#ifndef APS_IMAGE_FIT_H
#define APS_IMAGE_FIT_H

#include <stddef.h>

#include "aps_status.h"

/* *out [C, H, W] (free()); note receives what was done ("" if nothing). resize = 0 allows
 * channel conversion only (for a measurement, whose size means something). what names
 * the image in errors. */
aps_status aps_image_fit(const float *in, int c, int h, int w, int C, int H, int W, int resize, const char *what,
                         float **out, char *note, size_t note_size);

#endif
