/* Safetensors reading and writing: round trips, every kind of bad file (each must give a
 * clear error and never crash), byte-flip fuzzing, atomic writes, and loading parameters
 * into the CPU interpreter and a plan. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../test.h"
#include "graph.h"
#include "safetensors.h"

/* ---- helpers: a scratch folder per case, files from bytes */

static char dir[512];

static const char *tmp_path(const char *name) {
  static char buf[8][700];
  static int k;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static void scratch_close(void);

static int scratch_open(void) {
  static int registered;
  if (!registered++) /* also cleans up after a case that returned early */
    atexit(scratch_close);
  scratch_close();
  const char *base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(dir, sizeof dir, "%s/aps_st_XXXXXX", base);
  if (!mkdtemp(dir)) {
    CHECK(0, "cannot make a scratch folder under %s", base);
    return 0;
  }
  return 1;
}

/* Removes the scratch folder (one level of subfolders, which the cases make). */
static void rm_tree(const char *path, int depth) {
  DIR *d = opendir(path);
  struct dirent *e;
  char sub[1024];
  while (d && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    struct stat sb;
    if (!lstat(sub, &sb) && S_ISDIR(sb.st_mode) && depth < 3) {
      chmod(sub, 0755);
      rm_tree(sub, depth + 1);
    } else
      unlink(sub);
  }
  if (d)
    closedir(d);
  rmdir(path);
}
static void scratch_close(void) {
  if (dir[0])
    rm_tree(dir, 0);
  dir[0] = 0;
}

static void put_file(const char *path, const void *data, size_t size) {
  unlink(path); /* a fresh file: truncating one makes ext4 flush it (auto_da_alloc), which is slow */
  FILE *f = fopen(path, "wb");
  CHECK(f && fwrite(data, 1, size, f) == size, "cannot write %s", path);
  if (f)
    fclose(f);
}

static size_t get_file(const char *path, uint8_t *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(buf, 1, cap, f) : 0;
  if (f)
    fclose(f);
  return n;
}

/* 8-byte length, header, data. */
static size_t mk(uint8_t *out, const char *header, const void *data, size_t data_len) {
  uint64_t n = strlen(header);
  for (int k = 0; k < 8; k++)
    out[k] = (uint8_t)(n >> (8 * k));
  memcpy(out + 8, header, n);
  if (data_len)
    memcpy(out + 8 + n, data, data_len);
  return 8 + n + data_len;
}

/* The bytes must fail to open with a message naming the file and containing word. */
static int expect_bad_(const uint8_t *bytes, size_t size, const char *word, int line) {
  const char *path = tmp_path("bad.safetensors");
  put_file(path, bytes, size);
  gr_st *st = (gr_st *)1;
  aps_status s = gr_st_open(path, &st);
  const char *msg = aps_last_error();
  int ok = s != APS_OK && !st && strstr(msg, path) && strstr(msg, word);
  if (!ok) {
    test_failures++;
    fprintf(stderr, "line %d: wanted an error with '%s', got status %d: %s\n", line, word, (int)s,
            s == APS_OK ? "(ok)" : msg);
  }
  gr_st_close(s == APS_OK ? st : NULL);
  return ok;
}
#define expect_bad(bytes, size, word) expect_bad_(bytes, size, word, __LINE__)

/* A header (data of data_len zero bytes) that must fail with word. */
static void bad_header_(const char *header, size_t data_len, const char *word, int line) {
  static uint8_t buf[1 << 16], zeros[4096];
  expect_bad_(buf, mk(buf, header, zeros, data_len), word, line);
}
#define bad_header(h, len, word) bad_header_(h, len, word, __LINE__)

static gr_st *open_ok(const uint8_t *bytes, size_t size) {
  const char *path = tmp_path("ok.safetensors");
  put_file(path, bytes, size);
  gr_st *st = NULL;
  if (gr_st_open(path, &st) != APS_OK) {
    CHECK(0, "a valid file failed: %s", aps_last_error());
    return NULL;
  }
  return st;
}

/* A small valid file from the writer: three tensors and metadata. */
static size_t sample_file(uint8_t *buf, size_t cap) {
  static const float a[6] = {1, -2, 3.5f, 4, 5, 6}, b[3] = {0.25f, -0.5f, 1e-3f};
  gr_st_tensor t[] = {{"a", 2, {2, 3}, a}, {"b", 1, {3}, b}, {"s", 0, {0}, a}};
  gr_st_meta m[] = {{"format", "pt"}};
  const char *path = tmp_path("sample.safetensors");
  if (gr_st_write(path, t, 3, m, 1) != APS_OK) {
    CHECK(0, "%s", aps_last_error());
    return 0;
  }
  return get_file(path, buf, cap);
}

/* ---- cases */

TEST_CASE(roundtrip) {
  if (!scratch_open())
    return;
  float a[24], b[5], s = 42;
  for (int i = 0; i < 24; i++)
    a[i] = (float)i * 0.5f - 3;
  for (int i = 0; i < 5; i++)
    b[i] = -(float)i / 7;
  const char *odd = "w\xc3\xa9\"ird\n\\name \xe5\x90\x8d"; /* quote, newline, backslash, UTF-8 */
  gr_st_tensor t[] = {{"layer.weight", 4, {2, 3, 2, 2}, a}, {odd, 1, {5}, b}, {"scalar", 0, {0}, &s},
                      {"empty", 2, {0, 4}, NULL}};
  gr_st_meta m[] = {{"format", "pt"}, {"note", "a \"quoted\" \xe2\x9c\x93"}};
  const char *path = tmp_path("rt.safetensors");
  REQUIRE_OK(gr_st_write(path, t, 4, m, 2));
  REQUIRE_OK(gr_st_write(path, t, 4, m, 2)); /* over an existing file */
  uint8_t raw[4096];
  size_t size = get_file(path, raw, sizeof raw);
  uint64_t n = 0;
  for (int k = 0; k < 8; k++)
    n |= (uint64_t)raw[k] << (8 * k);
  CHECK((8 + n) % 8 == 0 && size == 8 + n + (24 + 5 + 1) * 4, "header %llu, size %zu", (unsigned long long)n, size);

  gr_st *st = NULL;
  REQUIRE_OK(gr_st_open(path, &st));
  CHECK(gr_st_count(st) == 4, "%u tensors", gr_st_count(st));
  for (uint32_t i = 0; i < 4 && i < gr_st_count(st); i++) {
    CHECK(!strcmp(gr_st_name(st, i), t[i].name), "name %u: %s", i, gr_st_name(st, i));
    int rank = -1;
    int64_t dims[4];
    const float *d = NULL;
    if (gr_st_get_f32(st, t[i].name, &rank, dims, &d) != APS_OK) {
      CHECK(0, "%s", aps_last_error());
      continue;
    }
    int64_t count = 1;
    CHECK(rank == t[i].rank, "%s: rank %d", t[i].name, rank);
    for (int k = 0; k < rank; k++) {
      CHECK(dims[k] == t[i].dims[k], "%s: dim %d = %lld", t[i].name, k, (long long)dims[k]);
      count *= dims[k];
    }
    CHECK(d && (!count || !memcmp(d, t[i].data, (size_t)count * 4)), "%s: data differs", t[i].name);
  }
  CHECK(gr_st_name(st, 4) == NULL, "past the end");
  CHECK(!strcmp(gr_st_metadata(st, "format"), "pt"), "format");
  CHECK(!strcmp(gr_st_metadata(st, "note"), m[1].value), "note: %s", gr_st_metadata(st, "note"));
  CHECK(gr_st_metadata(st, "absent") == NULL, "absent metadata");
  CHECK(gr_st_metadata_key(st, 0) && !strcmp(gr_st_metadata_key(st, 0), "format") && gr_st_metadata_key(st, 1) &&
            !strcmp(gr_st_metadata_key(st, 1), "note") && !gr_st_metadata_key(st, 2),
        "the metadata keys in byte order: %s, %s", gr_st_metadata_key(st, 0), gr_st_metadata_key(st, 1));
  CHECK(gr_st_get_f32(st, "nope", NULL, NULL, NULL) != APS_OK && strstr(aps_last_error(), "nope"), "missing name");
  gr_st_close(st);

  /* No metadata, no tensors: "{}" padded. */
  REQUIRE_OK(gr_st_write(path, NULL, 0, NULL, 0));
  REQUIRE_OK(gr_st_open(path, &st));
  CHECK(gr_st_count(st) == 0 && !gr_st_metadata(st, "format"), "empty file");
  gr_st_close(st);
  scratch_close();
}

/* F16, BF16 converted; unaligned F32 copied; other dtypes kept but not readable as floats;
 * unknown fields skipped; header padded with spaces. */
TEST_CASE(dtypes) {
  if (!scratch_open())
    return;
  uint8_t data[64] = {0}, buf[1024];
  const uint16_t h[4] = {0x3C00, 0xC000, 0x7BFF, 0x0001}, bf[2] = {0x3F80, 0xC040};
  const float f[2] = {1.5f, -7};
  memcpy(data, h, 8);
  memcpy(data + 8, bf, 4);
  memcpy(data + 12, f, 8);
  const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                    "\"bf\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
                    "\"f\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[12,20],\"x\":[{\"y\":null},true]},"
                    "\"i\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[24,32]}}   "; /* odd length */
  gr_st *st = open_ok(buf, mk(buf, hdr, data, 40));
  if (!st)
    return;
  const float *d = NULL;
  int rank = 0;
  int64_t dims[4];
  REQUIRE_OK(gr_st_get_f32(st, "h", &rank, dims, &d));
  CHECK(rank == 1 && dims[0] == 4 && d[0] == 1 && d[1] == -2 && d[2] == 65504 && d[3] == ldexpf(1, -24),
        "F16: %g %g %g %g", d[0], d[1], d[2], d[3]);
  REQUIRE_OK(gr_st_get_f32(st, "bf", NULL, NULL, &d));
  CHECK(d[0] == 1 && d[1] == -3, "BF16: %g %g", d[0], d[1]);
  REQUIRE_OK(gr_st_get_f32(st, "f", &rank, dims, &d));
  CHECK(rank == 2 && dims[1] == 2 && d[0] == 1.5f && d[1] == -7 && (uintptr_t)d % 4 == 0, "F32: %g %g", d[0], d[1]);
  CHECK(gr_st_get_f32(st, "i", NULL, NULL, &d) == APS_ERR_FORMAT && strstr(aps_last_error(), "I64"), "I64: %s",
        aps_last_error());
  gr_st_close(st);
  scratch_close();
}

TEST_CASE(truncated) {
  if (!scratch_open())
    return;
  uint8_t buf[4096];
  size_t size = sample_file(buf, sizeof buf), n = buf[0] | (size_t)buf[1] << 8;
  CHECK(size > 8 + n, "sample of %zu bytes", size);
  for (size_t len = 0; len < size; len++) /* every proper prefix */
    expect_bad(buf, len, len < 8 ? "too short" : len < 8 + n ? "runs past the end" : "beyond the data region");
  gr_st *st = open_ok(buf, size);
  CHECK(st && gr_st_count(st) == 3, "the whole file");
  gr_st_close(st);
  scratch_close();
}

TEST_CASE(header_length) {
  if (!scratch_open())
    return;
  uint8_t buf[4096];
  size_t size = sample_file(buf, sizeof buf);
  buf[0] = (uint8_t)(size - 7), buf[1] = (uint8_t)((size - 7) >> 8); /* one past the end */
  expect_bad(buf, size, "runs past the end");
  memset(buf, 0, 8);
  buf[5] = 1; /* 2^40 */
  expect_bad(buf, size, "absurd");
  memset(buf, 0xFF, 8);
  expect_bad(buf, size, "absurd");
  memset(buf, 0, 8);
  expect_bad(buf, size, "'{'");
  CHECK(gr_st_open(tmp_path("absent"), &(gr_st *){NULL}) == APS_ERR_IO && strstr(aps_last_error(), "absent"),
        "missing file: %s", aps_last_error());
  CHECK(gr_st_open(dir, &(gr_st *){NULL}) == APS_ERR_IO && strstr(aps_last_error(), "regular"), "a folder: %s",
        aps_last_error());
  scratch_close();
}

#define T(name, dt, shape, b, e) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

TEST_CASE(offsets) {
  if (!scratch_open())
    return;
  bad_header("{" T("a", "F32", "[4]", 0, 16) "," T("b", "F32", "[4]", 8, 24) "}", 32, "overlap");
  bad_header("{" T("a", "F32", "[8]", 0, 32) "," T("b", "F32", "[2]", 8, 16) "}", 32, "overlap");
  bad_header("{" T("b", "F32", "[2]", 40, 48) "," T("a", "F32", "[8]", 16, 48) "," T("c", "F32", "[2]", 0, 8) "}",
             48, "overlap");
  bad_header("{" T("a", "F32", "[4]", 0, 16) "}", 12, "beyond the data region");
  bad_header("{" T("a", "F32", "[0]", 20, 20) "}", 12, "beyond the data region");
  bad_header("{" T("a", "F32", "[1]", 8, 4) "}", 12, "begin 8 > end 4");
  bad_header("{" T("a", "F32", "[1]", -4, 0) "}", 12, "negative");
  bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 12, "two integers");
  bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 12, "two integers");
  bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 12, "integer");
  bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 12, "array");
  bad_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 12, "missing 'data_offsets'");
  /* Gaps, touching ranges and empty tensors inside others are fine. */
  uint8_t buf[1024], zeros[64] = {0};
  gr_st *st = open_ok(buf, mk(buf, "{" T("a", "F32", "[2]", 4, 12) "," T("b", "F32", "[1]", 12, 16) ","
                                  T("e", "F32", "[0,3]", 8, 8) "}", zeros, 20));
  CHECK(st && gr_st_count(st) == 3, "gaps");
  gr_st_close(st);
  scratch_close();
}

