/* The viewer's input: the mouse, keys, dropped files and the script (viewer_internal.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cglm/cglm.h>

#include "aps_file.h"
#include "image_fit.h"
#include "image_read.h"
#include "viewer_internal.h"

/* A script command that waits longer than this has stalled (the sampling thread failed). */
#define SCRIPT_STALL_MS 180000.0

aps_status viewer_open_png(viewer *v, const char *path) {
  int c, h, w;
  float *raw = NULL, *fit = NULL;
  char note[128], what[300];
  snprintf(what, sizeof what, "%s", path);
  APS_TRY(aps_png_read_image(path, &c, &h, &w, &raw));
  aps_status s = aps_image_fit(raw, c, h, w, v->st.c, v->st.h, v->st.w, 1, what, &fit, note, sizeof note);
  if (s == APS_OK) {
    if (note[0])
      view_say(&v->st, v->now_ms, "%s: %s", path, note);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    view_state_set_image(&v->st, fit, -1, base);
  }
  free(raw), free(fit);
  return s;
}

aps_status viewer_open_index(viewer *v, int index) {
  if (!v->data)
    APS_TRY(aps_dataset_load_fashion_mnist(NULL, 0, &v->data));
  const aps_dataset *ds = v->data;
  if (aps_dataset_channels(ds) != v->st.c || aps_dataset_height(ds) != v->st.h || aps_dataset_width(ds) != v->st.w)
    return aps_fail(APS_ERR_INVALID_ARG, "the test images of %s are %dx%dx%d, but %s takes %dx%dx%d (c x h x w)",
                    aps_dataset_source(ds), aps_dataset_channels(ds), aps_dataset_height(ds), aps_dataset_width(ds),
                    v->info->model, v->st.c, v->st.h, v->st.w);
  int n = (int)aps_dataset_count(ds);
  index = ((index % n) + n) % n;
  char name[64];
  snprintf(name, sizeof name, "TEST #%d", index);
  view_state_set_image(&v->st, aps_dataset_data(ds) + (int64_t)index * v->st.c * v->st.h * v->st.w, index, name);
  return APS_OK;
}

aps_status viewer_save(viewer *v, const char *name) {
  char path[1024];
  if (aps_file_make_dirs(v->d->out) != 0)
    return aps_fail(APS_ERR_IO, "--out %s: cannot create the folder", v->d->out);
  snprintf(path, sizeof path, "%s/%s.png", v->d->out, name);
  APS_TRY(view_write_png(path, v->fb, v->fb_w, v->fb_h));
  snprintf(path, sizeof path, "%s/%s.layout.txt", v->d->out, name);
  return view_write_layout(path, &v->layout, &v->st);
}

void viewer_key(viewer *v, int key) {
  aps_status s = APS_OK;
  switch (view_key(&v->st, key)) {
  case VIEW_ACT_NEXT_IMAGE:
  case VIEW_ACT_PREV_IMAGE: {
    int step = (key == SDLK_n || key == SDLK_RIGHT) ? 1 : -1;
    s = viewer_open_index(v, v->st.index < 0 ? 0 : v->st.index + step);
    break;
  }
  case VIEW_ACT_SNAPSHOT: /* saved after this frame is drawn */
    if (v->n_shots < 8) {
      snprintf(v->shots[v->n_shots++], sizeof v->shots[0], "aps-view-%04d", v->snapshots++);
    }
    break;
  case VIEW_ACT_QUIT: v->quit = 1; break;
  case VIEW_ACT_NONE: break;
  }
  if (s != APS_OK)
    view_say(&v->st, v->now_ms, "%s", aps_last_error());
}

/* Window point → framebuffer point (they differ on high-DPI screens). */
static void to_fb(viewer *v, int x, int y, float *fx, float *fy) {
  int ww = v->fb_w, wh = v->fb_h;
  if (v->window)
    SDL_GetWindowSize(v->window, &ww, &wh);
  *fx = (float)x * (float)v->fb_w / (float)(ww > 0 ? ww : 1);
  *fy = (float)y * (float)v->fb_h / (float)(wh > 0 ? wh : 1);
}

