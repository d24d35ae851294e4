/* safetensors.c — the safetensors reader: mmap, header validation, sharded index, lookup.
 * The writer lives in safetensors_write.c. */
#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/safetensors_dtype.h"

/* A header larger than this is certainly corrupt (HF's own limit is 100 MB). */
#define ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct st_file {
    char *path;
    void *map;
    size_t size;
    json_t *meta; /* __metadata__ object or NULL */
} st_file;

struct tp_st_model {
    st_file *files;
    int nfiles;
    tp_st_tensor *tensors; /* sorted by name */
    int ntensors;
    json_t *index_meta; /* "metadata" of the index, or NULL */
    void **copies;      /* aligned private copies of misaligned tensors */
    int ncopies;
};

static void st_file_close(st_file *f) {
    if (f->map && f->size) munmap(f->map, f->size);
    json_decref(f->meta);
    free(f->path);
    memset(f, 0, sizeof *f);
}

void tp_st_close(tp_st_model *m) {
    if (!m) return;
    for (int i = 0; i < m->nfiles; i++) st_file_close(&m->files[i]);
    for (int i = 0; i < m->ncopies; i++) free(m->copies[i]);
    free(m->copies);
    free(m->files);
    free(m->tensors);
    json_decref(m->index_meta);
    free(m);
}

static tp_status map_file(st_file *f, const char *path, tp_err *err) {
    f->path = strdup(path);
    if (!f->path) return tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return tp_errf(err, TP_EIO, "%s: cannot open safetensors file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tp_errf(err, TP_EIO, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        close(fd);
        f->size = 0;
        return tp_errf(err, TP_EFORMAT,
                       "%s: truncated safetensors file (%zu bytes; at least 8 expected for the "
                       "header length)",
                       path, (size_t)st.st_size);
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        f->size = 0;
        return tp_errf(err, TP_EIO, "%s: mmap failed: %s", path, strerror(errno));
    }
    return TP_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const tp_st_tensor *)a)->name, ((const tp_st_tensor *)b)->name);
}

