/* Drawing the viewer's framebuffer (view_compose.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cglm/cglm.h>

#include "aps_file.h"
#include "heatmap.h"
#include "image_io.h"
#include "view_compose.h"
#include "view_font.h"

enum { GAP = 6 };
#define BACKGROUND 0x202020u
#define PANEL_BG 0x101010u
#define LABEL 0xd0d0d0u
#define HUD_TEXT 0xf0f0a0u
#define MISSING 0x802020u /* inpainting: pixels the model does not see */

static uint32_t rgb(float r, float g, float b) {
  float v[3] = {r, g, b};
  uint32_t out = 0;
  for (int i = 0; i < 3; i++) {
    float x = v[i] > 0.0f ? v[i] : 0.0f; /* NaN → 0 */
    x = x < 1.0f ? x : 1.0f;
    out = out << 8 | (uint32_t)(x * 255.0f + 0.5f);
  }
  return out;
}

/* An image value in [-1, 1] as a colour (grey, or RGB for 3 channels). */
static uint32_t pixel(const float *img, int c, int64_t hw, int64_t i) {
  if (c == 3)
    return rgb((img[i] + 1) * 0.5f, (img[hw + i] + 1) * 0.5f, (img[2 * hw + i] + 1) * 0.5f);
  float g = (img[i] + 1) * 0.5f;
  return rgb(g, g, g);
}

void view_layout_compute(view_layout *l, int fb_w, int fb_h, int k) {
  memset(l, 0, sizeof *l);
  l->fb_w = fb_w, l->fb_h = fb_h;
  l->text_scale = fb_w >= 1400 && fb_h >= 800 ? 2 : 1;
  int ts = l->text_scale;
  l->label_h = VIEW_FONT_H * ts + 6;
  l->hud_h = 2 * (VIEW_FONT_H * ts + 4) + 6;
  int grid_h = fb_h - l->hud_h - l->label_h; /* the bottom line is for messages */
  /* the top row holds the four summary panels (the std panel's scale bar under it), the rows
   * below the samples; pick the sample columns that give the largest square */
  int best = 0, best_cols = 4;
  for (int cols = 4; cols <= (k > 4 ? k : 4); cols++) {
    int rows = (k + cols - 1) / cols;
    int sw = (fb_w - GAP * (cols + 1)) / cols;
    int sh = (grid_h - GAP * (rows + 2) - l->label_h * (rows + 2)) / (rows + 1);
    int s = sw < sh ? sw : sh;
    if (s > best)
      best = s, best_cols = cols;
  }
  int s = best > 4 ? best : 4;
  int cols = best_cols > VIEW_PANEL_SAMPLES ? best_cols : VIEW_PANEL_SAMPLES;
  int x0 = (fb_w - GAP * (cols + 1) - cols * s) / 2; /* centred */
  x0 = x0 > 0 ? x0 : 0;
  l->n = VIEW_PANEL_SAMPLES + k;
  static const char *const names[] = {"CLEAN", "MEASUREMENT", "MEAN", "STD"};
  int y = l->hud_h + l->label_h;
  for (int i = 0; i < VIEW_PANEL_SAMPLES; i++) {
    snprintf(l->p[i].name, sizeof l->p[i].name, "%s", names[i]);
    l->p[i].x = x0 + GAP + i * (s + GAP), l->p[i].y = y, l->p[i].size = s;
  }
  y += s + l->label_h + GAP + l->label_h; /* the scale bar's strip, then the next labels */
  for (int j = 0; j < k; j++) {
    view_panel *p = &l->p[VIEW_PANEL_SAMPLES + j];
    snprintf(p->name, sizeof p->name, "SAMPLE %d", j + 1);
    p->x = x0 + GAP + (j % best_cols) * (s + GAP), p->y = y + (j / best_cols) * (s + GAP + l->label_h), p->size = s;
  }
}

void view_panel_transform(const view_layout *l, const view_state *st, int i, float m[3][3]) {
  const view_panel *p = &l->p[i];
  vec2 origin = {(float)p->x, (float)p->y}, centre = {st->w * 0.5f, st->h * 0.5f};
  vec2 shift = {centre[0] + st->pan[0], centre[1] + st->pan[1]}, back = {-centre[0], -centre[1]};
  float fit = (float)p->size / (float)(st->w > st->h ? st->w : st->h);
  /* screen = T(origin) S(fit) T(centre + pan) S(zoom) T(-centre) image */
  glm_mat3_identity(m);
  glm_translate2d(m, origin);
  glm_scale2d_uni(m, fit);
  glm_translate2d(m, shift);
  glm_scale2d_uni(m, st->zoom);
  glm_translate2d(m, back);
}

int view_hit(const view_layout *l, const view_state *st, float sx, float sy, float *ix, float *iy) {
  for (int i = 0; i < l->n; i++) {
    const view_panel *p = &l->p[i];
    if (sx < p->x || sy < p->y || sx >= p->x + p->size || sy >= p->y + p->size)
      continue;
    mat3 m, inv;
    view_panel_transform(l, st, i, m);
    glm_mat3_inv(m, inv);
    vec3 s = {sx, sy, 1.0f}, im;
    glm_mat3_mulv(inv, s, im);
    *ix = im[0], *iy = im[1];
    return i;
  }
  return -1;
}

