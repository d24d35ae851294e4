/* safetensors_write.c — the safetensors writer: header JSON (jansson), 8-byte padding, data
 * written in order (from pointers or streamed from fill callbacks), temp file + rename so a
 * reader never sees a half-written file; disk full reported as such. */
#include "model/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/safetensors_dtype.h"
#include "util/fsutil.h"

#define ST_CHUNK (4u << 20)

typedef struct st_entry {
    char name[TP_ST_NAME_MAX];
    tp_dtype dtype;
    int ndim;
    int64_t shape[4];
    size_t nbytes;
    const void *data;
    tp_st_fill_fn fill;
    void *user;
} st_entry;

struct tp_st_writer {
    st_entry *e;
    int n, cap;
    json_t *meta;
};

tp_st_writer *tp_st_writer_new(void) {
    tp_st_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->meta = json_object();
    if (!w->meta) {
        free(w);
        return NULL;
    }
    return w;
}

void tp_st_writer_free(tp_st_writer *w) {
    if (!w) return;
    free(w->e);
    json_decref(w->meta);
    free(w);
}

static tp_status add_entry(tp_st_writer *w, const char *name, tp_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, tp_st_fill_fn fill, void *user,
                           tp_err *err) {
    if (!w) return tp_errf(err, TP_EINVAL, "safetensors writer: NULL writer");
    if (!name || !name[0] || strlen(name) >= TP_ST_NAME_MAX || strcmp(name, "__metadata__") == 0)
        return tp_errf(err, TP_EINVAL,
                       "safetensors writer: tensor name '%.64s' invalid (non-empty, < %d bytes, "
                       "not __metadata__)",
                       name ? name : "(null)", TP_ST_NAME_MAX);
    if (tp_st_dtype_size(dtype) == 0)
        return tp_errf(err, TP_EDTYPE, "safetensors writer: tensor '%s': invalid dtype %d", name,
                       (int)dtype);
    if (ndim < 0 || ndim > 4)
        return tp_errf(err, TP_ESHAPE, "safetensors writer: tensor '%s': ndim %d not in 0..4", name,
                       ndim);
    size_t nb = tp_st_dtype_size(dtype);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return tp_errf(err, TP_ESHAPE, "safetensors writer: tensor '%s': shape[%d] = %lld",
                           name, d, (long long)shape[d]);
        nb *= (size_t)shape[d];
    }
    if (nb && !data && !fill)
        return tp_errf(err, TP_EINVAL, "safetensors writer: tensor '%s': no data", name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return tp_errf(err, TP_EINVAL, "safetensors writer: tensor '%s' added twice", name);
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 32;
        st_entry *ne = realloc(w->e, (size_t)nc * sizeof *ne);
        if (!ne) return tp_errf(err, TP_ENOMEM, "safetensors writer: out of memory");
        w->e = ne;
        w->cap = nc;
    }
    st_entry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->nbytes = nb;
    e->data = data;
    e->fill = fill;
    e->user = user;
    return TP_OK;
}

tp_status tp_st_writer_add(tp_st_writer *w, const char *name, tp_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, tp_err *err) {
    return add_entry(w, name, dtype, ndim, shape, data, NULL, NULL, err);
}

tp_status tp_st_writer_add_fill(tp_st_writer *w, const char *name, tp_dtype dtype, int ndim,
                                const int64_t *shape, tp_st_fill_fn fill, void *user, tp_err *err) {
    if (!fill) return tp_errf(err, TP_EINVAL, "safetensors writer: tensor '%s': NULL fill", name);
    return add_entry(w, name, dtype, ndim, shape, NULL, fill, user, err);
}

tp_status tp_st_writer_meta(tp_st_writer *w, const char *key, const char *value, tp_err *err) {
    if (!w || !key || !value)
        return tp_errf(err, TP_EINVAL, "safetensors writer: metadata key and value required");
    if (json_object_set_new(w->meta, key, json_string(value)) != 0)
        return tp_errf(err, TP_EINVAL,
                       "safetensors writer: metadata '%s' is not valid UTF-8 (key or value)", key);
    return TP_OK;
}

static tp_status write_err(const char *path, int e, tp_err *err) {
    return tp_fs_write_error(err, "writing", path, e ? e : EIO);
}

