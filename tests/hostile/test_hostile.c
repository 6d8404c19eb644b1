/* Hostile files and disks: each case is a finding of the probe of 330 bad
 * inputs, and failed before its fix. The malformed-input corpus that runs the commands
 * themselves is tools/hostile-corpus.sh (ctest -L hostile). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app_fixtures.h"
#include "aps_file.h"
#include "dataset.h"
#include "device.h"
#include "image_read.h"
#include "prior.h"
#include "sampler.h"
#include "safetensors.h"
#include "test.h"
#include "trainer.h"

static char tmpdir[64];
static const char *make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/aps-test-hostile-XXXXXX");
  return mkdtemp(tmpdir);
}

/* dir + "/" + name in a malloc'd string. */
static char *join(const char *dir, const char *name) {
  char *p = malloc(strlen(dir) + strlen(name) + 2);
  sprintf(p, "%s/%s", dir, name);
  return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f) {
    fwrite(data, 1, n, f);
    fclose(f);
  }
}

static int has(const char *text) { return strstr(aps_last_error(), text) != NULL; }

/* A device node, a FIFO or a folder at an output path is refused and left as it was (the
 * probe's --out /dev/full replaced the system's /dev/full). */
TEST_CASE(write_refuses_nodes) {
  const char *dir = make_tmpdir();
  char *fifo = join(dir, "fifo.png"), *folder = join(dir, "folder.png"), *link = join(dir, "null.png");
  CHECK(mkfifo(fifo, 0600) == 0 && mkdir(folder, 0700) == 0 && symlink("/dev/null", link) == 0, "setup");
  const char *paths[] = {fifo, folder, link}, *kinds[] = {"FIFO", "folder", "character device"};
  for (int i = 0; i < 3; i++) {
    aps_status s = aps_file_write_atomic(paths[i], &(aps_file_part){"x", 1}, 1);
    CHECK(s != APS_OK && has(paths[i]) && has(kinds[i]), "%s: %s", paths[i], aps_last_error());
  }
  struct stat sb;
  CHECK(stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode), "the FIFO is still one");
  CHECK(lstat(link, &sb) == 0 && S_ISLNK(sb.st_mode), "the link is still one");
  CHECK(stat("/dev/null", &sb) == 0 && S_ISCHR(sb.st_mode), "/dev/null is still a device");
  CHECK(aps_file_write_atomic("", &(aps_file_part){"x", 1}, 1) != APS_OK && has("empty"), "empty path: %s",
        aps_last_error());
  free(fifo), free(folder), free(link);
}

static void on_alarm(int sig) {
  (void)sig;
  static const char m[] = "a read blocked on a FIFO\n";
  (void)!write(2, m, sizeof m - 1);
  _exit(1);
}

/* A FIFO given as a model, an image or an IDX file is refused at once (it blocked forever). */
TEST_CASE(read_fifo_does_not_block) {
  const char *dir = make_tmpdir();
  char *fifo = join(dir, "m.safetensors");
  CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
  signal(SIGALRM, on_alarm);
  alarm(20);
  gr_st *st = NULL;
  CHECK(gr_st_open(fifo, &st) != APS_OK && has(fifo) && has("FIFO"), "safetensors: %s", aps_last_error());
  int c, h, w;
  float *img = NULL;
  CHECK(aps_png_read_image(fifo, &c, &h, &w, &img) != APS_OK && has("FIFO"), "png: %s", aps_last_error());
  aps_dataset *d = NULL;
  CHECK(aps_dataset_load_idx(fifo, 0, &d) != APS_OK && has("FIFO"), "idx: %s", aps_last_error());
  CHECK(gr_st_open(dir, &st) != APS_OK && has("folder"), "a folder: %s", aps_last_error());
  alarm(0);
  free(fifo);
}

