/* Inpainting masks: boxes, random pixels, free-form brush strokes, half images, and masks
 * and blur maps a person paints (PNG files read through stb_image). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

#include "image_read.h"
#include "rng.h"
#include "operators_internal.h"

float aps_op_uniform(uint64_t *rng) { return (float)(aps_rng_next(rng) >> 40) * 0x1p-24f; }

float aps_op_uniform_in(uint64_t *rng, aps_range r) {
  float u = aps_op_uniform(rng);
  return r.lo == r.hi ? r.lo : r.lo + (r.hi - r.lo) * u;
}

static int int_in(uint64_t *rng, aps_range r) {
  int lo = (int)r.lo, hi = (int)r.hi;
  return lo + (int)aps_rng_below(rng, (uint64_t)(hi - lo + 1));
}

static void fill(float *m, int64_t n, float v) {
  for (int64_t i = 0; i < n; i++)
    m[i] = v;
}

void aps_mask_box(uint64_t *rng, aps_range side, int h, int w, float *m) {
  fill(m, (int64_t)h * w, 1.0f);
  int bh = int_in(rng, side), bw = int_in(rng, side);
  bh = bh < h ? bh : h, bw = bw < w ? bw : w;
  int y0 = (int)aps_rng_below(rng, (uint64_t)(h - bh + 1)), x0 = (int)aps_rng_below(rng, (uint64_t)(w - bw + 1));
  for (int y = y0; y < y0 + bh; y++)
    for (int x = x0; x < x0 + bw; x++)
      m[y * w + x] = 0.0f;
}

/* Exactly round(keep · h · w) pixels kept (at least one), every subset of that size equally
 * likely: selection sampling (Knuth's algorithm S) in one pass. */
void aps_mask_pixels(uint64_t *rng, aps_range keep, int h, int w, float *m) {
  int64_t n = (int64_t)h * w, want = llround((double)aps_op_uniform_in(rng, keep) * (double)n);
  want = want < 1 ? 1 : want > n ? n : want;
  for (int64_t i = 0, chosen = 0; i < n; i++) {
    int take = (double)(aps_rng_next(rng) >> 11) * 0x1p-53 * (double)(n - i) < (double)(want - chosen);
    m[i] = take ? 1.0f : 0.0f;
    chosen += take;
  }
}

static void disc(float *m, int h, int w, float cx, float cy, float r) {
  int y0 = (int)floorf(cy - r), y1 = (int)ceilf(cy + r), x0 = (int)floorf(cx - r), x1 = (int)ceilf(cx + r);
  for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < h; y++)
    for (int x = x0 < 0 ? 0 : x0; x <= x1 && x < w; x++) {
      float dx = (float)x + 0.5f - cx, dy = (float)y + 0.5f - cy;
      if (dx * dx + dy * dy <= r * r)
        m[y * w + x] = 0.0f;
    }
}

/* Free-form strokes in the manner of image-inpainting papers' masks (DeepFill v2): each a
 * random walk of 2-5 segments from a uniform start, the direction turning by up to ±90°
 * per segment, segment lengths 10-35 % of the shorter side, a round brush of width 1/16 to
 * 1/8 of it (2-4 px at 32×32). A mask that would hide every pixel keeps its centre. */
void aps_mask_strokes(uint64_t *rng, aps_range count, int h, int w, float *m) {
  fill(m, (int64_t)h * w, 1.0f);
  float side = (float)(h < w ? h : w), unit = side / 32.0f > 0.5f ? side / 32.0f : 0.5f;
  int strokes = int_in(rng, count);
  for (int s = 0; s < strokes; s++) {
    float x = aps_op_uniform(rng) * (float)w, y = aps_op_uniform(rng) * (float)h;
    float r = unit * (1.0f + aps_op_uniform(rng));
    float angle = aps_op_uniform(rng) * 6.2831853f;
    int segments = 2 + (int)aps_rng_below(rng, 4);
    for (int k = 0; k < segments; k++) {
      angle += (aps_op_uniform(rng) - 0.5f) * 3.1415927f;
      float len = side * (0.10f + 0.25f * aps_op_uniform(rng));
      float nx = x + len * cosf(angle), ny = y + len * sinf(angle);
      nx = nx < 0 ? 0 : nx > (float)w ? (float)w : nx;
      ny = ny < 0 ? 0 : ny > (float)h ? (float)h : ny;
      int steps = (int)ceilf(len * 2.0f) + 1;
      for (int i = 0; i <= steps; i++) {
        float t = (float)i / (float)steps;
        disc(m, h, w, x + (nx - x) * t, y + (ny - y) * t, r);
      }
      x = nx, y = ny;
    }
  }
  int any = 0;
  for (int64_t i = 0; i < (int64_t)h * w && !any; i++)
    any = m[i] != 0.0f;
  if (!any)
    m[(h / 2) * w + w / 2] = 1.0f;
}

