/* Option parsing for every command and for the options before a command: "--name value" and "--flag", every value
 * checked, every error naming the option and what it expected. */
#ifndef APS_CLI_ARGS_H
#define APS_CLI_ARGS_H

typedef enum cli_arg_kind { CLI_STRING, CLI_INT, CLI_FLOAT, CLI_FLAG } cli_arg_kind;

typedef struct cli_arg {
  const char *name;   /* "--steps" */
  cli_arg_kind kind;
  void *value;        /* const char **, int *, float *, int * (flag) */
  double min, max;    /* numbers: allowed range */
  const char *help;
} cli_arg;

/* Parses argv[0..argc) against args; returns 0, or prints the problem and returns 2. */
int cli_args_parse(const char *command, int argc, char **argv, const cli_arg *args, int n);
/* The options before a command word (argv[0..) up to the first argument that does not
 * start with '-'): *word is that argument's index (argc if none). 0, or 2 after printing. */
int cli_args_parse_head(int argc, char **argv, const cli_arg *args, int n, int *word);
void cli_args_usage(const char *command, const cli_arg *args, int n);
/* "32,64,64" -> up to max positive ints; returns the count, 0 on a malformed list. */
int cli_parse_ints(const char *list, int *out, int max);
#endif
