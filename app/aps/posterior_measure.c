/* Setting a posterior's measurement (aps.h): operators from specs, explicit maps and
 * bundles, checked against the model's class, and the operator graph that simulates the
 * measurement, builds the flow's condition and measures data consistency. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "posterior_internal.h"
#include "rng.h"

static const char *class_words(aps_op_class c) {
  return c == APS_OPC_MASK ? "inpainting" : c == APS_OPC_BLUR ? "blur" : "super-resolution";
}

int aps_posterior_same_layout(const aps_op_layout *a, const aps_op_layout *b) {
  return a->cls == b->cls && a->c == b->c && a->h == b->h && a->w == b->w && a->mh == b->mh && a->mw == b->mw &&
         a->factor == b->factor && a->ksize == b->ksize;
}

/* The operator graph for layout l at the flow's batch (kept while the layout stays). */
static aps_status ensure_graph(aps_posterior *p, const aps_op_layout *l) {
  if (p->og && aps_posterior_same_layout(&p->ol, l)) {
    p->ol = *l;
    return APS_OK;
  }
  aps_runner_destroy(p->orun), p->orun = NULL;
  gr_graph_destroy(p->og), p->og = NULL;
  aps_op_batch_free(&p->rep);
  int b = p->batch;
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(b, l->c, l->h, l->w));
  gr_tensor noise = gr_input(g, "noise", GR_SHAPE(b, l->c, l->mh, l->mw));
  gr_tensor y = gr_input(g, "y", GR_SHAPE(b, l->c, l->mh, l->mw));
  aps_status s = aps_op_graph_inputs(g, l, b, NULL, &p->op);
  if (s == APS_OK) {
    gr_output(g, aps_op_simulate(g, &p->op, x, noise), "sim");
    gr_output(g, aps_op_condition(g, &p->op, y), "cond");
    gr_output(g, aps_op_data_term(g, &p->op, x, y), "dc");
    s = gr_graph_status(g);
  }
  const char *device = p->on_cpu ? "cpu" : p->device_req;
  if (s == APS_OK)
    s = aps_runner_create(g, &(aps_runner_desc){.device = device, .quiet = 1}, &p->orun);
  if (s == APS_OK)
    s = aps_op_batch_alloc(l, b, &p->rep);
  p->og = g;
  if (s != APS_OK) {
    aps_runner_destroy(p->orun), p->orun = NULL;
    gr_graph_destroy(p->og), p->og = NULL;
    return aps_fail_context(s, "the operator graph: ");
  }
  p->ol = *l;
  return APS_OK;
}

/* The measurement's operator over every row of the batch. */
static void replicate(aps_posterior *p) {
  const aps_op_layout *l = &p->ol;
  int64_t hw = (int64_t)l->h * l->w, kk = (int64_t)l->ksize * l->ksize, nn = (int64_t)l->c * l->mh * l->mw;
  for (int j = 0; j < p->batch; j++) {
    memcpy(p->rep.param + j * hw, p->one.param, (size_t)hw * sizeof(float));
    memcpy(p->rep.descriptor + j * hw, p->one.descriptor, (size_t)hw * sizeof(float));
    if (kk)
      memcpy(p->rep.kernel + j * kk, p->one.kernel, (size_t)kk * sizeof(float));
    memcpy(p->rep.noise + j * nn, p->one.noise, (size_t)nn * sizeof(float));
    p->rep.sigma_b[j] = p->one.sigma_b[0], p->rep.sigma_y[j] = p->one.sigma_y[0];
    p->rep.member[j] = p->one.member[0], p->rep.seed[j] = p->one.seed[0];
  }
}

