/* Forward operators of inverse problems, y = A(x) + σ_y n (docs/METHOD.md §1), and the families
 * they are drawn from.
 *
 * Contract
 * - Images are x [N, C, H, W] in [-1, 1]; measurements y [N, C, MH, MW] (MH, MW = H, W, or
 *   H/f, W/f for super-resolution by f).
 * - A spec (a string a person types, or a model file holds under the metadata key "aps.op")
 *   names a family of operators: one member, or `mix:` several joined by '+'. Each draw
 *   picks a member uniformly, then its random parameters (mask, σ_b, σ_y). Grammar:
 *     denoise | inpaint:box=R | inpaint:pixels=R | inpaint:strokes[=R] | inpaint:half |
 *     inpaint:mask=FILE.png | blur:sigma=R[,map=FILE.png] | sr:2 | sr:4
 *   each optionally followed by `,noise=R` (σ_y, default APS_SIGMA_Y_DEFAULT); R is a number
 *   or a range `lo-hi` (lo <= hi). aps_op_spec_format prints the canonical form, which
 *   parses back to the same spec. Errors name the spec and the field at fault.
 * - Operator classes: a family mixes members of one class only, since one compiled graph
 *   serves every draw: MASK (denoise, inpaint: A x = m ⊙ x), BLUR (blur, and denoise as the
 *   σ_b = 0 map: A x = w ⊙ (k ∗ x) + (1 − w) ⊙ x, k ∗ a per-sample kernel, reflect padding)
 *   and SR (average pooling by f; sr:2 and sr:4 have different measurement shapes and do
 *   not mix). Everything that varies per sample — mask or blur map, kernel, σ_b, σ_y — is a
 *   graph input, never a constant.
 * - Inpainting measures the observed pixels only: y = m ⊙ (x + σ_y n), zero where m = 0.
 *   The other classes: y = A x + σ_y n.
 * - Draws are made on the host from one 64-bit seed per sample (aps_rng_next), so a seed
 *   gives the same mask, kernel, σ and noise on every device and every run.
 * - Graph builders return the invalid tensor 0 on failure and leave the error in the graph
 *   (gr_graph_status), as the graph/ builders do. Other functions return an aps_status
 *   whose message names the spec, file or field at fault. Nothing here exits.
 *
 * The condition a network sees (aps_op_condition), [N, C + 2, H, W]:
 *   channels 0..C-1  the measurement on the image grid: y itself for MASK and BLUR (for
 *                    inpainting that is Aᵀy: zero where unobserved), the nearest-neighbour
 *                    upsampling of y for SR;
 *   channel C        the operator descriptor: MASK the mask m (1 observed, 0 missing);
 *                    BLUR the σ_b map w·σ_b in pixels (0 = sharp); SR the constant f;
 *   channel C + 1    σ_y as a constant plane (as drawn, not floored).
 */
#ifndef APS_OPERATORS_H
#define APS_OPERATORS_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "runner.h"
#include "safetensors.h"

/* The data term ||y − A x||² / (2 σ²) uses σ = max(σ_y, APS_SIGMA_Y_FLOOR), so σ_y = 0 (an
 * exact measurement) stays finite. 0.01 on the [-1, 1] scale lies above the noise of 8-bit
 * quantisation (a uniform error over one level, 2/255/sqrt(12) ≈ 0.0023), which every stored
 * image carries anyway, and is small enough that the posterior stays close to exact data
 * consistency. */
#define APS_SIGMA_Y_FLOOR 0.01f
#define APS_SIGMA_Y_DEFAULT 0.05f /* docs/METHOD.md §1 */
#define APS_SIGMA_Y_MAX 2.0f      /* larger σ_y is refused: the signal spans 2 */
#define APS_BLUR_SIGMA_MAX 16.0f  /* larger σ_b (px) is refused */
#define APS_OP_META_KEY "aps.op"

enum { APS_OP_MIX_MAX = 8, APS_OP_PATH_MAX = 256, APS_OP_SPEC_MAX = 2400 };

typedef enum aps_op_kind { APS_OP_DENOISE = 0, APS_OP_INPAINT, APS_OP_BLUR, APS_OP_SR, APS_OP_KIND_COUNT } aps_op_kind;
typedef enum aps_mask_kind {
  APS_MASK_BOX = 0, /* one box of hidden pixels, each side uniform in the range (px), placed uniformly */
  APS_MASK_PIXELS,  /* a keep ratio uniform in the range, exactly that share of pixels kept at random */
  APS_MASK_STROKES, /* free-form brush strokes (count uniform in the range, default 1-4): random
                       walks of 2-5 segments with a random brush width */
  APS_MASK_HALF,    /* the left, right, top or bottom half hidden */
  APS_MASK_FILE,    /* a user's mask from a PNG: bright (>= half) observed, dark missing */
  APS_MASK_KIND_COUNT
} aps_mask_kind;
typedef enum aps_op_class { APS_OPC_MASK = 0, APS_OPC_BLUR, APS_OPC_SR } aps_op_class;

