/* The `aps` command: shared declarations of its subcommands. */
#ifndef APS_CLI_H
#define APS_CLI_H

typedef struct cli_options {
  const char *device; /* --device, like APS_DEVICE */
  int json;           /* --json */
  int quick;          /* --quick: small sizes, for smoke tests */
} cli_options;

int cmd_devices(const cli_options *o);
int cmd_bench_runtime(const cli_options *o);
int cmd_bench_graph(const cli_options *o);
int cmd_bench_train(const cli_options *o);
int cmd_bench_profile(const cli_options *o);

int cmd_bench_prior(const cli_options *o);
int cmd_bench_aps(const cli_options *o);
int cmd_bench_dps(const cli_options *o);
/* aps bench [SUITE...] [--json [FILE]] and aps bench compare A B (cmd_bench.c, bench_compare.c). */
int cmd_bench(const cli_options *o, int argc, char **argv);
int bench_compare(const char *a_path, const char *b_path);
/* The method's commands take the arguments after their name. */
int cmd_train_prior(const cli_options *o, int argc, char **argv);
int cmd_prior_sample(const cli_options *o, int argc, char **argv);
int cmd_elbo(const cli_options *o, int argc, char **argv);
int cmd_distill(const cli_options *o, int argc, char **argv);
int cmd_degrade(const cli_options *o, int argc, char **argv);
int cmd_sample(const cli_options *o, int argc, char **argv);
int cmd_eval(const cli_options *o, int argc, char **argv);
int cmd_calibrate(const cli_options *o, int argc, char **argv);
int cmd_view(const cli_options *o, int argc, char **argv);

/* The CPU device's conv2d, matmul and U-Net figures (bench_cpu.c); 0 on success. */
int bench_cpu_device(int json);

#endif
