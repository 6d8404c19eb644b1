#include "elbo.h"

#include <math.h>
#include <stdlib.h>

double aps_elbo_draw_t(const aps_sde *s, uint64_t *rng) { return aps_sde_importance_inv(s, aps_rng_uniform(rng)); }

double aps_elbo_bits_per_dim(double nelbo_nats, double dim) { return (nelbo_nats / dim + log(127.5)) / log(2.0); }

aps_status aps_elbo_estimate(aps_runner *r, const aps_prior_config *c, int batch, const aps_dataset *ds, int64_t n,
                             int draws, uint64_t seed, aps_elbo_result *out) {
  int ch = c->unet.image_channels, sz = c->unet.image_size;
  if (aps_dataset_channels(ds) != ch || aps_dataset_height(ds) != sz || aps_dataset_width(ds) != sz)
    return aps_fail(APS_ERR_INVALID_ARG, "%s: images are %dx%dx%d, the model wants %dx%dx%d", aps_dataset_source(ds),
                    aps_dataset_channels(ds), aps_dataset_height(ds), aps_dataset_width(ds), ch, sz, sz);
  if (batch < 1 || draws < 1)
    return aps_fail(APS_ERR_INVALID_ARG, "ELBO: batch %d and draws %d must be at least 1", batch, draws);
  int64_t total = aps_dataset_count(ds), per = (int64_t)ch * sz * sz;
  if (n <= 0 || n > total)
    n = total;
  float *buf[4] = {0}, *nb = malloc((size_t)batch * sizeof *nb), *tb = malloc((size_t)batch * sizeof *tb);
  for (int k = 0; k < 4; k++)
    buf[k] = malloc((size_t)(batch * per) * sizeof(float));
  aps_status s = APS_OK;
  if (!buf[0] || !buf[1] || !buf[2] || !buf[3] || !nb || !tb)
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  uint64_t rng = 0xda942042e4dd58b5ull ^ seed;
  double sum = 0, sumsq = 0, count = 0;
  const char *names[4] = {"x", "e_t", "e_1", "e_0"};
  const float *src = aps_dataset_data(ds);
  for (int64_t start = 0; s == APS_OK && start < n * draws; start += batch) {
    int64_t m = n * draws - start < batch ? n * draws - start : batch;
    for (int64_t i = 0; i < batch; i++) { /* a short last batch repeats its first image; only m count */
      int64_t img = (start + (i < m ? i : 0)) % n;
      for (int64_t k = 0; k < per; k++) /* uniform dequantisation over one 8-bit level */
        buf[0][i * per + k] = src[img * per + k] + (float)((aps_rng_next(&rng) >> 40) * 0x1p-24 / 127.5);
      tb[i] = (float)aps_elbo_draw_t(&c->sde, &rng);
    }
    for (int k = 1; k < 4; k++)
      for (int64_t i = 0; i < batch * per; i++)
        buf[k][i] = aps_rng_normal(&rng);
    for (int k = 0; s == APS_OK && k < 4; k++)
      s = aps_runner_set(r, names[k], buf[k], batch * per);
    if (s == APS_OK && (s = aps_runner_set(r, "t", tb, batch)) == APS_OK && (s = aps_runner_run(r)) == APS_OK)
      s = aps_runner_get(r, "nelbo", nb, batch);
    for (int64_t i = 0; s == APS_OK && i < m; i++) {
      if (!isfinite(nb[i]))
        s = aps_fail(APS_ERR_INVALID_ARG, "ELBO: the network gave a non-finite value for image %lld",
                     (long long)((start + i) % n));
      double bpd = aps_elbo_bits_per_dim(nb[i], (double)per);
      sum += bpd, sumsq += bpd * bpd, count++;
    }
  }
  if (s == APS_OK) {
    double mean = sum / count, sd = sqrt(fmax(sumsq / count - mean * mean, 0.0));
    *out = (aps_elbo_result){.bits_per_dim = mean, .stderr_bpd = sd / sqrt(count), .samples = (int64_t)count};
  }
  for (int k = 0; k < 4; k++)
    free(buf[k]);
  free(nb), free(tb);
  return s;
}
