/* Operator families: their graph layout, the files they read, and per-sample draws on the
 * host (operators.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "operators_internal.h"

struct aps_op_family {
  aps_op_spec spec;
  aps_op_layout l;
  float *plane[APS_OP_MIX_MAX]; /* each member's mask or blur map from its file, or NULL */
};

aps_status aps_op_layout_make(const aps_op_spec *s, int c, int h, int w, aps_op_layout *out) {
  memset(out, 0, sizeof *out);
  char spec[APS_OP_SPEC_MAX];
  if (aps_op_spec_format(s, spec, sizeof spec) != APS_OK)
    return APS_ERR_INVALID_ARG;
  if (c < 1 || c > 4 || h < 2 || w < 2 || h > 65536 || w > 65536)
    return aps_fail(APS_ERR_INVALID_ARG, "operator %s: images of %dx%dx%d (channels 1-4, sides 2-65536)", spec, c, h, w);
  aps_op_layout l = {.cls = aps_op_spec_class(s), .c = c, .h = h, .w = w, .mh = h, .mw = w, .factor = 1,
                     .desc_max = 1.0f};
  int side = h < w ? h : w;
  float sigma_max = 0;
  for (int i = 0; i < s->count; i++) {
    const aps_op_member *m = &s->m[i];
    if (m->kind == APS_OP_SR) {
      l.factor = m->factor;
      if (h % m->factor || w % m->factor)
        return aps_fail(APS_ERR_INVALID_ARG, "operator %s: sr:%d needs image sides divisible by %d; the images are "
                        "%dx%d (width x height)", spec, m->factor, m->factor, w, h);
      l.mh = h / m->factor, l.mw = w / m->factor, l.desc_max = (float)m->factor;
    }
    int inpaint_box = m->kind == APS_OP_INPAINT && m->mask == APS_MASK_BOX;
    aps_range box = inpaint_box ? m->range : m->map_range;
    if ((inpaint_box || (m->kind == APS_OP_BLUR && m->map && m->mask == APS_MASK_BOX)) && box.hi > (float)(side - 1))
      return aps_fail(APS_ERR_INVALID_ARG, "operator %s: box=%g-%g does not fit %dx%d images (sides up to %d)", spec,
                      box.lo, box.hi, w, h, side - 1);
    if (m->kind == APS_OP_BLUR && m->range.hi > sigma_max)
      sigma_max = m->range.hi;
  }
  if (l.cls == APS_OPC_BLUR) {
    /* Radius 3σ of the largest σ_b, capped so that reflect padding stays inside the image. */
    int r = (int)ceilf(3.0f * sigma_max);
    r = r < 1 ? 1 : r > side - 1 ? side - 1 : r;
    l.ksize = 2 * r + 1;
    l.desc_max = sigma_max;
  }
  *out = l;
  return APS_OK;
}

aps_status aps_op_family_create(const aps_op_spec *s, int c, int h, int w, aps_op_family **out) {
  *out = NULL;
  aps_op_family *f = calloc(1, sizeof *f);
  if (!f)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  f->spec = *s;
  aps_status st = aps_op_layout_make(s, c, h, w, &f->l);
  for (int i = 0; st == APS_OK && i < s->count; i++) {
    const aps_op_member *m = &s->m[i];
    int mask = m->kind == APS_OP_INPAINT && m->mask == APS_MASK_FILE;
    if (!mask && !(m->kind == APS_OP_BLUR && m->file[0]))
      continue;
    if (!(f->plane[i] = malloc((size_t)h * w * sizeof(float))))
      st = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    else
      st = aps_op_load_plane(m->file, mask ? "mask" : "blur map", h, w, mask, f->plane[i]);
    if (st != APS_OK) {
      char spec[APS_OP_SPEC_MAX];
      aps_op_member_format(m, spec, sizeof spec);
      st = aps_fail_context(st, "operator %s, field %s: ", spec, mask ? "mask" : "map");
    }
  }
  if (st != APS_OK) {
    aps_op_family_destroy(f);
    return st;
  }
  *out = f;
  return APS_OK;
}

void aps_op_family_destroy(aps_op_family *f) {
  if (!f)
    return;
  for (int i = 0; i < APS_OP_MIX_MAX; i++)
    free(f->plane[i]);
  free(f);
}

const aps_op_layout *aps_op_family_layout(const aps_op_family *f) { return &f->l; }
const aps_op_spec *aps_op_family_spec(const aps_op_family *f) { return &f->spec; }

