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

/* A test case: `TEST_CASE(name) { ... }` defines it and registers it before main runs.
 * tests/CMakeLists.txt reads the same lines from the sources to make one ctest test per
 * case (<suite>.<name>), so a case is named once, where it is written. TEST_HELPER
 * registers a case that ctest does not run by itself (a child process of another case). */
void test_register(const char *name, void (*fn)(void));
#define TEST_REGISTERED_(name)                                                          \
  static void test_##name(void);                                                        \
  __attribute__((constructor)) static void test_register_##name(void) { test_register(#name, test_##name); } \
  static void test_##name(void)
#define TEST_CASE(name) TEST_REGISTERED_(name)
/* A suite's set-up and tear-down around whatever cases run (a shared device, say); at
 * most one per test executable. */
void test_set_hooks(void (*open)(void), void (*close)(void));
#define TEST_SUITE_HOOKS(open, close) \
  __attribute__((constructor)) static void test_hooks_(void) { test_set_hooks(open, close); }
#define TEST_HELPER(name) TEST_REGISTERED_(name)

/* A device for a test (quiet; fails the case if none). */
rt_device *test_device_open(const rt_device_desc *desc);
void test_device_close(rt_device *dev);

#endif
