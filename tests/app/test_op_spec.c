/* Operator specs and families on the host: parsing and the canonical text, malformed specs,
 * metadata, mask coverage per family, mask and map files, measurement bundles. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <stb/stb_image_write.h>

#include "../test.h"
#include "operators.h"

static char tmp_root[64];
static const char *tmp_dir(void) {
  snprintf(tmp_root, sizeof tmp_root, "/tmp/aps-test-ops-XXXXXX");
  return mkdtemp(tmp_root);
}

TEST_CASE(op_spec_roundtrip) {
  static const char *const specs[] = {
      "denoise", "denoise,noise=0", "denoise:noise=0.01-0.1", "inpaint:box=8-16", "inpaint:box=5",
      "inpaint:pixels=0.1-0.3", "inpaint:pixels=1,noise=0.2", "inpaint:strokes", "inpaint:strokes=2-6",
      "inpaint:half,noise=0.01-0.1", "inpaint:mask=/some/dir/m.png", "blur:sigma=0.5-2.5",
      "blur:map=FILE.png,sigma=2", "blur:sigma=1.25,noise=0", "sr:2", "sr:4,noise=0.1",
      "mix:inpaint:box=8-16+inpaint:strokes", "mix:inpaint:box=8-16+inpaint:pixels=0.1-0.3+inpaint:half+denoise",
      "mix:blur:sigma=0.5-1.5+blur:map=x.png,sigma=2,noise=0.02+denoise", "mix:sr:2+sr:2,noise=0.1",
      "inpaint:pixels=0.123456789", "blur:sigma=1e-3-3", "blur:sigma=0.5-3,map=strokes",
      "blur:map=half,sigma=2", "blur:sigma=1,map=box=4-8,noise=0.01-0.1", "mix:blur:sigma=0.5-3+blur:sigma=1,map=strokes=2"};
  for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
    aps_op_spec a, b;
    char t1[APS_OP_SPEC_MAX], t2[APS_OP_SPEC_MAX];
    aps_status s = aps_op_spec_parse(specs[i], &a);
    CHECK(s == APS_OK, "'%s' parses: %s", specs[i], aps_last_error());
    if (s != APS_OK)
      continue;
    REQUIRE_OK(aps_op_spec_format(&a, t1, sizeof t1));
    REQUIRE_OK(aps_op_spec_parse(t1, &b));
    REQUIRE_OK(aps_op_spec_format(&b, t2, sizeof t2));
    CHECK(!strcmp(t1, t2) && !memcmp(&a, &b, sizeof a), "'%s' -> '%s' -> '%s' round-trips", specs[i], t1, t2);
  }
  static const char *const canon[][2] = {
      {"inpaint:box=8-16", "inpaint:box=8-16,noise=0.05"},
      {"blur:map=FILE.png,sigma=2", "blur:sigma=2,map=FILE.png,noise=0.05"},
      {"denoise:noise=0.01-0.1", "denoise,noise=0.01-0.1"},
      {"inpaint:strokes", "inpaint:strokes=1-4,noise=0.05"},
      {"blur:map=strokes,sigma=0.5-3", "blur:sigma=0.5-3,map=strokes=1-4,noise=0.05"},
      {"blur:sigma=2,map=half", "blur:sigma=2,map=half,noise=0.05"},
      {"blur:sigma=2,map=dir/a=b.png", "blur:sigma=2,map=dir/a=b.png,noise=0.05"},
      {"sr:4,noise=0.1", "sr:4,noise=0.1"},
      {"inpaint:pixels=0.2-0.2", "inpaint:pixels=0.2,noise=0.05"},
      {"mix:inpaint:half+denoise,noise=0", "mix:inpaint:half,noise=0.05+denoise,noise=0"},
  };
  for (size_t i = 0; i < sizeof canon / sizeof *canon; i++) {
    aps_op_spec a;
    char t[APS_OP_SPEC_MAX];
    REQUIRE_OK(aps_op_spec_parse(canon[i][0], &a));
    REQUIRE_OK(aps_op_spec_format(&a, t, sizeof t));
    CHECK(!strcmp(t, canon[i][1]), "'%s' prints as '%s', expected '%s'", canon[i][0], t, canon[i][1]);
  }
  aps_op_spec a;
  REQUIRE_OK(aps_op_spec_parse("mix:blur:sigma=0.5-1.5+denoise", &a));
  CHECK(a.count == 2 && aps_op_spec_class(&a) == APS_OPC_BLUR && a.m[0].range.lo == 0.5f, "a blur mix");
  REQUIRE_OK(aps_op_spec_parse("denoise", &a));
  CHECK(aps_op_spec_class(&a) == APS_OPC_MASK && a.m[0].noise.lo == APS_SIGMA_Y_DEFAULT, "denoise alone");
  char small[12];
  CHECK(aps_op_spec_format(&a, small, sizeof small) == APS_ERR_INVALID_ARG, "a buffer too small is an error");
}

TEST_CASE(op_spec_errors) {
  /* Each malformed spec, and a word its message must contain (the field at fault). */
  static const char *const bad[][2] = {
      {"", "empty"},
      {"smear", "unknown operator 'smear'"},
      {"inpaint", "needs a mask kind"},
      {"inpaint:", "nothing after ':'"},
      {"inpaint:box", "box needs a value"},
      {"inpaint:box=", "box needs a value"},
      {"inpaint:box=abc", "box 'abc' is not a number"},
      {"inpaint:box=16-8", "box range '16-8' is written backwards"},
      {"inpaint:box=0-4", "box 0-4 is outside"},
      {"inpaint:box=2.5-4", "box 2.5-4 must be whole numbers"},
      {"inpaint:box=4-", "box '4-': the upper end"},
      {"inpaint:box=4x", "box '4x' is not a number"},
      {"inpaint:pixels=0-0.3", "pixels 0-0.3 is outside (0, 1]"},
      {"inpaint:pixels=0.2-1.5", "pixels 0.2-1.5 is outside"},
      {"inpaint:pixels=0.3-0.1", "pixels range '0.3-0.1' is written backwards"},
      {"inpaint:strokes=0-3", "strokes 0-3 is outside"},
      {"inpaint:half=2", "half takes no value"},
      {"inpaint:mask=", "mask needs a file"},
      {"inpaint:box=4,pixels=0.2", "pixels after another mask kind"},
      {"inpaint:box=4,sigma=2", "unknown field 'sigma'"},
      {"inpaint:box=4,,noise=0.1", "an empty field"},
      {"inpaint:box=4,noise=0.1,noise=0.2", "noise is given twice"},
      {"inpaint:box=4,noise=-0.1", "noise -0.1-"},
      {"inpaint:box=4,noise=0.3-0.1", "noise range '0.3-0.1' is written backwards"},
      {"inpaint:box=4,noise=5", "noise 5-5 is outside"},
      {"inpaint:box=4,noise=nan", "noise 'nan' is not a number"},
      {"blur", "blur needs sigma"},
      {"blur:sigma=0", "sigma 0-0 is outside (0, 16]"},
      {"blur:sigma=-1", "sigma -1-"},
      {"blur:sigma=100", "sigma 100-100 is outside"},
      {"blur:sigma=2-1", "sigma range '2-1' is written backwards"},
      {"blur:sigma=1,map=", "map needs a file"},
      {"blur:sigma=1,map=half=2", "map: half takes no value"},
      {"blur:sigma=1,map=box=0", "box 0-0 is outside"},
      {"blur:sigma=1,map=strokes=1-99", "strokes 1-99 is outside"},
      {"blur:sigma=1,sigma=2", "sigma is given twice"},
      {"blur:sigma=1,box=3", "unknown field 'box'"},
      {"sr", "sr needs a factor"},
      {"sr:3", "factor '3' is not 2 or 4"},
      {"sr:2,4", "unknown field '4'"},
      {"denoise:sigma=1", "unknown field 'sigma'"},
      {"mix", "mix needs members"},
      {"mix:", "no members"},
      {"mix:inpaint:half++denoise", "member 2 is empty"},
      {"mix:inpaint:half+mix:denoise", "member 2 is a mix itself"},
      {"mix:sr:2+inpaint:half", "member 2 (inpainting) cannot mix with member 1 (super-resolution)"},
      {"mix:inpaint:half+blur:sigma=1", "member 2 (blur) cannot mix with member 1 (inpainting)"},
      {"mix:sr:2+sr:4", "sr:2 and sr:4 cannot mix"},
      {"mix:sr:2+denoise", "denoise cannot mix with sr"},
      {"mix:inpaint:half+inpaint:bogus", "unknown field 'bogus'"},
      {"mix:denoise+denoise+denoise+denoise+denoise+denoise+denoise+denoise+denoise", "more than 8 members"},
  };
  enum { COUNT = sizeof bad / sizeof *bad };
  static char msgs[COUNT][512];
  for (int i = 0; i < COUNT; i++) {
    aps_op_spec s;
    aps_clear_error();
    aps_status st = aps_op_spec_parse(bad[i][0], &s);
    snprintf(msgs[i], sizeof msgs[i], "%s", aps_last_error());
    CHECK(st == APS_ERR_INVALID_ARG, "'%s' is refused", bad[i][0]);
    CHECK(strstr(msgs[i], bad[i][1]) != NULL, "'%s': the message '%s' names '%s'", bad[i][0], msgs[i], bad[i][1]);
    char quoted[APS_OP_SPEC_MAX + 4];
    snprintf(quoted, sizeof quoted, "'%s'", bad[i][0]);
    CHECK(strstr(msgs[i], quoted) != NULL, "the message '%s' quotes the spec", msgs[i]);
    for (int k = 0; k < i; k++)
      CHECK(strcmp(msgs[i], msgs[k]), "specs %d and %d give the same message '%s'", k, i, msgs[i]);
  }
  fprintf(stderr, "%d malformed specs, each with its own message\n", COUNT);
  CHECK(COUNT >= 25, "at least 25 malformed specs");
  CHECK(aps_op_spec_parse(NULL, &(aps_op_spec){0}) == APS_ERR_INVALID_ARG, "NULL");
}

