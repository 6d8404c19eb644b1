/* Kernels: reflection, specialization, the on-disk pipeline cache, and GEMM. */
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../test.h"
#include "gemm_f32.h"
#include "rt_internal.h"
#include "shader_table.h"

static const aps_shader_entry *shader(const char *name) {
  for (size_t i = 0; i < aps_shader_count; i++)
    if (!strcmp(aps_shader_table[i].name, name))
      return &aps_shader_table[i];
  return NULL;
}

TEST_CASE(reflect) {
  rt_reflection r;
  const aps_shader_entry *e = shader("rt_axpb");
  REQUIRE_OK(e ? rt_reflect(e->words, *e->size, e->name, &r) : APS_ERR_INVALID_ARG);
  CHECK(r.info.binding_count == 2, "axpb has 2 bindings (%u)", r.info.binding_count);
  CHECK(r.info.access[0] == RT_ACCESS_READ && r.info.access[1] == RT_ACCESS_WRITE, "readonly in, writeonly out");
  CHECK(r.info.push_size == 12, "push constants uint+float+float = 12 (%u)", r.info.push_size);
  CHECK(r.local_size_spec[0] == 0, "local size x from constant_id 0");
  e = shader("rt_add_inplace");
  REQUIRE_OK(e ? rt_reflect(e->words, *e->size, e->name, &r) : APS_ERR_INVALID_ARG);
  CHECK(r.info.binding_count == 1 && r.info.access[0] == RT_ACCESS_READ_WRITE, "in-place binding is read-write");
  CHECK(r.info.push_size == 8 && r.info.local_size[0] == 64, "push 8 (%u), local size 64 (%u)", r.info.push_size,
        r.info.local_size[0]);
  CHECK(r.local_size_spec[0] == UINT32_MAX, "literal local size");
  e = shader("rt_noop");
  REQUIRE_OK(e ? rt_reflect(e->words, *e->size, e->name, &r) : APS_ERR_INVALID_ARG);
  CHECK(r.info.binding_count == 1 && r.info.access[0] == RT_ACCESS_READ && r.info.push_size == 0, "noop");
  /* Every shipped shader reflects cleanly. */
  for (size_t i = 0; i < aps_shader_count; i++)
    CHECK(rt_reflect(aps_shader_table[i].words, *aps_shader_table[i].size, aps_shader_table[i].name, &r) == APS_OK,
          "%s: %s", aps_shader_table[i].name, aps_last_error());
  uint32_t junk[8] = {0x07230203u, 0x10000, 0, 100, 0, 0xffff0011u, 0, 0};
  CHECK(rt_reflect(junk, sizeof junk, "junk", &r) == APS_ERR_FORMAT, "truncated instruction refused");
  CHECK(rt_reflect(junk + 1, 16, "junk", &r) == APS_ERR_FORMAT, "bad magic refused");
}

TEST_CASE(spec_constants) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  float three = 3.0f, five = 5.0f;
  rt_kernel_desc d3 = {.shader = "rt_fill_spec", .spec_count = 1}, d5 = d3;
  memcpy(&d3.spec[0], &three, 4);
  memcpy(&d5.spec[0], &five, 4);
  rt_kernel *k3, *k5, *again;
  REQUIRE_OK(rt_kernel_get(dev, &d3, &k3));
  REQUIRE_OK(rt_kernel_get(dev, &d5, &k5));
  REQUIRE_OK(rt_kernel_get(dev, &d3, &again));
  CHECK(k3 != k5 && k3 == again, "one pipeline per specialization, reused on request");
  enum { N = 100 };
  rt_buffer *a, *b;
  REQUIRE_OK(rt_buffer_create(dev, N * 4, RT_MEMORY_DEVICE, &a));
  REQUIRE_OK(rt_buffer_create(dev, N * 4, RT_MEMORY_DEVICE, &b));
  rt_stream *s;
  REQUIRE_OK(rt_stream_create(dev, NULL, &s));
  uint32_t n = N;
  REQUIRE_OK(rt_stream_begin(s));
  REQUIRE_OK(rt_stream_dispatch(s, &(rt_dispatch){.kernel = k3, .bindings = {{a}}, .push = &n, .groups = {2}}));
  REQUIRE_OK(rt_stream_dispatch(s, &(rt_dispatch){.kernel = k5, .bindings = {{b}}, .push = &n, .groups = {2}}));
  REQUIRE_OK(rt_stream_end(s));
  REQUIRE_OK(rt_stream_run(s));
  float va[N], vb[N];
  REQUIRE_OK(rt_buffer_read(a, 0, va, sizeof va));
  REQUIRE_OK(rt_buffer_read(b, 0, vb, sizeof vb));
  int bad = 0;
  for (int i = 0; i < N; i++)
    bad += va[i] != 3.0f * (float)(i + 1) || vb[i] != 5.0f * (float)(i + 1);
  CHECK(bad == 0, "%d wrong values (a[0]=%g, b[0]=%g)", bad, va[0], vb[0]);
  rt_stream_destroy(s);
  rt_buffer_destroy(a);
  rt_buffer_destroy(b);
  test_device_close(dev);
}

