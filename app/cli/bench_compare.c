/* aps bench compare A.json B.json: the figures of two `aps bench --json FILE` reports (or the
 * PyTorch twin's, same schema) matched by suite, name and batch, B's median over A's. Read
 * with graph/io/json.c's strict reader; skipped members may hold numbers with fractions,
 * which the safetensors reader's gr_json_skip refuses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_report.h"
#include "cli.h"
#include "json.h"

enum { MAX_FIGS = 1024, MAX_DEPTH = 32, MAX_FILE = 64 << 20 };

typedef struct fig {
  char suite[32], name[128], unit[32];
  int batch;
  double median;
} fig;

typedef struct report {
  const char *path;
  char device[256], commit[64];
  int schema_ok;
  fig *figs;
  int n;
  fig cur; /* the figure being read */
  char suite[32];
} report;

static aps_status skip(gr_json *p, int depth);

static aps_status skip_member(gr_json *p, const char *key, size_t len, void *ctx) {
  (void)key, (void)len;
  return skip(p, *(int *)ctx);
}

static aps_status skip_elem(gr_json *p, void *ctx, int depth) { return (void)ctx, skip(p, depth); }

/* Any value, numbers with fractions included. */
static aps_status skip(gr_json *p, int depth) {
  if (depth > MAX_DEPTH)
    return gr_json_fail(p, "values nested more than %d deep", MAX_DEPTH);
  int c = gr_json_peek(p), next = depth + 1;
  if (c == '{')
    return gr_json_object(p, skip_member, &next);
  if (c == '[')
    return gr_json_array(p, skip_elem, NULL, depth);
  if (c == '-' || (c >= '0' && c <= '9')) {
    double v;
    return gr_json_number(p, &v);
  }
  return gr_json_skip(p, depth); /* strings, true, false, null */
}

/* A string member into a fixed buffer (too long a value is an error, not a cut). */
static aps_status string_into(gr_json *p, char *out, size_t size) {
  char *s = NULL;
  size_t len = 0;
  APS_TRY(gr_json_string(p, &s, &len));
  aps_status st = len < size && strlen(s) == len ? APS_OK : gr_json_fail(p, "a string too long or with a NUL in it");
  if (st == APS_OK)
    memcpy(out, s, len + 1);
  free(s);
  return st;
}

static aps_status figure_member(gr_json *p, const char *key, size_t len, void *ctx) {
  report *r = ctx;
  (void)len;
  if (!strcmp(key, "name"))
    return string_into(p, r->cur.name, sizeof r->cur.name);
  if (!strcmp(key, "unit"))
    return string_into(p, r->cur.unit, sizeof r->cur.unit);
  if (!strcmp(key, "median"))
    return gr_json_number(p, &r->cur.median);
  if (!strcmp(key, "batch")) {
    double b;
    APS_TRY(gr_json_number(p, &b));
    if (!(b >= 0 && b <= 1e9) || b != floor(b))
      return gr_json_fail(p, "\"batch\" is not a count");
    r->cur.batch = (int)b;
    return APS_OK;
  }
  return skip(p, 5);
}

static aps_status figure(gr_json *p, void *ctx, int depth) {
  report *r = ctx;
  (void)depth;
  r->cur = (fig){.median = NAN};
  snprintf(r->cur.suite, sizeof r->cur.suite, "%s", r->suite);
  APS_TRY(gr_json_object(p, figure_member, r));
  if (!r->cur.name[0])
    return gr_json_fail(p, "a figure of suite %s without a name", r->suite);
  if (r->n == MAX_FIGS)
    return gr_json_fail(p, "more than %d figures", MAX_FIGS);
  r->figs[r->n++] = r->cur;
  return APS_OK;
}

static aps_status suite_member(gr_json *p, const char *key, size_t len, void *ctx) {
  (void)len;
  return strcmp(key, "figures") ? skip(p, 3) : gr_json_array(p, figure, ctx, 3);
}

static aps_status suites_member(gr_json *p, const char *key, size_t len, void *ctx) {
  report *r = ctx;
  if (len >= sizeof r->suite || strlen(key) != len)
    return gr_json_fail(p, "a suite name too long or with a NUL in it");
  memcpy(r->suite, key, len + 1);
  return gr_json_object(p, suite_member, r);
}

static aps_status top_member(gr_json *p, const char *key, size_t len, void *ctx) {
  report *r = ctx;
  (void)len;
  if (!strcmp(key, "schema")) {
    char s[64];
    APS_TRY(string_into(p, s, sizeof s));
    r->schema_ok = !strcmp(s, BENCH_SCHEMA);
    return r->schema_ok ? APS_OK : aps_fail(APS_ERR_FORMAT, "%s: schema \"%s\", not %s", r->path, s, BENCH_SCHEMA);
  }
  if (!strcmp(key, "device") && gr_json_peek(p) == '"')
    return string_into(p, r->device, sizeof r->device);
  if (!strcmp(key, "git_commit") && gr_json_peek(p) == '"')
    return string_into(p, r->commit, sizeof r->commit);
  if (!strcmp(key, "suites"))
    return gr_json_object(p, suites_member, r);
  return skip(p, 1);
}

