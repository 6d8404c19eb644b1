/* aps view: setting up, the frame loop, timing and the summary (viewer.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aps_clock.h"
#include "viewer_internal.h"

/* Frame times kept for the 99th percentile: the last this many frames. */
enum { FRAME_RING = 16384 };

static long rss_kib(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The window, its renderer and a streaming texture; errors say the display cannot open. */
static aps_status open_window(viewer *v) {
  if (SDL_Init(SDL_INIT_VIDEO) != 0)
    return aps_fail(APS_ERR_UNSUPPORTED, "cannot open a display (SDL: %s); --headless runs without a window",
                    SDL_GetError());
  /* SDL 2.26 falls back to its offscreen driver when no display opens: that is no window
   * for a person, so refuse it unless someone asked for it by name */
  const char *drv = SDL_GetCurrentVideoDriver(), *asked = getenv("SDL_VIDEODRIVER");
  if (drv && (!strcmp(drv, "offscreen") || !strcmp(drv, "dummy")) && !(asked && *asked)) {
    SDL_Quit();
    return aps_fail(APS_ERR_UNSUPPORTED, "cannot open a display (DISPLAY=%s; SDL found only its %s driver); "
                    "--headless runs without a window", getenv("DISPLAY") ? getenv("DISPLAY") : "(unset)", drv);
  }
  SDL_SetHint(SDL_HINT_RENDER_SCALE_QUALITY, "0");
  v->window = SDL_CreateWindow("aps view", SDL_WINDOWPOS_UNDEFINED, SDL_WINDOWPOS_UNDEFINED, v->d->width,
                               v->d->height, SDL_WINDOW_RESIZABLE | SDL_WINDOW_ALLOW_HIGHDPI);
  if (v->window)
    v->renderer = SDL_CreateRenderer(v->window, -1, v->d->no_vsync ? 0 : SDL_RENDERER_PRESENTVSYNC);
  if (!v->window || !v->renderer)
    return aps_fail(APS_ERR_UNSUPPORTED, "cannot open a window (SDL: %s); --headless runs without one",
                    SDL_GetError());
  return APS_OK;
}

/* The framebuffer (and texture) at the output's size; the layout for it. */
static aps_status resize(viewer *v) {
  int w = v->size_w, h = v->size_h;
  if (v->renderer && SDL_GetRendererOutputSize(v->renderer, &w, &h) != 0)
    return aps_fail(APS_ERR_UNSUPPORTED, "SDL: %s", SDL_GetError());
  w = w < 64 ? 64 : w, h = h < 64 ? 64 : h;
  if (w != v->fb_w || h != v->fb_h || !v->fb) {
    free(v->fb);
    v->fb = malloc((size_t)w * (size_t)h * sizeof *v->fb);
    if (!v->fb)
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory for a %dx%d frame", w, h);
    v->fb_w = w, v->fb_h = h;
    if (v->renderer) {
      if (v->texture)
        SDL_DestroyTexture(v->texture);
      v->texture = SDL_CreateTexture(v->renderer, SDL_PIXELFORMAT_RGB888, SDL_TEXTUREACCESS_STREAMING, w, h);
      if (!v->texture)
        return aps_fail(APS_ERR_UNSUPPORTED, "SDL texture of %dx%d: %s", w, h, SDL_GetError());
    }
  }
  if (v->layout.fb_w != w || v->layout.fb_h != h || v->layout.n != VIEW_PANEL_SAMPLES + v->st.k) {
    view_layout_compute(&v->layout, w, h, v->st.k);
    v->dirty = 1;
  }
  return APS_OK;
}

static aps_status present(viewer *v, int upload) {
  if ((upload && SDL_UpdateTexture(v->texture, NULL, v->fb, v->fb_w * (int)sizeof *v->fb) != 0) ||
      SDL_RenderCopy(v->renderer, v->texture, NULL, NULL) != 0)
    return aps_fail(APS_ERR_UNSUPPORTED, "SDL: %s", SDL_GetError());
  SDL_RenderPresent(v->renderer);
  return APS_OK;
}

static void sleep_ms(double ms) {
  if (ms <= 0)
    return;
  struct timespec t = {(time_t)(ms / 1000.0), (long)((ms - (double)(time_t)(ms / 1000.0) * 1000.0) * 1e6)};
  nanosleep(&t, NULL);
}

/* The loop: input, the request to the sampler, the latest batch, the picture. */
static aps_status loop(viewer *v, view_worker *worker) {
  const aps_viewer_desc *d = v->d;
  double *ring = calloc(FRAME_RING, sizeof *ring);
  if (!ring)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  aps_status s = APS_OK;
  double t_start = aps_now_ms(), t_prev = t_start, fps = 0, bps = 0, t_window = t_start;
  uint64_t seq_start = 0, seq_window = 0;
  int64_t frames_window = 0, n_times = 0, fresh = 0; /* fresh: frames that showed a new batch */
  long rss_1000 = 0;
  int64_t limit = d->frames > 0 ? d->frames : (d->headless && !d->script ? 300 : -1);
  for (v->frame = 0; !v->quit && (limit < 0 || v->frame < limit); v->frame++) {
    v->now_ms = aps_now_ms();
    if (v->window)
      viewer_poll_events(v);
    if (view_worker_fetch(worker, &v->res)) {
      v->dirty = 1, fresh++;
      if (seq_start == 0)
        seq_start = v->res.seq; /* batches are counted from the first one on */
    }
    if ((s = viewer_script_step(v)) != APS_OK)
      break;
    if (v->script.n && v->pos >= v->script.n && d->frames <= 0)
      v->quit = 1; /* the script's end is the run's end unless --frames says otherwise */
    view_worker_submit(worker, &(view_request){.clean = v->st.clean, .map = v->st.map, .sigma_b = v->st.sigma_b,
                                               .sigma_y = v->st.sigma_y, .k = v->st.k, .paused = v->st.paused,
                                               .version = v->st.version});
    if ((s = resize(v)) != APS_OK)
      break;
    if (v->now_ms - t_window >= 500.0) { /* the HUD's rates, over half a second */
      fps = (double)(v->frame - frames_window) * 1000.0 / (v->now_ms - t_window);
      bps = (double)(v->res.seq - seq_window) * 1000.0 / (v->now_ms - t_window);
      t_window = v->now_ms, frames_window = v->frame, seq_window = v->res.seq;
      v->dirty = 1;
    }
    if (v->st.message[0] && v->now_ms >= v->st.message_until_ms)
      v->st.message[0] = 0, v->dirty = 1;
    if (d->screenshot_every > 0 && v->frame % d->screenshot_every == 0 && v->n_shots < 8)
      snprintf(v->shots[v->n_shots++], sizeof v->shots[0], "frame-%06lld", (long long)v->frame);
    /* a window's picture is drawn again only when something in it changed (it is presented
     * every frame); headless, drawing is all a frame does */
    int draw = v->dirty || v->n_shots || !v->window;
    if (draw)
      view_compose(v->fb, &v->layout, &v->st, &v->res,
                   &(view_hud){.fps = fps, .batches_per_s = bps, .device = v->info->device, .model = v->info->model},
                   v->now_ms);
    v->dirty = 0;
    for (int i = 0; i < v->n_shots && s == APS_OK; i++)
      if (viewer_save(v, v->shots[i]) != APS_OK) { /* a failed snapshot key is a message; a test's, an error */
        if (v->script.n || d->screenshot_every > 0)
          s = APS_ERR_IO;
        else
          view_say(&v->st, v->now_ms, "%s", aps_last_error());
      }
    v->n_shots = 0;
    if (s != APS_OK)
      break;
    if (v->window && (s = present(v, draw)) != APS_OK)
      break;
    if (!v->window && !d->no_vsync) /* headless: pace to 60 Hz as vsync would */
      sleep_ms(1000.0 / 60.0 - (aps_now_ms() - v->now_ms));
    double t = aps_now_ms();
    ring[n_times++ % FRAME_RING] = t - t_prev;
    t_prev = t;
    if (v->frame + 1 == 1000)
      rss_1000 = rss_kib();
  }
  double secs = (aps_now_ms() - t_start) / 1000.0;
  int64_t kept = n_times < FRAME_RING ? n_times : FRAME_RING;
  qsort(ring, (size_t)kept, sizeof *ring, cmp_double);
  double p99 = kept ? ring[(int64_t)((double)(kept - 1) * 0.99)] : 0;
  if (s == APS_OK && (d->headless || d->script)) {
    printf("aps view: %lld frames in %.2f s: %.1f FPS, %.1f FPS with fresh samples, UI frame time p99 %.2f ms; %llu "
           "batches of K=%d (%.1f per s), %.3f ms per sample (mean) on %s\n",
           (long long)v->frame, secs, secs > 0 ? (double)v->frame / secs : 0, secs > 0 ? (double)fresh / secs : 0, p99,
           (unsigned long long)(v->res.seq - seq_start), v->st.k,
           secs > 0 ? (double)(v->res.seq - seq_start) / secs : 0,
           v->res.total_samples ? v->res.total_ms / (double)v->res.total_samples : 0.0, v->info->device);
    printf("aps view: resident memory %ld KiB at the end%s", rss_kib(), rss_1000 ? "" : "\n");
    if (rss_1000)
      printf(", %ld KiB at frame 1000\n", rss_1000);
  }
  free(ring);
  return s;
}

aps_status aps_viewer_run(const aps_viewer_desc *d) {
  if (!d->model)
    return aps_fail(APS_ERR_INVALID_ARG, "--model is required");
  viewer *v = calloc(1, sizeof *v);
  if (!v)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory");
  v->d = d;
  v->size_w = d->width, v->size_h = d->height;
  aps_status s = d->script ? view_script_load(d->script, &v->script) : APS_OK;
  if (s == APS_OK) {
    s = aps_posterior_open(&(aps_posterior_desc){.model = d->model, .device = d->device, .max_batch = d->k}, &v->p);
    if (s != APS_OK)
      s = aps_fail_context(s, "--model %s: ", d->model);
  }
  if (s == APS_OK) {
    v->info = aps_posterior_get_info(v->p);
    s = view_state_init(&v->st, v->info, d->sigma_b, d->sigma_y, d->k);
  }
  if (s == APS_OK)
    s = d->image ? viewer_open_png(v, d->image) : viewer_open_index(v, d->index);
  if (s != APS_OK && d->image)
    s = aps_fail_context(s, "--image: ");
  if (s == APS_OK && !d->headless)
    s = open_window(v);
  if (s == APS_OK)
    s = view_result_alloc(&v->res, v->st.c, v->st.h, v->st.w);
  view_worker *worker = NULL;
  if (s == APS_OK)
    s = view_worker_start(v->p, &worker);
  if (s == APS_OK)
    s = loop(v, worker);
  view_worker_stop(worker);
  if (v->texture)
    SDL_DestroyTexture(v->texture);
  if (v->renderer)
    SDL_DestroyRenderer(v->renderer);
  if (v->window)
    SDL_DestroyWindow(v->window);
  if (!d->headless)
    SDL_Quit();
  view_result_free(&v->res);
  view_state_free(&v->st);
  view_script_free(&v->script);
  aps_dataset_free(v->data);
  aps_posterior_close(v->p);
  free(v->fb);
  free(v);
  return s;
}
