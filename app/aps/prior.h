/* The diffusion prior (docs/METHOD.md §2-3): a VP-SDE ε-prediction U-Net.
 *
 * A model file is a safetensors file whose metadata alone rebuilds the network:
 *   "aps.kind" = "prior/vp-eps", "aps.unet" = "channels=1 size=32 widths=32,64,64 blocks=2
 *   attention=4 groups=8 time_dim=32", "aps.sde" = "beta0=0.1 beta1=20 eps=0.001".
 * The network sees t scaled by APS_PRIOR_TIME_SCALE (so the sinusoidal embedding spans
 * the usual range of integer diffusion steps). */
#ifndef APS_PRIOR_H
#define APS_PRIOR_H
#include "graph.h"
#include "layers.h"
#include "safetensors.h"
#include "sde.h"

#define APS_PRIOR_TIME_SCALE 1000.0f

typedef struct aps_prior_config {
  gr_unet_config unet;
  aps_sde sde;
} aps_prior_config;

/* The project's default: widths 32/64/64, two blocks per level, attention at 8×8
 * (≈1.6 M parameters) for 32×32 single-channel images. */
aps_prior_config aps_prior_config_default(int channels, int size);

/* Metadata strings; buffers of at least 256 bytes. */
enum { APS_PRIOR_META = 3 };
void aps_prior_config_meta(const aps_prior_config *c, char unet[256], char sde[256], gr_st_meta meta[APS_PRIOR_META]);
/* Reads the config from a file's metadata; errors name the file and the key at fault. */
aps_status aps_prior_config_from_file(const gr_st *st, aps_prior_config *out);
/* Checks a config a user gave (widths, levels, groups dividing widths, sizes). */
aps_status aps_prior_config_check(const aps_prior_config *c);

/* ε_θ(x, t) for x [N, C, S, S] and t [N] in [eps, 1]. */
gr_tensor aps_prior_eps(gr_graph *g, const aps_prior_config *c, gr_tensor x, gr_tensor t);

/* a(t) and σ(t) of a [N] tensor, in the graph. */
gr_tensor aps_prior_alpha(gr_graph *g, const aps_sde *s, gr_tensor t);
gr_tensor aps_prior_sigma(gr_graph *g, const aps_sde *s, gr_tensor t);

/* The training graph: input "x" [batch, C, S, S] (data in [-1, 1]) and "seed" [2]; t ~
 * U[eps, 1] and ε ~ N(0, I) drawn in the graph from the seed; output "loss" =
 * mean ||ε_θ(a x + σ ε, t) − ε||²; an AdamW step (gradient clipping at 1, EMA 0.999) with
 * inputs "optim.lr", "optim.step" (optim.h). */
aps_status aps_prior_train_graph(const aps_prior_config *c, int batch, gr_graph **out);

/* The sampling graph: inputs "x" [batch, C, S, S], "t" [batch]; output "eps". */
aps_status aps_prior_eps_graph(const aps_prior_config *c, int batch, gr_graph **out);

/* Builds ε_θ for the ELBO; the prior's network, or (in tests) a closed form. */
typedef gr_tensor (*aps_eps_builder)(gr_graph *g, void *user, gr_tensor x, gr_tensor t);

/* −b_θ(x) of docs/METHOD.md §3 per sample, in nats, [N]: inputs x [N, C, S, S], t [N] (drawn
 * from the importance density on the host), and three independent N(0, I) draws e_t, e_1,
 * e_0 shaped like x. Differentiable w.r.t. x through the network, which is built once and
 * evaluated once, on [x_t; x̃] (batch 2N). */
gr_tensor aps_prior_neg_elbo(gr_graph *g, const aps_sde *s, aps_eps_builder eps, void *user, gr_tensor x,
                             gr_tensor t, gr_tensor e_t, gr_tensor e_1, gr_tensor e_0);

/* The ELBO graph of the prior's network: inputs "x", "t", "e_t", "e_1", "e_0" as above;
 * output "nelbo" [batch] (nats). */
aps_status aps_prior_elbo_graph(const aps_prior_config *c, int batch, gr_graph **out);

#include "dataset.h"
#include "runner.h"

/* A prior file opened for use: its config from the metadata, a graph built by `build`
 * (aps_prior_eps_graph, aps_prior_elbo_graph, ...) at the batch given, and a runner on
 * `device` (runner.h) holding the file's weights. On failure nothing is left allocated
 * and the message names the file. */
typedef aps_status (*aps_prior_graph_fn)(const aps_prior_config *c, int batch, gr_graph **out);
aps_status aps_prior_open(const char *path, const aps_runner_desc *device, int batch, aps_prior_graph_fn build,
                          aps_prior_config *cfg, gr_graph **g, aps_runner **r);

/* ------------------------------------------------------------ training (prior_train.c) */

/* Every trainable parameter of g drawn like PyTorch's defaults (weights uniform in
 * ±1/sqrt(fan_in)), biases and GroupNorm shifts 0, GroupNorm scales 1; from *rng. */
aps_status aps_prior_init_params(const gr_graph *g, aps_runner *r, uint64_t *rng);

/* The training graph's inputs for one step: a batch of images and a graph seed, both from
 * *rng (which a checkpoint saves, so a resumed run sees the same batches). */
typedef struct aps_prior_feed {
  const aps_dataset *data;
  uint64_t rng;
  int batch, hflip;
  float *buf; /* batch images; aps_prior_feed_fn allocates it, free() it */
} aps_prior_feed;
aps_status aps_prior_feed_fn(void *feed, aps_runner *r, int step); /* an aps_train_desc.feed */
#endif