static void mouse(viewer *v, const SDL_Event *e) {
  float fx, fy, ix, iy;
  if (e->type == SDL_MOUSEBUTTONDOWN || e->type == SDL_MOUSEBUTTONUP) {
    int down = e->type == SDL_MOUSEBUTTONDOWN;
    v->mouse_x = e->button.x, v->mouse_y = e->button.y;
    to_fb(v, e->button.x, e->button.y, &fx, &fy);
    if (e->button.button == SDL_BUTTON_RIGHT)
      v->panning = down;
    if (e->button.button != SDL_BUTTON_LEFT)
      return;
    v->painting = 0;
    int panel = down ? view_hit(&v->layout, &v->st, fx, fy, &ix, &iy) : -1;
    if (panel >= 0) {
      v->painting = 1, v->paint_panel = panel, v->last_ix = ix, v->last_iy = iy;
      view_paint(&v->st, ix, iy, ix, iy, v->st.tool);
    }
  } else if (e->type == SDL_MOUSEMOTION) {
    v->mouse_x = e->motion.x, v->mouse_y = e->motion.y;
    if (v->panning) { /* screen px → image px at this zoom */
      float fit = (float)v->layout.p[0].size / (float)(v->st.w > v->st.h ? v->st.w : v->st.h);
      float dx, dy;
      to_fb(v, e->motion.xrel, e->motion.yrel, &dx, &dy);
      v->st.pan[0] += dx / (fit * v->st.zoom), v->st.pan[1] += dy / (fit * v->st.zoom);
    }
    if (!v->painting)
      return;
    to_fb(v, e->motion.x, e->motion.y, &fx, &fy);
    /* keep painting in the panel the stroke began in, through its own transform */
    mat3 m, inv;
    view_panel_transform(&v->layout, &v->st, v->paint_panel, m);
    glm_mat3_inv(m, inv);
    vec3 s = {fx, fy, 1.0f}, im;
    glm_mat3_mulv(inv, s, im);
    view_paint(&v->st, v->last_ix, v->last_iy, im[0], im[1], v->st.tool);
    v->last_ix = im[0], v->last_iy = im[1];
  } else if (e->type == SDL_MOUSEWHEEL) { /* zoom about the point under the cursor */
    to_fb(v, v->mouse_x, v->mouse_y, &fx, &fy);
    if (view_hit(&v->layout, &v->st, fx, fy, &ix, &iy) < 0)
      return;
    float z = v->st.zoom * powf(1.25f, (float)e->wheel.y);
    z = z < 1.0f ? 1.0f : z > 16.0f ? 16.0f : z;
    v->st.pan[0] += (v->st.zoom - z) * (ix - v->st.w * 0.5f);
    v->st.pan[1] += (v->st.zoom - z) * (iy - v->st.h * 0.5f);
    v->st.zoom = z;
  }
}

void viewer_poll_events(viewer *v) {
  SDL_Event e;
  while (SDL_PollEvent(&e)) {
    v->dirty = 1; /* anything may change the picture: draw it again */
    switch (e.type) {
    case SDL_QUIT: v->quit = 1; break;
    case SDL_KEYDOWN: viewer_key(v, e.key.keysym.sym); break;
    case SDL_DROPFILE:
      if (viewer_open_png(v, e.drop.file) != APS_OK)
        view_say(&v->st, v->now_ms, "%s", aps_last_error());
      SDL_free(e.drop.file);
      break;
    case SDL_MOUSEBUTTONDOWN:
    case SDL_MOUSEBUTTONUP:
    case SDL_MOUSEMOTION:
    case SDL_MOUSEWHEEL: mouse(v, &e); break;
    default: break;
    }
  }
}

