#include "layers.h"

#include <math.h>
#include <stdio.h>

#include "graph_internal.h"

static int channels(gr_graph *g, gr_tensor x) { return x ? (int)gr_tensor_shape(g, x).d[1] : 0; }

gr_tensor gr_layer_conv(gr_graph *g, const char *name, gr_tensor x, int out, int k, int stride) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_scope_push(g, name);
  gr_tensor w = gr_param(g, "weight", GR_SHAPE(out, channels(g, x), k, k));
  gr_tensor b = gr_param(g, "bias", GR_SHAPE(out));
  gr_tensor y = gr_conv2d(g, x, w, b, &(gr_conv2d_desc){.stride = stride, .padding = k / 2});
  gr_scope_pop(g);
  return y;
}

gr_tensor gr_layer_linear(gr_graph *g, const char *name, gr_tensor x, int out) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape s = gr_tensor_shape(g, x);
  gr_scope_push(g, name);
  gr_tensor w = gr_param(g, "weight", GR_SHAPE(s.d[s.rank - 1], out));
  gr_tensor b = gr_param(g, "bias", GR_SHAPE(out));
  gr_tensor y = gr_add(g, gr_matmul(g, x, w, 0, 0), b);
  gr_scope_pop(g);
  return y;
}

gr_tensor gr_layer_actnorm(gr_graph *g, const char *name, gr_tensor x) {
  if (!gr_ok(g, 1, &x))
    return 0;
  int64_t c = gr_tensor_shape(g, x).d[1];
  gr_scope_push(g, name);
  gr_tensor scale = gr_reshape(g, gr_param(g, "scale", GR_SHAPE(c)), GR_SHAPE(1, c, 1, 1));
  gr_tensor shift = gr_reshape(g, gr_param(g, "shift", GR_SHAPE(c)), GR_SHAPE(1, c, 1, 1));
  gr_tensor y = gr_add(g, gr_mul(g, x, scale), shift);
  gr_scope_pop(g);
  return y;
}

gr_tensor gr_layer_mlp(gr_graph *g, const char *name, gr_tensor x, int hidden, int out, int layers) {
  gr_scope_push(g, name);
  char part[16];
  for (int i = 0; i < layers; i++) {
    snprintf(part, sizeof part, "l%d", i);
    x = gr_layer_linear(g, part, x, i + 1 == layers ? out : hidden);
    if (i + 1 < layers)
      x = gr_silu(g, x);
  }
  gr_scope_pop(g);
  return x;
}

static gr_tensor norm_act(gr_graph *g, const char *name, gr_tensor x, int groups) {
  gr_scope_push(g, name);
  int c = channels(g, x);
  gr_tensor y = gr_silu(g, gr_group_norm(g, x, groups, gr_param(g, "gamma", GR_SHAPE(c)),
                                         gr_param(g, "beta", GR_SHAPE(c)), 1e-5f));
  gr_scope_pop(g);
  return y;
}

gr_tensor gr_layer_resblock(gr_graph *g, const char *name, gr_tensor x, gr_tensor shift, int out, int groups) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_scope_push(g, name);
  /* The shift's view comes first so that its add can fold into conv1's epilogue. */
  if (shift)
    shift = gr_reshape(g, shift, GR_SHAPE(-1, out, 1, 1));
  gr_tensor h = gr_layer_conv(g, "conv1", norm_act(g, "norm1", x, groups), out, 3, 1);
  if (shift)
    h = gr_add(g, h, shift);
  h = gr_layer_conv(g, "conv2", norm_act(g, "norm2", h, groups), out, 3, 1);
  gr_tensor skip = channels(g, x) == out ? x : gr_layer_conv(g, "skip", x, out, 1, 1);
  gr_tensor y = gr_add(g, h, skip);
  gr_scope_pop(g);
  return y;
}

gr_tensor gr_layer_attention(gr_graph *g, const char *name, gr_tensor x, int groups) {
  if (!gr_ok(g, 1, &x))
    return 0;
  gr_shape s = gr_tensor_shape(g, x);
  int64_t n = s.d[0], c = s.d[1], hw = s.d[2] * s.d[3];
  gr_scope_push(g, name);
  int c_int = (int)c;
  gr_tensor h = gr_group_norm(g, x, groups, gr_param(g, "gamma", GR_SHAPE(c)), gr_param(g, "beta", GR_SHAPE(c)), 1e-5f);
  gr_tensor qkv = gr_reshape(g, gr_layer_conv(g, "qkv", h, 3 * c_int, 1, 1), GR_SHAPE(n, 3 * c, hw));
  gr_tensor o = gr_reshape(g, gr_attention(g, qkv), s);
  gr_tensor y = gr_add(g, gr_layer_conv(g, "proj", o, c_int, 1, 1), x);
  gr_scope_pop(g);
  return y;
}

gr_tensor gr_layer_downsample(gr_graph *g, const char *name, gr_tensor x) {
  return gr_layer_conv(g, name, x, channels(g, x), 3, 2);
}