typedef struct span {
    uint64_t begin, end;
    const char *name;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

static int json_is_nonneg_int(const json_t *v) {
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* Parses and validates one file's header, appending its tensors to *ts (grown as needed). */
static tp_status parse_header(st_file *f, tp_st_tensor **ts, int *n, int *cap, tp_err *err) {
    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i]; /* little-endian u64 */
    if (hlen < 2 || hlen > ST_MAX_HEADER)
        return tp_errf(err, TP_EFORMAT,
                       "%s: header length %llu is not sane (expected 2..%u); not a safetensors "
                       "file or corrupt",
                       f->path, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return tp_errf(err, TP_EFORMAT,
                       "%s: truncated: header claims %llu bytes but the file has only %zu after "
                       "the length field",
                       f->path, (unsigned long long)hlen, f->size - 8);
    const char *hdr = (const char *)p + 8;
    if (hdr[0] != '{')
        return tp_errf(err, TP_EFORMAT, "%s: header does not start with '{' (not JSON)", f->path);
    json_error_t je;
    json_t *root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return tp_errf(err, TP_EFORMAT, "%s: header JSON malformed at byte %d: %s", f->path,
                       je.position, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return tp_errf(err, TP_EFORMAT, "%s: header must be a JSON object", f->path);
    }
    const uint64_t data_len = f->size - 8 - hlen;
    const unsigned char *data = p + 8 + hlen;
    size_t nobj = json_object_size(root);
    span *spans = calloc(nobj ? nobj : 1, sizeof *spans);
    if (!spans) {
        json_decref(root);
        return tp_errf(err, TP_ENOMEM, "%s: out of memory", f->path);
    }
    int nspans = 0;
    tp_status s = TP_OK;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                s = tp_errf(err, TP_EFORMAT, "%s: __metadata__ must be an object of strings",
                            f->path);
                goto out;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    s = tp_errf(err, TP_EFORMAT,
                                "%s: __metadata__ entry '%s' must be a string (safetensors "
                                "metadata is string to string)",
                                f->path, mk);
                    goto out;
                }
            }
            f->meta = json_incref(val);
            continue;
        }
        if (strlen(key) >= TP_ST_NAME_MAX) {
            s = tp_errf(err, TP_EFORMAT, "%s: tensor name '%.64s...' longer than %d bytes", f->path,
                        key, TP_ST_NAME_MAX - 1);
            goto out;
        }
        if (!json_is_object(val)) {
            s = tp_errf(err, TP_EFORMAT, "%s: tensor '%s': entry must be an object", f->path, key);
            goto out;
        }
        json_t *jd = json_object_get(val, "dtype"), *jsh = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        if (!json_is_string(jd)) {
            s = tp_errf(err, TP_EFORMAT, "%s: tensor '%s': missing string field 'dtype'", f->path,
                        key);
            goto out;
        }
        tp_dtype dt;
        s = tp_st_dtype_parse(json_string_value(jd), &dt, err);
        if (s != TP_OK) {
            tp_err_prefix(err, "%s: tensor '%s'", f->path, key);
            goto out;
        }
        if (!json_is_array(jsh)) {
            s = tp_errf(err, TP_EFORMAT, "%s: tensor '%s': missing array field 'shape'", f->path,
                        key);
            goto out;
        }
        size_t ndim = json_array_size(jsh);
        if (ndim > 4) {
            s = tp_errf(err, TP_EUNSUP,
                        "%s: tensor '%s': %zu dimensions; the harness supports at most 4", f->path,
                        key, ndim);
            goto out;
        }
        if (!json_is_array(jo) || json_array_size(jo) != 2 ||
            !json_is_nonneg_int(json_array_get(jo, 0)) ||
            !json_is_nonneg_int(json_array_get(jo, 1))) {
            s = tp_errf(err, TP_EFORMAT,
                        "%s: tensor '%s': 'data_offsets' must be [begin, end] non-negative "
                        "integers",
                        f->path, key);
            goto out;
        }
        uint64_t begin = (uint64_t)json_integer_value(json_array_get(jo, 0));
        uint64_t end = (uint64_t)json_integer_value(json_array_get(jo, 1));
        if (begin > end || end > data_len) {
            s = tp_errf(err, TP_EFORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] outside the data region of "
                        "%llu bytes (truncated or corrupt file)",
                        f->path, key, (unsigned long long)begin, (unsigned long long)end,
                        (unsigned long long)data_len);
            goto out;
        }
        tp_st_tensor t;
        memset(&t, 0, sizeof t);
        snprintf(t.name, sizeof t.name, "%s", key);
        t.dtype = dt;
        t.ndim = (int)ndim;
        uint64_t numel = 1;
        for (size_t d = 0; d < ndim; d++) {
            json_t *e = json_array_get(jsh, d);
            if (!json_is_nonneg_int(e)) {
                s = tp_errf(err, TP_EFORMAT,
                            "%s: tensor '%s': shape[%zu] must be a non-negative integer", f->path,
                            key, d);
                goto out;
            }
            uint64_t v = (uint64_t)json_integer_value(e);
            if (v && numel > UINT64_MAX / v / 8) {
                s = tp_errf(err, TP_EFORMAT, "%s: tensor '%s': shape overflows", f->path, key);
                goto out;
            }
            numel *= v;
            t.shape[d] = (int64_t)v;
        }
        uint64_t want = numel * tp_st_dtype_size(dt);
        if (want != end - begin) {
            s = tp_errf(err, TP_EFORMAT,
                        "%s: tensor '%s': shape x dtype size = %llu bytes but data_offsets span "
                        "%llu bytes",
                        f->path, key, (unsigned long long)want, (unsigned long long)(end - begin));
            goto out;
        }
        t.nbytes = (size_t)want;
        t.data = data + begin;
        t.file = f->path;
        if (*n == *cap) {
            int nc = *cap ? *cap * 2 : 64;
            tp_st_tensor *nt = realloc(*ts, (size_t)nc * sizeof *nt);
            if (!nt) {
                s = tp_errf(err, TP_ENOMEM, "%s: out of memory", f->path);
                goto out;
            }
            *ts = nt;
            *cap = nc;
        }
        (*ts)[(*n)++] = t;
        spans[nspans].begin = begin;
        spans[nspans].end = end;
        spans[nspans].name = key;
        nspans++;
    }
    /* The reference implementation requires the tensors to tile the data region exactly:
     * sorted by offset, each starts where the previous ended, and the last ends at the end. */
    qsort(spans, (size_t)nspans, sizeof *spans, cmp_span);
    uint64_t at = 0;
    for (int i = 0; i < nspans; i++) {
        if (spans[i].begin < at) {
            s = tp_errf(err, TP_EFORMAT,
                        "%s: tensor '%s' (bytes %llu..%llu) overlaps tensor '%s' (ends at %llu)",
                        f->path, spans[i].name, (unsigned long long)spans[i].begin,
                        (unsigned long long)spans[i].end, spans[i - 1].name,
                        (unsigned long long)at);
            goto out;
        }
        if (spans[i].begin > at) {
            s = tp_errf(err, TP_EFORMAT,
                        "%s: tensor '%s' starts at byte %llu, leaving a gap after byte %llu "
                        "(offsets must be contiguous)",
                        f->path, spans[i].name, (unsigned long long)spans[i].begin,
                        (unsigned long long)at);
            goto out;
        }
        at = spans[i].end;
    }
    if (at != data_len) {
        s = tp_errf(err, TP_EFORMAT,
                    "%s: tensors cover %llu bytes but the data region holds %llu (trailing bytes "
                    "or a wrong header)",
                    f->path, (unsigned long long)at, (unsigned long long)data_len);
        goto out;
    }