/* A script's drag: the mouse events a person's would make, through the same handling. */
static void drag(viewer *v, const view_cmd *c) {
  int button = c->eraser ? SDL_BUTTON_RIGHT : SDL_BUTTON_LEFT, steps = 16;
  SDL_Event e = {.type = SDL_MOUSEBUTTONDOWN};
  e.button.button = (Uint8)button, e.button.x = (int)c->v[0], e.button.y = (int)c->v[1];
  mouse(v, &e);
  int px = (int)c->v[0], py = (int)c->v[1];
  for (int i = 1; i <= steps; i++) {
    int x = (int)lroundf(c->v[0] + (c->v[2] - c->v[0]) * (float)i / (float)steps);
    int y = (int)lroundf(c->v[1] + (c->v[3] - c->v[1]) * (float)i / (float)steps);
    e = (SDL_Event){.type = SDL_MOUSEMOTION};
    e.motion.x = x, e.motion.y = y, e.motion.xrel = x - px, e.motion.yrel = y - py;
    mouse(v, &e);
    px = x, py = y;
  }
  e = (SDL_Event){.type = SDL_MOUSEBUTTONUP};
  e.button.button = (Uint8)button, e.button.x = px, e.button.y = py;
  mouse(v, &e);
}

aps_status viewer_script_step(viewer *v) {
  while (v->pos < v->script.n && !v->quit) {
    const view_cmd *c = &v->script.cmds[v->pos];
    int done = 1;
    if (c->kind == VIEW_CMD_WAIT || c->kind == VIEW_CMD_BATCHES || c->kind == VIEW_CMD_SYNC) {
      if (!v->waiting) {
        v->waiting = 1, v->wait_since_ms = v->now_ms;
        v->wait_until = c->kind == VIEW_CMD_WAIT ? v->frame + c->n : (int64_t)v->res.seq + c->n;
      }
      if (c->kind == VIEW_CMD_WAIT)
        done = v->frame >= v->wait_until;
      else if (c->kind == VIEW_CMD_BATCHES)
        done = (int64_t)v->res.seq >= v->wait_until;
      else /* a batch of the current measurement, or its refusal */
        done = v->res.seq > 0 && v->res.version == v->st.version && (v->res.error[0] || v->res.k == v->st.k);
      if (!done) {
        if (c->kind != VIEW_CMD_WAIT && v->now_ms - v->wait_since_ms > SCRIPT_STALL_MS)
          return aps_fail(APS_ERR_TIMEOUT, "--script %s:%d: no batch of samples came in %.0f s", v->d->script,
                          c->line, SCRIPT_STALL_MS / 1000.0);
        return APS_OK;
      }
      v->waiting = 0;
    } else if (c->kind == VIEW_CMD_STROKE) {
      float r = v->st.brush;
      if (c->v[4] > 0)
        v->st.brush = c->v[4];
      view_paint(&v->st, c->v[0], c->v[1], c->v[2], c->v[3], c->eraser ? VIEW_TOOL_ERASER : VIEW_TOOL_BRUSH);
      v->st.brush = r;
    } else if (c->kind == VIEW_CMD_KEY) {
      viewer_key(v, c->key);
    } else if (c->kind == VIEW_CMD_OPEN) {
      if (viewer_open_png(v, c->text) != APS_OK)
        return aps_fail_context(APS_ERR_INVALID_ARG, "--script %s:%d: ", v->d->script, c->line);
    } else if (c->kind == VIEW_CMD_SCREENSHOT) {
      if (v->n_shots < 8)
        snprintf(v->shots[v->n_shots++], sizeof v->shots[0], "%s", c->text);
    } else if (c->kind == VIEW_CMD_DRAG) {
      drag(v, c);
    } else if (c->kind == VIEW_CMD_WHEEL) {
      SDL_Event e = {.type = SDL_MOUSEMOTION};
      e.motion.x = (int)c->v[0], e.motion.y = (int)c->v[1];
      mouse(v, &e);
      e = (SDL_Event){.type = SDL_MOUSEWHEEL};
      e.wheel.y = c->n;
      mouse(v, &e);
    } else if (c->kind == VIEW_CMD_RESIZE) {
      if (v->window)
        SDL_SetWindowSize(v->window, c->n, c->key);
      else
        v->size_w = c->n, v->size_h = c->key;
    } else if (c->kind == VIEW_CMD_QUIT) {
      v->quit = 1;
    }
    v->pos++;
    v->dirty = 1;
    if (c->kind == VIEW_CMD_SCREENSHOT)
      break; /* the screenshot shows this frame: what follows waits for the next */
  }
  return APS_OK;
}
