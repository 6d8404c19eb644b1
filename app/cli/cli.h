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

#endif