void aps_mask_half(uint64_t *rng, int h, int w, float *m) {
  int which = (int)aps_rng_below(rng, 4); /* left, right, top, bottom hidden */
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int hidden = which == 0 ? x < w / 2 : which == 1 ? x >= w - w / 2 : which == 2 ? y < h / 2 : y >= h - h / 2;
      m[y * w + x] = hidden ? 0.0f : 1.0f;
    }
}

static const char *stb_reason(void) {
  const char *r = stbi_failure_reason();
  return r ? r : "unknown reason";
}

aps_status aps_op_load_plane(const char *path, const char *what, int h, int w, int binary, float *out) {
  int iw = 0, ih = 0, comp = 0;
  unsigned char *bytes = NULL;
  size_t nbytes = 0;
  aps_status rs = aps_png_file(path, &bytes, &nbytes);
  if (rs != APS_OK) /* a mask that cannot be read is a malformed operator, whatever the cause */
    return aps_fail_context(APS_ERR_FORMAT, "%s %s: cannot read it: ", what, path);
  int len = (int)nbytes, deep = stbi_is_16_bit_from_memory(bytes, len);
  void *px = NULL;
  if (!stbi_info_from_memory(bytes, len, &iw, &ih, &comp))
    rs = aps_fail(APS_ERR_FORMAT, "%s %s: cannot read it as an image (stb_image: %s)", what, path, stb_reason());
  else if (iw != w || ih != h)
    rs = aps_fail(APS_ERR_INVALID_ARG, "%s %s is %dx%d (width x height), the images are %dx%d: paint it at the "
                  "images' size (no silent resizing)", what, path, iw, ih, w, h);
  else if (comp < 1 || comp > 4)
    rs = aps_fail(APS_ERR_FORMAT, "%s %s: %d channels (expected grey, grey+alpha, RGB or RGBA)", what, path, comp);
  else if (!(px = deep ? (void *)stbi_load_16_from_memory(bytes, len, &iw, &ih, &comp, 0)
                       : (void *)stbi_load_from_memory(bytes, len, &iw, &ih, &comp, 0)))
    rs = aps_fail(APS_ERR_FORMAT, "%s %s: cannot decode the image (stb_image: %s)", what, path, stb_reason());
  free(bytes);
  if (rs != APS_OK)
    return rs;
  aps_status s = APS_OK;
  if (iw != w || ih != h) /* cannot happen after stbi_info; never trust it blindly */
    s = aps_fail(APS_ERR_FORMAT, "%s %s: decoded as %dx%d, not %dx%d", what, path, iw, ih, w, h);
  double top = deep ? 65535.0 : 255.0;
  int64_t any = 0;
  for (int64_t i = 0; s == APS_OK && i < (int64_t)h * w; i++) {
    double ch[4] = {0};
    for (int k = 0; k < comp; k++)
      ch[k] = deep ? ((const uint16_t *)px)[i * comp + k] : ((const uint8_t *)px)[i * comp + k];
    if (comp >= 3 && (ch[0] != ch[1] || ch[0] != ch[2])) {
      s = aps_fail(APS_ERR_INVALID_ARG, "%s %s is a colour image (at x=%lld, y=%lld red, green and blue differ: "
                   "%g, %g, %g); it is ambiguous as a %s: save it grey", what, path, (long long)(i % w),
                   (long long)(i / w), ch[0], ch[1], ch[2], what);
      break;
    }
    double v = ch[0] / top;
    out[i] = binary ? (v >= 0.5 ? 1.0f : 0.0f) : (float)v;
    any += out[i] != 0.0f;
  }
  stbi_image_free(px);
  if (s == APS_OK && !any)
    s = aps_fail(APS_ERR_INVALID_ARG, "%s %s is all zero%s", what, path,
                 binary ? " (nothing observed: bright pixels are the observed ones)" : " (nothing blurred)");
  return s;
}
