/* aps view: the live viewer (docs/VIEWER.md). A person damages an image with the mouse (a
 * mask on an inpainting flow, a blur on a blur flow) and sees, every frame, the latest
 * batch of K posterior samples from fresh z, their running mean and a per-pixel standard
 * deviation heat map. Sampling runs on its own thread (view_worker.h); the window is SDL2,
 * the picture reaches it through an SDL texture. A script replays input for tests, demos
 * and benchmarks; headless mode runs the same loop with no window at all. */
#ifndef APS_VIEWER_H
#define APS_VIEWER_H

#include "aps_status.h"

typedef struct aps_viewer_desc {
  const char *model;      /* the flow file (required) */
  const char *device;     /* as aps_posterior_desc's */
  const char *image;      /* a PNG to start from, or NULL: Fashion-MNIST's test image `index` */
  int index;
  int k;                  /* samples per frame */
  float sigma_y, sigma_b; /* σ_y; σ_b for blur models */
  int no_vsync, headless;
  int width, height;      /* the window's (or headless framebuffer's) size */
  const char *script;     /* NULL: interactive */
  int frames;             /* stop after this many frames (0: at the script's end, or never) */
  int screenshot_every;   /* 0: only the script's screenshots */
  const char *out;        /* folder for screenshots and snapshots */
} aps_viewer_desc;

/* Runs until the window closes, the script quits or the frame count is reached; prints a
 * summary (frames per second, UI frame time's 99th percentile, ms per sample) when a
 * script ran or in headless mode. Errors (the model, the image, the display) name what is
 * at fault. */
aps_status aps_viewer_run(const aps_viewer_desc *d);

#endif
