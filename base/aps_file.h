/* Files that are never half-written: every layer that saves something a failure must not
 * destroy (weights, checkpoints, images, the pipeline cache) writes through here. */
#ifndef APS_FILE_H
#define APS_FILE_H

#include <stddef.h>

#include "aps_status.h"

typedef struct aps_file_part {
  const void *data;
  size_t size;
} aps_file_part;

/* Writes the parts, in order, to "<path>.tmp.<pid>", fsyncs it and renames it over path, then
 * fsyncs the folder (best effort). On failure path is untouched, the temporary is removed
 * and the message names both files. */
aps_status aps_file_write_atomic(const char *path, const aps_file_part *parts, size_t count);

/* mkdir -p: creates path and its missing parents; 0, or -1 with errno set. */
int aps_file_make_dirs(const char *path);

#endif
