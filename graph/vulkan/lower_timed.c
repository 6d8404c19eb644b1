/* Choosing between a node's two kernel variants (lavapipe-shaped and GPU-shaped) by timing
 * them once, when the plan is compiled: the capability struct says which can run, a short
 * measurement says which is faster for this node's shape on this device. Each candidate runs
 * once to warm up and TIMED_REPS times under timestamps, on the plan's inputs but with every
 * range it writes redirected to scratch buffers, so timing never touches a tensor. The winner
 * is remembered per device and shape for the life of the process. */
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "lower.h"

enum { TIMED_REPS = 3, CACHE_MAX = 1024 };

static struct {
  pthread_mutex_t lock;
  uint64_t key[CACHE_MAX];
  uint8_t pick[CACHE_MAX];
  uint32_t count, timed, reused;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The device, both kernels' names, specialisations, workgroup counts, push constants and fp16
 * bindings. */
static uint64_t key_of(gr_lower *L, const rt_kernel_desc kd[2], const rt_dispatch d[2]) {
  const rt_caps *c = rt_device_caps(L->dev);
  uint64_t h = gr_fnv1a(GR_FNV1A_INIT, c->name, strlen(c->name));
  h = gr_fnv1a(h, &c->device_id, sizeof c->device_id);
  for (int v = 0; v < 2; v++) {
    h = gr_fnv1a(h, kd[v].shader, strlen(kd[v].shader) + 1);
    h = gr_fnv1a(h, kd[v].spec, kd[v].spec_count * sizeof *kd[v].spec);
    h = gr_fnv1a(h, d[v].groups, sizeof d[v].groups);
    h = gr_fnv1a(h, d[v].push, rt_kernel_get_info(d[v].kernel)->push_size);
    for (int b = 0; b < RT_MAX_BINDINGS; b++) /* which bindings hold halves picks the _f16 kernel */
      h = gr_fnv1a(h, &d[v].bindings[b].f16, sizeof d[v].bindings[b].f16);
  }
  return h;
}

static int cache_find(uint64_t key) {
  pthread_mutex_lock(&cache.lock);
  int pick = -1;
  for (uint32_t i = 0; i < cache.count && pick < 0; i++)
    if (cache.key[i] == key)
      pick = cache.pick[i];
  cache.reused += pick >= 0;
  pthread_mutex_unlock(&cache.lock);
  return pick;
}

static void cache_put(uint64_t key, int pick) {
  pthread_mutex_lock(&cache.lock);
  cache.timed++;
  if (cache.count < CACHE_MAX) { /* a full table only means timing again */
    cache.key[cache.count] = key;
    cache.pick[cache.count++] = (uint8_t)pick;
  }
  pthread_mutex_unlock(&cache.lock);
}

void gr_variant_stats(uint32_t *timed, uint32_t *reused) {
  pthread_mutex_lock(&cache.lock);
  *timed = cache.timed;
  *reused = cache.reused;
  pthread_mutex_unlock(&cache.lock);
}

/* Median GPU milliseconds of d over TIMED_REPS runs after one warm-up; its written ranges go to
 * scratch buffers (one per distinct range, so ranges that alias still alias). */
static aps_status time_dispatch(gr_lower *L, const rt_dispatch *d, double *ms) {
  const rt_kernel_info *info = rt_kernel_get_info(d->kernel);
  rt_dispatch t = *d;
  rt_buffer *scratch[RT_MAX_BINDINGS] = {0};
  aps_status s = APS_OK;
  for (uint32_t b = 0; b < info->binding_count && s == APS_OK; b++) {
    if (!(info->access[b] & RT_ACCESS_WRITE))
      continue;
    const rt_binding *x = &d->bindings[b];
    for (uint32_t a = 0; a < b && !scratch[b]; a++)
      if (scratch[a] && x->buffer == d->bindings[a].buffer && x->offset == d->bindings[a].offset &&
          x->size == d->bindings[a].size)
        t.bindings[b].buffer = t.bindings[a].buffer, t.bindings[b].offset = 0;
    if (t.bindings[b].buffer != x->buffer)
      continue;
    uint64_t size = x->size ? x->size : rt_buffer_size(x->buffer) - x->offset;
    s = rt_buffer_create(L->dev, size ? size : 4, RT_MEMORY_DEVICE, &scratch[b]);
    if (s == APS_OK)
      t.bindings[b] = (rt_binding){scratch[b], 0, x->size, x->f16};
  }
  rt_stream *st = NULL;
  if (s == APS_OK)
    s = rt_stream_create(L->dev, &(rt_stream_desc){.max_timestamps = TIMED_REPS + 1}, &st);
  if (s == APS_OK)
    s = rt_stream_begin(st);
  for (int r = 0; r <= TIMED_REPS && s == APS_OK; r++)
    s = rt_stream_dispatch(st, &t);
  if (s == APS_OK && (s = rt_stream_end(st)) == APS_OK)
    s = rt_stream_run(st);
  rt_timing tm[TIMED_REPS + 1];
  if (s == APS_OK && rt_stream_timings(st, tm, TIMED_REPS + 1) != TIMED_REPS + 1)
    s = aps_fail(APS_ERR_UNSUPPORTED, "no timestamps came back");
  if (s == APS_OK) { /* the median of tm[1..TIMED_REPS] by insertion sort */
    double v[TIMED_REPS];
    for (int i = 0; i < TIMED_REPS; i++) {
      int j = i;
      for (; j > 0 && v[j - 1] > tm[i + 1].ms; j--)
        v[j] = v[j - 1];
      v[j] = tm[i + 1].ms;
    }
    *ms = v[TIMED_REPS / 2];
  }
  rt_stream_destroy(st);
  for (int b = 0; b < RT_MAX_BINDINGS; b++)
    rt_buffer_destroy(scratch[b]);
  return s;
}

aps_status gr_lower_pick(gr_lower *L, const gr_node *n, const rt_kernel_desc kd[2], rt_dispatch d[2]) {
  for (int v = 0; v < 2; v++)
    APS_TRY(gr_lower_kernel(L, n, &kd[v], &d[v]));
  uint64_t key = key_of(L, kd, d);
  int pick = cache_find(key);
  if (pick < 0) {
    double ms[2];
    for (int v = 0; v < 2; v++) {
      aps_status s = time_dispatch(L, &d[v], &ms[v]);
      if (s != APS_OK)
        return aps_fail_context(s, "node %s: timing kernel %s: ", n->name, kd[v].shader);
    }
    pick = ms[1] < ms[0];
    cache_put(key, pick);
    if (getenv("APS_VARIANT_LOG"))
      fprintf(stderr, "aps: node %s: %s %.4f ms, %s %.4f ms: %s\n", n->name, kd[0].shader, ms[0], kd[1].shader, ms[1],
              kd[pick].shader);
  }
  aps_status s = rt_stream_dispatch(L->stream, &d[pick]);
  return s == APS_OK ? APS_OK : aps_fail_context(s, "node %s: ", n->name);
}
