/* The strict JSON reader that safetensors headers are parsed with (json.c). */
#ifndef APS_GRAPH_JSON_H
#define APS_GRAPH_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "aps_status.h"

/* A header being read: bytes s[0..n), position i; path names the file in messages. */
typedef struct gr_json {
  const char *path;
  const uint8_t *s;
  size_t n, i;
} gr_json;

/* An APS_ERR_FORMAT naming the file and the header byte at p->i (or that it ended early). */
aps_status gr_json_fail(const gr_json *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The byte at the position, or -1 at the end. */
int gr_json_peek(const gr_json *p);
/* Skips whitespace. */
void gr_json_ws(gr_json *p);
/* Decodes a string into a new NUL-terminated buffer; *len counts bytes (a \u0000 inside
 * makes it differ from strlen, which callers reject where a C string is needed). */
aps_status gr_json_string(gr_json *p, char **out, size_t *len);
/* Calls member(p, key, key_len, ctx) with p at each member's value. */
typedef aps_status (*gr_json_member_fn)(gr_json *p, const char *key, size_t key_len, void *ctx);
aps_status gr_json_object(gr_json *p, gr_json_member_fn member, void *ctx);
/* A number with fraction and exponent (for files other than safetensors headers, whose
 * numbers are integers), or null as NaN. */
aps_status gr_json_number(gr_json *p, double *out);
/* [v, ...]: each element through fn at depth + 1, or skipped (gr_json_skip) when fn is NULL. */
typedef aps_status (*gr_json_elem_fn)(gr_json *p, void *ctx, int depth);
aps_status gr_json_array(gr_json *p, gr_json_elem_fn fn, void *ctx, int depth);
/* Skips a value (objects, arrays, strings, integers, true/false/null) at nesting depth. */
aps_status gr_json_skip(gr_json *p, int depth);
/* [int, ...]: stores the first max values, counts them all. */
aps_status gr_json_ints(gr_json *p, int64_t *v, int max, int *count);
/* Whether a C string is valid UTF-8 (no overlongs, surrogates, or code points past U+10FFFF). */
int gr_utf8_valid(const char *s);
#endif
