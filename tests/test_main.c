#include <stdlib.h>

#include "test.h"

int test_failures;

typedef struct test_case {
  const char *name;
  void (*fn)(void);
} test_case;
static test_case *cases;
static int count, cap;

void test_register(const char *name, void (*fn)(void)) {
  if (count == cap) {
    cap = cap ? 2 * cap : 64;
    cases = realloc(cases, (size_t)cap * sizeof *cases);
    if (!cases)
      abort(); /* before main: nothing to report to */
  }
  cases[count++] = (test_case){name, fn};
}

static void (*hook_open)(void), (*hook_close)(void);
void test_set_hooks(void (*open)(void), void (*close)(void)) { hook_open = open, hook_close = close; }

/* Runs the case named argv[1], or every case; the process exit code. */
int main(int argc, char **argv) {
  int ran = 0;
  if (hook_open)
    hook_open();
  for (int i = 0; i < count; i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name))
      continue;
    int before = test_failures;
    fprintf(stderr, "== %s\n", cases[i].name);
    cases[i].fn();
    fprintf(stderr, "== %s: %s\n", cases[i].name, test_failures == before ? "ok" : "FAILED");
    ran++;
  }
  if (hook_close)
    hook_close();
  if (!ran) {
    fprintf(stderr, "no test case named '%s'\n", argc > 1 ? argv[1] : "");
    return 2;
  }
  return test_failures ? 1 : 0;
}

rt_device *test_device_open(const rt_device_desc *desc) {
  rt_device_desc d = desc ? *desc : (rt_device_desc){0};
  d.quiet = 1;
  rt_device *dev = NULL;
  if (rt_device_create(&d, &dev) != APS_OK) {
    test_failures++;
    fprintf(stderr, "cannot open a device: %s\n", aps_last_error());
    return NULL;
  }
  return dev;
}

void test_device_close(rt_device *dev) {
  if (!dev)
    return;
  rt_device_destroy(dev);
  unsigned msgs = rt_validation_messages_total();
  CHECK(msgs == 0, "%u validation messages (see above)", msgs);
}
