/* aps — amortized posterior sampling. The entry point: the options before a command, and
 * the one table of commands. Commands parse their own options with cli_args and print;
 * the method itself lives in app/aps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"

/* A command either takes its own options (run) or only --json and --quick (report). */
typedef struct cli_command {
  const char *name; /* one or two words: "devices", "bench graph" */
  int (*run)(const cli_options *o, int argc, char **argv);
  int (*report)(const cli_options *o);
  const char *usage;
} cli_command;

static const cli_command commands[] = {
    {"devices", NULL, cmd_devices, "[--json]  Vulkan devices, their capabilities, the one chosen"},
    {"bench", cmd_bench, NULL,
     "[SUITE...] [--quick] [--json [FILE]]  benchmarks: runtime graph train prior aps dps (all by default), profile;\n"
     "                 bench compare A.json B.json  the ratios of two --json FILE reports (bench --help)"},
    {"train-prior", cmd_train_prior, NULL, "--data D --out F [...]  train the diffusion prior"},
    {"prior-sample", cmd_prior_sample, NULL, "--model F --out P.png [--sampler em|ddim|ode --steps N --n K]"},
    {"elbo", cmd_elbo, NULL, "--model F [--data D --split test]  the prior's -ELBO in bits/dim"},
    {"distill", cmd_distill, NULL, "--prior F --op SPEC --out FLOW [...]  distil the prior into a conditional flow"},
    {"degrade", cmd_degrade, NULL, "--op SPEC (--data D [--index N | --n K] | --image P) --out DIR  measurements"},
    {"sample", cmd_sample, NULL, "--model FLOW (--image P [--measured] | --data D | --measurements F) --out DIR  posterior samples"},
    {"eval", cmd_eval, NULL, "--model FLOW [--op SPEC --n N --k K --json]  posterior quality on Fashion-MNIST's test split"},
    {"calibrate", cmd_calibrate, NULL, "--model FLOW --out FLOW [--op SPEC --target C]  the latent scales that calibrate its spread"},
    {"view", cmd_view, NULL, "[--model FLOW] [--image P | --index N] [--k K] [--script F --headless ...]  the live viewer"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f) {
  fputs("usage: aps [--device cpu|<index|name>] [--json] [--quick] <command> [options]\ncommands:\n", f);
  for (int i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].usage);
  fputs("  <command> --help lists a command's options\n"
        "device: the method's commands take a GPU if Vulkan has one, else the CPU device;\n"
        "  --device cpu | <index|name> chooses (benchmarks default to Vulkan)\n"
        "environment: APS_DEVICE, APS_LOG=quiet|info|debug, APS_VALIDATE=1, APS_VALIDATE_SYNC=1,\n"
        "  APS_QUIRK_<NAME>=0|1\n",
        f);
}

/* The command whose words start argv (one word, or two), and how many words it took. */
static const cli_command *find(int argc, char **argv, int *words) {
  for (int i = 0; i < N_COMMANDS; i++) {
    const char *name = commands[i].name, *space = strchr(name, ' ');
    if (!space && !strcmp(argv[0], name))
      return *words = 1, &commands[i];
    if (space && argc > 1 && !strncmp(argv[0], name, (size_t)(space - name)) && !argv[0][space - name] &&
        !strcmp(argv[1], space + 1))
      return *words = 2, &commands[i];
  }
  return NULL;
}

/* The cores other processes kept busy over 50 ms (/proc/stat; -1 where it cannot be read). */
static double others_busy_cores(void) {
  unsigned long long a[2][8] = {{0}};
  for (int k = 0; k < 2; k++) {
    FILE *f = fopen("/proc/stat", "r");
    int got = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &a[k][0], &a[k][1], &a[k][2], &a[k][3],
                         &a[k][4], &a[k][5], &a[k][6], &a[k][7])
                : 0;
    if (f)
      fclose(f);
    if (got != 8)
      return -1;
    if (k == 0)
      usleep(50000);
  }
  double total = 0, idle = (double)(a[1][3] - a[0][3]) + (double)(a[1][4] - a[0][4]); /* idle, iowait */
  for (int i = 0; i < 8; i++)
    total += (double)(a[1][i] - a[0][i]);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return total > 0 && cores > 0 ? (double)cores * (total - idle) / total : -1;
}

int main(int argc, char **argv) {
  /* The CPU device's OpenMP threads wait for each other thousands of times a step. Sleeping
   * at once (passive) costs a wake-up each time: on the idle 2-core machine a distillation
   * step took 1.73 s, and 1.20-1.26 s with a short spin (GOMP_SPINCOUNT 1e4-1e6); but
   * spinning threads ran 1.7-4x slower whenever another process held a core. So: a short
   * spin when other processes use under half a core at start, else passive. libgomp reads
   * these only at start-up, so set them and start again; either variable set by the user
   * wins. */
  if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
    double busy = others_busy_cores();
    if (busy >= 0 && busy < 0.5)
      setenv("GOMP_SPINCOUNT", "100000", 1);
    else
      setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
  }
  cli_options o = {0};
  const cli_arg head[] = {
      {"--device", CLI_STRING, &o.device, 0, 0, "cpu, or a Vulkan device's index or part of its name"},
      {"--json", CLI_FLAG, &o.json, 0, 0, "results as JSON on stdout"},
      {"--quick", CLI_FLAG, &o.quick, 0, 0, "benchmarks: small sizes (smoke tests)"},
  };
  int word = 0;
  if (cli_args_parse_head(argc - 1, argv + 1, head, 3, &word))
    return 2;
  word += 1;
  if (word == argc) {
    usage(stderr);
    return 2;
  }
  int words = 0;
  const cli_command *c = find(argc - word, argv + word, &words);
  if (!c) {
    fprintf(stderr, "aps: unknown command '%s%s%s'\n", argv[word], word + 1 < argc ? " " : "",
            word + 1 < argc && argv[word + 1][0] != '-' ? argv[word + 1] : "");
    usage(stderr);
    return 2;
  }
  int rest = word + words;
  if (c->run)
    return c->run(&o, argc - rest, argv + rest);
  /* The report commands take --json and --quick after their name too. */
  if (cli_args_parse(c->name, argc - rest, argv + rest, head + 1, 2))
    return 2;
  return c->report(&o);
}
