#include "distill_family.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

struct aps_distill_run {
  aps_distill_run_desc d;
  aps_op_spec spec;
  aps_op_family *family;    /* simulated measurements */
  aps_measurements *bundle; /* recorded ones */
  aps_op_layout l;
  aps_prior_config pc;
  aps_flow_config fc;
  gr_graph *g, *mg; /* the loss graph; the measuring graph */
  aps_runner *r, *mr;
  aps_op_graph og, mog;
  aps_status og_status;
  aps_op_batch b;
  float *x, *y, *cond, *sigma, *first;
  uint64_t rng;
  char flow_s[256], spec_s[APS_OP_SPEC_MAX], prior_s[1024], train_s[1024], digest_s[17], part_s[160];
  gr_st_meta meta[APS_DISTILL_META];
};

/* A(x) for the loss graph: the family's operator, its per-sample parameters inputs "op.*". */
static gr_tensor forward(gr_graph *g, void *user, gr_tensor x) {
  aps_distill_run *R = user;
  if (!R->og.n && (R->og_status = aps_op_graph_inputs(g, &R->l, R->d.batch, "op", &R->og)) != APS_OK)
    return 0;
  return aps_op_forward(g, &R->og, x);
}

/* The measuring graph: clean images to (y, condition), or recorded y to its condition. */
static aps_status measuring_graph(aps_distill_run *R) {
  int n = R->d.batch;
  R->mg = gr_graph_create();
  if (!R->mg)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  APS_TRY(aps_op_graph_inputs(R->mg, &R->l, n, "op", &R->mog));
  gr_shape ms = GR_SHAPE(n, R->l.c, R->l.mh, R->l.mw);
  gr_tensor y;
  if (R->bundle) {
    y = gr_input(R->mg, "y", ms);
  } else {
    gr_tensor x = gr_input(R->mg, "x", GR_SHAPE(n, R->l.c, R->l.h, R->l.w));
    y = aps_op_simulate(R->mg, &R->mog, x, gr_input(R->mg, "noise", ms));
    gr_output(R->mg, y, "y_out");
  }
  gr_output(R->mg, aps_op_condition(R->mg, &R->mog, y), "cond");
  APS_TRY(gr_graph_status(R->mg));
  return aps_runner_create(R->mg, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &R->mr);
}

static aps_status alloc_buffers(aps_distill_run *R) {
  int64_t n = R->d.batch, img = (int64_t)R->l.c * R->l.h * R->l.w, meas = (int64_t)R->l.c * R->l.mh * R->l.mw;
  APS_TRY(aps_op_batch_alloc(&R->l, (int)n, &R->b));
  R->x = malloc((size_t)(n * img) * sizeof(float));
  R->y = malloc((size_t)(n * meas) * sizeof(float));
  R->cond = malloc((size_t)(n * (img / R->l.c) * (R->l.c + 2)) * sizeof(float));
  R->sigma = malloc((size_t)n * sizeof(float));
  R->first = malloc((size_t)(n * img) * sizeof(float));
  if (!R->x || !R->y || !R->cond || !R->sigma || !R->first)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  return APS_OK;
}

