/* The operators' rows of `aps bench graph` (bench_operators.c). */
#ifndef APS_BENCH_OPERATORS_H
#define APS_BENCH_OPERATORS_H
#include "graph.h" /* rt_device, through graph.h */

typedef struct bench_op_row {
  char family[64];
  int batch;
  double a_ms, at_ms; /* medians */
} bench_op_row;

enum { BENCH_OP_ROWS = 12 };

/* A and Aᵀ of each family at the batch, on dev (NULL: the CPU device). The row count, or -1
 * after printing the error. */
int bench_operators_run(rt_device *dev, int batch, bench_op_row *rows, int max);
/* Text rows, or a JSON member `, "operators": [...]` to go inside the bench's object. */
void bench_operators_print(const bench_op_row *rows, int n, double prior_ms, int json);
#endif