TEST_CASE(op_spec_meta) {
  const char *dir = tmp_dir();
  char path[256];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  aps_op_spec spec, back;
  REQUIRE_OK(aps_op_spec_parse("mix:inpaint:box=8-16+inpaint:strokes,noise=0.01-0.1", &spec));
  char buf[APS_OP_SPEC_MAX];
  gr_st_meta meta[2];
  REQUIRE_OK(aps_op_spec_to_meta(&spec, buf, &meta[0]));
  meta[1] = (gr_st_meta){"aps.kind", "flow"};
  float v = 1;
  gr_st_tensor t = {"w", 1, {1}, &v};
  REQUIRE_OK(gr_st_write(path, &t, 1, meta, 2));
  gr_st *st = NULL;
  REQUIRE_OK(gr_st_open(path, &st));
  REQUIRE_OK(aps_op_spec_from_file(st, &back));
  CHECK(!memcmp(&spec, &back, sizeof spec), "the spec read back from the file's metadata");
  gr_st_close(st);
  /* Absent and malformed. */
  REQUIRE_OK(gr_st_write(path, &t, 1, &meta[1], 1));
  REQUIRE_OK(gr_st_open(path, &st));
  CHECK(aps_op_spec_from_file(st, &back) == APS_ERR_FORMAT && strstr(aps_last_error(), "aps.op") &&
            strstr(aps_last_error(), path), "absent: %s", aps_last_error());
  gr_st_close(st);
  meta[0].value = "blur:sigma=3-1";
  REQUIRE_OK(gr_st_write(path, &t, 1, meta, 1));
  REQUIRE_OK(gr_st_open(path, &st));
  CHECK(aps_op_spec_from_file(st, &back) == APS_ERR_FORMAT && strstr(aps_last_error(), "aps.op") &&
            strstr(aps_last_error(), "backwards") && strstr(aps_last_error(), path), "malformed: %s", aps_last_error());
  gr_st_close(st);
}