aps_status aps_posterior_run_op(aps_posterior *p, const float *x, int k, const float *y, float *sim, float *cond,
                                float *dc) {
  const aps_op_layout *l = &p->ol;
  int b = p->batch;
  int64_t per = (int64_t)l->c * l->h * l->w, mper = (int64_t)l->c * l->mh * l->mw;
  int64_t cper = (int64_t)(l->c + 2) * l->h * l->w;
  float *xb = calloc((size_t)(b * per), sizeof *xb), *yb = calloc((size_t)(b * mper), sizeof *yb);
  float *out = malloc((size_t)(b * (cper > mper ? cper : mper)) * sizeof *out);
  aps_status s = xb && yb && out ? APS_OK : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (int j = 0; s == APS_OK && j < b; j++) { /* rows past k repeat row 0 */
    if (x)
      memcpy(xb + j * per, x + (j < k ? j : 0) * per, (size_t)per * sizeof(float));
    if (y)
      memcpy(yb + j * mper, y, (size_t)mper * sizeof(float));
  }
  if (s == APS_OK && (s = aps_runner_set(p->orun, "x", xb, b * per)) == APS_OK &&
      (s = aps_runner_set(p->orun, "noise", p->rep.noise, b * mper)) == APS_OK &&
      (s = aps_runner_set(p->orun, "y", yb, b * mper)) == APS_OK &&
      (s = aps_op_graph_set(p->orun, p->og, &p->op, &p->rep)) == APS_OK)
    s = aps_runner_run(p->orun);
  if (s == APS_OK && sim && (s = aps_runner_get(p->orun, "sim", out, b * mper)) == APS_OK)
    memcpy(sim, out, (size_t)mper * sizeof *sim);
  if (s == APS_OK && cond && (s = aps_runner_get(p->orun, "cond", out, b * cper)) == APS_OK)
    memcpy(cond, out, (size_t)cper * sizeof *cond);
  if (s == APS_OK && dc && (s = aps_runner_get(p->orun, "dc", out, b)) == APS_OK)
    memcpy(dc, out, (size_t)k * sizeof *dc);
  free(xb), free(yb), free(out);
  return s;
}

/* Takes *one (freed either way): simulates y from clean (when given) or takes y, then the
 * condition. On failure no measurement is set. */
static aps_status commit(aps_posterior *p, aps_op_batch *one, const float *clean, const float *y, const char *text) {
  p->set = p->has_clean = 0;
  aps_op_batch_free(&p->one);
  p->one = *one;
  memset(one, 0, sizeof *one);
  const aps_op_layout *l = &p->one.l;
  int64_t per = (int64_t)l->c * l->h * l->w, mper = (int64_t)l->c * l->mh * l->mw, hw = (int64_t)l->h * l->w;
  if (!p->y && !(p->y = malloc((size_t)per * sizeof(float))))
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (!p->clean && !(p->clean = malloc((size_t)per * sizeof(float))))
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (!p->cond && !(p->cond = malloc((size_t)(per + 2 * hw) * sizeof(float))))
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  APS_TRY(ensure_graph(p, l));
  replicate(p);
  for (int64_t i = 0; clean && i < per; i++)
    if (!isfinite(clean[i]))
      return aps_fail(APS_ERR_INVALID_ARG, "the clean image holds a value that is not finite (at %lld)", (long long)i);
  if (clean) {
    memcpy(p->clean, clean, (size_t)per * sizeof(float));
    APS_TRY(aps_posterior_run_op(p, clean, 1, NULL, p->y, NULL, NULL));
  } else {
    memcpy(p->y, y, (size_t)mper * sizeof(float));
  }
  APS_TRY(aps_posterior_run_op(p, NULL, 1, p->y, NULL, p->cond, NULL));
  aps_posterior_measurement_info *mi = &p->mi;
  memset(mi, 0, sizeof *mi);
  mi->has_clean = clean != NULL;
  mi->cls = l->cls;
  mi->factor = l->factor;
  mi->sigma_y = p->one.sigma_y[0];
  mi->sigma_b = p->one.sigma_b[0];
  mi->desc_max = l->desc_max;
  mi->measured = mper;
  if (l->cls == APS_OPC_MASK) {
    mi->measured = 0;
    for (int64_t i = 0; i < hw; i++)
      mi->measured += p->one.param[i] > 0.5f;
    mi->measured *= l->c;
  }
  snprintf(mi->op, sizeof mi->op, "%s", text);
  p->has_clean = clean != NULL;
  p->set = 1;
  return APS_OK;
}

/* Whether an operator of spec s fits the model's class; *to_blur: s is denoise alone and
 * the model a blur flow, so its operator is presented as a blur of width 0. */
static aps_status check_class(const aps_posterior *p, const aps_op_spec *s, const char *text, int *to_blur) {
  int denoise = 1;
  for (int i = 0; i < s->count; i++)
    denoise &= s->m[i].kind == APS_OP_DENOISE;
  aps_op_class c = aps_op_spec_class(s);
  *to_blur = denoise && p->layout.cls == APS_OPC_BLUR;
  if (*to_blur || c == p->layout.cls)
    return APS_OK;
  return aps_fail(APS_ERR_INVALID_ARG, "operator %s (%s) does not fit %s: the flow was trained on %s (%s), and a "
                  "flow serves operators of its own class only (inpainting, blur or super-resolution; denoise fits "
                  "inpainting and blur flows)", text, denoise ? "denoise" : class_words(c), p->model, p->family,
                  class_words(p->layout.cls));
}

