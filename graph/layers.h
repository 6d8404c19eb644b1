/* Layers as graph builders, shared by the priors and flows of app/. Each creates its
 * parameters under the current scope plus its own name ("down1.res0.conv1.weight"). */
#ifndef APS_GRAPH_LAYERS_H
#define APS_GRAPH_LAYERS_H
#include "graph.h"

/* conv2d with a bias, k×k, 'same' padding for odd k. */
gr_tensor gr_layer_conv(gr_graph *g, const char *name, gr_tensor x, int out_channels, int k, int stride);
/* x [N, in] -> [N, out]. */
gr_tensor gr_layer_linear(gr_graph *g, const char *name, gr_tensor x, int out);
/* Per-channel affine (actnorm): x * scale[c] + shift[c] on NCHW; two broadcasts that fuse
 * into one dispatch, or into the producing kernel's epilogue. */
gr_tensor gr_layer_actnorm(gr_graph *g, const char *name, gr_tensor x);
/* Linear layers with SiLU between them (not after the last). */
gr_tensor gr_layer_mlp(gr_graph *g, const char *name, gr_tensor x, int hidden, int out, int layers);

/* GroupNorm -> SiLU -> conv3x3, twice, adding shift [N, out] (a projection of the time
 * embedding, or 0) per channel after the first conv; a 1×1 skip when channels change. */
gr_tensor gr_layer_resblock(gr_graph *g, const char *name, gr_tensor x, gr_tensor shift, int out_channels, int groups);
/* Single-head self-attention over the H×W positions, with a residual. */
gr_tensor gr_layer_attention(gr_graph *g, const char *name, gr_tensor x, int groups);
gr_tensor gr_layer_downsample(gr_graph *g, const char *name, gr_tensor x);
gr_tensor gr_layer_upsample(gr_graph *g, const char *name, gr_tensor x);

typedef struct gr_unet_config {
  int image_channels, image_size;
  int widths[4], levels;   /* channels per level */
  int blocks_per_level;    /* residual blocks per level (down path; up path has one more) */
  int attention_level_mask;/* bit l: attention after each block at level l */
  int groups;              /* GroupNorm groups */
  int time_dim;            /* sinusoidal embedding size; the MLP widens it 4x */
} gr_unet_config;

/* ε-network: x [N, C, S, S], t [N] -> [N, C, S, S]. */
gr_tensor gr_unet(gr_graph *g, const gr_unet_config *cfg, gr_tensor x, gr_tensor t);
/* The project's U-Net: widths 32/64/64, two residual blocks per level, attention at the
 * third level, 8 groups, a 32-wide time embedding (≈1.6 M parameters at one channel): the
 * shipped prior's network and the benchmarks' and tests' reference size. */
gr_unet_config gr_unet_config_default(int channels, int size);
#endif
