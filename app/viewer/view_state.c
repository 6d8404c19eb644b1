/* The viewer's state and the changes a person makes to it (view_state.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <SDL_keycode.h>

#include "view_state.h"
#include "view_worker.h"

const char *const view_help_lines[] = {
    "MOUSE LEFT   paint with the tool",
    "MOUSE RIGHT  drag: pan    WHEEL: zoom",
    "B / E        brush / eraser",
    "[ ]          brush size - / +",
    "- =          K samples - / +",
    "1 2          sigma_y - / +",
    "3 4          sigma_b - / + (blur models)",
    "SPACE        pause / resume sampling",
    "C            clear the damage",
    "N P, -> <-   next / previous test image",
    "S            save a snapshot PNG",
    "R            reset zoom and pan",
    "H            this help      Q, ESC  quit",
    "drop a PNG on the window to open it",
    NULL,
};

aps_status view_state_init(view_state *st, const aps_posterior_info *in, float sigma_b, float sigma_y, int k) {
  memset(st, 0, sizeof *st);
  st->c = in->channels, st->h = in->height, st->w = in->width, st->cls = in->cls;
  st->clean = calloc((size_t)st->c * (size_t)st->h * (size_t)st->w, sizeof *st->clean);
  st->map = calloc((size_t)st->h * (size_t)st->w, sizeof *st->map);
  if (!st->clean || !st->map) {
    view_state_free(st);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  st->sigma_b = sigma_b, st->sigma_y = sigma_y, st->k = k;
  st->brush = 2.5f, st->zoom = 1.0f, st->index = -1;
  view_clear(st);
  return APS_OK;
}

void view_state_free(view_state *st) {
  free(st->clean), free(st->map);
  st->clean = st->map = NULL;
}

void view_state_set_image(view_state *st, const float *img, int index, const char *source) {
  memcpy(st->clean, img, (size_t)st->c * (size_t)st->h * (size_t)st->w * sizeof *img);
  st->index = index;
  snprintf(st->source, sizeof st->source, "%s", source);
  st->version++;
}

/* The value the tool leaves: the brush damages (mask 0, blur weight 1), the eraser heals. */
static float tool_value(const view_state *st, view_tool tool) {
  int damage = tool == VIEW_TOOL_BRUSH;
  return st->cls == APS_OPC_BLUR ? (float)damage : (float)!damage;
}

int view_paint(view_state *st, float x0, float y0, float x1, float y1, view_tool tool) {
  float v = tool_value(st, tool), r = st->brush;
  float len = hypotf(x1 - x0, y1 - y0);
  int steps = (int)ceilf(len / fmaxf(r * 0.5f, 0.25f)) + 1, changed = 0;
  for (int s = 0; s < steps; s++) {
    float t = steps > 1 ? (float)s / (float)(steps - 1) : 0.0f;
    float cx = x0 + t * (x1 - x0), cy = y0 + t * (y1 - y0);
    int ya = (int)floorf(cy - r), yb = (int)ceilf(cy + r), xa = (int)floorf(cx - r), xb = (int)ceilf(cx + r);
    for (int y = ya < 0 ? 0 : ya; y <= yb && y < st->h; y++)
      for (int x = xa < 0 ? 0 : xa; x <= xb && x < st->w; x++) {
        float dx = (float)x + 0.5f - cx, dy = (float)y + 0.5f - cy; /* pixel centres */
        float *m = &st->map[y * st->w + x];
        if (dx * dx + dy * dy <= r * r && *m != v)
          *m = v, changed = 1;
      }
  }
  if (changed)
    st->version++;
  return changed;
}

void view_clear(view_state *st) {
  float v = st->cls == APS_OPC_BLUR ? 0.0f : 1.0f;
  for (int i = 0; i < st->h * st->w; i++)
    st->map[i] = v;
  st->version++;
}

void view_say(view_state *st, double now_ms, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->message, sizeof st->message, fmt, ap);
  va_end(ap);
  st->message_until_ms = now_ms + 4000.0;
  fprintf(stderr, "aps view: %s\n", st->message);
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

view_action view_key(view_state *st, int key) {
  switch (key) {
  case SDLK_h: st->help = !st->help; break;
  case SDLK_SPACE: st->paused = !st->paused; break;
  case SDLK_b: st->tool = VIEW_TOOL_BRUSH; break;
  case SDLK_e: st->tool = VIEW_TOOL_ERASER; break;
  case SDLK_LEFTBRACKET: st->brush = clampf(st->brush - 0.5f, 0.5f, 16.0f); break;
  case SDLK_RIGHTBRACKET: st->brush = clampf(st->brush + 0.5f, 0.5f, 16.0f); break;
  case SDLK_MINUS: case SDLK_KP_MINUS: st->k = st->k > 2 ? st->k - 1 : 2; break;
  case SDLK_EQUALS: case SDLK_PLUS: case SDLK_KP_PLUS: st->k = st->k < VIEW_K_MAX ? st->k + 1 : VIEW_K_MAX; break;
  case SDLK_1:
  case SDLK_2: /* σ_y in steps of 0.01 within what the operators accept */
    st->sigma_y = clampf(roundf(st->sigma_y * 100.0f + (key == SDLK_1 ? -1.0f : 1.0f)) / 100.0f, 0.0f, APS_SIGMA_Y_MAX);
    st->version++;
    break;
  case SDLK_3: case SDLK_4:
    if (st->cls == APS_OPC_BLUR) { /* σ_b in steps of 0.25 px */
      st->sigma_b = clampf(st->sigma_b + (key == SDLK_3 ? -0.25f : 0.25f), 0.25f, APS_BLUR_SIGMA_MAX);
      st->version++;
    }
    break;
  case SDLK_c: view_clear(st); break;
  case SDLK_r: st->zoom = 1.0f, st->pan[0] = st->pan[1] = 0.0f; break;
  case SDLK_n: case SDLK_RIGHT: return VIEW_ACT_NEXT_IMAGE;
  case SDLK_p: case SDLK_LEFT: return VIEW_ACT_PREV_IMAGE;
  case SDLK_s: return VIEW_ACT_SNAPSHOT;
  case SDLK_q: case SDLK_ESCAPE: return VIEW_ACT_QUIT;
  default: break;
  }
  return VIEW_ACT_NONE;
}