gr_tensor gr_layer_upsample(gr_graph *g, const char *name, gr_tensor x) {
  return gr_layer_conv(g, name, gr_upsample2x(g, x, GR_NEAREST), channels(g, x), 3, 1);
}

/* The resblocks of a U-Net in build order, as their output widths. */
static int unet_blocks(const gr_unet_config *cfg, int *widths, int max) {
  int n = 0;
  for (int l = 0; l < cfg->levels; l++)
    for (int b = 0; b < cfg->blocks_per_level && n < max; b++)
      widths[n++] = cfg->widths[l];
  for (int i = 0; i < 2 && n < max; i++)
    widths[n++] = cfg->widths[cfg->levels - 1];
  for (int l = cfg->levels - 1; l >= 0; l--)
    for (int b = 0; b <= cfg->blocks_per_level && n < max; b++)
      widths[n++] = cfg->widths[l];
  return n;
}

/* The next block's columns of the shared time projection. */
static gr_tensor next_shift(gr_graph *g, gr_tensor proj, const int *widths, int *block, int64_t *col) {
  int w = widths[(*block)++];
  *col += w;
  return gr_slice(g, proj, 1, *col - w, w);
}

gr_tensor gr_unet(gr_graph *g, const gr_unet_config *cfg, gr_tensor x, gr_tensor t) {
  enum { MAX_SKIPS = 32, MAX_BLOCKS = 64 };
  if (cfg->levels < 1 || cfg->levels > 4 || cfg->blocks_per_level < 1 || cfg->blocks_per_level > 6)
    return gr_error(g, "unet", "levels %d (1-4) and blocks per level %d (1-6)", cfg->levels, cfg->blocks_per_level);
  char name[32];
  gr_tensor temb = gr_time_embed(g, t, cfg->time_dim, 10000.0f);
  temb = gr_silu(g, gr_layer_mlp(g, "time_mlp", temb, 4 * cfg->time_dim, 4 * cfg->time_dim, 2));
  /* Every block's time shift from one matmul; each block reads its own columns. */
  int widths[MAX_BLOCKS], nb = unet_blocks(cfg, widths, MAX_BLOCKS), total = 0, block = 0;
  for (int i = 0; i < nb; i++)
    total += widths[i];
  gr_tensor proj = gr_layer_linear(g, "temb_proj", temb, total);
  int64_t col = 0;
  gr_tensor h = gr_layer_conv(g, "stem", x, cfg->widths[0], 3, 1);
  gr_tensor skips[MAX_SKIPS];
  int ns = 0;
  skips[ns++] = h;
  for (int l = 0; l < cfg->levels; l++) {
    for (int b = 0; b < cfg->blocks_per_level; b++) {
      snprintf(name, sizeof name, "down%d.res%d", l, b);
      h = gr_layer_resblock(g, name, h, next_shift(g, proj, widths, &block, &col), cfg->widths[l], cfg->groups);
      if (cfg->attention_level_mask & (1 << l)) {
        snprintf(name, sizeof name, "down%d.attn%d", l, b);
        h = gr_layer_attention(g, name, h, cfg->groups);
      }
      if (ns < MAX_SKIPS)
        skips[ns++] = h;
    }
    if (l + 1 < cfg->levels) {
      snprintf(name, sizeof name, "down%d.down", l);
      h = gr_layer_downsample(g, name, h);
      if (ns < MAX_SKIPS)
        skips[ns++] = h;
    }
  }
  int top = cfg->levels - 1;
  h = gr_layer_resblock(g, "mid.res0", h, next_shift(g, proj, widths, &block, &col), cfg->widths[top], cfg->groups);
  h = gr_layer_attention(g, "mid.attn", h, cfg->groups);
  h = gr_layer_resblock(g, "mid.res1", h, next_shift(g, proj, widths, &block, &col), cfg->widths[top], cfg->groups);
  for (int l = top; l >= 0; l--) {
    for (int b = 0; b <= cfg->blocks_per_level; b++) {
      snprintf(name, sizeof name, "up%d.res%d", l, b);
      h = gr_layer_resblock(g, name, gr_concat(g, h, skips[--ns], 1), next_shift(g, proj, widths, &block, &col), cfg->widths[l], cfg->groups);
      if (cfg->attention_level_mask & (1 << l)) {
        snprintf(name, sizeof name, "up%d.attn%d", l, b);
        h = gr_layer_attention(g, name, h, cfg->groups);
      }
    }
    if (l > 0) {
      snprintf(name, sizeof name, "up%d.up", l);
      h = gr_layer_upsample(g, name, h);
    }
  }
  h = norm_act(g, "out_norm", h, cfg->groups);
  return gr_layer_conv(g, "out", h, cfg->image_channels, 3, 1);
}

gr_unet_config gr_unet_config_default(int channels, int size) {
  return (gr_unet_config){.image_channels = channels, .image_size = size, .widths = {32, 64, 64}, .levels = 3,
                          .blocks_per_level = 2, .attention_level_mask = 4, .groups = 8, .time_dim = 32};
}
