/* Training images: IDX files through zlib (gzip or plain), folders of PNGs through
 * stb_image (Debian's libstb), and uniform batches from a one-word PRNG. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <zlib.h>

#include "dataset.h"
#include "image_read.h"
#include "aps_file.h"

struct aps_dataset {
  int64_t n;
  int c, h, w;
  float *data;
  char *source;
};

/* Limits on what a header may declare: a corrupt header must not make us allocate
 * terabytes. 4 GiB of bytes (16 GiB of floats) is far past any dataset this trains on. */
enum { IDX_MAX_DIMS = 4, MAX_SIDE = 1 << 14, CHUNK = 1 << 20 };
static const uint64_t IDX_MAX_BYTES = (uint64_t)1 << 32;

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *r = malloc(n);
  if (r)
    memcpy(r, s, n);
  return r;
}

static aps_status dataset_new(int64_t n, int c, int h, int w, const char *source, aps_dataset **out) {
  uint64_t per = (uint64_t)c * (uint64_t)h * (uint64_t)w;
  if (n <= 0 || per == 0 || (uint64_t)n > SIZE_MAX / sizeof(float) / per)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: %" PRId64 " images of %d×%d×%d do not fit in memory", source, n, c,
                    h, w);
  aps_dataset *d = calloc(1, sizeof *d);
  if (d) {
    d->data = malloc((size_t)n * per * sizeof(float));
    d->source = dup_str(source);
  }
  if (!d || !d->data || !d->source) {
    aps_dataset_free(d);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: cannot allocate %" PRId64 " images of %d×%d×%d floats", source, n,
                    c, h, w);
  }
  d->n = n;
  d->c = c;
  d->h = h;
  d->w = w;
  *out = d;
  return APS_OK;
}

void aps_dataset_free(aps_dataset *d) {
  if (!d)
    return;
  free(d->data);
  free(d->source);
  free(d);
}

int64_t aps_dataset_count(const aps_dataset *d) { return d ? d->n : 0; }
int aps_dataset_channels(const aps_dataset *d) { return d ? d->c : 0; }
int aps_dataset_height(const aps_dataset *d) { return d ? d->h : 0; }
int aps_dataset_width(const aps_dataset *d) { return d ? d->w : 0; }
const float *aps_dataset_data(const aps_dataset *d) { return d ? d->data : NULL; }
const char *aps_dataset_source(const aps_dataset *d) { return d ? d->source : ""; }

/* v / 127.5 − 1, exact at 0, 127.5 and 255. */
static float byte_to_unit(uint8_t v) { return (float)v / 127.5f - 1.0f; }

/* ------------------------------------------------------------------ IDX */

/* zlib's message for f without the "<path>: " it starts with, or NULL when all is well. */
static const char *gz_message(const char *path, gzFile f, int *code) {
  const char *msg = gzerror(f, code);
  if (*code == Z_OK || !msg || !*msg)
    return NULL;
  size_t n = strlen(path);
  if (!strncmp(msg, path, n) && msg[n] == ':' && msg[n + 1] == ' ')
    msg += n + 2;
  return msg;
}

/* A failed gzread: the system's read error (APS_ERR_IO), or zlib finding the gzip stream
 * damaged (APS_ERR_FORMAT). */