aps_status aps_distill_run_create(const aps_distill_run_desc *desc, aps_distill_run **out) {
  *out = NULL;
  aps_distill_run *R = calloc(1, sizeof *R);
  if (!R)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  R->d = *desc;
  R->d.batch = R->d.batch ? R->d.batch : 64;
  R->rng = 0x6a09e667f3bcc909ull ^ R->d.seed;
  aps_status s = APS_OK;
  gr_st *prior = NULL;
  if (!R->d.prior_path || (!R->d.data == !R->d.measurements))
    s = aps_fail(APS_ERR_INVALID_ARG, "distill: a prior file and either training images or a bundle of measurements");
  else if (R->d.objective != APS_DISTILL_REVERSE && !R->d.data)
    s = aps_fail(APS_ERR_UNSUPPORTED, "distill: the forward and mixed objectives need the prior's samples (images) "
                 "to simulate measurements of; a bundle of recorded measurements has no samples behind it");
  if (s == APS_OK && (s = gr_st_open(R->d.prior_path, &prior)) == APS_OK) {
    s = aps_prior_config_from_file(prior, &R->pc);
    snprintf(R->digest_s, sizeof R->digest_s, "%016" PRIx64, gr_st_digest(prior));
  }
  int c = R->pc.unet.image_channels, sz = R->pc.unet.image_size;
  if (s == APS_OK && R->d.measurements) {
    s = aps_measurements_load(R->d.measurements, &(aps_measurements_expect){.spec = R->d.spec, .c = c, .h = sz, .w = sz},
                              &R->bundle);
    if (s == APS_OK)
      R->spec = R->bundle->spec;
  } else if (s == APS_OK) {
    if (aps_dataset_channels(R->d.data) != c || aps_dataset_height(R->d.data) != sz || aps_dataset_width(R->d.data) != sz)
      s = aps_fail(APS_ERR_INVALID_ARG, "%s: images are %dx%dx%d, the prior %s wants %dx%dx%d",
                   aps_dataset_source(R->d.data), aps_dataset_channels(R->d.data), aps_dataset_height(R->d.data),
                   aps_dataset_width(R->d.data), R->d.prior_path, c, sz, sz);
    if (s == APS_OK && !R->d.spec)
      s = aps_fail(APS_ERR_INVALID_ARG, "distill: an operator family (spec) is needed with training images");
    if (s == APS_OK && (s = aps_op_spec_parse(R->d.spec, &R->spec)) == APS_OK)
      s = aps_op_family_create(&R->spec, c, sz, sz, &R->family);
  }
  if (s == APS_OK)
    s = aps_op_layout_make(&R->spec, c, sz, sz, &R->l);
  R->fc = R->d.flow.channels || R->d.flow.dim ? R->d.flow : aps_flow_config_glow(c, sz, c + 2);
  /* The condition is an image of C + 2 channels (operators.h): a glow's. A realnvp-fc flow
   * sees vectors; its distillation is aps_distill_graph with a vector operator. */
  if (s == APS_OK && R->fc.arch != APS_FLOW_GLOW)
    s = aps_fail(APS_ERR_UNSUPPORTED, "distill: operator families train glow flows; %s flows take vectors "
                 "(aps_distill_graph with a vector operator)", aps_flow_arch_name(R->fc.arch));
  if (s == APS_OK && (R->fc.cond != c + 2 || R->fc.channels != c || R->fc.size != sz))
    s = aps_fail(APS_ERR_INVALID_ARG, "distill: the flow must take %dx%dx%d images and %d condition channels", c, sz, sz,
                 c + 2);
  for (const char *p = R->d.trained_part; s == APS_OK && p && *p;) { /* "a,b" -> "flow.a.,flow.b." */
    size_t n = strcspn(p, ","), len = strlen(R->part_s);
    if (n == 0 || len + n + 8 > sizeof R->part_s)
      s = aps_fail(APS_ERR_INVALID_ARG, "distill: trained parts '%s': empty or too long", R->d.trained_part);
    else
      snprintf(R->part_s + len, sizeof R->part_s - len, "%sflow.%.*s.", len ? "," : "", (int)n, p);
    p += n + (p[n] == ',');
  }
  if (s == APS_OK)
    s = aps_distill_graph(&(aps_distill_desc){.flow = R->fc,
                                              .objective = R->d.objective,
                                              .batch = R->d.batch,
                                              .forward = forward,
                                              .forward_user = R,
                                              .sde = R->pc.sde,
                                              .eps = aps_distill_prior_eps,
                                              .eps_user = &R->pc,
                                              .t_draws = R->d.t_draws,
                                              .lambda_f = R->d.forward_weight,
                                              .adam = {.ema_decay = R->d.ema_decay > 0 ? R->d.ema_decay : 0.999f,
                                                       .trained_prefix = R->part_s}},
                          &R->g);
  if (s == APS_OK)
    s = R->og_status;
  if (s == APS_OK)
    s = aps_runner_create(R->g, &(aps_runner_desc){.device = R->d.device, .vulkan = R->d.vulkan, .cpu_bf16 = R->d.prior_bf16}, &R->r);
  if (s == APS_OK)
    s = aps_distill_load_prior(R->g, R->r, prior);
  if (s == APS_OK)
    s = measuring_graph(R);
  if (s == APS_OK)
    s = alloc_buffers(R);
  gr_st_close(prior);
  if (s == APS_OK) {
    aps_flow_config_string(&R->fc, R->flow_s);
    s = aps_op_spec_format(&R->spec, R->spec_s, sizeof R->spec_s);
  }
  if (s != APS_OK) {
    aps_distill_run_destroy(R);
    return s;
  }
  snprintf(R->prior_s, sizeof R->prior_s, "%s", R->d.prior_path);
  char objective_s[64] = "";
  if (R->d.objective == APS_DISTILL_FORWARD)
    snprintf(objective_s, sizeof objective_s, "objective=forward ");
  else if (R->d.objective == APS_DISTILL_MIXED)
    snprintf(objective_s, sizeof objective_s, "objective=mixed forward_weight=%g ",
             R->d.forward_weight > 0 ? R->d.forward_weight : 1.0f);
  snprintf(R->train_s, sizeof R->train_s, "%s%s=%s batch=%d t_draws=%d seed=%llu%s%s", objective_s,
           R->bundle ? "measurements" : "data",
           R->bundle ? R->d.measurements : aps_dataset_source(R->d.data), R->d.batch, R->d.t_draws ? R->d.t_draws : 1,
           (unsigned long long)R->d.seed, R->d.train ? " " : "", R->d.train ? R->d.train : "");
  R->meta[0] = (gr_st_meta){"aps.kind", "flow/conditional"};
  R->meta[1] = (gr_st_meta){"aps.flow", R->flow_s};
  R->meta[2] = (gr_st_meta){APS_OP_META_KEY, R->spec_s};
  R->meta[3] = (gr_st_meta){"aps.train", R->train_s};
  R->meta[4] = (gr_st_meta){"aps.prior_digest", R->digest_s};
  R->meta[5] = (gr_st_meta){"aps.prior", R->prior_s};
  *out = R;
  return APS_OK;
}