/* Mean hidden share and per-draw extremes of 1000 draws of a family on 32x32. */
static aps_status coverage(const char *text, double *mean, double *lo, double *hi, aps_op_batch *keep) {
  aps_op_spec spec;
  aps_op_family *f = NULL;
  APS_TRY(aps_op_spec_parse(text, &spec));
  APS_TRY(aps_op_family_create(&spec, 1, 32, 32, &f));
  aps_op_batch b;
  aps_status s = aps_op_batch_alloc(aps_op_family_layout(f), 1000, &b);
  *mean = 0, *lo = 1, *hi = 0;
  for (int i = 0; s == APS_OK && i < 1000; i++)
    s = aps_op_draw(f, aps_op_seed(17, (uint64_t)i), &b, i);
  for (int i = 0; s == APS_OK && i < 1000; i++) {
    double hidden = 0;
    for (int k = 0; k < 1024; k++)
      hidden += b.param[i * 1024 + k] == 0.0f;
    hidden /= 1024;
    *mean += hidden / 1000, *lo = fmin(*lo, hidden), *hi = fmax(*hi, hidden);
  }
  if (keep && s == APS_OK)
    *keep = b;
  else
    aps_op_batch_free(&b);
  aps_op_family_destroy(f);
  return s;
}

TEST_CASE(op_mask_coverage) {
  double mean, lo, hi;
  aps_op_batch b;
  /* Boxes 8-16 px a side: E[hidden] = E[h] E[w] / (H W) = 12 · 12 / 1024. */
  REQUIRE_OK(coverage("inpaint:box=8-16", &mean, &lo, &hi, &b));
  fprintf(stderr, "box=8-16: hidden %.4f (expected %.4f), per draw %.4f-%.4f\n", mean, 144.0 / 1024, lo, hi);
  CHECK(fabs(mean - 144.0 / 1024) < 0.006, "box coverage %.4f", mean);
  CHECK(lo >= 64.0 / 1024 && hi <= 256.0 / 1024, "each box between 8x8 and 16x16");
  double sy = 0;
  for (int i = 0; i < 1000; i++) {
    CHECK(b.sigma_y[i] == APS_SIGMA_Y_DEFAULT, "σ_y default");
    sy += b.descriptor[i * 1024 + 5] != b.param[i * 1024 + 5];
  }
  CHECK(sy == 0, "a mask's descriptor is the mask");
  aps_op_batch_free(&b);
  /* Random pixels: the keep ratio of every draw in the range, so its mean too. */
  REQUIRE_OK(coverage("inpaint:pixels=0.1-0.3,noise=0.01-0.1", &mean, &lo, &hi, &b));
  fprintf(stderr, "pixels=0.1-0.3: kept %.4f, per draw %.4f-%.4f\n", 1 - mean, 1 - hi, 1 - lo);
  CHECK(1 - mean >= 0.1 && 1 - mean <= 0.3 && fabs(1 - mean - 0.2) < 0.01, "keep ratio mean %.4f", 1 - mean);
  CHECK(1 - hi >= 0.1 - 1.0 / 1024 && 1 - lo <= 0.3 + 1.0 / 1024, "every draw's keep ratio in [0.1, 0.3]");
  double smean = 0, smin = 1, smax = 0;
  for (int i = 0; i < 1000; i++)
    smean += b.sigma_y[i] / 1000, smin = fmin(smin, b.sigma_y[i]), smax = fmax(smax, b.sigma_y[i]);
  CHECK(smin >= 0.01f && smax <= 0.1f && fabs(smean - 0.055) < 0.004, "σ_y in 0.01-0.1: mean %.4f", smean);
  aps_op_batch_free(&b);
  REQUIRE_OK(coverage("inpaint:pixels=0.5", &mean, &lo, &hi, NULL));
  CHECK(lo == 0.5 && hi == 0.5, "pixels=0.5 keeps exactly half: %.4f-%.4f", lo, hi);
  REQUIRE_OK(coverage("inpaint:half", &mean, &lo, &hi, NULL));
  CHECK(lo == 0.5 && hi == 0.5, "half hides exactly half: %.4f-%.4f", lo, hi);
  /* Strokes: the documented 10-40 % on average, more strokes hiding more. */
  double few, many;
  REQUIRE_OK(coverage("inpaint:strokes", &mean, &lo, &hi, NULL));
  fprintf(stderr, "strokes (1-4): hidden %.4f, per draw %.4f-%.4f\n", mean, lo, hi);
  CHECK(mean >= 0.1 && mean <= 0.4 && lo > 0 && hi < 1, "stroke coverage %.4f", mean);
  REQUIRE_OK(coverage("inpaint:strokes=1", &few, &lo, &hi, NULL));
  REQUIRE_OK(coverage("inpaint:strokes=6-8", &many, &lo, &hi, NULL));
  fprintf(stderr, "strokes=1: %.4f, strokes=6-8: %.4f\n", few, many);
  CHECK(few < mean && mean < many, "coverage grows with the stroke count");
  /* A mix draws its members about equally. */
  REQUIRE_OK(coverage("mix:inpaint:half+denoise", &mean, &lo, &hi, NULL));
  CHECK(fabs(mean - 0.25) < 0.03 && lo == 0 && hi == 0.5, "half+denoise: %.4f", mean);
  /* Blur: σ_b in its range, the descriptor the σ_b map. */
  aps_op_spec spec;
  aps_op_family *f = NULL;
  REQUIRE_OK(aps_op_spec_parse("blur:sigma=0.5-2.5", &spec));
  REQUIRE_OK(aps_op_family_create(&spec, 1, 32, 32, &f));
  CHECK(aps_op_family_layout(f)->ksize == 17, "K = 2 ceil(3 · 2.5) + 1 = 17, have %d", aps_op_family_layout(f)->ksize);
  REQUIRE_OK(aps_op_batch_alloc(aps_op_family_layout(f), 1000, &b));
  smean = 0, smin = 100, smax = 0;
  for (int i = 0; i < 1000; i++) {
    REQUIRE_OK(aps_op_draw(f, aps_op_seed(3, (uint64_t)i), &b, i));
    smean += b.sigma_b[i] / 1000, smin = fmin(smin, b.sigma_b[i]), smax = fmax(smax, b.sigma_b[i]);
    CHECK(b.descriptor[i * 1024 + 77] == b.sigma_b[i], "descriptor = σ_b where blurred");
  }
  CHECK(smin >= 0.5 && smax <= 2.5 && fabs(smean - 1.5) < 0.05, "σ_b mean %.3f in 0.5-2.5", smean);
  aps_op_batch_free(&b);
  aps_op_family_destroy(f);
  /* Random blur maps: blurred (w = 1) where the mask kind would hide, sharp elsewhere; the
   * descriptor w·σ_b. */
  REQUIRE_OK(coverage("blur:sigma=1-2,map=half", &mean, &lo, &hi, NULL));
  CHECK(lo == 0.5 && hi == 0.5, "map=half leaves exactly half sharp: %.4f-%.4f", lo, hi);
  REQUIRE_OK(coverage("blur:sigma=1-2,map=box=8-16", &mean, &lo, &hi, &b));
  CHECK(fabs(1 - mean - 144.0 / 1024) < 0.006 && 1 - hi >= 64.0 / 1024 && 1 - lo <= 256.0 / 1024,
        "map=box=8-16 blurs one 8-16 px box: %.4f", 1 - mean);
  int desc_ok = 1;
  for (int i = 0; i < 1000 * 1024; i++)
    desc_ok &= (b.param[i] == 0.0f || b.param[i] == 1.0f) && b.descriptor[i] == b.param[i] * b.sigma_b[i / 1024];
  CHECK(desc_ok, "a blur map is 0/1 and the descriptor is w·σ_b");
  aps_op_batch_free(&b);
  REQUIRE_OK(coverage("blur:sigma=1,map=strokes", &mean, &lo, &hi, NULL));
  CHECK(1 - mean >= 0.1 && 1 - mean <= 0.4, "map=strokes blurs %.4f of the image", 1 - mean);
  REQUIRE_OK(aps_op_spec_parse("blur:sigma=1,map=box=40", &spec));
  aps_op_layout l;
  CHECK(aps_op_layout_make(&spec, 1, 32, 32, &l) != APS_OK && strstr(aps_last_error(), "does not fit"),
        "a blur map box larger than the image is refused: %s", aps_last_error());
}