/* A GIF named .png was reported as "image is 0×0". */
TEST_CASE(png_signature) {
  const char *dir = make_tmpdir();
  char *gif = join(dir, "a.png"), *cut = join(dir, "b.png");
  write_bytes(gif, "GIF89a\0\0\0\0\0\0\0;", 14);
  write_bytes(cut, "\x89PN", 3);
  int c, h, w;
  float *img = NULL;
  CHECK(aps_png_read_image(gif, &c, &h, &w, &img) != APS_OK && has(gif) && has("it is a GIF"), "%s", aps_last_error());
  CHECK(aps_png_read_image(cut, &c, &h, &w, &img) != APS_OK && has("truncated"), "%s", aps_last_error());
  unlink(cut);
  aps_dataset *d = NULL;
  CHECK(aps_dataset_load_png_dir(dir, 32, 1, &d) != APS_OK && has("it is a GIF"), "folder: %s", aps_last_error());
  free(gif), free(cut);
}

/* A kill -9 leaves "<model>.tmp.<pid>"; the next write removes it when that process is gone
 * (not when it runs: processes may share a target), also on long paths (the trainer's
 * fixed 1024-byte buffer lost them). */
TEST_CASE(stale_temporaries) {
  const char *dir = make_tmpdir();
  char *deep = join(dir, "");
  for (int i = 0; i < 6; i++) { /* a path of about 1,300 bytes */
    char part[220];
    memset(part, 'd', sizeof part - 1);
    part[sizeof part - 1] = 0;
    char *next = join(deep, part);
    free(deep);
    deep = next;
    CHECK(mkdir(deep, 0700) == 0, "mkdir %zu bytes", strlen(deep));
  }
  char *path = join(deep, "m.safetensors");
  long dead = 0;
  for (long pid = 4000000; pid > 300000 && !dead; pid -= 7919) /* a pid that no process has */
    if (kill((pid_t)pid, 0) && errno == ESRCH)
      dead = pid;
  char *stale = malloc(strlen(path) + 64), *live = malloc(strlen(path) + 64);
  sprintf(stale, "%s.tmp.%ld", path, dead);
  sprintf(live, "%s.tmp.%ld", path, (long)getppid());
  write_bytes(stale, "old", 3);
  write_bytes(live, "old", 3);
  REQUIRE_OK(aps_file_write_atomic(path, &(aps_file_part){"new", 3}, 1));
  CHECK(access(stale, F_OK) != 0, "the temporary of a dead process (pid %ld) was not removed", dead);
  CHECK(access(live, F_OK) == 0, "the temporary of a running process was removed");
  CHECK(access(path, F_OK) == 0, "the file");
  free(deep), free(path), free(stale), free(live);
}

/* --checkpoint or --csv equal to --out (or a link to it) was accepted. */
TEST_CASE(outputs_distinct) {
  const char *dir = make_tmpdir();
  char *a = join(dir, "a"), *b = join(dir, "b");
  write_bytes(a, "x", 1);
  CHECK(link(a, b) == 0, "link");
  const char *names[] = {"--out", "--checkpoint", "--csv"};
  const char *same[] = {a, NULL, a}, *linked[] = {a, b, NULL}, *fine[] = {a, NULL, NULL};
  CHECK(aps_file_check_outputs(names, same, 3) != APS_OK && has("--out") && has("--csv"), "%s", aps_last_error());
  CHECK(aps_file_check_outputs(names, linked, 3) != APS_OK && has("--checkpoint"), "%s", aps_last_error());
  REQUIRE_OK(aps_file_check_outputs(names, fine, 3));
  free(a), free(b);
}

/* A few steps of the tiny prior with a checkpoint and a loss log. */
static aps_status train(const aps_dataset *d, const char *ckpt, const char *csv, const char *out, int steps,
                        int resume) {
  aps_prior_config cfg = test_tiny_prior();
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  APS_TRY(aps_prior_train_graph(&cfg, 4, &g));
  aps_status s = aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r);
  uint64_t init = 3;
  aps_prior_feed feed = {.data = d, .rng = 11, .batch = 4};
  if (s == APS_OK && !resume)
    s = aps_prior_init_params(g, r, &init);
  char unet[256], sde[256];
  gr_st_meta meta[APS_PRIOR_META];
  aps_prior_config_meta(&cfg, unet, sde, meta);
  aps_train_result res;
  if (s == APS_OK)
    s = aps_train(r, &(aps_train_desc){.steps = steps, .schedule = {.lr = 1e-3f}, .checkpoint = ckpt,
                                       .checkpoint_every = 3, .resume = resume, .csv = csv, .output = out,
                                       .meta = meta, .n_meta = APS_PRIOR_META, .rng = &feed.rng,
                                       .feed = aps_prior_feed_fn, .user = &feed, .quiet = 1},
                  &res);
  free(feed.buf);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  return s;
}