/* ---- pipeline cache across processes */

static const char *const cache_kernels[] = {"rt_axpb", "rt_add_inplace", "rt_noop", "copy_vec4", "gemm_f32"};

/* gemm_f32 declares 7 storage buffers (A, B, C, 4 epilogue operands); with fewer per stage
 * (APS_LIMITS=vulkan-min) its 4-buffer variant is the one a device can run. */
static const char *gemm_shader(rt_device *dev, const char *name) {
  if (strcmp(name, "gemm_f32") || rt_device_caps(dev)->max_storage_buffers >= 7)
    return name;
  return "gemm_f32_b4";
}

/* The child: create the kernels and run each once (lavapipe compiles a pipeline at its
 * first dispatch), report the pipeline statistics and the time on stdout. */
TEST_HELPER(pipeline_cache_child) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  rt_buffer *buf;
  REQUIRE_OK(rt_buffer_create(dev, 4096, RT_MEMORY_DEVICE, &buf));
  rt_stream *s;
  REQUIRE_OK(rt_stream_create(dev, NULL, &s));
  static const uint8_t zeros[128]; /* sizes of 0 in every push block: the kernels do no work */
  double t0 = aps_now_ms();
  for (size_t i = 0; i < sizeof cache_kernels / sizeof *cache_kernels; i++) {
    rt_kernel *k;
    REQUIRE_OK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = gemm_shader(dev, cache_kernels[i])}, &k));
    rt_dispatch d = {.kernel = k, .push = zeros, .name = cache_kernels[i]};
    for (uint32_t b = 0; b < rt_kernel_get_info(k)->binding_count; b++)
      d.bindings[b].buffer = buf;
    REQUIRE_OK(rt_stream_begin(s));
    REQUIRE_OK(rt_stream_dispatch(s, &d));
    REQUIRE_OK(rt_stream_end(s));
    REQUIRE_OK(rt_stream_run(s));
  }
  double ms = aps_now_ms() - t0;
  rt_pipeline_stats st;
  rt_pipeline_get_stats(dev, &st);
  printf("created=%u hits=%u loaded=%d bytes=%llu ms=%.3f warnings=%u\n", st.pipelines_created, st.cache_hits,
         st.cache_loaded, (unsigned long long)st.cache_bytes_loaded, ms, aps_warning_count());
  fflush(stdout);
  rt_stream_destroy(s);
  rt_buffer_destroy(buf);
  test_device_close(dev);
}

typedef struct child_report {
  unsigned created, hits, warnings;
  int loaded;
  unsigned long long bytes;
  double ms;
} child_report;

static int run_child(const char *self, child_report *r) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' pipeline_cache_child", self);
  FILE *p = popen(cmd, "r");
  if (!p)
    return -1;
  char line[256];
  int got = 0;
  while (fgets(line, sizeof line, p))
    if (sscanf(line, "created=%u hits=%u loaded=%d bytes=%llu ms=%lf warnings=%u", &r->created, &r->hits,
               &r->loaded, &r->bytes, &r->ms, &r->warnings) == 6)
      got = 1;
  int status = pclose(p);
  return got && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static char self_path[1024];