/* denoise as the blur class: w = 0, σ_b = 0, the identity kernel. */
static aps_status as_blur(const aps_posterior *p, aps_op_batch *one) {
  aps_op_layout l = one->l;
  l.cls = APS_OPC_BLUR, l.ksize = 3, l.desc_max = p->layout.desc_max;
  aps_op_batch b;
  APS_TRY(aps_op_batch_alloc(&l, 1, &b));
  int64_t hw = (int64_t)l.h * l.w;
  for (int64_t i = 0; i < hw; i++)
    b.param[i] = b.descriptor[i] = 0.0f;
  aps_op_gaussian(3, 0.0f, b.kernel);
  b.sigma_b[0] = 0, b.sigma_y[0] = one->sigma_y[0], b.member[0] = one->member[0], b.seed[0] = one->seed[0];
  memcpy(b.noise, one->noise, (size_t)(l.c * l.mh * l.mw) * sizeof(float));
  aps_op_batch_free(one);
  *one = b;
  return APS_OK;
}

/* One draw of spec text (NULL: the model's family) into *one, checked against the model. */
static aps_status draw(aps_posterior *p, const char *text, uint64_t seed, int deterministic, aps_op_batch *one,
                       char canon[APS_OP_SPEC_MAX]) {
  aps_op_spec spec = p->spec;
  if (text)
    APS_TRY(aps_op_spec_parse(text, &spec));
  APS_TRY(aps_op_spec_format(&spec, canon, APS_OP_SPEC_MAX));
  int to_blur = 0;
  APS_TRY(check_class(p, &spec, canon, &to_blur));
  if (deterministic) {
    const aps_op_member *m = &spec.m[0];
    const char *why = spec.count > 1 ? "a mix draws its member at random"
                      : m->noise.lo != m->noise.hi ? "its noise is a range, and a measurement has one σ_y"
                      : m->kind == APS_OP_INPAINT && m->mask != APS_MASK_FILE ? "its mask is drawn at random"
                      : m->kind == APS_OP_BLUR && m->range.lo != m->range.hi ? "its σ_b is a range"
                                                                             : NULL;
    if (why)
      return aps_fail(APS_ERR_INVALID_ARG, "operator %s: a given measurement needs a deterministic operator "
                      "(inpaint:mask=FILE.png, blur:sigma=S[,map=FILE.png], sr:2, sr:4 or denoise, with one noise "
                      "value), but %s", canon, why);
  }
  aps_op_family *f = NULL;
  APS_TRY(aps_op_family_create(&spec, p->cfg.channels, p->cfg.size, p->cfg.size, &f));
  aps_status s = aps_op_batch_alloc(aps_op_family_layout(f), 1, one);
  if (s == APS_OK)
    s = aps_op_draw(f, seed, one, 0);
  aps_op_family_destroy(f);
  if (s == APS_OK && to_blur)
    s = as_blur(p, one);
  if (s != APS_OK)
    aps_op_batch_free(one);
  return s;
}

aps_status aps_posterior_set_clean(aps_posterior *p, const float *image, const char *spec, uint64_t seed) {
  p->set = 0;
  char canon[APS_OP_SPEC_MAX];
  aps_op_batch one = {0};
  APS_TRY(draw(p, spec, seed, 0, &one, canon));
  return commit(p, &one, image, NULL, canon);
}

/* y [C, h, w] as the measurement of layout l into out [C, MH, MW]; inpainting keeps the
 * observed pixels only. */