static int copy_file(const char *from, const char *to) {
  unsigned char *data = NULL;
  size_t n = 0;
  if (aps_file_read(from, 1u << 30, &data, &n) != APS_OK)
    return -1;
  write_bytes(to, data, n);
  free(data);
  return 0;
}

/* After a resume from an earlier checkpoint the log held the replayed steps twice. */
TEST_CASE(csv_resume_no_repeats) {
  const char *dir = make_tmpdir();
  aps_dataset *d = test_bars_dataset(dir, 64);
  CHECK(d != NULL, "data");
  if (!d)
    return;
  char *ckpt = join(dir, "m.ckpt"), *csv = join(dir, "m.csv"), *early = join(dir, "early.ckpt");
  REQUIRE_OK(train(d, ckpt, csv, NULL, 3, 0));
  CHECK(copy_file(ckpt, early) == 0, "copy");
  REQUIRE_OK(train(d, ckpt, csv, NULL, 7, 1));
  CHECK(copy_file(early, ckpt) == 0, "copy back"); /* as after a kill: the log is past the checkpoint */
  REQUIRE_OK(train(d, ckpt, csv, NULL, 8, 1));
  FILE *f = fopen(csv, "r");
  char line[256];
  int rows = 0, next = 1, order = 1;
  CHECK(f && fgets(line, sizeof line, f) && !strncmp(line, "step,loss", 9), "header");
  while (f && fgets(line, sizeof line, f)) {
    rows++;
    order &= atoi(line) == next++;
  }
  if (f)
    fclose(f);
  CHECK(rows == 8 && order, "the log holds steps 1..8 once each in order (%d rows, in order %d)", rows, order);
  aps_dataset_free(d);
  free(ckpt), free(csv), free(early);
}

/* A loss log on a device (the probe's /dev/full: exit 0, empty log) or a folder is refused
 * before training, as is a checkpoint that is the model file. */
TEST_CASE(csv_unwritable) {
  const char *dir = make_tmpdir();
  aps_dataset *d = test_bars_dataset(dir, 64);
  if (!d)
    return;
  char *ckpt = join(dir, "m.ckpt"), *out = join(dir, "m.safetensors"), *full = join(dir, "full.csv");
  /* A link to /dev/full, never /dev/full itself: if the rule broke, the rename replaces the link. */
  CHECK(symlink("/dev/full", full) == 0, "symlink");
  CHECK(train(d, ckpt, full, NULL, 2, 0) != APS_OK && has(full) && has("character device"), "%s", aps_last_error());
  CHECK(train(d, ckpt, dir, NULL, 2, 0) != APS_OK && has("folder"), "%s", aps_last_error());
  CHECK(train(d, out, NULL, out, 2, 0) != APS_OK && has("same file"), "%s", aps_last_error());
  CHECK(access(ckpt, F_OK) != 0, "nothing was trained");
  aps_dataset_free(d);
  free(ckpt), free(out), free(full);
}

/* The tiny prior's file with one metadata field replaced. */
static char *prior_with(const char *dir, const char *name, const char *key, const char *value) {
  char *good = join(dir, "good.safetensors"), *path = join(dir, name);
  if (access(good, F_OK))
    test_write_tiny_prior(good);
  gr_st *st = NULL;
  if (gr_st_open(good, &st) != APS_OK) {
    fprintf(stderr, "%s\n", aps_last_error());
    free(good);
    return path;
  }
  aps_prior_config pc = test_tiny_prior();
  char unet[256], sde[256];
  gr_st_meta meta[APS_PRIOR_META];
  aps_prior_config_meta(&pc, unet, sde, meta);
  for (int i = 0; i < APS_PRIOR_META; i++)
    if (!strcmp(meta[i].key, key))
      meta[i].value = value;
  uint32_t n = gr_st_count(st);
  gr_st_tensor *t = calloc(n, sizeof *t);
  for (uint32_t i = 0; i < n; i++) {
    t[i].name = gr_st_name(st, i);
    gr_st_get_f32(st, t[i].name, &t[i].rank, t[i].dims, &t[i].data);
  }
  if (gr_st_write(path, t, n, meta, APS_PRIOR_META) != APS_OK)
    fprintf(stderr, "%s\n", aps_last_error());
  free(t);
  gr_st_close(st);
  free(good);
  return path;
}

