/* fsutil.h — file-system helpers: read a whole file, mkdir -p, and atomic writes (temp file in
 * the same directory, fsync, rename) that report a full disk as such. */
#ifndef TP_UTIL_FSUTIL_H
#define TP_UTIL_FSUTIL_H

#include <stddef.h>

#include "telepathy/status.h"

/* Reads path into a malloc'd buffer with a NUL after the last byte (so text can be used as a
 * C string); *len gets the byte count (may be NULL). */
tp_status tp_read_file(const char *path, char **data, size_t *len, tp_err *err);
/* Creates path and its missing parents (mode 0777 & ~umask). Existing directories are fine; an
 * existing non-directory is an error. */
tp_status tp_mkdir_p(const char *path, tp_err *err);
/* Writes data to path atomically: readers see the old file or the new one, never a torn one.
 * ENOSPC / EDQUOT are reported as "disk full" naming the path. */
tp_status tp_write_file_atomic(const char *path, const void *data, size_t len, tp_err *err);
/* The error the writers report for errno e (ENOSPC/EDQUOT become "disk full"); exposed so the
 * mapping is testable without filling a disk. */
tp_status tp_fs_write_error(tp_err *err, const char *what, const char *path, int e);
int tp_file_exists(const char *path);
int tp_dir_exists(const char *path);
/* dir + "/" + name into out (no double slash); error if it does not fit. */
tp_status tp_path_join(char *out, size_t cap, const char *dir, const char *name, tp_err *err);

#endif