aps_status aps_op_batch_alloc(const aps_op_layout *l, int n, aps_op_batch *b) {
  memset(b, 0, sizeof *b);
  if (n < 1)
    return aps_fail(APS_ERR_INVALID_ARG, "operator batch of %d samples", n);
  b->n = n;
  b->l = *l;
  size_t plane = (size_t)n * l->h * l->w, k = (size_t)n * l->ksize * l->ksize;
  b->param = malloc(plane * sizeof(float));
  b->descriptor = malloc(plane * sizeof(float));
  b->kernel = k ? malloc(k * sizeof(float)) : NULL;
  b->sigma_b = calloc((size_t)n, sizeof(float));
  b->sigma_y = malloc((size_t)n * sizeof(float));
  b->noise = malloc((size_t)n * l->c * l->mh * l->mw * sizeof(float));
  b->member = calloc((size_t)n, sizeof(int));
  b->seed = calloc((size_t)n, sizeof(uint64_t));
  if (!b->param || !b->descriptor || (k && !b->kernel) || !b->sigma_b || !b->sigma_y || !b->noise || !b->member ||
      !b->seed) {
    aps_op_batch_free(b);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory for an operator batch of %d", n);
  }
  return APS_OK;
}

void aps_op_batch_free(aps_op_batch *b) {
  free(b->param), free(b->descriptor), free(b->kernel), free(b->sigma_b), free(b->sigma_y), free(b->noise);
  free(b->member), free(b->seed);
  memset(b, 0, sizeof *b);
}

uint64_t aps_op_seed(uint64_t run_seed, uint64_t index) {
  uint64_t s = run_seed * 0xD1B54A32D192ED03ull ^ index;
  aps_rng_next(&s);
  return aps_rng_next(&s);
}

void aps_op_gaussian(int k, float sigma, float *out) {
  int r = k / 2;
  double sum = 0;
  for (int y = 0; y < k; y++)
    for (int x = 0; x < k; x++) {
      double d2 = (double)((y - r) * (y - r) + (x - r) * (x - r));
      double v = sigma > 0 ? exp(-d2 / (2.0 * sigma * sigma)) : (d2 == 0);
      out[y * k + x] = (float)v;
      sum += v;
    }
  for (int i = 0; i < k * k; i++)
    out[i] = (float)(out[i] / sum);
}

/* A random mask of a kind drawn from its generator (masks.c). */
static void draw_mask(uint64_t *rng, aps_mask_kind k, aps_range r, int h, int w, float *p) {
  switch (k) {
  case APS_MASK_BOX: aps_mask_box(rng, r, h, w, p); break;
  case APS_MASK_PIXELS: aps_mask_pixels(rng, r, h, w, p); break;
  case APS_MASK_STROKES: aps_mask_strokes(rng, r, h, w, p); break;
  default: aps_mask_half(rng, h, w, p); break;
  }
}

aps_status aps_op_draw(const aps_op_family *f, uint64_t seed, aps_op_batch *b, int i) {
  const aps_op_layout *l = &f->l;
  if (i < 0 || i >= b->n || b->l.cls != l->cls || b->l.h != l->h || b->l.w != l->w || b->l.c != l->c ||
      b->l.ksize != l->ksize || b->l.factor != l->factor)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_op_draw: sample %d of a batch of %d, or a batch of another layout", i,
                    b->n);
  uint64_t rng = seed;
  int which = f->spec.count > 1 ? (int)aps_rng_below(&rng, (uint64_t)f->spec.count) : 0;
  const aps_op_member *m = &f->spec.m[which];
  int64_t hw = (int64_t)l->h * l->w;
  float *p = b->param + i * hw, *d = b->descriptor + i * hw;
  b->member[i] = which;
  b->seed[i] = seed;
  b->sigma_y[i] = aps_op_uniform_in(&rng, m->noise);
  b->sigma_b[i] = 0;
  float fill = l->cls == APS_OPC_BLUR ? 0.0f : 1.0f; /* denoise: no blur weight, or the full mask */
  switch (m->kind) {
  case APS_OP_INPAINT:
    if (m->mask == APS_MASK_FILE)
      memcpy(p, f->plane[which], (size_t)hw * sizeof *p);
    else
      draw_mask(&rng, m->mask, m->range, l->h, l->w, p);
    break;
  case APS_OP_BLUR:
    b->sigma_b[i] = aps_op_uniform_in(&rng, m->range);
    if (f->plane[which])
      memcpy(p, f->plane[which], (size_t)hw * sizeof *p);
    else if (m->map) { /* blurred where the mask kind would hide */
      draw_mask(&rng, m->mask, m->map_range, l->h, l->w, p);
      for (int64_t k = 0; k < hw; k++)
        p[k] = 1.0f - p[k];
    } else
      for (int64_t k = 0; k < hw; k++)
        p[k] = 1.0f;
    break;
  default:
    for (int64_t k = 0; k < hw; k++)
      p[k] = fill;
    break;
  }
  if (l->cls == APS_OPC_BLUR)
    aps_op_gaussian(l->ksize, b->sigma_b[i], b->kernel + (int64_t)i * l->ksize * l->ksize);
  for (int64_t k = 0; k < hw; k++)
    d[k] = l->cls == APS_OPC_MASK ? p[k] : l->cls == APS_OPC_BLUR ? p[k] * b->sigma_b[i] : (float)l->factor;
  int64_t nn = (int64_t)l->c * l->mh * l->mw;
  for (int64_t k = 0; k < nn; k++)
    b->noise[i * nn + k] = aps_rng_normal(&rng);
  return APS_OK;
}