/* size=65536 died of SIGFPE in `aps elbo`; widths of 4096 grew to 14.8 GB before failing; an
 * absurd SDE overflowed the CPU device's exp. Each is refused, naming the file and field. */
TEST_CASE(prior_config_budget) {
  const char *dir = make_tmpdir();
  struct {
    const char *key, *value, *field;
  } cases[] = {
      {"aps.unet", "channels=1 size=65536 widths=8,16 blocks=1 attention=2 groups=4 time_dim=8", "size=65536"},
      {"aps.unet", "channels=1 size=32768 widths=8,16 blocks=1 attention=2 groups=4 time_dim=8", "size=32768"},
      {"aps.unet", "channels=1 size=8 widths=4096,4096,4096,4096 blocks=1 attention=2 groups=4 time_dim=8", "width"},
      {"aps.unet", "channels=1 size=8 widths=8,32 blocks=1 attention=2 groups=4 time_dim=8", "parameter"},
      {"aps.sde", "beta0=0.1 beta1=1e30 eps=0.001", "beta1"},
  };
  for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
    char name[32];
    snprintf(name, sizeof name, "bad%d.safetensors", i);
    char *path = prior_with(dir, name, cases[i].key, cases[i].value);
    aps_prior_config cfg;
    gr_graph *g = NULL;
    aps_runner *r = NULL;
    aps_status s = aps_prior_open(path, &(aps_runner_desc){.device = "cpu", .quiet = 1}, 64, aps_prior_elbo_graph,
                                  &cfg, &g, &r);
    CHECK(s != APS_OK && has(path) && has(cases[i].field), "%s: %s", cases[i].value, aps_last_error());
    free(path);
  }
  /* The ELBO's graph on an image shape too large to build reports it, not a division by 0. */
  aps_prior_config big = test_tiny_prior();
  big.unet.image_size = 1 << 20;
  gr_graph *g = gr_graph_create();
  gr_shape img = GR_SHAPE(64, 1, big.unet.image_size, big.unet.image_size);
  gr_tensor x = gr_input(g, "x", img);
  (void)aps_prior_neg_elbo(g, &big.sde, NULL, NULL, x, gr_input(g, "t", GR_SHAPE(64)), x, x, x);
  CHECK(gr_graph_status(g) != APS_OK, "the graph holds the shape error");
  gr_graph_destroy(g);
}

/* Finite but huge weights (3e38) gave an all-black PNG with exit 0: samples are checked. */
TEST_CASE(sample_nonfinite) {
  const char *dir = make_tmpdir();
  char *good = join(dir, "good.safetensors"), *huge = join(dir, "huge.safetensors");
  REQUIRE_OK(test_write_tiny_prior(good));
  gr_st *st = NULL;
  REQUIRE_OK(gr_st_open(good, &st));
  uint32_t n = gr_st_count(st);
  gr_st_tensor *t = calloc(n, sizeof *t);
  float **copies = calloc(n, sizeof *copies);
  for (uint32_t i = 0; i < n; i++) {
    t[i].name = gr_st_name(st, i);
    gr_st_get_f32(st, t[i].name, &t[i].rank, t[i].dims, &t[i].data);
    int64_t count = 1;
    for (int k = 0; k < t[i].rank; k++)
      count *= t[i].dims[k];
    copies[i] = malloc((size_t)count * sizeof(float));
    for (int64_t k = 0; k < count; k++)
      copies[i][k] = 3e38f;
    t[i].data = copies[i];
  }
  aps_prior_config pc = test_tiny_prior();
  char unet[256], sde[256];
  gr_st_meta meta[APS_PRIOR_META];
  aps_prior_config_meta(&pc, unet, sde, meta);
  REQUIRE_OK(gr_st_write(huge, t, n, meta, APS_PRIOR_META));
  for (uint32_t i = 0; i < n; i++)
    free(copies[i]);
  free(copies), free(t);
  gr_st_close(st);
  aps_prior_config cfg;
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  REQUIRE_OK(aps_prior_open(huge, &(aps_runner_desc){.device = "cpu", .quiet = 1}, 2, aps_prior_eps_graph, &cfg,
                            &g, &r));
  float out[2 * 64];
  uint64_t rng = 1;
  aps_status s = aps_prior_sample(r, &cfg, 2, APS_SAMPLER_EM, 3, &rng, out);
  CHECK(s != APS_OK && (has("NaN") || has("Inf")), "sampling with weights of 3e38: %s",
        s == APS_OK ? "accepted" : aps_last_error());
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  free(good), free(huge);
}

