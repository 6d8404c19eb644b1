/* Values as colours, for pictures of uncertainty (a posterior's per-pixel standard
 * deviation): a viridis-like map from dark violet (low) through blue and green to yellow
 * (high), perceptually ordered and readable in grey. Colours come out as image_io's images:
 * planar RGB [3, ...] in [-1, 1]. */
#ifndef APS_HEATMAP_H
#define APS_HEATMAP_H

#include <stdint.h>

/* The colour of t in [0, 1] (clamped; NaN as 0), each channel in [0, 1]. */
void aps_heatmap_colour(double t, float rgb[3]);

/* v [n] mapped from [lo, hi] (hi > lo) to rgb [3, n]. */
void aps_heatmap(const float *v, int64_t n, float lo, float hi, float *rgb);

/* A heat map of v [h, w] with a colour bar at its right: rgb [3, h, aps_heatmap_bar_width(w)];
 * a one-pixel grey gap, then a bar of APS_HEATMAP_BAR pixels from hi (top) to lo (bottom). */
enum { APS_HEATMAP_BAR = 3 };
int aps_heatmap_bar_width(int w);
void aps_heatmap_with_bar(const float *v, int h, int w, float lo, float hi, float *rgb);

#endif
