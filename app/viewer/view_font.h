/* A tiny built-in 5×7 bitmap font for the viewer's labels, HUD and help: ASCII 32-126
 * (lower case drawn as upper case), so the viewer needs no font file or font library.
 * Text is drawn into a 32-bit XRGB framebuffer at an integer scale, clipped to it. */
#ifndef APS_VIEW_FONT_H
#define APS_VIEW_FONT_H

#include <stdint.h>

enum { VIEW_FONT_W = 5, VIEW_FONT_H = 7, VIEW_FONT_ADVANCE = 6 };

/* Draws s with its top-left corner at (x, y); returns the x after the last glyph. */
int view_text(uint32_t *fb, int fb_w, int fb_h, int x, int y, int scale, uint32_t colour, const char *s);
/* Width in pixels of s at scale. */
int view_text_width(const char *s, int scale);

#endif
