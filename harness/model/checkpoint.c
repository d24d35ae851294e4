/* checkpoint.c — save/load of trainable parameters + optimiser state + an opaque state blob +
 * metadata through the safetensors reader and writer; every mismatch named by file and tensor. */
#include "model/checkpoint.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"
#include "model/safetensors_dtype.h"
#include "util/sha256.h"

#define OPTIM_PREFIX "optim."

typedef struct ckpt_entry {
    char name[TP_ST_NAME_MAX];
    tp_tensor *t;
} ckpt_entry;

/* The full list of (file name, tensor): params by name, optimiser state under optim.<name>. */
static tp_status collect(const char *path, const tp_params *params, const tp_ckpt_state *optim,
                         ckpt_entry **out, int *n_out, tp_err *err) {
    int n = (params ? params->n : 0) + (optim ? optim->n : 0);
    ckpt_entry *e = calloc(n ? (size_t)n : 1, sizeof *e);
    if (!e) return tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    int k = 0;
    for (int pass = 0; pass < 2; pass++) {
        int cnt = pass == 0 ? (params ? params->n : 0) : (optim ? optim->n : 0);
        for (int i = 0; i < cnt; i++) {
            tp_tensor *t = pass == 0 ? params->p[i] : optim->t[i];
            const char *what = pass == 0 ? "parameter" : "optimiser tensor";
            if (!t || !t->name[0]) {
                free(e);
                return tp_errf(err, TP_EINVAL,
                               "%s: %s %d has no name (every tensor saved in a "
                               "checkpoint needs one)",
                               path, what, i);
            }
            if (pass == 0 && strncmp(t->name, OPTIM_PREFIX, strlen(OPTIM_PREFIX)) == 0) {
                free(e);
                return tp_errf(err, TP_EINVAL,
                               "%s: parameter name '%s' uses the reserved prefix '" OPTIM_PREFIX
                               "'",
                               path, t->name);
            }
            /* bf16 (pure-bf16 training's params and moments) is stored widened to f32, exactly,
             * and loads back rounded to the same bf16 values */
            if (t->dtype != TP_F32 && t->dtype != TP_BF16) {
                free(e);
                return tp_errf(err, TP_EDTYPE, "%s: %s '%s' is %s; checkpoints hold f32 (or bf16)",
                               path, what, t->name,
                               tp_st_dtype_str(t->dtype) ? tp_st_dtype_str(t->dtype)
                                                         : "an unknown dtype");
            }
            if (strcmp(t->name, TP_CKPT_BLOB_TENSOR) == 0) {
                free(e);
                return tp_errf(err, TP_EINVAL, "%s: %s name '%s' is reserved for the bridge state",
                               path, what, t->name);
            }
            snprintf(e[k].name, sizeof e[k].name, "%s%s", pass ? OPTIM_PREFIX : "", t->name);
            e[k].t = t;
            for (int j = 0; j < k; j++)
                if (strcmp(e[j].name, e[k].name) == 0) {
                    free(e);
                    return tp_errf(err, TP_EINVAL, "%s: two %ss are named '%s'", path, what,
                                   t->name);
                }
            k++;
        }
    }
    *out = e;
    *n_out = k;
    return TP_OK;
}

tp_status tp_checkpoint_save(const char *path, const tp_params *params, const tp_ckpt_state *optim,
                             const char *meta_json, tp_err *err) {
    return tp_checkpoint_save_blob(path, params, optim, NULL, meta_json, err);
}

tp_status tp_checkpoint_load(const char *path, tp_params *params, tp_ckpt_state *optim,
                             char **meta_json, tp_err *err) {
    return tp_checkpoint_load_blob(path, params, optim, NULL, meta_json, err);
}

