/* The viewer's pieces without a window or a model: painting, the panels' transforms under
 * zoom and pan, the layout, and the script reader. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <SDL_keycode.h>

#include "test.h"
#include "tiny_flow.h"
#include "view_compose.h"
#include "view_script.h"
#include "view_state.h"

static view_state make_state(aps_op_class cls) {
  aps_posterior_info in = {.channels = 1, .height = 32, .width = 32, .cls = cls};
  view_state st;
  if (view_state_init(&st, &in, 1.5f, 0.05f, 8) != APS_OK)
    memset(&st, 0, sizeof st);
  return st;
}

TEST_CASE(view_paint_disc) {
  view_state st = make_state(APS_OPC_MASK);
  REQUIRE_OK(st.map ? APS_OK : APS_ERR_OUT_OF_MEMORY);
  uint64_t v0 = st.version;
  st.brush = 2.0f;
  CHECK(view_paint(&st, 10.0f, 10.0f, 20.0f, 10.0f, VIEW_TOOL_BRUSH), "nothing painted");
  CHECK(st.version > v0, "painting did not bump the version");
  int wrong = 0;
  for (int y = 0; y < 32; y++)
    for (int x = 0; x < 32; x++) { /* pixel centres within 2 px of the segment are missing (0) */
      float cx = x + 0.5f, cy = y + 0.5f, px = cx < 10 ? 10 : cx > 20 ? 20 : cx;
      float d = hypotf(cx - px, cy - 10.0f);
      wrong += (d <= 2.0f - 1e-4f && st.map[y * 32 + x] != 0.0f) || (d > 2.0f + 1e-4f && st.map[y * 32 + x] != 1.0f);
    }
  CHECK(wrong == 0, "%d pixels disagree with the disc sweep", wrong);
  CHECK(view_paint(&st, 15.0f, 10.0f, 15.0f, 10.0f, VIEW_TOOL_ERASER), "the eraser changed nothing");
  CHECK(st.map[10 * 32 + 15] == 1.0f, "the eraser did not heal (15, 10)");
  uint64_t v1 = st.version;
  CHECK(!view_paint(&st, 15.0f, 10.0f, 15.0f, 10.0f, VIEW_TOOL_ERASER) && st.version == v1,
        "painting what is already there changed the version");
  view_clear(&st);
  for (int i = 0; i < 32 * 32; i++)
    CHECK(st.map[i] == 1.0f, "clear left pixel %d missing", i);
  view_state_free(&st);
}

TEST_CASE(view_blur_brush_map) {
  view_state st = make_state(APS_OPC_BLUR);
  REQUIRE_OK(st.map ? APS_OK : APS_ERR_OUT_OF_MEMORY);
  CHECK(st.map[0] == 0.0f, "a blur map starts unblurred");
  view_paint(&st, 16.0f, 16.0f, 16.0f, 16.0f, VIEW_TOOL_BRUSH);
  CHECK(st.map[16 * 32 + 16] == 1.0f && st.map[0] == 0.0f, "the blur brush sets the weight 1 where it paints only");
  float sb = st.sigma_b;
  view_key(&st, SDLK_4);
  CHECK(fabsf(st.sigma_b - sb - 0.25f) < 1e-6f, "the 4 key did not widen σ_b");
  view_state_free(&st);
  st = make_state(APS_OPC_MASK);
  sb = st.sigma_b;
  view_key(&st, SDLK_4);
  CHECK(st.sigma_b == sb, "σ_b changed on an inpainting model");
  float sy = st.sigma_y;
  view_key(&st, SDLK_2);
  CHECK(fabsf(st.sigma_y - sy - 0.01f) < 1e-6f, "the 2 key did not raise σ_y");
  for (int i = 0; i < 40; i++)
    view_key(&st, SDLK_EQUALS);
  CHECK(st.k == 32, "K went past its limit: %d", st.k);
  CHECK(view_key(&st, SDLK_s) == VIEW_ACT_SNAPSHOT && view_key(&st, SDLK_ESCAPE) == VIEW_ACT_QUIT, "actions");
  view_state_free(&st);
}