static char cache_dir[256];

static void remove_cache_dir(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_dir);
  if (strncmp(cache_dir, "/tmp/aps-test-cache-", 20) == 0 && system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", cache_dir);
}

static void use_fresh_cache_dir(char *dir, size_t size) {
  snprintf(dir, size, "/tmp/aps-test-cache-XXXXXX");
  if (!mkdtemp(dir))
    snprintf(dir, size, "/tmp");
  snprintf(cache_dir, sizeof cache_dir, "%s", dir);
  atexit(remove_cache_dir);
  /* Both our cache and the driver's own (Mesa keeps its shader cache under
   * $XDG_CACHE_HOME too) start empty here. */
  setenv("XDG_CACHE_HOME", dir, 1);
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  self_path[n > 0 ? n : 0] = 0;
}

TEST_CASE(pipeline_cache_hit) {
  char dir[256];
  use_fresh_cache_dir(dir, sizeof dir);
  child_report first = {0}, second = {0};
  CHECK(run_child(self_path, &first) == 0, "first child ran");
  CHECK(run_child(self_path, &second) == 0, "second child ran");
  fprintf(stderr,
          "pipeline cache: first start: %u pipelines created and run once in %.1f ms (cache loaded %d); "
          "second start: %.1f ms (cache loaded %d, %llu bytes, %u/%u reported by the driver as cache hits), "
          "%.1fx faster\n",
          first.created, first.ms, first.loaded, second.ms, second.loaded, second.bytes, second.hits, second.created,
          second.ms > 0 ? first.ms / second.ms : 0);
  CHECK(!first.loaded && first.hits == 0, "the first start finds no cache");
  CHECK(second.loaded && second.bytes > 0, "the second start loads the cache");
  /* A hit shows as the driver's creation feedback, or (lavapipe, which keeps only a header
   * in a VkPipelineCache and caches compiled shaders on disk itself) as time saved. */
  CHECK(second.hits == second.created || second.ms < 0.5 * first.ms,
        "the second start hits the cache (%u/%u hits, %.1f vs %.1f ms)", second.hits, second.created, second.ms,
        first.ms);
  CHECK(first.warnings == 0 && second.warnings == 0, "no warnings");
}

TEST_CASE(pipeline_cache_corrupt) {
  char dir[256];
  use_fresh_cache_dir(dir, sizeof dir);
  child_report r = {0};
  CHECK(run_child(self_path, &r) == 0, "child ran");
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  char path[1100];
  snprintf(path, sizeof path, "%s", rt_pipeline_cache_path(dev));
  test_device_close(dev);
  FILE *f = fopen(path, "r+b");
  CHECK(f != NULL, "cache file %s exists", path);
  if (!f)
    return;
  /* Flip the last byte, in the driver's data after our header: the checksum must catch it. */
  fseek(f, -1, SEEK_END);
  int c = fgetc(f);
  fseek(f, -1, SEEK_END);
  fputc(c ^ 0x5a, f);
  fclose(f);
  unsigned before = aps_warning_count();
  CHECK(run_child(self_path, &r) == 0, "a child with a corrupt cache still runs");
  CHECK(!r.loaded && r.warnings == 1, "corrupt cache ignored with one warning (loaded %d, warnings %u)", r.loaded,
        r.warnings);
  CHECK(run_child(self_path, &r) == 0 && r.loaded && r.warnings == 0, "the cache was rewritten whole");
  /* A file that is not a cache at all. */
  f = fopen(path, "wb");
  fputs("not a pipeline cache", f);
  fclose(f);
  CHECK(run_child(self_path, &r) == 0 && !r.loaded && r.warnings == 1, "foreign file ignored with a warning");
  (void)before;
}

/* ---- GEMM against a CPU reference */

static void gemm_ref(const float *a, const float *b, double *c, int m, int n, int k) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0;
      for (int p = 0; p < k; p++)
        s += (double)a[(size_t)i * k + p] * b[(size_t)p * n + j];
      c[(size_t)i * n + j] = s;
    }
}