typedef struct aps_range {
  float lo, hi;
} aps_range;

/* One member of a family. */
typedef struct aps_op_member {
  aps_op_kind kind;
  aps_mask_kind mask;         /* inpaint; blur with map: the map's kind */
  aps_range range;            /* inpaint box: side (px); pixels: keep ratio; strokes: count;
                                 blur: σ_b (px) */
  int factor;                 /* sr: 2 or 4 */
  aps_range noise;            /* σ_y */
  int map;                    /* blur: 0 blur everywhere; 1 a weight map (w = 1 where the mask kind
                                 would hide a pixel), drawn per sample, or from FILE */
  aps_range map_range;        /* blur map: the mask kind's range */
  char file[APS_OP_PATH_MAX]; /* inpaint:mask=FILE; blur map=FILE */
} aps_op_member;

typedef struct aps_op_spec {
  int count; /* members; > 1 only from mix: */
  aps_op_member m[APS_OP_MIX_MAX];
} aps_op_spec;

/* ------------------------------------------------------------ specs (op_spec.c) */
aps_status aps_op_spec_parse(const char *text, aps_op_spec *out);
/* The canonical text ("inpaint:box=8-16,noise=0.05"; a range lo = hi prints as one number). */
aps_status aps_op_spec_format(const aps_op_spec *s, char *buf, size_t size);
aps_status aps_op_member_format(const aps_op_member *m, char *buf, size_t size);
/* The class of a checked spec (a mix: the class its members share). */
aps_op_class aps_op_spec_class(const aps_op_spec *s);
/* A model that trains on a family keeps the spec in its metadata: buf receives the canonical
 * text, *meta = {APS_OP_META_KEY, buf}. */
aps_status aps_op_spec_to_meta(const aps_op_spec *s, char buf[APS_OP_SPEC_MAX], gr_st_meta *meta);
/* Reads and parses APS_OP_META_KEY from a file; errors name the file and the key. */
aps_status aps_op_spec_from_file(const gr_st *st, aps_op_spec *out);

/* ------------------------------------------------------------ families (operators.c) */
typedef struct aps_op_layout {
  aps_op_class cls;
  int c, h, w;   /* images */
  int mh, mw;    /* measurements */
  int factor;    /* sr: 2 or 4; else 1 */
  int ksize;     /* blur: the kernel side K, odd, from the family's largest σ_b; else 0 */
  float desc_max; /* the descriptor's largest value (1 for masks, σ_b max, f) for display */
} aps_op_layout;

/* The graph shapes of a spec on C×H×W images, without reading any file: errors for an SR
 * factor that does not divide the image, boxes that do not fit. */
aps_status aps_op_layout_make(const aps_op_spec *s, int c, int h, int w, aps_op_layout *out);

/* A spec ready to draw from on C×H×W images: the layout, and the mask and map files read
 * and checked (size, channels, bit depth, not all zero). */
typedef struct aps_op_family aps_op_family;
aps_status aps_op_family_create(const aps_op_spec *s, int c, int h, int w, aps_op_family **out);
void aps_op_family_destroy(aps_op_family *f);
const aps_op_layout *aps_op_family_layout(const aps_op_family *f);
const aps_op_spec *aps_op_family_spec(const aps_op_family *f);

/* Per-sample operator parameters of a batch: what the graph's inputs take. */
typedef struct aps_op_batch {
  int n;
  aps_op_layout l;
  float *param;      /* [n, 1, H, W] MASK: the mask; BLUR: the blur weight map w; SR: ones */
  float *kernel;     /* [n, 1, K, K] BLUR: the normalised kernel (NULL otherwise) */
  float *sigma_b;    /* [n] BLUR: σ_b in px (0 for denoise); else 0 */
  float *sigma_y;    /* [n] */
  float *noise;      /* [n, C, MH, MW] standard normal */
  float *descriptor; /* [n, 1, H, W] as in the condition */
  int *member;       /* [n] the member each sample was drawn from */
  uint64_t *seed;    /* [n] */
} aps_op_batch;
aps_status aps_op_batch_alloc(const aps_op_layout *l, int n, aps_op_batch *b);
void aps_op_batch_free(aps_op_batch *b);
/* Draws sample i of the batch from the family with its own seed: member, σ_y, the member's
 * parameters, then the noise, all from aps_rng_next(seed). */
