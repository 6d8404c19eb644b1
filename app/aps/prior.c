#include "prior.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"

aps_prior_config aps_prior_config_default(int channels, int size) {
  return (aps_prior_config){
      .unet = gr_unet_config_default(channels, size),
      .sde = aps_sde_default()};
}

void aps_prior_config_meta(const aps_prior_config *c, char unet[256], char sde[256], gr_st_meta meta[APS_PRIOR_META]) {
  const gr_unet_config *u = &c->unet;
  char widths[64] = "";
  for (int l = 0; l < u->levels; l++)
    snprintf(widths + strlen(widths), sizeof widths - strlen(widths), "%s%d", l ? "," : "", u->widths[l]);
  snprintf(unet, 256, "channels=%d size=%d widths=%s blocks=%d attention=%d groups=%d time_dim=%d", u->image_channels,
           u->image_size, widths, u->blocks_per_level, u->attention_level_mask, u->groups, u->time_dim);
  snprintf(sde, 256, "beta0=%.17g beta1=%.17g eps=%.17g", c->sde.beta0, c->sde.beta1, c->sde.eps);
  meta[0] = (gr_st_meta){"aps.kind", "prior/vp-eps"};
  meta[1] = (gr_st_meta){"aps.unet", unet};
  meta[2] = (gr_st_meta){"aps.sde", sde};
}

aps_status aps_prior_config_check(const aps_prior_config *c) {
  const gr_unet_config *u = &c->unet;
  if (u->image_channels < 1 || u->image_channels > 4)
    return aps_fail(APS_ERR_INVALID_ARG, "prior config: channels=%d, expected 1 to 4", u->image_channels);
  if (u->levels < 1 || u->levels > 4)
    return aps_fail(APS_ERR_INVALID_ARG, "prior config: %d widths, expected 1 to 4", u->levels);
  /* Sane ranges before anything is built: a hostile file's size=65536 or widths of 4096
   * would otherwise plan gigabytes (or overflow a shape) before failing. */
  if (u->image_size > 1024 || u->blocks_per_level > 8 || u->time_dim > 4096 || u->groups > 1024)
    return aps_fail(APS_ERR_INVALID_ARG, "prior config: size=%d blocks=%d time_dim=%d groups=%d beyond the sane "
                    "ranges (size <= 1024, blocks <= 8, time_dim <= 4096, groups <= 1024)", u->image_size,
                    u->blocks_per_level, u->time_dim, u->groups);
  for (int l = 0; l < u->levels; l++)
    if (u->widths[l] > 1024)
      return aps_fail(APS_ERR_INVALID_ARG, "prior config: width %d of level %d is beyond 1024", u->widths[l], l);
  if (u->image_size < 4 || u->image_size % (1 << (u->levels - 1)))
    return aps_fail(APS_ERR_INVALID_ARG, "prior config: size=%d is not divisible by 2^(levels-1) = %d",
                    u->image_size, 1 << (u->levels - 1));
  if (u->groups < 1 || u->blocks_per_level < 1 || u->time_dim < 2 || u->time_dim % 2)
    return aps_fail(APS_ERR_INVALID_ARG, "prior config: groups=%d blocks=%d time_dim=%d (need groups >= 1, "
                    "blocks >= 1, an even time_dim >= 2)", u->groups, u->blocks_per_level, u->time_dim);
  for (int l = 0; l < u->levels; l++)
    if (u->widths[l] < 1 || u->widths[l] % u->groups)
      return aps_fail(APS_ERR_INVALID_ARG, "prior config: width %d of level %d is not a multiple of groups=%d",
                      u->widths[l], l, u->groups);
  if (u->attention_level_mask < 0 || u->attention_level_mask >= (1 << u->levels))
    return aps_fail(APS_ERR_INVALID_ARG, "prior config: attention=%d names a level beyond the %d levels",
                    u->attention_level_mask, u->levels);
  const aps_sde *s = &c->sde;
  if (!(s->beta0 > 0 && s->beta1 > s->beta0 && s->beta1 <= 1000 && s->eps > 0 && s->eps < 0.5))
    return aps_fail(APS_ERR_INVALID_ARG, "prior config: need 0 < beta0 < beta1 <= 1000 and 0 < eps < 0.5 (have %g, "
                    "%g, %g)",
                    s->beta0, s->beta1, s->eps);
  return APS_OK;
}

/* "key=value" in a space-separated list, as a long; 0 if absent or malformed. */
static int field(const char *list, const char *key, const char **value) {
  size_t k = strlen(key);
  for (const char *p = list; p && *p;) {
    while (*p == ' ')
      p++;
    if (!strncmp(p, key, k) && p[k] == '=') {
      *value = p + k + 1;
      return 1;
    }
    p = strchr(p, ' ');
  }
  return 0;
}