tp_status tp_checkpoint_save_blob(const char *path, const tp_params *params,
                                  const tp_ckpt_state *optim, const tp_ckpt_blob *blob,
                                  const char *meta_json, tp_err *err) {
    if (!path) return tp_errf(err, TP_EINVAL, "checkpoint: no path");
    json_t *meta = NULL;
    if (meta_json) {
        json_error_t je;
        meta = json_loads(meta_json, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(meta)) {
            json_decref(meta);
            return tp_errf(err, TP_EINVAL,
                           "%s: checkpoint metadata must be a JSON object (%s at column %d)", path,
                           meta ? "not an object" : je.text, je.column);
        }
    }
    ckpt_entry *e = NULL;
    int n = 0;
    tp_status s = collect(path, params, optim, &e, &n, err);
    if (s != TP_OK) {
        json_decref(meta);
        return s;
    }
    float **bufs = calloc(n ? (size_t)n : 1, sizeof *bufs);
    tp_st_writer *w = tp_st_writer_new();
    if (!bufs || !w) s = tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < n && s == TP_OK; i++) {
        /* a host f32 copy works for any layout and device */
        size_t numel = (size_t)tp_numel(e[i].t);
        bufs[i] = malloc(numel ? numel * sizeof(float) : 1);
        if (!bufs[i]) {
            s = tp_errf(err, TP_ENOMEM, "%s: out of memory for '%s'", path, e[i].name);
            break;
        }
        s = tp_to_f32_buffer(e[i].t, bufs[i], err);
        if (s == TP_OK)
            s = tp_st_writer_add(w, e[i].name, TP_F32, e[i].t->ndim, e[i].t->shape, bufs[i], err);
        else
            tp_err_prefix(err, "%s: tensor '%s'", path, e[i].name);
    }
    int32_t *words = NULL;
    if (s == TP_OK && blob && blob->n > 0) {
        size_t nw = (blob->n + 3) / 4;
        words = calloc(nw, sizeof *words);
        if (!words) s = tp_errf(err, TP_ENOMEM, "%s: out of memory for the bridge state", path);
        if (s == TP_OK) {
            memcpy(words, blob->data, blob->n);
            int64_t shape[1] = {(int64_t)nw};
            s = tp_st_writer_add(w, TP_CKPT_BLOB_TENSOR, TP_I32, 1, shape, words, err);
        }
        char num[32], hex[65];
        snprintf(num, sizeof num, "%zu", blob->n);
        tp_sha256_hex(blob->data, blob->n, hex);
        if (s == TP_OK) s = tp_st_writer_meta(w, "bridge_state_bytes", num, err);
        if (s == TP_OK) s = tp_st_writer_meta(w, "bridge_state_sha256", hex, err);
    }
    if (s == TP_OK) s = tp_st_writer_meta(w, "format", "pt", err);
    if (s == TP_OK) s = tp_st_writer_meta(w, "telepathy_checkpoint", "1", err);
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (s != TP_OK) break;
        if (strcmp(k, "format") == 0 || strcmp(k, "telepathy_checkpoint") == 0 ||
            strncmp(k, "bridge_state_", 13) == 0) {
            s = tp_errf(err, TP_EINVAL, "%s: metadata key '%s' is reserved", path, k);
            break;
        }
        if (json_is_string(v)) {
            s = tp_st_writer_meta(w, k, json_string_value(v), err);
        } else {
            char *txt = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
            s = txt ? tp_st_writer_meta(w, k, txt, err)
                    : tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
            free(txt);
        }
    }
    if (s == TP_OK) s = tp_st_writer_write(w, path, err);
    tp_st_writer_free(w);
    free(words);
    for (int i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    free(e);
    json_decref(meta);
    return s;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* The blob of m checked against its metadata, copied into a malloc'd buffer. */
static tp_status read_blob(const char *path, const tp_st_model *m, tp_ckpt_blob *blob,
                           tp_err *err) {
    blob->data = NULL;
    blob->n = 0;
    blob->present = 0;
    const tp_st_tensor *t = tp_st_find(m, TP_CKPT_BLOB_TENSOR);
    const char *bytes = tp_st_metadata(m, "bridge_state_bytes");
    const char *sha = tp_st_metadata(m, "bridge_state_sha256");
    if (!t && !bytes && !sha) return TP_OK;
    if (!t || !bytes || !sha)
        return tp_errf(err, TP_EFORMAT,
                       "%s: incomplete bridge state (tensor '" TP_CKPT_BLOB_TENSOR
                       "' %s, metadata bridge_state_bytes %s, bridge_state_sha256 %s); the "
                       "checkpoint is damaged",
                       path, t ? "present" : "missing", bytes ? "present" : "missing",
                       sha ? "present" : "missing");
    char *end = NULL;
    unsigned long long n = strtoull(bytes, &end, 10);
    if (!*bytes || *end || n == 0)
        return tp_errf(err, TP_EFORMAT,
                       "%s: metadata bridge_state_bytes = '%.40s'; expected a positive byte count",
                       path, bytes);
    if (t->dtype != TP_I32 || t->ndim != 1 || (unsigned long long)t->shape[0] != (n + 3) / 4)
        return tp_errf(err, TP_EFORMAT,
                       "%s: tensor '" TP_CKPT_BLOB_TENSOR "' is not I32 [%llu] as "
                       "bridge_state_bytes = %llu requires; the checkpoint is damaged",
                       path, (n + 3) / 4, n);
    char hex[65];
    tp_sha256_hex(t->data, (size_t)n, hex);
    if (strcmp(hex, sha) != 0)
        return tp_errf(err, TP_EFORMAT,
                       "%s: the bridge state's sha256 is %.16s..., the metadata says %.16s...; "
                       "the checkpoint is corrupted",
                       path, hex, sha);
    blob->data = malloc((size_t)n);
    if (!blob->data) return tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    memcpy(blob->data, t->data, (size_t)n);
    blob->n = (size_t)n;
    blob->present = 1;
    return TP_OK;
}

tp_status tp_checkpoint_load_blob(const char *path, tp_params *params, tp_ckpt_state *optim,
                                  tp_ckpt_blob *blob, char **meta_json, tp_err *err) {
    if (meta_json) *meta_json = NULL;
    if (blob) memset(blob, 0, sizeof *blob);
    tp_st_model *m = NULL;
    TP_TRY(tp_st_open(&m, path, err));
    ckpt_entry *e = NULL;
    int n = 0;
    tp_status s = collect(path, params, optim, &e, &n, err);
    if (s == TP_OK && blob) s = read_blob(path, m, blob, err);
    /* check everything before writing anything, so a failed load leaves params untouched */
    for (int i = 0; i < n && s == TP_OK; i++) {
        const tp_st_tensor *t = tp_st_find(m, e[i].name);
        int is_opt = strncmp(e[i].name, OPTIM_PREFIX, strlen(OPTIM_PREFIX)) == 0;
        if (!t) {
            s = tp_errf(err, TP_EFORMAT,
                        is_opt ? "%s: no optimiser tensor '%s' (checkpoint saved without "
                                 "optimiser state, or by a different optimiser)"
                               : "%s: no tensor '%s' (checkpoint of a different plugin or "
                                 "options?)",
                        path, e[i].name);
            break;
        }
        int same = t->ndim == e[i].t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == e[i].t->shape[d];
        if (!same) {
            char a[96], b[96];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, e[i].t->ndim, e[i].t->shape);
            s = tp_errf(err, TP_ESHAPE,
                        "%s: tensor '%s' has shape %s in the checkpoint but %s here (different "
                        "options?)",
                        path, e[i].name, a, b);
            break;
        }
        if (t->dtype == TP_I32) {
            s = tp_errf(err, TP_EDTYPE, "%s: tensor '%s' is I32; expected a float tensor", path,
                        e[i].name);
            break;
        }
    }
    for (int i = 0; i < tp_st_count(m) && s == TP_OK; i++) {
        const char *name = tp_st_at(m, i)->name;
        int is_opt = strncmp(name, OPTIM_PREFIX, strlen(OPTIM_PREFIX)) == 0;
        if (is_opt && !optim) continue;
        if (strcmp(name, TP_CKPT_BLOB_TENSOR) == 0) continue; /* read_blob's, or ignored */
        int wanted = 0;
        for (int j = 0; j < n && !wanted; j++) wanted = strcmp(e[j].name, name) == 0;
        if (!wanted)
            s = tp_errf(err, TP_EFORMAT,
                        "%s: unexpected tensor '%s' (not a parameter of this plugin instance; "
                        "checkpoint of a different plugin or options?)",
                        path, name);
    }
    for (int i = 0; i < n && s == TP_OK; i++) {
        const tp_st_tensor *t = tp_st_find(m, e[i].name);
        size_t numel = t->nbytes / tp_st_dtype_size(t->dtype);
        float *tmp = NULL;
        const float *src = t->data;
        if (t->dtype != TP_F32) {
            tmp = malloc(numel ? numel * sizeof *tmp : 1);
            if (!tmp) {
                s = tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
                break;
            }
            s = tp_st_read_f32(t, tmp, numel, err);
            src = tmp;
        }
        tp_tensor *view = NULL;
        if (s == TP_OK) {
            view = tp_tensor_wrap(TP_F32, TP_CPU, t->ndim, t->shape, (void *)src, err);
            if (!view) s = err && err->code ? err->code : TP_ENOMEM;
        }
        if (s == TP_OK) s = tp_copy_into(e[i].t, view, err);
        if (s != TP_OK) tp_err_prefix(err, "%s: tensor '%s'", path, e[i].name);
        if (view) tp_tensor_free(view);
        free(tmp);
    }
    if (s == TP_OK && meta_json) {
        *meta_json = tp_st_metadata_json(m);
        if (!*meta_json) s = tp_errf(err, TP_ENOMEM, "%s: out of memory", path);
    }
    if (s != TP_OK && blob) {
        free(blob->data);
        memset(blob, 0, sizeof *blob);
    }
    free(e);
    tp_st_close(m);
    return s;
}
