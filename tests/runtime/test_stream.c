/* Streams: barriers exactly where hazards are, replay, timestamps, and descriptor paths. */
#include <math.h>
#include <stdlib.h>

#include "../test.h"

typedef struct axpb_push {
  uint32_t n;
  float a, b;
} axpb_push;
typedef struct add_push {
  uint32_t n;
  float b;
} add_push;

static rt_kernel *kernel(rt_device *dev, const char *shader, uint32_t spec0) {
  rt_kernel *k = NULL;
  rt_kernel_desc d = {.shader = shader, .spec_count = spec0 ? 1 : 0, .spec = {spec0}};
  if (rt_kernel_get(dev, &d, &k) != APS_OK) {
    test_failures++;
    fprintf(stderr, "kernel %s: %s\n", shader, aps_last_error());
  }
  return k;
}

static rt_dispatch axpb(rt_kernel *k, rt_buffer *x, uint64_t xoff, rt_buffer *y, uint64_t yoff, const axpb_push *p) {
  uint64_t bytes = p->n * sizeof(float);
  return (rt_dispatch){.kernel = k, .bindings = {{x, xoff, bytes}, {y, yoff, bytes}}, .push = p,
                       .groups = {(p->n + 63) / 64}, .name = "axpb"};
}

/* 200 dispatches, each depending on the one before: in place, and ping-pong. */
static void chain(void) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  enum { N = 1000, STEPS = 200 };
  rt_kernel *inc = kernel(dev, "rt_add_inplace", 0), *ax = kernel(dev, "rt_axpb", 64);
  rt_buffer *a, *b;
  REQUIRE_OK(rt_buffer_create(dev, N * 4, RT_MEMORY_DEVICE, &a));
  REQUIRE_OK(rt_buffer_create(dev, N * 4, RT_MEMORY_DEVICE, &b));
  REQUIRE_OK(rt_buffer_fill(a, 0, N * 4, 0));
  rt_stream *s;
  REQUIRE_OK(rt_stream_create(dev, NULL, &s));
  add_push ap = {N, 1.0f};
  REQUIRE_OK(rt_stream_begin(s));
  for (int i = 0; i < STEPS; i++)
    REQUIRE_OK(rt_stream_dispatch(s, &(rt_dispatch){.kernel = inc, .bindings = {{a}}, .push = &ap,
                                                    .groups = {(N + 63) / 64}, .name = "inc"}));
  REQUIRE_OK(rt_stream_end(s));
  REQUIRE_OK(rt_stream_run(s));
  rt_stream_stats st;
  rt_stream_get_stats(s, &st);
  CHECK(st.dispatches == STEPS && st.barriers == STEPS - 1, "in place: %u dispatches, %u barriers", st.dispatches,
        st.barriers);
  float out[N];
  REQUIRE_OK(rt_buffer_read(a, 0, out, sizeof out));
  int bad = 0;
  for (int i = 0; i < N; i++)
    bad += out[i] != (float)STEPS;
  CHECK(bad == 0, "in place: %d of %d elements differ from %d (e.g. %g)", bad, N, STEPS, out[0]);

  /* Ping-pong a -> b -> a with y = x + 1: read-after-write and write-after-read each step. */
  REQUIRE_OK(rt_buffer_fill(a, 0, N * 4, 0));
  axpb_push pp = {N, 1.0f, 1.0f};
  REQUIRE_OK(rt_stream_begin(s));
  for (int i = 0; i < STEPS; i++) {
    rt_dispatch d = i % 2 ? axpb(ax, b, 0, a, 0, &pp) : axpb(ax, a, 0, b, 0, &pp);
    REQUIRE_OK(rt_stream_dispatch(s, &d));
  }
  REQUIRE_OK(rt_stream_end(s));
  REQUIRE_OK(rt_stream_run(s));
  rt_stream_get_stats(s, &st);
  CHECK(st.barriers == STEPS - 1, "ping-pong: %u barriers", st.barriers);
  REQUIRE_OK(rt_buffer_read(a, 0, out, sizeof out));
  bad = 0;
  for (int i = 0; i < N; i++)
    bad += out[i] != (float)STEPS;
  CHECK(bad == 0, "ping-pong: %d elements differ from %d (e.g. %g)", bad, STEPS, out[0]);
  rt_stream_destroy(s);
  rt_buffer_destroy(a);
  rt_buffer_destroy(b);
  test_device_close(dev);
}

TEST_CASE(chain_200) { chain(); }

