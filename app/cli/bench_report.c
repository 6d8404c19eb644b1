#include "bench_report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aps_file.h"

#ifndef APS_GIT_COMMIT
#define APS_GIT_COMMIT "unknown"
#endif
#ifndef APS_VERSION
#define APS_VERSION "unknown"
#endif

enum { MAX_SUITES = 16, MAX_FIGURES = 512, NAME = 128 };

typedef struct figure {
  bench_figure f;
  char name[NAME], unit[32];
  int suite;
} figure;

typedef struct suite {
  char name[32], device[256], driver[256];
  uint32_t vulkan_api;
} suite;

/* One report per process: the suites run one after another in it. */
static struct {
  suite suites[MAX_SUITES];
  int nsuites, current;
  figure figures[MAX_FIGURES];
  int nfigures, dropped;
} rep = {.current = -1};

void bench_report_suite(const char *name) {
  for (int i = 0; i < rep.nsuites; i++)
    if (!strcmp(rep.suites[i].name, name)) {
      rep.current = i;
      return;
    }
  if (rep.nsuites == MAX_SUITES) {
    rep.current = -1;
    return;
  }
  rep.current = rep.nsuites++;
  snprintf(rep.suites[rep.current].name, sizeof rep.suites[0].name, "%s", name);
}

void bench_report_device(const char *device, const char *driver, uint32_t vulkan_api) {
  if (rep.current < 0)
    return;
  suite *s = &rep.suites[rep.current];
  snprintf(s->device, sizeof s->device, "%s", device ? device : "");
  snprintf(s->driver, sizeof s->driver, "%s", driver ? driver : "");
  s->vulkan_api = vulkan_api;
}

void bench_report_add(const bench_figure *f) {
  if (rep.current < 0 || rep.nfigures == MAX_FIGURES) {
    rep.dropped++;
    return;
  }
  figure *g = &rep.figures[rep.nfigures++];
  g->f = *f;
  snprintf(g->name, sizeof g->name, "%s", f->name);
  snprintf(g->unit, sizeof g->unit, "%s", f->unit);
  g->suite = rep.current;
}

void bench_report_stat(const char *name, const char *unit, bench_stat s, int batch) {
  bench_report_add(&(bench_figure){.name = name, .unit = unit, .s = s, .batch = batch});
}

/* ---- the JSON text, grown in one buffer */

typedef struct text {
  char *s;
  size_t n, cap;
  int oom;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = t->oom ? 0 : vsnprintf(t->s ? t->s + t->n : NULL, t->s ? t->cap - t->n : 0, fmt, ap);
    va_end(ap);
    if (t->oom || k < 0)
      return;
    if (t->s && t->n + (size_t)k < t->cap) {
      t->n += (size_t)k;
      return;
    }
    size_t cap = (t->cap + (size_t)k + 1) * 2;
    char *s = realloc(t->s, cap);
    if (!s) {
      t->oom = 1;
      return;
    }
    t->s = s, t->cap = cap;
  }
}

/* A JSON string: quotes, backslashes and control characters escaped (device names come from
 * drivers; the bytes are otherwise passed through as the driver's UTF-8). */
static void put_string(text *t, const char *s) {
  put(t, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      put(t, "\\%c", c);
    else if (c < 0x20)
      put(t, "\\u%04x", c);
    else
      put(t, "%c", c);
  }
  put(t, "\"");
}

/* Numbers JSON can hold: a NaN or infinity (a failed derivation) is null. */
static void put_number(text *t, double v) {
  if (isfinite(v))
    put(t, "%.9g", v);
  else
    put(t, "null");
}

/* A string, or null when it is not known. */
static void put_known(text *t, const char *s) {
  if (*s)
    put_string(t, s);
  else
    put(t, "null");
}

static void put_api(text *t, uint32_t v) {
  if (!v) {
    put(t, "null");
    return;
  }
  char s[32];
  snprintf(s, sizeof s, "%u.%u.%u", v >> 22 & 0x7Fu, v >> 12 & 0x3FFu, v & 0xFFFu);
  put_string(t, s);
}

static void put_figure(text *t, const figure *g) {
  const bench_figure *f = &g->f;
  put(t, "{\"name\": ");
  put_string(t, g->name);
  put(t, ", \"unit\": ");
  put_string(t, g->unit);
  put(t, ", \"median\": ");
  put_number(t, f->s.median);
  put(t, ", \"min\": ");
  put_number(t, f->s.min);
  put(t, ", \"max\": ");
  put_number(t, f->s.max);
  put(t, ", \"repeats\": %d", f->s.repeats);
  if (f->batch)
    put(t, ", \"batch\": %d", f->batch);
  if (f->device_ms > 0) {
    put(t, ", \"device_ms\": ");
    put_number(t, f->device_ms);
  }
  if (f->peak_memory_bytes > 0)
    put(t, ", \"peak_memory_bytes\": %lld", (long long)f->peak_memory_bytes);
  if (f->counts)
    put(t, ", \"dispatches\": %u, \"barriers\": %u", f->dispatches, f->barriers);
  put(t, "}");
}

int bench_report_write(const char *path, int quick) {
  if (rep.dropped) {
    fprintf(stderr, "aps bench: --json %s: %d figures did not fit the report (at most %d)\n", path, rep.dropped,
            MAX_FIGURES);
    return 1;
  }
  const suite *first = rep.nsuites ? &rep.suites[0] : &(suite){0};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  text t = {0};
  put(&t, "{\"schema\": \"%s\",\n \"device\": ", BENCH_SCHEMA);
  put_string(&t, first->device);
  put(&t, ",\n \"driver\": ");
  put_known(&t, first->driver);
  put(&t, ",\n \"library_version\": ");
  put_string(&t, APS_VERSION);
  put(&t, ",\n \"vulkan_api\": ");
  put_api(&t, first->vulkan_api);
  put(&t, ",\n \"git_commit\": ");
  put_string(&t, APS_GIT_COMMIT);
  put(&t, ",\n \"cores\": %ld,\n \"quick\": %s,\n \"suites\": {", cores > 0 ? cores : 0, quick ? "true" : "false");
  for (int i = 0; i < rep.nsuites; i++) {
    const suite *s = &rep.suites[i];
    put(&t, "%s\n  ", i ? "," : "");
    put_string(&t, s->name);
    put(&t, ": {\"device\": ");
    put_string(&t, s->device);
    put(&t, ", \"driver\": ");
    put_known(&t, s->driver);
    put(&t, ", \"vulkan_api\": ");
    put_api(&t, s->vulkan_api);
    put(&t, ", \"figures\": [");
    int k = 0;
    for (int j = 0; j < rep.nfigures; j++)
      if (rep.figures[j].suite == i) {
        put(&t, "%s\n    ", k++ ? "," : "");
        put_figure(&t, &rep.figures[j]);
      }
    put(&t, "]}");
  }
  put(&t, "}}\n");
  if (t.oom) {
    free(t.s);
    fprintf(stderr, "aps bench: --json %s: out of host memory\n", path);
    return 1;
  }
  aps_status st = aps_file_write_atomic(path, &(aps_file_part){t.s, t.n}, 1);
  free(t.s);
  if (st != APS_OK) {
    fprintf(stderr, "aps bench: --json: %s\n", aps_last_error());
    return 1;
  }
  return 0;
}
