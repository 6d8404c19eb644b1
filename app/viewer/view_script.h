/* Scripted input for the viewer (docs/VIEWER.md): one command a line, '#' starts a comment.
 *   wait N                        let N frames pass
 *   sync                          wait until a batch of samples answers the current measurement
 *   batches N                     wait until N more batches have arrived
 *   stroke X0 Y0 X1 Y1 [TOOL] [R] paint in image pixels; TOOL brush|eraser (default brush), R radius
 *   key NAME                      a key press, by SDL's key name ("h", "space", "right", "[")
 *   drag X0 Y0 X1 Y1 [left|right] the mouse dragged in window coordinates (left paints, right pans)
 *   wheel X Y N                   N clicks of the wheel at (X, Y) (N < 0 zooms out)
 *   resize W H                    the window's (headless: the frame's) new size
 *   open PATH                     open a PNG as the clean image
 *   screenshot NAME               save OUT/NAME.png (and NAME.layout.txt) of this frame; the rest waits for the next
 *   quit                          stop here
 * Errors name the file and the line. */
#ifndef APS_VIEW_SCRIPT_H
#define APS_VIEW_SCRIPT_H

#include "aps_status.h"

typedef enum view_cmd_kind {
  VIEW_CMD_WAIT = 0,
  VIEW_CMD_SYNC,
  VIEW_CMD_BATCHES,
  VIEW_CMD_STROKE,
  VIEW_CMD_KEY,
  VIEW_CMD_OPEN,
  VIEW_CMD_SCREENSHOT,
  VIEW_CMD_QUIT,
  VIEW_CMD_DRAG,
  VIEW_CMD_WHEEL,
  VIEW_CMD_RESIZE,
} view_cmd_kind;

typedef struct view_cmd {
  view_cmd_kind kind;
  int n;           /* wait, batches, wheel: the count; resize: the width */
  float v[5];      /* stroke: x0 y0 x1 y1 radius (radius 0: the current brush); drag, wheel: x0 y0 x1 y1 */
  int eraser;      /* stroke: the eraser; drag: the right button */
  int key;         /* key: an SDL keycode; resize: the height */
  char text[256];  /* open: the path; screenshot: the name */
  int line;
} view_cmd;

typedef struct view_script {
  view_cmd *cmds;
  int n;
} view_script;

aps_status view_script_load(const char *path, view_script *out);
void view_script_free(view_script *s);

#endif