TEST_CASE(dtype_shape) {
  if (!scratch_open())
    return;
  bad_header("{" T("a", "F33", "[1]", 0, 4) "}", 4, "unknown dtype 'F33'");
  bad_header("{" T("a", "f32", "[1]", 0, 4) "}", 4, "unknown dtype");
  bad_header("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "string");
  bad_header("{" T("a", "F32", "[4294967296,4294967296,4294967296]", 0, 4) "}", 4, "overflow");
  bad_header("{" T("a", "U8", "[9223372036854775807,2]", 0, 4) "}", 4, "overflow");
  bad_header("{" T("a", "F32", "[99999999999999999999]", 0, 4) "}", 4, "64 bits");
  bad_header("{" T("a", "F32", "[1,1,1,1,1]", 0, 4) "}", 4, "at most 4");
  bad_header("{" T("a", "F32", "[2,-2]", 0, 4) "}", 4, "negative");
  bad_header("{" T("a", "F32", "[2,2]", 0, 12) "}", 16, "size 12 != 4 elements");
  bad_header("{" T("a", "F64", "[2]", 0, 8) "}", 16, "size 8 != 2 elements x 8 bytes");
  bad_header("{" T("a", "F32", "[01]", 0, 4) "}", 4, "leading zero");
  bad_header("{" T("a", "F32", "{}", 0, 4) "}", 4, "array");
  scratch_close();
}

TEST_CASE(names) {
  if (!scratch_open())
    return;
  bad_header("{" T("\xff", "F32", "[1]", 0, 4) "}", 4, "UTF-8");
  bad_header("{" T("\xc0\x80", "F32", "[1]", 0, 4) "}", 4, "UTF-8");          /* overlong */
  bad_header("{" T("\xed\xa0\x80", "F32", "[1]", 0, 4) "}", 4, "UTF-8");      /* a surrogate */
  bad_header("{" T("\xf4\x90\x80\x80", "F32", "[1]", 0, 4) "}", 4, "UTF-8");  /* past U+10FFFF */
  bad_header("{" T("a\xe2\x82", "F32", "[1]", 0, 4) "}", 4, "UTF-8");         /* cut short */
  bad_header("{" T("\\ud800", "F32", "[1]", 0, 4) "}", 4, "surrogate");
  bad_header("{" T("\\udc00x", "F32", "[1]", 0, 4) "}", 4, "surrogate");
  bad_header("{" T("\\ud800\\u0041", "F32", "[1]", 0, 4) "}", 4, "surrogate");
  bad_header("{" T("a\\u0000b", "F32", "[1]", 0, 4) "}", 4, "NUL");
  bad_header("{" T("\\u12g4", "F32", "[1]", 0, 4) "}", 4, "hex");
  bad_header("{" T("a\\x", "F32", "[1]", 0, 4) "}", 4, "escape");
  bad_header("{" T("a", "F32", "[1]", 0, 4) "," T("a", "F32", "[1]", 4, 8) "}", 8, "duplicate tensor name 'a'");
  bad_header("{" T("\\u0061", "F32", "[1]", 0, 4) "," T("a", "F32", "[1]", 4, 8) "}", 8, "duplicate");
  bad_header("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate __metadata__ key 'k'");
  bad_header("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "twice");
  bad_header("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "twice");
  /* Escapes and surrogate pairs decode to UTF-8. */
  uint8_t buf[1024], zeros[8] = {0};
  gr_st *st = open_ok(buf, mk(buf, "{" T("\\ud83d\\ude00\\u00e9\\n\\\"\\/", "F32", "[1]", 0, 4) "}", zeros, 4));
  CHECK(st && !strcmp(gr_st_name(st, 0), "\xf0\x9f\x98\x80\xc3\xa9\n\"/"), "decoded name");
  gr_st_close(st);
  scratch_close();
}

TEST_CASE(bad_json) {
  if (!scratch_open())
    return;
  bad_header("{", 0, "ends early");
  bad_header("{\"a\"", 0, "ends early");
  bad_header("{\"a", 0, "unterminated");
  bad_header("{" T("a", "F32", "[1]", 0, 4) "} x", 4, "trailing");
  bad_header("{" T("a", "F32", "[1]", 0, 4) "}{}", 4, "trailing");
  bad_header("{\"a\" {}}", 0, "':'");
  bad_header("{" T("a", "F32", "[1]", 0, 4) ",}", 4, "expected a string");
  bad_header("{'a':{}}", 0, "expected a string");
  bad_header("{" T("a", "F32", "[1,]", 0, 4) "}", 4, "integer");
  bad_header("{" T("a", "F32", "[1 2]", 0, 4) "}", 4, "','");
  bad_header("{\"a\":{\"dtype\":\"F32\" \"shape\":[1]}}", 0, "','");
  bad_header("{\"a\x01\":{}}", 0, "control character");
  bad_header("[]", 0, "'{'");
  bad_header(" {}", 0, "'{'");
  bad_header("{\"a\":[]}", 0, "object");
  bad_header("{\"a\":{}}", 0, "missing 'dtype'");
  bad_header("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
  bad_header("{\"__metadata__\":[]}", 0, "object");
  bad_header("{\"a\":{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]"
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}", 0, "nested");
  bad_header("{\"a\":{\"x\":tru}}", 0, "expected a value");
  bad_header("{\"a\":{\"x\":-}}", 0, "integer");
  bad_header("{\"a\":{\"x\":1e5}}", 0, "fraction or exponent");
  /* Whitespace everywhere JSON allows it, and trailing padding. */
  uint8_t buf[1024], zeros[8] = {0};
  gr_st *st = open_ok(buf, mk(buf, "{ \"a\" :\t{\n\"dtype\" : \"F32\" , \"shape\" : [ 1 ] ,\r\"data_offsets\":[ 0 , 4 ] } }"
                                   "      ", zeros, 4));
  CHECK(st && gr_st_count(st) == 1, "whitespace");
  gr_st_close(st);
  scratch_close();
}

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
  *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1DULL;
}

/* Random mutations of a valid file: never a crash; what opens must be wholly readable. */
TEST_CASE(byte_flips) {
  if (!scratch_open())
    return;
  uint8_t good[4096], buf[4096];
  size_t size = sample_file(good, sizeof good), n = good[0] | (size_t)good[1] << 8;
  uint64_t seed = 0x5AFE7E4505ULL;
  int opened = 0, failed = 0;
  const char *path = tmp_path("flip.safetensors");
  for (int iter = 0; iter < 3000 && size; iter++) {
    memcpy(buf, good, size);
    size_t len = size;
    int edits = 1 + (int)(rng_next(&seed) % 3);
    for (int e = 0; e < edits; e++) {
      uint64_t r = rng_next(&seed);
      size_t at = r % 4 ? 8 + (size_t)(r >> 8) % n : (size_t)(r >> 8) % len; /* mostly the header */
      switch ((r >> 40) % 4) {
      case 0: buf[at] ^= (uint8_t)(1u << ((r >> 48) % 8)); break;
      case 1: buf[at] = (uint8_t)(r >> 48); break;
      case 2: buf[at] = "{}[]\",:0-9\\u \xff"[(r >> 48) % 15]; break;
      default: len = at > 8 && r % 8 == 0 ? at : len; break; /* sometimes truncate */
      }
    }
    put_file(path, buf, len);
    gr_st *st = NULL;
    if (gr_st_open(path, &st) != APS_OK) {
      failed++;
      CHECK(!st && strstr(aps_last_error(), path), "iteration %d: %s", iter, aps_last_error());
      continue;
    }
    opened++;
    for (uint32_t i = 0; i < gr_st_count(st); i++) { /* touch every value: ASan watches */
      int rank = 0;
      int64_t dims[4], count = 1;
      const float *d = NULL;
      if (gr_st_get_f32(st, gr_st_name(st, i), &rank, dims, &d) != APS_OK)
        continue;
      for (int k = 0; k < rank; k++)
        count *= dims[k];
      volatile float sum = 0;
      for (int64_t k = 0; k < count; k++)
        sum += d[k];
      (void)sum;
    }
    (void)gr_st_metadata(st, "format");
    gr_st_close(st);
  }
  fprintf(stderr, "byte flips: %d opened, %d rejected\n", opened, failed);
  CHECK(failed > 1000 && opened > 10, "%d opened, %d rejected", opened, failed);
  scratch_close();
}

static int same_file(const char *path, const uint8_t *want, size_t size) {
  uint8_t buf[4096];
  return get_file(path, buf, sizeof buf) == size && !memcmp(buf, want, size);
}

static int count_entries(const char *path) {
  DIR *d = opendir(path);
  int n = 0;
  while (d && readdir(d))
    n++;
  if (d)
    closedir(d);
  return n - 2;
}

/* A failed write leaves the old file as it was and no temporary behind. */
TEST_CASE(write_errors) {
  if (!scratch_open())
    return;
  uint8_t old[4096];
  size_t size = sample_file(old, sizeof old);
  const char *path = tmp_path("sample.safetensors");
  static const float v[4] = {1, 2, 3, 4};
  gr_st_tensor t = {"x", 1, {4}, v};

  CHECK(gr_st_write(tmp_path("no/such/dir/x.safetensors"), &t, 1, NULL, 0) == APS_ERR_IO &&
            strstr(aps_last_error(), "no/such/dir"), "missing folder: %s", aps_last_error());
  /* Bad arguments, each rejected before anything is written. */
  gr_st_tensor bad[][2] = {{{"x", 1, {4}, v}, {"x", 1, {4}, v}}, {{"x", 5, {1, 1, 1, 1}, v}, {"y", 0, {0}, v}},
                           {{"x", 1, {-1}, v}, {"y", 0, {0}, v}}, {{"x", 1, {4}, NULL}, {"y", 0, {0}, v}},
                           {{"\xff", 1, {4}, v}, {"y", 0, {0}, v}}, {{"__metadata__", 1, {4}, v}, {"y", 0, {0}, v}},
                           {{NULL, 1, {4}, v}, {"y", 0, {0}, v}}};
  const char *words[] = {"duplicate", "rank 5", "dimension 0 is -1", "NULL data", "UTF-8", "reserved", "NULL"};
  for (int i = 0; i < 7; i++)
    CHECK(gr_st_write(path, bad[i], 2, NULL, 0) == APS_ERR_INVALID_ARG && strstr(aps_last_error(), words[i]),
          "bad tensors %d: %s", i, aps_last_error());
  gr_st_meta dup[2] = {{"k", "1"}, {"k", "2"}};
  CHECK(gr_st_write(path, &t, 1, dup, 2) == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "duplicate metadata"),
        "duplicate metadata: %s", aps_last_error());
  CHECK(same_file(path, old, size), "the old file changed");

  /* The target is a non-empty folder: refused before anything is written (aps_file.h). */
  const char *target = tmp_path("target");
  mkdir(target, 0755);
  put_file(tmp_path("target/keep"), "k", 1);
  CHECK(gr_st_write(target, &t, 1, NULL, 0) == APS_ERR_IO && strstr(aps_last_error(), "is a folder"), "folder: %s",
        aps_last_error());
  CHECK(count_entries(dir) == 2 && count_entries(target) == 1, "a temporary was left behind");

  /* A read-only folder (root ignores the mode: then there is nothing to test). */
  const char *ro = tmp_path("ro"), *ro_file = tmp_path("ro/w.safetensors");
  mkdir(ro, 0755);
  put_file(ro_file, old, size);
  chmod(ro, 0555);
  if (access(ro, W_OK) != 0) {
    CHECK(gr_st_write(ro_file, &t, 1, NULL, 0) == APS_ERR_IO && strstr(aps_last_error(), "cannot create"),
          "read-only: %s", aps_last_error());
    CHECK(same_file(ro_file, old, size) && count_entries(ro) == 1, "the read-only folder changed");
  } else
    fprintf(stderr, "(running as root: read-only folder check skipped)\n");
  chmod(ro, 0755);
  scratch_close();
}

/* ---- parameters into the CPU interpreter and a plan */

/* y = (x + w) + b with x [2, 3] an input, w [2, 3] and b [3] parameters. */
static gr_graph *tiny_graph(void) {
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(2, 3));
  gr_tensor w = gr_param(g, "w", GR_SHAPE(2, 3));
  gr_tensor b = gr_param(g, "b", GR_SHAPE(3));
  gr_output(g, gr_add(g, gr_add(g, x, w), b), "y");
  return g;
}

static const float X[6] = {1, 2, 3, 4, 5, 6}, W[6] = {0.5f, -1, 2, 0, 1, -3}, B[3] = {10, 20, 30};

static gr_st *params_file(const char *name, gr_st_tensor *t, uint32_t n) {
  gr_st *st = NULL;
  if (gr_st_write(tmp_path(name), t, n, NULL, 0) != APS_OK || gr_st_open(tmp_path(name), &st) != APS_OK)
    CHECK(0, "%s", aps_last_error());
  return st;
}

static int y_ok(const float *y) {
  int ok = 1;
  for (int i = 0; i < 6; i++)
    ok &= fabsf(y[i] - (X[i] + W[i] + B[i % 3])) < 1e-6f;
  return ok;
}

/* A load that must fail with both words in the message (and the path). */
static void load_fails_(gr_cpu *c, gr_st *st, const char *w1, const char *w2, int line) {
  aps_status s = st ? gr_cpu_load(c, st) : APS_ERR_IO;
  const char *msg = aps_last_error();
  if (s == APS_OK || !st || !strstr(msg, gr_st_path(st)) || !strstr(msg, w1) || !strstr(msg, w2)) {
    test_failures++;
    fprintf(stderr, "line %d: wanted an error with '%s' and '%s': %s\n", line, w1, w2, s ? msg : "(ok)");
  }
  gr_st_close(st);
}
#define load_fails(c, st, w1, w2) load_fails_(c, st, w1, w2, __LINE__)

TEST_CASE(cpu_load) {
  if (!scratch_open())
    return;
  gr_graph *g = tiny_graph();
  gr_cpu *c = NULL;
  if (gr_cpu_create(g, &c) != APS_OK) {
    CHECK(0, "%s", aps_last_error());
    gr_graph_destroy(g);
    return;
  }
  gr_st_tensor good[] = {{"w", 2, {2, 3}, W}, {"b", 1, {3}, B}, {"unused", 1, {3}, B}};
  gr_st *st = params_file("good.safetensors", good, 3);
  CHECK(st && gr_cpu_load(c, st) == APS_OK, "load: %s", aps_last_error());
  gr_st_close(st);
  CHECK(gr_cpu_set(c, "x", X, 6) == APS_OK && gr_cpu_run(c) == APS_OK, "run: %s", aps_last_error());
  CHECK(y_ok(gr_cpu_values(c, gr_find(g, "y"))), "wrong sums");

  float nan_b[3] = {1, NAN, 3}, inf_w[6] = {0, 0, 0, 0, -INFINITY, 0};
  int32_t ints[6] = {0};
  load_fails(c, params_file("missing.safetensors", good, 1), "'b'", "missing");
  gr_st_tensor wrong[] = {{"w", 2, {3, 2}, W}, {"b", 1, {3}, B}};
  load_fails(c, params_file("shape.safetensors", wrong, 2), "[2, 3]", "[3, 2]");
  gr_st_tensor rank[] = {{"w", 2, {2, 3}, W}, {"b", 2, {1, 3}, B}};
  load_fails(c, params_file("rank.safetensors", rank, 2), "[3]", "[1, 3]");
  gr_st_tensor nan[] = {{"w", 2, {2, 3}, W}, {"b", 1, {3}, nan_b}};
  load_fails(c, params_file("nan.safetensors", nan, 2), "'b'", "NaN at element 1");
  gr_st_tensor inf[] = {{"w", 2, {2, 3}, inf_w}, {"b", 1, {3}, B}};
  load_fails(c, params_file("inf.safetensors", inf, 2), "'w'", "-Inf");
  uint8_t buf[1024], data[64];
  memcpy(data, ints, 24);
  memcpy(data + 24, B, 12);
  put_file(tmp_path("i32.safetensors"), buf,
           mk(buf, "{" T("w", "I32", "[2,3]", 0, 24) "," T("b", "F32", "[3]", 24, 36) "}", data, 36));
  gr_st *i32 = NULL;
  CHECK(gr_st_open(tmp_path("i32.safetensors"), &i32) == APS_OK, "%s", aps_last_error());
  load_fails(c, i32, "'w'", "I32");

  /* The failed loads changed nothing. */
  CHECK(gr_cpu_run(c) == APS_OK && y_ok(gr_cpu_values(c, gr_find(g, "y"))), "a failed load changed the values");
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
  scratch_close();
}

TEST_CASE(plan_load) {
  if (!scratch_open())
    return;
  rt_device *dev = test_device_open(NULL);
  gr_graph *g = tiny_graph();
  gr_plan *p = NULL;
  if (dev && gr_plan_compile(g, dev, NULL, &p) == APS_OK) {
    gr_st_tensor good[] = {{"w", 2, {2, 3}, W}, {"b", 1, {3}, B}};
    static const float b4[4] = {1, 2, 3, 4};
    gr_st_tensor wrong[] = {{"w", 2, {2, 3}, W}, {"b", 1, {4}, b4}};
    gr_st *st = params_file("good.safetensors", good, 2), *bad = params_file("bad.safetensors", wrong, 2);
    CHECK(bad && gr_plan_load(p, bad) != APS_OK && strstr(aps_last_error(), "[4]"), "%s", aps_last_error());
    float y[6] = {0};
    CHECK(st && gr_plan_load(p, st) == APS_OK, "load: %s", aps_last_error());
    CHECK(gr_plan_set(p, "x", X, 6) == APS_OK && gr_plan_run(p) == APS_OK && gr_plan_get(p, "y", y, 6) == APS_OK,
          "run: %s", aps_last_error());
    CHECK(y_ok(y), "wrong sums: %g %g", y[0], y[5]);
    gr_st_close(st);
    gr_st_close(bad);
  } else if (dev)
    CHECK(0, "compile: %s", aps_last_error());
  gr_plan_destroy(p);
  gr_graph_destroy(g);
  test_device_close(dev);
  scratch_close();
}