static aps_status gz_fail(const char *path, gzFile f) {
  int code = 0;
  const char *msg = gz_message(path, f, &code);
  if (code == Z_ERRNO)
    return aps_fail(APS_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  return aps_fail(APS_ERR_FORMAT, "%s: damaged gzip stream: %s", path, msg ? msg : "read failed");
}

/* Reads up to n bytes; returns how many, or −1 on a read error (zlib's or the system's). */
static int64_t gz_read_full(gzFile f, uint8_t *buf, uint64_t n) {
  uint64_t got = 0;
  while (got < n) {
    uint64_t want = n - got < CHUNK ? n - got : CHUNK;
    int r = gzread(f, buf + got, (unsigned)want);
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    got += (uint64_t)r;
  }
  return (int64_t)got;
}

/* A gzip stream that stops early reads as a short file with a zlib error set; name it. */
static const char *gz_short_reason(const char *path, gzFile f) {
  int code = 0;
  return gz_message(path, f, &code);
}

typedef struct idx_file {
  uint32_t dims[IDX_MAX_DIMS];
  uint8_t *bytes; /* dims' product of them */
  uint64_t size;
} idx_file;

/* Reads an unsigned-byte IDX file of ndims dimensions, strictly: the magic, each
 * dimension ≥ 1, exactly the declared bytes after the header. what = "images"/"labels". */
static aps_status idx_read(const char *path, int ndims, const char *what, idx_file *out) {
  memset(out, 0, sizeof *out);
  /* The file rule (aps_file.h): a regular file, opened without blocking on a FIFO. */
  aps_status os;
  int fd = aps_file_open_read(path, &os);
  if (fd < 0)
    return aps_fail_context(os, "IDX %s file ", what);
  errno = 0;
  gzFile f = gzdopen(fd, "rb");
  if (!f) {
    close(fd);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: cannot open: out of memory", path);
  }
  aps_status s = APS_OK;
  uint8_t head[4 + 4 * IDX_MAX_DIMS];
  uint64_t head_size = 4 + 4 * (uint64_t)ndims;
  uint32_t magic_want = 0x00000800u | (uint32_t)ndims;
  static const char *const dim_names[] = {"count", "rows", "cols", "dimension 3"};
  const char *layout = ndims == 3 ? "count, rows, cols" : "count";
  int64_t got = gz_read_full(f, head, 4);
  if (got < 0) {
    s = gz_fail(path, f);
    goto done;
  }
  if (got < 4) {
    const char *why = gz_short_reason(path, f);
    s = aps_fail(APS_ERR_FORMAT, "%s: truncated: an IDX file starts with a 4-byte magic number, found %" PRId64
                 " bytes%s%s", path, got, why ? "; zlib: " : "", why ? why : "");
    goto done;
  }
  uint32_t magic = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
  if (head[0] || head[1] || head[2] != 0x08) {
    s = aps_fail(APS_ERR_FORMAT, "%s: not an IDX unsigned-byte file: magic number 0x%08" PRIx32
                 ", expected 0x%08" PRIx32 " (IDX %s: unsigned bytes, %d dimensions)", path, magic, magic_want,
                 what, ndims);
    goto done;
  }
  if (head[3] != ndims) {
    s = aps_fail(APS_ERR_FORMAT, "%s: IDX file of %d dimensions, expected %d (%s) for %s (magic 0x%08" PRIx32
                 ", expected 0x%08" PRIx32 ")", path, head[3], ndims, layout, what, magic, magic_want);
    goto done;
  }
  got = gz_read_full(f, head + 4, head_size - 4);
  if (got < 0) {
    s = gz_fail(path, f);
    goto done;
  }
  if ((uint64_t)got < head_size - 4) {
    const char *why = gz_short_reason(path, f);
    s = aps_fail(APS_ERR_FORMAT, "%s: truncated header: expected %" PRIu64 " bytes (magic and %d dimensions), found %"
                 PRIu64 "%s%s", path, head_size, ndims, 4 + (uint64_t)got, why ? "; zlib: " : "", why ? why : "");
    goto done;
  }
  uint64_t total = 1;
  for (int i = 0; i < ndims; i++) {
    const uint8_t *p = head + 4 + 4 * i;
    out->dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (out->dims[i] == 0) {
      s = aps_fail(APS_ERR_FORMAT, "%s: dimension %d (%s) is 0: the file holds no %s", path, i, dim_names[i], what);
      goto done;
    }
    if (i > 0 && out->dims[i] > MAX_SIDE) {
      s = aps_fail(APS_ERR_FORMAT, "%s: dimension %d (%s) is %" PRIu32 ", more than the %d this reader accepts",
                   path, i, dim_names[i], out->dims[i], MAX_SIDE);
      goto done;
    }
    total *= out->dims[i]; /* ≤ 2^32 · 2^14 · 2^14: no overflow */
  }
  if (total > IDX_MAX_BYTES) {
    s = aps_fail(APS_ERR_FORMAT, "%s: header declares %" PRIu64 " bytes of %s, more than the 4 GiB this reader accepts",
                 path, total, what);
    goto done;
  }
  /* Grow the buffer as bytes arrive, so a header that lies about its count costs no more
   * memory than the file really holds. */
  uint64_t cap = total < CHUNK ? total : CHUNK, have = 0;
  out->bytes = malloc(cap);
  while (out->bytes) {
    got = gz_read_full(f, out->bytes + have, cap - have);
    if (got < 0) {
      s = gz_fail(path, f);
      goto done;
    }
    have += (uint64_t)got;
    if (have < cap || cap == total)
      break;
    uint64_t next = cap * 2 < total ? cap * 2 : total;
    uint8_t *grown = realloc(out->bytes, next);
    if (!grown) {
      free(out->bytes);
      out->bytes = NULL;
      break;
    }
    out->bytes = grown;
    cap = next;
  }
  if (!out->bytes) {
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: cannot allocate %" PRIu64 " bytes of %s", path, total, what);
    goto done;
  }
  char decl[96];
  if (ndims == 3)
    snprintf(decl, sizeof decl, "%" PRIu32 " images of %" PRIu32 "×%" PRIu32, out->dims[0], out->dims[1],
             out->dims[2]);
  else
    snprintf(decl, sizeof decl, "%" PRIu32 " labels", out->dims[0]);
  if (have < total) {
    const char *why = gz_short_reason(path, f);
    s = aps_fail(APS_ERR_FORMAT, "%s: truncated: the header declares %s, %" PRIu64 " bytes after the %" PRIu64
                 "-byte header; found %" PRIu64 "%s%s", path, decl, total, head_size, have,
                 why ? "; zlib: " : "", why ? why : "");
    goto done;
  }
  /* Anything past the declared data is an error too: a wrong header or a wrong file. */
  uint8_t extra[4096];
  uint64_t trailing = 0;
  for (;;) {
    int r = gzread(f, extra, sizeof extra);
    if (r < 0) {
      s = gz_fail(path, f);
      goto done;
    }
    if (r == 0)
      break;
    trailing += (uint64_t)r;
  }
  const char *why = gz_short_reason(path, f);
  if (why) { /* e.g. a gzip stream cut short right after the data, or a bad checksum */
    s = aps_fail(APS_ERR_FORMAT, "%s: damaged gzip stream after the data: %s", path, why);
    goto done;
  }
  if (trailing) {
    s = aps_fail(APS_ERR_FORMAT, "%s: %" PRIu64 " trailing bytes: the header declares %s, %" PRIu64
                 " bytes after the %" PRIu64 "-byte header; found %" PRIu64, path, trailing, decl, total, head_size,
                 total + trailing);
    goto done;
  }
  out->size = total;
done:
  if (gzclose_r(f) != Z_OK && s == APS_OK)
    s = aps_fail(APS_ERR_IO, "%s: cannot close: %s", path, strerror(errno));
  if (s != APS_OK) {
    free(out->bytes);
    out->bytes = NULL;
  }
  return s;
}

aps_status aps_dataset_load_idx(const char *images_path, int pad_to, aps_dataset **out) {
  if (!images_path || !out || pad_to < 0 || pad_to > MAX_SIDE)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_dataset_load_idx: %s",
                    !images_path || !out ? "NULL path or out" : "pad_to must be in [0, 16384]");
  *out = NULL;
  idx_file f;
  APS_TRY(idx_read(images_path, 3, "images", &f));
  int rows = (int)f.dims[1], cols = (int)f.dims[2];
  int h = pad_to ? pad_to : rows, w = pad_to ? pad_to : cols;
  if (h < rows || w < cols || (h - rows) % 2 || (w - cols) % 2) {
    free(f.bytes);
    return aps_fail(APS_ERR_INVALID_ARG, "%s: cannot centre %d×%d images in %d×%d (the padding must be even and "
                    "not negative)", images_path, rows, cols, h, w);
  }
  aps_dataset *d;
  aps_status s = dataset_new(f.dims[0], 1, h, w, images_path, &d);
  if (s != APS_OK) {
    free(f.bytes);
    return s;
  }
  int oy = (h - rows) / 2, ox = (w - cols) / 2;
  for (int64_t i = 0; i < d->n; i++) {
    float *img = d->data + i * h * w;
    const uint8_t *src = f.bytes + i * rows * cols;
    for (int j = 0; j < h * w; j++)
      img[j] = -1.0f;
    for (int y = 0; y < rows; y++)
      for (int x = 0; x < cols; x++)
        img[(y + oy) * w + x + ox] = byte_to_unit(src[y * cols + x]);
  }
  free(f.bytes);
  *out = d;
  return APS_OK;
}

