/* Conditional normalizing flows (docs/METHOD.md §4): x = G(z; c) with z ~ N(0, I), built as graph
 * layers that each run in both directions with their log-determinants.
 *
 * Directions. Every layer is a bijection written in the generative direction, u -> v
 * ("forward": z towards x); its inverse maps v -> u. A builder context (aps_flow_ctx)
 * says which direction a graph is built in and accumulates log|det ∂out/∂in| of that
 * direction per sample, [N]: forward gives log|det ∂G/∂z|, inverse gives its negative.
 * Training and sampling only run the forward direction (no matrix inverse, no division);
 * the inverse exists for log q(x | c), tests and data-dependent initialisation.
 *
 * Parameters are graph parameters named under "flow." ("flow.l0.s1.coupling.out.weight");
 * building the forward and the inverse in one graph shares them by name. Fixed parts
 * (permutations, the P and signs of the LU factors) are constants derived from the
 * config's seed and the layer's name, so the config string alone rebuilds a model.
 *
 * Architectures (aps_flow_config.arch):
 * - glow: images [N, C, S, S], multi-scale. Level l (0 = finest) works on C·2^(l+2)
 *   channels at S/2^(l+1). In the z -> x direction, coarsest level first: merge the level's
 *   latent (levels but the last), `steps` × [ActNorm (per channel) → invertible 1×1 conv
 *   (LU) → affine coupling conditioned on features of c], depth-to-space 2×2. The x -> z
 *   direction runs it backwards: squeeze (space-to-depth), the steps' inverses, split half
 *   of the channels off as that level's latent. A conditioning encoder turns c [N, cond,
 *   S, S] into `cond_hidden` feature maps at every level's resolution (3×3 convs, average
 *   pooling, LeakyReLU), concatenated to each coupling net's input. z has x's shape; its
 *   flattened elements hold the latents of level 0, 1, ... in turn.
 *   With head=1 a conditional affine layer follows (z -> x) the last level: per pixel,
 *   x = u·exp(s(c)) + t(c) from a small conv net on c, so the flow can place and scale each
 *   pixel by the measurement directly (copy an observed pixel with σ_y's spread, leave a
 *   hole's wide).
 * - realnvp-fc: vectors [N, dim], condition [N, cond]. `steps` blocks of [ActNorm (per
 *   element) → affine coupling whose net is Linear → LeakyReLU → LayerNorm → Linear →
 *   LeakyReLU → LayerNorm → zero-initialised Linear on concat(x_a, c)] then a fixed
 *   permutation (order reversal composed with a random permutation).
 * Couplings: x_b ← x_b·exp(s) + t with s = bound·tanh(raw/bound); every coupling's last
 * layer starts at zero, so a new flow is the identity up to its 1×1 convs and permutations.
 *
 * Model files: safetensors with metadata "aps.kind" = "flow/conditional" and "aps.flow" =
 * the config string, e.g. "arch=glow channels=1 size=32 levels=3 steps=4 hidden=64 cond=3
 * cond_hidden=16 bound=2 seed=1" or "arch=realnvp-fc dim=16 steps=8 hidden=64 cond=8
 * bound=2 seed=1". */
#ifndef APS_FLOW_H
#define APS_FLOW_H
#include <stdint.h>

#include "graph.h"
#include "runner.h"
#include "safetensors.h"

/* The head's log-scale bound: per-pixel scales from e^-6 (observed pixels, σ_y down to
 * about 0.01 of a unit-variance latent) to e^6. */
#define APS_FLOW_HEAD_BOUND 6.0f

typedef enum aps_flow_arch { APS_FLOW_GLOW = 0, APS_FLOW_REALNVP_FC, APS_FLOW_ARCH_COUNT } aps_flow_arch;

typedef struct aps_flow_config {
  aps_flow_arch arch;
  int channels, size; /* glow: samples [N, channels, size, size] */
  int dim;            /* realnvp-fc: samples [N, dim] */
  int cond;           /* condition channels (glow: [N, cond, size, size]) or length ([N, cond]); 0: none */
  int levels;         /* glow: scales (size divisible by 2^levels) */
  int steps;          /* glow: steps per level; realnvp-fc: blocks */
  int hidden;         /* width of the coupling nets */
  int cond_hidden;    /* glow: feature maps of the conditioning encoder per level */
  int pixels;         /* glow: the finest level's couplings also see the condition itself,
                       * space-to-depth, so every pixel of the measurement reaches them
                       * unpooled (0 in files written before this key existed) */
  int head;           /* glow: a conditional affine layer (x·exp(s(c)) + t(c) per pixel, from the
                       * condition alone, log-scale within ±APS_FLOW_HEAD_BOUND) after the
                       * last level (0, and absent from the config string, when not used) */
  float bound;        /* couplings' log-scale lies in (-bound, bound) */
  uint32_t seed;      /* the fixed permutations and LU factors */
} aps_flow_config;

