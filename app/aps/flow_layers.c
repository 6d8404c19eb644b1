/* The flow layers of flow.h: each a bijection built in either direction with its
 * log-determinant, on graph ops only. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"

enum { ACTNORM_AXES_IMAGE = 1u | 4u | 8u, ACTNORM_AXES_VECTOR = 1u };
static const float ddi_eps = 1e-6f, leaky_slope = 0.2f;

/* Records the first fault of a flow builder; returns the invalid handle 0. */
static gr_tensor fault(aps_flow_ctx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static gr_tensor fault(aps_flow_ctx *f, const char *fmt, ...) {
  if (f->status == APS_OK) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->error, sizeof f->error, fmt, ap);
    va_end(ap);
    f->status = APS_ERR_INVALID_ARG;
  }
  return 0;
}

void aps_flow_ctx_init(aps_flow_ctx *f, gr_graph *g, int64_t n, int inverse, uint32_t seed) {
  memset(f, 0, sizeof *f);
  f->g = g;
  f->inverse = inverse;
  f->seed = seed;
  snprintf(f->scope, sizeof f->scope, "flow");
  gr_scope_push(g, "flow");
  float *zeros = calloc((size_t)(n > 0 ? n : 1), sizeof *zeros);
  f->logdet = zeros ? gr_const(g, "logdet0", GR_SHAPE(n), zeros) : fault(f, "out of host memory");
  free(zeros);
}

aps_status aps_flow_ctx_done(aps_flow_ctx *f) {
  gr_scope_pop(f->g);
  if (f->status != APS_OK)
    return aps_fail(f->status, "%s", f->error);
  return gr_graph_status(f->g);
}

void aps_flow_enter(aps_flow_ctx *f, const char *name) {
  size_t n = strlen(f->scope);
  if (f->depth == (int)(sizeof f->marks / sizeof *f->marks)) {
    fault(f, "flow scopes nested deeper than %d at '%s'", f->depth, f->scope);
    return;
  }
  f->marks[f->depth++] = (uint16_t)n;
  snprintf(f->scope + n, sizeof f->scope - n, ".%s", name);
  gr_scope_push(f->g, name);
}

void aps_flow_leave(aps_flow_ctx *f) {
  if (f->depth > 0)
    f->scope[f->marks[--f->depth]] = 0;
  gr_scope_pop(f->g);
}

gr_tensor aps_flow_param(aps_flow_ctx *f, const char *name, gr_shape s) {
  if (gr_graph_status(f->g) != APS_OK)
    return 0; /* the graph's own error tells */
  char full[2 * GR_MAX_NAME], a[64], b[64];
  snprintf(full, sizeof full, "%s.%s", f->scope, name);
  if (strlen(full) >= GR_MAX_NAME)
    return fault(f, "flow parameter name '%s' is longer than %d characters", full, GR_MAX_NAME - 1);
  gr_tensor t = gr_find(f->g, full);
  if (t) {
    gr_shape have = gr_tensor_shape(f->g, t);
    if (have.rank != s.rank || memcmp(have.d, s.d, sizeof(int64_t) * (size_t)s.rank))
      return fault(f, "flow parameter '%s' is %s here but %s where it was first built", full,
                   gr_shape_str(s, a, sizeof a), gr_shape_str(have, b, sizeof b));
    return t;
  }
  t = gr_param(f->g, name, s);
  if (t && strcmp(gr_tensor_name(f->g, t), full))
    return fault(f, "flow parameter '%s' came out as '%s': build flows outside any graph scope", full,
                 gr_tensor_name(f->g, t));
  return t;
}

static gr_shape shape(aps_flow_ctx *f, gr_tensor x) { return gr_tensor_shape(f->g, x); }
static int64_t pixels(gr_shape s) { return s.rank == 4 ? s.d[2] * s.d[3] : 1; }

/* Adds sign · v ([1] or [N]) to the log-determinant. */
static void add_logdet(aps_flow_ctx *f, gr_tensor v, int forward_sign) {
  int sign = f->inverse ? -forward_sign : forward_sign;
  f->logdet = sign > 0 ? gr_add(f->g, f->logdet, v) : gr_sub(f->g, f->logdet, v);
}

/* [C] -> [1, C, 1, 1] (images) or [1, C] (vectors). */
static gr_tensor per_channel(aps_flow_ctx *f, gr_tensor v, int rank) {
  int64_t c = shape(f, v).d[0];
  return gr_reshape(f->g, v, rank == 4 ? GR_SHAPE(1, c, 1, 1) : GR_SHAPE(1, c));
}

