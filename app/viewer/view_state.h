/* What the person has set in the viewer: the image, the painted map, σ_b, σ_y, K, the
 * tool, the view's zoom and pan, and the overlays. Painting and keys change it here, the
 * same way for the mouse and for a script; nothing here waits on sampling or needs a
 * window. Every change to the measurement bumps version, which tells the sampling thread
 * to set the operator again and restart its running moments. */
#ifndef APS_VIEW_STATE_H
#define APS_VIEW_STATE_H

#include <stdint.h>

#include "aps.h"

typedef enum view_tool { VIEW_TOOL_BRUSH = 0, VIEW_TOOL_ERASER } view_tool;

/* What a key asks of the loop beyond the state (files, the data set, quitting). */
typedef enum view_action {
  VIEW_ACT_NONE = 0,
  VIEW_ACT_NEXT_IMAGE,
  VIEW_ACT_PREV_IMAGE,
  VIEW_ACT_SNAPSHOT,
  VIEW_ACT_QUIT,
} view_action;

typedef struct view_state {
  int c, h, w;
  aps_op_class cls;   /* the model's class: the brush masks (inpainting) or blurs */
  float *clean;       /* [C, H, W] in [-1, 1] */
  float *map;         /* [H, W]: inpainting 1 observed / 0 missing; blur the weight w */
  float sigma_b, sigma_y;
  int k;
  int paused, help;
  view_tool tool;
  float brush;        /* radius in image pixels */
  float zoom, pan[2]; /* the shared view of every panel: image px → panel px */
  uint64_t version;
  int index;          /* the test image shown, -1 for a PNG */
  char source[256];   /* where the image came from, for the HUD */
  char message[256];  /* a note or error shown in the window */
  double message_until_ms;
} view_state;

aps_status view_state_init(view_state *st, const aps_posterior_info *in, float sigma_b, float sigma_y, int k);
void view_state_free(view_state *st);

/* A new clean image [C, H, W]; the map is kept. */
void view_state_set_image(view_state *st, const float *img, int index, const char *source);
/* Paints the tool's value along the segment (image pixels, continuous coordinates) with
 * discs of the brush radius; 1 if any pixel changed. */
int view_paint(view_state *st, float x0, float y0, float x1, float y1, view_tool tool);
/* Nothing damaged: the mask all observed, the blur map all 0. */
void view_clear(view_state *st);
/* An SDL keycode; the state's own changes are made here. */
view_action view_key(view_state *st, int key);
/* A message in the window for a few seconds (and on stderr). */
void view_say(view_state *st, double now_ms, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The help overlay's lines, NULL-terminated. */
extern const char *const view_help_lines[];

#endif
