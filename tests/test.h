/* A minimal test harness: one executable per folder, one ctest test per named case.
 * `CHECK(cond, fmt, ...)` records a failure with its place and goes on; a case fails if any
 * check failed. Device-using cases end with test_device_close(), which fails the case when
 * the validation layer said anything. */
#ifndef APS_TEST_H
#define APS_TEST_H

#include <stdio.h>
#include <string.h>

#include "rt.h"

extern int test_failures;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      test_failures++;                                                     \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                        \
      fputc('\n', stderr);                                                 \
    }                                                                      \
  } while (0)

/* Asserts a call succeeds; on failure prints aps_last_error() and returns from the case. */
#define REQUIRE_OK(expr)                                                                   \
  do {                                                                                     \
    aps_status req_s_ = (expr);                                                            \
    if (req_s_ != APS_OK) {                                                                \
      test_failures++;                                                                     \
      fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, aps_last_error()); \
      return;                                                                              \
    }                                                                                      \
  } while (0)

typedef struct test_case {
  const char *name;
  void (*fn)(void);
} test_case;

/* Runs the case named argv[1] (or all), returns the process exit code. */
int test_main(int argc, char **argv, const test_case *cases, int count);

/* A device for a test (quiet; fails the case if none). */
rt_device *test_device_open(const rt_device_desc *desc);
void test_device_close(rt_device *dev);

#endif
