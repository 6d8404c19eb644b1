/* Dataset readers (IDX, folders of PNGs), batches and PNG grids: real Fashion-MNIST, small
 * crafted files, and every malformed file a clear error (these cases also run under ASan). */
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include "../test.h"
#include "dataset.h"
#include "image_io.h"

/* ------------------------------------------------------------------ helpers */

static char tmp_root[256];

/* A fresh folder under $TMPDIR (or /tmp), removed by tmp_done(). */
static const char *tmp_dir(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmp_root, sizeof tmp_root, "%s/aps_test_app.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmp_root)) {
    test_failures++;
    fprintf(stderr, "cannot create a temporary folder under %s\n", base && *base ? base : "/tmp");
    return NULL;
  }
  return tmp_root;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void tmp_done(void) {
  if (tmp_root[0])
    nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  tmp_root[0] = 0;
}

static char path_buf[8][512];
static int path_next;

/* dir/name in one of a few rotating buffers. */
static const char *join(const char *dir, const char *name) {
  char *p = path_buf[path_next++ % 8];
  snprintf(p, sizeof path_buf[0], "%s/%s", dir, name);
  return p;
}

static void write_plain(const char *path, const void *bytes, size_t n) {
  FILE *f = fopen(path, "wb");
  CHECK(f && fwrite(bytes, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

static void write_gz(const char *path, const void *bytes, size_t n) {
  gzFile f = gzopen(path, "wb");
  CHECK(f && gzwrite(f, bytes, (unsigned)n) == (int)n && gzclose(f) == Z_OK, "cannot write %s", path);
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* An IDX image file's bytes: header (magic, count, rows, cols) then count·rows·cols bytes
 * (pixel k of image i is (i·31 + k·7) mod 256), plus extra bytes; data_bytes caps the data
 * (−1 = all). Returns the length; buf must be large enough. */
static size_t idx_bytes(uint8_t *buf, uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols, long data_bytes,
                        size_t extra) {
  put_be32(buf, magic);
  put_be32(buf + 4, count);
  put_be32(buf + 8, rows);
  put_be32(buf + 12, cols);
  size_t n = (size_t)count * rows * cols;
  if (data_bytes >= 0 && (size_t)data_bytes < n)
    n = (size_t)data_bytes;
  for (size_t k = 0; k < n; k++) {
    size_t i = k / ((size_t)rows * cols), j = k % ((size_t)rows * cols);
    buf[16 + k] = (uint8_t)((i * 31 + j * 7) % 256);
  }
  for (size_t k = 0; k < extra; k++)
    buf[16 + n + k] = 0xAB;
  return 16 + n + extra;
}

static float unit(int v) { return (float)v / 127.5f - 1.0f; }

/* The call must fail with status want, leave *out NULL, and its message must contain
 * every one of the given fragments. */
#define EXPECT_FAIL(call, want, out, ...)                                                               \
  do {                                                                                                  \
    aps_status s_ = (call);                                                                             \
    CHECK(s_ == (want), "%s: status %s, expected %s (%s)", #call, aps_status_name(s_), aps_status_name(want), \
          aps_last_error());                                                                            \
    CHECK((out) == NULL, "%s: output not NULL after a failure", #call);                                 \
    const char *frags_[] = {__VA_ARGS__};                                                               \
    for (size_t f_ = 0; f_ < sizeof frags_ / sizeof *frags_; f_++)                                      \
      CHECK(strstr(aps_last_error(), frags_[f_]), "%s: message lacks '%s': %s", #call, frags_[f_],      \
            aps_last_error());                                                                          \
    if (s_ == APS_OK)                                                                                   \
      aps_dataset_free(out);                                                                            \
    fprintf(stderr, "  expected error: %s\n", aps_last_error());                                       \
  } while (0)

/* ------------------------------------------------------------------ Fashion-MNIST */

TEST_CASE(dataset_fashion_mnist) {
  aps_dataset *d = NULL;
  REQUIRE_OK(aps_dataset_load_fashion_mnist(NULL, 0, &d));
  CHECK(aps_dataset_count(d) == 10000, "count %lld", (long long)aps_dataset_count(d));
  CHECK(aps_dataset_channels(d) == 1 && aps_dataset_height(d) == 32 && aps_dataset_width(d) == 32,
        "shape %dx%dx%d", aps_dataset_channels(d), aps_dataset_height(d), aps_dataset_width(d));
  const float *x = aps_dataset_data(d);
  int64_t out_of_range = 0, border_bad = 0, off_grid = 0;
  double inner_sum = 0;
  for (int64_t i = 0; i < aps_dataset_count(d); i++)
    for (int y = 0; y < 32; y++)
      for (int c = 0; c < 32; c++) {
        float v = x[i * 1024 + y * 32 + c];
        out_of_range += !(v >= -1.0f && v <= 1.0f);
        float byte = (v + 1.0f) * 127.5f;
        off_grid += fabsf(byte - roundf(byte)) > 1e-3f;
        if (y < 2 || y >= 30 || c < 2 || c >= 30)
          border_bad += v != -1.0f;
        else
          inner_sum += (v + 1.0) / 2.0;
      }
  CHECK(out_of_range == 0, "%lld values outside [-1, 1]", (long long)out_of_range);
  CHECK(border_bad == 0, "%lld padding pixels are not -1", (long long)border_bad);
  CHECK(off_grid == 0, "%lld values are not byte / 127.5 - 1", (long long)off_grid);
  /* The test split's pixel mean in [0, 1] is 0.2868 (the train split's, 0.2860). */
  double mean = inner_sum / (10000.0 * 28 * 28);
  CHECK(mean > 0.283 && mean < 0.291, "test-split mean %.4f, expected about 0.2868", mean);
  fprintf(stderr, "  t10k: 10000 images, pixel mean %.4f in [0, 1]\n", mean);
  aps_dataset_free(d);

  uint8_t *labels = NULL;
  int64_t n = 0;
  REQUIRE_OK(aps_idx_load_labels(APS_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz", &labels, &n));
  int per_class[256] = {0};
  for (int64_t i = 0; i < n; i++)
    per_class[labels[i]]++;
  CHECK(n == 10000, "%lld labels", (long long)n);
  for (int k = 0; k < 10; k++)
    CHECK(per_class[k] == 1000, "class %d has %d test images, expected 1000", k, per_class[k]);
  free(labels);

  d = NULL;
  EXPECT_FAIL(aps_dataset_load_fashion_mnist("/nonexistent/fashion-mnist", 1, &d), APS_ERR_IO, d,
              "/nonexistent/fashion-mnist", "dataset-fashion-mnist");
}

/* ------------------------------------------------------------------ IDX */

TEST_CASE(dataset_idx) {
  const char *dir = tmp_dir();
  if (!dir)
    return;
  static uint8_t buf[4096];
  size_t n = idx_bytes(buf, 0x00000803, 3, 4, 6, -1, 0);
  write_plain(join(dir, "plain-idx3-ubyte"), buf, n);
  write_gz(join(dir, "gz-idx3-ubyte.gz"), buf, n);
  const char *names[] = {"plain-idx3-ubyte", "gz-idx3-ubyte.gz"};
  for (int which = 0; which < 2; which++) {
    const char *path = join(dir, names[which]);
    aps_dataset *d = NULL;
    REQUIRE_OK(aps_dataset_load_idx(path, 0, &d));
    CHECK(aps_dataset_count(d) == 3 && aps_dataset_channels(d) == 1 && aps_dataset_height(d) == 4 &&
              aps_dataset_width(d) == 6, "%s: shape", path);
    CHECK(!strcmp(aps_dataset_source(d), path), "source %s", aps_dataset_source(d));
    int bad = 0;
    for (int k = 0; k < 3 * 24; k++)
      bad += aps_dataset_data(d)[k] != unit(buf[16 + k]);
    CHECK(bad == 0, "%s: %d values differ from byte / 127.5 - 1", path, bad);
    aps_dataset_free(d);

    /* Padded to 8×8: rows 2..5, columns 1..6 hold the image; the rest is −1. */
    REQUIRE_OK(aps_dataset_load_idx(path, 8, &d));
    CHECK(aps_dataset_height(d) == 8 && aps_dataset_width(d) == 8, "padded shape");
    bad = 0;
    for (int i = 0; i < 3; i++)
      for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
          int inside = y >= 2 && y < 6 && x >= 1 && x < 7;
          float want = inside ? unit(buf[16 + i * 24 + (y - 2) * 6 + (x - 1)]) : -1.0f;
          bad += aps_dataset_data(d)[i * 64 + y * 8 + x] != want;
        }
    CHECK(bad == 0, "%s: %d padded values wrong", path, bad);
    aps_dataset_free(d);
  }
  /* Padding that cannot centre the image. */
  aps_dataset *d = NULL;
  EXPECT_FAIL(aps_dataset_load_idx(join(dir, names[0]), 7, &d), APS_ERR_INVALID_ARG, d, "cannot centre 4×6");
  EXPECT_FAIL(aps_dataset_load_idx(join(dir, names[0]), 4, &d), APS_ERR_INVALID_ARG, d, "cannot centre 4×6");

  /* Labels. */
  uint8_t lab[8 + 5] = {0, 0, 8, 1, 0, 0, 0, 5, 3, 1, 4, 1, 5};
  write_gz(join(dir, "labels.gz"), lab, sizeof lab);
  uint8_t *labels = NULL;
  int64_t count = 0;
  REQUIRE_OK(aps_idx_load_labels(join(dir, "labels.gz"), &labels, &count));
  CHECK(count == 5 && !memcmp(labels, lab + 8, 5), "labels read back wrong (%lld)", (long long)count);
  free(labels);
  tmp_done();
}

/* Writes bytes plain and gzipped and expects both to fail with the fragments. */
#define EXPECT_IDX_FAIL(name, bytes, len, want, ...)                                                   \
  do {                                                                                             \
    for (int gz_ = 0; gz_ < 2; gz_++) {                                                            \
      char file_[64];                                                                              \
      snprintf(file_, sizeof file_, "%s%s", name, gz_ ? ".gz" : "");                               \
      const char *p_ = join(dir, file_);                                                           \
      (gz_ ? write_gz : write_plain)(p_, bytes, len);                                              \
      aps_dataset *d_ = NULL;                                                                      \
      EXPECT_FAIL(aps_dataset_load_idx(p_, 32, &d_), want, d_, p_, __VA_ARGS__);                   \
    }                                                                                              \
  } while (0)

TEST_CASE(dataset_idx_errors) {
  const char *dir = tmp_dir();
  if (!dir)
    return;
  static uint8_t buf[1 << 16];
  size_t n;

  n = idx_bytes(buf, 0x12345678, 2, 28, 28, -1, 0);
  EXPECT_IDX_FAIL("bad-magic", buf, n, APS_ERR_FORMAT, "magic number 0x12345678", "expected 0x00000803");
  n = idx_bytes(buf, 0x00000D03, 2, 28, 28, -1, 0); /* floats, not bytes */
  EXPECT_IDX_FAIL("float-type", buf, n, APS_ERR_FORMAT, "magic number 0x00000d03", "unsigned");
  n = idx_bytes(buf, 0x00000801, 2, 28, 28, -1, 0); /* a label file given as images */
  EXPECT_IDX_FAIL("wrong-dims", buf, n, APS_ERR_FORMAT, "1 dimensions, expected 3");
  n = idx_bytes(buf, 0x00000804, 2, 28, 28, -1, 0);
  EXPECT_IDX_FAIL("four-dims", buf, n, APS_ERR_FORMAT, "4 dimensions", "expected 3");
  n = idx_bytes(buf, 0x00000803, 0, 28, 28, -1, 0);
  EXPECT_IDX_FAIL("no-images", buf, n, APS_ERR_FORMAT, "is 0", "no images");
  n = idx_bytes(buf, 0x00000803, 2, 0, 28, -1, 0);
  EXPECT_IDX_FAIL("zero-rows", buf, n, APS_ERR_FORMAT, "dimension 1 (rows) is 0");
  n = idx_bytes(buf, 0x00000803, 2, 28, 28, 1000, 0);
  EXPECT_IDX_FAIL("truncated", buf, n, APS_ERR_FORMAT, "truncated", "2 images of 28×28", "1568 bytes", "found 1000");
  n = idx_bytes(buf, 0x00000803, 2, 28, 28, -1, 5);
  EXPECT_IDX_FAIL("trailing", buf, n, APS_ERR_FORMAT, "5 trailing bytes", "1568 bytes", "found 1573");
  n = idx_bytes(buf, 0x00000803, 2, 28, 28, -1, 0);
  EXPECT_IDX_FAIL("short-header", buf, 10, APS_ERR_FORMAT, "truncated header", "expected 16 bytes", "found 10");
  EXPECT_IDX_FAIL("tiny", buf, 3, APS_ERR_FORMAT, "truncated", "found 3 bytes");
  EXPECT_IDX_FAIL("empty", buf, 0, APS_ERR_FORMAT, "truncated", "found 0 bytes");
  /* A header declaring 4 billion images over 64 KiB of data: refused, not allocated. */
  n = idx_bytes(buf, 0x00000803, 0xFFFFFFFF, 16384, 16384, 1000, 0);
  EXPECT_IDX_FAIL("huge", buf, n, APS_ERR_FORMAT, "more than the 4 GiB");
  n = idx_bytes(buf, 0x00000803, 60000, 28, 28, 30000, 0);
  EXPECT_IDX_FAIL("liar", buf, n, APS_ERR_FORMAT, "truncated", "60000 images of 28×28", "found 30000");
  /* Images larger than the padding. */
  n = idx_bytes(buf, 0x00000803, 1, 40, 40, -1, 0);
  EXPECT_IDX_FAIL("too-big", buf, n, APS_ERR_INVALID_ARG, "cannot centre 40×40 images in 32×32");

  /* A gzip stream cut short, and one with a wrong checksum. */
  n = idx_bytes(buf, 0x00000803, 4, 28, 28, -1, 0);
  char whole[512];
  snprintf(whole, sizeof whole, "%s", join(dir, "whole.gz"));
  write_gz(whole, buf, n);
  static uint8_t gz[1 << 16];
  FILE *f = fopen(whole, "rb");
  size_t gz_n = f ? fread(gz, 1, sizeof gz, f) : 0;
  if (f)
    fclose(f);
  CHECK(gz_n > 40, "gzip file of %zu bytes", gz_n);
  aps_dataset *d = NULL;
  write_plain(join(dir, "cut.gz"), gz, gz_n / 2);
  EXPECT_FAIL(aps_dataset_load_idx(join(dir, "cut.gz"), 0, &d), APS_ERR_FORMAT, d, "cut.gz", "truncated",
              "unexpected end of file");
  write_plain(join(dir, "cut-end.gz"), gz, gz_n - 4); /* only the length trailer is missing */
  EXPECT_FAIL(aps_dataset_load_idx(join(dir, "cut-end.gz"), 0, &d), APS_ERR_FORMAT, d, "cut-end.gz", "gzip");
  gz[gz_n - 6] ^= 0xFF; /* the CRC-32 */
  write_plain(join(dir, "bad-crc.gz"), gz, gz_n);
  EXPECT_FAIL(aps_dataset_load_idx(join(dir, "bad-crc.gz"), 0, &d), APS_ERR_FORMAT, d, "bad-crc.gz", "gzip");
  gz[gz_n - 6] ^= 0xFF;
  gz[gz_n / 2] ^= 0x55; /* the deflate data */
  write_plain(join(dir, "flipped.gz"), gz, gz_n);
  aps_status s = aps_dataset_load_idx(join(dir, "flipped.gz"), 0, &d);
  CHECK(s == APS_ERR_FORMAT || s == APS_ERR_IO, "flipped byte: %s", aps_status_name(s));
  CHECK(s == APS_OK || strstr(aps_last_error(), "flipped.gz"), "message: %s", aps_last_error());
  fprintf(stderr, "  expected error: %s\n", aps_last_error());
  aps_dataset_free(d);
  d = NULL;

  /* Not there, a folder, labels given as images and images given as labels. */
  EXPECT_FAIL(aps_dataset_load_idx(join(dir, "missing.gz"), 0, &d), APS_ERR_IO, d, "missing.gz",
              "No such file");
  EXPECT_FAIL(aps_dataset_load_idx(dir, 0, &d), APS_ERR_IO, d, "is a folder");
  uint8_t *labels = NULL;
  int64_t count = 0;
  aps_status ls = aps_idx_load_labels(whole, &labels, &count);
  CHECK(ls == APS_ERR_FORMAT && !labels && strstr(aps_last_error(), "3 dimensions, expected 1"), "%s: %s",
        aps_status_name(ls), aps_last_error());
  EXPECT_FAIL(aps_dataset_load_idx(NULL, 0, &d), APS_ERR_INVALID_ARG, d, "NULL");
  tmp_done();
}

/* ------------------------------------------------------------------ PNG folders */

/* A w×h image of comp channels: value of pixel p, channel k is (p·13 + k·70 + seed) mod 256. */
static void write_png(const char *path, int w, int h, int comp, int seed) {
  uint8_t px[64 * 64 * 4];
  for (int p = 0; p < w * h; p++)
    for (int k = 0; k < comp; k++)
      px[p * comp + k] = (uint8_t)((p * 13 + k * 70 + seed) % 256);
  CHECK(stbi_write_png(path, w, h, comp, px, w * comp), "cannot write %s", path);
}

static int png_value(int p, int k, int seed) { return (p * 13 + k * 70 + seed) % 256; }

TEST_CASE(dataset_png_dir) {
  const char *dir = tmp_dir();
  if (!dir)
    return;
  /* Sorted by name: a.png (RGB), b.png (gray), c.PNG (RGBA); the rest is not loaded. */
  write_png(join(dir, "b.png"), 5, 5, 1, 9);
  write_png(join(dir, "a.png"), 5, 5, 3, 1);
  write_png(join(dir, "c.PNG"), 5, 5, 4, 5);
  write_plain(join(dir, "notes.txt"), "not an image", 12);
  write_png(join(dir, ".hidden.png"), 7, 7, 1, 0);
  CHECK(mkdir(join(dir, "sub.png"), 0755) == 0, "mkdir");

  aps_dataset *d = NULL;
  REQUIRE_OK(aps_dataset_load_png_dir(dir, 5, 3, &d));
  CHECK(aps_dataset_count(d) == 3 && aps_dataset_channels(d) == 3 && aps_dataset_height(d) == 5 &&
            aps_dataset_width(d) == 5, "shape %lld×%d×%d×%d", (long long)aps_dataset_count(d),
        aps_dataset_channels(d), aps_dataset_height(d), aps_dataset_width(d));
  const float *x = aps_dataset_data(d);
  int bad = 0;
  for (int p = 0; p < 25; p++)
    for (int k = 0; k < 3; k++) {
      bad += x[0 * 75 + k * 25 + p] != unit(png_value(p, k, 1)); /* a.png: RGB as is */
      bad += x[1 * 75 + k * 25 + p] != unit(png_value(p, 0, 9)); /* b.png: gray to all three */
      bad += x[2 * 75 + k * 25 + p] != unit(png_value(p, k, 5)); /* c.PNG: alpha dropped */
    }
  CHECK(bad == 0, "%d values wrong (RGB)", bad);
  aps_dataset_free(d);

  REQUIRE_OK(aps_dataset_load_png_dir(dir, 5, 1, &d));
  CHECK(aps_dataset_count(d) == 3 && aps_dataset_channels(d) == 1, "gray shape");
  x = aps_dataset_data(d);
  bad = 0;
  for (int p = 0; p < 25; p++) {
    bad += x[25 + p] != unit(png_value(p, 0, 9)); /* gray stays exact */
    /* RGB to gray: a luminance, between the smallest and largest channel. */
    int lo = 255, hi = 0;
    for (int k = 0; k < 3; k++) {
      int v = png_value(p, k, 1);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
    bad += x[p] < unit(lo) - 1e-6f || x[p] > unit(hi) + 1e-6f;
  }
  CHECK(bad == 0, "%d values wrong (gray)", bad);
  aps_dataset_free(d);

  /* --data DIR takes the same path. */
  REQUIRE_OK(aps_dataset_load(dir, 5, 3, &d));
  CHECK(aps_dataset_count(d) == 3, "aps_dataset_load");
  aps_dataset_free(d);
  tmp_done();
}

TEST_CASE(dataset_png_errors) {
  const char *dir = tmp_dir();
  if (!dir)
    return;
  aps_dataset *d = NULL;
  EXPECT_FAIL(aps_dataset_load_png_dir(dir, 5, 3, &d), APS_ERR_FORMAT, d, dir, "no *.png");
  EXPECT_FAIL(aps_dataset_load_png_dir(join(dir, "nowhere"), 5, 3, &d), APS_ERR_IO, d, "nowhere",
              "cannot open folder");
  write_png(join(dir, "a.png"), 5, 5, 3, 0);
  EXPECT_FAIL(aps_dataset_load_png_dir(dir, 5, 2, &d), APS_ERR_INVALID_ARG, d, "channels");
  EXPECT_FAIL(aps_dataset_load_png_dir(dir, 0, 3, &d), APS_ERR_INVALID_ARG, d, "size");
  EXPECT_FAIL(aps_dataset_load(dir, 5, 1 + 3, &d), APS_ERR_INVALID_ARG, d, "channels");
  EXPECT_FAIL(aps_dataset_load("fashion-mnist", 32, 3, &d), APS_ERR_INVALID_ARG, d, "1-channel");

  /* The wrong size: named with its size, never resized. */
  write_png(join(dir, "b.png"), 6, 5, 3, 0);
  EXPECT_FAIL(aps_dataset_load_png_dir(dir, 5, 3, &d), APS_ERR_FORMAT, d, "b.png", "6×5", "expected 5×5");
  CHECK(remove(join(dir, "b.png")) == 0, "remove");

  /* Not a PNG at all. */
  write_plain(join(dir, "c.png"), "this is not a PNG file, just text", 33);
  EXPECT_FAIL(aps_dataset_load_png_dir(dir, 5, 3, &d), APS_ERR_FORMAT, d, "c.png", "not a PNG file");
  write_plain(join(dir, "c.png"), "", 0);
  EXPECT_FAIL(aps_dataset_load_png_dir(dir, 5, 3, &d), APS_ERR_FORMAT, d, "c.png", "not a PNG file (it is empty)");

  /* A real PNG, truncated, or with its image data damaged. */
  write_png(join(dir, "c.png"), 5, 5, 3, 3);
  static uint8_t png[1 << 14];
  FILE *f = fopen(join(dir, "c.png"), "rb");
  size_t n = f ? fread(png, 1, sizeof png, f) : 0;
  if (f)
    fclose(f);
  CHECK(n > 60, "PNG of %zu bytes", n);
  size_t cuts[] = {8, 20, 33, 45, n / 2, n - 12};
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
    write_plain(join(dir, "c.png"), png, cuts[i]);
    EXPECT_FAIL(aps_dataset_load_png_dir(dir, 5, 3, &d), APS_ERR_FORMAT, d, "c.png", "cannot decode the image");
  }
  /* Damage every byte after the signature in turn: a clean error or a load, never a crash. */
  int failed = 0;
  for (size_t i = 8; i < n; i++) {
    uint8_t keep = png[i];
    png[i] ^= 0xA5;
    write_plain(join(dir, "c.png"), png, n);
    png[i] = keep;
    aps_status s = aps_dataset_load_png_dir(dir, 5, 3, &d);
    if (s != APS_OK) {
      failed++;
      CHECK(s == APS_ERR_FORMAT && strstr(aps_last_error(), "c.png") && d == NULL, "byte %zu: %s: %s", i,
            aps_status_name(s), aps_last_error());
    } else
      CHECK(aps_dataset_count(d) == 2, "byte %zu: %lld images", i, (long long)aps_dataset_count(d));
    aps_dataset_free(d);
    d = NULL;
  }
  CHECK(failed > 0, "no damaged PNG was refused");
  fprintf(stderr, "  %d of %zu damaged PNGs refused\n", failed, n - 8);
  tmp_done();
}

/* ------------------------------------------------------------------ batches */

TEST_CASE(dataset_batch) {
  /* splitmix64 pinned: a checkpoint's saved state must mean the same batches forever. */
  uint64_t st = 0;
  CHECK(aps_rng_next(&st) == 0xE220A8397B1DCDAFull, "splitmix64 from 0 gave a different first value");
  st = 42;
  CHECK(aps_rng_below(&st, 1) == 0 && st == 42, "below(1) draws nothing");

  const char *dir = tmp_dir();
  if (!dir)
    return;
  /* 5 images of 3×4, each row different left to right (so a flip is visible). */
  static uint8_t buf[256];
  size_t n = idx_bytes(buf, 0x00000803, 5, 3, 4, -1, 0);
  write_plain(join(dir, "b-idx3-ubyte"), buf, n);
  aps_dataset *d = NULL;
  REQUIRE_OK(aps_dataset_load_idx(join(dir, "b-idx3-ubyte"), 0, &d));
  tmp_done();
  const float *x = aps_dataset_data(d);
  enum { B = 64, PER = 12 };
  float a[B * PER], b[B * PER];
  for (int hflip = 0; hflip < 2; hflip++) {
    uint64_t s1 = 1234, s2 = 1234;
    REQUIRE_OK(aps_dataset_batch(d, &s1, B, hflip, a));
    REQUIRE_OK(aps_dataset_batch(d, &s2, B, hflip, b));
    CHECK(!memcmp(a, b, sizeof a) && s1 == s2 && s1 != 1234, "hflip %d: same state, different batch", hflip);
    /* Resuming from a saved state gives the next batch exactly. */
    uint64_t saved = s1;
    REQUIRE_OK(aps_dataset_batch(d, &s1, B, hflip, a));
    REQUIRE_OK(aps_dataset_batch(d, &saved, B, hflip, b));
    CHECK(!memcmp(a, b, sizeof a) && s1 == saved, "hflip %d: resumed batch differs", hflip);
    /* Each image is a dataset image, mirrored only with hflip; both kinds show up. */
    int plain = 0, mirrored = 0, neither = 0;
    for (int i = 0; i < B; i++) {
      int found = 0;
      for (int j = 0; j < 5 && !found; j++) {
        const float *src = x + j * PER, *img = a + i * PER;
        int same = 1, mirror = 1;
        for (int r = 0; r < 3; r++)
          for (int c = 0; c < 4; c++) {
            same &= img[r * 4 + c] == src[r * 4 + c];
            mirror &= img[r * 4 + c] == src[r * 4 + 3 - c];
          }
        found = same ? 1 : mirror ? 2 : 0;
      }
      plain += found == 1;
      mirrored += found == 2;
      neither += found == 0;
    }
    CHECK(neither == 0, "hflip %d: %d images match no dataset image", hflip, neither);
    if (hflip)
      CHECK(plain > 10 && mirrored > 10, "hflip: %d plain, %d mirrored of %d", plain, mirrored, B);
    else
      CHECK(mirrored == 0, "no hflip, yet %d mirrored", mirrored);
    uint64_t s3 = 99;
    REQUIRE_OK(aps_dataset_batch(d, &s3, B, hflip, b));
    CHECK(memcmp(a, b, sizeof a), "hflip %d: another state gave the same batch", hflip);
  }
  /* Uniform indices: 50000 draws over 5 images, each within 5% of 10000. */
  int hist[5] = {0};
  uint64_t s = 7;
  for (int i = 0; i < 50000; i++)
    hist[aps_rng_below(&s, 5)]++;
  for (int k = 0; k < 5; k++)
    CHECK(hist[k] > 9500 && hist[k] < 10500, "index %d drawn %d times of 50000", k, hist[k]);
  aps_status bs = aps_dataset_batch(d, &s, 0, 0, a);
  CHECK(bs == APS_ERR_INVALID_ARG, "batch 0: %s", aps_status_name(bs));
  bs = aps_dataset_batch(d, NULL, 4, 0, a);
  CHECK(bs == APS_ERR_INVALID_ARG, "NULL state: %s", aps_status_name(bs));
  aps_dataset_free(d);
}

/* ------------------------------------------------------------------ PNG grids */

static int grid_byte(float v) {
  v = v > -1.0f ? v : -1.0f;
  v = v < 1.0f ? v : 1.0f;
  return (int)((v + 1.0f) * 127.5f + 0.5f);
}

TEST_CASE(image_grid) {
  const char *dir = tmp_dir();
  if (!dir)
    return;
  /* 5 RGB images of 4 rows × 3 columns, 2 columns, 1 pixel of padding: 9 × 16 pixels. */
  enum { N = 5, C = 3, H = 4, W = 3 };
  float img[N * C * H * W];
  for (int i = 0; i < N * C * H * W; i++)
    img[i] = unit((i * 37) % 256);
  img[0] = 5.0f;                /* clamped to 1 → 255 */
  img[1] = -7.0f;               /* clamped to −1 → 0 */
  img[2] = NAN;                 /* → 0 */
  img[3] = 0.0f;                /* → 128 (127.5 rounds up) */
  const char *path = join(dir, "grid.png");
  REQUIRE_OK(aps_png_write_grid(path, img, N, C, H, W, 2, 1));
  int w = 0, h = 0, comp = 0;
  uint8_t *px = stbi_load(path, &w, &h, &comp, 0);
  CHECK(px != NULL, "cannot read %s back: %s", path, stbi_failure_reason());
  if (!px)
    return;
  CHECK(w == 9 && h == 16 && comp == 3, "grid %d×%d×%d, expected 9×16×3", w, h, comp);
  int bad = 0, pad_bad = 0;
  for (int y = 0; y < h && w == 9 && h == 16; y++)
    for (int x = 0; x < w; x++) {
      int col = (x - 1) / (W + 1), cx = (x - 1) % (W + 1), row = (y - 1) / (H + 1), cy = (y - 1) % (H + 1);
      int i = row * 2 + col;
      int in_image = x >= 1 && y >= 1 && cx < W && cy < H && i < N;
      for (int k = 0; k < C; k++) {
        int got = px[(y * w + x) * C + k];
        if (in_image)
          bad += got != grid_byte(img[((i * C + k) * H + cy) * W + cx]);
        else
          pad_bad += got != APS_GRID_PAD_VALUE;
      }
    }
  CHECK(bad == 0, "%d image bytes wrong", bad);
  CHECK(pad_bad == 0, "%d padding bytes are not %d", pad_bad, APS_GRID_PAD_VALUE);
  /* Image 0's first row starts at pixel (1, 1); its second at (1, 2). */
  CHECK(px[0] == APS_GRID_PAD_VALUE && px[(9 + 1) * 3] == 255 && px[(9 + 2) * 3] == 0 && px[(9 + 3) * 3] == 0 &&
            px[(18 + 1) * 3] == 128,
        "clamping: %d %d %d %d", px[(9 + 1) * 3], px[(9 + 2) * 3], px[(9 + 3) * 3], px[(18 + 1) * 3]);
  stbi_image_free(px);

  /* Gray, no padding, more columns than images; written over the old file. */
  REQUIRE_OK(aps_png_write_grid(path, img, 2, 1, H, W, 8, 0));
  px = stbi_load(path, &w, &h, &comp, 0);
  CHECK(px && w == 2 * W && h == H && comp == 1, "gray grid %d×%d×%d", w, h, comp);
  if (px) {
    bad = 0;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < 2 * W; x++)
        bad += px[y * w + x] != grid_byte(img[(x / W) * H * W + y * W + x % W]);
    CHECK(bad == 0, "%d gray bytes wrong", bad);
  }
  stbi_image_free(px);

  /* Nothing left behind but grid.png. */
  char cmd[600];
  snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s')\" = grid.png", dir);
  CHECK(system(cmd) == 0, "temporary files left in %s", dir);

  /* The dataset reader reads the grid's bytes back as the values written. */
  const float *square = img + 60; /* one 3×4×4 image of byte values */
  REQUIRE_OK(aps_png_write_grid(join(dir, "one.png"), square, 1, C, 4, 4, 1, 0));
  CHECK(remove(path) == 0, "remove");
  aps_dataset *d = NULL;
  REQUIRE_OK(aps_dataset_load_png_dir(dir, 4, C, &d));
  CHECK(aps_dataset_count(d) == 1 && !memcmp(aps_dataset_data(d), square, sizeof(float) * C * 4 * 4),
        "PNG round trip changed values");
  aps_dataset_free(d);
  tmp_done();
}

TEST_CASE(image_grid_errors) {
  const char *dir = tmp_dir();
  if (!dir)
    return;
  float img[2 * 3 * 4 * 4] = {0};
  const char *path = join(dir, "no/such/folder/grid.png");
  aps_status s = aps_png_write_grid(path, img, 2, 3, 4, 4, 2, 1);
  CHECK(s == APS_ERR_IO && strstr(aps_last_error(), path) && strstr(aps_last_error(), "No such file"), "%s: %s",
        aps_status_name(s), aps_last_error());
  fprintf(stderr, "  expected error: %s\n", aps_last_error());
  s = aps_png_write_grid(dir, img, 2, 3, 4, 4, 2, 1); /* a folder where the file would go: refused by name */
  CHECK(s == APS_ERR_IO && strstr(aps_last_error(), dir) && strstr(aps_last_error(), "is a folder"), "%s: %s",
        aps_status_name(s), aps_last_error());
  fprintf(stderr, "  expected error: %s\n", aps_last_error());
  struct {
    int n, c, h, w, cols, pad;
  } bad[] = {{0, 3, 4, 4, 1, 0}, {1, 2, 4, 4, 1, 0}, {1, 3, 0, 4, 1, 0}, {1, 3, 4, 4, 0, 0}, {1, 3, 4, 4, 1, -1},
             {1, 3, 4, 4, 1, 100000}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    s = aps_png_write_grid(join(dir, "x.png"), img, bad[i].n, bad[i].c, bad[i].h, bad[i].w, bad[i].cols, bad[i].pad);
    CHECK(s == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "x.png"), "case %zu: %s: %s", i, aps_status_name(s),
          aps_last_error());
  }
  s = aps_png_write_grid(NULL, img, 1, 3, 4, 4, 1, 0);
  CHECK(s == APS_ERR_INVALID_ARG, "NULL path: %s", aps_status_name(s));
  char cmd[600];
  snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", dir);
  CHECK(system(cmd) == 0, "files left in %s after failures", dir);
  tmp_done();
}
