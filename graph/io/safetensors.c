/* Safetensors reading: the header's schema over the strict JSON reader of json.c, then
 * validation of every tensor against the file's bytes. Writing: safetensors_write.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

#include "json.h"
#include "graph_internal.h"
#include "aps_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c hands out file bytes as floats: it assumes a little-endian host"
#endif

/* The reference implementation's header limit. */
enum { MAX_HEADER = 100000000, NAME_SHOWN = 120 };

static const struct {
  const char *name;
  int size;
} dtypes[] = {{"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8}, {"I32", 4}, {"I16", 2},
              {"I8", 1}, {"U8", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8}, {"BOOL", 1}, {"F8_E4M3", 1},
              {"F8_E5M2", 1}};
enum { DT_F32 = 0, DT_F16 = 1, DT_BF16 = 2, DT_COUNT = sizeof dtypes / sizeof dtypes[0] };

enum { SEEN_DTYPE = 1, SEEN_SHAPE = 2, SEEN_OFFSETS = 4 };

typedef struct st_tensor {
  char *name;
  int dtype, rank, seen;
  int64_t dims[4];
  int64_t begin, end;
  const float *f32; /* F32/F16/BF16 as floats: into the file buffer, or `owned` */
  float *owned;
} st_tensor;

typedef struct st_meta {
  char *key, *value;
} st_meta;

struct gr_st {
  char *path;
  uint8_t *buf;
  uint64_t size;
  const uint8_t *data; /* the data region: after the header */
  uint64_t data_size;
  st_tensor *t;
  uint32_t n, cap;
  st_tensor **by_name; /* sorted by name, for lookup */
  st_meta *meta;       /* sorted by key once parsed */
  uint32_t n_meta, cap_meta;
  int seen_meta;
};

static const float empty_tensor[1];

/* ------------------------------------------------------------------ the header's schema */

static aps_status tensor_member(gr_json *p, const char *key, size_t len, void *ctx) {
  (void)len;
  st_tensor *t = ctx;
  const char *path = p->path;
  int bit = !strcmp(key, "dtype") ? SEEN_DTYPE : !strcmp(key, "shape") ? SEEN_SHAPE
                                              : !strcmp(key, "data_offsets") ? SEEN_OFFSETS : 0;
  if (!bit) /* unknown fields are skipped, as other readers do */
    return gr_json_skip(p, 1);
  if (t->seen & bit)
    return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': '%s' given twice", path, NAME_SHOWN, t->name, key);
  t->seen |= bit;
  if (bit == SEEN_DTYPE) {
    char *s = NULL;
    size_t l = 0;
    APS_TRY(gr_json_string(p, &s, &l));
    t->dtype = -1;
    for (int k = 0; k < DT_COUNT; k++)
      if (!strcmp(s, dtypes[k].name) && l == strlen(s))
        t->dtype = k;
    aps_status r = t->dtype >= 0 ? APS_OK
                                 : aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': unknown dtype '%.32s'", path,
                                            NAME_SHOWN, t->name, s);
    free(s);
    return r;
  }
  if (bit == SEEN_SHAPE) {
    APS_TRY(gr_json_ints(p, t->dims, 4, &t->rank));
    if (t->rank > 4)
      return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': shape has %d dimensions; at most 4 are supported", path,
                      NAME_SHOWN, t->name, t->rank);
    for (int k = 0; k < t->rank; k++)
      if (t->dims[k] < 0)
        return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': shape dimension %d is negative (%" PRId64 ")", path,
                        NAME_SHOWN, t->name, k, t->dims[k]);
    return APS_OK;
  }
  int64_t v[2] = {0, 0};
  int count = 0;
  APS_TRY(gr_json_ints(p, v, 2, &count));
  if (count != 2)
    return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': data_offsets must be two integers [begin, end], found %d",
                    path, NAME_SHOWN, t->name, count);
  if (v[0] < 0 || v[1] < 0)
    return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': data_offsets [%" PRId64 ", %" PRId64 "] are negative", path,
                    NAME_SHOWN, t->name, v[0], v[1]);
  t->begin = v[0];
  t->end = v[1];
  return APS_OK;
}