out:
    free(spans);
    json_decref(root);
    return s;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}
static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static tp_status add_file(tp_st_model *m, const char *path, tp_st_tensor **ts, int *n, int *cap,
                          tp_err *err) {
    st_file *nf = realloc(m->files, (size_t)(m->nfiles + 1) * sizeof *nf);
    if (!nf) return tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    m->files = nf;
    st_file *f = &m->files[m->nfiles++];
    memset(f, 0, sizeof *f);
    TP_TRY(map_file(f, path, err));
    return parse_header(f, ts, n, cap, err);
}

/* Sharded set: index.json {"metadata": {...}, "weight_map": {tensor: shard file}}. Every tensor
 * of the index must be in its shard, and every tensor of a shard must be in the index. */
static tp_status open_index(tp_st_model *m, const char *index_path, tp_st_tensor **ts, int *n,
                            int *cap, tp_err *err) {
    json_error_t je;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (!is_file(index_path))
            return tp_errf(err, TP_EIO, "%s: cannot read index file", index_path);
        return tp_errf(err, TP_EFORMAT, "%s:%d: malformed JSON: %s", index_path, je.line, je.text);
    }
    tp_status s = TP_OK;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(root) || !json_is_object(wm)) {
        s = tp_errf(err, TP_EFORMAT, "%s: missing object field 'weight_map'", index_path);
        goto out;
    }
    json_t *meta = json_object_get(root, "metadata");
    if (meta && !json_is_null(meta)) {
        if (!json_is_object(meta)) {
            s = tp_errf(err, TP_EFORMAT, "%s: 'metadata' must be an object", index_path);
            goto out;
        }
        m->index_meta = json_incref(meta);
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = 0;
    else
        dir[0] = 0;
    /* open each distinct shard once, in first-seen order */
    const char *tname;
    json_t *shard;
    json_object_foreach(wm, tname, shard) {
        if (!json_is_string(shard)) {
            s = tp_errf(err, TP_EFORMAT, "%s: weight_map['%s'] must be a file name string",
                        index_path, tname);
            goto out;
        }
        const char *sn = json_string_value(shard);
        if (!sn[0] || strchr(sn, '/') || strcmp(sn, "..") == 0) {
            s = tp_errf(err, TP_EFORMAT,
                        "%s: weight_map['%s'] = '%s': shard must be a plain file name in the "
                        "index's directory",
                        index_path, tname, sn);
            goto out;
        }
        char path[4352];
        snprintf(path, sizeof path, "%s%s", dir, sn);
        int seen = 0;
        for (int i = 0; i < m->nfiles; i++)
            if (strcmp(m->files[i].path, path) == 0) seen = 1;
        if (seen) continue;
        if (!is_file(path)) {
            s = tp_errf(err, TP_EIO,
                        "%s: shard '%s' (holding tensor '%s') is missing; expected it at %s",
                        index_path, sn, tname, path);
            goto out;
        }
        s = add_file(m, path, ts, n, cap, err);
        if (s != TP_OK) goto out;
    }
    /* cross-check: index -> shard */
    json_object_foreach(wm, tname, shard) {
        char path[4352];
        snprintf(path, sizeof path, "%s%s", dir, json_string_value(shard));
        int found = 0;
        for (int i = 0; i < *n && !found; i++)
            if (strcmp((*ts)[i].name, tname) == 0) {
                found = 1;
                if (strcmp((*ts)[i].file, path) != 0) {
                    s = tp_errf(err, TP_EFORMAT,
                                "%s: tensor '%s' is listed in shard '%s' but found in %s",
                                index_path, tname, json_string_value(shard), (*ts)[i].file);
                    goto out;
                }
            }
        if (!found) {
            s = tp_errf(err, TP_EFORMAT,
                        "%s: tensor '%s' is listed in the index but not present in shard %s",
                        index_path, tname, path);
            goto out;
        }
    }
    /* shard -> index (also catches a tensor present in two shards) */
    for (int i = 0; i < *n; i++) {
        json_t *sv = json_object_get(wm, (*ts)[i].name);
        if (!sv) {
            s = tp_errf(err, TP_EFORMAT,
                        "%s: tensor '%s' is in shard %s but not listed in the index's weight_map",
                        index_path, (*ts)[i].name, (*ts)[i].file);
            goto out;
        }
    }
out:
    json_decref(root);
    return s;
}