static void fill(uint32_t *fb, const view_layout *l, int x, int y, int w, int h, uint32_t c) {
  for (int j = y < 0 ? 0 : y; j < y + h && j < l->fb_h; j++)
    for (int i = x < 0 ? 0 : x; i < x + w && i < l->fb_w; i++)
      fb[(size_t)j * (size_t)l->fb_w + (size_t)i] = c;
}

/* tile [H, W] drawn into panel i, nearest neighbour through the inverse transform. */
static void blit(uint32_t *fb, const view_layout *l, const view_state *st, int i, const uint32_t *tile) {
  const view_panel *p = &l->p[i];
  mat3 m, inv;
  view_panel_transform(l, st, i, m);
  glm_mat3_inv(m, inv);
  /* the transform is a scale and a shift: image x depends on screen x only, so the
   * columns' image x is found once per panel */
  float ax = inv[0][0], bx = inv[2][0], ay = inv[1][1], by = inv[2][1];
  int cols[8192];
  int w = p->size < 8192 ? p->size : 8192;
  for (int x = 0; x < w; x++) {
    int ix = (int)floorf(ax * ((float)(p->x + x) + 0.5f) + bx);
    cols[x] = ix >= 0 && ix < st->w ? ix : -1;
  }
  if (p->x + w > l->fb_w)
    w = l->fb_w - p->x;
  for (int y = p->y; y < p->y + p->size && y < l->fb_h; y++) {
    int iy = (int)floorf(ay * ((float)y + 0.5f) + by);
    uint32_t *row = fb + (size_t)y * (size_t)l->fb_w + p->x;
    if (iy < 0 || iy >= st->h) {
      for (int x = 0; x < w; x++)
        row[x] = PANEL_BG;
      continue;
    }
    const uint32_t *src = tile + iy * st->w;
    for (int x = 0; x < w; x++)
      row[x] = cols[x] >= 0 ? src[cols[x]] : PANEL_BG;
  }
}

static void label(uint32_t *fb, const view_layout *l, const view_panel *p, const char *text) {
  char buf[64];
  int fit = p->size / (VIEW_FONT_ADVANCE * l->text_scale);
  snprintf(buf, sizeof buf, "%.*s", fit > 0 ? fit : 0, text);
  view_text(fb, l->fb_w, l->fb_h, p->x, p->y - l->label_h + 2, l->text_scale, LABEL, buf);
}

/* The std heat map's scale bar under its panel: 0 at the left, smax at the right. */
static void scale_bar(uint32_t *fb, const view_layout *l, float smax) {
  const view_panel *p = &l->p[VIEW_PANEL_STD];
  int ts = l->text_scale, y = p->y + p->size + 3, h = l->label_h - 6;
  char hi[32];
  snprintf(hi, sizeof hi, "%.3f", smax);
  int left = view_text_width("0 ", ts), right = view_text_width(hi, ts) + VIEW_FONT_ADVANCE * ts;
  int x0 = p->x + left, w = p->size - left - right;
  view_text(fb, l->fb_w, l->fb_h, p->x, y, ts, LABEL, "0");
  for (int i = 0; i < w; i++) {
    float c[3];
    aps_heatmap_colour(w > 1 ? (double)i / (w - 1) : 0.0, c);
    fill(fb, l, x0 + i, y, 1, h, rgb(c[0], c[1], c[2]));
  }
  view_text(fb, l->fb_w, l->fb_h, x0 + w + VIEW_FONT_ADVANCE * ts / 2, y, ts, LABEL, hi);
}

static void hud(uint32_t *fb, const view_layout *l, const view_state *st, const view_result *r, const view_hud *h,
                double now_ms) {
  int ts = l->text_scale, line = VIEW_FONT_H * ts + 4;
  const char *model = strrchr(h->model, '/') ? strrchr(h->model, '/') + 1 : h->model;
  char a[512], b[512];
  snprintf(a, sizeof a, "FPS %.1f  BATCHES/S %.1f  %.2f MS/SAMPLE  K %d  DEVICE %s", h->fps, h->batches_per_s,
           r->ms_per_sample, st->k, h->device);
  char sb[32] = ""; /* σ_b only means something for blur models */
  if (st->cls == APS_OPC_BLUR)
    snprintf(sb, sizeof sb, "  SIGMA_B %.2f", st->sigma_b);
  const char *tool = st->tool == VIEW_TOOL_ERASER ? "ERASER" : st->cls == APS_OPC_BLUR ? "BLUR BRUSH" : "MASK BRUSH";
  snprintf(b, sizeof b, "MODEL %s  IMAGE %s  %s R%.1f  SIGMA_Y %.2f%s  %s  H: HELP", model, st->source, tool,
           st->brush, st->sigma_y, sb, st->paused ? "PAUSED" : "");
  view_text(fb, l->fb_w, l->fb_h, GAP, 4, ts, HUD_TEXT, a);
  view_text(fb, l->fb_w, l->fb_h, GAP, 4 + line, ts, HUD_TEXT, b);
  const char *msg = r->error[0] ? r->error : now_ms < st->message_until_ms ? st->message : "";
  view_text(fb, l->fb_w, l->fb_h, GAP, l->fb_h - line, ts, 0xff8080u, msg);
}