static int gemm_case(rt_device *dev, rt_stream *s, rt_kernel *kern, int m, int n, int k, float alpha, int accumulate) {
  size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
  float *a = malloc(na * 4), *b = malloc(nb * 4), *c = malloc(nc * 4), *c0 = malloc(nc * 4);
  double *ref = malloc(nc * 8);
  unsigned seed = (unsigned)(m * 7919 + n * 31 + k);
  for (size_t i = 0; i < na; i++)
    a[i] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
  for (size_t i = 0; i < nb; i++)
    b[i] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
  for (size_t i = 0; i < nc; i++)
    c0[i] = (float)i * 0.001f;
  gemm_ref(a, b, ref, m, n, k);
  rt_buffer *ba, *bb, *bc;
  int ok = rt_buffer_create(dev, na * 4, RT_MEMORY_DEVICE, &ba) == APS_OK &&
           rt_buffer_create(dev, nb * 4, RT_MEMORY_DEVICE, &bb) == APS_OK &&
           rt_buffer_create(dev, nc * 4, RT_MEMORY_DEVICE, &bc) == APS_OK;
  CHECK(ok, "buffers: %s", aps_last_error());
  if (!ok)
    return 1;
  aps_gemm_f32_push p = {.m = (uint32_t)m, .n = (uint32_t)n, .k = (uint32_t)k, .alpha = alpha,
                         .flags = accumulate ? APS_GEMM_F32_ACCUMULATE : 0};
  rt_dispatch d = {.kernel = kern, .bindings = {{ba}, {bb}, {bc}, {ba}, {ba}, {ba}, {ba}}, .push = &p,
                   .groups = {(uint32_t)(n + APS_GEMM_F32_TILE_N - 1) / APS_GEMM_F32_TILE_N,
                              (uint32_t)(m + APS_GEMM_F32_TILE_M - 1) / APS_GEMM_F32_TILE_M, 1},
                   .name = "gemm"};
  ok = rt_buffer_write(ba, 0, a, na * 4) == APS_OK && rt_buffer_write(bb, 0, b, nb * 4) == APS_OK &&
       rt_buffer_write(bc, 0, c0, nc * 4) == APS_OK && rt_stream_begin(s) == APS_OK &&
       rt_stream_dispatch(s, &d) == APS_OK && rt_stream_end(s) == APS_OK && rt_stream_run(s) == APS_OK &&
       rt_buffer_read(bc, 0, c, nc * 4) == APS_OK;
  CHECK(ok, "gemm %dx%dx%d ran: %s", m, n, k, aps_last_error());
  double worst = 0;
  int nonfinite = 0;
  for (size_t i = 0; ok && i < nc; i++) {
    double want = alpha * ref[i] + (accumulate ? c0[i] : 0.0);
    double err = fabs(c[i] - want) / (1e-5 * sqrt((double)k) + 1e-6 * fabs(want) * k);
    nonfinite += !isfinite(c[i]);
    if (err > worst)
      worst = err;
  }
  /* Error relative to fp32 rounding over k terms of size ~0.25: within 1 unit of the bound. */
  CHECK(ok && worst <= 1.0 && !nonfinite, "gemm %dx%dx%d alpha %g acc %d: worst scaled error %.3f, %d non-finite",
        m, n, k, alpha, accumulate, worst, nonfinite);
  rt_buffer_destroy(ba);
  rt_buffer_destroy(bb);
  rt_buffer_destroy(bc);
  free(a);
  free(b);
  free(c);
  free(c0);
  free(ref);
  return 0;
}

TEST_CASE(gemm) {
  rt_device *dev = test_device_open(NULL);
  if (!dev)
    return;
  rt_kernel *k;
  REQUIRE_OK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = gemm_shader(dev, "gemm_f32")}, &k));
  rt_stream *s;
  REQUIRE_OK(rt_stream_create(dev, NULL, &s));
  static const int sizes[] = {1, 7, 33, 257};
  for (int i = 0; i < 4; i++)
    gemm_case(dev, s, k, sizes[i], sizes[i], sizes[i], 1.0f, 0);
  gemm_case(dev, s, k, 7, 33, 257, 1.0f, 0);
  gemm_case(dev, s, k, 257, 1, 33, 1.0f, 0);
  gemm_case(dev, s, k, 33, 257, 7, 1.0f, 0);
  gemm_case(dev, s, k, 1, 257, 1, 1.0f, 0);
  gemm_case(dev, s, k, 65, 129, 64, -0.5f, 1);
  gemm_case(dev, s, k, 128, 128, 128, 2.0f, 0);
  rt_stream_destroy(s);
  test_device_close(dev);
}

