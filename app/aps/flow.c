/* Flow configs and model files, whole flows in either direction, parameter initialisation
 * (random and data-dependent) and sampling. */
#include "flow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static const char *const arch_names[APS_FLOW_ARCH_COUNT] = {"glow", "realnvp-fc"};
const char *aps_flow_arch_name(aps_flow_arch a) { return a >= 0 && a < APS_FLOW_ARCH_COUNT ? arch_names[a] : "?"; }

aps_flow_config aps_flow_config_glow(int channels, int size, int cond) {
  return (aps_flow_config){.arch = APS_FLOW_GLOW, .channels = channels, .size = size, .cond = cond, .levels = 3,
                           .steps = 4, .hidden = 64, .cond_hidden = 16, .pixels = 1, .bound = 2.0f,
                           .seed = 1};
}

aps_flow_config aps_flow_config_realnvp(int dim, int cond) {
  return (aps_flow_config){.arch = APS_FLOW_REALNVP_FC, .dim = dim, .cond = cond, .steps = 8, .hidden = 64,
                           .bound = 2.0f, .seed = 1};
}

aps_status aps_flow_config_check(const aps_flow_config *c) {
  if (c->arch < 0 || c->arch >= APS_FLOW_ARCH_COUNT)
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: arch %d is not glow or realnvp-fc", (int)c->arch);
  if (c->steps < 1 || c->steps > 256)
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: steps=%d, expected 1 to 256", c->steps);
  if (c->hidden < 1 || c->hidden > 4096)
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: hidden=%d, expected 1 to 4096", c->hidden);
  if (!(c->bound > 0 && c->bound <= 16))
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: bound=%g, expected in (0, 16]", c->bound);
  if (c->arch == APS_FLOW_REALNVP_FC) {
    if (c->dim < 2 || c->dim > 1 << 20)
      return aps_fail(APS_ERR_INVALID_ARG, "flow config: dim=%d, expected 2 to 2^20", c->dim);
    if (c->cond < 0 || c->cond > 1 << 20)
      return aps_fail(APS_ERR_INVALID_ARG, "flow config: cond=%d, expected 0 to 2^20", c->cond);
    return APS_OK;
  }
  if (c->channels < 1 || c->channels > 16)
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: channels=%d, expected 1 to 16", c->channels);
  if (c->levels < 1 || c->levels > 8)
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: levels=%d, expected 1 to 8", c->levels);
  if (c->size < 2 || c->size > 4096 || c->size % (1 << c->levels))
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: size=%d is not a multiple of 2^levels = %d", c->size,
                    1 << c->levels);
  if (c->cond < 0 || c->cond > 256)
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: cond=%d, expected 0 to 256 channels", c->cond);
  if (c->pixels != 0 && c->pixels != 1)
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: pixels=%d, expected 0 or 1", c->pixels);
  if (c->head != 0 && (c->head != 1 || c->arch != APS_FLOW_GLOW || !c->cond))
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: head=%d, expected 0, or 1 for a glow with a condition", c->head);
  if (c->cond && (c->cond_hidden < 1 || c->cond_hidden > 4096))
    return aps_fail(APS_ERR_INVALID_ARG, "flow config: cond_hidden=%d, expected 1 to 4096", c->cond_hidden);
  return APS_OK;
}

void aps_flow_config_string(const aps_flow_config *c, char out[256]) {
  if (c->arch == APS_FLOW_REALNVP_FC)
    snprintf(out, 256, "arch=realnvp-fc dim=%d steps=%d hidden=%d cond=%d bound=%.9g seed=%u", c->dim, c->steps,
             c->hidden, c->cond, c->bound, c->seed);
  else
    snprintf(out, 256,
             "arch=%s channels=%d size=%d levels=%d steps=%d hidden=%d cond=%d cond_hidden=%d pixels=%d%s bound=%.9g "
             "seed=%u",
             aps_flow_arch_name(c->arch), c->channels, c->size, c->levels, c->steps, c->hidden, c->cond,
             c->cond_hidden, c->pixels, c->head ? " head=1" : "", c->bound, c->seed);
}

/* The value of key in a "key=value ..." list: its start and length, or 0 if absent. */
static int field(const char *s, const char *key, const char **v, size_t *len) {
  size_t k = strlen(key);
  for (const char *p = s; *p;) {
    while (*p == ' ')
      p++;
    size_t n = strcspn(p, " ");
    if (n > k && !strncmp(p, key, k) && p[k] == '=') {
      *v = p + k + 1;
      *len = n - k - 1;
      return 1;
    }
    p += n;
  }
  return 0;
}