static void help(uint32_t *fb, const view_layout *l) {
  int ts = l->text_scale, line = VIEW_FONT_H * ts + 6, n = 0, wmax = 0;
  for (; view_help_lines[n]; n++) {
    int w = view_text_width(view_help_lines[n], ts);
    wmax = w > wmax ? w : wmax;
  }
  int w = wmax + 24, h = n * line + 24, x = (l->fb_w - w) / 2, y = (l->fb_h - h) / 2;
  fill(fb, l, x, y, w, h, 0x000030u);
  for (int i = 0; i < n; i++)
    view_text(fb, l->fb_w, l->fb_h, x + 12, y + 12 + i * line, ts, 0xffffffu, view_help_lines[i]);
}

void view_compose(uint32_t *fb, const view_layout *l, const view_state *st, const view_result *r, const view_hud *h,
                  double now_ms) {
  int c = st->c;
  int64_t hw = (int64_t)st->h * st->w;
  fill(fb, l, 0, 0, l->fb_w, l->fb_h, BACKGROUND);
  uint32_t *tile = malloc((size_t)hw * sizeof *tile);
  float *sd = malloc((size_t)hw * sizeof *sd);
  if (!tile || !sd) {
    free(tile), free(sd);
    return;
  }
  int have = r->seq > 0 && !r->error[0];
  for (int i = 0; i < l->n; i++) {
    const view_panel *p = &l->p[i];
    char text[64];
    snprintf(text, sizeof text, "%s", p->name);
    if (i == VIEW_PANEL_CLEAN) {
      for (int64_t j = 0; j < hw; j++)
        tile[j] = pixel(st->clean, c, hw, j);
    } else if (!have || (i >= VIEW_PANEL_SAMPLES && i - VIEW_PANEL_SAMPLES >= r->k)) {
      fill(fb, l, p->x, p->y, p->size, p->size, PANEL_BG);
      label(fb, l, p, text);
      continue;
    } else if (i == VIEW_PANEL_MEASUREMENT) {
      for (int64_t j = 0; j < hw; j++) /* inpainting: what the model does not see, in red */
        tile[j] = st->cls == APS_OPC_MASK && r->damaged[j] > 0.5f ? MISSING : pixel(r->measurement, c, hw, j);
    } else if (i == VIEW_PANEL_MEAN) {
      for (int64_t j = 0; j < hw; j++)
        tile[j] = pixel(r->mean, c, hw, j);
      snprintf(text, sizeof text, "MEAN OF %lld", (long long)r->drawn);
    } else if (i == VIEW_PANEL_STD) {
      float smax = 1e-6f;
      for (int64_t j = 0; j < hw; j++) { /* the mean over channels */
        double a = 0;
        for (int ch = 0; ch < c; ch++)
          a += r->std[ch * hw + j];
        sd[j] = (float)(a / c);
        smax = sd[j] > smax ? sd[j] : smax;
      }
      for (int64_t j = 0; j < hw; j++) {
        float col[3];
        aps_heatmap_colour(sd[j] / smax, col);
        tile[j] = rgb(col[0], col[1], col[2]);
      }
      scale_bar(fb, l, smax);
    } else {
      for (int64_t j = 0; j < hw; j++)
        tile[j] = pixel(r->samples + (int64_t)(i - VIEW_PANEL_SAMPLES) * c * hw, c, hw, j);
    }
    blit(fb, l, st, i, tile);
    label(fb, l, p, text);
  }
  free(tile), free(sd);
  hud(fb, l, st, r, h, now_ms);
  if (st->help)
    help(fb, l);
}

aps_status view_write_png(const char *path, const uint32_t *fb, int w, int h) {
  size_t hw = (size_t)w * (size_t)h;
  float *img = malloc(3 * hw * sizeof *img);
  if (!img)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory for a %dx%d snapshot", path, w, h);
  for (size_t i = 0; i < hw; i++) /* bytes round-trip exactly through image_io's [-1, 1] */
    for (int k = 0; k < 3; k++)
      img[(size_t)k * hw + i] = (float)((fb[i] >> (16 - 8 * k)) & 0xff) / 127.5f - 1.0f;
  aps_status s = aps_png_write_grid(path, img, 1, 3, h, w, 1, 0);
  free(img);
  return s;
}

aps_status view_write_layout(const char *path, const view_layout *l, const view_state *st) {
  char buf[8192];
  size_t n = 0;
  for (int i = 0; i < l->n && n < sizeof buf - 128; i++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%d %d %d %d %s\n", i, l->p[i].x, l->p[i].y, l->p[i].size,
                          l->p[i].name);
  n += (size_t)snprintf(buf + n, sizeof buf - n, "image %d %d %d\n", st->c, st->h, st->w);
  return aps_file_write_atomic(path, &(aps_file_part){buf, n}, 1);
}