static aps_status int_field(const gr_st *st, const char *list, const char *key, int *out) {
  const char *v;
  char *end;
  if (!field(list, key, &v))
    return aps_fail(APS_ERR_FORMAT, "%s: metadata aps.unet lacks '%s'", gr_st_path(st), key);
  long x = strtol(v, &end, 10);
  if (end == v || (*end && *end != ' ') || x < 0 || x > 1 << 16)
    return aps_fail(APS_ERR_FORMAT, "%s: metadata aps.unet: '%s' is not a small integer", gr_st_path(st), key);
  *out = (int)x;
  return APS_OK;
}

static aps_status real_field(const gr_st *st, const char *list, const char *key, double *out) {
  const char *v;
  char *end;
  if (!field(list, key, &v))
    return aps_fail(APS_ERR_FORMAT, "%s: metadata aps.sde lacks '%s'", gr_st_path(st), key);
  *out = strtod(v, &end);
  if (end == v || (*end && *end != ' ') || !isfinite(*out))
    return aps_fail(APS_ERR_FORMAT, "%s: metadata aps.sde: '%s' is not a number", gr_st_path(st), key);
  return APS_OK;
}

aps_status aps_prior_config_from_file(const gr_st *st, aps_prior_config *out) {
  const char *kind = gr_st_metadata(st, "aps.kind"), *unet = gr_st_metadata(st, "aps.unet");
  const char *sde = gr_st_metadata(st, "aps.sde");
  if (!kind || strcmp(kind, "prior/vp-eps"))
    return aps_fail(APS_ERR_FORMAT, "%s: not a diffusion prior (metadata aps.kind is %s%s%s, expected "
                    "\"prior/vp-eps\")", gr_st_path(st), kind ? "\"" : "", kind ? kind : "missing", kind ? "\"" : "");
  if (!unet || !sde)
    return aps_fail(APS_ERR_FORMAT, "%s: metadata aps.%s is missing", gr_st_path(st), !unet ? "unet" : "sde");
  aps_prior_config c = {0};
  gr_unet_config *u = &c.unet;
  APS_TRY(int_field(st, unet, "channels", &u->image_channels));
  APS_TRY(int_field(st, unet, "size", &u->image_size));
  APS_TRY(int_field(st, unet, "blocks", &u->blocks_per_level));
  APS_TRY(int_field(st, unet, "attention", &u->attention_level_mask));
  APS_TRY(int_field(st, unet, "groups", &u->groups));
  APS_TRY(int_field(st, unet, "time_dim", &u->time_dim));
  const char *w;
  if (!field(unet, "widths", &w))
    return aps_fail(APS_ERR_FORMAT, "%s: metadata aps.unet lacks 'widths'", gr_st_path(st));
  for (;;) {
    char *end;
    long x = strtol(w, &end, 10);
    if (end == w || x < 1 || x > 4096 || u->levels == 4)
      return aps_fail(APS_ERR_FORMAT, "%s: metadata aps.unet: 'widths' must be 1 to 4 integers in 1..4096",
                      gr_st_path(st));
    u->widths[u->levels++] = (int)x;
    if (*end != ',')
      break;
    w = end + 1;
  }
  APS_TRY(real_field(st, sde, "beta0", &c.sde.beta0));
  APS_TRY(real_field(st, sde, "beta1", &c.sde.beta1));
  APS_TRY(real_field(st, sde, "eps", &c.sde.eps));
  if (aps_prior_config_check(&c) != APS_OK)
    return aps_fail_context(APS_ERR_FORMAT, "%s: ", gr_st_path(st));
  *out = c;
  return APS_OK;
}

gr_tensor aps_prior_eps(gr_graph *g, const aps_prior_config *c, gr_tensor x, gr_tensor t) {
  return gr_unet(g, &c->unet, x, gr_scale_shift(g, t, APS_PRIOR_TIME_SCALE, 0.0f));
}

/* B(t) = β0 t + ½ t² (β1 − β0). */
static gr_tensor big_b(gr_graph *g, const aps_sde *s, gr_tensor t) {
  gr_tensor quad = gr_scale_shift(g, gr_unary_op(g, GR_SQUARE, t), (float)(0.5 * (s->beta1 - s->beta0)), 0.0f);
  return gr_add(g, gr_scale_shift(g, t, (float)s->beta0, 0.0f), quad);
}
gr_tensor aps_prior_alpha(gr_graph *g, const aps_sde *s, gr_tensor t) {
  return gr_unary_op(g, GR_EXP, gr_scale_shift(g, big_b(g, s, t), -0.5f, 0.0f));
}
gr_tensor aps_prior_sigma(gr_graph *g, const aps_sde *s, gr_tensor t) {
  gr_tensor e = gr_unary_op(g, GR_EXP, gr_scale_shift(g, big_b(g, s, t), -1.0f, 0.0f));
  return gr_unary_op(g, GR_SQRT, gr_scale_shift(g, e, -1.0f, 1.0f));
}

