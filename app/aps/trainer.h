/* The training loop every trainer of the method shares: the learning-rate schedule, the
 * batches, a progress line, a CSV log of losses, periodic checkpoints, --resume, and a
 * clean stop on SIGINT (a checkpoint, then return).
 *
 * The graph must have the inputs "optim.lr" and "optim.step" and the output "loss" (and
 * may have "grad_norm"); `feed` sets everything else for a step. A checkpoint is every
 * parameter and state (weights, Adam moments, EMA) plus metadata: the caller's (the model
 * config), "aps.step" and "aps.rng" (the host generator's state after that step), so a
 * resumed run continues exactly where the checkpoint was written. Checkpoints are written
 * to a temporary file, fsync'd and renamed; stale temporary files of a killed run are
 * removed at start. Every output is checked first (aps_file_check_outputs). The CSV log is
 * replaced whole, atomically, before each checkpoint, every 30 s and at the end; a resumed
 * run keeps its rows up to the checkpoint's step, so no step appears twice. A run whose loss becomes NaN/Inf stops with an error and does not
 * write a checkpoint over good weights. */
#ifndef APS_TRAINER_H
#define APS_TRAINER_H
#include <stdint.h>

#include "optim.h"
#include "runner.h"

typedef struct aps_train_desc {
  int steps;                 /* train until this step (counted from 1) */
  gr_schedule schedule;
  const char *checkpoint;    /* path; NULL: no checkpoints */
  int checkpoint_every;      /* steps between checkpoints; 0 = only at the end */
  int resume;                /* continue from `checkpoint` (which must exist) */
  const char *csv;           /* NULL: no log; on resume, continued after the checkpoint's step */
  const char *output;        /* the model file the caller writes after training (NULL: none):
                                checked, with the others, to be a distinct regular file */
  const gr_st_meta *meta;    /* the model's metadata, checked to match on resume ... */
  uint32_t n_meta;
  uint32_t n_meta_info;      /* ... but for its last n_meta_info entries, saved for information
                                only (a file's path, where its digest is what is compared) */
  uint64_t *rng;             /* the caller's host generator state, saved and restored */
  aps_status (*feed)(void *user, aps_runner *r, int step);
  void *user;
  int quiet;                 /* no progress output */
} aps_train_desc;

typedef struct aps_train_result {
  int first_step, last_step; /* the steps this call ran */
  float last_loss;
  double seconds;
  int interrupted;           /* stopped by SIGINT (after a checkpoint) */
} aps_train_result;

aps_status aps_train(aps_runner *r, const aps_train_desc *d, aps_train_result *out);
#endif
