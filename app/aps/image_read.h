/* One PNG read as an image in [-1, 1] (a byte v maps to v / 127.5 − 1, as the dataset
 * loaders do; 16-bit values to v / 32767.5 − 1): grey and grey+alpha give 1 channel, RGB and
 * RGBA 3; alpha is dropped. Errors name the file. */
#ifndef APS_IMAGE_READ_H
#define APS_IMAGE_READ_H

#include <stddef.h>

#include "aps_status.h"

/* *out [c, h, w] (free()). */
aps_status aps_png_read_image(const char *path, int *c, int *h, int *w, float **out);

/* The bytes of a PNG file for stb's *_from_memory readers, by the file rule (aps_file.h:
 * regular files only, never blocking, at most 256 MiB), refused unless they start with the
 * PNG signature (a GIF or JPEG named .png is named as such). *data: free(). */
aps_status aps_png_file(const char *path, unsigned char **data, size_t *size);

#endif