static aps_status int_key(const char *s, const char *key, int required, int *out) {
  const char *v;
  size_t len;
  if (!field(s, key, &v, &len))
    return required ? aps_fail(APS_ERR_FORMAT, "flow config lacks '%s'", key) : APS_OK;
  char buf[32], *end;
  snprintf(buf, sizeof buf, "%.*s", (int)(len < 31 ? len : 31), v);
  long x = strtol(buf, &end, 10);
  if (!len || *end || len > 30 || x < 0 || x > (1L << 30))
    return aps_fail(APS_ERR_FORMAT, "flow config: '%s=%.*s' is not a non-negative integer", key, (int)len, v);
  *out = (int)x;
  return APS_OK;
}

aps_status aps_flow_config_parse(const char *s, aps_flow_config *out) {
  const char *v;
  size_t len;
  aps_flow_config c = aps_flow_config_glow(1, 32, 0);
  if (field(s, "arch", &v, &len)) {
    if (len == 10 && !strncmp(v, "realnvp-fc", 10))
      c = aps_flow_config_realnvp(2, 0);
    else if (!(len == 4 && !strncmp(v, "glow", 4)))
      return aps_fail(APS_ERR_FORMAT, "flow config: 'arch=%.*s' is not glow or realnvp-fc", (int)len, v);
  }
  static const char *const glow_keys[] = {"arch", "channels", "size", "levels", "steps", "hidden", "cond",
                                          "cond_hidden", "pixels", "head", "bound", "seed", NULL};
  static const char *const fc_keys[] = {"arch", "dim", "steps", "hidden", "cond", "bound", "seed", NULL};
  const char *const *keys = c.arch == APS_FLOW_GLOW ? glow_keys : fc_keys;
  for (const char *p = s; *p;) { /* every key must be known */
    while (*p == ' ')
      p++;
    size_t n = strcspn(p, " "), k = strcspn(p, "= ");
    int known = 0;
    for (int i = 0; keys[i] && !known; i++)
      known = k == strlen(keys[i]) && !strncmp(p, keys[i], k) && k < n;
    if (n && !known)
      return aps_fail(APS_ERR_FORMAT, "flow config: unknown or malformed '%.*s' for arch=%s", (int)n, p,
                      aps_flow_arch_name(c.arch));
    p += n;
  }
  int seed = (int)c.seed;
  if (c.arch == APS_FLOW_GLOW) {
    APS_TRY(int_key(s, "channels", 1, &c.channels));
    APS_TRY(int_key(s, "size", 1, &c.size));
    APS_TRY(int_key(s, "levels", 0, &c.levels));
    APS_TRY(int_key(s, "cond_hidden", 0, &c.cond_hidden));
    c.pixels = 0; /* absent in flows written before it existed, which lack that path */
    APS_TRY(int_key(s, "pixels", 0, &c.pixels));
    APS_TRY(int_key(s, "head", 0, &c.head));
  } else {
    APS_TRY(int_key(s, "dim", 1, &c.dim));
  }
  APS_TRY(int_key(s, "steps", 0, &c.steps));
  APS_TRY(int_key(s, "hidden", 0, &c.hidden));
  APS_TRY(int_key(s, "cond", 0, &c.cond));
  APS_TRY(int_key(s, "seed", 0, &seed));
  c.seed = (uint32_t)seed;
  if (field(s, "bound", &v, &len)) {
    char buf[32], *end;
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 31 ? len : 31), v);
    double b = strtod(buf, &end);
    if (!len || *end || !isfinite(b))
      return aps_fail(APS_ERR_FORMAT, "flow config: 'bound=%.*s' is not a number", (int)len, v);
    c.bound = (float)b;
  }
  if (aps_flow_config_check(&c) != APS_OK)
    return aps_fail_context(APS_ERR_FORMAT, "%s", "");
  *out = c;
  return APS_OK;
}

void aps_flow_config_meta(const aps_flow_config *c, char buf[256], gr_st_meta meta[APS_FLOW_META]) {
  aps_flow_config_string(c, buf);
  meta[0] = (gr_st_meta){"aps.kind", "flow/conditional"};
  meta[1] = (gr_st_meta){"aps.flow", buf};
}