TEST_CASE(view_transform_zoom_pan) {
  view_state st = make_state(APS_OPC_MASK);
  REQUIRE_OK(st.map ? APS_OK : APS_ERR_OUT_OF_MEMORY);
  view_layout l;
  view_layout_compute(&l, 1100, 720, st.k);
  CHECK(l.n == 12, "%d panels for K = 8", l.n);
  for (int i = 0; i < l.n; i++) /* inside the framebuffer, and not overlapping the next */
    CHECK(l.p[i].x >= 0 && l.p[i].y >= l.hud_h && l.p[i].x + l.p[i].size <= 1100 && l.p[i].y + l.p[i].size <= 720 &&
              l.p[i].size >= 32,
          "panel %d at (%d, %d) size %d", i, l.p[i].x, l.p[i].y, l.p[i].size);
  st.zoom = 2.5f, st.pan[0] = 3.0f, st.pan[1] = -2.0f;
  for (int i = 0; i < l.n; i += 5) { /* image → screen → image through view_hit */
    float m[3][3];
    view_panel_transform(&l, &st, i, m);
    float ix = 17.25f, iy = 14.5f, sx = m[0][0] * ix + m[1][0] * iy + m[2][0], sy = m[0][1] * ix + m[1][1] * iy + m[2][1];
    float bx = -1, by = -1;
    int hit = view_hit(&l, &st, sx, sy, &bx, &by);
    CHECK(hit == i && fabsf(bx - ix) < 1e-3f && fabsf(by - iy) < 1e-3f, "panel %d: (%g, %g) came back as %d (%g, %g)",
          i, ix, iy, hit, bx, by);
  }
  /* zoom 1, no pan: the image fills its panel exactly */
  st.zoom = 1.0f, st.pan[0] = st.pan[1] = 0.0f;
  float bx, by;
  CHECK(view_hit(&l, &st, (float)l.p[0].x, (float)l.p[0].y, &bx, &by) == 0 && fabsf(bx) < 1e-4f && fabsf(by) < 1e-4f,
        "the panel's corner is not the image's (%g, %g)", bx, by);
  view_state_free(&st);
}

TEST_CASE(view_script_reader) {
  char tmp[64];
  const char *dir = tiny_tmpdir(tmp);
  const char *path = tiny_join(dir, "s.txt");
  FILE *f = fopen(path, "w");
  REQUIRE_OK(f ? APS_OK : APS_ERR_IO);
  fputs("# painting\nsync\n\nstroke 1 2.5 3 4 eraser 2  # a comment\nkey space\nbatches 3\nwait 7\n"
        "screenshot a\nopen x.png\nquit\n", f);
  fclose(f);
  view_script s;
  REQUIRE_OK(view_script_load(path, &s));
  CHECK(s.n == 8, "%d commands", s.n);
  if (s.n == 8) {
    CHECK(s.cmds[0].kind == VIEW_CMD_SYNC, "sync");
    CHECK(s.cmds[1].kind == VIEW_CMD_STROKE && s.cmds[1].v[1] == 2.5f && s.cmds[1].eraser && s.cmds[1].v[4] == 2.0f &&
              s.cmds[1].line == 4, "stroke");
    CHECK(s.cmds[2].kind == VIEW_CMD_KEY && s.cmds[2].key == SDLK_SPACE, "key space is %d", s.cmds[2].key);
    CHECK(s.cmds[3].kind == VIEW_CMD_BATCHES && s.cmds[3].n == 3 && s.cmds[4].kind == VIEW_CMD_WAIT && s.cmds[4].n == 7,
          "waits");
    CHECK(s.cmds[5].kind == VIEW_CMD_SCREENSHOT && !strcmp(s.cmds[5].text, "a"), "screenshot");
    CHECK(s.cmds[6].kind == VIEW_CMD_OPEN && !strcmp(s.cmds[6].text, "x.png") && s.cmds[7].kind == VIEW_CMD_QUIT, "open, quit");
  }
  view_script_free(&s);
  static const char *const bad[][2] = {
      {"wait -1\n", "s.txt:1: 'wait' takes one count"},
      {"sync\nstroke 1 2 3 x\n", "s.txt:2: stroke: 'x' is not a number"},
      {"stroke 1 2 3 4 brush 40\n", "neither brush, eraser nor a radius"},
      {"key nosuchkey\n", "s.txt:1: key takes one SDL key name"},
      {"screenshot ../x\n", "takes one name (no '/')"},
      {"paint 1\n", "unknown command 'paint'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    f = fopen(path, "w");
    REQUIRE_OK(f ? APS_OK : APS_ERR_IO);
    fputs(bad[i][0], f);
    fclose(f);
    CHECK(view_script_load(path, &s) == APS_ERR_FORMAT && strstr(aps_last_error(), bad[i][1]),
          "'%s' gave '%s'", bad[i][0], aps_last_error());
  }
  CHECK(view_script_load("/nonexistent/s.txt", &s) == APS_ERR_IO && strstr(aps_last_error(), "/nonexistent/s.txt"),
        "a missing script: '%s'", aps_last_error());
}
