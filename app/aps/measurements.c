/* Measurement bundles: what `aps degrade` writes and later commands read (operators.h). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators.h"

#define KIND "measurements"

aps_status aps_measurements_write(const char *path, const aps_op_spec *spec, const aps_op_batch *b, const float *y,
                                  const char *source) {
  const aps_op_layout *l = &b->l;
  int n = b->n;
  char op[APS_OP_SPEC_MAX], image[96];
  APS_TRY(aps_op_spec_format(spec, op, sizeof op));
  snprintf(image, sizeof image, "c=%d h=%d w=%d", l->c, l->h, l->w);
  char *seeds = malloc((size_t)n * 21 + 1);
  float *member = malloc((size_t)n * sizeof *member);
  if (!seeds || !member) {
    free(seeds), free(member);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
  }
  size_t used = 0;
  seeds[0] = 0;
  for (int i = 0; i < n; i++) {
    used += (size_t)sprintf(seeds + used, "%s%" PRIu64, i ? "," : "", b->seed[i]);
    member[i] = (float)b->member[i];
  }
  const gr_st_tensor t[] = {
      {"y", 4, {n, l->c, l->mh, l->mw}, y},
      {"descriptor", 4, {n, 1, l->h, l->w}, b->descriptor},
      {"sigma_y", 1, {n}, b->sigma_y},
      {"param", 4, {n, 1, l->h, l->w}, b->param},
      {"sigma_b", 1, {n}, b->sigma_b},
      {"member", 1, {n}, member},
  };
  const gr_st_meta meta[] = {{"aps.kind", KIND}, {APS_OP_META_KEY, op}, {"aps.image", image}, {"aps.seeds", seeds},
                             {"aps.source", source ? source : ""}};
  aps_status s = gr_st_write(path, t, sizeof t / sizeof *t, meta, sizeof meta / sizeof *meta);
  free(seeds), free(member);
  return s;
}

void aps_measurements_free(aps_measurements *m) {
  if (!m)
    return;
  aps_op_batch_free(&m->b);
  free(m->y);
  free(m);
}

/* Tensor `name` of st with exactly the dims, copied into dst. */
static aps_status take(const gr_st *st, const char *name, int rank, const int64_t *dims, float *dst) {
  int r = 0;
  int64_t d[4] = {0};
  const float *v = NULL;
  aps_status s = gr_st_get_f32(st, name, &r, d, &v);
  if (s != APS_OK)
    return aps_fail_context(APS_ERR_FORMAT, "%s: tensor '%s': ", gr_st_path(st), name);
  int same = r == rank;
  int64_t count = 1;
  for (int i = 0; same && i < rank; i++)
    same = d[i] == dims[i], count *= dims[i];
  if (!same) {
    char have[96] = "[", want[96] = "[";
    for (int i = 0; i < r; i++)
      snprintf(have + strlen(have), sizeof have - strlen(have), "%s%" PRId64, i ? ", " : "", d[i]);
    for (int i = 0; i < rank; i++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%" PRId64, i ? ", " : "", dims[i]);
    return aps_fail(APS_ERR_FORMAT, "%s: tensor '%s' is %s], the bundle's operator and images make it %s]",
                    gr_st_path(st), name, have, want);
  }
  for (int64_t i = 0; i < count; i++)
    if (!isfinite(v[i]))
      return aps_fail(APS_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at %" PRId64, gr_st_path(st), name, i);
  memcpy(dst, v, (size_t)count * sizeof *dst);
  return APS_OK;
}

static aps_status read_bundle(const gr_st *st, const aps_measurements_expect *want, aps_measurements *m) {
  const char *path = gr_st_path(st), *kind = gr_st_metadata(st, "aps.kind");
  if (!kind || strcmp(kind, KIND))
    return aps_fail(APS_ERR_FORMAT, "%s: aps.kind is '%s', not '" KIND "' (not a measurement bundle)", path,
                    kind ? kind : "(absent)");
  APS_TRY(aps_op_spec_from_file(st, &m->spec));
  char have[APS_OP_SPEC_MAX];
  APS_TRY(aps_op_spec_format(&m->spec, have, sizeof have));
  if (want && want->spec) {
    aps_op_spec ws;
    char wtext[APS_OP_SPEC_MAX];
    if (aps_op_spec_parse(want->spec, &ws) != APS_OK || aps_op_spec_format(&ws, wtext, sizeof wtext) != APS_OK)
      return aps_fail_context(APS_ERR_INVALID_ARG, "%s: the expected operator: ", path);
    if (strcmp(have, wtext))
      return aps_fail(APS_ERR_INVALID_ARG, "%s: measurements of operator %s, expected %s", path, have, wtext);
  }
  const char *image = gr_st_metadata(st, "aps.image");
  int c = 0, h = 0, w = 0;
  char extra;
  if (!image || sscanf(image, "c=%d h=%d w=%d%c", &c, &h, &w, &extra) != 3)
    return aps_fail(APS_ERR_FORMAT, "%s: aps.image is '%s', expected 'c=C h=H w=W'", path, image ? image : "(absent)");
  if (want && ((want->c && want->c != c) || (want->h && want->h != h) || (want->w && want->w != w)))
    return aps_fail(APS_ERR_INVALID_ARG, "%s: measurements of %dx%dx%d images (c x h x w), expected %dx%dx%d", path, c,
                    h, w, want->c ? want->c : c, want->h ? want->h : h, want->w ? want->w : w);
  aps_op_layout l;
  if (aps_op_layout_make(&m->spec, c, h, w, &l) != APS_OK)
    return aps_fail_context(APS_ERR_FORMAT, "%s: ", path);
  if (want && want->check_class && want->cls != l.cls)
    return aps_fail(APS_ERR_INVALID_ARG, "%s: operator %s is of another class than expected", path, have);
  int r = 0;
  int64_t d[4];
  if (gr_st_get_f32(st, "y", &r, d, NULL) != APS_OK || r != 4 || d[0] < 1 || d[0] > 1 << 24)
    return aps_fail(APS_ERR_FORMAT, "%s: no tensor 'y' of rank 4 with 1 to 2^24 samples", path);
  int n = (int)d[0];
  APS_TRY(aps_op_batch_alloc(&l, n, &m->b));
  free(m->b.noise), m->b.noise = NULL;
  if (!(m->y = malloc((size_t)n * c * l.mh * l.mw * sizeof(float))))
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
  float *member = malloc((size_t)n * sizeof *member);
  if (!member)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
  aps_status s = take(st, "y", 4, (int64_t[]){n, c, l.mh, l.mw}, m->y);
  if (s == APS_OK)
    s = take(st, "descriptor", 4, (int64_t[]){n, 1, h, w}, m->b.descriptor);
  if (s == APS_OK)
    s = take(st, "sigma_y", 1, (int64_t[]){n}, m->b.sigma_y);
  if (s == APS_OK)
    s = take(st, "param", 4, (int64_t[]){n, 1, h, w}, m->b.param);
  if (s == APS_OK)
    s = take(st, "sigma_b", 1, (int64_t[]){n}, m->b.sigma_b);
  if (s == APS_OK)
    s = take(st, "member", 1, (int64_t[]){n}, member);
  for (int i = 0; s == APS_OK && i < n; i++) {
    if (member[i] != floorf(member[i]) || member[i] < 0 || member[i] >= (float)m->spec.count)
      s = aps_fail(APS_ERR_FORMAT, "%s: member[%d] = %g is not a member of %s", path, i, member[i], have);
    else if (m->b.sigma_y[i] < 0)
      s = aps_fail(APS_ERR_FORMAT, "%s: sigma_y[%d] = %g is negative", path, i, m->b.sigma_y[i]);
    else if (l.cls == APS_OPC_BLUR && (m->b.sigma_b[i] < 0 || m->b.sigma_b[i] > APS_BLUR_SIGMA_MAX))
      s = aps_fail(APS_ERR_FORMAT, "%s: sigma_b[%d] = %g is outside [0, %g]", path, i, m->b.sigma_b[i],
                   APS_BLUR_SIGMA_MAX);
    m->b.member[i] = (int)member[i];
  }
  free(member);
  for (int64_t i = 0; s == APS_OK && i < (int64_t)n * h * w; i++) {
    float p = m->b.param[i];
    if (l.cls == APS_OPC_MASK ? (p != 0.0f && p != 1.0f) : (p < 0.0f || p > 1.0f))
      s = aps_fail(APS_ERR_FORMAT, "%s: param[%" PRId64 "] = %g is not a %s", path, i, p,
                   l.cls == APS_OPC_MASK ? "mask value (0 or 1)" : "weight in [0, 1]");
  }
  if (s != APS_OK)
    return s;
  /* The seeds, one per sample. */
  const char *seeds = gr_st_metadata(st, "aps.seeds");
  const char *q = seeds ? seeds : "";
  for (int i = 0; i < n; i++) {
    char *end;
    m->b.seed[i] = strtoull(q, &end, 10);
    if (end == q || (*end != ',' && *end) || (*end == 0 && i != n - 1) || (*end == ',' && i == n - 1))
      return aps_fail(APS_ERR_FORMAT, "%s: aps.seeds does not hold %d comma-separated integers", path, n);
    q = end + (*end == ',');
  }
  for (int i = 0; l.cls == APS_OPC_BLUR && i < n; i++)
    aps_op_gaussian(l.ksize, m->b.sigma_b[i], m->b.kernel + (int64_t)i * l.ksize * l.ksize);
  const char *source = gr_st_metadata(st, "aps.source");
  snprintf(m->source, sizeof m->source, "%s", source ? source : "");
  return APS_OK;
}

aps_status aps_measurements_load(const char *path, const aps_measurements_expect *want, aps_measurements **out) {
  *out = NULL;
  gr_st *st = NULL;
  APS_TRY(gr_st_open(path, &st));
  aps_measurements *m = calloc(1, sizeof *m);
  aps_status s = m ? read_bundle(st, want, m) : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  gr_st_close(st);
  if (s != APS_OK) {
    aps_measurements_free(m);
    return s;
  }
  *out = m;
  return APS_OK;
}