static aps_status take_y(const aps_posterior *p, const aps_op_batch *one, const float *y, int h, int w, float *out,
                         const char *text) {
  const aps_op_layout *l = &one->l;
  int64_t mhw = (int64_t)l->mh * l->mw;
  if (h == l->mh && w == l->mw) {
    memcpy(out, y, (size_t)(l->c * mhw) * sizeof *out);
  } else if (l->cls == APS_OPC_SR && h == l->h && w == l->w) { /* on the grid: average the blocks */
    int f = l->factor;
    for (int c = 0; c < l->c; c++)
      for (int i = 0; i < l->mh; i++)
        for (int j = 0; j < l->mw; j++) {
          double sum = 0;
          for (int a = 0; a < f; a++)
            for (int b = 0; b < f; b++)
              sum += y[((int64_t)c * h + i * f + a) * w + j * f + b];
          out[(c * l->mh + i) * l->mw + j] = (float)(sum / (f * f));
        }
  } else {
    return aps_fail(APS_ERR_INVALID_ARG, "a measurement of %dx%d (width x height) does not fit operator %s on the "
                    "model's %dx%d images (%s): it takes %dx%d%s", w, h, text, p->cfg.size, p->cfg.size, p->model,
                    l->mw, l->mh, l->cls == APS_OPC_SR ? " or its upsampling to the image's size" : "");
  }
  if (l->cls == APS_OPC_MASK)
    for (int c = 0; c < l->c; c++)
      for (int64_t i = 0; i < mhw; i++)
        out[c * mhw + i] *= one->param[i];
  for (int64_t i = 0; i < l->c * mhw; i++)
    if (!isfinite(out[i]))
      return aps_fail(APS_ERR_INVALID_ARG, "the measurement holds a value that is not finite (at %lld)",
                      (long long)i);
  return APS_OK;
}

static aps_status set_given(aps_posterior *p, aps_op_batch *one, const float *y, int h, int w, const char *text) {
  memset(one->noise, 0, (size_t)(one->l.c * one->l.mh * one->l.mw) * sizeof(float));
  float *ym = malloc((size_t)(one->l.c * one->l.mh * one->l.mw) * sizeof *ym);
  aps_status s = ym ? take_y(p, one, y, h, w, ym, text) : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (s == APS_OK)
    s = commit(p, one, NULL, ym, text);
  aps_op_batch_free(one);
  free(ym);
  return s;
}

aps_status aps_posterior_set_measured(aps_posterior *p, const float *y, int h, int w, const char *spec) {
  p->set = 0;
  char canon[APS_OP_SPEC_MAX];
  aps_op_batch one = {0};
  APS_TRY(draw(p, spec, 0, 1, &one, canon));
  return set_given(p, &one, y, h, w, canon);
}

/* An explicit operator of the model's class into *one; noise from seed when draw_noise. */
static aps_status given_operator(const aps_posterior *p, const aps_posterior_operator *op, uint64_t seed,
                                 int draw_noise, aps_op_batch *one, char text[APS_OP_SPEC_MAX]) {
  int c = p->cfg.channels, size = p->cfg.size;
  aps_op_layout l = {.cls = p->layout.cls, .c = c, .h = size, .w = size, .mh = size, .mw = size, .factor = 1,
                     .desc_max = 1.0f};
  if (!(op->sigma_y >= 0 && op->sigma_y <= APS_SIGMA_Y_MAX))
    return aps_fail(APS_ERR_INVALID_ARG, "given operator: sigma_y %g is outside [0, %g]", op->sigma_y, APS_SIGMA_Y_MAX);
  if (l.cls == APS_OPC_BLUR) {
    if (!(op->sigma_b >= 0 && op->sigma_b <= APS_BLUR_SIGMA_MAX))
      return aps_fail(APS_ERR_INVALID_ARG, "given operator: sigma_b %g is outside [0, %g] px", op->sigma_b,
                      APS_BLUR_SIGMA_MAX);
    int r = (int)ceilf(3.0f * op->sigma_b);
    r = r < 1 ? 1 : r > size - 1 ? size - 1 : r;
    l.ksize = 2 * r + 1;
    l.desc_max = op->sigma_b > 0 ? op->sigma_b : 1.0f;
  }
  if (l.cls == APS_OPC_SR) {
    l.factor = op->factor ? op->factor : p->layout.factor;
    if ((l.factor != 2 && l.factor != 4) || size % l.factor)
      return aps_fail(APS_ERR_INVALID_ARG, "given operator: super-resolution factor %d (2 or 4, dividing %d)",
                      l.factor, size);
    l.mh = l.mw = size / l.factor, l.desc_max = (float)l.factor;
  }
  int64_t hw = (int64_t)size * size;
  for (int64_t i = 0; op->map && l.cls == APS_OPC_BLUR && i < hw; i++)
    if (!(op->map[i] >= 0.0f && op->map[i] <= 1.0f))
      return aps_fail(APS_ERR_INVALID_ARG, "given operator: the blur map's value %g at pixel %lld is outside [0, 1]",
                      op->map[i], (long long)i);
  APS_TRY(aps_op_batch_alloc(&l, 1, one));
  for (int64_t i = 0; i < hw; i++) {
    float m = op->map ? op->map[i] : 1.0f;
    one->param[i] = l.cls == APS_OPC_MASK ? (m >= 0.5f ? 1.0f : 0.0f) : l.cls == APS_OPC_BLUR ? m : 1.0f;
    one->descriptor[i] = l.cls == APS_OPC_MASK ? one->param[i]
                         : l.cls == APS_OPC_BLUR ? one->param[i] * op->sigma_b : (float)l.factor;
  }
  if (l.cls == APS_OPC_BLUR)
    aps_op_gaussian(l.ksize, op->sigma_b, one->kernel);
  one->sigma_b[0] = l.cls == APS_OPC_BLUR ? op->sigma_b : 0.0f;
  one->sigma_y[0] = op->sigma_y;
  one->seed[0] = seed;
  uint64_t rng = seed;
  for (int64_t i = 0; i < (int64_t)c * l.mh * l.mw; i++)
    one->noise[i] = draw_noise ? aps_rng_normal(&rng) : 0.0f;
  if (l.cls == APS_OPC_SR)
    snprintf(text, APS_OP_SPEC_MAX, "given operator: sr:%d, noise=%g", l.factor, op->sigma_y);
  else if (l.cls == APS_OPC_BLUR)
    snprintf(text, APS_OP_SPEC_MAX, "given operator: blur map, sigma=%g, noise=%g", op->sigma_b, op->sigma_y);
  else
    snprintf(text, APS_OP_SPEC_MAX, "given operator: mask, noise=%g", op->sigma_y);
  return APS_OK;
}