/* [N] -> [N, 1, 1, 1], to scale images per sample. */
static gr_tensor per_sample(gr_graph *g, gr_tensor v) {
  return gr_reshape(g, v, GR_SHAPE(gr_tensor_shape(g, v).d[0], 1, 1, 1));
}

aps_status aps_prior_train_graph(const aps_prior_config *c, int batch, gr_graph **out) {
  *out = NULL;
  APS_TRY(aps_prior_config_check(c));
  const gr_unet_config *u = &c->unet;
  gr_graph *g = gr_graph_create();
  gr_shape img = GR_SHAPE(batch, u->image_channels, u->image_size, u->image_size);
  gr_tensor x = gr_input(g, "x", img), seed = gr_input(g, "seed", GR_SHAPE(2));
  gr_tensor t = gr_scale_shift(g, gr_random(g, GR_SHAPE(batch), seed, 0, GR_UNIFORM), (float)(1.0 - c->sde.eps),
                               (float)c->sde.eps);
  gr_tensor noise = gr_random(g, img, seed, 1, GR_NORMAL);
  gr_tensor xt = gr_add(g, gr_mul(g, x, per_sample(g, aps_prior_alpha(g, &c->sde, t))),
                        gr_mul(g, noise, per_sample(g, aps_prior_sigma(g, &c->sde, t))));
  gr_tensor err = gr_sub(g, aps_prior_eps(g, c, xt, t), noise);
  gr_tensor loss = gr_reduce_op(g, GR_MEAN, gr_unary_op(g, GR_SQUARE, err), 15u);
  gr_output(g, loss, "loss");
  gr_adam_outputs ao;
  aps_status s = gr_adam(g, loss, &(gr_adam_desc){.max_grad_norm = 1.0f, .ema_decay = 0.999f}, &ao);
  if (s == APS_OK) {
    gr_output(g, ao.grad_norm, "grad_norm");
    s = gr_graph_status(g);
  }
  if (s != APS_OK) {
    gr_graph_destroy(g);
    return s;
  }
  *out = g;
  return APS_OK;
}

aps_status aps_prior_eps_graph(const aps_prior_config *c, int batch, gr_graph **out) {
  *out = NULL;
  APS_TRY(aps_prior_config_check(c));
  const gr_unet_config *u = &c->unet;
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(batch, u->image_channels, u->image_size, u->image_size));
  gr_output(g, aps_prior_eps(g, c, x, gr_input(g, "t", GR_SHAPE(batch))), "eps");
  aps_status s = gr_graph_status(g);
  if (s != APS_OK) {
    gr_graph_destroy(g);
    return s;
  }
  *out = g;
  return APS_OK;
}

/* Σ over C, H, W of v: [N, C, H, W] -> [N]. */
static gr_tensor sum_image(gr_graph *g, gr_tensor v) {
  return gr_reshape(g, gr_reduce_op(g, GR_SUM, v, 14u), GR_SHAPE(gr_tensor_shape(g, v).d[0]));
}
static gr_tensor sumsq_image(gr_graph *g, gr_tensor v) { return sum_image(g, gr_unary_op(g, GR_SQUARE, v)); }

