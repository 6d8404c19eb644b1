/* aps_file_write_atomic: temporary file, fsync, rename (aps_file.h). */
#include "aps_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Makes a rename durable; some filesystems refuse to fsync a folder, which is harmless. */
static void sync_folder(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  free(dir);
}

aps_status aps_file_write_atomic(const char *path, const aps_file_part *parts, size_t count) {
  size_t tmp_size = strlen(path) + 32;
  char *tmp = malloc(tmp_size);
  if (!tmp)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
  snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());
  aps_status s = APS_OK;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    s = aps_fail(APS_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
  for (size_t i = 0; i < count && s == APS_OK; i++)
    if (write_all(fd, parts[i].data, parts[i].size))
      s = aps_fail(APS_ERR_IO, "%s: cannot write %s: %s", path, tmp, strerror(errno));
  if (s == APS_OK && fsync(fd))
    s = aps_fail(APS_ERR_IO, "%s: cannot write %s: %s", path, tmp, strerror(errno));
  if (fd >= 0 && close(fd) && s == APS_OK)
    s = aps_fail(APS_ERR_IO, "%s: cannot close %s: %s", path, tmp, strerror(errno));
  if (s == APS_OK && rename(tmp, path))
    s = aps_fail(APS_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
  if (s != APS_OK && fd >= 0)
    unlink(tmp);
  if (s == APS_OK)
    sync_folder(path);
  free(tmp);
  return s;
}

int aps_file_make_dirs(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return errno = ENAMETOOLONG, -1;
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0777) && errno != EEXIST)
        return -1;
      *p = '/';
    }
  return mkdir(buf, 0777) && errno != EEXIST ? -1 : 0;
}
