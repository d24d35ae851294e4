/* fsutil.c — whole-file reads, mkdir -p, atomic temp+rename writes. */
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/strutil.h"

tp_status tp_read_file(const char *path, char **data, size_t *len, tp_err *err) {
    *data = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return tp_errf(err, TP_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return tp_errf(err, TP_ENOMEM, "%s: out of memory reading file", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return tp_errf(err, TP_ENOMEM, "%s: out of memory reading file", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return tp_errf(err, TP_EIO, "%s: read error: %s", path, strerror(e));
    }
    fclose(f);
    buf[n] = 0;
    *data = buf;
    if (len) *len = n;
    return TP_OK;
}

tp_status tp_mkdir_p(const char *path, tp_err *err) {
    char buf[4096];
    if (tp_strlcpy(buf, path, sizeof buf) >= sizeof buf)
        return tp_errf(err, TP_EINVAL, "%s: path too long", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c != '/' && c != 0) continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return tp_errf(err, TP_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
        struct stat st;
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return tp_errf(err, TP_EIO, "%s: exists and is not a directory (creating %s)", buf,
                           path);
        *p = c;
        if (!c) break;
    }
    return TP_OK;
}

tp_status tp_fs_write_error(tp_err *err, const char *what, const char *path, int e) {
    if (e == ENOSPC || e == EDQUOT)
        return tp_errf(err, TP_EIO, "%s: disk full while %s (%s); free space and retry", path, what,
                       strerror(e));
    return tp_errf(err, TP_EIO, "%s: %s failed: %s", path, what, strerror(e));
}

tp_status tp_write_file_atomic(const char *path, const void *data, size_t len, tp_err *err) {
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= sizeof tmp)
        return tp_errf(err, TP_EINVAL, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return tp_fs_write_error(err, "creating a temporary file", path, errno);
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t k = write(fd, p, left);
        if (k < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return tp_fs_write_error(err, "writing", path, e);
        }
        p += k;
        left -= (size_t)k;
    }
    /* a full disk may only show up at fsync/close on some file systems */
    if (fsync(fd) != 0 && errno != EINVAL) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return tp_fs_write_error(err, "syncing", path, e);
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return tp_fs_write_error(err, "closing", path, e);
    }
    /* mkstemp creates 0600; give the file the usual 0666 & ~umask */
    mode_t um = umask(0);
    umask(um);
    chmod(tmp, 0666 & ~um);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return tp_fs_write_error(err, "renaming the temporary file into place", path, e);
    }
    return TP_OK;
}

int tp_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tp_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

tp_status tp_path_join(char *out, size_t cap, const char *dir, const char *name, tp_err *err) {
    size_t n = strlen(dir);
    const char *sep = (n && dir[n - 1] == '/') ? "" : "/";
    if (!n) sep = "";
    if ((size_t)snprintf(out, cap, "%s%s%s", dir, sep, name) >= cap)
        return tp_errf(err, TP_EINVAL, "%s/%s: path too long", dir, name);
    return TP_OK;
}