static tp_status put(FILE *fp, const void *buf, size_t n, const char *path, tp_err *err) {
    if (n && fwrite(buf, 1, n, fp) != n) return write_err(path, errno, err);
    return TP_OK;
}

static char *build_header(const tp_st_writer *w, size_t *len, tp_err *err) {
    json_t *root = json_object();
    if (!root) return NULL;
    if (json_object_size(w->meta)) json_object_set(root, "__metadata__", w->meta);
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_entry *e = &w->e[i];
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) json_array_append_new(shape, json_integer(e->shape[d]));
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + e->nbytes)));
        json_t *t = json_object();
        json_object_set_new(t, "dtype", json_string(tp_st_dtype_str(e->dtype)));
        json_object_set_new(t, "shape", shape);
        json_object_set_new(t, "data_offsets", offs);
        if (json_object_set_new(root, e->name, t) != 0) {
            json_decref(root);
            tp_errf(err, TP_EINVAL, "safetensors writer: tensor name '%s' is not valid UTF-8",
                    e->name);
            return NULL;
        }
        off += e->nbytes;
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) {
        tp_errf(err, TP_ENOMEM, "safetensors writer: out of memory building the header");
        return NULL;
    }
    /* pad with spaces to a multiple of 8 so every tensor's data is 8-byte aligned */
    size_t n = strlen(s), padded = (n + 7) & ~(size_t)7;
    char *p = realloc(s, padded + 1);
    if (!p) {
        free(s);
        tp_errf(err, TP_ENOMEM, "safetensors writer: out of memory");
        return NULL;
    }
    memset(p + n, ' ', padded - n);
    p[padded] = 0;
    *len = padded;
    return p;
}

tp_status tp_st_writer_write(tp_st_writer *w, const char *path, tp_err *err) {
    if (!w || !path) return tp_errf(err, TP_EINVAL, "safetensors writer: NULL argument");
    size_t hlen = 0;
    char *hdr = build_header(w, &hlen, err);
    if (!hdr) return err ? err->code : TP_ENOMEM;
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= sizeof tmp) {
        free(hdr);
        return tp_errf(err, TP_EINVAL, "%s: path too long", path);
    }
    int fd = mkstemp(tmp);
    if (fd >= 0) { /* mkstemp makes 0600; weight files are shared like any other output */
        mode_t mask = umask(0);
        umask(mask);
        (void)fchmod(fd, 0666 & ~mask); /* on failure the file just stays 0600 */
    }
    FILE *fp = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!fp) {
        int e = errno;
        if (fd >= 0) close(fd), unlink(tmp);
        free(hdr);
        return tp_fs_write_error(err, "creating a temporary file", path, e);
    }
    tp_status s = TP_OK;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    s = put(fp, len8, 8, path, err);
    if (s == TP_OK) s = put(fp, hdr, hlen, path, err);
    free(hdr);
    void *chunk = NULL;
    for (int i = 0; i < w->n && s == TP_OK; i++) {
        const st_entry *e = &w->e[i];
        if (!e->fill) {
            s = put(fp, e->data, e->nbytes, path, err);
            continue;
        }
        if (!chunk && !(chunk = malloc(ST_CHUNK))) {
            s = tp_errf(err, TP_ENOMEM, "safetensors writer: out of memory");
            break;
        }
        /* chunks hold whole elements so fill callbacks never split a value */
        size_t step = ST_CHUNK - ST_CHUNK % tp_st_dtype_size(e->dtype);
        for (size_t off = 0; off < e->nbytes && s == TP_OK; off += step) {
            size_t nb = e->nbytes - off < step ? e->nbytes - off : step;
            s = e->fill(e->user, chunk, off, nb, err);
            if (s != TP_OK)
                tp_err_prefix(err, "%s: tensor '%s'", path, e->name);
            else
                s = put(fp, chunk, nb, path, err);
        }
    }
    free(chunk);
    if (s == TP_OK && fflush(fp) != 0) s = write_err(path, errno, err);
    if (s == TP_OK && fsync(fileno(fp)) != 0) s = write_err(path, errno, err);
    if (fclose(fp) != 0 && s == TP_OK) s = write_err(path, errno, err);
    if (s == TP_OK && rename(tmp, path) != 0)
        s = tp_errf(err, TP_EIO, "%s: cannot rename temp file into place: %s", path,
                    strerror(errno));
    if (s != TP_OK) unlink(tmp);
    return s;
}
