/* Safetensors files: the ecosystem's weight format, read and written for graph/ parameters.
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON (may end in padding
 * spaces) mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]} plus an
 * optional "__metadata__" object of string -> string, then the raw little-endian data;
 * offsets count from the first byte after the header.
 *
 * Contract
 * - gr_st_open reads the whole file and validates everything before it returns: the header
 *   length (at most 100 MB and inside the file), the JSON (strict: UTF-8, escapes, no
 *   duplicate names, nothing but spaces after the object), every dtype, shape (at most 4
 *   dimensions, no overflow) and data range (inside the data, size = count × dtype size,
 *   no two tensors overlapping; bytes covered by no tensor are allowed). Any fault is an
 *   APS_ERR_FORMAT whose message names the file and the field; nothing is read outside
 *   the file.
 * - Tensors keep the file's order (gr_st_name). F32 data is handed out in place (or copied
 *   when unaligned); F16 and BF16 are converted to float copies owned by the gr_st. Other
 *   dtypes are kept but cannot be read as floats. Pointers live until gr_st_close.
 * - gr_st_write writes F32 tensors and metadata to "<path>.tmp.<pid>", fsyncs it and renames
 *   it over path, so on any failure an existing file is left untouched.
 * - Assumes a little-endian host (checked at compile time).
 */
#ifndef APS_GR_SAFETENSORS_H
#define APS_GR_SAFETENSORS_H

#include <stdint.h>

#include "aps_status.h"
#include "graph.h"

typedef struct gr_st gr_st; /* an opened file */

aps_status gr_st_open(const char *path, gr_st **out);
void gr_st_close(gr_st *st); /* NULL is fine */
const char *gr_st_path(const gr_st *st);
uint32_t gr_st_count(const gr_st *st);
const char *gr_st_name(const gr_st *st, uint32_t i); /* NULL past the end */
/* Index of the tensor named name, or -1. */
int64_t gr_st_find(const gr_st *st, const char *name);
/* A tensor that must be F32, F16 or BF16, as floats; rank, dims and data may each be NULL. */
aps_status gr_st_get_f32(const gr_st *st, const char *name, int *rank, int64_t dims[4], const float **data);
const char *gr_st_metadata(const gr_st *st, const char *key); /* NULL if absent */
/* The i-th metadata key in byte order, NULL past the end: for copying a file's metadata. */
const char *gr_st_metadata_key(const gr_st *st, uint32_t i);
/* FNV-1a 64 of the whole file's bytes, as read: names a file by content, not by path. */
uint64_t gr_st_digest(const gr_st *st);

typedef struct gr_st_tensor {
  const char *name;
  int rank; /* 0..4 */
  int64_t dims[4];
  const float *data;
} gr_st_tensor;
typedef struct gr_st_meta {
  const char *key, *value;
} gr_st_meta;

/* Writes F32 tensors (in the given order, 8-byte aligned) and metadata. */
aps_status gr_st_write(const char *path, const gr_st_tensor *t, uint32_t n, const gr_st_meta *meta, uint32_t n_meta);

/* Sets every parameter of the plan's or CPU interpreter's graph from st (params_io.c).
 * All parameters are checked first (present, same shape, finite values, else an error
 * naming the first one at fault), then set, so a failed load changes nothing. Tensors in st that are not
 * parameters of the graph are ignored. */
/* Checks that the file holds every parameter of g with g's shape, finite, before anything is
 * allocated for g (a budget: a config that disagrees with its weights is refused in
 * milliseconds, naming the file and tensor, not after gigabytes of arena). */
aps_status gr_st_check_params(const gr_graph *g, const gr_st *st);
aps_status gr_plan_load(gr_plan *p, const gr_st *st);
aps_status gr_cpu_load(gr_cpu *c, const gr_st *st);

#endif
