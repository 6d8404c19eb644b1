#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

float gr_schedule_lr(const gr_schedule *s, int step) {
  if (s->warmup > 0 && step <= s->warmup)
    return s->lr * (float)step / (float)s->warmup;
  if (s->total <= s->warmup || s->total <= 0)
    return s->lr;
  double progress = (double)(step - s->warmup) / (double)(s->total - s->warmup);
  progress = progress > 1 ? 1 : progress;
  return (float)(0.5 * s->lr * (1.0 + cos(M_PI * progress)));
}

static gr_tensor scalar(gr_graph *g, float v) { return gr_const_scalar(g, v); }

static int prefixed(const char *name, const char *prefix) {
  return prefix && *prefix && !strncmp(name, prefix, strlen(prefix));
}

/* Whether name starts with one of the comma-separated prefixes in list. */
static int prefixed_any(const char *name, const char *list) {
  for (const char *p = list; p && *p;) {
    size_t n = strcspn(p, ",");
    if (n && !strncmp(name, p, n))
      return 1;
    p += n + (p[n] == ',');
  }
  return 0;
}

/* The parameters to train (held = 0) or to hold (held = 1), in graph order. */
static uint32_t trainable(const gr_graph *g, const gr_adam_desc *d, int held, gr_tensor *out, uint32_t max) {
  uint32_t n = 0;
  for (uint32_t i = 0;; i++) {
    gr_tensor t = gr_param_at(g, i);
    if (!t)
      break;
    const gr_tensor_info *ti = gr_t(g, t);
    if (ti->zero_init || prefixed(ti->name, d->frozen_prefix))
      continue;
    if (held != (d->trained_prefix && *d->trained_prefix && !prefixed_any(ti->name, d->trained_prefix)))
      continue;
    if (n < max)
      out[n] = t;
    n++;
  }
  return n;
}

aps_status gr_adam(gr_graph *g, gr_tensor loss, const gr_adam_desc *desc, gr_adam_outputs *out) {
  gr_adam_desc d = *desc;
  if (d.beta1 == 0)
    d.beta1 = 0.9f;
  if (d.beta2 == 0)
    d.beta2 = 0.999f;
  if (d.eps == 0)
    d.eps = 1e-8f;
  memset(out, 0, sizeof *out);
  uint32_t n = trainable(g, &d, 0, NULL, 0);
  gr_tensor *params = calloc(n + 1, sizeof *params), *grads = calloc(n + 1, sizeof *grads);
  if (!params || !grads) {
    free(params);
    free(grads);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  trainable(g, &d, 0, params, n);
  aps_status s = gr_grad(g, loss, n, params, grads);
  gr_tensor lr = gr_input(g, "optim.lr", GR_SHAPE(1)), step = gr_input(g, "optim.step", GR_SHAPE(1));
  /* Global gradient norm, and the clipping factor min(1, max / (norm + 1e-6)). */
  gr_tensor sumsq = 0;
  for (uint32_t i = 0; i < n && s == APS_OK; i++) {
    if (!grads[i])
      continue;
    gr_shape gs = gr_tensor_shape(g, grads[i]);
    gr_tensor part = gr_reshape(g, gr_reduce_op(g, GR_SUMSQ, grads[i], (1u << gs.rank) - 1), GR_SHAPE(1));
    sumsq = sumsq ? gr_add(g, sumsq, part) : part;
  }
  gr_tensor norm = sumsq ? gr_unary_op(g, GR_SQRT, sumsq) : scalar(g, 0.0f);
  gr_tensor clip = 0;
  if (d.max_grad_norm > 0)
    clip = gr_binary_op(g, GR_MIN, scalar(g, 1.0f),
                        gr_div(g, scalar(g, d.max_grad_norm), gr_scale_shift(g, norm, 1.0f, 1e-6f)));
  /* Bias corrections from the step: β^t = exp(t ln β). */
  gr_tensor c1 = gr_scale_shift(g, gr_unary_op(g, GR_EXP, gr_scale_shift(g, step, logf(d.beta1), 0)), -1, 1);
  gr_tensor c2 = gr_unary_op(g, GR_SQRT,
                             gr_scale_shift(g, gr_unary_op(g, GR_EXP, gr_scale_shift(g, step, logf(d.beta2), 0)), -1, 1));
  gr_tensor step_size = gr_div(g, lr, c1);
  gr_tensor decay = d.weight_decay > 0 ? gr_scale_shift(g, lr, -d.weight_decay, 1.0f) : 0;
  gr_tensor ema_d = 0;
  if (d.ema_decay > 0) /* min(decay, (t - 1) / (t + 9)): the first step copies the weights */
    ema_d = gr_binary_op(g, GR_MIN, scalar(g, d.ema_decay),
                         gr_div(g, gr_scale_shift(g, step, 1, -1), gr_scale_shift(g, step, 1, 9)));
  char name[GR_MAX_NAME + 16];
  for (uint32_t i = 0; i < n && s == APS_OK; i++) {
    if (!grads[i])
      continue;
    gr_tensor p = params[i], gp = clip ? gr_mul(g, grads[i], clip) : grads[i];
    gr_shape ps = gr_tensor_shape(g, p);
    snprintf(name, sizeof name, "optim.m.%s", gr_tensor_name(g, p));
    gr_tensor m = gr_state(g, name, ps);
    snprintf(name, sizeof name, "optim.v.%s", gr_tensor_name(g, p));
    gr_tensor v = gr_state(g, name, ps);
    gr_tensor m1 = gr_add(g, gr_scale_shift(g, m, d.beta1, 0), gr_scale_shift(g, gp, 1 - d.beta1, 0));
    gr_tensor v1 = gr_add(g, gr_scale_shift(g, v, d.beta2, 0),
                          gr_scale_shift(g, gr_unary_op(g, GR_SQUARE, gp), 1 - d.beta2, 0));
    gr_tensor denom = gr_scale_shift(g, gr_div(g, gr_unary_op(g, GR_SQRT, v1), c2), 1.0f, d.eps);
    gr_tensor p0 = decay ? gr_mul(g, p, decay) : p;
    gr_tensor p1 = gr_sub(g, p0, gr_mul(g, step_size, gr_div(g, m1, denom)));
    gr_assign(g, m, m1);
    gr_assign(g, v, v1);
    gr_assign(g, p, p1);
    if (ema_d) {
      snprintf(name, sizeof name, "ema.%s", gr_tensor_name(g, p));
      gr_tensor e = gr_state(g, name, ps);
      gr_assign(g, e, gr_add(g, gr_mul(g, e, ema_d), gr_mul(g, p1, gr_scale_shift(g, ema_d, -1, 1))));
    }
    out->params++;
  }
  if (ema_d && s == APS_OK) { /* held parameters: their average is themselves */
    uint32_t h = trainable(g, &d, 1, NULL, 0);
    gr_tensor *held = calloc(h + 1, sizeof *held);
    if (!held)
      s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    else
      trainable(g, &d, 1, held, h);
    for (uint32_t i = 0; i < h && s == APS_OK; i++) {
      snprintf(name, sizeof name, "ema.%s", gr_tensor_name(g, held[i]));
      gr_assign(g, gr_state(g, name, gr_tensor_shape(g, held[i])), gr_scale_shift(g, held[i], 1.0f, 0.0f));
      out->held++;
    }
    free(held);
  }
  out->grad_norm = norm;
  if (s == APS_OK && g->status != APS_OK)
    s = aps_fail(g->status, "building the optimizer step: %s", g->error);
  free(params);
  free(grads);
  return s;
}
