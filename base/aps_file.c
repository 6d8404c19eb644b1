/* The file rule (aps_file.h): regular files only, writes through a temporary and a rename,
 * reads without blocking and size-checked. */
#include "aps_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aps_log.h"

static const char *kind_of(mode_t m) {
  return S_ISDIR(m) ? "a folder" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

static int write_all(int fd, const unsigned char *p, size_t size) {
  while (size) {
    ssize_t r = write(fd, p, size);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (r == 0)
        errno = EIO;
      return -1;
    }
    p += r;
    size -= (size_t)r;
  }
  return 0;
}

/* The folder of path and its last component, as malloc'd strings. */
static int split_path(const char *path, char **dir, char **base) {
  const char *slash = strrchr(path, '/');
  *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  *base = strdup(slash ? slash + 1 : path);
  if (*dir && *base)
    return 0;
  free(*dir), free(*base);
  return -1;
}

/* Makes a rename durable; some filesystems refuse to fsync a folder, which is harmless. */
static void sync_folder(const char *path) {
  char *dir = NULL, *base = NULL;
  if (split_path(path, &dir, &base))
    return;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  free(dir), free(base);
}

aps_status aps_file_check_target(const char *path, const char *what) {
  if (!path || !*path)
    return aps_fail(APS_ERR_INVALID_ARG, "%s: an empty path", what);
  struct stat sb;
  if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
    return aps_fail(APS_ERR_IO, "%s %s: is %s; refusing to write over it (give a path to a regular file)",
                    what, path, kind_of(sb.st_mode));
  return APS_OK;
}

aps_status aps_file_check_outputs(const char *const *names, const char *const *paths, int count) {
  for (int i = 0; i < count; i++)
    if (paths[i])
      APS_TRY(aps_file_check_target(paths[i], names[i]));
  for (int i = 0; i < count; i++)
    for (int j = i + 1; j < count; j++) {
      if (!paths[i] || !paths[j])
        continue;
      struct stat a, b;
      int same = !strcmp(paths[i], paths[j]) || (stat(paths[i], &a) == 0 && stat(paths[j], &b) == 0 &&
                                                 a.st_dev == b.st_dev && a.st_ino == b.st_ino);
      if (same)
        return aps_fail(APS_ERR_INVALID_ARG, "%s and %s are the same file (%s); one would overwrite the other",
                        names[i], names[j], paths[i]);
    }
  return APS_OK;
}

int aps_file_remove_stale_temporaries(const char *path) {
  char *dir = NULL, *base = NULL;
  if (!path || split_path(path, &dir, &base))
    return 0;
  size_t nb = strlen(base), nd = strlen(dir);
  int removed = 0;
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));) {
    const char *n = e->d_name;
    if (strncmp(n, base, nb) || strncmp(n + nb, ".tmp.", 5))
      continue;
    char *end;
    errno = 0;
    long pid = strtol(n + nb + 5, &end, 10);
    /* Only a temporary whose writer is gone: four processes may share one target. */
    if (*end || end == n + nb + 5 || errno || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
      continue;
    char *full = malloc(nd + strlen(n) + 2);
    if (full) {
      sprintf(full, "%s/%s", dir, n);
      if (unlink(full) == 0) {
        aps_info("removed %s, left by an interrupted run", full);
        removed++;
      }
      free(full);
    }
  }
  if (d)
    closedir(d);
  free(dir), free(base);
  return removed;
}

aps_status aps_file_write_atomic(const char *path, const aps_file_part *parts, size_t count) {
  APS_TRY(aps_file_check_target(path, "writing"));
  aps_file_remove_stale_temporaries(path);
  size_t tmp_size = strlen(path) + 32;
  char *tmp = malloc(tmp_size);
  if (!tmp)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
  snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());
  aps_status s = APS_OK;
  /* O_EXCL: never write through a link or a node someone placed at the temporary's name. */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 && errno == EEXIST && unlink(tmp) == 0) /* our own pid's: a leftover of ours */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    s = aps_fail(APS_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
  for (size_t i = 0; i < count && s == APS_OK; i++)
    if (write_all(fd, parts[i].data, parts[i].size))
      s = aps_fail(APS_ERR_IO, "%s: cannot write %s: %s", path, tmp, strerror(errno));
  if (s == APS_OK && fsync(fd))
    s = aps_fail(APS_ERR_IO, "%s: cannot write %s: %s", path, tmp, strerror(errno));
  if (fd >= 0 && close(fd) && s == APS_OK)
    s = aps_fail(APS_ERR_IO, "%s: cannot close %s: %s", path, tmp, strerror(errno));
  /* The target may have become a node while we wrote; check again just before the rename. */
  if (s == APS_OK)
    s = aps_file_check_target(path, "writing");
  if (s == APS_OK && rename(tmp, path))
    s = aps_fail(APS_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
  if (s != APS_OK && fd >= 0)
    unlink(tmp);
  if (s == APS_OK)
    sync_folder(path);
  free(tmp);
  return s;
}

int aps_file_open_read(const char *path, aps_status *status) {
  *status = APS_OK;
  if (!path || !*path) {
    *status = aps_fail(APS_ERR_INVALID_ARG, "reading: an empty path");
    return -1;
  }
  /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *status = aps_fail(APS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fd, &sb))
    *status = aps_fail(APS_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  else if (!S_ISREG(sb.st_mode))
    *status = aps_fail(APS_ERR_IO, "%s: cannot read it: it is %s (regular files only)", path, kind_of(sb.st_mode));
  if (*status != APS_OK) {
    close(fd);
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0)
    (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

aps_status aps_file_read(const char *path, uint64_t max_bytes, unsigned char **data, size_t *size) {
  *data = NULL;
  *size = 0;
  aps_status s;
  int fd = aps_file_open_read(path, &s);
  if (fd < 0)
    return s;
  struct stat sb;
  unsigned char *buf = NULL;
  uint64_t n = 0;
  if (fstat(fd, &sb))
    s = aps_fail(APS_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  else if ((n = (uint64_t)sb.st_size) > max_bytes || n > SIZE_MAX - 1)
    s = aps_fail(APS_ERR_FORMAT, "%s: %" PRIu64 " bytes is over the limit of %" PRIu64 " for this kind of file", path,
                 n, max_bytes);
  else if (!(buf = malloc((size_t)n + 1)))
    s = aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory reading %" PRIu64 " bytes", path, n);
  for (uint64_t got = 0; s == APS_OK && got < n;) {
    ssize_t r = read(fd, buf + got, (size_t)(n - got));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      s = aps_fail(APS_ERR_IO, "%s: read failed after %" PRIu64 " of %" PRIu64 " bytes: %s", path, got, n,
                   r < 0 ? strerror(errno) : "the file got shorter");
    got += r > 0 ? (uint64_t)r : 0;
  }
  close(fd);
  if (s != APS_OK) {
    free(buf);
    return s;
  }
  buf[n] = 0;
  *data = buf;
  *size = (size_t)n;
  return APS_OK;
}

int aps_file_make_dirs(const char *path) {
  char *buf = strdup(path);
  if (!buf)
    return errno = ENOMEM, -1;
  int rc = 0;
  for (char *p = buf + 1; *p && !rc; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0777) && errno != EEXIST)
        rc = -1;
      *p = '/';
    }
  if (!rc && mkdir(buf, 0777) && errno != EEXIST)
    rc = -1;
  int e = errno;
  free(buf);
  errno = e;
  return rc;
}