aps_status aps_posterior_set_clean_operator(aps_posterior *p, const float *image, const aps_posterior_operator *op,
                                            uint64_t seed) {
  p->set = 0;
  char text[APS_OP_SPEC_MAX];
  aps_op_batch one = {0};
  APS_TRY(given_operator(p, op, seed, 1, &one, text));
  return commit(p, &one, image, NULL, text);
}

aps_status aps_posterior_set_measured_operator(aps_posterior *p, const float *y, int h, int w,
                                               const aps_posterior_operator *op) {
  p->set = 0;
  char text[APS_OP_SPEC_MAX];
  aps_op_batch one = {0};
  APS_TRY(given_operator(p, op, 0, 0, &one, text));
  return set_given(p, &one, y, h, w, text);
}

aps_status aps_posterior_set_bundle(aps_posterior *p, const aps_measurements *m, int index) {
  p->set = 0;
  const aps_op_layout *l = &m->b.l;
  if (index < 0 || index >= m->b.n)
    return aps_fail(APS_ERR_INVALID_ARG, "measurement %d of a bundle of %d", index, m->b.n);
  if (l->c != p->cfg.channels || l->h != p->cfg.size || l->w != p->cfg.size)
    return aps_fail(APS_ERR_INVALID_ARG, "measurements of %dx%dx%d images (c x h x w) do not fit %s, a flow for "
                    "%dx%dx%d images", l->c, l->h, l->w, p->model, p->cfg.channels, p->cfg.size, p->cfg.size);
  char canon[APS_OP_SPEC_MAX], text[APS_OP_SPEC_MAX + 32];
  APS_TRY(aps_op_spec_format(&m->spec, canon, sizeof canon));
  int to_blur = 0;
  APS_TRY(check_class(p, &m->spec, canon, &to_blur));
  aps_op_batch one;
  APS_TRY(aps_op_batch_alloc(l, 1, &one));
  int64_t hw = (int64_t)l->h * l->w, kk = (int64_t)l->ksize * l->ksize, mper = (int64_t)l->c * l->mh * l->mw;
  memcpy(one.param, m->b.param + index * hw, (size_t)hw * sizeof(float));
  memcpy(one.descriptor, m->b.descriptor + index * hw, (size_t)hw * sizeof(float));
  if (kk)
    memcpy(one.kernel, m->b.kernel + index * kk, (size_t)kk * sizeof(float));
  memset(one.noise, 0, (size_t)mper * sizeof(float));
  one.sigma_b[0] = m->b.sigma_b[index], one.sigma_y[0] = m->b.sigma_y[index];
  one.member[0] = m->b.member[index], one.seed[0] = m->b.seed[index];
  aps_status s = to_blur ? as_blur(p, &one) : APS_OK;
  snprintf(text, sizeof text, "%s #%d", canon, index);
  if (s == APS_OK)
    s = commit(p, &one, NULL, m->y + index * mper, text);
  aps_op_batch_free(&one);
  return s;
}
