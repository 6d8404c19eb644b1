/* Safetensors reading (a strict JSON parser for the header's subset, then validation of
 * every tensor against the file's bytes) and writing (temporary file, fsync, rename). */
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

#include "aps_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c hands out file bytes as floats: it assumes a little-endian host"
#endif

/* The reference implementation's header limit; deeper nesting than this is an attack. */
enum { MAX_HEADER = 100000000, MAX_DEPTH = 64, NAME_SHOWN = 120 };

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

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0: no overlongs, no
 * surrogates, nothing past U+10FFFF. */
static size_t utf8_seq(const uint8_t *s, size_t n) {
  uint8_t c = s[0], lo = 0x80, hi = 0xBF;
  size_t len;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    lo = c == 0xE0 ? 0xA0 : 0x80;
    hi = c == 0xED ? 0x9F : 0xBF;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    lo = c == 0xF0 ? 0x90 : 0x80;
    hi = c == 0xF4 ? 0x8F : 0xBF;
  } else
    return 0;
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t k = 2; k < len; k++)
    if ((s[k] & 0xC0) != 0x80)
      return 0;
  return len;
}

static int utf8_valid(const char *str) {
  const uint8_t *s = (const uint8_t *)str;
  size_t n = strlen(str);
  for (size_t i = 0, k; i < n; i += k)
    if (!(k = utf8_seq(s + i, n - i)))
      return 0;
  return 1;
}

static size_t utf8_put(char *o, uint32_t cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18);
  o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* ------------------------------------------------------------------ JSON */

typedef struct jp {
  const char *path;
  const uint8_t *s;
  size_t n, i;
} jp;

static aps_status jp_fail(const jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static aps_status jp_fail(const jp *p, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (p->i >= p->n)
    return aps_fail(APS_ERR_FORMAT, "%s: header is not valid JSON: it ends early (%s)", p->path, what);
  return aps_fail(APS_ERR_FORMAT, "%s: header is not valid JSON at header byte %zu: %s", p->path, p->i, what);
}

static int peek(const jp *p) { return p->i < p->n ? p->s[p->i] : -1; }

static void ws(jp *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
    p->i++;
}

static int hex4(jp *p, size_t end, uint32_t *out) {
  if (p->i + 4 > end)
    return 0;
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    int c = p->s[p->i + (size_t)k], d = c >= '0' && c <= '9' ? c - '0'
                                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                               : -1;
    if (d < 0)
      return 0;
    v = v << 4 | (uint32_t)d;
  }
  p->i += 4;
  *out = v;
  return 1;
}

/* Decodes a string into a new NUL-terminated buffer; *len counts bytes (a \u0000 inside
 * makes it differ from strlen, which callers reject where a C string is needed). */
