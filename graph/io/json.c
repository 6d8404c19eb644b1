/* The strict JSON reader of safetensors headers (safetensors.c): UTF-8 checked byte by byte,
 * escapes and surrogate pairs decoded, integers only (64-bit, no leading zeros, no fraction
 * or exponent, in unknown fields too), nesting at most MAX_DEPTH deep; every fault names the
 * file, the header byte and what was wrong. gr_json_number reads fractions for other files
 * (`aps bench compare`'s reports); gr_json_skip stays integer-only. Debian's JSON libraries would need checks on
 * top: cJSON checks no UTF-8, keeps numbers as doubles and takes duplicate keys; jansson
 * nests 2048 deep, takes fractions, and names faults in its own words. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Deeper nesting than this in a weights header is an attack. */
enum { MAX_DEPTH = 64 };

/* ---- UTF-8 */

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

int gr_utf8_valid(const char *str) {
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

/* ---- JSON */

aps_status gr_json_fail(const gr_json *p, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (p->i >= p->n)
    return aps_fail(APS_ERR_FORMAT, "%s: header is not valid JSON: it ends early (%s)", p->path, what);
  return aps_fail(APS_ERR_FORMAT, "%s: header is not valid JSON at header byte %zu: %s", p->path, p->i, what);
}

int gr_json_peek(const gr_json *p) { return p->i < p->n ? p->s[p->i] : -1; }

void gr_json_ws(gr_json *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
    p->i++;
}

static int hex4(gr_json *p, size_t end, uint32_t *out) {
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
aps_status gr_json_string(gr_json *p, char **out, size_t *len) {
  if (gr_json_peek(p) != '"')
    return gr_json_fail(p, "expected a string");
  size_t end = ++p->i;
  while (end < p->n && p->s[end] != '"')
    end += p->s[end] == '\\' ? 2 : 1;
  if (end >= p->n)
    return gr_json_fail(p, "an unterminated string");
  char *o = malloc(end - p->i + 1); /* decoding never grows a string */
  if (!o)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory parsing the header", p->path);
  size_t k = 0;
  while (p->i < end) {
    uint8_t c = p->s[p->i];
    if (c < 0x20) {
      free(o);
      return gr_json_fail(p, "an unescaped control character 0x%02x in a string", c);
    }
    if (c != '\\') {
      size_t l = utf8_seq(p->s + p->i, end - p->i);
      if (!l) {
        free(o);
        return gr_json_fail(p, "invalid UTF-8 (byte 0x%02x) in a string", c);
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
      return gr_json_fail(p, "an unknown escape '\\%c'", c >= 0x20 && c < 0x7F ? c : '?');
    }
    if (!hex4(p, end, &cp)) {
      free(o);
      return gr_json_fail(p, "a \\u escape without four hex digits");
    }
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
      free(o);
      return gr_json_fail(p, "a lone low surrogate \\u%04X", (unsigned)cp);
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) { /* must pair with a low surrogate */
      if (p->i + 2 > end || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' || (p->i += 2, !hex4(p, end, &lo)) ||
          lo < 0xDC00 || lo > 0xDFFF) {
        free(o);
        return gr_json_fail(p, "a high surrogate \\u%04X without its low surrogate", (unsigned)cp);
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

static aps_status parse_int(gr_json *p, int64_t *out) {
  int neg = gr_json_peek(p) == '-';
  p->i += (size_t)neg;
  if (!is_digit(gr_json_peek(p)))
    return gr_json_fail(p, "expected an integer");
  if (gr_json_peek(p) == '0' && p->i + 1 < p->n && is_digit(p->s[p->i + 1]))
    return gr_json_fail(p, "an integer with a leading zero");
  uint64_t v = 0, limit = (uint64_t)INT64_MAX + (uint64_t)neg;
  while (is_digit(gr_json_peek(p))) {
    uint64_t d = (uint64_t)(p->s[p->i] - '0');
    if (v > (limit - d) / 10)
      return gr_json_fail(p, "an integer that does not fit in 64 bits");
    v = v * 10 + d;
    p->i++;
  }
  if (gr_json_peek(p) == '.' || gr_json_peek(p) == 'e' || gr_json_peek(p) == 'E')
    return gr_json_fail(p, "expected an integer, found a fraction or exponent");
  *out = neg ? -(int64_t)(v - 1) - 1 : (int64_t)v;
  return APS_OK;
}

aps_status gr_json_number(gr_json *p, double *out) {
  if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "null", 4)) {
    p->i += 4;
    *out = NAN;
    return APS_OK;
  }
  size_t start = p->i;
  if (gr_json_peek(p) == '-')
    p->i++;
  if (!is_digit(gr_json_peek(p)))
    return gr_json_fail(p, "expected a number");
  while (is_digit(gr_json_peek(p)))
    p->i++;
  if (gr_json_peek(p) == '.') {
    p->i++;
    if (!is_digit(gr_json_peek(p)))
      return gr_json_fail(p, "expected digits after '.'");
    while (is_digit(gr_json_peek(p)))
      p->i++;
  }
  if (gr_json_peek(p) == 'e' || gr_json_peek(p) == 'E') {
    p->i++;
    if (gr_json_peek(p) == '+' || gr_json_peek(p) == '-')
      p->i++;
    if (!is_digit(gr_json_peek(p)))
      return gr_json_fail(p, "expected digits in an exponent");
    while (is_digit(gr_json_peek(p)))
      p->i++;
  }
  char buf[64];
  size_t len = p->i - start;
  if (len >= sizeof buf)
    return gr_json_fail(p, "a number of more than %zu characters", sizeof buf - 1);
  memcpy(buf, p->s + start, len);
  buf[len] = 0;
  *out = strtod(buf, NULL);
  return APS_OK;
}

aps_status gr_json_array(gr_json *p, gr_json_elem_fn fn, void *ctx, int depth) {
  if (depth > MAX_DEPTH)
    return gr_json_fail(p, "values nested more than %d deep", MAX_DEPTH);
  if (gr_json_peek(p) != '[')
    return gr_json_fail(p, "expected an array");
  p->i++;
  gr_json_ws(p);
  if (gr_json_peek(p) == ']')
    return p->i++, APS_OK;
  for (;;) {
    APS_TRY(fn ? fn(p, ctx, depth + 1) : gr_json_skip(p, depth + 1));
    gr_json_ws(p);
    if (gr_json_peek(p) == ']')
      return p->i++, APS_OK;
    if (gr_json_peek(p) != ',')
      return gr_json_fail(p, "expected ',' or ']' in an array");
    p->i++;
    gr_json_ws(p);
  }
}

aps_status gr_json_object(gr_json *p, gr_json_member_fn member, void *ctx) {
  if (gr_json_peek(p) != '{')
    return gr_json_fail(p, "expected an object");
  p->i++;
  gr_json_ws(p);
  if (gr_json_peek(p) == '}') {
    p->i++;
    return APS_OK;
  }
  for (;;) {
    char *key = NULL;
    size_t len = 0;
    APS_TRY(gr_json_string(p, &key, &len));
    gr_json_ws(p);
    aps_status s = gr_json_peek(p) == ':' ? APS_OK : gr_json_fail(p, "expected ':' after a key");
    if (s == APS_OK) {
      p->i++;
      gr_json_ws(p);
      s = member(p, key, len, ctx);
    }
    free(key);
    APS_TRY(s);
    gr_json_ws(p);
    if (gr_json_peek(p) == '}') {
      p->i++;
      return APS_OK;
    }
    if (gr_json_peek(p) != ',')
      return gr_json_fail(p, "expected ',' or '}' in an object");
    p->i++;
    gr_json_ws(p);
  }
}

static aps_status skip_member(gr_json *p, const char *key, size_t len, void *ctx) {
  (void)key, (void)len;
  return gr_json_skip(p, *(int *)ctx);
}

/* Skips a member we do not use (any value of the subset, plus true/false/null). */
aps_status gr_json_skip(gr_json *p, int depth) {
  if (depth > MAX_DEPTH)
    return gr_json_fail(p, "values nested more than %d deep", MAX_DEPTH);
  int c = gr_json_peek(p), next = depth + 1;
  if (c == '{')
    return gr_json_object(p, skip_member, &next);
  if (c == '"') {
    char *s = NULL;
    size_t len;
    APS_TRY(gr_json_string(p, &s, &len));
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
    return gr_json_fail(p, "expected a value");
  return gr_json_array(p, NULL, NULL, depth);
}

/* [int, ...]: stores the first max values, counts them all. */
aps_status gr_json_ints(gr_json *p, int64_t *v, int max, int *count) {
  *count = 0;
  if (gr_json_peek(p) != '[')
    return gr_json_fail(p, "expected an array of integers");
  p->i++;
  gr_json_ws(p);
  if (gr_json_peek(p) == ']') {
    p->i++;
    return APS_OK;
  }
  for (;;) {
    int64_t x;
    APS_TRY(parse_int(p, &x));
    if (*count < max)
      v[*count] = x;
    ++*count; /* at most half the header's 100 MB: no overflow */
    gr_json_ws(p);
    if (gr_json_peek(p) == ']') {
      p->i++;
      return APS_OK;
    }
    if (gr_json_peek(p) != ',')
      return gr_json_fail(p, "expected ',' or ']' in an array");
    p->i++;
    gr_json_ws(p);
  }
}
