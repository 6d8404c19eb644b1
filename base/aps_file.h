/* Files, one rule for all of them.
 *
 * Written: every file aps writes (weights, checkpoints, images, logs, the pipeline cache)
 * goes through aps_file_write_atomic: a regular file only (a device node, FIFO, socket or
 * folder at the path, or behind a symlink there, is refused by name and left alone), every
 * write, the fsync and the close checked, a temporary renamed over the target, so a failure
 * or kill -9 never leaves it half-written.
 *
 * Read: every file aps reads whole goes through aps_file_read: opened without blocking
 * (a FIFO cannot hang it), regular files only, its size checked against the caller's limit
 * before anything is allocated. */
#ifndef APS_FILE_H
#define APS_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "aps_status.h"

typedef struct aps_file_part {
  const void *data;
  size_t size;
} aps_file_part;

/* Writes the parts, in order, to "<path>.tmp.<pid>", fsyncs it and renames it over path, then
 * fsyncs the folder (best effort). Refuses an empty path and a path that exists but is not a
 * regular file (aps_file_check_target). Temporaries "<path>.tmp.<pid>" of processes that no
 * longer run are removed first. On failure path is untouched, the temporary is removed and
 * the message names both files. */
aps_status aps_file_write_atomic(const char *path, const aps_file_part *parts, size_t count);

/* An output's target before any work is done: `what` names it in the message ("--out").
 * APS_OK when path does not exist or is a regular file (symlinks followed); an error naming
 * the option, the path and what is there otherwise. */
aps_status aps_file_check_target(const char *path, const char *what);

/* Every output of a command before any work is done: names[i] ("--out") and paths[i] (NULL:
 * unused). Each must pass aps_file_check_target, and no two may be one file (the same path,
 * or links to one file): the message names both options. */
aps_status aps_file_check_outputs(const char *const *names, const char *const *paths, int count);

/* Reads a regular file whole into a malloc'd buffer with one extra 0 byte after it; files
 * over max_bytes, FIFOs, devices and folders are refused naming the file. */
aps_status aps_file_read(const char *path, uint64_t max_bytes, unsigned char **data, size_t *size);

/* Opens a regular file for reading without blocking on a FIFO: a descriptor (O_CLOEXEC,
 * blocking again once open) or -1 with the message set naming the file. */
int aps_file_open_read(const char *path, aps_status *status);

/* Removes "<path>.tmp.<pid>" files whose process no longer runs (left by a kill -9);
 * those of running processes are left alone. Returns how many were removed. */
int aps_file_remove_stale_temporaries(const char *path);

/* mkdir -p: creates path and its missing parents; 0, or -1 with errno set. */
int aps_file_make_dirs(const char *path);

#endif