static aps_status parse_string(jp *p, char **out, size_t *len) {
  if (peek(p) != '"')
    return jp_fail(p, "expected a string");
  size_t end = ++p->i;
  while (end < p->n && p->s[end] != '"')
    end += p->s[end] == '\\' ? 2 : 1;
  if (end >= p->n)
    return jp_fail(p, "an unterminated string");
  char *o = malloc(end - p->i + 1); /* decoding never grows a string */
  if (!o)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory parsing the header", p->path);
  size_t k = 0;
  while (p->i < end) {
    uint8_t c = p->s[p->i];
    if (c < 0x20) {
      free(o);
      return jp_fail(p, "an unescaped control character 0x%02x in a string", c);
    }
    if (c != '\\') {
      size_t l = utf8_seq(p->s + p->i, end - p->i);
      if (!l) {
        free(o);
        return jp_fail(p, "invalid UTF-8 (byte 0x%02x) in a string", c);
      }
      memcpy(o + k, p->s + p->i, l);
      k += l;
      p->i += l;
      continue;
    }
    c = p->s[++p->i];
    p->i++;
    static const char escapes[] = "\"\\/bfnrt", values[] = "\"\\/\b\f\n\r\t";
    const char *simple = c ? strchr(escapes, c) : NULL;
    if (simple) {
      o[k++] = values[simple - escapes];
      continue;
    }
    uint32_t cp = 0, lo = 0;
    if (c != 'u') {
      free(o);
      p->i--;
      return jp_fail(p, "an unknown escape '\\%c'", c >= 0x20 && c < 0x7F ? c : '?');
    }
    if (!hex4(p, end, &cp)) {
      free(o);
      return jp_fail(p, "a \\u escape without four hex digits");
    }
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
      free(o);
      return jp_fail(p, "a lone low surrogate \\u%04X", (unsigned)cp);
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) { /* must pair with a low surrogate */
      if (p->i + 2 > end || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' || (p->i += 2, !hex4(p, end, &lo)) ||
          lo < 0xDC00 || lo > 0xDFFF) {
        free(o);
        return jp_fail(p, "a high surrogate \\u%04X without its low surrogate", (unsigned)cp);
      }
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    k += utf8_put(o + k, cp);
  }
  p->i = end + 1;
  o[k] = 0;
  *out = o;
  *len = k;
  return APS_OK;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static aps_status parse_int(jp *p, int64_t *out) {
  int neg = peek(p) == '-';
  p->i += (size_t)neg;
  if (!is_digit(peek(p)))
    return jp_fail(p, "expected an integer");
  if (peek(p) == '0' && p->i + 1 < p->n && is_digit(p->s[p->i + 1]))
    return jp_fail(p, "an integer with a leading zero");
  uint64_t v = 0, limit = (uint64_t)INT64_MAX + (uint64_t)neg;
  while (is_digit(peek(p))) {
    uint64_t d = (uint64_t)(p->s[p->i] - '0');
    if (v > (limit - d) / 10)
      return jp_fail(p, "an integer that does not fit in 64 bits");
    v = v * 10 + d;
    p->i++;
  }
  if (peek(p) == '.' || peek(p) == 'e' || peek(p) == 'E')
    return jp_fail(p, "expected an integer, found a fraction or exponent");
  *out = neg ? -(int64_t)(v - 1) - 1 : (int64_t)v;
  return APS_OK;
}

/* Calls member(p, key, key_len, ctx) with p at each member's value. */
typedef aps_status (*member_fn)(jp *p, const char *key, size_t key_len, void *ctx);
static aps_status parse_object(jp *p, member_fn member, void *ctx) {
  if (peek(p) != '{')
    return jp_fail(p, "expected an object");
  p->i++;
  ws(p);
  if (peek(p) == '}') {
    p->i++;
    return APS_OK;
  }
  for (;;) {
    char *key = NULL;
    size_t len = 0;
    APS_TRY(parse_string(p, &key, &len));
    ws(p);
    aps_status s = peek(p) == ':' ? APS_OK : jp_fail(p, "expected ':' after a key");
    if (s == APS_OK) {
      p->i++;
      ws(p);
      s = member(p, key, len, ctx);
    }
    free(key);
    APS_TRY(s);
    ws(p);
    if (peek(p) == '}') {
      p->i++;
      return APS_OK;
    }
    if (peek(p) != ',')
      return jp_fail(p, "expected ',' or '}' in an object");
    p->i++;
    ws(p);
  }
}

static aps_status skip_value(jp *p, int depth);
static aps_status skip_member(jp *p, const char *key, size_t len, void *ctx) {
  (void)key, (void)len;
  return skip_value(p, *(int *)ctx);
}

/* Skips a member we do not use (any value of the subset, plus true/false/null). */
static aps_status skip_value(jp *p, int depth) {
  if (depth > MAX_DEPTH)
    return jp_fail(p, "values nested more than %d deep", MAX_DEPTH);
  int c = peek(p), next = depth + 1;
  if (c == '{')
    return parse_object(p, skip_member, &next);
  if (c == '"') {
    char *s = NULL;
    size_t len;
    APS_TRY(parse_string(p, &s, &len));
    free(s);
    return APS_OK;
  }
  if (c == '-' || is_digit(c)) {
    int64_t v;
    return parse_int(p, &v);
  }
  static const char *const words[] = {"true", "false", "null"};
  for (int k = 0; k < 3; k++) {
    size_t l = strlen(words[k]);
    if (p->n - p->i >= l && !memcmp(p->s + p->i, words[k], l)) {
      p->i += l;
      return APS_OK;
    }
  }
  if (c != '[')
    return jp_fail(p, "expected a value");
  p->i++;
  ws(p);
  if (peek(p) == ']') {
    p->i++;
    return APS_OK;
  }
  for (;;) {
    APS_TRY(skip_value(p, next));
    ws(p);
    if (peek(p) == ']') {
      p->i++;
      return APS_OK;
    }
    if (peek(p) != ',')
      return jp_fail(p, "expected ',' or ']' in an array");
    p->i++;
    ws(p);
  }
}

/* [int, ...]: stores the first max values, counts them all. */
static aps_status parse_ints(jp *p, int64_t *v, int max, int *count) {
  *count = 0;
  if (peek(p) != '[')
    return jp_fail(p, "expected an array of integers");
  p->i++;
  ws(p);
  if (peek(p) == ']') {
    p->i++;
    return APS_OK;
  }
  for (;;) {
    int64_t x;
    APS_TRY(parse_int(p, &x));
    if (*count < max)
      v[*count] = x;
    ++*count; /* at most half the header's 100 MB: no overflow */
    ws(p);
    if (peek(p) == ']') {
      p->i++;
      return APS_OK;
    }
    if (peek(p) != ',')
      return jp_fail(p, "expected ',' or ']' in an array");
    p->i++;
    ws(p);
  }
}

/* ------------------------------------------------------------------ the header's schema */

static aps_status tensor_member(jp *p, const char *key, size_t len, void *ctx) {
  (void)len;
  st_tensor *t = ctx;
  const char *path = p->path;
  int bit = !strcmp(key, "dtype") ? SEEN_DTYPE : !strcmp(key, "shape") ? SEEN_SHAPE
                                              : !strcmp(key, "data_offsets") ? SEEN_OFFSETS : 0;
  if (!bit) /* unknown fields are skipped, as other readers do */
    return skip_value(p, 1);
  if (t->seen & bit)
    return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': '%s' given twice", path, NAME_SHOWN, t->name, key);
  t->seen |= bit;
  if (bit == SEEN_DTYPE) {
    char *s = NULL;
    size_t l = 0;
    APS_TRY(parse_string(p, &s, &l));
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
    APS_TRY(parse_ints(p, t->dims, 4, &t->rank));
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
  APS_TRY(parse_ints(p, v, 2, &count));
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

static aps_status meta_member(jp *p, const char *key, size_t len, void *ctx) {
  gr_st *st = ctx;
  if (len != strlen(key))
    return aps_fail(APS_ERR_FORMAT, "%s: __metadata__ key '%.*s' contains a NUL character", p->path, NAME_SHOWN,
                    key);
  if (peek(p) != '"')
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
  APS_TRY(parse_string(p, &value, &vlen));
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

static aps_status top_member(jp *p, const char *key, size_t len, void *ctx) {
  gr_st *st = ctx;
  if (!strcmp(key, "__metadata__") && len == strlen(key)) {
    if (st->seen_meta++)
      return aps_fail(APS_ERR_FORMAT, "%s: __metadata__ given twice", p->path);
    return parse_object(p, meta_member, st);
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
  if (peek(p) != '{')
    return aps_fail(APS_ERR_FORMAT, "%s: tensor '%.*s': expected an object {\"dtype\", \"shape\", \"data_offsets\"}",
                    p->path, NAME_SHOWN, key);
  APS_TRY(parse_object(p, tensor_member, t));
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

static aps_status read_file(gr_st *st) {
  const char *path = st->path;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return aps_fail(APS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  aps_status s = APS_OK;
  if (fstat(fd, &sb))
    s = aps_fail(APS_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  else if (!S_ISREG(sb.st_mode))
    s = aps_fail(APS_ERR_IO, "%s: not a regular file", path);
  else if ((uint64_t)sb.st_size > SIZE_MAX - 1 || !(st->buf = malloc((size_t)sb.st_size + 1)))
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory reading %" PRId64 " bytes", path,
                 (int64_t)sb.st_size);
  st->size = s == APS_OK ? (uint64_t)sb.st_size : 0;
  for (uint64_t got = 0; s == APS_OK && got < st->size;) {
    ssize_t r = read(fd, st->buf + got, (size_t)(st->size - got));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      s = aps_fail(APS_ERR_IO, "%s: read failed after %" PRIu64 " of %" PRIu64 " bytes: %s", path, got, st->size,
                   r < 0 ? strerror(errno) : "the file got shorter");
    got += r > 0 ? (uint64_t)r : 0;
  }
  close(fd);
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
    jp p = {path, st->buf + 8, (size_t)n, 0};
    s = parse_object(&p, top_member, st);
    ws(&p); /* the format pads the header with spaces */
    if (s == APS_OK && p.i != p.n)
      s = jp_fail(&p, "trailing bytes after the header's object");
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

const char *gr_st_metadata(const gr_st *st, const char *key) {
  st_meta k = {(char *)key, NULL};
  const st_meta *hit = key && st->n_meta ? bsearch(&k, st->meta, st->n_meta, sizeof *st->meta, meta_cmp) : NULL;
  return hit ? hit->value : NULL;
}

/* ------------------------------------------------------------------ writing */

typedef struct sbuf {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t len) {
  if (b->oom)
    return;
  if (b->n + len + 1 > b->cap) {
    size_t cap = (b->n + len + 1) * 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, len);
  b->n += len;
  b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* A JSON string: quotes, backslashes and control characters escaped, UTF-8 kept. */
static void sb_json(sbuf *b, const char *s) {
  sb_add(b, "\"", 1);
  for (; *s; s++) {
    char esc[8];
    if (*s == '"' || *s == '\\')
      snprintf(esc, sizeof esc, "\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      snprintf(esc, sizeof esc, "\\u%04x", (unsigned)(unsigned char)*s);
    else {
      sb_add(b, s, 1);
      continue;
    }
    sb_str(b, esc);
  }
  sb_add(b, "\"", 1);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Names must be UTF-8, unique and not the metadata key; shapes in range. */
static aps_status check_write(const char *path, const gr_st_tensor *t, uint32_t n, const gr_st_meta *meta,
                              uint32_t n_meta) {
  if (!path || (n && !t) || (n_meta && !meta))
    return aps_fail(APS_ERR_INVALID_ARG, "gr_st_write: NULL %s", !path ? "path" : n && !t ? "tensors" : "metadata");
  for (uint32_t i = 0; i < n; i++) {
    const char *name = t[i].name;
    if (!name || !utf8_valid(name) || !strcmp(name, "__metadata__"))
      return aps_fail(APS_ERR_INVALID_ARG, "%s: tensor %u: name %s", path, i,
                      !name ? "is NULL" : !strcmp(name, "__metadata__") ? "'__metadata__' is reserved"
                                                                          : "is not valid UTF-8");
    if (t[i].rank < 0 || t[i].rank > 4)
      return aps_fail(APS_ERR_INVALID_ARG, "%s: tensor '%.*s': rank %d (0 to 4)", path, NAME_SHOWN, name, t[i].rank);
    int64_t count = 1;
    for (int k = 0; k < t[i].rank; k++) {
      if (t[i].dims[k] < 0 || (t[i].dims[k] && count > INT64_MAX / 4 / t[i].dims[k]))
        return aps_fail(APS_ERR_INVALID_ARG, "%s: tensor '%.*s': dimension %d is %" PRId64, path, NAME_SHOWN, name, k,
                        t[i].dims[k]);
      count *= t[i].dims[k];
    }
    if (count && !t[i].data)
      return aps_fail(APS_ERR_INVALID_ARG, "%s: tensor '%.*s': NULL data", path, NAME_SHOWN, name);
  }
  for (uint32_t i = 0; i < n_meta; i++)
    if (!meta[i].key || !meta[i].value || !utf8_valid(meta[i].key) || !utf8_valid(meta[i].value))
      return aps_fail(APS_ERR_INVALID_ARG, "%s: metadata %u: key or value is NULL or not valid UTF-8", path, i);
  /* Duplicates, by sorting a copy of the names (then of the keys). */
  uint32_t most = n > n_meta ? n : n_meta;
  const char **names = malloc((most ? most : 1) * sizeof *names);
  if (!names)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
  aps_status s = APS_OK;
  for (int pass = 0; pass < 2 && s == APS_OK; pass++) {
    uint32_t m = pass ? n_meta : n;
    for (uint32_t i = 0; i < m; i++)
      names[i] = pass ? meta[i].key : t[i].name;
    qsort(names, m, sizeof *names, str_cmp);
    for (uint32_t i = 1; i < m && s == APS_OK; i++)
      if (!strcmp(names[i - 1], names[i]))
        s = aps_fail(APS_ERR_INVALID_ARG, "%s: duplicate %s '%.*s'", path, pass ? "metadata key" : "tensor name",
                     NAME_SHOWN, names[i]);
  }
  free(names);
  return s;
}

aps_status gr_st_write(const char *path, const gr_st_tensor *t, uint32_t n, const gr_st_meta *meta, uint32_t n_meta) {
  APS_TRY(check_write(path, t, n, meta, n_meta));
  sbuf h = {0};
  char num[96];
  sb_str(&h, "{");
  if (n_meta) {
    sb_str(&h, "\"__metadata__\":{");
    for (uint32_t i = 0; i < n_meta; i++) {
      sb_str(&h, i ? "," : "");
      sb_json(&h, meta[i].key);
      sb_str(&h, ":");
      sb_json(&h, meta[i].value);
    }
    sb_str(&h, "}");
  }
  uint64_t offset = 0;
  for (uint32_t i = 0; i < n; i++) {
    sb_str(&h, i || n_meta ? "," : "");
    sb_json(&h, t[i].name);
    sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
    uint64_t count = 1;
    for (int k = 0; k < t[i].rank; k++) {
      snprintf(num, sizeof num, "%s%" PRId64, k ? "," : "", t[i].dims[k]);
      sb_str(&h, num);
      count *= (uint64_t)t[i].dims[k];
    }
    snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", offset, offset + count * 4);
    sb_str(&h, num);
    offset += count * 4;
  }
  sb_str(&h, "}");
  while (!h.oom && (8 + h.n) % 8) /* so F32 data lands aligned when the file is read into memory */
    sb_str(&h, " ");
  if (h.oom) {
    free(h.p);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory building the header", path);
  }
  uint8_t len8[8];
  for (int k = 0; k < 8; k++)
    len8[k] = (uint8_t)((uint64_t)h.n >> (8 * k));

  aps_file_part *parts = malloc((n + 2) * sizeof *parts);
  if (!parts) {
    free(h.p);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
  }
  parts[0] = (aps_file_part){len8, 8};
  parts[1] = (aps_file_part){h.p, h.n};
  for (uint32_t i = 0; i < n; i++) {
    uint64_t count = 1;
    for (int k = 0; k < t[i].rank; k++)
      count *= (uint64_t)t[i].dims[k];
    parts[2 + i] = (aps_file_part){t[i].data, (size_t)(count * 4)};
  }
  aps_status s = aps_file_write_atomic(path, parts, n + 2);
  free(parts);
  free(h.p);
  return s;
}