static aps_status meta_member(gr_json *p, const char *key, size_t len, void *ctx) {
  gr_st *st = ctx;
  if (len != strlen(key))
    return aps_fail(APS_ERR_FORMAT, "%s: __metadata__ key '%.*s' contains a NUL character", p->path, NAME_SHOWN,
                    key);
  if (gr_json_peek(p) != '"')
    return aps_fail(APS_ERR_FORMAT, "%s: __metadata__ '%.*s' is not a string", p->path, NAME_SHOWN, key);
  if (st->n_meta == st->cap_meta) {
    uint32_t cap = st->cap_meta ? st->cap_meta * 2 : 8;
    st_meta *m = realloc(st->meta, cap * sizeof *m);
    if (!m)
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory parsing the header", p->path);
    st->meta = m;
    st->cap_meta = cap;
  }
  char *value = NULL;
  size_t vlen = 0;
  APS_TRY(gr_json_string(p, &value, &vlen));
  char *k = strdup(key);
  if (!k || vlen != strlen(value)) {
    free(k);
    free(value);
    return k ? aps_fail(APS_ERR_FORMAT, "%s: __metadata__ '%.*s': the value contains a NUL character", p->path,
                        NAME_SHOWN, key)
             : aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory parsing the header", p->path);
  }
  st->meta[st->n_meta++] = (st_meta){k, value};
  return APS_OK;
}

static aps_status top_member(gr_json *p, const char *key, size_t len, void *ctx) {
  gr_st *st = ctx;
  if (!strcmp(key, "__metadata__") && len == strlen(key)) {
    if (st->seen_meta++)
      return aps_fail(APS_ERR_FORMAT, "%s: __metadata__ given twice", p->path);
    return gr_json_object(p, meta_member, st);
  }
  if (len != strlen(key))
    return aps_fail(APS_ERR_FORMAT, "%s: tensor name '%.*s' contains a NUL character", p->path, NAME_SHOWN, key);
  if (st->n == st->cap) {
    uint32_t cap = st->cap ? st->cap * 2 : 16;
    st_tensor *t = realloc(st->t, cap * sizeof *t);
    if (!t)
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory parsing the header", p->path);
    st->t = t;
    st->cap = cap;
  }
  st_tensor *t = &st->t[st->n];
  memset(t, 0, sizeof *t);
  if (!(t->name = strdup(key)))
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory parsing the header", p->path);
  st->n++;
  if (gr_json_peek(p) != '{')
    return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': expected an object {\"dtype\", \"shape\", \"data_offsets\"}",
                    p->path, NAME_SHOWN, key);
  APS_TRY(gr_json_object(p, tensor_member, t));
  static const char *const field[] = {"dtype", "shape", "data_offsets"};
  for (int k = 0; k < 3; k++)
    if (!(t->seen & 1 << k))
      return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': missing '%s'", p->path, NAME_SHOWN, key, field[k]);
  return APS_OK;
}

/* ------------------------------------------------------------------ validation */

static int by_name_cmp(const void *a, const void *b) {
  return strcmp((*(st_tensor *const *)a)->name, (*(st_tensor *const *)b)->name);
}
static int meta_cmp(const void *a, const void *b) {
  return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}
typedef struct range {
  int64_t begin, end;
  uint32_t i;
} range;
static int range_cmp(const void *a, const void *b) {
  const range *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->end < y->end ? -1 : x->end > y->end;
}

