#include "cli_args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage_to(FILE *f, const char *command, const cli_arg *args, int n) {
  fprintf(f, "usage: aps %s [options]\n", command);
  for (int i = 0; i < n; i++)
    fprintf(f, "  %-22s %s\n", args[i].name, args[i].help);
}
void cli_args_usage(const char *command, const cli_arg *args, int n) { usage_to(stderr, command, args, n); }

static int number(const char *command, const cli_arg *a, const char *text) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (a->kind == CLI_INT && strpbrk(text, "xXpP")) /* strtod reads hexadecimal: not an integer here */
    end = (char *)text;
  if (isspace((unsigned char)text[0])) /* strtod skips it; a value is the number alone */
    end = (char *)text;
  if (end == text || *end || errno || !isfinite(v) || (a->kind == CLI_INT && v != floor(v)) || v < a->min ||
      v > a->max) {
    fprintf(stderr, "aps %s: %s '%s': expected %s from %g to %g\n", command, a->name, text,
            a->kind == CLI_INT ? "an integer" : "a number", a->min, a->max);
    return 2;
  }
  if (a->kind == CLI_INT)
    *(int *)a->value = (int)v;
  else
    *(float *)a->value = (float)v;
  return 0;
}

/* Parses options from argv[0..argc); with stop_at_word, stops at the first argument that is
 * not an option (the command word) and stores its index in *stop. */
static int parse(const char *command, int argc, char **argv, const cli_arg *args, int n, int stop_at_word, int *stop) {
  for (int i = 0; i < argc; i++) {
    if (stop_at_word && argv[i][0] != '-') {
      *stop = i;
      return 0;
    }
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { /* the command line only: exit is fine */
      usage_to(stdout, command, args, n);
      exit(0);
    }
    const cli_arg *a = NULL;
    for (int k = 0; k < n && !a; k++)
      if (!strcmp(argv[i], args[k].name))
        a = &args[k];
    if (!a) {
      fprintf(stderr, "aps%s%s: unknown option '%s'\n", *command ? " " : "", command, argv[i]);
      cli_args_usage(command, args, n);
      return 2;
    }
    if (a->kind == CLI_FLAG) {
      *(int *)a->value = 1;
      continue;
    }
    if (++i == argc) {
      fprintf(stderr, "aps%s%s: %s needs a value\n", *command ? " " : "", command, a->name);
      return 2;
    }
    if (a->kind == CLI_STRING && !*argv[i]) {
      fprintf(stderr, "aps%s%s: %s needs a value, not an empty string\n", *command ? " " : "", command, a->name);
      return 2;
    }
    if (a->kind == CLI_STRING)
      *(const char **)a->value = argv[i];
    else if (number(command, a, argv[i]))
      return 2;
  }
  if (stop_at_word)
    *stop = argc;
  return 0;
}

int cli_args_parse(const char *command, int argc, char **argv, const cli_arg *args, int n) {
  return parse(command, argc, argv, args, n, 0, NULL);
}

int cli_args_parse_head(int argc, char **argv, const cli_arg *args, int n, int *word) {
  return parse("", argc, argv, args, n, 1, word);
}

int cli_parse_ints(const char *list, int *out, int max) {
  int n = 0;
  for (const char *p = list;;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 1 || v > 1 << 16 || n == max)
      return 0;
    out[n++] = (int)v;
    if (!*end)
      return n;
    if (*end != ',')
      return 0;
    p = end + 1;
  }
}
