/* The colour map (heatmap.h): matplotlib's viridis at eleven evenly spaced points, linearly
 * interpolated between them. */
#include "heatmap.h"

#include <math.h>

static const unsigned char viridis[11][3] = {
    {0x44, 0x01, 0x54}, {0x48, 0x24, 0x75}, {0x41, 0x44, 0x87}, {0x35, 0x5f, 0x8d}, {0x2a, 0x78, 0x8e}, {0x21, 0x91, 0x8c},
    {0x22, 0xa8, 0x84}, {0x44, 0xbf, 0x70}, {0x7a, 0xd1, 0x51}, {0xbd, 0xdf, 0x26}, {0xfd, 0xe7, 0x25},
};

void aps_heatmap_colour(double t, float rgb[3]) {
  t = t > 0 ? (t < 1 ? t : 1) : 0; /* NaN fails t > 0 */
  double at = t * 10.0;
  int i = (int)at;
  i = i > 9 ? 9 : i;
  double f = at - i;
  for (int k = 0; k < 3; k++)
    rgb[k] = (float)(((1.0 - f) * viridis[i][k] + f * viridis[i + 1][k]) / 255.0);
}

void aps_heatmap(const float *v, int64_t n, float lo, float hi, float *rgb) {
  double span = hi > lo ? (double)hi - lo : 1.0;
  for (int64_t i = 0; i < n; i++) {
    float c[3];
    aps_heatmap_colour((v[i] - lo) / span, c);
    for (int k = 0; k < 3; k++)
      rgb[k * n + i] = 2.0f * c[k] - 1.0f;
  }
}

int aps_heatmap_bar_width(int w) { return w + 1 + APS_HEATMAP_BAR; }

void aps_heatmap_with_bar(const float *v, int h, int w, float lo, float hi, float *rgb) {
  int W = aps_heatmap_bar_width(w);
  int64_t plane = (int64_t)h * W;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < W; x++) {
      float c[3] = {0.5f, 0.5f, 0.5f};
      if (x < w)
        aps_heatmap_colour(hi > lo ? (v[y * w + x] - lo) / ((double)hi - lo) : 0.0, c);
      else if (x > w)
        aps_heatmap_colour(h > 1 ? 1.0 - (double)y / (h - 1) : 1.0, c);
      for (int k = 0; k < 3; k++)
        rgb[k * plane + (int64_t)y * W + x] = 2.0f * c[k] - 1.0f;
    }
}
