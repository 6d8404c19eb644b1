/* Optimizers as graph nodes: one training step — forward, backward, clipping, update, EMA —
 * is one graph, hence one compiled plan and one submit per step. */
#ifndef APS_GRAPH_OPTIM_H
#define APS_GRAPH_OPTIM_H
#include "graph.h"

typedef struct gr_adam_desc {
  float beta1, beta2, eps;   /* 0 = 0.9, 0.999, 1e-8 */
  float weight_decay;        /* > 0: AdamW, decoupled: p *= 1 - lr * weight_decay */
  float max_grad_norm;       /* > 0: scale all gradients so their global norm is at most this */
  float ema_decay;           /* > 0: keep "ema.<param>", decay min(this, (t - 1) / (t + 9)) */
  const char *frozen_prefix; /* parameters whose names start with it are not trained */
  const char *trained_prefix; /* non-empty: only parameters whose names start with it (or
                                 with one of its comma-separated prefixes) are trained; the
                                 others not frozen are held, with an EMA that copies them, so
                                 a save of the averages still holds them */
} gr_adam_desc;

typedef struct gr_adam_outputs {
  gr_tensor grad_norm;       /* [1], before clipping */
  uint32_t params;           /* parameters updated */
  uint32_t held;             /* parameters held (trained_prefix) */
} gr_adam_outputs;

/* Adds an Adam (AdamW) step for every non-frozen parameter that loss depends on. The graph
 * gains two inputs, "optim.lr" and "optim.step" ([1] each; step counts from 1, for the bias
 * corrections), and the states "optim.m.<p>", "optim.v.<p>" (and "ema.<p>"). Follows
 * PyTorch's Adam/AdamW update exactly. */
aps_status gr_adam(gr_graph *g, gr_tensor loss, const gr_adam_desc *desc, gr_adam_outputs *out);

typedef struct gr_schedule {
  float lr;          /* peak learning rate */
  int warmup;        /* linear warm-up steps */
  int total;         /* > 0: cosine decay to 0 at this step; 0: constant after warm-up */
} gr_schedule;
/* The learning rate at step t (from 1). */
float gr_schedule_lr(const gr_schedule *s, int step);
#endif