/* mmap gives page alignment, so a tensor is misaligned only when its file's header was not
 * padded; such tensors get a private aligned copy so readers may cast the pointer. */
static tp_status align_tensors(tp_st_model *m, tp_err *err) {
    for (int i = 0; i < m->ntensors; i++) {
        tp_st_tensor *t = &m->tensors[i];
        size_t a = tp_st_dtype_size(t->dtype);
        if (((uintptr_t)t->data % a) == 0 || t->nbytes == 0) continue;
        void **nc = realloc(m->copies, (size_t)(m->ncopies + 1) * sizeof *nc);
        if (!nc) return tp_errf(err, TP_ENOMEM, "out of memory");
        m->copies = nc;
        void *buf = malloc(t->nbytes);
        if (!buf)
            return tp_errf(err, TP_ENOMEM, "%s: tensor '%s': out of memory", t->file, t->name);
        memcpy(buf, t->data, t->nbytes);
        m->copies[m->ncopies++] = buf;
        t->data = buf;
    }
    return TP_OK;
}

tp_status tp_st_open(tp_st_model **out, const char *path_or_dir, tp_err *err) {
    *out = NULL;
    tp_st_model *m = calloc(1, sizeof *m);
    if (!m) return tp_errf(err, TP_ENOMEM, "out of memory");
    tp_st_tensor *ts = NULL;
    int n = 0, cap = 0;
    tp_status s;
    char path[4352];
    if (is_dir(path_or_dir)) {
        snprintf(path, sizeof path, "%s/model.safetensors", path_or_dir);
        if (is_file(path)) {
            s = add_file(m, path, &ts, &n, &cap, err);
        } else {
            snprintf(path, sizeof path, "%s/model.safetensors.index.json", path_or_dir);
            if (is_file(path))
                s = open_index(m, path, &ts, &n, &cap, err);
            else
                s = tp_errf(err, TP_EIO,
                            "%s: no model.safetensors or model.safetensors.index.json in this "
                            "directory",
                            path_or_dir);
        }
    } else if (ends_with(path_or_dir, ".json")) {
        s = open_index(m, path_or_dir, &ts, &n, &cap, err);
    } else if (!is_file(path_or_dir)) {
        s = tp_errf(err, TP_EIO, "%s: no such safetensors file or model directory", path_or_dir);
    } else {
        s = add_file(m, path_or_dir, &ts, &n, &cap, err);
    }
    m->tensors = ts;
    m->ntensors = n;
    if (s == TP_OK) {
        qsort(m->tensors, (size_t)n, sizeof *m->tensors, cmp_tensor_name);
        for (int i = 1; i < n; i++)
            if (strcmp(m->tensors[i].name, m->tensors[i - 1].name) == 0) {
                s = tp_errf(err, TP_EFORMAT, "tensor '%s' appears in both %s and %s",
                            m->tensors[i].name, m->tensors[i - 1].file, m->tensors[i].file);
                break;
            }
    }
    if (s == TP_OK) s = align_tensors(m, err);
    if (s != TP_OK) {
        tp_st_close(m);
        return s;
    }
    *out = m;
    return TP_OK;
}

