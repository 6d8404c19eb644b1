/* Image output: a grid of images as one PNG (samples during and after training).
 *
 * Images are float [n, c, h, w] in [-1, 1] (the dataset's range): each value is clamped to
 * [-1, 1] (NaN counts as −1) and mapped to round((x + 1) · 127.5) in 0..255, so a byte read
 * by the dataset loaders comes back as the same byte. c is 1 (gray), 3 (RGB) or 4 (RGBA).
 * The grid has cols columns and ceil(n / cols) rows, with pad pixels of mid-gray (128)
 * around and between the images; cells past n stay gray. The file is written to
 * "<path>.tmp.<pid>" and renamed over path, so a reader never sees half a PNG. */
#ifndef APS_IMAGE_IO_H
#define APS_IMAGE_IO_H

#include "aps_status.h"

/* The gray of the padding, as a byte. */
#define APS_GRID_PAD_VALUE 128

aps_status aps_png_write_grid(const char *path, const float *images, int n, int c, int h, int w, int cols, int pad);

#endif