/* Sizes, ranges inside the data, no overlaps, unique names and keys. */
static aps_status validate(gr_st *st) {
  const char *path = st->path;
  for (uint32_t i = 0; i < st->n; i++) {
    st_tensor *t = &st->t[i];
    int64_t size = dtypes[t->dtype].size, count = 1;
    for (int k = 0; k < t->rank; k++) {
      if (t->dims[k] && count > INT64_MAX / size / t->dims[k])
        return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': shape's element count overflows 64 bits", path,
                        NAME_SHOWN, t->name);
      count *= t->dims[k];
    }
    if (t->begin > t->end)
      return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': data_offsets begin %" PRId64 " > end %" PRId64, path,
                      NAME_SHOWN, t->name, t->begin, t->end);
    if ((uint64_t)t->end > st->data_size)
      return aps_fail(APS_ERR_FORMAT,
                      "%s: tensor '%.*s': data_offsets end %" PRId64 " is beyond the data region (%" PRIu64 " bytes)",
                      path, NAME_SHOWN, t->name, t->end, st->data_size);
    if (t->end - t->begin != count * size)
      return aps_fail(APS_ERR_FORMAT,
                      "%s: tensor '%.*s': data_offsets size %" PRId64 " != %" PRId64 " elements x %d bytes (%s)",
                      path, NAME_SHOWN, t->name, t->end - t->begin, count, (int)size, dtypes[t->dtype].name);
  }
  range *r = malloc((st->n ? st->n : 1) * sizeof *r);
  st->by_name = malloc((st->n ? st->n : 1) * sizeof *st->by_name);
  if (!r || !st->by_name) {
    free(r);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
  }
  uint32_t nr = 0;
  for (uint32_t i = 0; i < st->n; i++) {
    st->by_name[i] = &st->t[i];
    if (st->t[i].end > st->t[i].begin) /* empty tensors occupy no bytes */
      r[nr++] = (range){st->t[i].begin, st->t[i].end, i};
  }
  qsort(r, nr, sizeof *r, range_cmp);
  aps_status s = APS_OK;
  for (uint32_t k = 1, far = 0; k < nr && s == APS_OK; k++) {
    if (r[k].begin < r[far].end)
      s = aps_fail(APS_ERR_FORMAT, "%s: tensors '%.*s' [%" PRId64 ", %" PRId64 "] and '%.*s' [%" PRId64 ", %" PRId64
                   "] overlap", path, NAME_SHOWN, st->t[r[far].i].name, r[far].begin, r[far].end, NAME_SHOWN,
                   st->t[r[k].i].name, r[k].begin, r[k].end);
    if (r[k].end > r[far].end)
      far = k;
  }
  free(r);
  APS_TRY(s);
  qsort(st->by_name, st->n, sizeof *st->by_name, by_name_cmp);
  for (uint32_t i = 1; i < st->n; i++)
    if (!strcmp(st->by_name[i - 1]->name, st->by_name[i]->name))
      return aps_fail(APS_ERR_FORMAT, "%s: duplicate tensor name '%.*s'", path, NAME_SHOWN, st->by_name[i]->name);
  if (st->n_meta) /* meta is NULL when there is none */
    qsort(st->meta, st->n_meta, sizeof *st->meta, meta_cmp);
  for (uint32_t i = 1; i < st->n_meta; i++)
    if (!strcmp(st->meta[i - 1].key, st->meta[i].key))
      return aps_fail(APS_ERR_FORMAT, "%s: duplicate __metadata__ key '%.*s'", path, NAME_SHOWN, st->meta[i].key);
  return APS_OK;
}

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = h >> 10 & 0x1F, man = h & 0x3FF, bits;
  if (exp == 0x1F)
    bits = sign | 0x7F800000 | man << 13;
  else if (exp)
    bits = sign | (exp + 112) << 23 | man << 13;
  else if (!man)
    bits = sign;
  else { /* subnormal: normalise */
    uint32_t e = 0;
    while (!(man & 0x400)) {
      man <<= 1;
      e++;
    }
    bits = sign | (113 - e) << 23 | (man & 0x3FF) << 13;
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* Float views of F32/F16/BF16 tensors: in place when aligned, else converted copies. */
static aps_status make_floats(gr_st *st) {
  for (uint32_t i = 0; i < st->n; i++) {
    st_tensor *t = &st->t[i];
    const uint8_t *src = st->data + t->begin;
    size_t count = (size_t)(t->end - t->begin) / (size_t)dtypes[t->dtype].size;
    if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16)
      continue;
    if (!count) {
      t->f32 = empty_tensor;
      continue;
    }
    if (t->dtype == DT_F32 && (uintptr_t)src % sizeof(float) == 0) {
      t->f32 = (const float *)(const void *)src;
      continue;
    }
    if (!(t->owned = malloc(count * sizeof(float))))
      return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory converting '%.*s' to floats", st->path,
                      NAME_SHOWN, t->name);
    for (size_t k = 0; k < count; k++) {
      uint16_t h;
      if (t->dtype == DT_F32)
        memcpy(&t->owned[k], src + 4 * k, 4);
      else if (memcpy(&h, src + 2 * k, 2), t->dtype == DT_F16)
        t->owned[k] = half_to_float(h);
      else {
        uint32_t bits = (uint32_t)h << 16;
        memcpy(&t->owned[k], &bits, 4);
      }
    }
    t->f32 = t->owned;
  }
  return APS_OK;
}

/* ------------------------------------------------------------------ opening */

/* The file rule (aps_file.h): a regular file, opened without blocking, at most 16 GiB. */
static aps_status read_file(gr_st *st) {
  size_t size = 0;
  aps_status s = aps_file_read(st->path, (uint64_t)1 << 34, &st->buf, &size);
  st->size = size;
  return s;
}