/* A 16-bit grey PNG, written by hand (stb_image_write has no 16-bit PNGs). */
static int write_png16(const char *path, int w, int h, const uint16_t *v) {
  size_t raw_n = (size_t)h * (1 + 2 * w);
  unsigned char *raw = malloc(raw_n), *z = malloc(compressBound(raw_n));
  uLongf zn = compressBound(raw_n);
  for (int y = 0; y < h; y++) {
    raw[y * (1 + 2 * w)] = 0;
    for (int x = 0; x < w; x++) {
      raw[y * (1 + 2 * w) + 1 + 2 * x] = (unsigned char)(v[y * w + x] >> 8);
      raw[y * (1 + 2 * w) + 2 + 2 * x] = (unsigned char)(v[y * w + x] & 255);
    }
  }
  compress(z, &zn, raw, raw_n);
  FILE *f = fopen(path, "wb");
  if (!f)
    return 0;
  fwrite("\x89PNG\r\n\x1a\n", 1, 8, f);
  unsigned char ihdr[13] = {0, 0, 0, (unsigned char)w, 0, 0, 0, (unsigned char)h, 16, 0, 0, 0, 0};
  const struct {
    const char *type;
    const unsigned char *data;
    uint32_t n;
  } chunks[3] = {{"IHDR", ihdr, 13}, {"IDAT", z, (uint32_t)zn}, {"IEND", NULL, 0}};
  for (int c = 0; c < 3; c++) {
    unsigned char len[4] = {chunks[c].n >> 24, chunks[c].n >> 16 & 255, chunks[c].n >> 8 & 255, chunks[c].n & 255};
    fwrite(len, 1, 4, f);
    fwrite(chunks[c].type, 1, 4, f);
    if (chunks[c].n)
      fwrite(chunks[c].data, 1, chunks[c].n, f);
    uLong crc = crc32(crc32(0, (const Bytef *)chunks[c].type, 4), chunks[c].data, chunks[c].n);
    unsigned char cb[4] = {crc >> 24 & 255, crc >> 16 & 255, crc >> 8 & 255, crc & 255};
    fwrite(cb, 1, 4, f);
  }
  fclose(f);
  free(raw), free(z);
  return 1;
}

