/* aps view end to end: the real window under Xvfb replaying scripts (inpainting on the
 * shipped flow on lavapipe, the blur brush on a tiny blur flow), checked from its
 * screenshots; and bad input (images, models, scripts, displays), each a clear message and
 * exit status 1, never a crash. The command runs as a child process; APS_VALIDATE=1
 * reaches it, and it exits 1 on any validation message. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image_io.h"
#include "image_read.h"
#include "test.h"
#include "tiny_flow.h"
#include "view_compose.h"

#define INPAINT_FLOW APS_SOURCE_DIR "/assets/flow-inpaint-fmnist32.safetensors"

/* Runs cmd through the shell with stderr joined to stdout; its output into out, its exit
 * status returned (-1 if it did not exit normally: a crash). */
static int run(const char *cmd, char *out, size_t cap) {
  char full[4096];
  snprintf(full, sizeof full, "exec %s 2>&1", cmd);
  fprintf(stderr, "$ %s\n", cmd);
  FILE *f = popen(full, "r");
  if (!f)
    return -1;
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = 0;
  int st = pclose(f);
  fprintf(stderr, "%s", out);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int have_xvfb(void) { return system("command -v xvfb-run > /dev/null 2>&1") == 0; }

/* ctest's SKIP_RETURN_CODE for these cases. */
static void skip_without_xvfb(void) {
  if (!have_xvfb()) {
    fprintf(stderr, "SKIPPED: xvfb-run is not installed (tools/setup-debian.sh installs xvfb and xauth)\n");
    exit(77);
  }
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f)
    fputs(text, f), fclose(f);
}

/* A screenshot and the panels' places in it (NAME.layout.txt). */
typedef struct shot {
  float *px; /* [3, h, w] in [-1, 1] */
  int w, h;
  int x[64], y[64], size[64], n;
  int ih, iw;
} shot;

static int shot_load(shot *s, const char *dir, const char *name) {
  memset(s, 0, sizeof *s);
  char path[600];
  snprintf(path, sizeof path, "%s/%s.png", dir, name);
  int c;
  if (aps_png_read_image(path, &c, &s->h, &s->w, &s->px) != APS_OK || c != 3)
    return 0;
  snprintf(path, sizeof path, "%s/%s.layout.txt", dir, name);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    int i, x, y, sz, ic;
    if (sscanf(line, "image %d %d %d", &ic, &s->ih, &s->iw) == 3)
      continue;
    if (sscanf(line, "%d %d %d %d", &i, &x, &y, &sz) == 4 && i >= 0 && i < 64)
      s->x[i] = x, s->y[i] = y, s->size[i] = sz, s->n = i + 1 > s->n ? i + 1 : s->n;
  }
  fclose(f);
  return s->n >= 5 && s->ih > 0;
}

/* Channel ch of image pixel (ix, iy) in panel p, read at the centre of its square. */
static float at(const shot *s, int p, int ix, int iy, int ch) {
  float scale = (float)s->size[p] / (float)s->iw;
  int x = s->x[p] + (int)((ix + 0.5f) * scale), y = s->y[p] + (int)((iy + 0.5f) * scale);
  return s->px[(size_t)ch * s->w * s->h + (size_t)y * s->w + x];
}

static float grey(const shot *s, int p, int ix, int iy) { return at(s, p, ix, iy, 1); }

static float luma(const shot *s, int p, int ix, int iy) {
  return 0.299f * at(s, p, ix, iy, 0) + 0.587f * at(s, p, ix, iy, 1) + 0.114f * at(s, p, ix, iy, 2);
}

/* The viewer's red for pixels the model does not see. */
static int missing(const shot *s, int ix, int iy) {
  return at(s, 1, ix, iy, 0) > -0.1f && at(s, 1, ix, iy, 1) < -0.6f && at(s, 1, ix, iy, 2) < -0.6f;
}

