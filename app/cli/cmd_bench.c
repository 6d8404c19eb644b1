/* aps bench: the one benchmarking front end. `aps bench` runs every suite, `aps bench A B`
 * the ones named; each prints its table (or, with a bare --json, its own JSON on stdout as
 * before), and `--json FILE` writes all their figures in one schema (bench_report.h,
 * docs/BENCH.md). `aps bench compare A.json B.json` sets two such files side by side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_report.h"
#include "cli.h"

static int bench_graph(const cli_options *o) {
  return o->device && !strcmp(o->device, "cpu") ? bench_cpu_device(o->json) : cmd_bench_graph(o);
}

typedef struct bench_suite {
  const char *name;
  int (*run)(const cli_options *o);
  int in_all;      /* run by a bare `aps bench` */
  int vulkan_only; /* no CPU-device variant: skipped by a bare `aps bench` under --device cpu */
  const char *what;
} bench_suite;

static const bench_suite suites[] = {
    {"runtime", cmd_bench_runtime, 1, 1, "dispatch overhead, copy bandwidth, GEMM GFLOP/s"},
    {"graph", bench_graph, 1, 0, "per-op throughput, U-Net latency/throughput, fusion, the operators"},
    {"train", cmd_bench_train, 1, 0, "one U-Net training step (forward, backward, Adam)"},
    {"prior", cmd_bench_prior, 1, 0, "the prior's ε-network, with the input gradient"},
    {"aps", cmd_bench_aps, 1, 0, "flow sampling at batch 1/8/64, one distillation step at 64"},
    {"dps", cmd_bench_dps, 1, 0, "one DPS step (the prior forward and back, the operator) at batch 1 and 64"},
    {"profile", cmd_bench_profile, 0, 1, "U-Net forward time per dispatch and kind (only when named)"},
};
enum { N_SUITES = sizeof suites / sizeof suites[0] };

static const bench_suite *find_suite(const char *name) {
  for (int i = 0; i < N_SUITES; i++)
    if (!strcmp(suites[i].name, name))
      return &suites[i];
  return NULL;
}

static void usage(FILE *f) {
  fputs("usage: aps [--device D] bench [SUITE...] [--quick] [--json [FILE]]\n"
        "       aps bench compare A.json B.json\n"
        "  no SUITE: every suite but profile; --json alone: each suite's own JSON on stdout;\n"
        "  --json FILE: every figure in one file (schema " BENCH_SCHEMA ", docs/BENCH.md)\n"
        "suites:\n",
        f);
  for (int i = 0; i < N_SUITES; i++)
    fprintf(f, "  %-8s %s\n", suites[i].name, suites[i].what);
}

int cmd_bench(const cli_options *o, int argc, char **argv) {
  if (argc > 0 && !strcmp(argv[0], "compare")) {
    if (argc != 3) {
      fputs("aps bench compare: expected two files: aps bench compare A.json B.json\n", stderr);
      return 2;
    }
    return bench_compare(argv[1], argv[2]);
  }
  cli_options so = *o;
  const char *file = NULL;
  const bench_suite *chosen[N_SUITES];
  int n = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--quick")) {
      so.quick = 1;
    } else if (!strncmp(a, "--json=", 7)) {
      file = a + 7;
    } else if (!strcmp(a, "--json")) {
      /* A following word that is no option and no suite is the file; else the old flag. */
      if (i + 1 < argc && argv[i + 1][0] != '-' && !find_suite(argv[i + 1]))
        file = argv[++i];
      else
        so.json = 1;
    } else if (a[0] == '-') {
      fprintf(stderr, "aps bench: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    } else {
      const bench_suite *s = find_suite(a);
      if (!s) {
        fprintf(stderr, "aps bench: unknown suite '%s'\n", a);
        usage(stderr);
        return 2;
      }
      int dup = 0;
      for (int k = 0; k < n; k++)
        dup |= chosen[k] == s;
      if (!dup)
        chosen[n++] = s;
    }
  }
  if (file && !*file) {
    fputs("aps bench: --json= needs a file name\n", stderr);
    return 2;
  }
  int cpu = o->device && !strcmp(o->device, "cpu"), chosen_any = n > 0;
  for (int i = 0; i < N_SUITES && !chosen_any; i++) {
    if (!suites[i].in_all)
      continue;
    if (cpu && suites[i].vulkan_only)
      fprintf(stderr, "aps bench: %s: skipped on the CPU device (Vulkan only)\n", suites[i].name);
    else
      chosen[n++] = &suites[i];
  }
  int failed = 0;
  for (int i = 0; i < n; i++) {
    if (n > 1 && !so.json)
      printf("%s== %s\n", i ? "\n" : "", chosen[i]->name);
    fflush(stdout);
    bench_report_suite(chosen[i]->name);
    if (chosen[i]->run(&so)) {
      fprintf(stderr, "aps bench: suite %s failed\n", chosen[i]->name);
      failed++;
    }
    fflush(stdout);
  }
  /* What the suites that ran measured is written even when one failed: a long run's figures
   * are worth keeping; the exit status still says it failed. */
  if (file) {
    if (bench_report_write(file, so.quick))
      return 1;
    fprintf(stderr, "aps bench: wrote %s\n", file);
  }
  return failed ? 1 : 0;
}
