/* Distilling the prior into a flow for a whole operator family (docs/METHOD.md §5), as
 * `aps distill` runs it.
 *
 * Two graphs: the loss graph (aps_distill_graph with A = the family's operator, whose
 * per-sample parameters are inputs "op.param", "op.kernel") sees only measurements y, their
 * conditions c and σ_y; a small measuring graph on the CPU device turns clean training
 * images into those measurements (y = A x + σ_y n with operators drawn from the family), or,
 * with a bundle of recorded measurements (the published method's setting), only builds the
 * conditions of the recorded y. Clean images never reach the loss graph: replacing them by
 * others with the same measurements changes neither the loss nor its gradient.
 *
 * σ_y reaches the data term floored at APS_SIGMA_Y_FLOOR (operators.h), so exact
 * measurements (σ_y = 0) keep a finite weight.
 *
 * The model file: the flow's EMA weights under their graph names ("flow.*"), metadata
 * "aps.kind" = "flow/conditional", "aps.flow" (the config), "aps.op" (the family's canonical
 * spec), "aps.train" (the run's settings), "aps.prior_digest" (FNV-1a 64 of the prior file's
 * bytes, in hex) and "aps.prior" (the prior file's path, as given). Resuming compares all but
 * the path, so a checkpoint continues wherever the same prior is kept. */
#ifndef APS_DISTILL_FAMILY_H
#define APS_DISTILL_FAMILY_H
#include "dataset.h"
#include "distill.h"
#include "operators.h"

typedef struct aps_distill_run_desc {
  const char *prior_path;
  const char *spec;              /* the family; with a bundle NULL = the bundle's own */
  aps_distill_objective objective; /* REVERSE (the method) or FORWARD: data are then the prior's
                                    * own samples (aps prior-sample --dir), dequantised, and the
                                    * flow fits them given their simulated measurements; MIXED:
                                    * the same data, both objectives on each batch */
  float forward_weight;          /* MIXED: the forward term's weight (0 = 1) */
  const char *trained_part;      /* NULL: the whole flow is trained; else only the parameters
                                    "flow.<part>.*" (e.g. "head"; "head,l0": either), the
                                    rest held as loaded */
  const aps_dataset *data;       /* clean training images (simulated measurements), or */
  const char *measurements;      /* a bundle of recorded measurements (aps degrade) */
  aps_flow_config flow;          /* a glow (all zero: the default glow for the prior's images) */
  int batch;                     /* 0 = 64 */
  int t_draws;                   /* ELBO draws per sample (0 = 1) */
  float ema_decay;               /* 0 = 0.999 */
  const char *device;            /* the loss graph's device (runner.h); measuring runs on the CPU device */
  int vulkan;                    /* aps_runner_desc.vulkan: "auto" takes the best Vulkan device (benchmarks) */
  int prior_bf16;                /* aps_runner_desc.cpu_bf16: the prior's convs in bf16 on the CPU device */
  uint64_t seed;
  const char *train;             /* the run's other settings for "aps.train" (learning rate, ...) */
} aps_distill_run_desc;

typedef struct aps_distill_run aps_distill_run;

aps_status aps_distill_run_create(const aps_distill_run_desc *d, aps_distill_run **out);
void aps_distill_run_destroy(aps_distill_run *run);
aps_runner *aps_distill_run_runner(aps_distill_run *run);
const gr_graph *aps_distill_run_graph(const aps_distill_run *run); /* the loss graph */
const aps_flow_config *aps_distill_run_flow(const aps_distill_run *run);
/* Initial flow weights (from seed) and data-dependent ActNorm scales from a first batch of
 * measurements; not for a resumed run, whose checkpoint holds them. */
aps_status aps_distill_run_init(aps_distill_run *run);
/* Or a warm start: the weights of another flow file of the same config (say one distilled
 * for another family), or of a glow without the pixel path or the head that this run's
 * adds (they start as the identity); Adam's moments start at zero and the EMA at these
 * weights. */
aps_status aps_distill_run_init_from(aps_distill_run *run, const gr_st *flow);
/* An aps_train_desc.feed (user: the run): the step's measurements, conditions and seed. */
aps_status aps_distill_run_feed(void *run, aps_runner *r, int step);
/* The model's metadata (aps.kind, aps.flow, aps.op, aps.train, aps.prior_digest, then the
 * APS_DISTILL_META_INFO entries for information: aps.prior); *host_rng is the state
 * aps_train saves and restores. */
enum { APS_DISTILL_META = 6, APS_DISTILL_META_INFO = 1 };
const gr_st_meta *aps_distill_run_meta(const aps_distill_run *run);
uint64_t *aps_distill_run_rng(aps_distill_run *run);

#endif