TEST_CASE(view_inpaint_window) {
  skip_without_xvfb();
  char tmp[64], out[65536], cmd[2048];
  const char *dir = tiny_tmpdir(tmp);
  const char *script = tiny_join(dir, "paint.txt");
  /* a thick stroke over the top half, then two screenshots of different batches */
  write_text(script, "sync\nstroke 6 6 26 14 brush 3.5\nsync\nbatches 3\nscreenshot a\nbatches 2\nscreenshot b\n");
  snprintf(cmd, sizeof cmd,
           "xvfb-run -a %s --device 0 view --model %s --index 0 --k 4 --sigma-y 0.01 --no-vsync --script %s "
           "--out %s",
           APS_BIN, INPAINT_FLOW, script, dir);
  int rc = run(cmd, out, sizeof out);
  CHECK(rc == 0, "exit status %d", rc);
  CHECK(strstr(out, "FPS") && strstr(out, "llvmpipe"), "no summary on lavapipe");
  shot a, b;
  if (!shot_load(&a, dir, "a") || !shot_load(&b, dir, "b")) {
    CHECK(0, "screenshots or their layouts missing in %s", dir);
    return;
  }
  int n_in = 0, n_out = 0;
  double diff_in = 0, dev_out = 0, std_in = 0, std_out = 0;
  for (int y = 0; y < a.ih; y++)
    for (int x = 0; x < a.iw; x++) {
      int m = missing(&a, x, y);
      CHECK(m == missing(&b, x, y), "the mask changed between the screenshots at (%d, %d)", x, y);
      double d = fabs(grey(&a, 4, x, y) - grey(&b, 4, x, y)); /* sample 1, two batches apart */
      double e = fabs(grey(&a, 4, x, y) - grey(&a, 1, x, y)); /* sample 1 against the measurement */
      if (m)
        n_in++, diff_in += d, std_in += luma(&a, 3, x, y);
      else
        n_out++, dev_out += e, std_out += luma(&a, 3, x, y);
    }
  CHECK(n_in > 60 && n_out > 300, "the stroke masked %d pixels, %d observed", n_in, n_out);
  diff_in /= n_in > 0 ? n_in : 1, dev_out /= n_out > 0 ? n_out : 1;
  std_in /= n_in > 0 ? n_in : 1, std_out /= n_out > 0 ? n_out : 1;
  fprintf(stderr, "masked: mean |a - b| %.4f; observed: mean |sample - measurement| %.4f; std panel luma inside %.3f, "
          "outside %.3f\n", diff_in, dev_out, std_in, std_out);
  CHECK(diff_in > 0.01, "the masked region is the same in two batches (%.4f): no fresh samples", diff_in);
  CHECK(dev_out < 0.15, "the observed region strays from the measurement (%.4f)", dev_out);
  CHECK(std_in > std_out, "the std panel is not brighter inside the mask (%.3f) than outside (%.3f)", std_in, std_out);
  free(a.px), free(b.px);
}

TEST_CASE(view_blur_brush_window) {
  skip_without_xvfb();
  char tmp[64], out[65536], cmd[2048];
  const char *dir = tiny_tmpdir(tmp);
  const char *flow = tiny_join(dir, "blur.safetensors"), *script = tiny_join(dir, "blur.txt");
  REQUIRE_OK(tiny_flow_write(flow, 1, 32, "blur:sigma=0.5-3", 0.1f));
  write_text(script, "sync\nscreenshot before\nstroke 8 10 22 10 brush 2.5\nsync\nscreenshot after\n");
  snprintf(cmd, sizeof cmd,
           "xvfb-run -a %s view --model %s --index 1 --k 2 --sigma-y 0 --sigma-b 2 --no-vsync --script %s --out %s",
           APS_BIN, flow, script, dir);
  int rc = run(cmd, out, sizeof out);
  CHECK(rc == 0, "exit status %d", rc);
  shot a, b;
  if (!shot_load(&a, dir, "before") || !shot_load(&b, dir, "after")) {
    CHECK(0, "screenshots or their layouts missing in %s", dir);
    return;
  }
  int inside_changed = 0;
  for (int y = 0; y < a.ih; y++)
    for (int x = 0; x < a.iw; x++) {
      /* the brush covers pixel centres within 2.5 px of the segment y = 10.0, 8 <= x <= 22 */
      float cx = x + 0.5f, cy = y + 0.5f, px = cx < 8 ? 8 : cx > 22 ? 22 : cx;
      float dist = hypotf(cx - px, cy - 10.0f);
      int changed = fabsf(grey(&a, 1, x, y) - grey(&b, 1, x, y)) > 1.5f / 127.5f;
      if (dist > 2.5f + 1e-3f)
        CHECK(!changed, "the measurement changed outside the stroke at (%d, %d)", x, y);
      else
        inside_changed += changed;
    }
  CHECK(inside_changed > 10, "the blur brush changed only %d pixels of the stroke", inside_changed);
  free(a.px), free(b.px);
}

/* The mouse as a person uses it, through SDL's event handling in the real window: a left
 * drag paints where the transform says, the wheel zooms about the cursor, the window
 * resizes and the panels follow. */
