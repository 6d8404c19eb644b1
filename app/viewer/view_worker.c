/* The sampling thread (view_worker.h). One mutex guards the request and the published
 * result; the flow runs outside it. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "view_worker.h"

struct view_worker {
  aps_posterior *p;
  int c, h, w;
  int64_t dim, hw;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  int quit;
  /* the request, under lock */
  view_request req;
  float *req_clean, *req_map;
  int has_req;
  uint64_t done_version; /* the last version sampled at least once (or refused) */
  int done_any;
  /* the published result, under lock */
  view_result pub;
  /* the worker's own state, outside the lock */
  view_result mine;
  double *sum, *sumsq;
};

aps_status view_result_alloc(view_result *r, int c, int h, int w) {
  size_t dim = (size_t)c * (size_t)h * (size_t)w;
  memset(r, 0, sizeof *r);
  r->samples = calloc(VIEW_K_MAX * dim, sizeof *r->samples);
  r->mean = calloc(dim, sizeof *r->mean);
  r->std = calloc(dim, sizeof *r->std);
  r->measurement = calloc(dim, sizeof *r->measurement);
  r->damaged = calloc((size_t)h * (size_t)w, sizeof *r->damaged);
  if (!r->samples || !r->mean || !r->std || !r->measurement || !r->damaged) {
    view_result_free(r);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory for %d samples of %dx%dx%d", VIEW_K_MAX, c, h,
                    w);
  }
  return APS_OK;
}

void view_result_free(view_result *r) {
  free(r->samples), free(r->mean), free(r->std), free(r->measurement), free(r->damaged);
  memset(r, 0, sizeof *r);
}

/* Copies src into dst, arrays included (both allocated for the same size). */
static void result_copy(view_result *dst, const view_result *src, int64_t dim, int64_t hw) {
  float *s = dst->samples, *m = dst->mean, *sd = dst->std, *y = dst->measurement, *d = dst->damaged;
  *dst = *src;
  dst->samples = s, dst->mean = m, dst->std = sd, dst->measurement = y, dst->damaged = d;
  memcpy(s, src->samples, (size_t)(src->k * dim) * sizeof *s);
  memcpy(m, src->mean, (size_t)dim * sizeof *m);
  memcpy(sd, src->std, (size_t)dim * sizeof *sd);
  memcpy(y, src->measurement, (size_t)dim * sizeof *y);
  memcpy(d, src->damaged, (size_t)hw * sizeof *d);
}

/* Sets the measurement of q on the posterior; an error message into mine.error. */
static int set_measurement(view_worker *w, const view_request *q) {
  aps_posterior_operator op = {.map = q->map, .sigma_b = q->sigma_b, .sigma_y = q->sigma_y};
  /* a fixed noise seed: the measurement changes only where the person changed it */
  aps_status s = aps_posterior_set_clean_operator(w->p, q->clean, &op, 1);
  if (s == APS_OK)
    s = aps_posterior_get_measurement(w->p, w->mine.measurement);
  if (s == APS_OK)
    s = aps_posterior_get_damaged(w->p, w->mine.damaged);
  if (s != APS_OK) {
    snprintf(w->mine.error, sizeof w->mine.error, "%s", aps_last_error());
    return 0;
  }
  w->mine.error[0] = 0;
  memset(w->sum, 0, (size_t)w->dim * sizeof *w->sum);
  memset(w->sumsq, 0, (size_t)w->dim * sizeof *w->sumsq);
  w->mine.drawn = 0;
  return 1;
}

/* Folds the batch into the running moments (k − 1 in the denominator). */
static void accumulate(view_worker *w, int k) {
  const float *x = w->mine.samples;
  for (int j = 0; j < k; j++)
    for (int64_t i = 0; i < w->dim; i++) {
      double v = x[j * w->dim + i];
      w->sum[i] += v, w->sumsq[i] += v * v;
    }
  int64_t n = w->mine.drawn += k;
  for (int64_t i = 0; i < w->dim; i++) {
    double m = w->sum[i] / (double)n;
    double var = n > 1 ? (w->sumsq[i] - (double)n * m * m) / (double)(n - 1) : 0.0;
    w->mine.mean[i] = (float)m;
    w->mine.std[i] = (float)sqrt(var > 0 ? var : 0);
  }
}