/* The other descriptor path than the driver's default, forced by its quirk flag. */
TEST_CASE(push_descriptors) {
  setenv("APS_QUIRK_NO_PUSH_DESCRIPTOR", "0", 1);
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  int have = rt_device_caps(dev)->push_descriptor;
  test_device_close(dev);
  if (!have) {
    fprintf(stderr, "device has no VK_KHR_push_descriptor: nothing to test\n");
    return;
  }
  chain();
}

TEST_CASE(descriptor_sets) {
  setenv("APS_QUIRK_NO_PUSH_DESCRIPTOR", "1", 1);
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  CHECK(!rt_device_caps(dev)->push_descriptor, "the quirk turns push descriptors off");
  test_device_close(dev);
  chain(); /* 200 sets per recording, and a second recording reusing the pools */
}

/* Dispatches on disjoint ranges of shared buffers need no barrier; the first true hazard
 * gets exactly one. */
TEST_CASE(independent_no_barrier) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  enum { SLICES = 16, N = 64 }; /* 64 floats = 256 bytes: every slice offset is aligned */
  rt_kernel *ax = kernel(dev, "rt_axpb", 64);
  rt_buffer *x, *y, *z;
  REQUIRE_OK(rt_buffer_create(dev, SLICES * N * 4, RT_MEMORY_DEVICE, &x));
  REQUIRE_OK(rt_buffer_create(dev, SLICES * N * 4, RT_MEMORY_DEVICE, &y));
  REQUIRE_OK(rt_buffer_create(dev, SLICES * N * 4, RT_MEMORY_DEVICE, &z));
  float in[SLICES * N], out[SLICES * N];
  for (int i = 0; i < SLICES * N; i++)
    in[i] = (float)i;
  REQUIRE_OK(rt_buffer_write(x, 0, in, sizeof in));
  rt_stream *s;
  REQUIRE_OK(rt_stream_create(dev, NULL, &s));
  axpb_push p[SLICES];
  REQUIRE_OK(rt_stream_begin(s));
  for (int i = 0; i < SLICES; i++) {
    p[i] = (axpb_push){N, 2.0f, (float)i};
    rt_dispatch d = axpb(ax, x, (uint64_t)i * N * 4, y, (uint64_t)i * N * 4, &p[i]);
    REQUIRE_OK(rt_stream_dispatch(s, &d));
  }
  rt_stream_stats st;
  rt_stream_get_stats(s, &st);
  CHECK(st.dispatches == SLICES && st.barriers == 0, "%u independent dispatches, %u barriers", st.dispatches,
        st.barriers);
  /* Reading x again (read after read) still needs none. */
  axpb_push copy = {SLICES * N, 1.0f, 0.0f};
  rt_dispatch d = axpb(ax, x, 0, z, 0, &copy);
  d.groups[0] = (SLICES * N + 63) / 64;
  REQUIRE_OK(rt_stream_dispatch(s, &d));
  rt_stream_get_stats(s, &st);
  CHECK(st.barriers == 0, "read after read: %u barriers", st.barriers);
  /* Reading all of y (written above) is a hazard: one barrier. */
  axpb_push twice = {SLICES * N, 1.0f, 1.0f};
  d = axpb(ax, y, 0, z, 0, &twice);
  REQUIRE_OK(rt_stream_dispatch(s, &d));
  rt_stream_get_stats(s, &st);
  CHECK(st.barriers == 1, "read after write: %u barriers", st.barriers);
  /* Writing y, which the dispatch above read, is a write-after-read hazard (x, read here,
   * is not pending since the barrier). */
  axpb_push back = {N, 0.0f, -1.0f};
  d = axpb(ax, x, 0, y, 0, &back);
  REQUIRE_OK(rt_stream_dispatch(s, &d));
  rt_stream_get_stats(s, &st);
  CHECK(st.barriers == 2, "write after read: %u barriers", st.barriers);
  REQUIRE_OK(rt_stream_end(s));
  REQUIRE_OK(rt_stream_run(s));
  REQUIRE_OK(rt_buffer_read(z, 0, out, sizeof out));
  int bad = 0;
  for (int i = 0; i < SLICES * N; i++)
    bad += out[i] != 2.0f * in[i] + (float)(i / N) + 1.0f;
  CHECK(bad == 0, "%d wrong results", bad);
  REQUIRE_OK(rt_buffer_read(y, 0, out, N * 4));
  CHECK(out[0] == -1.0f && out[N - 1] == -1.0f, "the last write landed");
  rt_stream_destroy(s);
  rt_buffer_destroy(x);
  rt_buffer_destroy(y);
  rt_buffer_destroy(z);
  test_device_close(dev);
}

