/* Safetensors writing: F32 tensors and metadata into a temporary file, fsynced, renamed over
 * the target (aps_file_write_atomic), so a failure leaves an existing file as it was. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

#include "aps_file.h"
#include "json.h"

enum { NAME_SHOWN = 120 };

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
    if (!name || !gr_utf8_valid(name) || !strcmp(name, "__metadata__"))
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
    if (!meta[i].key || !meta[i].value || !gr_utf8_valid(meta[i].key) || !gr_utf8_valid(meta[i].value))
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
