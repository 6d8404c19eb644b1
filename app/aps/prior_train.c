#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prior.h"

aps_status aps_prior_init_params(const gr_graph *g, aps_runner *r, uint64_t *rng) {
  gr_tensor t;
  for (uint32_t i = 0; (t = gr_param_at(g, i)); i++) {
    if (gr_tensor_is_state(g, t))
      continue;
    const char *name = gr_tensor_name(g, t), *dot = strrchr(name, '.');
    const char *leaf = dot ? dot + 1 : name;
    gr_shape s = gr_tensor_shape(g, t);
    int64_t n = gr_shape_count(s), fan_in = s.rank == 4 ? n / s.d[0] : s.rank == 2 ? s.d[0] : 1;
    float bound = 1.0f / sqrtf((float)fan_in), *v = malloc((size_t)n * sizeof *v);
    if (!v)
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
    for (int64_t k = 0; k < n; k++)
      v[k] = !strcmp(leaf, "gamma")    ? 1.0f
             : !strcmp(leaf, "weight") ? bound * (2.0f * (float)(aps_rng_next(rng) >> 40) * 0x1p-24f - 1.0f)
                                       : 0.0f;
    aps_status st = aps_runner_set(r, name, v, n);
    free(v);
    APS_TRY(st);
  }
  return APS_OK;
}

aps_status aps_prior_feed_fn(void *feed, aps_runner *r, int step) {
  (void)step;
  aps_prior_feed *f = feed;
  const aps_dataset *d = f->data;
  int64_t n = (int64_t)f->batch * aps_dataset_channels(d) * aps_dataset_height(d) * aps_dataset_width(d);
  if (!f->buf && !(f->buf = malloc((size_t)n * sizeof *f->buf)))
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  APS_TRY(aps_dataset_batch(d, &f->rng, f->batch, f->hflip, f->buf));
  APS_TRY(aps_runner_set(r, "x", f->buf, n));
  uint64_t bits = aps_rng_next(&f->rng);
  float seed[2] = {(float)(bits & 0xffff), (float)((bits >> 16) & 0xffff)};
  return aps_runner_set(r, "seed", seed, 2);
}