aps_status aps_flow_config_from_file(const gr_st *st, aps_flow_config *out) {
  const char *kind = gr_st_metadata(st, "aps.kind"), *flow = gr_st_metadata(st, "aps.flow");
  if (!kind || strcmp(kind, "flow/conditional"))
    return aps_fail(APS_ERR_FORMAT, "%s: not a conditional flow (metadata aps.kind is %s%s%s, expected "
                    "\"flow/conditional\")", gr_st_path(st), kind ? "\"" : "", kind ? kind : "missing", kind ? "\"" : "");
  if (!flow)
    return aps_fail(APS_ERR_FORMAT, "%s: metadata aps.flow is missing", gr_st_path(st));
  if (aps_flow_config_parse(flow, out) != APS_OK)
    return aps_fail_context(APS_ERR_FORMAT, "%s: metadata aps.flow: ", gr_st_path(st));
  return APS_OK;
}

int64_t aps_flow_dim(const aps_flow_config *c) {
  return c->arch == APS_FLOW_REALNVP_FC ? c->dim : (int64_t)c->channels * c->size * c->size;
}
gr_shape aps_flow_shape(const aps_flow_config *c, int64_t n) {
  return c->arch == APS_FLOW_REALNVP_FC ? GR_SHAPE(n, c->dim) : GR_SHAPE(n, c->channels, c->size, c->size);
}
gr_shape aps_flow_cond_shape(const aps_flow_config *c, int64_t n) {
  return c->arch == APS_FLOW_REALNVP_FC ? GR_SHAPE(n, c->cond) : GR_SHAPE(n, c->cond, c->size, c->size);
}

/* ------------------------------------------------------------------ whole flows */

static gr_tensor build(gr_graph *g, const aps_flow_config *c, gr_tensor in, gr_tensor cond, gr_tensor *logdet,
                       int inverse, int ddi, aps_status *status) {
  if (logdet)
    *logdet = 0;
  if (aps_flow_config_check(c) != APS_OK) {
    *status = APS_ERR_INVALID_ARG;
    return 0;
  }
  aps_flow_ctx f;
  aps_flow_ctx_init(&f, g, gr_tensor_shape(g, in).d[0], inverse, c->seed);
  f.ddi = ddi;
  gr_tensor out = c->arch == APS_FLOW_GLOW ? aps_flow_glow(&f, c, in, c->cond ? cond : 0)
                                           : aps_flow_realnvp(&f, c, in, c->cond ? cond : 0);
  gr_tensor ld = f.logdet;
  *status = aps_flow_ctx_done(&f);
  if (*status != APS_OK)
    return 0;
  if (logdet)
    *logdet = ld;
  return out;
}

gr_tensor aps_flow_forward(gr_graph *g, const aps_flow_config *c, gr_tensor z, gr_tensor cond, gr_tensor *logdet) {
  aps_status s;
  return build(g, c, z, cond, logdet, 0, 0, &s);
}

gr_tensor aps_flow_inverse(gr_graph *g, const aps_flow_config *c, gr_tensor x, gr_tensor cond, gr_tensor *logdet) {
  aps_status s;
  return build(g, c, x, cond, logdet, 1, 0, &s);
}

/* ------------------------------------------------------------------ initialisation */

static int ends_with(const char *s, const char *tail) {
  size_t a = strlen(s), b = strlen(tail);
  return a >= b && !strcmp(s + a - b, tail);
}

