/* What the viewer's loop (viewer.c) and its input handling (view_input.c) share. */
#ifndef APS_VIEWER_INTERNAL_H
#define APS_VIEWER_INTERNAL_H

#include <SDL.h>

#include "dataset.h"
#include "view_compose.h"
#include "view_script.h"
#include "view_state.h"
#include "view_worker.h"
#include "viewer.h"

typedef struct viewer {
  const aps_viewer_desc *d;
  aps_posterior *p;
  const aps_posterior_info *info;
  view_state st;
  view_result res;
  view_layout layout;
  aps_dataset *data; /* Fashion-MNIST's test split, loaded when first needed */
  /* the window (NULL headless) */
  SDL_Window *window;
  SDL_Renderer *renderer;
  SDL_Texture *texture;
  uint32_t *fb;
  int fb_w, fb_h;
  /* the mouse */
  int painting, panning, paint_panel;
  int mouse_x, mouse_y; /* the last position, window coordinates */
  int size_w, size_h;   /* headless: the framebuffer's size */
  float last_ix, last_iy;
  /* the script */
  view_script script;
  int pos, waiting;
  int64_t wait_until;
  double wait_since_ms;
  char shots[8][256];
  int n_shots;
  int quit, snapshots;
  int dirty; /* the framebuffer must be drawn again */
  int64_t frame;
  double now_ms;
} viewer;

/* A PNG as the clean image, fitted to the model's size; errors name the file. */
aps_status viewer_open_png(viewer *v, const char *path);
/* Test image `index` of Fashion-MNIST (wrapping around). */
aps_status viewer_open_index(viewer *v, int index);
/* A key's effect, the state's and the loop's. */
void viewer_key(viewer *v, int key);
/* Every pending SDL event. */
void viewer_poll_events(viewer *v);
/* The script's commands for this frame; an error when it stalls. */
aps_status viewer_script_step(viewer *v);
/* The framebuffer as OUT/name.png. */
aps_status viewer_save(viewer *v, const char *name);

#endif
