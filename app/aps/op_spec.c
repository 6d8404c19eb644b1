/* Operator specs: parsing, the canonical text, and model metadata (operators.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators.h"

static const char *const kind_names[APS_OP_KIND_COUNT] = {"denoise", "inpaint", "blur", "sr"};
static const char *const mask_names[APS_MASK_KIND_COUNT] = {"box", "pixels", "strokes", "half", "mask"};

/* The message every parse error carries: the whole spec, then the field and the fault. */
typedef struct parse_ctx {
  const char *spec;
} parse_ctx;

static aps_status bad(const parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static aps_status bad(const parse_ctx *p, const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return aps_fail(APS_ERR_INVALID_ARG, "operator spec '%s': %s", p->spec, what);
}

/* "a" or "a-b" into r; the whole of text. */
static aps_status parse_range(const parse_ctx *p, const char *field, const char *text, aps_range *r) {
  if (!text || !*text)
    return bad(p, "%s needs a value (a number or a range lo-hi)", field);
  char *end;
  errno = 0;
  r->lo = strtof(text, &end);
  if (end == text || errno || !isfinite(r->lo))
    return bad(p, "%s '%s' is not a number or a range lo-hi", field, text);
  r->hi = r->lo;
  if (*end == '-') {
    const char *h = end + 1;
    r->hi = strtof(h, &end);
    if (end == h || errno || !isfinite(r->hi))
      return bad(p, "%s '%s': the upper end is not a number", field, text);
  }
  if (*end)
    return bad(p, "%s '%s' is not a number or a range lo-hi", field, text);
  if (r->lo > r->hi)
    return bad(p, "%s range '%s' is written backwards (%g > %g)", field, text, r->lo, r->hi);
  return APS_OK;
}

static aps_status check_bounds(const parse_ctx *p, const char *field, aps_range r, double lo, int lo_open, double hi,
                               int integers, const char *unit) {
  if ((lo_open ? r.lo <= lo : r.lo < lo) || r.hi > hi)
    return bad(p, "%s %g-%g is outside %s%g, %g] %s", field, r.lo, r.hi, lo_open ? "(" : "[", lo, hi, unit);
  if (integers && (r.lo != floorf(r.lo) || r.hi != floorf(r.hi)))
    return bad(p, "%s %g-%g must be whole numbers %s", field, r.lo, r.hi, unit);
  return APS_OK;
}

/* The field a token of a member sets, its value (NULL if no '='). */
static void split_token(char *tok, char **value) {
  char *eq = strchr(tok, '=');
  *value = NULL;
  if (eq) {
    *eq = 0;
    *value = eq + 1;
  }
}

static int mask_kind_of(const char *tok) {
  for (int k = 0; k < APS_MASK_KIND_COUNT; k++)
    if (!strcmp(tok, mask_names[k]))
      return k;
  return -1;
}

/* A mask kind's value into m->mask, *range (box, pixels, strokes) or m->file; `who` prefixes
 * the errors ("" for inpaint, "map: " for a blur map). */
static aps_status parse_mask(const parse_ctx *p, const char *who, int mk, const char *value, aps_op_member *m,
                             aps_range *range) {
  m->mask = (aps_mask_kind)mk;
  if (mk == APS_MASK_HALF && value)
    return bad(p, "%shalf takes no value (inpaint:half, blur:map=half)", who);
  if (mk == APS_MASK_STROKES && !value)
    *range = (aps_range){1, 4};
  else if (mk == APS_MASK_BOX || mk == APS_MASK_PIXELS || mk == APS_MASK_STROKES)
    APS_TRY(parse_range(p, mask_names[mk], value, range));
  if (mk == APS_MASK_BOX)
    APS_TRY(check_bounds(p, "box", *range, 1, 0, 4096, 1, "(box side in pixels)"));
  if (mk == APS_MASK_PIXELS)
    APS_TRY(check_bounds(p, "pixels", *range, 0, 1, 1, 0, "(share of pixels kept)"));
  if (mk == APS_MASK_STROKES)
    APS_TRY(check_bounds(p, "strokes", *range, 1, 0, 64, 1, "(number of strokes)"));
  if (mk == APS_MASK_FILE) {
    if (!value || !*value)
      return bad(p, "%smask needs a file (inpaint:mask=FILE.png, blur:map=FILE.png)", who);
    if (strlen(value) >= APS_OP_PATH_MAX)
      return bad(p, "%sthe file name is longer than %d characters", who, APS_OP_PATH_MAX - 1);
    strcpy(m->file, value);
  }
  return APS_OK;
}

static aps_status parse_member(const parse_ctx *p, const char *text, aps_op_member *m) {
  memset(m, 0, sizeof *m);
  m->noise = (aps_range){APS_SIGMA_Y_DEFAULT, APS_SIGMA_Y_DEFAULT};
  m->factor = 1;
  size_t len = strlen(text);
  if (!len)
    return bad(p, "an empty operator (expected denoise, inpaint:..., blur:..., sr:2 or sr:4)");
  char buf[APS_OP_SPEC_MAX];
  if (len >= sizeof buf)
    return bad(p, "longer than %zu characters", sizeof buf - 1);
  memcpy(buf, text, len + 1);
  size_t nl = strcspn(buf, ":,");
  char sep = buf[nl];
  buf[nl] = 0;
  int kind = -1;
  for (int k = 0; k < APS_OP_KIND_COUNT; k++)
    if (!strcmp(buf, kind_names[k]))
      kind = k;
  if (kind < 0)
    return bad(p, "unknown operator '%s' (expected denoise, inpaint, blur, sr or mix)", buf);
  m->kind = (aps_op_kind)kind;
  const char *name = kind_names[kind];
  int have_kind = 0, have_noise = 0, have_sigma = 0, have_map = 0;
  char *rest = sep ? buf + nl + 1 : NULL;
  if (sep && !*rest)
    return bad(p, "%s: nothing after '%c'", name, sep);
  for (char *tok = rest, *next; tok; tok = next) {
    next = strchr(tok, ',');
    if (next)
      *next++ = 0;
    if (!*tok)
      return bad(p, "%s: an empty field (two commas, or a comma at the end)", name);
    char *value;
    split_token(tok, &value);
    if (!strcmp(tok, "noise")) {
      if (have_noise++)
        return bad(p, "%s: noise is given twice", name);
      APS_TRY(parse_range(p, "noise", value, &m->noise));
      APS_TRY(check_bounds(p, "noise", m->noise, 0, 0, APS_SIGMA_Y_MAX, 0, "(σ_y on the [-1, 1] scale)"));
      continue;
    }
    if (m->kind == APS_OP_SR && !have_kind && !value) {
      char *end;
      long f = strtol(tok, &end, 10);
      if (end == tok || *end || (f != 2 && f != 4))
        return bad(p, "sr: factor '%s' is not 2 or 4", tok);
      m->factor = (int)f, have_kind = 1;
      continue;
    }
    if (m->kind == APS_OP_INPAINT && mask_kind_of(tok) >= 0) {
      if (have_kind++)
        return bad(p, "inpaint: %s after another mask kind (give one of box, pixels, strokes, half, mask)", tok);
      APS_TRY(parse_mask(p, "", mask_kind_of(tok), value, m, &m->range));
      continue;
    }
    if (m->kind == APS_OP_BLUR && !strcmp(tok, "sigma")) {
      if (have_sigma++)
        return bad(p, "blur: sigma is given twice");
      APS_TRY(parse_range(p, "sigma", value, &m->range));
      APS_TRY(check_bounds(p, "sigma", m->range, 0, 1, APS_BLUR_SIGMA_MAX, 0, "(σ_b in pixels)"));
      continue;
    }
    if (m->kind == APS_OP_BLUR && !strcmp(tok, "map")) {
      if (have_map++)
        return bad(p, "blur: map is given twice");
      if (!value || !*value)
        return bad(p, "map needs a file or a kind (blur:map=FILE.png,sigma=2; map=strokes, box=R, pixels=R, half)");
      char *kind_value;
      split_token(value, &kind_value);
      int mk = mask_kind_of(value);
      if (mk < 0 || mk == APS_MASK_FILE) { /* a file name (which may hold '=') */
        if (kind_value)
          kind_value[-1] = '=';
        kind_value = value, mk = APS_MASK_FILE;
      }
      m->map = 1;
      APS_TRY(parse_mask(p, "map: ", mk, kind_value, m, &m->map_range));
      continue;
    }
    static const char *const takes[APS_OP_KIND_COUNT] = {
        "noise", "box, pixels, strokes, half, mask and noise", "sigma, map and noise", "2 or 4, then noise"};
    return bad(p, "%s: unknown field '%s' (%s takes %s)", name, tok, name, takes[kind]);
  }
  if (m->kind == APS_OP_INPAINT && !have_kind)
    return bad(p, "inpaint needs a mask kind: box=R, pixels=R, strokes, half or mask=FILE");
  if (m->kind == APS_OP_SR && !have_kind)
    return bad(p, "sr needs a factor: sr:2 or sr:4");
  if (m->kind == APS_OP_BLUR && !have_sigma)
    return bad(p, "blur needs sigma=R (σ_b in pixels, e.g. blur:sigma=0.5-2.5)");
  return APS_OK;
}

/* The class a member asks for; -1 = any (denoise). */
static int member_class(const aps_op_member *m) {
  switch (m->kind) {
  case APS_OP_DENOISE: return -1;
  case APS_OP_INPAINT: return APS_OPC_MASK;
  case APS_OP_BLUR: return APS_OPC_BLUR;
  default: return APS_OPC_SR;
  }
}

aps_op_class aps_op_spec_class(const aps_op_spec *s) {
  for (int i = 0; i < s->count; i++)
    if (member_class(&s->m[i]) >= 0)
      return (aps_op_class)member_class(&s->m[i]);
  return APS_OPC_MASK;
}

static const char *class_words(int c) {
  return c == APS_OPC_MASK ? "inpainting" : c == APS_OPC_BLUR ? "blur" : "super-resolution";
}

aps_status aps_op_spec_parse(const char *text, aps_op_spec *out) {
  memset(out, 0, sizeof *out);
  parse_ctx p = {text ? text : ""};
  if (!text || !*text)
    return bad(&p, "empty (expected e.g. inpaint:box=8-16, blur:sigma=1-2, sr:4, denoise or mix:A+B)");
  if (strlen(text) >= APS_OP_SPEC_MAX)
    return bad(&p, "longer than %d characters", APS_OP_SPEC_MAX - 1);
  if (strncmp(text, "mix:", 4)) {
    if (!strncmp(text, "mix", 3) && (!text[3] || text[3] == ','))
      return bad(&p, "mix needs members: mix:A+B");
    out->count = 1;
    return parse_member(&p, text, &out->m[0]);
  }
  char buf[APS_OP_SPEC_MAX];
  strcpy(buf, text + 4);
  if (!*buf)
    return bad(&p, "mix: no members (mix:A+B)");
  for (char *tok = buf, *next; tok; tok = next) {
    next = strchr(tok, '+');
    if (next)
      *next++ = 0;
    if (out->count == APS_OP_MIX_MAX)
      return bad(&p, "mix: more than %d members", APS_OP_MIX_MAX);
    if (!*tok)
      return bad(&p, "mix: member %d is empty (two '+', or one at an end)", out->count + 1);
    if (!strncmp(tok, "mix", 3))
      return bad(&p, "mix: member %d is a mix itself (list every member in one mix)", out->count + 1);
    APS_TRY(parse_member(&p, tok, &out->m[out->count]));
    out->count++;
  }
  /* One class, one measurement shape. */
  int first = -1;
  for (int i = 0; i < out->count; i++) {
    int c = member_class(&out->m[i]);
    if (c < 0 && aps_op_spec_class(out) == APS_OPC_SR)
      return bad(&p, "mix: denoise cannot mix with sr (measurements of different shapes)");
    if (c < 0)
      continue;
    if (first < 0) {
      first = i;
      continue;
    }
    const aps_op_member *a = &out->m[first], *b = &out->m[i];
    if (c != member_class(a))
      return bad(&p, "mix: member %d (%s) cannot mix with member %d (%s): a family shares one measurement shape and "
                 "descriptor, so inpaint kinds mix with each other, blur kinds with each other, and denoise with either",
                 i + 1, class_words(c), first + 1, class_words(member_class(a)));
    if (c == APS_OPC_SR && a->factor != b->factor)
      return bad(&p, "mix: sr:%d and sr:%d cannot mix (measurements of different shapes)", a->factor, b->factor);
  }
  return APS_OK;
}

/* The shortest of %.6g .. %.9g that reads back as the same float. */
static void fmt_float(char *buf, size_t size, float v) {
  for (int digits = 6; digits <= 9; digits++) {
    snprintf(buf, size, "%.*g", digits, v);
    if (strtof(buf, NULL) == v)
      return;
  }
}

static int put_range(char *buf, size_t size, const char *field, aps_range r) {
  char lo[32], hi[32];
  fmt_float(lo, sizeof lo, r.lo);
  fmt_float(hi, sizeof hi, r.hi);
  return r.lo == r.hi ? snprintf(buf, size, "%s=%s", field, lo) : snprintf(buf, size, "%s=%s-%s", field, lo, hi);
}

/* A mask kind as a spec writes it: "box=8-16", "half"; a file by its name alone. */
static void format_mask(char *buf, size_t size, aps_mask_kind mk, aps_range r, const char *file) {
  if (mk == APS_MASK_HALF)
    snprintf(buf, size, "half");
  else if (mk == APS_MASK_FILE)
    snprintf(buf, size, "%s", file);
  else
    put_range(buf, size, mask_names[mk], r);
}

aps_status aps_op_member_format(const aps_op_member *m, char *buf, size_t size) {
  char head[APS_OP_PATH_MAX + 256] = "", tail[80];
  switch (m->kind) {
  case APS_OP_DENOISE: snprintf(head, sizeof head, "denoise"); break;
  case APS_OP_SR: snprintf(head, sizeof head, "sr:%d", m->factor); break;
  case APS_OP_BLUR: {
    char r[80], map[APS_OP_PATH_MAX + 80] = "";
    put_range(r, sizeof r, "sigma", m->range);
    if (m->map)
      format_mask(map, sizeof map, m->mask, m->map_range, m->file);
    snprintf(head, sizeof head, "blur:%s%s%s", r, m->map ? ",map=" : "", map);
    break;
  }
  case APS_OP_INPAINT: {
    char mask[APS_OP_PATH_MAX + 80];
    format_mask(mask, sizeof mask, m->mask, m->range, m->file);
    snprintf(head, sizeof head, "inpaint:%s", m->mask == APS_MASK_FILE ? "mask=" : "");
    strncat(head, mask, sizeof head - strlen(head) - 1);
    break;
  }
  default: return aps_fail(APS_ERR_INVALID_ARG, "aps_op_member_format: unknown operator kind %d", (int)m->kind);
  }
  put_range(tail, sizeof tail, "noise", m->noise);
  if ((size_t)snprintf(buf, size, "%s,%s", head, tail) >= size)
    return aps_fail(APS_ERR_INVALID_ARG, "operator spec '%s,...': longer than the %zu-byte buffer", head, size);
  return APS_OK;
}

aps_status aps_op_spec_format(const aps_op_spec *s, char *buf, size_t size) {
  if (s->count < 1 || s->count > APS_OP_MIX_MAX)
    return aps_fail(APS_ERR_INVALID_ARG, "aps_op_spec_format: %d members (1 to %d)", s->count, APS_OP_MIX_MAX);
  if (s->count == 1)
    return aps_op_member_format(&s->m[0], buf, size);
  size_t used = (size_t)snprintf(buf, size, "mix:");
  for (int i = 0; i < s->count; i++) {
    if (used >= size)
      break;
    if (i)
      used += (size_t)snprintf(buf + used, size - used, "+");
    if (used >= size)
      break;
    APS_TRY(aps_op_member_format(&s->m[i], buf + used, size - used));
    used += strlen(buf + used);
  }
  if (used >= size)
    return aps_fail(APS_ERR_INVALID_ARG, "operator spec: longer than the %zu-byte buffer", size);
  return APS_OK;
}

aps_status aps_op_spec_to_meta(const aps_op_spec *s, char buf[APS_OP_SPEC_MAX], gr_st_meta *meta) {
  APS_TRY(aps_op_spec_format(s, buf, APS_OP_SPEC_MAX));
  *meta = (gr_st_meta){APS_OP_META_KEY, buf};
  return APS_OK;
}

aps_status aps_op_spec_from_file(const gr_st *st, aps_op_spec *out) {
  const char *text = gr_st_metadata(st, APS_OP_META_KEY);
  if (!text)
    return aps_fail(APS_ERR_FORMAT, "%s: no metadata '%s' (the operator family the file was made for)", gr_st_path(st),
                    APS_OP_META_KEY);
  aps_status s = aps_op_spec_parse(text, out);
  if (s != APS_OK)
    return aps_fail_context(APS_ERR_FORMAT, "%s: metadata '%s': ", gr_st_path(st), APS_OP_META_KEY);
  return APS_OK;
}