/* Every pipeline is checked against the caps before it is made: under APS_LIMITS=vulkan-min a
 * kernel with too many storage buffers or invocations is refused, naming the shader and the
 * limit; one within them is made. Reflection follows specialization (local size, shared arrays). */
TEST_CASE(pipeline_limits) {
  rt_reflection r;
  const aps_shader_entry *e = shader("lu");
  uint32_t spec[2] = {0, 128};
  REQUIRE_OK(e ? rt_reflect_spec(e->words, *e->size, e->name, spec, 2, &r) : APS_ERR_INVALID_ARG);
  CHECK(r.info.local_size[0] == 128 && r.local_size_spec[0] == 1, "lu: local size 128 from constant_id 1 (%u)",
        r.info.local_size[0]);
  CHECK(r.info.shared_bytes == 2 * 256 * 4 + 2 * 512 * 4, "lu: shared memory %u bytes", r.info.shared_bytes);
  rt_kernel_info full, few;
  REQUIRE_OK(rt_shader_info("conv2d_f32", &full));
  REQUIRE_OK(rt_shader_info("conv2d_f32_b4", &few));
  CHECK(full.binding_count == 16 && few.binding_count == 4, "conv2d_f32: 16 bindings, its _b4 variant 4 (%u, %u)",
        full.binding_count, few.binding_count);
  CHECK(rt_shader_info("no_such_shader", &few) == APS_ERR_INVALID_ARG, "unknown shader refused");

  const char *was = getenv("APS_LIMITS");
  char saved[64] = "";
  if (was)
    snprintf(saved, sizeof saved, "%s", was);
  setenv("APS_LIMITS", "vulkan-min", 1);
  rt_device *dev = test_device_open(NULL);
  if (dev) {
    rt_kernel *k = NULL;
    aps_status s = rt_kernel_get(dev, &(rt_kernel_desc){.shader = "conv2d_f32"}, &k);
    fprintf(stderr, "message: %s\n", aps_last_error());
    CHECK(s == APS_ERR_UNSUPPORTED && !k, "16 storage buffers refused (%s)", aps_status_name(s));
    CHECK(strstr(aps_last_error(), "conv2d_f32") && strstr(aps_last_error(), "maxPerStageDescriptorStorageBuffers"),
          "names the shader and the limit");
    REQUIRE_OK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "conv2d_f32_b4"}, &k));
    s = rt_kernel_get(dev, &(rt_kernel_desc){.shader = "rt_axpb", .spec_count = 1, .spec = {256}}, &k);
    fprintf(stderr, "message: %s\n", aps_last_error());
    CHECK(s == APS_ERR_UNSUPPORTED, "256 invocations refused (%s)", aps_status_name(s));
    CHECK(strstr(aps_last_error(), "rt_axpb") && strstr(aps_last_error(), "maxComputeWorkGroupInvocations"),
          "names the shader and the limit");
    REQUIRE_OK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "rt_axpb", .spec_count = 1, .spec = {128}}, &k));
    REQUIRE_OK(rt_kernel_get(dev, &(rt_kernel_desc){.shader = "lu", .spec_count = 2, .spec = {0, 128}}, &k));
    s = rt_kernel_get(dev, &(rt_kernel_desc){.shader = "lu", .spec_count = 2, .spec = {0, 256}}, &k);
    CHECK(s == APS_ERR_UNSUPPORTED, "lu at 256 invocations refused (%s)", aps_status_name(s));
    test_device_close(dev);
  }
  if (saved[0])
    setenv("APS_LIMITS", saved, 1);
  else
    unsetenv("APS_LIMITS");
}
