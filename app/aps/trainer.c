#include "trainer.h"

#include "aps_clock.h"
#include "aps_file.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

/* The loss log is kept in memory and replaced whole (aps_file_write_atomic) before every
 * checkpoint, every 30 s and at the end: a kill leaves the last complete log, and because it
 * is written before the checkpoint it never ends before the checkpoint's step. */
typedef struct loss_log {
  const char *path;
  char *text;
  size_t n, cap;
  double written_at;
} loss_log;

static const char LOG_HEADER[] = "step,loss,grad_norm,lr,seconds\n";

static aps_status log_append(loss_log *l, const char *line, size_t len) {
  if (l->n + len + 1 > l->cap) {
    size_t cap = l->cap ? l->cap : 4096;
    while (cap < l->n + len + 1)
      cap *= 2;
    char *grown = realloc(l->text, cap);
    if (!grown)
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory for the loss log", l->path);
    l->text = grown, l->cap = cap;
  }
  memcpy(l->text + l->n, line, len);
  l->n += len;
  l->text[l->n] = 0;
  return APS_OK;
}

/* A resumed run keeps the old log's rows up to the checkpoint's step: the steps after it run
 * again and would otherwise appear twice. */
static aps_status log_open(loss_log *l, const char *path, int resume, int step) {
  l->path = path;
  APS_TRY(log_append(l, LOG_HEADER, sizeof LOG_HEADER - 1));
  if (!resume || access(path, F_OK))
    return APS_OK;
  unsigned char *old = NULL;
  size_t size = 0;
  APS_TRY(aps_file_read(path, (uint64_t)1 << 32, &old, &size));
  aps_status s = APS_OK;
  char *line = strchr((char *)old, '\n');
  while (s == APS_OK && line && *++line) {
    char *next = strchr(line, '\n'), *end;
    long at = strtol(line, &end, 10);
    if (end == line || *end != ',' || !next)
      break; /* a torn last row of an older aps: dropped */
    if (at >= 1 && at <= step)
      s = log_append(l, line, (size_t)(next - line + 1));
    line = next;
  }
  free(old);
  return s;
}

static aps_status log_write(loss_log *l) {
  if (!l->path)
    return APS_OK;
  l->written_at = aps_now_s();
  aps_status s = aps_file_write_atomic(l->path, &(aps_file_part){l->text, l->n}, 1);
  return s == APS_OK ? s : aps_fail_context(s, "the loss log: ");
}

static aps_status save(aps_runner *r, const aps_train_desc *d, int step) {
  enum { MAX_META = 16 };
  if (d->n_meta > MAX_META - 2)
    return aps_fail(APS_ERR_INVALID_ARG, "trainer: at most %d metadata entries", MAX_META - 2);
  gr_st_meta meta[MAX_META];
  char step_s[32], rng_s[32];
  snprintf(step_s, sizeof step_s, "%d", step);
  snprintf(rng_s, sizeof rng_s, "%016" PRIx64, d->rng ? *d->rng : 0);
  memcpy(meta, d->meta, d->n_meta * sizeof *meta);
  meta[d->n_meta] = (gr_st_meta){"aps.step", step_s};
  meta[d->n_meta + 1] = (gr_st_meta){"aps.rng", rng_s};
  return aps_runner_save(r, d->checkpoint, APS_SAVE_ALL, meta, d->n_meta + 2);
}

/* Loads the checkpoint, checking its metadata matches the model's; returns its step. */
static aps_status restore(aps_runner *r, const aps_train_desc *d, int *step) {
  gr_st *st = NULL;
  aps_status s = gr_st_open(d->checkpoint, &st);
  if (s != APS_OK)
    return aps_fail_context(s, "--resume: ");
  for (uint32_t i = 0; s == APS_OK && i + d->n_meta_info < d->n_meta; i++) {
    const char *have = gr_st_metadata(st, d->meta[i].key);
    if (!have || strcmp(have, d->meta[i].value))
      s = aps_fail(APS_ERR_FORMAT, "%s: metadata %s is %s%s%s but this run has \"%s\"", d->checkpoint, d->meta[i].key,
                   have ? "\"" : "", have ? have : "missing", have ? "\"" : "", d->meta[i].value);
  }
  const char *step_s = s == APS_OK ? gr_st_metadata(st, "aps.step") : NULL;
  const char *rng_s = s == APS_OK ? gr_st_metadata(st, "aps.rng") : NULL;
  char *end = NULL;
  long v = step_s ? strtol(step_s, &end, 10) : -1;
  if (s == APS_OK && (!step_s || !rng_s || *end || v < 0 || v > 1L << 30))
    s = aps_fail(APS_ERR_FORMAT, "%s: not a training checkpoint (metadata aps.step / aps.rng missing or malformed)",
                 d->checkpoint);
  uint64_t rng = 0;
  if (s == APS_OK && (sscanf(rng_s, "%16" SCNx64, &rng) != 1 || strlen(rng_s) != 16))
    s = aps_fail(APS_ERR_FORMAT, "%s: metadata aps.rng \"%s\" is not 16 hex digits", d->checkpoint, rng_s);
  if (s == APS_OK)
    s = aps_runner_load(r, st);
  gr_st_close(st);
  APS_TRY(s);
  if (d->rng)
    *d->rng = rng;
  *step = (int)v;
  return APS_OK;
}