/* A copy then a dispatch reading its destination: one barrier, right result. */
TEST_CASE(copy_hazard) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  enum { N = 300 };
  rt_kernel *ax = kernel(dev, "rt_axpb", 64);
  rt_buffer *a, *b, *c;
  REQUIRE_OK(rt_buffer_create(dev, N * 4, RT_MEMORY_DEVICE, &a));
  REQUIRE_OK(rt_buffer_create(dev, N * 4, RT_MEMORY_DEVICE, &b));
  REQUIRE_OK(rt_buffer_create(dev, N * 4, RT_MEMORY_DEVICE, &c));
  float v[N];
  for (int i = 0; i < N; i++)
    v[i] = (float)i * 0.5f;
  REQUIRE_OK(rt_buffer_write(a, 0, v, sizeof v));
  rt_stream *s;
  REQUIRE_OK(rt_stream_create(dev, NULL, &s));
  axpb_push p = {N, 3.0f, 0.0f};
  REQUIRE_OK(rt_stream_begin(s));
  REQUIRE_OK(rt_stream_copy(s, a, 0, b, 0, N * 4));
  rt_dispatch d = axpb(ax, b, 0, c, 0, &p);
  REQUIRE_OK(rt_stream_dispatch(s, &d));
  REQUIRE_OK(rt_stream_copy(s, c, 0, a, 0, N * 4)); /* c written by the dispatch: RAW */
  REQUIRE_OK(rt_stream_end(s));
  REQUIRE_OK(rt_stream_run(s));
  rt_stream_stats st;
  rt_stream_get_stats(s, &st);
  CHECK(st.copies == 2 && st.dispatches == 1 && st.barriers == 2, "%u copies, %u barriers", st.copies, st.barriers);
  float out[N];
  REQUIRE_OK(rt_buffer_read(a, 0, out, sizeof out));
  int bad = 0;
  for (int i = 0; i < N; i++)
    bad += out[i] != 3.0f * (float)i * 0.5f;
  CHECK(bad == 0, "%d wrong results", bad);
  CHECK(rt_stream_copy(s, a, 0, b, 0, 4) == APS_ERR_INVALID_ARG, "a copy outside a recording is refused");
  rt_stream_destroy(s);
  rt_buffer_destroy(a);
  rt_buffer_destroy(b);
  rt_buffer_destroy(c);
  test_device_close(dev);
}

/* Record once, replay with new inputs. */
TEST_CASE(replay) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  enum { N = 777 };
  rt_kernel *ax = kernel(dev, "rt_axpb", 128);
  rt_buffer *x, *y;
  REQUIRE_OK(rt_buffer_create(dev, N * 4, RT_MEMORY_DEVICE, &x));
  REQUIRE_OK(rt_buffer_create(dev, N * 4, RT_MEMORY_DEVICE, &y));
  rt_stream *s;
  REQUIRE_OK(rt_stream_create(dev, NULL, &s));
  axpb_push p = {N, 2.0f, 1.0f};
  REQUIRE_OK(rt_stream_begin(s));
  rt_dispatch d = axpb(ax, x, 0, y, 0, &p);
  d.groups[0] = (N + 127) / 128;
  REQUIRE_OK(rt_stream_dispatch(s, &d));
  REQUIRE_OK(rt_stream_end(s));
  p.a = 100.0f; /* push constants were captured at record time */
  for (int run = 0; run < 5; run++) {
    float in[N], out[N];
    for (int i = 0; i < N; i++)
      in[i] = (float)(i * (run + 1));
    REQUIRE_OK(rt_buffer_write(x, 0, in, sizeof in));
    REQUIRE_OK(rt_stream_run(s));
    REQUIRE_OK(rt_buffer_read(y, 0, out, sizeof out));
    int bad = 0;
    for (int i = 0; i < N; i++)
      bad += out[i] != 2.0f * in[i] + 1.0f;
    CHECK(bad == 0, "run %d: %d wrong results", run, bad);
  }
  rt_stream_destroy(s);
  rt_buffer_destroy(x);
  rt_buffer_destroy(y);
  test_device_close(dev);
}