aps_status aps_idx_load_labels(const char *path, uint8_t **labels, int64_t *count) {
  if (!path || !labels || !count)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_idx_load_labels: NULL argument");
  *labels = NULL;
  *count = 0;
  idx_file f;
  APS_TRY(idx_read(path, 1, "labels", &f));
  *labels = f.bytes;
  *count = (int64_t)f.size;
  return APS_OK;
}

static const char FASHION_HINT[] =
    "Fashion-MNIST comes from the Debian package dataset-fashion-mnist (sudo apt-get install "
    "dataset-fashion-mnist, or tools/setup-debian.sh), which installs it in " APS_FASHION_MNIST_DIR;

static aps_status load_fashion_mnist(const char *dir, int train, int pad_to, aps_dataset **out) {
  if (!out)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_dataset_load_fashion_mnist: NULL out");
  *out = NULL;
  if (!dir)
    dir = APS_FASHION_MNIST_DIR;
  struct stat st;
  if (stat(dir, &st))
    return aps_fail(APS_ERR_IO, "%s: %s; %s", dir, strerror(errno), FASHION_HINT);
  if (!S_ISDIR(st.st_mode))
    return aps_fail(APS_ERR_IO, "%s: not a folder; %s", dir, FASHION_HINT);
  const char *name = train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
  size_t n = strlen(dir) + strlen(name) + 8;
  char *path = malloc(n);
  if (!path)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
  snprintf(path, n, "%s/%s.gz", dir, name);
  if (stat(path, &st)) {
    snprintf(path, n, "%s/%s", dir, name);
    if (stat(path, &st)) {
      aps_status s = aps_fail(APS_ERR_IO, "%s: neither %s.gz nor %s is there; %s", dir, name, name, FASHION_HINT);
      free(path);
      return s;
    }
  }
  aps_status s = aps_dataset_load_idx(path, pad_to, out);
  free(path);
  return s;
}

