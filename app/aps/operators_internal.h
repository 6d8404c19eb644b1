/* Shared by the operator files of app/aps (not a public header). */
#ifndef APS_OPERATORS_INTERNAL_H
#define APS_OPERATORS_INTERNAL_H
#include <stdint.h>

#include "operators.h"

/* A uniform float in [0, 1) and in [r.lo, r.hi] from the host generator. */
float aps_op_uniform(uint64_t *rng);
float aps_op_uniform_in(uint64_t *rng, aps_range r);

/* Masks on h×w, 1 observed and 0 missing (masks.c). */
void aps_mask_box(uint64_t *rng, aps_range side, int h, int w, float *m);
void aps_mask_pixels(uint64_t *rng, aps_range keep, int h, int w, float *m);
void aps_mask_strokes(uint64_t *rng, aps_range count, int h, int w, float *m);
void aps_mask_half(uint64_t *rng, int h, int w, float *m);

/* A PNG as one h×w plane in [0, 1]: grey, grey+alpha, RGB or RGBA (alpha dropped; colour
 * only when R = G = B everywhere), 8 or 16 bits. binary: thresholded at one half (masks).
 * `what` ("mask", "blur map") and the spec's field name the file in errors; an all-zero
 * plane is refused. */
aps_status aps_op_load_plane(const char *path, const char *what, int h, int w, int binary, float *out);

#endif