/* HW · Σ p for a parameter vector p [C], as [1]. A matmul with ones rather than a sum
 * reduction: on Vulkan a fused plan fails on the reduction's gradient here ("binding 4 has
 * no buffer" for the broadcast of [1] over the zero constant the VJP adds it to). */
static gr_tensor param_sum(aps_flow_ctx *f, gr_tensor p, int64_t pixels_) {
  int64_t c = shape(f, p).d[0];
  float *ones = malloc(sizeof(float) * (size_t)c);
  if (!ones)
    return fault(f, "out of host memory");
  for (int64_t i = 0; i < c; i++)
    ones[i] = (float)pixels_;
  gr_tensor sum = gr_matmul(f->g, gr_reshape(f->g, p, GR_SHAPE(1, c)), gr_const(f->g, "pixels", GR_SHAPE(c, 1), ones), 0, 0);
  free(ones);
  return gr_reshape(f->g, sum, GR_SHAPE(1));
}

static gr_tensor ddi_output(aps_flow_ctx *f, gr_tensor v, const char *leaf, int64_t c) {
  char name[GR_MAX_NAME + 16];
  snprintf(name, sizeof name, "ddi.%s.%s", f->scope, leaf);
  gr_tensor flat = gr_reshape(f->g, v, GR_SHAPE(c));
  gr_output(f->g, flat, name);
  return v;
}

gr_tensor aps_flow_actnorm(aps_flow_ctx *f, const char *name, gr_tensor x) {
  gr_graph *g = f->g;
  gr_shape s = shape(f, x);
  if (!x || (s.rank != 4 && s.rank != 2))
    return x ? fault(f, "flow actnorm '%s': input must be [N, C, H, W] or [N, D]", name) : 0;
  int64_t c = s.d[1];
  aps_flow_enter(f, name);
  gr_tensor logs, bias;
  if (f->ddi) {
    unsigned axes = s.rank == 4 ? ACTNORM_AXES_IMAGE : ACTNORM_AXES_VECTOR;
    gr_tensor mean = gr_reduce_op(g, GR_MEAN, x, axes), var = gr_reduce_op(g, GR_VAR, x, axes);
    gr_tensor log_var = gr_unary_op(g, GR_LOG, gr_scale_shift(g, var, 1.0f, ddi_eps));
    /* forward: v = u e^logs + b standardised: logs = −½ log var, b = −mean e^logs;
     * inverse: u = (v − b) e^−logs standardised: b = mean, logs = ½ log var. */
    logs = gr_scale_shift(g, log_var, f->inverse ? 0.5f : -0.5f, 0.0f);
    bias = f->inverse ? mean : gr_scale_shift(g, gr_mul(g, mean, gr_unary_op(g, GR_EXP, logs)), -1.0f, 0.0f);
    ddi_output(f, logs, "logs", c);
    ddi_output(f, bias, "bias", c);
    gr_tensor flat = gr_reshape(g, logs, GR_SHAPE(c));
    add_logdet(f, gr_scale_shift(g, gr_reduce_op(g, GR_SUM, flat, 1u), (float)pixels(s), 0.0f), 1);
  } else {
    gr_tensor p = aps_flow_param(f, "logs", GR_SHAPE(c));
    logs = per_channel(f, p, s.rank);
    bias = per_channel(f, aps_flow_param(f, "bias", GR_SHAPE(c)), s.rank);
    add_logdet(f, param_sum(f, p, pixels(s)), 1);
  }
  gr_tensor y = f->inverse ? gr_mul(g, gr_sub(g, x, bias), gr_unary_op(g, GR_EXP, gr_scale_shift(g, logs, -1.0f, 0.0f)))
                           : gr_add(g, gr_mul(g, x, gr_unary_op(g, GR_EXP, logs)), bias);
  aps_flow_leave(f);
  return y;
}

/* ---------------------------------------------------------------- the 1×1 convolution */