/* The defaults: glow levels=3 steps=4 hidden=64 cond_hidden=16 pixels=1 bound=2 seed=1
 * (for 1×32×32 with 3 condition channels: 296,240 parameters, 65 MFLOP of convolutions per
 * sample); realnvp-fc steps=8 hidden=64 bound=2 seed=1. */
aps_flow_config aps_flow_config_glow(int channels, int size, int cond);
aps_flow_config aps_flow_config_realnvp(int dim, int cond);
aps_status aps_flow_config_check(const aps_flow_config *c);
/* The config as its "key=value ..." string (at least 256 bytes), and back; parse errors name
 * the key at fault, checks included. */
void aps_flow_config_string(const aps_flow_config *c, char out[256]);
aps_status aps_flow_config_parse(const char *s, aps_flow_config *out);
const char *aps_flow_arch_name(aps_flow_arch a);

enum { APS_FLOW_META = 2 };
void aps_flow_config_meta(const aps_flow_config *c, char buf[256], gr_st_meta meta[APS_FLOW_META]);
/* Reads "aps.kind" and "aps.flow"; errors name the file and the key. */
aps_status aps_flow_config_from_file(const gr_st *st, aps_flow_config *out);

/* Elements per sample of x (and z), and the shapes of x and of the condition for n samples. */
int64_t aps_flow_dim(const aps_flow_config *c);
gr_shape aps_flow_shape(const aps_flow_config *c, int64_t n);
gr_shape aps_flow_cond_shape(const aps_flow_config *c, int64_t n);

/* ------------------------------------------------------------------ whole flows */

/* x = G(z; cond), and log|det ∂G/∂z| per sample [N] in *logdet (may be NULL). z and x are
 * shaped by aps_flow_shape; cond by aps_flow_cond_shape (0 when config.cond is 0). On a bad
 * config or a fault of a flow builder both return 0 (so the graph fails where the result
 * is used) and aps_last_error() says what was wrong. */
gr_tensor aps_flow_forward(gr_graph *g, const aps_flow_config *c, gr_tensor z, gr_tensor cond, gr_tensor *logdet);
/* z = G⁻¹(x; cond), and log|det ∂G⁻¹/∂x| = −log|det ∂G/∂z| per sample in *logdet. */
gr_tensor aps_flow_inverse(gr_graph *g, const aps_flow_config *c, gr_tensor x, gr_tensor cond, gr_tensor *logdet);

/* Sets every flow parameter ("flow.*") of g in r to its initial value: conv and linear
 * weights uniform in ±1/sqrt(fan_in), biases 0, LayerNorm scales 1, ActNorms the identity,
 * every coupling's last layer 0, the 1×1 convs a random rotation (from the config's seed,
 * as the LU factors' constants are); the host generator *rng draws the rest. */
aps_status aps_flow_init_params(const gr_graph *g, const aps_flow_config *c, aps_runner *r, uint64_t *rng);

/* Data-dependent ActNorm initialisation: runs the flow on one batch with every ActNorm
 * standardising its input by the batch's statistics (per channel: zero mean, unit
 * variance of its output), and sets those ActNorms' parameters in r. inverse = 1: data are
 * samples x (the usual choice: A^T y, prior samples, zero-filled measurements) and the
 * inverse direction is standardised; inverse = 0: data are latents z. The other
 * parameters are read from r first (so initialise them before). Runs on the CPU device.
 * cond may be NULL when config.cond is 0. */
aps_status aps_flow_actnorm_init(aps_runner *r, const aps_flow_config *c, int inverse, const float *data,
                                 const float *cond, int batch);

/* The sampling graph: inputs "cond" (when config.cond > 0) and "seed" [2]; z ~ N(0, I)
 * drawn in the graph, times the input "temperature" (one sample's shape: a scale per latent
 * element); outputs "x" and "logdet" [batch]. */
aps_status aps_flow_sample_graph(const aps_flow_config *c, int batch, gr_graph **out);
/* k samples for one condition (cond: one sample's condition, or NULL) into out (k × dim),
 * through a runner of aps_flow_sample_graph(c, batch); seed picks the draws. */
aps_status aps_flow_sample(aps_runner *r, const aps_flow_config *c, int batch, const float *cond, uint64_t seed,
                           float temperature, int k, float *out);
/* The same with a temperature per latent element (aps_flow_dim values, in z's order). */
aps_status aps_flow_sample_scaled(aps_runner *r, const aps_flow_config *c, int batch, const float *cond,
                                  uint64_t seed, const float *temperature, int k, float *out);
/* A glow's per-latent temperatures for a per-pixel one: each latent element gets the mean of
 * pixel_t [size, size] over the pixels of its block (2^(l+1) on a side at level l), the same
 * for every channel, so a region's latents are scaled as the region. out: aps_flow_dim. */
aps_status aps_flow_glow_latent_map(const aps_flow_config *c, const float *pixel_t, float *out);