void aps_distill_run_destroy(aps_distill_run *R) {
  if (!R)
    return;
  aps_runner_destroy(R->r);
  aps_runner_destroy(R->mr);
  gr_graph_destroy(R->g);
  gr_graph_destroy(R->mg);
  aps_op_family_destroy(R->family);
  aps_measurements_free(R->bundle);
  aps_op_batch_free(&R->b);
  free(R->x), free(R->y), free(R->cond), free(R->sigma), free(R->first);
  free(R);
}

aps_runner *aps_distill_run_runner(aps_distill_run *R) { return R->r; }
const gr_graph *aps_distill_run_graph(const aps_distill_run *R) { return R->g; }
const aps_flow_config *aps_distill_run_flow(const aps_distill_run *R) { return &R->fc; }
const gr_st_meta *aps_distill_run_meta(const aps_distill_run *R) { return R->meta; }
uint64_t *aps_distill_run_rng(aps_distill_run *R) { return &R->rng; }

/* One batch of operators, measurements and conditions into R->b, R->y, R->cond. */
static aps_status measure(aps_distill_run *R, uint64_t *rng, int step) {
  int n = R->d.batch;
  const aps_op_layout *l = &R->l;
  int64_t plane = (int64_t)l->h * l->w, kk = (int64_t)l->ksize * l->ksize, meas = (int64_t)l->c * l->mh * l->mw;
  if (R->bundle) { /* recorded measurements, drawn with replacement */
    const aps_op_batch *src = &R->bundle->b;
    for (int i = 0; i < n; i++) {
      int64_t k = (int64_t)aps_rng_below(rng, (uint64_t)src->n);
      memcpy(R->b.param + i * plane, src->param + k * plane, (size_t)plane * sizeof(float));
      if (R->b.kernel && src->kernel)
        memcpy(R->b.kernel + i * kk, src->kernel + k * kk, (size_t)kk * sizeof(float));
      R->b.sigma_b[i] = src->sigma_b[k], R->b.sigma_y[i] = src->sigma_y[k];
      memcpy(R->y + i * meas, R->bundle->y + k * meas, (size_t)meas * sizeof(float));
    }
    APS_TRY(aps_runner_set(R->mr, "y", R->y, n * meas));
  } else { /* clean images and operators drawn from the family */
    APS_TRY(aps_dataset_batch(R->d.data, rng, n, 0, R->x));
    if (R->d.objective != APS_DISTILL_REVERSE) /* 8-bit images: uniform over their level, as aps elbo */
      for (int64_t i = 0; i < (int64_t)n * l->c * plane; i++)
        R->x[i] += (float)(aps_rng_uniform(rng) / 127.5);
    for (int i = 0; i < n; i++)
      APS_TRY(aps_op_draw(R->family, aps_op_seed(R->d.seed, (uint64_t)step * (uint64_t)n + (uint64_t)i), &R->b, i));
    APS_TRY(aps_runner_set(R->mr, "x", R->x, (int64_t)n * l->c * plane));
    APS_TRY(aps_runner_set(R->mr, "noise", R->b.noise, n * meas));
  }
  APS_TRY(aps_op_graph_set(R->mr, R->mg, &R->mog, &R->b));
  APS_TRY(aps_runner_run(R->mr));
  if (!R->bundle)
    APS_TRY(aps_runner_get(R->mr, "y_out", R->y, n * meas));
  return aps_runner_get(R->mr, "cond", R->cond, (int64_t)n * (l->c + 2) * plane);
}