static void progress(const aps_train_desc *d, int tty, int step, float loss, double rate, double elapsed) {
  double eta = rate > 0 ? (d->steps - step) / rate : 0;
  int width = 24, filled = (int)((double)width * step / d->steps);
  if (tty) {
    char bar[32];
    for (int i = 0; i < width; i++)
      bar[i] = i < filled ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] step %d/%d  loss %.5f  %.2f steps/s  ETA %02d:%02d:%02d ", bar, step, d->steps, loss, rate,
            (int)(eta / 3600), (int)(eta / 60) % 60, (int)eta % 60);
  } else {
    fprintf(stderr, "step %d/%d loss %.5f %.2f steps/s elapsed %.0f s ETA %.0f s\n", step, d->steps, loss, rate,
            elapsed, eta);
  }
}

aps_status aps_train(aps_runner *r, const aps_train_desc *d, aps_train_result *out) {
  memset(out, 0, sizeof *out);
  if (d->steps < 1 || !d->feed || (d->resume && !d->checkpoint))
    return aps_fail(APS_ERR_INVALID_ARG, "trainer: need steps >= 1, a feed function%s",
                    d->resume ? " and a checkpoint path to resume from" : "");
  const char *names[] = {"the model file", "the checkpoint", "the loss log"};
  const char *paths[] = {d->output, d->checkpoint, d->csv};
  APS_TRY(aps_file_check_outputs(names, paths, 3));
  int step = 0;
  if (d->checkpoint)
    aps_file_remove_stale_temporaries(d->checkpoint);
  if (d->resume) {
    APS_TRY(restore(r, d, &step));
    if (!d->quiet)
      fprintf(stderr, "aps: resumed from %s at step %d\n", d->checkpoint, step);
  }
  loss_log csv = {0};
  aps_status s = d->csv ? log_open(&csv, d->csv, d->resume, step) : APS_OK;
  if (s != APS_OK) {
    free(csv.text);
    return s;
  }
  struct sigaction sa = {.sa_handler = on_sigint}, old;
  sigemptyset(&sa.sa_mask);
  interrupted = 0;
  sigaction(SIGINT, &sa, &old);
  int tty = !d->quiet && isatty(STDERR_FILENO);
  double t0 = aps_now_s(), last_print = 0;
  out->first_step = step + 1;
  int has_norm = aps_runner_has(r, "grad_norm");
  while (step < d->steps && !interrupted) {
    step++;
    float lr = gr_schedule_lr(&d->schedule, step), fstep = (float)step, loss = 0, norm = 0;
    if ((s = aps_runner_set(r, "optim.lr", &lr, 1)) != APS_OK || (s = aps_runner_set(r, "optim.step", &fstep, 1)) != APS_OK ||
        (s = d->feed(d->user, r, step)) != APS_OK || (s = aps_runner_run(r)) != APS_OK ||
        (s = aps_runner_get(r, "loss", &loss, 1)) != APS_OK)
      break;
    if (has_norm)
      aps_runner_get(r, "grad_norm", &norm, 1);
    if (!isfinite(loss)) {
      s = aps_fail(APS_ERR_INVALID_ARG, "step %d: the loss is %s; stopping without saving (the last checkpoint, if "
                   "any, is intact)", step, isnan(loss) ? "NaN" : "Inf");
      break;
    }
    double elapsed = aps_now_s() - t0;
    out->last_step = step;
    out->last_loss = loss;
    if (d->csv) {
      char row[160];
      int len = snprintf(row, sizeof row, "%d,%.6g,%.6g,%.6g,%.3f\n", step, loss, norm, lr, elapsed);
      if ((s = log_append(&csv, row, (size_t)len)) != APS_OK ||
          (aps_now_s() - csv.written_at > 30.0 && (s = log_write(&csv)) != APS_OK))
        break;
    }
    int done = step == d->steps;
    if (!d->quiet && (done || (tty ? elapsed - last_print > 0.25 : elapsed - last_print > 30.0 || step == out->first_step))) {
      progress(d, tty, step, loss, (step - out->first_step + 1) / elapsed, elapsed);
      last_print = elapsed;
    }
    if (d->checkpoint && (done || interrupted || (d->checkpoint_every > 0 && step % d->checkpoint_every == 0))) {
      if ((s = log_write(&csv)) != APS_OK || (s = save(r, d, step)) != APS_OK)
        break;
    }
  }
  if (tty)
    fputc('\n', stderr);
  sigaction(SIGINT, &old, NULL);
  out->interrupted = interrupted && s == APS_OK;
  out->seconds = aps_now_s() - t0;
  if (s == APS_OK) {
    s = log_write(&csv);
  } else if (d->csv) { /* the rows up to a failure (a NaN loss) are kept; the failure's message too */
    char *why = strdup(aps_last_error());
    if (log_write(&csv) != APS_OK && why)
      aps_fail(s, "%s", why);
    free(why);
  }
  free(csv.text);
  if (out->interrupted && d->checkpoint)
    fprintf(stderr, "aps: interrupted at step %d; checkpoint %s saved (continue with --resume)\n", step, d->checkpoint);
  return s;
}
