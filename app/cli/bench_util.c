#include "bench_util.h"

#include <stdlib.h>

static bench_stat last;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

bench_stat bench_stat_of(double *v, int n) {
  if (n <= 0)
    return (bench_stat){0};
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return (bench_stat){n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0], v[n - 1], n};
}

double bench_median(double *v, int n) {
  last = bench_stat_of(v, n);
  return last.median;
}

bench_stat bench_last(void) { return last; }

bench_stat bench_stat_map(bench_stat s, double a, double b) {
  double lo = a * s.min + b, hi = a * s.max + b;
  return (bench_stat){a * s.median + b, a < 0 ? hi : lo, a < 0 ? lo : hi, s.repeats};
}

bench_stat bench_stat_per(bench_stat s, double amount, double offset) {
  return (bench_stat){amount / (s.median - offset), amount / (s.max - offset), amount / (s.min - offset), s.repeats};
}