aps_status aps_distill_run_feed(void *run, aps_runner *r, int step) {
  aps_distill_run *R = run;
  int n = R->d.batch;
  APS_TRY(measure(R, &R->rng, step));
  const aps_op_layout *l = &R->l;
  if (R->d.objective != APS_DISTILL_REVERSE)
    APS_TRY(aps_runner_set(r, "x", R->x, (int64_t)n * l->c * l->h * l->w));
  if (R->d.objective == APS_DISTILL_FORWARD)
    return aps_runner_set(r, "cond", R->cond, (int64_t)n * (l->c + 2) * l->h * l->w);
  for (int i = 0; i < n; i++)
    R->sigma[i] = fmaxf(R->b.sigma_y[i], APS_SIGMA_Y_FLOOR);
  APS_TRY(aps_runner_set(r, "y", R->y, (int64_t)n * l->c * l->mh * l->mw));
  APS_TRY(aps_runner_set(r, "cond", R->cond, (int64_t)n * (l->c + 2) * l->h * l->w));
  APS_TRY(aps_runner_set(r, "sigma_y", R->sigma, n));
  APS_TRY(aps_op_graph_set(r, R->g, &R->og, &R->b));
  uint64_t bits = aps_rng_next(&R->rng);
  float seed[2] = {(float)(bits & 0xffff), (float)((bits >> 16) & 0xffff)};
  return aps_runner_set(r, "seed", seed, 2);
}

aps_status aps_distill_run_init(aps_distill_run *R) {
  uint64_t init = R->d.seed * 0x2545f4914f6cdd1dull + 7, probe = R->rng ^ 0x5851f42d4c957f2dull;
  APS_TRY(aps_flow_init_params(R->g, &R->fc, R->r, &init));
  /* ActNorm scales from the measurements on the image grid of one batch (their own
   * generator: the training batches stay those of a run without this step); the forward
   * and mixed objectives' from the samples they fit. */
  APS_TRY(measure(R, &probe, -1));
  int64_t n = R->d.batch, plane = (int64_t)R->l.h * R->l.w, c = R->l.c;
  for (int64_t i = 0; i < n; i++)
    memcpy(R->first + i * c * plane,
           R->d.objective != APS_DISTILL_REVERSE ? R->x + i * c * plane : R->cond + i * (c + 2) * plane,
           (size_t)(c * plane) * sizeof(float));
  return aps_flow_actnorm_init(R->r, &R->fc, 1, R->first, R->cond, (int)n);
}

aps_status aps_distill_run_init_from(aps_distill_run *R, const gr_st *flow) {
  aps_flow_config fc;
  APS_TRY(aps_flow_config_from_file(flow, &fc));
  char have[256], want[256];
  aps_flow_config_string(&fc, have);
  aps_flow_config_string(&R->fc, want);
  /* A glow without the pixel path may grow one (its couplings' new inputs start at zero),
   * and one without the head may grow that (its last conv starts at zero): either way the
   * grown flow starts by drawing what the file's did. */
  aps_flow_config grown = fc;
  grown.pixels = R->fc.pixels;
  grown.head = R->fc.head;
  char as_grown[256];
  aps_flow_config_string(&grown, as_grown);
  int widen = !fc.pixels && R->fc.pixels, head = !fc.head && R->fc.head;
  int grows = fc.arch == APS_FLOW_GLOW && (widen || head) && !strcmp(as_grown, want);
  if (strcmp(have, want) && !grows)
    return aps_fail(APS_ERR_INVALID_ARG, "%s: its flow is '%s', this run's is '%s'", gr_st_path(flow), have, want);
  if (grows && head) { /* the head's values; the file's weights then replace the rest */
    uint64_t init = R->d.seed * 0x2545f4914f6cdd1dull + 7;
    APS_TRY(aps_flow_init_params(R->g, &R->fc, R->r, &init));
  }
  return aps_distill_load_weights(R->g, R->r, flow, "flow.", 0,
                                  grows ? (widen ? APS_LOAD_WIDEN : 0) | (head ? APS_LOAD_GROW_HEAD : 0) : 0, "the flow");
}