aps_status aps_op_draw(const aps_op_family *f, uint64_t seed, aps_op_batch *b, int i);
/* A per-sample seed from a run's seed and the sample's index (splitmix64 of both). */
uint64_t aps_op_seed(uint64_t run_seed, uint64_t index);
/* The normalised Gaussian of σ (px) on a K×K grid (σ = 0: the identity kernel). */
void aps_op_gaussian(int k, float sigma, float *out);

/* ------------------------------------------------------------ graphs (op_graph.c) */
/* The operator's inputs in a graph of batch n, named "<prefix>.param" [n, 1, H, W] (MASK,
 * BLUR), "<prefix>.kernel" [n, 1, K, K] (BLUR), "<prefix>.sigma_b" [n] (BLUR) and
 * "<prefix>.sigma_y" [n]; prefix NULL = "op". */
typedef struct aps_op_graph {
  aps_op_layout l;
  int n;
  gr_tensor param, kernel, sigma_b, sigma_y; /* 0 where the class has none */
} aps_op_graph;
aps_status aps_op_graph_inputs(gr_graph *g, const aps_op_layout *l, int n, const char *prefix, aps_op_graph *out);
/* A x: x [n, C, H, W] -> [n, C, MH, MW]. Linear; its VJP comes from gr_grad. */
gr_tensor aps_op_forward(gr_graph *g, const aps_op_graph *op, gr_tensor x);
/* Aᵀ y, exact: MASK m ⊙ y; BLUR y + kᵀ∗(w ⊙ y) − w ⊙ y with kᵀ∗ the reflect-padded
 * convolution's adjoint (through gr_grad: the flipped kernel's correlation, then the mirrored
 * borders folded back); SR nearest upsampling / f². */
gr_tensor aps_op_adjoint(gr_graph *g, const aps_op_graph *op, gr_tensor y);
/* y = A x + σ_y n (MASK: m ⊙ (x + σ_y n)), noise n [n, C, MH, MW] standard normal (an input,
 * or gr_random). */
gr_tensor aps_op_simulate(gr_graph *g, const aps_op_graph *op, gr_tensor x, gr_tensor noise);
/* The measurement on the image grid (channels 0..C-1 of the condition): y itself (the same
 * tensor) for MASK and BLUR, so it cannot be a second output of another name. */
gr_tensor aps_op_on_grid(gr_graph *g, const aps_op_graph *op, gr_tensor y);
gr_tensor aps_op_descriptor(gr_graph *g, const aps_op_graph *op); /* [n, 1, H, W] */
gr_tensor aps_op_condition(gr_graph *g, const aps_op_graph *op, gr_tensor y); /* [n, C + 2, H, W] */
/* Per sample [n]: ||y − A x||² / (2 max(σ_y, APS_SIGMA_Y_FLOOR)²). */
gr_tensor aps_op_data_term(gr_graph *g, const aps_op_graph *op, gr_tensor x, gr_tensor y);
/* Sets the operator's inputs of a runner from a batch of the same layout and n. */
aps_status aps_op_graph_set(aps_runner *r, const gr_graph *g, const aps_op_graph *op, const aps_op_batch *b);

/* ------------------------------------------------------------ measurement bundles (measurements.c) */
/* A safetensors file of measurements without their clean images, as `aps degrade` writes:
 * tensors "y" [N, C, MH, MW], "descriptor" [N, 1, H, W], "sigma_y" [N], "param" [N, 1, H, W]
 * (mask or blur map), "sigma_b" [N], "member" [N]; metadata "aps.kind" = "measurements",
 * "aps.op" (the family's canonical spec), "aps.image" ("c=1 h=32 w=32"), "aps.seeds" (the
 * per-sample seeds, decimal, comma-separated) and "aps.source" (where the images came from). */
typedef struct aps_measurements {
  aps_op_spec spec;
  aps_op_batch b; /* param, kernel, sigma_b, sigma_y, descriptor, member, seed (noise NULL) */
  float *y;       /* [n, C, MH, MW] */
  char source[512];
} aps_measurements;
/* b holds the n samples' operators; y their measurements. Written atomically. */
aps_status aps_measurements_write(const char *path, const aps_op_spec *spec, const aps_op_batch *b, const float *y,
                                  const char *source);
/* What a caller needs of a bundle; zero fields accept anything. */
typedef struct aps_measurements_expect {
  const char *spec; /* a spec text: the bundle's must be the same family */
  int c, h, w;
  aps_op_class cls; /* with check_class */
  int check_class;
} aps_measurements_expect;
aps_status aps_measurements_load(const char *path, const aps_measurements_expect *want, aps_measurements **out);
void aps_measurements_free(aps_measurements *m);

#endif