static uint64_t splitmix(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint64_t key_state(uint32_t seed, const char *key) {
  uint64_t h = 1469598103934665603ull ^ ((uint64_t)seed * 0x100000001b3ull);
  for (const char *p = key; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return h;
}
static double uniform01(uint64_t *state) { return ((double)(splitmix(state) >> 11) + 0.5) * 0x1p-53; }

void aps_flow_random_perm(uint32_t seed, const char *key, int n, int32_t *perm) {
  uint64_t st = key_state(seed, key);
  for (int i = 0; i < n; i++)
    perm[i] = i;
  for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
    int j = (int)(splitmix(&st) % (uint64_t)(i + 1));
    int32_t t = perm[i];
    perm[i] = perm[j], perm[j] = t;
  }
}

void aps_flow_invconv_factors(uint32_t seed, const char *scope, int c, float *perm, float *sign, float *lower,
                              float *upper, float *log_s) {
  double *a = malloc(sizeof(double) * (size_t)c * (size_t)c);
  int *piv = malloc(sizeof(int) * (size_t)c);
  if (!a || !piv) {
    free(a), free(piv);
    return;
  }
  uint64_t st = key_state(seed, scope);
  /* A random rotation: Gram-Schmidt on the rows of a Gaussian matrix. */
  for (int i = 0; i < c * c; i++)
    a[i] = sqrt(-2 * log(uniform01(&st))) * cos(2 * M_PI * uniform01(&st));
  for (int i = 0; i < c; i++) {
    for (int pass = 0; pass < 2; pass++)
      for (int j = 0; j < i; j++) {
        double dot = 0;
        for (int k = 0; k < c; k++)
          dot += a[i * c + k] * a[j * c + k];
        for (int k = 0; k < c; k++)
          a[i * c + k] -= dot * a[j * c + k];
      }
    double norm = 0;
    for (int k = 0; k < c; k++)
      norm += a[i * c + k] * a[i * c + k];
    for (int k = 0; k < c; k++)
      a[i * c + k] /= sqrt(norm);
  }
  /* LU with partial pivoting: rows piv[i] of the rotation = (L U)[i], so rotation = P L U
   * with P[piv[i]][i] = 1. */
  for (int i = 0; i < c; i++)
    piv[i] = i;
  for (int k = 0; k < c; k++) {
    int p = k;
    for (int i = k + 1; i < c; i++)
      if (fabs(a[i * c + k]) > fabs(a[p * c + k]))
        p = i;
    if (p != k) {
      for (int j = 0; j < c; j++) {
        double t = a[k * c + j];
        a[k * c + j] = a[p * c + j], a[p * c + j] = t;
      }
      int t = piv[k];
      piv[k] = piv[p], piv[p] = t;
    }
    for (int i = k + 1; i < c; i++) {
      a[i * c + k] /= a[k * c + k];
      for (int j = k + 1; j < c; j++)
        a[i * c + j] -= a[i * c + k] * a[k * c + j];
    }
  }
  for (int i = 0; i < c; i++)
    for (int j = 0; j < c; j++) {
      if (perm)
        perm[i * c + j] = piv[j] == i ? 1.0f : 0.0f;
      if (lower)
        lower[i * c + j] = j < i ? (float)a[i * c + j] : 0.0f;
      if (upper)
        upper[i * c + j] = j > i ? (float)a[i * c + j] : 0.0f;
    }
  for (int i = 0; i < c; i++) {
    if (sign)
      sign[i] = a[i * c + i] < 0 ? -1.0f : 1.0f;
    if (log_s)
      log_s[i] = (float)log(fabs(a[i * c + i]));
  }
  free(a), free(piv);
}

gr_tensor aps_flow_invconv(aps_flow_ctx *f, const char *name, gr_tensor x) {
  gr_graph *g = f->g;
  gr_shape s = shape(f, x);
  if (!x || (s.rank != 4 && s.rank != 2))
    return x ? fault(f, "flow invconv '%s': input must be [N, C, H, W] or [N, D]", name) : 0;
  int c = (int)s.d[1];
  aps_flow_enter(f, name);
  float *buf = malloc(sizeof(float) * (size_t)c * (size_t)c * 4 + sizeof(float) * (size_t)c);
  if (!buf) {
    aps_flow_leave(f);
    return fault(f, "out of host memory");
  }
  float *perm = buf, *eye = perm + c * c, *mask_l = eye + c * c, *mask_u = mask_l + c * c, *sign = mask_u + c * c;
  aps_flow_invconv_factors(f->seed, f->scope, c, perm, sign, NULL, NULL, NULL);
  for (int i = 0; i < c; i++)
    for (int j = 0; j < c; j++) {
      eye[i * c + j] = i == j ? 1.0f : 0.0f;
      mask_l[i * c + j] = j < i ? 1.0f : 0.0f;
      mask_u[i * c + j] = j > i ? 1.0f : 0.0f;
    }
  gr_shape sq = GR_SHAPE(c, c);
  gr_tensor p = gr_const(g, "perm", sq, perm), e = gr_const(g, "eye", sq, eye);
  gr_tensor ml = gr_const(g, "mask_lower", sq, mask_l), mu = gr_const(g, "mask_upper", sq, mask_u);
  gr_tensor sg = gr_const(g, "sign", GR_SHAPE(1, c), sign);
  free(buf);
  gr_tensor log_s = aps_flow_param(f, "log_s", GR_SHAPE(c));
  gr_tensor lo = gr_add(g, gr_mul(g, aps_flow_param(f, "lower", sq), ml), e);
  gr_tensor diag = gr_mul(g, e, gr_mul(g, sg, gr_unary_op(g, GR_EXP, gr_reshape(g, log_s, GR_SHAPE(1, c)))));
  gr_tensor up = gr_add(g, gr_mul(g, aps_flow_param(f, "upper", sq), mu), diag);
  gr_tensor w = gr_matmul(g, p, gr_matmul(g, lo, up, 0, 0), 0, 0);
  if (f->inverse)
    w = gr_inverse(g, w);
  gr_tensor y = s.rank == 4 ? gr_conv2d(g, x, gr_reshape(g, w, GR_SHAPE(c, c, 1, 1)), 0, &(gr_conv2d_desc){0})
                            : gr_matmul(g, x, w, 0, 1);
  add_logdet(f, param_sum(f, log_s, pixels(s)), 1);
  aps_flow_leave(f);
  return y;
}

/* ---------------------------------------------------------------- couplings */

gr_tensor aps_flow_conv(aps_flow_ctx *f, const char *name, gr_tensor x, int out, int k) {
  aps_flow_enter(f, name);
  int64_t in = shape(f, x).d[1];
  gr_tensor w = aps_flow_param(f, "weight", GR_SHAPE(out, in, k, k)), b = aps_flow_param(f, "bias", GR_SHAPE(out));
  gr_tensor y = gr_conv2d(f->g, x, w, b, &(gr_conv2d_desc){.padding = k / 2});
  aps_flow_leave(f);
  return y;
}

gr_tensor aps_flow_linear(aps_flow_ctx *f, const char *name, gr_tensor x, int out) {
  aps_flow_enter(f, name);
  int64_t in = shape(f, x).d[1];
  gr_tensor w = aps_flow_param(f, "weight", GR_SHAPE(in, out)), b = aps_flow_param(f, "bias", GR_SHAPE(out));
  gr_tensor y = gr_add(f->g, gr_matmul(f->g, x, w, 0, 0), b);
  aps_flow_leave(f);
  return y;
}

static gr_tensor layer_norm(aps_flow_ctx *f, const char *name, gr_tensor x) {
  aps_flow_enter(f, name);
  int64_t c = shape(f, x).d[1];
  gr_tensor y = gr_group_norm(f->g, x, 1, aps_flow_param(f, "gamma", GR_SHAPE(c)), aps_flow_param(f, "beta", GR_SHAPE(c)),
                              1e-5f);
  aps_flow_leave(f);
  return y;
}

/* The net of a coupling: (raw s, t) stacked on axis 1, 2·out channels or features. */
static gr_tensor coupling_net(aps_flow_ctx *f, gr_tensor in, int hidden, int out, int image) {
  gr_graph *g = f->g;
  if (image) {
    gr_tensor h = gr_leaky_relu(g, aps_flow_conv(f, "in", in, hidden, 3), leaky_slope);
    h = gr_leaky_relu(g, aps_flow_conv(f, "mid", h, hidden, 1), leaky_slope);
    return aps_flow_conv(f, "out", h, 2 * out, 3);
  }
  gr_tensor h = layer_norm(f, "norm0", gr_leaky_relu(g, aps_flow_linear(f, "in", in, hidden), leaky_slope));
  h = layer_norm(f, "norm1", gr_leaky_relu(g, aps_flow_linear(f, "mid", h, hidden), leaky_slope));
  return aps_flow_linear(f, "out", h, 2 * out);
}

/* u·exp(s) + t (inverse: (v − t)·exp(−s)) with s = bound·tanh(raw/bound), (raw, t) the two
 * halves of h on axis 1 (c channels each); adds Σ s to the log-determinant. */
static gr_tensor affine(aps_flow_ctx *f, gr_tensor u, gr_tensor h, int64_t c, float bound) {
  gr_graph *g = f->g;
  gr_shape s = shape(f, u);
  gr_tensor raw = gr_slice(g, h, 1, 0, c), t = gr_slice(g, h, 1, c, c);
  gr_tensor ls = gr_scale_shift(g, gr_unary_op(g, GR_TANH, gr_scale_shift(g, raw, 1.0f / bound, 0.0f)), bound, 0.0f);
  gr_tensor v = f->inverse ? gr_mul(g, gr_sub(g, u, t), gr_unary_op(g, GR_EXP, gr_scale_shift(g, ls, -1.0f, 0.0f)))
                           : gr_add(g, gr_mul(g, u, gr_unary_op(g, GR_EXP, ls)), t);
  gr_tensor sum = gr_reduce_op(g, GR_SUM, ls, s.rank == 4 ? 14u : 2u);
  add_logdet(f, gr_reshape(g, sum, GR_SHAPE(s.d[0])), 1);
  return v;
}

gr_tensor aps_flow_coupling(aps_flow_ctx *f, const char *name, gr_tensor x, gr_tensor features, int hidden,
                            float bound) {
  gr_graph *g = f->g;
  gr_shape s = shape(f, x);
  if (!x || (s.rank != 4 && s.rank != 2) || s.d[1] < 2 || !(bound > 0))
    return x ? fault(f, "flow coupling '%s': input must be [N, C, H, W] or [N, D] with C or D >= 2, bound > 0", name)
             : 0;
  int64_t ca = s.d[1] / 2, cb = s.d[1] - ca;
  aps_flow_enter(f, name);
  gr_tensor xa = gr_slice(g, x, 1, 0, ca), xb = gr_slice(g, x, 1, ca, cb);
  gr_tensor in = features ? gr_concat(g, xa, features, 1) : xa;
  gr_tensor h = coupling_net(f, in, hidden, (int)cb, s.rank == 4);
  gr_tensor yb = affine(f, xb, h, cb, bound);
  aps_flow_leave(f);
  return gr_concat(g, xa, yb, 1);
}

gr_tensor aps_flow_cond_affine(aps_flow_ctx *f, const char *name, gr_tensor x, gr_tensor cond, int hidden,
                               float bound) {
  gr_shape s = shape(f, x);
  if (!x || !cond || s.rank != 4 || !(bound > 0))
    return x ? fault(f, "flow conditional affine '%s': needs [N, C, H, W] samples, a condition and bound > 0", name)
             : 0;
  aps_flow_enter(f, name);
  gr_tensor h = gr_leaky_relu(f->g, aps_flow_conv(f, "in", cond, hidden, 3), leaky_slope);
  gr_tensor y = affine(f, x, aps_flow_conv(f, "out", h, 2 * (int)s.d[1], 3), s.d[1], bound);
  aps_flow_leave(f);
  return y;
}

/* ---------------------------------------------------------------- fixed maps */

gr_tensor aps_flow_permute(aps_flow_ctx *f, gr_tensor x, const int32_t *perm, int64_t count) {
  if (!x)
    return 0;
  if (!f->inverse)
    return gr_gather(f->g, x, 1, perm, count);
  int32_t *inv = malloc(sizeof(int32_t) * (size_t)(count > 0 ? count : 1));
  if (!inv)
    return fault(f, "out of host memory");
  for (int64_t i = 0; i < count; i++)
    inv[i] = -1;
  int ok = 1;
  for (int64_t i = 0; i < count; i++) {
    if (perm[i] < 0 || perm[i] >= count || inv[perm[i]] >= 0)
      ok = 0;
    else
      inv[perm[i]] = (int32_t)i;
  }
  gr_tensor y = ok ? gr_gather(f->g, x, 1, inv, count) : fault(f, "flow permutation: not a permutation of %lld",
                                                                  (long long)count);
  free(inv);
  return y;
}

gr_tensor aps_flow_squeeze(aps_flow_ctx *f, gr_tensor x) {
  return f->inverse ? gr_depth_to_space(f->g, x, 2) : gr_space_to_depth(f->g, x, 2);
}
gr_tensor aps_flow_unsqueeze(aps_flow_ctx *f, gr_tensor x) {
  return f->inverse ? gr_space_to_depth(f->g, x, 2) : gr_depth_to_space(f->g, x, 2);
}

gr_tensor aps_flow_merge(aps_flow_ctx *f, gr_tensor h, gr_tensor *z, int64_t keep) {
  if (!f->inverse)
    return gr_concat(f->g, h, *z, 1);
  int64_t c = shape(f, h).d[1];
  if (!h || keep < 1 || keep >= c) {
    *z = 0;
    return h ? fault(f, "flow split: keep %lld of %lld channels", (long long)keep, (long long)c) : 0;
  }
  *z = gr_slice(f->g, h, 1, keep, c - keep);
  return gr_slice(f->g, h, 1, 0, keep);
}