aps_status aps_dataset_load_fashion_mnist(const char *dir, int train, aps_dataset **out) {
  return load_fashion_mnist(dir, train, 32, out);
}

/* ------------------------------------------------------------------ PNG folders */

/* stb_image's reason for its last failure; some paths fail without one. */
static const char *stb_reason(void) {
  const char *r = stbi_failure_reason();
  return r && *r ? r : "corrupt or truncated data";
}

static int has_png_suffix(const char *name) {
  size_t n = strlen(name);
  return name[0] != '.' && n > 4 && !strcasecmp(name + n - 4, ".png");
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void free_names(char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

/* The full paths of dir's *.png regular files, sorted by name. */
static aps_status list_pngs(const char *dir, char ***paths, size_t *count) {
  *paths = NULL;
  *count = 0;
  DIR *dp = opendir(dir);
  if (!dp)
    return aps_fail(APS_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
  char **names = NULL;
  size_t n = 0, cap = 0;
  aps_status s = APS_OK;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(dp))) {
    if (!has_png_suffix(e->d_name))
      continue;
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *p = malloc(len);
    if (!p) {
      s = aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of memory listing the folder", dir);
      break;
    }
    snprintf(p, len, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(p, &st) || !S_ISREG(st.st_mode)) { /* a folder named x.png, a dangling link */
      free(p);
      continue;
    }
    if (n == cap) {
      size_t next = cap ? cap * 2 : 64;
      char **grown = realloc(names, next * sizeof *names);
      if (!grown) {
        free(p);
        s = aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of memory listing the folder", dir);
        break;
      }
      names = grown;
      cap = next;
    }
    names[n++] = p;
    errno = 0;
  }
  if (s == APS_OK && errno)
    s = aps_fail(APS_ERR_IO, "%s: cannot read folder: %s", dir, strerror(errno));
  closedir(dp);
  if (s == APS_OK && n == 0)
    s = aps_fail(APS_ERR_FORMAT, "%s: the folder holds no *.png files", dir);
  if (s != APS_OK) {
    free_names(names, n);
    return s;
  }
  qsort(names, n, sizeof *names, cmp_names);
  *paths = names;
  *count = n;
  return APS_OK;
}

aps_status aps_dataset_load_png_dir(const char *dir, int size, int channels, aps_dataset **out) {
  if (!dir || !out)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_dataset_load_png_dir: NULL folder or out");
  *out = NULL;
  if (size < 1 || size > MAX_SIDE || (channels != 1 && channels != 3))
    return aps_fail(APS_ERR_INVALID_ARG, "%s: images of %d×%d with %d channels requested; the size must be in "
                    "[1, %d] and the channels 1 (gray) or 3 (RGB)", dir, size, size, channels, MAX_SIDE);
  char **paths;
  size_t n;
  APS_TRY(list_pngs(dir, &paths, &n));
  aps_dataset *d;
  aps_status s = dataset_new((int64_t)n, channels, size, size, dir, &d);
  if (s != APS_OK) {
    free_names(paths, n);
    return s;
  }
  size_t plane = (size_t)size * (size_t)size;
  for (size_t i = 0; i < n && s == APS_OK; i++) {
    int w, h, comp;
    unsigned char *bytes = NULL;
    size_t nbytes = 0;
    if ((s = aps_png_file(paths[i], &bytes, &nbytes)) != APS_OK)
      break;
    /* The header first: a wrong size is refused before any decoding. */
    if (!stbi_info_from_memory(bytes, (int)nbytes, &w, &h, &comp)) {
      free(bytes);
      s = aps_fail(APS_ERR_FORMAT, "%s: cannot decode the image (stb_image: %s)", paths[i], stb_reason());
      break;
    }
    if (w != size || h != size) {
      free(bytes);
      s = aps_fail(APS_ERR_FORMAT, "%s: image is %d×%d, expected %d×%d (images are not resized)", paths[i], w, h,
                   size, size);
      break;
    }
    uint8_t *px = stbi_load_from_memory(bytes, (int)nbytes, &w, &h, &comp, channels);
    free(bytes);
    if (!px) {
      s = aps_fail(APS_ERR_FORMAT, "%s: cannot decode the image (stb_image: %s)", paths[i], stb_reason());
      break;
    }
    if (w != size || h != size) /* cannot happen after stbi_info; never trust it blindly */
      s = aps_fail(APS_ERR_FORMAT, "%s: decoded as %d×%d, expected %d×%d", paths[i], w, h, size, size);
    else {
      float *img = d->data + i * (size_t)channels * plane;
      for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < channels; c++)
          img[(size_t)c * plane + p] = byte_to_unit(px[p * (size_t)channels + (size_t)c]);
    }
    stbi_image_free(px);
  }
  free_names(paths, n);
  if (s != APS_OK) {
    aps_dataset_free(d);
    return s;
  }
  *out = d;
  return APS_OK;
}

