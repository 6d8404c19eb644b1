/* The multi-scale conditional Glow of flow.h, in both directions.
 *
 * Level l (0 = finest) holds C·2^(l+2) channels of (S/2^(l+1))² pixels after its squeeze;
 * levels before the last split off half of them: D/2^(l+1) latent elements, stored in the
 * flattened z at offset D − D/2^l; the last level's D/2^(L−1) elements come last.
 * In the z -> x direction a level is: merge its latent, steps 0..K−1 of [ActNorm → 1×1
 * conv → coupling], unsqueeze; then, with head=1, the conditional affine layer. The x -> z
 * direction runs the same layers backwards. */
#include <stdio.h>

#include "flow.h"

static const float leaky_slope = 0.2f;

/* Features of the condition at every level's resolution: a 3×3 conv at full size, then per
 * level an average pool and a 3×3 conv (LeakyReLU after each). With pixels=1 the finest
 * level's features also carry the condition itself, space-to-depth like the samples: the
 * pooled features blur each 2×2 block, and the finest couplings, which set single pixels,
 * could not pass an observed pixel through exactly. */
static void cond_features(aps_flow_ctx *f, const aps_flow_config *c, gr_tensor cond, gr_tensor *feat) {
  for (int l = 0; l < c->levels; l++)
    feat[l] = 0;
  if (!c->cond)
    return;
  gr_graph *g = f->g;
  char name[16];
  aps_flow_enter(f, "cond");
  gr_tensor h = gr_leaky_relu(g, aps_flow_conv(f, "in", cond, c->cond_hidden, 3), leaky_slope);
  for (int l = 0; l < c->levels; l++) {
    snprintf(name, sizeof name, "l%d", l);
    h = gr_leaky_relu(g, aps_flow_conv(f, name, gr_avg_pool2x(g, h), c->cond_hidden, 3), leaky_slope);
    feat[l] = h;
  }
  if (c->pixels)
    feat[0] = gr_concat(g, feat[0], gr_space_to_depth(g, cond, 2), 1);
  aps_flow_leave(f);
}

static gr_tensor step(aps_flow_ctx *f, const aps_flow_config *c, int l, int k, gr_tensor h, gr_tensor feat) {
  char name[32];
  snprintf(name, sizeof name, "l%d.s%d", l, k);
  aps_flow_enter(f, name);
  if (!f->inverse) {
    h = aps_flow_actnorm(f, "actnorm", h);
    h = aps_flow_invconv(f, "invconv", h);
    h = aps_flow_coupling(f, "coupling", h, feat, c->hidden, c->bound);
  } else {
    h = aps_flow_coupling(f, "coupling", h, feat, c->hidden, c->bound);
    h = aps_flow_invconv(f, "invconv", h);
    h = aps_flow_actnorm(f, "actnorm", h);
  }
  aps_flow_leave(f);
  return h;
}

/* Latent elements of level l, its offset in the flattened z, and its shape. */
static int64_t latent_count(int64_t d, int levels, int l) { return l < levels - 1 ? d >> (l + 1) : d >> (levels - 1); }
static int64_t latent_offset(int64_t d, int l) { return d - (d >> l); }
static gr_shape latent_shape(const aps_flow_config *c, int64_t n, int l) {
  int64_t ch = (int64_t)c->channels << (l < c->levels - 1 ? l + 1 : l + 2), s = c->size >> (l + 1);
  return GR_SHAPE(n, ch, s, s);
}

gr_tensor aps_flow_glow(aps_flow_ctx *f, const aps_flow_config *c, gr_tensor in, gr_tensor cond) {
  gr_graph *g = f->g;
  int64_t n = gr_tensor_shape(g, in).d[0], d = aps_flow_dim(c);
  int levels = c->levels;
  gr_tensor feat[8];
  cond_features(f, c, cond, feat);
  if (!f->inverse) {
    gr_tensor zf = gr_reshape(g, in, GR_SHAPE(n, d)), h = 0;
    for (int l = levels - 1; l >= 0; l--) {
      gr_tensor zl = gr_reshape(g, gr_slice(g, zf, 1, latent_offset(d, l), latent_count(d, levels, l)),
                                latent_shape(c, n, l));
      h = l == levels - 1 ? zl : aps_flow_merge(f, h, &zl, 0);
      for (int k = 0; k < c->steps; k++)
        h = step(f, c, l, k, h, feat[l]);
      h = aps_flow_unsqueeze(f, h);
    }
    return c->head ? aps_flow_cond_affine(f, "head", h, cond, c->hidden, APS_FLOW_HEAD_BOUND) : h;
  }
  gr_tensor h = c->head ? aps_flow_cond_affine(f, "head", in, cond, c->hidden, APS_FLOW_HEAD_BOUND) : in, z = 0;
  for (int l = 0; l < levels; l++) {
    h = aps_flow_unsqueeze(f, h); /* inverse: space-to-depth */
    for (int k = c->steps - 1; k >= 0; k--)
      h = step(f, c, l, k, h, feat[l]);
    gr_tensor zl = h;
    if (l < levels - 1)
      h = aps_flow_merge(f, h, &zl, (int64_t)c->channels << (l + 1));
    zl = gr_reshape(g, zl, GR_SHAPE(n, latent_count(d, levels, l)));
    z = l ? gr_concat(g, z, zl, 1) : zl;
  }
  return gr_reshape(g, z, aps_flow_shape(c, n));
}

aps_status aps_flow_glow_latent_map(const aps_flow_config *c, const float *pixel_t, float *out) {
  if (c->arch != APS_FLOW_GLOW)
    return aps_fail(APS_ERR_INVALID_ARG, "a per-pixel temperature needs a glow flow, not %s", aps_flow_arch_name(c->arch));
  int64_t d = aps_flow_dim(c);
  for (int l = 0; l < c->levels; l++) {
    gr_shape sh = latent_shape(c, 1, l);
    int64_t ch = sh.d[1], side = sh.d[2], block = c->size / side;
    float *o = out + latent_offset(d, l);
    for (int64_t i = 0; i < side; i++)
      for (int64_t j = 0; j < side; j++) {
        double sum = 0;
        for (int64_t u = 0; u < block; u++)
          for (int64_t v = 0; v < block; v++)
            sum += pixel_t[(i * block + u) * c->size + j * block + v];
        for (int64_t k = 0; k < ch; k++)
          o[(k * side + i) * side + j] = (float)(sum / (double)(block * block));
      }
  }
  return APS_OK;
}