gr_tensor aps_prior_neg_elbo(gr_graph *g, const aps_sde *s, aps_eps_builder eps, void *user, gr_tensor x,
                             gr_tensor t, gr_tensor e_t, gr_tensor e_1, gr_tensor e_0) {
  gr_shape sx = gr_tensor_shape(g, x);
  int64_t n = sx.d[0];
  if (n < 1 || gr_graph_status(g) != APS_OK) /* x failed to build (a shape too large): the graph holds the error */
    return x;
  double dim = (double)(gr_shape_count(sx) / n), log2pi = log(2.0 * M_PI);
  double z = aps_sde_importance_z(s), a_eps = aps_sde_alpha(s, s->eps), s_eps = aps_sde_sigma(s, s->eps);
  double s_q = s_eps / a_eps;
  /* One network evaluation on [x_t; x̃] at times [t; eps]: x_t = a(t) x + σ(t) ε for the
   * integral, x̃ = a(eps) x + σ(eps) ε'' for the decoder. */
  gr_tensor sig = aps_prior_sigma(g, s, t);
  gr_tensor xt = gr_add(g, gr_mul(g, x, per_sample(g, aps_prior_alpha(g, s, t))), gr_mul(g, e_t, per_sample(g, sig)));
  gr_tensor xe = gr_add(g, gr_scale_shift(g, x, (float)a_eps, 0.0f), gr_scale_shift(g, e_0, (float)s_eps, 0.0f));
  gr_tensor te = gr_scale_shift(g, t, 0.0f, (float)s->eps); /* [N] of eps */
  gr_tensor both = eps(g, user, gr_concat(g, xt, xe, 0), gr_concat(g, t, te, 0));
  gr_tensor eps_t = gr_slice(g, both, 0, 0, n), eps_e = gr_slice(g, both, 0, n, n);
  /* ½ Î = ½ Z (||ε_θ(x_t, t) − ε||² − ||ε||² + σ(t)² D) */
  gr_tensor fit = gr_sub(g, sumsq_image(g, gr_sub(g, eps_t, e_t)), sumsq_image(g, e_t));
  gr_tensor half_i = gr_scale_shift(g, gr_add(g, fit, gr_scale_shift(g, gr_unary_op(g, GR_SQUARE, sig), (float)dim, 0.0f)),
                                    (float)(0.5 * z), 0.0f);
  /* −log N(x_1; 0, I), x_1 = a(1) x + σ(1) ε' */
  gr_tensor x1 = gr_add(g, gr_scale_shift(g, x, (float)aps_sde_alpha(s, 1.0), 0.0f),
                        gr_scale_shift(g, e_1, (float)aps_sde_sigma(s, 1.0), 0.0f));
  gr_tensor prior = gr_scale_shift(g, sumsq_image(g, x1), 0.5f, (float)(0.5 * dim * log2pi));
  /* The Gaussian decoder at eps: μ = (x̃ − σ(eps) ε_θ(x̃, eps)) / a(eps), s_q = σ(eps)/a(eps) */
  gr_tensor mu = gr_scale_shift(g, gr_sub(g, xe, gr_scale_shift(g, eps_e, (float)s_eps, 0.0f)), (float)(1.0 / a_eps), 0.0f);
  double constant = 0.5 * dim * (log2pi + 2 * log(s_q)) - 0.5 * dim * (log2pi + 2 * log(s_eps) + 1);
  gr_tensor offset = gr_scale_shift(g, sumsq_image(g, gr_sub(g, x, mu)), (float)(0.5 / (s_q * s_q)), (float)constant);
  return gr_add(g, gr_add(g, prior, half_i), offset);
}

static gr_tensor prior_network(gr_graph *g, void *config, gr_tensor x, gr_tensor t) { return aps_prior_eps(g, config, x, t); }

aps_status aps_prior_elbo_graph(const aps_prior_config *c, int batch, gr_graph **out) {
  *out = NULL;
  APS_TRY(aps_prior_config_check(c));
  gr_graph *g = gr_graph_create();
  gr_shape img = GR_SHAPE(batch, c->unet.image_channels, c->unet.image_size, c->unet.image_size);
  gr_tensor x = gr_input(g, "x", img), t = gr_input(g, "t", GR_SHAPE(batch));
  gr_tensor nb = aps_prior_neg_elbo(g, &c->sde, prior_network, (void *)c, x, t, gr_input(g, "e_t", img),
                                    gr_input(g, "e_1", img), gr_input(g, "e_0", img));
  gr_output(g, nb, "nelbo");
  aps_status s = gr_graph_status(g);
  if (s != APS_OK) {
    gr_graph_destroy(g);
    return s;
  }
  *out = g;
  return APS_OK;
}

aps_status aps_prior_open(const char *path, const aps_runner_desc *device, int batch, aps_prior_graph_fn build,
                          aps_prior_config *cfg, gr_graph **g, aps_runner **r) {
  gr_st *st = NULL;
  *g = NULL, *r = NULL;
  aps_status s = gr_st_open(path, &st);
  if (s == APS_OK)
    s = aps_prior_config_from_file(st, cfg);
  if (s == APS_OK && (s = build(cfg, batch, g)) != APS_OK)
    aps_fail_context(s, "%s: ", path);
  if (s == APS_OK && (s = gr_st_check_params(*g, st)) == APS_OK) /* before any allocation */
    s = aps_runner_create(*g, device, r);
  if (s == APS_OK)
    s = aps_runner_load(*r, st);
  gr_st_close(st);
  if (s != APS_OK) {
    aps_runner_destroy(*r);
    gr_graph_destroy(*g);
    *g = NULL, *r = NULL;
  }
  return s;
}