TEST_CASE(view_mouse_window) {
  skip_without_xvfb();
  char tmp[64], out[65536], cmd[2048], text[512];
  const char *dir = tiny_tmpdir(tmp);
  const char *script = tiny_join(dir, "mouse.txt");
  view_layout l; /* where the viewer will put the clean panel */
  view_layout_compute(&l, 1100, 720, 4);
  float scale = (float)l.p[0].size / 32.0f;
  int x0 = l.p[0].x, y0 = l.p[0].y;
  int ax = x0 + (int)(6.0f * scale), bx = x0 + (int)(26.0f * scale), ay = y0 + (int)(16.0f * scale);
  int mx = x0 + l.p[0].size / 2 + 3, my = y0 + l.p[0].size / 2 - 5;
  snprintf(text, sizeof text,
           "sync\ndrag %d %d %d %d\nsync\nscreenshot painted\nwheel %d %d 1\nresize 800 600\nwait 3\n"
           "screenshot zoomed\n", ax, ay, bx, ay, mx, my);
  write_text(script, text);
  snprintf(cmd, sizeof cmd, "xvfb-run -a %s --device cpu view --model %s --index 2 --k 4 --width 1100 --height 720 "
           "--no-vsync --script %s --out %s", APS_BIN, INPAINT_FLOW, script, dir);
  int rc = run(cmd, out, sizeof out);
  CHECK(rc == 0, "exit status %d", rc);
  shot a, b;
  if (!shot_load(&a, dir, "painted") || !shot_load(&b, dir, "zoomed")) {
    CHECK(0, "screenshots or their layouts missing in %s", dir);
    return;
  }
  /* the drag's image segment, from the mouse's integer pixels through the panel transform */
  float sx0 = (float)(ax - x0) / scale, sx1 = (float)(bx - x0) / scale, sy = (float)(ay - y0) / scale;
  int wrong = 0;
  for (int y = 0; y < 32; y++)
    for (int x = 0; x < 32; x++) {
      float cx = x + 0.5f, cy = y + 0.5f, px = cx < sx0 ? sx0 : cx > sx1 ? sx1 : cx, d = hypotf(cx - px, cy - sy);
      wrong += (d < 2.3f && !missing(&a, x, y)) || (d > 2.7f && missing(&a, x, y));
    }
  CHECK(wrong == 0, "%d pixels of the mask disagree with the drag from (%g, %g) to (%g, %g)", wrong, sx0, sy, sx1, sy);
  view_layout m;
  view_layout_compute(&m, 800, 600, 4);
  CHECK(b.w == 800 && b.h == 600 && b.x[0] == m.p[0].x && b.y[0] == m.p[0].y && b.size[0] == m.p[0].size,
        "after the resize: %dx%d, the clean panel at (%d, %d) size %d; expected 800x600, (%d, %d) size %d", b.w, b.h,
        b.x[0], b.y[0], b.size[0], m.p[0].x, m.p[0].y, m.p[0].size);
  /* zoom 1.25 about the cursor's image point q: pan = (1 - 1.25) (q - 16) */
  float qx = (float)(mx - x0) / scale, qy = (float)(my - y0) / scale, z = 1.25f;
  float panx = (1 - z) * (qx - 16), pany = (1 - z) * (qy - 16), s2 = (float)b.size[0] / 32.0f;
  int mismatch = 0, unzoomed = 0, n = 0;
  for (int y = b.y[0]; y < b.y[0] + b.size[0]; y++)
    for (int x = b.x[0]; x < b.x[0] + b.size[0]; x++) {
      float u = ((x + 0.5f - b.x[0]) / s2 - 16 - panx) / z + 16, v = ((y + 0.5f - b.y[0]) / s2 - 16 - pany) / z + 16;
      if (fabsf(u - roundf(u)) < 0.02f || fabsf(v - roundf(v)) < 0.02f || u < 0 || v < 0 || u >= 32 || v >= 32)
        continue; /* on a pixel's edge, rounding decides */
      float got = b.px[(size_t)b.w * b.h + (size_t)y * b.w + x];
      n++;
      mismatch += fabsf(got - grey(&a, 0, (int)u, (int)v)) > 1e-3f;
      unzoomed += fabsf(got - grey(&a, 0, (x - b.x[0]) * 32 / b.size[0], (y - b.y[0]) * 32 / b.size[0])) > 1e-3f;
    }
  CHECK(n > 1000 && mismatch * 100 < n, "%d of %d pixels of the zoomed clean panel disagree with zoom 1.25 about "
        "(%g, %g)", mismatch, n, qx, qy);
  CHECK(unzoomed * 10 > n, "the clean panel looks unzoomed (%d of %d pixels differ from zoom 1)", unzoomed, n);
  free(a.px), free(b.px);
}

