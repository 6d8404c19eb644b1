/* The viewer's picture: the panels laid out in a framebuffer of any size, each image
 * scaled with nearest neighbours through one transform per panel (cglm), labelled; the std
 * heat map with its scale bar; the HUD, the help overlay and messages. The same
 * framebuffer is shown in the window (an SDL texture), saved as snapshots and screenshots,
 * and drawn without a window in headless mode, so all three agree. Pixels are XRGB8888. */
#ifndef APS_VIEW_COMPOSE_H
#define APS_VIEW_COMPOSE_H

#include <stdint.h>

#include "view_state.h"
#include "view_worker.h"

enum { VIEW_PANEL_CLEAN = 0, VIEW_PANEL_MEASUREMENT, VIEW_PANEL_MEAN, VIEW_PANEL_STD, VIEW_PANEL_SAMPLES };

typedef struct view_panel {
  char name[32];
  int x, y, size; /* the panel's square on screen */
} view_panel;

typedef struct view_layout {
  int fb_w, fb_h;
  int n; /* VIEW_PANEL_SAMPLES + K */
  view_panel p[VIEW_PANEL_SAMPLES + VIEW_K_MAX];
  int text_scale, hud_h, label_h;
} view_layout;

typedef struct view_hud {
  double fps, batches_per_s;
  const char *device, *model;
} view_hud;

void view_layout_compute(view_layout *l, int fb_w, int fb_h, int k);
/* Image pixel (x, y) → screen, for panel i, under the state's zoom and pan; its inverse. */
void view_panel_transform(const view_layout *l, const view_state *st, int i, float m[3][3]);
/* The panel under screen point (sx, sy) and the image coordinates there; -1 if none. */
int view_hit(const view_layout *l, const view_state *st, float sx, float sy, float *ix, float *iy);
void view_compose(uint32_t *fb, const view_layout *l, const view_state *st, const view_result *r, const view_hud *hud,
                  double now_ms);

/* The framebuffer as an RGB PNG (written atomically). */
aps_status view_write_png(const char *path, const uint32_t *fb, int w, int h);
/* Where the panels are, for tests and tools: a line per panel "index x y size name" (screen px of
 * the image's square at zoom 1; 0 clean, 1 measurement, 2 mean, 3 std, 4.. samples), then
 * "image C H W". */
aps_status view_write_layout(const char *path, const view_layout *l, const view_state *st);

#endif