aps_status aps_flow_init_params(const gr_graph *g, const aps_flow_config *c, aps_runner *r, uint64_t *rng) {
  gr_tensor t;
  for (uint32_t i = 0; (t = gr_param_at(g, i)); i++) {
    const char *name = gr_tensor_name(g, t);
    if (gr_tensor_is_state(g, t) || strncmp(name, "flow.", 5))
      continue;
    const char *dot = strrchr(name, '.'), *leaf = dot + 1;
    char parent[GR_MAX_NAME];
    snprintf(parent, sizeof parent, "%.*s", (int)(dot - name), name);
    gr_shape s = gr_tensor_shape(g, t);
    int64_t n = gr_shape_count(s);
    float *v = calloc((size_t)n * 3, sizeof *v);
    if (!v)
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    aps_status st = APS_OK;
    if (!strcmp(leaf, "lower") || !strcmp(leaf, "upper")) {
      int ch = (int)s.d[0];
      aps_flow_invconv_factors(c->seed, parent, ch, NULL, NULL, !strcmp(leaf, "lower") ? v : NULL,
                               !strcmp(leaf, "upper") ? v : NULL, NULL);
    } else if (!strcmp(leaf, "log_s")) {
      aps_flow_invconv_factors(c->seed, parent, (int)n, NULL, NULL, NULL, NULL, v);
    } else if (!strcmp(leaf, "gamma")) {
      for (int64_t k = 0; k < n; k++)
        v[k] = 1.0f;
    } else if (!strcmp(leaf, "weight") && !ends_with(parent, ".out")) {
      int64_t fan_in = s.rank == 4 ? n / s.d[0] : s.d[0];
      float bound = 1.0f / sqrtf((float)fan_in);
      for (int64_t k = 0; k < n; k++)
        v[k] = bound * (2.0f * (float)(aps_rng_next(rng) >> 40) * 0x1p-24f - 1.0f);
    } else if (strcmp(leaf, "weight") && strcmp(leaf, "bias") && strcmp(leaf, "logs") && strcmp(leaf, "beta")) {
      st = aps_fail(APS_ERR_INVALID_ARG, "flow init: no rule for parameter '%s'", name);
    }
    if (st == APS_OK)
      st = aps_runner_set(r, name, v, n);
    free(v);
    APS_TRY(st);
  }
  return APS_OK;
}

aps_status aps_flow_actnorm_init(aps_runner *r, const aps_flow_config *c, int inverse, const float *data,
                                 const float *cond, int batch) {
  APS_TRY(aps_flow_config_check(c));
  if (batch < 2 || !data || (c->cond && !cond))
    return aps_fail(APS_ERR_INVALID_ARG, "flow actnorm init: needs a batch of at least 2 samples%s",
                    c->cond ? " and their conditions" : "");
  gr_graph *g = gr_graph_create(), *plain = gr_graph_create();
  aps_runner *cpu = NULL;
  aps_status s = g && plain ? APS_OK : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  if (s == APS_OK) {
    gr_tensor in = gr_input(g, "data", aps_flow_shape(c, batch));
    gr_tensor cd = c->cond ? gr_input(g, "cond", aps_flow_cond_shape(c, batch)) : 0;
    gr_tensor ld, out = build(g, c, in, cd, &ld, inverse, 1, &s);
    if (s == APS_OK) {
      gr_output(g, out, "out");
      gr_output(g, ld, "logdet");
      s = gr_graph_status(g);
    }
  }
  if (s == APS_OK) { /* the same flow without statistics: which parameters it has */
    gr_tensor in = gr_input(plain, "data", aps_flow_shape(c, 1));
    gr_tensor cd = c->cond ? gr_input(plain, "cond", aps_flow_cond_shape(c, 1)) : 0;
    build(plain, c, in, cd, NULL, 0, 0, &s);
  }
  if (s == APS_OK)
    s = aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &cpu);
  gr_tensor t;
  int64_t dim = aps_flow_dim(c), cdim = gr_shape_count(aps_flow_cond_shape(c, 1));
  float *v = NULL;
  for (uint32_t i = 0; s == APS_OK && (t = gr_param_at(g, i)); i++) { /* the other parameters, from r */
    int64_t n = gr_shape_count(gr_tensor_shape(g, t));
    float *nv = realloc(v, (size_t)n * sizeof *v);
    s = nv ? aps_runner_get(r, gr_tensor_name(g, t), nv, n) : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    v = nv ? nv : v;
    if (s == APS_OK)
      s = aps_runner_set(cpu, gr_tensor_name(g, t), v, n);
  }
  if (s == APS_OK)
    s = aps_runner_set(cpu, "data", data, dim * batch);
  if (s == APS_OK && c->cond)
    s = aps_runner_set(cpu, "cond", cond, cdim * batch);
  if (s == APS_OK)
    s = aps_runner_run(cpu);
  char ddi[GR_MAX_NAME + 8];
  for (uint32_t i = 0; s == APS_OK && (t = gr_param_at(plain, i)); i++) {
    const char *name = gr_tensor_name(plain, t);
    snprintf(ddi, sizeof ddi, "ddi.%s", name);
    if (!gr_find(g, ddi))
      continue;
    int64_t n = gr_shape_count(gr_tensor_shape(plain, t));
    float *nv = realloc(v, (size_t)n * sizeof *v);
    s = nv ? aps_runner_get(cpu, ddi, nv, n) : aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    v = nv ? nv : v;
    for (int64_t k = 0; s == APS_OK && k < n; k++)
      if (!isfinite(v[k]))
        s = aps_fail(APS_ERR_INVALID_ARG, "flow actnorm init: '%s' came out %g (constant or non-finite data?)", name,
                     v[k]);
    if (s == APS_OK)
      s = aps_runner_set(r, name, v, n);
  }
  free(v);
  aps_runner_destroy(cpu);
  gr_graph_destroy(g);
  gr_graph_destroy(plain);
  return s;
}

