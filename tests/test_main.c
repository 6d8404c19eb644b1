#include <stdlib.h>

#include "test.h"

int test_failures;

int test_main(int argc, char **argv, const test_case *cases, int count) {
  int ran = 0;
  for (int i = 0; i < count; i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name))
      continue;
    int before = test_failures;
    fprintf(stderr, "== %s\n", cases[i].name);
    cases[i].fn();
    fprintf(stderr, "== %s: %s\n", cases[i].name, test_failures == before ? "ok" : "FAILED");
    ran++;
  }
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
