/* The viewer's script reader (view_script.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <SDL_keyboard.h>

#include "view_script.h"

static aps_status parse_line(const char *path, int line, char *text, view_cmd *c) {
  char *save = NULL, *word = strtok_r(text, " \t\r\n", &save);
  char *args[8];
  int n = 0;
  for (char *a; n < 8 && (a = strtok_r(NULL, " \t\r\n", &save));)
    args[n++] = a;
  memset(c, 0, sizeof *c);
  c->line = line;
  char *end = NULL;
  if (!strcmp(word, "wait") || !strcmp(word, "batches")) {
    c->kind = word[0] == 'w' ? VIEW_CMD_WAIT : VIEW_CMD_BATCHES;
    long v = n == 1 ? strtol(args[0], &end, 10) : -1;
    if (n != 1 || *end || v < 0 || v > 1000000)
      return aps_fail(APS_ERR_FORMAT, "%s:%d: '%s' takes one count from 0 to 1000000", path, line, word);
    c->n = (int)v;
  } else if (!strcmp(word, "sync") || !strcmp(word, "quit")) {
    c->kind = word[0] == 's' ? VIEW_CMD_SYNC : VIEW_CMD_QUIT;
    if (n)
      return aps_fail(APS_ERR_FORMAT, "%s:%d: '%s' takes no arguments", path, line, word);
  } else if (!strcmp(word, "stroke")) {
    c->kind = VIEW_CMD_STROKE;
    if (n < 4 || n > 6)
      return aps_fail(APS_ERR_FORMAT, "%s:%d: stroke X0 Y0 X1 Y1 [brush|eraser] [RADIUS]", path, line);
    for (int i = 0; i < 4; i++) {
      c->v[i] = strtof(args[i], &end);
      if (*end || end == args[i])
        return aps_fail(APS_ERR_FORMAT, "%s:%d: stroke: '%s' is not a number", path, line, args[i]);
    }
    for (int i = 4; i < n; i++) {
      if (!strcmp(args[i], "brush") || !strcmp(args[i], "eraser")) {
        c->eraser = args[i][0] == 'e';
        continue;
      }
      c->v[4] = strtof(args[i], &end);
      if (*end || c->v[4] <= 0 || c->v[4] > 16)
        return aps_fail(APS_ERR_FORMAT, "%s:%d: stroke: '%s' is neither brush, eraser nor a radius in (0, 16]", path,
                        line, args[i]);
    }
  } else if (!strcmp(word, "key")) {
    c->kind = VIEW_CMD_KEY;
    c->key = n == 1 ? (int)SDL_GetKeyFromName(args[0]) : SDLK_UNKNOWN;
    if (c->key == SDLK_UNKNOWN)
      return aps_fail(APS_ERR_FORMAT, "%s:%d: key takes one SDL key name (h, space, right, [)", path, line);
  } else if (!strcmp(word, "drag") || !strcmp(word, "wheel") || !strcmp(word, "resize")) {
    int want = word[0] == 'd' ? 4 : word[0] == 'w' ? 3 : 2;
    c->kind = word[0] == 'd' ? VIEW_CMD_DRAG : word[0] == 'w' ? VIEW_CMD_WHEEL : VIEW_CMD_RESIZE;
    if (n < want || n > want + (c->kind == VIEW_CMD_DRAG))
      return aps_fail(APS_ERR_FORMAT, "%s:%d: %s", path, line,
                      c->kind == VIEW_CMD_DRAG ? "drag X0 Y0 X1 Y1 [left|right]"
                      : c->kind == VIEW_CMD_WHEEL ? "wheel X Y CLICKS" : "resize WIDTH HEIGHT");
    long v[4];
    for (int i = 0; i < want; i++) {
      v[i] = strtol(args[i], &end, 10);
      if (*end || end == args[i] || v[i] < -100000 || v[i] > 100000 || (c->kind == VIEW_CMD_RESIZE && v[i] < 64))
        return aps_fail(APS_ERR_FORMAT, "%s:%d: %s: '%s' is not %s", path, line, word, args[i],
                        c->kind == VIEW_CMD_RESIZE ? "a size of 64 or more" : "an integer");
    }
    if (c->kind == VIEW_CMD_DRAG && n == 5 && strcmp(args[4], "left") && strcmp(args[4], "right"))
      return aps_fail(APS_ERR_FORMAT, "%s:%d: drag: '%s' is neither left nor right", path, line, args[4]);
    c->eraser = c->kind == VIEW_CMD_DRAG && n == 5 && !strcmp(args[4], "right");
    for (int i = 0; i < want && c->kind != VIEW_CMD_RESIZE; i++)
      c->v[i] = (float)v[i];
    if (c->kind == VIEW_CMD_WHEEL)
      c->n = (int)v[2];
    if (c->kind == VIEW_CMD_RESIZE)
      c->n = (int)v[0], c->key = (int)v[1];
  } else if (!strcmp(word, "open") || !strcmp(word, "screenshot")) {
    c->kind = word[0] == 'o' ? VIEW_CMD_OPEN : VIEW_CMD_SCREENSHOT;
    if (n != 1 || strlen(args[0]) >= sizeof c->text || (c->kind == VIEW_CMD_SCREENSHOT && strchr(args[0], '/')))
      return aps_fail(APS_ERR_FORMAT, "%s:%d: '%s' takes one %s", path, line, word,
                      c->kind == VIEW_CMD_OPEN ? "path" : "name (no '/')");
    snprintf(c->text, sizeof c->text, "%s", args[0]);
  } else {
    return aps_fail(APS_ERR_FORMAT, "%s:%d: unknown command '%s' (wait, sync, batches, stroke, key, drag, wheel, resize, "
                    "open, screenshot, quit)", path, line, word);
  }
  return APS_OK;
}

aps_status view_script_load(const char *path, view_script *out) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "r");
  if (!f)
    return aps_fail(APS_ERR_IO, "--script %s: cannot open: %s", path, strerror(errno));
  char text[1024];
  int line = 0, cap = 0;
  aps_status s = APS_OK;
  while (s == APS_OK && fgets(text, sizeof text, f)) {
    line++;
    char *hash = strchr(text, '#');
    if (hash)
      *hash = 0;
    if (strspn(text, " \t\r\n") == strlen(text))
      continue;
    if (out->n == cap) {
      cap = cap ? 2 * cap : 32;
      view_cmd *grown = realloc(out->cmds, (size_t)cap * sizeof *grown);
      if (!grown) {
        s = aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
        break;
      }
      out->cmds = grown;
    }
    s = parse_line(path, line, text, &out->cmds[out->n]);
    out->n += s == APS_OK;
  }
  fclose(f);
  if (s != APS_OK)
    view_script_free(out);
  return s;
}

void view_script_free(view_script *s) {
  free(s->cmds);
  s->cmds = NULL, s->n = 0;
}