/* ------------------------------------------------------------------ layers (flow_layers.c) */
typedef struct aps_flow_ctx aps_flow_ctx;
/* The architectures on a context (below), in its direction: in is z or x. */
gr_tensor aps_flow_glow(aps_flow_ctx *f, const aps_flow_config *c, gr_tensor in, gr_tensor cond);
gr_tensor aps_flow_realnvp(aps_flow_ctx *f, const aps_flow_config *c, gr_tensor in, gr_tensor cond);


struct aps_flow_ctx {
  gr_graph *g;
  int inverse;      /* 0: build u -> v (towards x); 1: v -> u */
  int ddi;          /* ActNorms use batch statistics and output their parameters as "ddi.<name>" */
  gr_tensor logdet; /* accumulated log|det| of the built direction, [N] */
  uint32_t seed;    /* the config's seed: fixed permutations and LU constants */
  char scope[GR_MAX_NAME]; /* current parameter prefix, "flow...." */
  int depth;               /* aps_flow_enter nesting, and the scope's length before each */
  uint16_t marks[32];
  aps_status status; /* the first fault found by a flow builder (not a graph builder's) */
  char error[256];   /* its message */
};

/* Starts a context for n samples (logdet = zeros [n]) in scope "flow"; done() leaves that
 * scope and returns the first fault, the flow builders' or the graph's (with its message). */
void aps_flow_ctx_init(aps_flow_ctx *f, gr_graph *g, int64_t n, int inverse, uint32_t seed);
aps_status aps_flow_ctx_done(aps_flow_ctx *f);
void aps_flow_enter(aps_flow_ctx *f, const char *name);
void aps_flow_leave(aps_flow_ctx *f);
/* A parameter under the current scope, shared when a layer is built twice. */
gr_tensor aps_flow_param(aps_flow_ctx *f, const char *name, gr_shape s);

/* Each takes the layer's input of the built direction and returns its output. x is
 * [N, C, H, W] or (for vectors) [N, D]. */
gr_tensor aps_flow_actnorm(aps_flow_ctx *f, const char *name, gr_tensor x);
/* v = W u per pixel, W = P·L·(U + diag(sign·exp(log_s))): parameters "lower", "upper"
 * [C, C] (their strictly triangular parts) and "log_s" [C]; P and sign are constants. */
gr_tensor aps_flow_invconv(aps_flow_ctx *f, const char *name, gr_tensor x);
/* Affine coupling: x_a = the first C/2 channels pass; x_b·exp(s) + t with (raw s, t) from a
 * net on concat(x_a, features) (features may be 0): convs for images, linear layers with
 * LayerNorm for vectors; the net's last layer is "out". */
gr_tensor aps_flow_coupling(aps_flow_ctx *f, const char *name, gr_tensor x, gr_tensor features, int hidden,
                            float bound);
/* Conditional affine: x·exp(s) + t per element, (raw s, t) from a 3×3 conv net on the
 * condition alone ("in", LeakyReLU, zero-initialised "out"); s = bound·tanh(raw/bound). On
 * [N, C, H, W] with a condition of the same H, W. */
gr_tensor aps_flow_cond_affine(aps_flow_ctx *f, const char *name, gr_tensor x, gr_tensor cond, int hidden,
                               float bound);
/* A fixed permutation of the channels (axis 1); perm[i] is the input channel of output i. */
gr_tensor aps_flow_permute(aps_flow_ctx *f, gr_tensor x, const int32_t *perm, int64_t count);
/* Forward: space-to-depth 2×2 (squeeze) or depth-to-space (unsqueeze); log-det 0. */
gr_tensor aps_flow_squeeze(aps_flow_ctx *f, gr_tensor x);
gr_tensor aps_flow_unsqueeze(aps_flow_ctx *f, gr_tensor x);
/* Forward: concat(h, *z) along the channels; inverse: splits x into the returned first
 * `keep` channels and *z (the rest). */
gr_tensor aps_flow_merge(aps_flow_ctx *f, gr_tensor h, gr_tensor *z, int64_t keep);

/* Plain layers with shared parameters "weight" and "bias": a k×k conv ('same' padding) on
 * [N, C, H, W], a linear map on [N, D]. */
gr_tensor aps_flow_conv(aps_flow_ctx *f, const char *name, gr_tensor x, int out, int k);
gr_tensor aps_flow_linear(aps_flow_ctx *f, const char *name, gr_tensor x, int out);

/* The 1×1 conv's fixed factors and initial values from the seed and the layer's full name:
 * a random rotation's LU factorisation (host, double). Any output may be NULL. */
void aps_flow_invconv_factors(uint32_t seed, const char *scope, int c, float *perm, float *sign, float *lower,
                              float *upper, float *log_s);
/* A fixed random permutation of n from (seed, key). */
void aps_flow_random_perm(uint32_t seed, const char *key, int n, int32_t *perm);
#endif