/* Bad input: exit status 1 and a message holding `want`. */
static void refused(const char *cmd, const char *want) {
  char out[65536];
  int rc = run(cmd, out, sizeof out);
  CHECK(rc == 1, "exit status %d (a crash is -1)", rc);
  CHECK(strstr(out, want), "the message does not say '%s'", want);
}

TEST_CASE(view_bad_image) {
  char tmp[64], cmd[2048];
  const char *dir = tiny_tmpdir(tmp);
  float img[3 * 20 * 24];
  for (int i = 0; i < 3 * 20 * 24; i++)
    img[i] = (float)(i % 7) / 7.0f;
  const char *small = tiny_join(dir, "small.png");
  REQUIRE_OK(aps_png_write_grid(small, img, 1, 3, 20, 24, 1, 0));
  snprintf(cmd, sizeof cmd, "%s --device cpu view --headless --model %s --image %s", APS_BIN, INPAINT_FLOW, small);
  refused(cmd, "small.png is 24x20 (width x height); the model takes 32x32");
  const char *text = tiny_join(dir, "text.png");
  write_text(text, "not a picture\n");
  snprintf(cmd, sizeof cmd, "%s --device cpu view --headless --model %s --image %s", APS_BIN, INPAINT_FLOW, text);
  refused(cmd, "text.png");
  snprintf(cmd, sizeof cmd, "%s --device cpu view --headless --model %s --image %s/none.png", APS_BIN, INPAINT_FLOW,
           dir);
  refused(cmd, "none.png");
}

TEST_CASE(view_bad_model) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s --device cpu view --headless --model /nonexistent/flow.safetensors", APS_BIN);
  refused(cmd, "/nonexistent/flow.safetensors");
  /* the prior is a model file, but not a flow */
  snprintf(cmd, sizeof cmd, "%s --device cpu view --headless --model %s/assets/prior-fmnist32.safetensors", APS_BIN,
           APS_SOURCE_DIR);
  refused(cmd, "metadata aps.kind is \"prior/vp-eps\"");
}

TEST_CASE(view_bad_script) {
  char tmp[64], cmd[2048];
  const char *dir = tiny_tmpdir(tmp);
  const char *script = tiny_join(dir, "bad.txt");
  write_text(script, "sync\n# a comment\nstroke 1 2 3\n");
  snprintf(cmd, sizeof cmd, "%s --device cpu view --headless --model %s --script %s", APS_BIN, INPAINT_FLOW, script);
  refused(cmd, "bad.txt:3: stroke X0 Y0 X1 Y1");
  write_text(script, "smudge 1 2\n");
  refused(cmd, "bad.txt:1: unknown command 'smudge'");
}

TEST_CASE(view_no_display) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "env -u DISPLAY -u WAYLAND_DISPLAY -u SDL_VIDEODRIVER %s --device cpu view --model %s",
           APS_BIN, INPAINT_FLOW);
  refused(cmd, "cannot open a display");
  snprintf(cmd, sizeof cmd, "env SDL_VIDEODRIVER=nonexistent %s --device cpu view --model %s", APS_BIN, INPAINT_FLOW);
  refused(cmd, "cannot open a display (SDL: nonexistent not available)");
}

TEST_CASE(view_headless) {
  char tmp[64], out[65536], cmd[2048];
  const char *dir = tiny_tmpdir(tmp);
  const char *script = tiny_join(dir, "keys.txt");
  /* the help overlay and the snapshot key, as a person would press them */
  write_text(script, "sync\nkey h\nkey s\nwait 2\n");
  snprintf(cmd, sizeof cmd, "%s --device cpu view --headless --no-vsync --model %s --frames 40 --screenshot-every 20 "
           "--script %s --out %s", APS_BIN, INPAINT_FLOW, script, dir);
  int rc = run(cmd, out, sizeof out);
  CHECK(rc == 0, "exit status %d", rc);
  CHECK(strstr(out, "40 frames in") && strstr(out, "UI frame time p99") && strstr(out, "ms per sample"),
        "no summary");
  shot a;
  CHECK(shot_load(&a, dir, "frame-000020"), "no screenshot frame-000020.png with its layout in %s", dir);
  free(a.px);
  CHECK(shot_load(&a, dir, "aps-view-0000"), "the S key saved no snapshot aps-view-0000.png in %s", dir);
  free(a.px);
}
