/* aps view: the live viewer's options (the viewer itself is app/viewer, docs/VIEWER.md). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "operators.h"
#include "graph.h" /* rt_validation_messages_total: a run under APS_VALIDATE=1 fails on any message */
#include "viewer.h"

#ifndef APS_ASSETS_DIR
#define APS_ASSETS_DIR "assets"
#endif
#define DEFAULT_FLOW "flow-inpaint-fmnist32.safetensors"

int cmd_view(const cli_options *o, int argc, char **argv) {
  aps_viewer_desc d = {.index = -1, .k = 8, .sigma_y = APS_SIGMA_Y_DEFAULT, .sigma_b = 1.5f, .width = 1100, .height = 720,
                       .out = "."};
  const cli_arg args[] = {
      {"--model", CLI_STRING, &d.model, 0, 0, "flow file (assets/" DEFAULT_FLOW ")"},
      {"--image", CLI_STRING, &d.image, 0, 0, "a clean PNG to start from (default: a Fashion-MNIST test image)"},
      {"--index", CLI_INT, &d.index, 0, 1e9, "the Fashion-MNIST test image to start from (0)"},
      {"--k", CLI_INT, &d.k, 2, 32, "samples per frame (8)"},
      {"--sigma-y", CLI_FLOAT, &d.sigma_y, 0, APS_SIGMA_Y_MAX, "measurement noise σ_y (0.05)"},
      {"--sigma-b", CLI_FLOAT, &d.sigma_b, 0.25, APS_BLUR_SIGMA_MAX, "blur models: the blur's width σ_b in px (1.5)"},
      {"--no-vsync", CLI_FLAG, &d.no_vsync, 0, 0, "draw frames as fast as possible (for measuring)"},
      {"--headless", CLI_FLAG, &d.headless, 0, 0, "no window: the same loop, drawn off screen"},
      {"--width", CLI_INT, &d.width, 256, 8192, "window width (1100)"},
      {"--height", CLI_INT, &d.height, 200, 8192, "window height (720)"},
      {"--script", CLI_STRING, &d.script, 0, 0, "replay input from a file (docs/VIEWER.md)"},
      {"--frames", CLI_INT, &d.frames, 1, 1e9, "stop after this many frames (headless: 300)"},
      {"--screenshot-every", CLI_INT, &d.screenshot_every, 1, 1e9, "save OUT/frame-NNNNNN.png every N frames"},
      {"--out", CLI_STRING, &d.out, 0, 0, "folder for screenshots and snapshots (.)"},
  };
  const int nargs = (int)(sizeof args / sizeof args[0]);
  if (cli_args_parse("view", argc, argv, args, nargs))
    return 2;
  if (d.image && d.index >= 0) {
    fprintf(stderr, "aps view: --image and --index exclude each other (--index picks a Fashion-MNIST test image)\n");
    return 2;
  }
  d.index = d.index < 0 ? 0 : d.index;
  if (!d.model)
    d.model = access("assets/" DEFAULT_FLOW, R_OK) == 0 ? "assets/" DEFAULT_FLOW : APS_ASSETS_DIR "/" DEFAULT_FLOW;
  d.device = o->device;
  aps_status s = aps_viewer_run(&d);
  if (s != APS_OK) {
    fprintf(stderr, "aps view: %s\n", aps_last_error());
    return 1;
  }
  unsigned msgs = rt_validation_messages_total();
  if (msgs) {
    fprintf(stderr, "aps view: %u validation messages\n", msgs);
    return 1;
  }
  return 0;
}