/* The family "inpaint:mask=path" (or a blur map) on 1x16x16; its first draw's plane. */
static aps_status load_via_family(const char *field, const char *path, float *plane) {
  char text[600];
  snprintf(text, sizeof text, "%s%s", field, path);
  aps_op_spec spec;
  aps_op_family *f = NULL;
  APS_TRY(aps_op_spec_parse(text, &spec));
  APS_TRY(aps_op_family_create(&spec, 1, 16, 16, &f));
  aps_op_batch b;
  aps_status s = aps_op_batch_alloc(aps_op_family_layout(f), 1, &b);
  if (s == APS_OK)
    s = aps_op_draw(f, 1, &b, 0);
  if (s == APS_OK)
    memcpy(plane, b.param, 256 * sizeof *plane);
  aps_op_batch_free(&b);
  aps_op_family_destroy(f);
  return s;
}

TEST_CASE(op_mask_files) {
  const char *dir = tmp_dir();
  char p[512];
  unsigned char px[16 * 16 * 4];
  float plane[256];
  /* Good files in every unambiguous form: the left half observed. */
  for (int comp = 1; comp <= 4; comp++) {
    for (int i = 0; i < 256; i++)
      for (int k = 0; k < comp; k++)
        px[i * comp + k] = (comp == 2 || comp == 4) && k == comp - 1 ? 7 : (i % 16 < 8 ? 255 : 0);
    snprintf(p, sizeof p, "%s/good%d.png", dir, comp);
    CHECK(stbi_write_png(p, 16, 16, comp, px, 16 * comp), "write %s", p);
    REQUIRE_OK(load_via_family("inpaint:mask=", p, plane));
    int right = 1;
    for (int i = 0; i < 256; i++)
      right &= plane[i] == (i % 16 < 8 ? 1.0f : 0.0f);
    CHECK(right, "%d channels: the mask read as grey", comp);
  }
  uint16_t deep[256];
  for (int i = 0; i < 256; i++)
    deep[i] = i % 16 < 8 ? 40000 : 30000; /* above and below one half of 65535 */
  snprintf(p, sizeof p, "%s/deep.png", dir);
  CHECK(write_png16(p, 16, 16, deep), "write %s", p);
  REQUIRE_OK(load_via_family("inpaint:mask=", p, plane));
  CHECK(plane[0] == 1 && plane[8] == 0 && plane[255] == 0, "16-bit mask thresholded at one half");
  REQUIRE_OK(load_via_family("blur:sigma=1,map=", p, plane));
  CHECK(fabsf(plane[0] - 40000.0f / 65535) < 1e-6f && fabsf(plane[8] - 30000.0f / 65535) < 1e-6f,
        "16-bit blur map kept continuous: %g %g", plane[0], plane[8]);
  /* Bad files: each refused with the file and the fault named. */
  struct {
    const char *name;
    int w, h, comp;
    int colour, zero;
    const char *field, *want;
  } bad[] = {
      {"small.png", 8, 8, 1, 0, 0, "inpaint:mask=", "is 8x8 (width x height), the images are 16x16"},
      {"wide.png", 32, 16, 1, 0, 0, "inpaint:mask=", "is 32x16"},
      {"colour.png", 16, 16, 3, 1, 0, "inpaint:mask=", "colour image"},
      {"colour4.png", 16, 16, 4, 1, 0, "inpaint:mask=", "colour image"},
      {"zero.png", 16, 16, 1, 0, 1, "inpaint:mask=", "all zero (nothing observed"},
      {"zero-map.png", 16, 16, 2, 0, 1, "blur:sigma=1,map=", "all zero (nothing blurred)"},
      {"small-map.png", 4, 16, 1, 0, 0, "blur:sigma=1,map=", "is 4x16"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    for (int k = 0; k < bad[i].w * bad[i].h * bad[i].comp; k++)
      px[k] = bad[i].zero ? 0 : bad[i].colour ? (unsigned char)(k * 37) : 200;
    if (bad[i].zero && bad[i].comp == 2)
      for (int k = 1; k < 512; k += 2)
        px[k] = 255; /* opaque, black */
    snprintf(p, sizeof p, "%s/%s", dir, bad[i].name);
    CHECK(stbi_write_png(p, bad[i].w, bad[i].h, bad[i].comp, px, bad[i].w * bad[i].comp), "write %s", p);
    aps_status s = load_via_family(bad[i].field, p, plane);
    CHECK(s != APS_OK && strstr(aps_last_error(), bad[i].want) && strstr(aps_last_error(), p),
          "%s: %s (want '%s')", bad[i].name, aps_last_error(), bad[i].want);
  }
  snprintf(p, sizeof p, "%s/text.png", dir);
  FILE *f = fopen(p, "w");
  fputs("not a picture\n", f);
  fclose(f);
  CHECK(load_via_family("inpaint:mask=", p, plane) == APS_ERR_FORMAT && strstr(aps_last_error(), "cannot read") &&
            strstr(aps_last_error(), p), "not a PNG: %s", aps_last_error());
  CHECK(load_via_family("inpaint:mask=", "/nonexistent/m.png", plane) == APS_ERR_FORMAT &&
            strstr(aps_last_error(), "/nonexistent/m.png") && strstr(aps_last_error(), "field mask"),
        "missing: %s", aps_last_error());
  /* Shapes a family refuses. */
  aps_op_spec spec;
  aps_op_layout l;
  REQUIRE_OK(aps_op_spec_parse("sr:4", &spec));
  CHECK(aps_op_layout_make(&spec, 1, 30, 32, &l) == APS_ERR_INVALID_ARG &&
            strstr(aps_last_error(), "sr:4 needs image sides divisible by 4; the images are 32x30"),
        "sr:4 on 30 rows: %s", aps_last_error());
  REQUIRE_OK(aps_op_layout_make(&spec, 3, 32, 64, &l));
  CHECK(l.mh == 8 && l.mw == 16 && l.factor == 4, "sr:4 on 32x64");
  REQUIRE_OK(aps_op_spec_parse("inpaint:box=8-32", &spec));
  CHECK(aps_op_layout_make(&spec, 1, 32, 32, &l) == APS_ERR_INVALID_ARG && strstr(aps_last_error(), "box=8-32"),
        "a box as large as the image: %s", aps_last_error());
  REQUIRE_OK(aps_op_spec_parse("blur:sigma=16", &spec));
  REQUIRE_OK(aps_op_layout_make(&spec, 1, 8, 8, &l));
  CHECK(l.ksize == 15, "σ_b 16 on 8x8: the radius capped at 7 (K %d)", l.ksize);
}

/* A bundle written as `aps degrade` does, read back; and every disagreement refused. */
TEST_CASE(op_bundle) {
  const char *dir = tmp_dir();
  char path[512], bad_path[512];
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  snprintf(bad_path, sizeof bad_path, "%s/bad.safetensors", dir);
  const char *text = "mix:inpaint:box=3-6+inpaint:pixels=0.5,noise=0-0.1";
  aps_op_spec spec;
  aps_op_family *f = NULL;
  REQUIRE_OK(aps_op_spec_parse(text, &spec));
  REQUIRE_OK(aps_op_family_create(&spec, 1, 16, 16, &f));
  aps_op_batch b;
  REQUIRE_OK(aps_op_batch_alloc(aps_op_family_layout(f), 4, &b));
  float y[4 * 256];
  for (int i = 0; i < 4; i++) {
    REQUIRE_OK(aps_op_draw(f, aps_op_seed(5, (uint64_t)i), &b, i));
    for (int k = 0; k < 256; k++)
      y[i * 256 + k] = b.param[i * 256 + k] * (0.01f * (float)k - 1 + b.sigma_y[i] * b.noise[i * 256 + k]);
  }
  REQUIRE_OK(aps_measurements_write(path, &spec, &b, y, "test images 0-3"));
  aps_measurements *m = NULL;
  REQUIRE_OK(aps_measurements_load(path, &(aps_measurements_expect){.spec = text, .c = 1, .h = 16, .w = 16}, &m));
  CHECK(m->b.n == 4 && !memcmp(m->y, y, sizeof y) && !memcmp(m->b.param, b.param, 4 * 256 * sizeof(float)) &&
            !memcmp(m->b.sigma_y, b.sigma_y, 4 * sizeof(float)) && !memcmp(m->b.seed, b.seed, 4 * sizeof(uint64_t)) &&
            !memcmp(m->b.member, b.member, 4 * sizeof(int)) &&
            !memcmp(m->b.descriptor, b.descriptor, 4 * 256 * sizeof(float)) && !strcmp(m->source, "test images 0-3"),
        "the bundle read back");
  aps_measurements_free(m);
  CHECK(aps_measurements_load(path, &(aps_measurements_expect){.spec = "inpaint:half"}, &m) == APS_ERR_INVALID_ARG &&
            strstr(aps_last_error(), "expected inpaint:half,noise=0.05") && strstr(aps_last_error(), path),
        "another family: %s", aps_last_error());
  CHECK(aps_measurements_load(path, &(aps_measurements_expect){.c = 1, .h = 32, .w = 32}, &m) == APS_ERR_INVALID_ARG &&
            strstr(aps_last_error(), "1x16x16 images (c x h x w), expected 1x32x32"), "another size: %s",
        aps_last_error());
  CHECK(aps_measurements_load(path, &(aps_measurements_expect){.check_class = 1, .cls = APS_OPC_SR}, &m) ==
            APS_ERR_INVALID_ARG && strstr(aps_last_error(), "another class"), "another class: %s", aps_last_error());
  /* Hand-made files that lie. */
  float member[4] = {0, 1, 0, 1}, sig[4] = {0}, half[1024], small[4 * 64] = {0};
  for (int i = 0; i < 1024; i++)
    half[i] = 0.5f;
  char op[APS_OP_SPEC_MAX];
  REQUIRE_OK(aps_op_spec_format(&spec, op, sizeof op));
  struct {
    const char *kind, *image, *seeds;
    int small_descriptor, half_param, member_high;
    const char *want;
  } cases[] = {
      {"flow", "c=1 h=16 w=16", "1,2,3,4", 0, 0, 0, "not a measurement bundle"},
      {"measurements", "c=1 h=16", "1,2,3,4", 0, 0, 0, "aps.image is 'c=1 h=16'"},
      {"measurements", "c=1 h=16 w=16", "1,2,3,4", 1, 0, 0, "tensor 'descriptor' is [4, 1, 8, 8]"},
      {"measurements", "c=1 h=16 w=16", "1,2,3", 0, 0, 0, "aps.seeds does not hold 4"},
      {"measurements", "c=1 h=16 w=16", "1,2,3,4", 0, 1, 0, "is not a mask value"},
      {"measurements", "c=1 h=16 w=16", "1,2,3,4", 0, 0, 1, "member[3] = 7 is not a member"},
      {"measurements", "c=1 h=32 w=32", "1,2,3,4", 0, 0, 0, "tensor 'y' is [4, 1, 16, 16]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    member[3] = cases[i].member_high ? 7.0f : 1.0f;
    const gr_st_tensor t[] = {
        {"y", 4, {4, 1, 16, 16}, y},
        {"descriptor", 4, {4, 1, cases[i].small_descriptor ? 8 : 16, cases[i].small_descriptor ? 8 : 16},
         cases[i].small_descriptor ? small : b.descriptor},
        {"sigma_y", 1, {4}, sig},
        {"param", 4, {4, 1, 16, 16}, cases[i].half_param ? half : b.param},
        {"sigma_b", 1, {4}, sig},
        {"member", 1, {4}, member},
    };
    const gr_st_meta meta[] = {{"aps.kind", cases[i].kind}, {"aps.op", op}, {"aps.image", cases[i].image},
                               {"aps.seeds", cases[i].seeds}};
    REQUIRE_OK(gr_st_write(bad_path, t, 6, meta, 4));
    CHECK(aps_measurements_load(bad_path, NULL, &m) != APS_OK && strstr(aps_last_error(), cases[i].want) &&
              strstr(aps_last_error(), bad_path), "case %zu: %s (want '%s')", i, aps_last_error(), cases[i].want);
  }
  aps_op_batch_free(&b);
  aps_op_family_destroy(f);
}