TEST_CASE(timestamps) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  enum { N = 1 << 16, D = 12 };
  rt_kernel *inc = kernel(dev, "rt_add_inplace", 0);
  rt_buffer *a;
  REQUIRE_OK(rt_buffer_create(dev, N * 4, RT_MEMORY_DEVICE, &a));
  REQUIRE_OK(rt_buffer_fill(a, 0, N * 4, 0));
  rt_stream *s;
  REQUIRE_OK(rt_stream_create(dev, &(rt_stream_desc){.max_timestamps = 8}, &s));
  add_push p = {N, 1.0f};
  char names[D][16];
  REQUIRE_OK(rt_stream_begin(s));
  for (int i = 0; i < D; i++) {
    snprintf(names[i], sizeof names[i], "step%d", i);
    REQUIRE_OK(rt_stream_dispatch(s, &(rt_dispatch){.kernel = inc, .bindings = {{a}}, .push = &p,
                                                    .groups = {N / 64}, .name = names[i]}));
  }
  REQUIRE_OK(rt_stream_end(s));
  REQUIRE_OK(rt_stream_run(s));
  double ns[16];
  uint32_t n = rt_stream_timestamps(s, ns, 16);
  CHECK(n == 9, "8 timed dispatches give 9 timestamps (%u)", n);
  for (uint32_t i = 1; i < n; i++)
    CHECK(ns[i] >= ns[i - 1], "timestamp %u (%.0f ns) before %u (%.0f ns)", i, ns[i], i - 1, ns[i - 1]);
  CHECK(n > 1 && ns[n - 1] > 0, "time passed (%.0f ns)", n ? ns[n - 1] : 0.0);
  rt_timing t[16];
  uint32_t nt = rt_stream_timings(s, t, 16);
  CHECK(nt == 8, "8 timings");
  double total = 0;
  for (uint32_t i = 0; i < nt; i++) {
    CHECK(!strcmp(t[i].name, names[i]), "timing %u is named %s", i, t[i].name);
    CHECK(t[i].ms >= 0, "non-negative");
    total += t[i].ms;
  }
  CHECK(total > 0, "dispatches took time (%.3f ms)", total);
  fprintf(stderr, "8 dispatches of %d elements: %.3f ms\n", N, total);
  float out[4];
  REQUIRE_OK(rt_buffer_read(a, 0, out, sizeof out));
  CHECK(out[0] == (float)D, "all %d dispatches ran, timed or not", D);
  rt_stream_destroy(s);
  rt_buffer_destroy(a);
  test_device_close(dev);
}

TEST_CASE(bad_dispatch) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  rt_kernel *k = NULL;
  CHECK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "no_such_kernel"}, &k) == APS_ERR_INVALID_ARG,
        "unknown shader refused");
  CHECK(strstr(aps_last_error(), "no_such_kernel") != NULL, "message names the shader");
  rt_kernel *ax = kernel(dev, "rt_axpb", 64);
  rt_buffer *x;
  REQUIRE_OK(rt_buffer_create(dev, 1024, RT_MEMORY_DEVICE, &x));
  rt_stream *s;
  REQUIRE_OK(rt_stream_create(dev, NULL, &s));
  axpb_push p = {256, 1, 0};
  rt_dispatch d = axpb(ax, x, 0, x, 512, &p); /* 1024 bytes at offset 512: past the end */
  d.name = "layer7.conv";
  CHECK(rt_stream_dispatch(s, &d) == APS_ERR_INVALID_ARG, "dispatch outside a recording refused");
  REQUIRE_OK(rt_stream_begin(s));
  CHECK(rt_stream_dispatch(s, &d) == APS_ERR_INVALID_ARG, "out-of-range binding refused");
  fprintf(stderr, "message: %s\n", aps_last_error());
  CHECK(strstr(aps_last_error(), "layer7.conv") != NULL, "message names the dispatch");
  d = axpb(ax, x, 0, NULL, 0, &p);
  CHECK(rt_stream_dispatch(s, &d) == APS_ERR_INVALID_ARG, "missing buffer refused");
  d = axpb(ax, x, 0, x, 0, &p);
  d.push = NULL;
  CHECK(rt_stream_dispatch(s, &d) == APS_ERR_INVALID_ARG, "missing push constants refused");
  REQUIRE_OK(rt_stream_end(s));
  CHECK(rt_stream_wait(s, 1000) == APS_OK, "waiting on nothing submitted is fine");
  rt_stream_destroy(s);
  rt_buffer_destroy(x);
  test_device_close(dev);
}