static void *run(void *arg) {
  view_worker *w = arg;
  view_request q = {0};
  float *clean = malloc((size_t)w->dim * sizeof *clean), *map = malloc((size_t)w->hw * sizeof *map);
  uint64_t set_version = 0, seed = 1000;
  int have_set = 0;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    /* sleep while there is nothing to do: no request, or paused (or refused) with this
     * version already answered */
    while (!w->quit && (!w->has_req || ((w->req.paused || w->pub.error[0]) && w->done_any &&
                                        w->done_version == w->req.version)))
      pthread_cond_wait(&w->wake, &w->lock);
    if (w->quit || !clean || !map)
      break;
    q = w->req;
    if (!have_set || q.version != set_version) {
      memcpy(clean, w->req_clean, (size_t)w->dim * sizeof *clean);
      memcpy(map, w->req_map, (size_t)w->hw * sizeof *map);
    }
    pthread_mutex_unlock(&w->lock);
    q.clean = clean, q.map = map;
    int ok = 1;
    if (!have_set || q.version != set_version) {
      ok = set_measurement(w, &q);
      have_set = ok, set_version = q.version;
    }
    if (ok) {
      if (aps_posterior_sample(w->p, q.k, seed++, w->mine.samples) == APS_OK) {
        w->mine.k = q.k;
        accumulate(w, q.k);
        w->mine.ms_per_sample = aps_posterior_ms_per_sample(w->p);
        w->mine.total_ms += w->mine.ms_per_sample * q.k, w->mine.total_samples += q.k;
      } else {
        snprintf(w->mine.error, sizeof w->mine.error, "%s", aps_last_error());
        have_set = 0;
      }
    }
    w->mine.version = q.version;
    w->mine.seq++;
    pthread_mutex_lock(&w->lock);
    result_copy(&w->pub, &w->mine, w->dim, w->hw);
    w->done_version = q.version, w->done_any = 1;
  }
  pthread_mutex_unlock(&w->lock);
  free(clean), free(map);
  return NULL;
}

aps_status view_worker_start(aps_posterior *p, view_worker **out) {
  const aps_posterior_info *in = aps_posterior_get_info(p);
  view_worker *w = calloc(1, sizeof *w);
  if (!w)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  w->p = p, w->c = in->channels, w->h = in->height, w->w = in->width;
  w->hw = (int64_t)w->h * w->w, w->dim = w->c * w->hw;
  aps_status s = view_result_alloc(&w->pub, w->c, w->h, w->w);
  if (s == APS_OK)
    s = view_result_alloc(&w->mine, w->c, w->h, w->w);
  w->req_clean = malloc((size_t)w->dim * sizeof *w->req_clean);
  w->req_map = malloc((size_t)w->hw * sizeof *w->req_map);
  w->sum = calloc((size_t)w->dim, sizeof *w->sum);
  w->sumsq = calloc((size_t)w->dim, sizeof *w->sumsq);
  if (s == APS_OK && (!w->req_clean || !w->req_map || !w->sum || !w->sumsq))
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->wake, NULL);
  if (s == APS_OK && pthread_create(&w->thread, NULL, run, w) != 0)
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "cannot start the sampling thread");
  if (s != APS_OK) {
    view_result_free(&w->pub), view_result_free(&w->mine);
    free(w->req_clean), free(w->req_map), free(w->sum), free(w->sumsq), free(w);
    return s;
  }
  *out = w;
  return APS_OK;
}

void view_worker_submit(view_worker *w, const view_request *q) {
  pthread_mutex_lock(&w->lock);
  int changed = !w->has_req || q->version != w->req.version || q->k != w->req.k || q->paused != w->req.paused;
  if (changed) {
    if (!w->has_req || q->version != w->req.version) {
      memcpy(w->req_clean, q->clean, (size_t)w->dim * sizeof *w->req_clean);
      memcpy(w->req_map, q->map, (size_t)w->hw * sizeof *w->req_map);
    }
    w->req = *q;
    w->has_req = 1;
    pthread_cond_signal(&w->wake);
  }
  pthread_mutex_unlock(&w->lock);
}

int view_worker_fetch(view_worker *w, view_result *out) {
  pthread_mutex_lock(&w->lock);
  int fresh = w->pub.seq > out->seq;
  if (fresh)
    result_copy(out, &w->pub, w->dim, w->hw);
  pthread_mutex_unlock(&w->lock);
  return fresh;
}

void view_worker_stop(view_worker *w) {
  if (!w)
    return;
  pthread_mutex_lock(&w->lock);
  w->quit = 1;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->wake);
  pthread_mutex_destroy(&w->lock);
  view_result_free(&w->pub), view_result_free(&w->mine);
  free(w->req_clean), free(w->req_map), free(w->sum), free(w->sumsq), free(w);
}