/* ------------------------------------------------------------------ sampling */

aps_status aps_flow_sample_graph(const aps_flow_config *c, int batch, gr_graph **out) {
  *out = NULL;
  APS_TRY(aps_flow_config_check(c));
  if (batch < 1)
    return aps_fail(APS_ERR_INVALID_ARG, "flow sampling graph: batch %d", batch);
  gr_graph *g = gr_graph_create();
  gr_tensor seed = gr_input(g, "seed", GR_SHAPE(2)), temp = gr_input(g, "temperature", aps_flow_shape(c, 1));
  gr_tensor cond = c->cond ? gr_input(g, "cond", aps_flow_cond_shape(c, batch)) : 0;
  gr_tensor z = gr_mul(g, gr_random(g, aps_flow_shape(c, batch), seed, 0, GR_NORMAL), temp);
  gr_tensor ld;
  aps_status s;
  gr_tensor x = build(g, c, z, cond, &ld, 0, 0, &s);
  if (s == APS_OK) {
    gr_output(g, x, "x");
    gr_output(g, ld, "logdet");
    s = gr_graph_status(g);
  }
  if (s != APS_OK) {
    gr_graph_destroy(g);
    return s;
  }
  *out = g;
  return APS_OK;
}

aps_status aps_flow_sample(aps_runner *r, const aps_flow_config *c, int batch, const float *cond, uint64_t seed,
                           float temperature, int k, float *out) {
  APS_TRY(aps_flow_config_check(c));
  int64_t dim = aps_flow_dim(c);
  float *t = malloc(sizeof(float) * (size_t)dim);
  if (!t)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  for (int64_t i = 0; i < dim; i++)
    t[i] = temperature;
  aps_status s = aps_flow_sample_scaled(r, c, batch, cond, seed, t, k, out);
  free(t);
  return s;
}

aps_status aps_flow_sample_scaled(aps_runner *r, const aps_flow_config *c, int batch, const float *cond,
                                  uint64_t seed, const float *temperature, int k, float *out) {
  APS_TRY(aps_flow_config_check(c));
  if (batch < 1 || k < 0 || (c->cond && !cond))
    return aps_fail(APS_ERR_INVALID_ARG, "flow sample: batch %d, k %d%s", batch, k,
                    c->cond && !cond ? ", and the flow needs a condition" : "");
  int64_t dim = aps_flow_dim(c), cdim = c->cond ? gr_shape_count(aps_flow_cond_shape(c, 1)) : 0;
  float *buf = malloc(sizeof(float) * (size_t)(dim + cdim) * (size_t)batch);
  if (!buf)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  aps_status s = aps_runner_set(r, "temperature", temperature, dim);
  for (int b = 0; s == APS_OK && c->cond && b < batch; b++)
    memcpy(buf + (size_t)b * cdim, cond, sizeof(float) * (size_t)cdim);
  if (s == APS_OK && c->cond)
    s = aps_runner_set(r, "cond", buf, cdim * batch);
  uint64_t state = seed;
  for (int done = 0; s == APS_OK && done < k; done += batch) {
    uint64_t bits = aps_rng_next(&state);
    float sd[2] = {(float)(bits & 0xffff), (float)((bits >> 16) & 0xffff)};
    s = aps_runner_set(r, "seed", sd, 2);
    if (s == APS_OK)
      s = aps_runner_run(r);
    if (s == APS_OK)
      s = aps_runner_get(r, "x", buf, dim * batch);
    int take = k - done < batch ? k - done : batch;
    if (s == APS_OK)
      memcpy(out + (size_t)done * dim, buf, sizeof(float) * (size_t)dim * (size_t)take);
  }
  free(buf);
  return s;
}