/* The CPU device's exp of NaN and of huge values (UBSan: a shift of a negative int). */
TEST_CASE(fast_exp_hostile) {
  gr_graph *g = gr_graph_create();
  enum { N = 4096 };
  gr_tensor x = gr_input(g, "x", GR_SHAPE(N));
  gr_output(g, gr_unary_op(g, GR_EXP, x), "y");
  gr_output(g, gr_unary_op(g, GR_SILU, x), "s");
  aps_runner *r = NULL;
  REQUIRE_OK(aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r));
  static float in[N], y[N], sl[N];
  for (int i = 0; i < N; i++)
    in[i] = i % 4 == 0 ? NAN : i % 4 == 1 ? 3e38f : i % 4 == 2 ? -3e38f : INFINITY;
  REQUIRE_OK(aps_runner_set(r, "x", in, N));
  REQUIRE_OK(aps_runner_run(r));
  REQUIRE_OK(aps_runner_get(r, "y", y, N));
  REQUIRE_OK(aps_runner_get(r, "s", sl, N));
  CHECK(isnan(y[0]) && y[1] > 1e38f && y[2] >= 0 && y[2] < 1e-37f, "exp: %g %g %g", y[0], y[1], y[2]);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
}

/* --device "" (or APS_DEVICE="") silently picked a device. */
TEST_CASE(device_empty) {
  gr_device *d = NULL;
  CHECK(gr_device_open(&(gr_device_desc){.request = "", .quiet = 1}, &d) != APS_OK && has("empty"), "%s",
        aps_last_error());
  gr_device_close(d);
}

/* A graph whose weights cannot fit the device is refused before anything is allocated. */
TEST_CASE(memory_budget) {
  /* Weights of 1 GiB each, one more than the machine's memory holds. */
  long gib = (long)((double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE) / 1073741824.0) + 1;
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(1, 1 << 14)), y = x;
  for (long i = 0; i < gib; i++) {
    char name[32];
    snprintf(name, sizeof name, "w%ld", i);
    y = gr_matmul(g, y, gr_param(g, name, GR_SHAPE(1 << 14, 1 << 14)), 0, 0);
  }
  gr_output(g, y, "y");
  aps_runner *r = NULL;
  aps_status s = aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r);
  CHECK(s == APS_ERR_OUT_OF_MEMORY && has("GiB"), "%s", s == APS_OK ? "accepted" : aps_last_error());
  aps_runner_destroy(r);
  gr_graph_destroy(g);
}

/* The corpus's driver for IDX files (tools/hostile-corpus.sh, class idx): loads the file
 * named by APS_HOSTILE_IDX and reports as a command would (exit 1, the message on stderr).
 * Without it, a good file written here must load. */
TEST_CASE(idx_file) {
  const char *path = getenv("APS_HOSTILE_IDX");
  if (!path) {
    const char *dir = make_tmpdir();
    aps_dataset *d = test_bars_dataset(dir, 64);
    CHECK(d && aps_dataset_count(d) == 64, "a good IDX file loads");
    aps_dataset_free(d);
    return;
  }
  aps_dataset *d = NULL;
  aps_status s = aps_dataset_load_idx(path, 0, &d);
  if (s != APS_OK) {
    fprintf(stderr, "idx: %s\n", aps_last_error());
    exit(1);
  }
  printf("idx: %s: %lld images\n", path, (long long)aps_dataset_count(d));
  aps_dataset_free(d);
}