aps_status aps_dataset_load(const char *spec, int size, int channels, aps_dataset **out) {
  if (!spec || !out)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_dataset_load: NULL data or out");
  if (!strcmp(spec, "fashion-mnist")) {
    if (channels != 1 || size < 28)
      return aps_fail(APS_ERR_INVALID_ARG, "fashion-mnist: images are 1-channel 28×28 (padded to the size); "
                      "%d channels at %d×%d requested", channels, size, size);
    return load_fashion_mnist(NULL, 1, size, out);
  }
  return aps_dataset_load_png_dir(spec, size, channels, out);
}

/* ------------------------------------------------------------------ batches */

aps_status aps_dataset_batch(const aps_dataset *d, uint64_t *rng_state, int batch, int hflip, float *out) {
  if (!d || !rng_state || !out || batch < 1)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_dataset_batch: %s",
                    batch < 1 ? "batch must be at least 1" : "NULL dataset, rng state or output");
  size_t w = (size_t)d->w, rows = (size_t)d->c * (size_t)d->h, per = rows * w;
  for (int b = 0; b < batch; b++) {
    uint64_t i = aps_rng_below(rng_state, (uint64_t)d->n);
    int flip = hflip ? (int)(aps_rng_next(rng_state) >> 63) : 0;
    const float *src = d->data + i * per;
    float *dst = out + (size_t)b * per;
    if (!flip)
      memcpy(dst, src, per * sizeof *dst);
    else
      for (size_t r = 0; r < rows; r++)
        for (size_t x = 0; x < w; x++)
          dst[r * w + x] = src[r * w + (w - 1 - x)];
  }
  return APS_OK;
}
