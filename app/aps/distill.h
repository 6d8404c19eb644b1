/* Distilling the diffusion prior into a conditional flow (docs/METHOD.md §5): the training
 * graph of
 *   L(z; c) = ||y − A(G(z; c))||² / (2σ_y²) − λ_p b_θ(G(z; c)) − λ_e log|det ∂G/∂z|
 * for a batch of measurements (y, σ_y) and their conditions c, with z ~ N(0, I), the
 * ELBO's t (importance density of docs/METHOD.md §3, closed-form inverse CDF) and noise all
 * drawn in the graph from its input "seed". No clean image enters the graph.
 *
 * A is a graph builder (the measurement operator: masks, blurs, matrices) applied to the
 * flow's samples; the prior is any aps_eps_builder, frozen: the prior's U-Net under the
 * parameter scope "prior." (aps_distill_prior_eps, loaded with aps_distill_load_prior) or,
 * in tests, a closed form. Vectors (realnvp-fc) reach A as [N, D] and the prior as
 * [N, D, 1, 1]. */
#ifndef APS_DISTILL_H
#define APS_DISTILL_H
#include "flow.h"
#include "optim.h"
#include "prior.h"

/* y = A(x) for a batch x; any output shape [N, ...]. */
typedef gr_tensor (*aps_operator_fn)(gr_graph *g, void *user, gr_tensor x);

/* What the flow is trained to minimise. REVERSE: the KL divergence of the flow from the
 * posterior, through the prior's ELBO (docs/METHOD.md §5; the method). FORWARD: −log q(x | c)
 * of given pairs (x, y), x drawn from the prior itself and y simulated from it: the
 * amortised KL divergence of the posterior from the flow, mass-covering where REVERSE is
 * mode-seeking (docs/METHOD.md §5, "A warm start from the prior's own samples"). MIXED: both
 * on the same measurements, REVERSE + lambda_f · FORWARD (both are least at the posterior;
 * the forward term keeps the mass the reverse one would drop). */
typedef enum { APS_DISTILL_REVERSE = 0, APS_DISTILL_FORWARD = 1, APS_DISTILL_MIXED = 2 } aps_distill_objective;

typedef struct aps_distill_desc {
  aps_flow_config flow;
  aps_distill_objective objective;
  int batch;
  aps_operator_fn forward; /* A; NULL: the identity (denoising) */
  void *forward_user;
  aps_sde sde;             /* all 0: aps_sde_default() */
  aps_eps_builder eps;     /* the frozen prior's ε_θ(x_t, t) */
  void *eps_user;
  float lambda_p, lambda_e; /* 0 = 1; negative: the term is left out */
  float lambda_f;           /* MIXED: the forward term's weight; 0 = 1 */
  int t_draws;             /* ELBO draws per sample, averaged; 0 = 1 */
  gr_adam_desc adam;       /* as given, except: max_grad_norm 0 = 1, frozen_prefix NULL = "prior.";
                              a trained_prefix that names no parameter is an error */
} aps_distill_desc;

/* Inputs: "seed" [2], "cond" (aps_flow_cond_shape, when flow.cond > 0), "y" (A's output
 * shape), "sigma_y" [batch]; "optim.lr", "optim.step" (optim.h). Outputs: "loss" = the
 * batch mean of L divided by the sample's dimension (nats per dimension: the trained
 * quantity), its parts' batch means in nats per sample "data_fit", "neg_elbo" (−b_θ) and
 * "logdet", and "grad_norm".
 * FORWARD instead: inputs "x" (aps_flow_shape: the prior's samples) and "cond" (of their
 * measurements), "optim.*"; outputs "loss" = the batch mean of −log q(x | c) / D, "logdet"
 * (log|det ∂G/∂z| at z = G⁻¹(x; c), nats per sample) and "grad_norm".
 * MIXED: REVERSE's inputs and "x" (the prior's samples behind y); "loss" = REVERSE's loss +
 * lambda_f · FORWARD's, REVERSE's parts, "forward_nll" (FORWARD's loss) and "grad_norm". */
aps_status aps_distill_graph(const aps_distill_desc *d, gr_graph **out);

/* An aps_eps_builder for the prior's U-Net (user: an aps_prior_config) under scope "prior". */
gr_tensor aps_distill_prior_eps(gr_graph *g, void *prior_config, gr_tensor x, gr_tensor t);
/* Sets every "prior.<name>" parameter of g in r from the tensor <name> of st (a prior's
 * model file); a missing one is an error naming it, and nothing is set. */
aps_status aps_distill_load_prior(const gr_graph *g, aps_runner *r, const gr_st *st);
/* How aps_distill_load_weights may grow a file's network into a larger one. */
enum {
  /* A rank-4 tensor of the file that is narrower on axis 1 (inputs) than the network's and
   * equal otherwise fills the first inputs, and the added ones start at zero: the network
   * computes what the file's did, and the new inputs learn from there. */
  APS_LOAD_WIDEN = 1,
  /* Parameters under "flow.head." that the file lacks keep the values r holds (set them
   * first with aps_flow_init_params: the head's last conv starts at zero, so the head is the
   * identity and the grown flow draws what the file's did). */
  APS_LOAD_GROW_HEAD = 2,
};
/* The same for every trainable parameter named "<prefix>...": read from st under its name
 * with the prefix stripped (strip) or kept; `what` names the file's model in errors. grow:
 * 0 or APS_LOAD_* flags. */
aps_status aps_distill_load_weights(const gr_graph *g, aps_runner *r, const gr_st *st, const char *prefix, int strip,
                                    int grow, const char *what);

/* An aps_train_desc.feed: a new graph seed every step from rng, and (when measure is not
 * NULL) a new batch of conditions, measurements and σ_y from it. Without measure, set
 * "cond", "y" and "sigma_y" once before training. */
typedef struct aps_distill_feed {
  uint64_t rng;
  aps_status (*measure)(void *user, aps_runner *r, int step);
  void *user;
} aps_distill_feed;
aps_status aps_distill_feed_fn(void *feed, aps_runner *r, int step);
#endif
