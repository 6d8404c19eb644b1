/* aps — amortized posterior sampling. Entry point and argument parsing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *f) {
  fputs("usage: aps [--device <index|name>] <command> [options]\n"
        "commands:\n"
        "  devices [--json]             list Vulkan devices, their capabilities, the one chosen\n"
        "  bench runtime [--json] [--quick]\n"
        "                               dispatch overhead, copy bandwidth, GEMM GFLOP/s\n"
        "  bench graph [--json] [--quick]  per-op throughput, U-Net latency/throughput, fusion\n"
        "                               (--device cpu: the same on the CPU device, oneDNN)\n"
        "  bench profile [--json] [--quick]  U-Net forward time per dispatch and per kernel kind\n"
        "  bench train [--json] [--quick]  one U-Net training step (forward, backward, Adam)\n"
        "  bench prior [--json] [--quick]  the prior's ε-network: forward, and with the input gradient\n"
        "  train-prior --data D --out F [...]   train the diffusion prior (--help for options)\n"
        "  prior-sample --model F --out P.png [--sampler em|ddim|ode --steps N --n K]\n"
        "  elbo --model F [--data D --split test]  the prior's -ELBO in bits/dim\n"
        "  degrade --op SPEC (--data D [--index N | --n K] | --image P) --out DIR\n"
        "                               measurements through an operator family (docs/operators.md)\n"
        "device: the method's commands take a GPU if Vulkan has one, else the CPU device;\n"
        "  --device cpu | <index|name> chooses (benchmarks default to Vulkan)\n"
        "environment: APS_DEVICE, APS_VALIDATE=1, APS_VALIDATE_SYNC=1, APS_QUIRK_<NAME>=0|1\n",
        f);
}

int main(int argc, char **argv) {
  /* OpenMP threads (the CPU device) that spin while waiting run many times slower when
   * another process holds a core; libgomp reads its policy only at start-up, so set it
   * and start again. */
  if (!getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
  }
  cli_options o = {0};
  const char *words[4] = {0};
  int nwords = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--device")) {
      if (++i == argc) {
        fprintf(stderr, "aps: --device needs a value (an index or part of a device name)\n");
        return 2;
      }
      o.device = argv[i];
    } else if (!strcmp(a, "--json")) {
      o.json = 1;
    } else if (!strcmp(a, "--quick")) {
      o.quick = 1;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (nwords == 0 && !strcmp(a, "degrade")) {
      return cmd_degrade(&o, argc - i - 1, argv + i + 1);
    } else if (nwords == 0 && (!strcmp(a, "train-prior") || !strcmp(a, "prior-sample") || !strcmp(a, "elbo"))) {
      int (*cmd)(const cli_options *, int, char **) =
          a[0] == 't' ? cmd_train_prior : a[0] == 'p' ? cmd_prior_sample : cmd_elbo;
      return cmd(&o, argc - i - 1, argv + i + 1);
    } else if (a[0] == '-') {
      fprintf(stderr, "aps: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    } else if (nwords < 4) {
      words[nwords++] = a;
    } else {
      fprintf(stderr, "aps: unexpected argument '%s'\n", a);
      return 2;
    }
  }
  if (nwords == 1 && !strcmp(words[0], "devices"))
    return cmd_devices(&o);
  if (nwords == 2 && !strcmp(words[0], "bench") && !strcmp(words[1], "runtime"))
    return cmd_bench_runtime(&o);
  if (nwords == 2 && !strcmp(words[0], "bench") && !strcmp(words[1], "prior"))
    return cmd_bench_prior(&o);
  if (nwords == 2 && !strcmp(words[0], "bench") && !strcmp(words[1], "profile"))
    return cmd_bench_profile(&o);
  if (nwords == 2 && !strcmp(words[0], "bench") && !strcmp(words[1], "train"))
    return cmd_bench_train(&o);
  if (nwords == 2 && !strcmp(words[0], "bench") && !strcmp(words[1], "graph"))
    return o.device && !strcmp(o.device, "cpu") ? bench_cpu_device(o.json) : cmd_bench_graph(&o);
  if (nwords == 0) {
    usage(stderr);
    return 2;
  }
  fprintf(stderr, "aps: unknown command '%s%s%s'\n", words[0], nwords > 1 ? " " : "", nwords > 1 ? words[1] : "");
  usage(stderr);
  return 2;
}
