/* The operators as graph ops (operators.h): A, Aᵀ, simulated measurements, the condition
 * and the data term, with every per-sample parameter a graph input. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators.h"

/* graph.h has no public way to record an error of one's own, so the message goes in as a
 * scope around a builder that fails (a reshape of a scalar to two elements): the graph's
 * status and message then name what was wrong, as any builder error does. */
static gr_tensor op_fail(gr_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static gr_tensor op_fail(gr_graph *g, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  gr_scope_push(g, msg);
  gr_reshape(g, gr_const_scalar(g, 0.0f), GR_SHAPE(2));
  gr_scope_pop(g);
  return 0;
}

/* t must be [n, c, h, w]; 0 (with the error in the graph) otherwise. */
static int check(gr_graph *g, const aps_op_graph *op, gr_tensor t, const char *what, int c, int h, int w) {
  if (gr_graph_status(g) != APS_OK)
    return 0;
  gr_shape s = gr_tensor_shape(g, t), want = GR_SHAPE(op->n, c, h, w);
  if (!t || s.rank != 4 || s.d[0] != want.d[0] || s.d[1] != c || s.d[2] != h || s.d[3] != w) {
    char a[64], b[64];
    op_fail(g, "operator: %s is %s, the operator takes %s", what, t ? gr_shape_str(s, a, sizeof a) : "invalid",
            gr_shape_str(want, b, sizeof b));
    return 0;
  }
  return 1;
}

aps_status aps_op_graph_inputs(gr_graph *g, const aps_op_layout *l, int n, const char *prefix, aps_op_graph *out) {
  memset(out, 0, sizeof *out);
  out->l = *l;
  out->n = n;
  const char *p = prefix ? prefix : "op";
  char name[GR_MAX_NAME];
  if (n < 1) {
    op_fail(g, "operator inputs: batch %d", n);
    return gr_graph_status(g);
  }
  if (l->cls != APS_OPC_SR) {
    snprintf(name, sizeof name, "%s.param", p);
    out->param = gr_input(g, name, GR_SHAPE(n, 1, l->h, l->w));
  }
  if (l->cls == APS_OPC_BLUR) {
    snprintf(name, sizeof name, "%s.kernel", p);
    out->kernel = gr_input(g, name, GR_SHAPE(n, 1, l->ksize, l->ksize));
    snprintf(name, sizeof name, "%s.sigma_b", p);
    out->sigma_b = gr_input(g, name, GR_SHAPE(n));
  }
  snprintf(name, sizeof name, "%s.sigma_y", p);
  out->sigma_y = gr_input(g, name, GR_SHAPE(n));
  return gr_graph_status(g);
}

/* [n] -> [n, 1, 1, 1], to scale each sample. */
static gr_tensor per_sample(gr_graph *g, const aps_op_graph *op, gr_tensor v) {
  return gr_reshape(g, v, GR_SHAPE(op->n, 1, 1, 1));
}

/* k ∗ x per sample: one depthwise convolution over the batch's planes, x as [1, n·C, H, W]
 * and the kernels as [n·C, 1, K, K], reflect padding. */
static gr_tensor blur_conv(gr_graph *g, const aps_op_graph *op, gr_tensor x) {
  const aps_op_layout *l = &op->l;
  int64_t planes = (int64_t)op->n * l->c;
  gr_tensor k = op->kernel;
  if (l->c > 1) {
    float *ones = malloc((size_t)l->c * sizeof *ones);
    if (!ones)
      return op_fail(g, "operator: out of host memory");
    for (int i = 0; i < l->c; i++)
      ones[i] = 1.0f;
    k = gr_mul(g, k, gr_const(g, NULL, GR_SHAPE(1, l->c, 1, 1), ones));
    free(ones);
  }
  k = gr_reshape(g, k, GR_SHAPE(planes, 1, l->ksize, l->ksize));
  gr_tensor y = gr_conv2d(g, gr_reshape(g, x, GR_SHAPE(1, planes, l->h, l->w)), k, 0,
                          &(gr_conv2d_desc){.padding = l->ksize / 2, .groups = (int)planes, .pad_mode = GR_PAD_REFLECT});
  return gr_reshape(g, y, GR_SHAPE(op->n, l->c, l->h, l->w));
}

/* The reflect-padded convolution's adjoint applied to v: ∇_z Σ (k ∗ z) ⊙ v at any z (here
 * z = 0·v), which gr_grad builds from graph ops (the flipped kernel's full correlation, then
 * the mirrored borders folded back). */
static gr_tensor blur_conv_adjoint(gr_graph *g, const aps_op_graph *op, gr_tensor v) {
  gr_tensor z = gr_scale_shift(g, v, 0.0f, 0.0f), dz = 0;
  gr_tensor loss = gr_mul(g, blur_conv(g, op, z), v);
  if (gr_graph_status(g) != APS_OK)
    return 0;
  if (gr_grad(g, loss, 1, &z, &dz) != APS_OK || !dz)
    return op_fail(g, "operator: the blur's adjoint: %s", aps_last_error());
  return dz;
}

static gr_tensor upsample(gr_graph *g, const aps_op_graph *op, gr_tensor y) {
  for (int f = op->l.factor; f > 1; f /= 2)
    y = gr_upsample2x(g, y, GR_NEAREST);
  return y;
}

gr_tensor aps_op_forward(gr_graph *g, const aps_op_graph *op, gr_tensor x) {
  const aps_op_layout *l = &op->l;
  if (!check(g, op, x, "x", l->c, l->h, l->w))
    return 0;
  switch (l->cls) {
  case APS_OPC_MASK: return gr_mul(g, x, op->param);
  case APS_OPC_BLUR: return gr_add(g, x, gr_mul(g, op->param, gr_sub(g, blur_conv(g, op, x), x)));
  default:
    for (int f = l->factor; f > 1; f /= 2)
      x = gr_avg_pool2x(g, x);
    return x;
  }
}

gr_tensor aps_op_adjoint(gr_graph *g, const aps_op_graph *op, gr_tensor y) {
  const aps_op_layout *l = &op->l;
  if (!check(g, op, y, "y", l->c, l->mh, l->mw))
    return 0;
  switch (l->cls) {
  case APS_OPC_MASK: return gr_mul(g, y, op->param);
  case APS_OPC_BLUR: {
    gr_tensor v = gr_mul(g, op->param, y);
    return gr_add(g, gr_sub(g, y, v), blur_conv_adjoint(g, op, v));
  }
  default: return gr_scale_shift(g, upsample(g, op, y), 1.0f / (float)(l->factor * l->factor), 0.0f);
  }
}

gr_tensor aps_op_simulate(gr_graph *g, const aps_op_graph *op, gr_tensor x, gr_tensor noise) {
  const aps_op_layout *l = &op->l;
  if (!check(g, op, x, "x", l->c, l->h, l->w) || !check(g, op, noise, "noise", l->c, l->mh, l->mw))
    return 0;
  gr_tensor scaled = gr_mul(g, noise, per_sample(g, op, op->sigma_y));
  if (l->cls == APS_OPC_MASK)
    return gr_mul(g, gr_add(g, x, scaled), op->param);
  return gr_add(g, aps_op_forward(g, op, x), scaled);
}

gr_tensor aps_op_on_grid(gr_graph *g, const aps_op_graph *op, gr_tensor y) {
  if (!check(g, op, y, "y", op->l.c, op->l.mh, op->l.mw))
    return 0;
  return op->l.cls == APS_OPC_SR ? upsample(g, op, y) : y;
}

/* A constant [n, 1, H, W] plane. */
static gr_tensor plane(gr_graph *g, const aps_op_graph *op, float value) {
  int64_t count = (int64_t)op->n * op->l.h * op->l.w;
  float *v = malloc((size_t)count * sizeof *v);
  if (!v)
    return op_fail(g, "operator: out of host memory");
  for (int64_t i = 0; i < count; i++)
    v[i] = value;
  gr_tensor t = gr_const(g, NULL, GR_SHAPE(op->n, 1, op->l.h, op->l.w), v);
  free(v);
  return t;
}

gr_tensor aps_op_descriptor(gr_graph *g, const aps_op_graph *op) {
  switch (op->l.cls) {
  case APS_OPC_MASK: return op->param;
  case APS_OPC_BLUR: return gr_mul(g, op->param, per_sample(g, op, op->sigma_b));
  default: return plane(g, op, (float)op->l.factor);
  }
}

gr_tensor aps_op_condition(gr_graph *g, const aps_op_graph *op, gr_tensor y) {
  gr_tensor grid = aps_op_on_grid(g, op, y);
  if (!grid)
    return 0;
  gr_tensor sig = gr_mul(g, plane(g, op, 1.0f), per_sample(g, op, op->sigma_y));
  return gr_concat(g, gr_concat(g, grid, aps_op_descriptor(g, op), 1), sig, 1);
}

gr_tensor aps_op_data_term(gr_graph *g, const aps_op_graph *op, gr_tensor x, gr_tensor y) {
  if (!check(g, op, y, "y", op->l.c, op->l.mh, op->l.mw))
    return 0;
  gr_tensor r = gr_sub(g, y, aps_op_forward(g, op, x));
  gr_tensor ss = gr_reshape(g, gr_reduce_op(g, GR_SUMSQ, r, 14u), GR_SHAPE(op->n));
  gr_tensor s = gr_binary_op(g, GR_MAX, op->sigma_y, gr_const_scalar(g, APS_SIGMA_Y_FLOOR));
  return gr_div(g, ss, gr_scale_shift(g, gr_unary_op(g, GR_SQUARE, s), 2.0f, 0.0f));
}

aps_status aps_op_graph_set(aps_runner *r, const gr_graph *g, const aps_op_graph *op, const aps_op_batch *b) {
  const aps_op_layout *a = &op->l, *l = &b->l;
  if (b->n != op->n || a->cls != l->cls || a->c != l->c || a->h != l->h || a->w != l->w || a->ksize != l->ksize ||
      a->factor != l->factor)
    return aps_fail(APS_ERR_INVALID_ARG, "operator inputs: a batch of %d drawn for class %d, %dx%dx%d, K %d, factor "
                    "%d does not fit the graph's %d, class %d, %dx%dx%d, K %d, factor %d", b->n, (int)l->cls, l->c,
                    l->h, l->w, l->ksize, l->factor, op->n, (int)a->cls, a->c, a->h, a->w, a->ksize, a->factor);
  int64_t plane_n = (int64_t)b->n * l->h * l->w;
  if (op->param)
    APS_TRY(aps_runner_set(r, gr_tensor_name(g, op->param), b->param, plane_n));
  if (op->kernel)
    APS_TRY(aps_runner_set(r, gr_tensor_name(g, op->kernel), b->kernel, (int64_t)b->n * l->ksize * l->ksize));
  if (op->sigma_b)
    APS_TRY(aps_runner_set(r, gr_tensor_name(g, op->sigma_b), b->sigma_b, b->n));
  return aps_runner_set(r, gr_tensor_name(g, op->sigma_y), b->sigma_y, b->n);
}
