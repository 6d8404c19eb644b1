/* The sampling thread: it owns the posterior while it runs, so the UI thread never waits
 * on a flow evaluation. The UI hands it the current measurement (clean image, painted map,
 * σ_b, σ_y) and K whenever they change; the worker sets the operator when the measurement
 * changed, draws K samples from fresh z, folds them into running moments of every sample
 * drawn for this measurement, and publishes the batch. The UI copies the latest finished
 * batch when there is one and otherwise keeps drawing the previous one. Both sides hold the
 * lock only to copy a few kilobytes. */
#ifndef APS_VIEW_WORKER_H
#define APS_VIEW_WORKER_H

#include <stdint.h>

#include "aps.h"

enum { VIEW_K_MAX = 32 };

typedef struct view_worker view_worker;

/* What the UI wants sampled. version changes whenever the measurement does. */
typedef struct view_request {
  const float *clean; /* [C, H, W] */
  const float *map;   /* [H, W] */
  float sigma_b, sigma_y;
  int k; /* 1..VIEW_K_MAX */
  int paused;
  uint64_t version;
} view_request;

/* A finished batch, with the measurement and running moments it belongs to. */
typedef struct view_result {
  uint64_t seq;          /* batches finished since start (0: none yet) */
  uint64_t version;      /* the request version it answers */
  int k;                 /* samples in this batch */
  int64_t drawn;         /* samples behind the running moments */
  float *samples;        /* [VIEW_K_MAX, C, H, W] */
  float *mean, *std;     /* [C, H, W]: running over every sample of this measurement */
  float *measurement;    /* [C, H, W] as the model sees it */
  float *damaged;        /* [H, W] */
  double ms_per_sample;  /* of this batch */
  double total_ms;       /* sampling time of every batch since start ... */
  int64_t total_samples; /* ... and their samples */
  char error[512];       /* set when the measurement was refused */
} view_result;

aps_status view_result_alloc(view_result *r, int c, int h, int w);
void view_result_free(view_result *r);

/* Starts the thread; p stays owned by the caller but is used only by the worker until stop. */
aps_status view_worker_start(aps_posterior *p, view_worker **out);
/* Copies the request (its arrays too) if anything in it changed, and wakes the worker. */
void view_worker_submit(view_worker *w, const view_request *q);
/* Copies the latest batch into out when it is newer than out->seq; 1 if it did. Never waits
 * for sampling. */
int view_worker_fetch(view_worker *w, view_result *out);
/* Asks the thread to stop after its current batch and joins it. NULL is fine. */
void view_worker_stop(view_worker *w);

#endif