static int load(const char *path, report *r) {
  *r = (report){.path = path};
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "aps bench compare: %s: cannot open: ", path);
    perror(NULL);
    return 1;
  }
  uint8_t *buf = malloc(MAX_FILE);
  size_t n = buf ? fread(buf, 1, MAX_FILE, f) : 0;
  int err = ferror(f), big = n == MAX_FILE;
  fclose(f);
  r->figs = malloc(MAX_FIGS * sizeof *r->figs);
  if (!buf || !r->figs || err || big) {
    fprintf(stderr, "aps bench compare: %s: %s\n", path,
            !buf || !r->figs ? "out of host memory" : err ? "read error" : "larger than 64 MiB: not a bench report");
    free(buf);
    return 1;
  }
  gr_json p = {.path = path, .s = buf, .n = n};
  gr_json_ws(&p);
  aps_status st = gr_json_object(&p, top_member, r);
  gr_json_ws(&p);
  if (st == APS_OK && p.i != p.n)
    st = gr_json_fail(&p, "text after the report's object");
  if (st == APS_OK && !r->schema_ok)
    st = aps_fail(APS_ERR_FORMAT, "%s: no \"schema\": \"%s\" member: not an aps bench report", path, BENCH_SCHEMA);
  free(buf);
  if (st != APS_OK) {
    /* json.c speaks of a safetensors "header"; here the header is the whole file. */
    fprintf(stderr, "aps bench compare: %s\n", aps_last_error());
    return 1;
  }
  return 0;
}

/* Which way is better, from the unit: 1 lower (times), -1 higher (rates), 0 neither. */
static int lower_better(const char *unit) {
  if (strstr(unit, "/s"))
    return -1;
  static const char *const times[] = {"s", "ms", "us", "ns"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(unit, times[i]))
      return 1;
  return 0;
}

static int same_fig(const fig *a, const fig *b) {
  return !strcmp(a->suite, b->suite) && !strcmp(a->name, b->name) && a->batch == b->batch;
}

static void print_key(const fig *f) {
  printf("  %-8s %-44s", f->suite, f->name);
  if (f->batch)
    printf(" b%-4d", f->batch);
  else
    printf(" %-5s", "");
}

int bench_compare(const char *a_path, const char *b_path) {
  report a, b;
  if (load(a_path, &a)) {
    free(a.figs);
    return 1;
  }
  if (load(b_path, &b)) {
    free(a.figs), free(b.figs);
    return 1;
  }
  printf("A: %s (%s, commit %s)\nB: %s (%s, commit %s)\n", a_path, a.device, a.commit, b_path, b.device, b.commit);
  printf("  %-8s %-44s %-5s %-8s %12s %12s %8s\n", "suite", "figure", "batch", "unit", "A median", "B median", "B/A");
  int both = 0, only_a = 0, only_b = 0;
  for (int i = 0; i < a.n; i++) {
    const fig *fa = &a.figs[i], *fb = NULL;
    for (int j = 0; j < b.n && !fb; j++)
      if (same_fig(fa, &b.figs[j]))
        fb = &b.figs[j];
    if (!fb)
      continue;
    both++;
    double ratio = fb->median / fa->median;
    print_key(fa);
    printf(" %-8s %12.4g %12.4g %8.2f", fa->unit, fa->median, fb->median, ratio);
    int dir = strcmp(fa->unit, fb->unit) ? 0 : lower_better(fa->unit);
    if (strcmp(fa->unit, fb->unit))
      printf("  (units differ: %s against %s)", fa->unit, fb->unit);
    else if (!isfinite(ratio) || ratio <= 0 || !dir)
      ;
    else if (fabs(ratio - 1) < 0.005)
      printf("  same");
    else {
      double speed = dir > 0 ? 1 / ratio : ratio; /* > 1: B is faster */
      printf("  %s %.2fx faster", speed > 1 ? "B" : "A", speed > 1 ? speed : 1 / speed);
    }
    printf("\n");
  }
  for (int pass = 0; pass < 2; pass++) {
    const report *x = pass ? &b : &a, *y = pass ? &a : &b;
    for (int i = 0; i < x->n; i++) {
      int found = 0;
      for (int j = 0; j < y->n && !found; j++)
        found = same_fig(&x->figs[i], &y->figs[j]);
      if (found)
        continue;
      if (!(pass ? only_b : only_a))
        printf("only in %s:\n", pass ? "B" : "A");
      pass ? only_b++ : only_a++;
      print_key(&x->figs[i]);
      printf(" %-8s %12.4g\n", x->figs[i].unit, x->figs[i].median);
    }
  }
  printf("%d figures in both, %d only in A, %d only in B\n", both, only_a, only_b);
  free(a.figs), free(b.figs);
  return 0;
}