aps_status gr_st_open(const char *path, gr_st **out) {
  if (!out || !path)
    return aps_fail(APS_ERR_INVALID_ARG, "gr_st_open: NULL %s", out ? "path" : "out");
  *out = NULL;
  gr_st *st = calloc(1, sizeof *st);
  if (!st || !(st->path = strdup(path))) {
    free(st);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
  }
  aps_status s = read_file(st);
  uint64_t n = 0;
  for (int k = 0; s == APS_OK && k < 8 && st->size >= 8; k++)
    n |= (uint64_t)st->buf[k] << (8 * k);
  if (s == APS_OK && st->size < 8)
    s = aps_fail(APS_ERR_FORMAT, "%s: %" PRIu64 " bytes is too short for a safetensors file (no 8-byte header length)",
                 path, st->size);
  else if (s == APS_OK && n > MAX_HEADER)
    s = aps_fail(APS_ERR_FORMAT, "%s: header length %" PRIu64 " is absurd (the limit is %d bytes)", path, n,
                 MAX_HEADER);
  else if (s == APS_OK && n > st->size - 8)
    s = aps_fail(APS_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the file (%" PRIu64
                 " bytes follow the length)", path, n, st->size - 8);
  else if (s == APS_OK && (n == 0 || st->buf[8] != '{'))
    s = aps_fail(APS_ERR_FORMAT, "%s: header is not valid JSON: it does not start with '{'", path);
  if (s == APS_OK) {
    st->data = st->buf + 8 + n;
    st->data_size = st->size - 8 - n;
    gr_json p = {path, st->buf + 8, (size_t)n, 0};
    s = gr_json_object(&p, top_member, st);
    gr_json_ws(&p); /* the format pads the header with spaces */
    if (s == APS_OK && p.i != p.n)
      s = gr_json_fail(&p, "trailing bytes after the header's object");
  }
  if (s == APS_OK)
    s = validate(st);
  if (s == APS_OK)
    s = make_floats(st);
  if (s != APS_OK) {
    gr_st_close(st);
    return s;
  }
  *out = st;
  return APS_OK;
}

void gr_st_close(gr_st *st) {
  if (!st)
    return;
  for (uint32_t i = 0; i < st->n; i++) {
    free(st->t[i].name);
    free(st->t[i].owned);
  }
  for (uint32_t i = 0; i < st->n_meta; i++) {
    free(st->meta[i].key);
    free(st->meta[i].value);
  }
  free(st->t);
  free(st->by_name);
  free(st->meta);
  free(st->buf);
  free(st->path);
  free(st);
}

const char *gr_st_path(const gr_st *st) { return st->path; }
uint32_t gr_st_count(const gr_st *st) { return st->n; }
const char *gr_st_name(const gr_st *st, uint32_t i) { return i < st->n ? st->t[i].name : NULL; }

int64_t gr_st_find(const gr_st *st, const char *name) {
  st_tensor key = {.name = (char *)name}, *kp = &key;
  st_tensor **hit = name ? bsearch(&kp, st->by_name, st->n, sizeof *st->by_name, by_name_cmp) : NULL;
  return hit ? *hit - st->t : -1;
}

aps_status gr_st_get_f32(const gr_st *st, const char *name, int *rank, int64_t dims[4], const float **data) {
  int64_t i = gr_st_find(st, name);
  if (i < 0)
    return aps_fail(APS_ERR_INVALID_ARG, "%s: no tensor named '%.*s'", st->path, NAME_SHOWN, name ? name : "(null)");
  const st_tensor *t = &st->t[i];
  if (!t->f32)
    return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s' is %s; only F32, F16 and BF16 can be read as floats",
                    st->path, NAME_SHOWN, name, dtypes[t->dtype].name);
  if (rank)
    *rank = t->rank;
  for (int k = 0; dims && k < 4; k++)
    dims[k] = k < t->rank ? t->dims[k] : 1;
  if (data)
    *data = t->f32;
  return APS_OK;
}

uint64_t gr_st_digest(const gr_st *st) { return gr_fnv1a(GR_FNV1A_INIT, st->buf, st->size); }

const char *gr_st_metadata(const gr_st *st, const char *key) {
  st_meta k = {(char *)key, NULL};
  const st_meta *hit = key && st->n_meta ? bsearch(&k, st->meta, st->n_meta, sizeof *st->meta, meta_cmp) : NULL;
  return hit ? hit->value : NULL;
}

const char *gr_st_metadata_key(const gr_st *st, uint32_t i) {
  return i < st->n_meta ? st->meta[i].key : NULL;
}