const tp_st_tensor *tp_st_find(const tp_st_model *m, const char *name) {
    if (!m || !name || strlen(name) >= TP_ST_NAME_MAX) return NULL;
    tp_st_tensor key;
    snprintf(key.name, sizeof key.name, "%s", name);
    return bsearch(&key, m->tensors, (size_t)m->ntensors, sizeof key, cmp_tensor_name);
}

int tp_st_count(const tp_st_model *m) {
    return m ? m->ntensors : 0;
}

const tp_st_tensor *tp_st_at(const tp_st_model *m, int i) {
    if (!m || i < 0 || i >= m->ntensors) return NULL;
    return &m->tensors[i];
}

const char *tp_st_metadata(const tp_st_model *m, const char *key) {
    if (!m) return NULL;
    json_t *v = m->index_meta ? json_object_get(m->index_meta, key) : NULL;
    if (json_is_string(v)) return json_string_value(v);
    for (int i = 0; i < m->nfiles; i++) {
        v = m->files[i].meta ? json_object_get(m->files[i].meta, key) : NULL;
        if (json_is_string(v)) return json_string_value(v);
    }
    return NULL;
}

char *tp_st_metadata_json(const tp_st_model *m) {
    json_t *o = json_object();
    if (!o) return NULL;
    const json_t *srcs[1 + 64];
    int ns = 0;
    if (m && m->index_meta) srcs[ns++] = m->index_meta;
    for (int i = 0; m && i < m->nfiles && ns < 65; i++)
        if (m->files[i].meta) srcs[ns++] = m->files[i].meta;
    for (int i = 0; i < ns; i++) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)srcs[i], k, v) {
            if (!json_object_get(o, k)) json_object_set(o, k, v);
        }
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

tp_status tp_st_read_f32(const tp_st_tensor *t, float *dst, size_t n, tp_err *err) {
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
    if (numel != n)
        return tp_errf(err, TP_ESHAPE, "%s: tensor '%s' has %zu elements, expected %zu", t->file,
                       t->name, numel, n);
    return tp_st_convert_to_f32(t->dtype, t->data, dst, n, t->file, t->name, err);
}
