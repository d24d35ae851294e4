/* safetensors.h — reading and writing the safetensors format (Hugging Face's weight files).
 *
 * Reader: one file or a sharded set (model.safetensors.index.json), memory-mapped read-only.
 * Every header is validated before any tensor is exposed: header length sane, JSON well-formed,
 * dtype known (F32/BF16/F16/I32; other safetensors dtypes are a clear "unsupported" error),
 * offsets inside the data region, contiguous and non-overlapping (as the reference Rust
 * implementation requires), shape x dtype size = byte length. Every error names the file and,
 * where one is involved, the tensor. A corrupt file is an error, never a crash or an
 * out-of-bounds read.
 *
 * Writer: collects tensors (pointers, or fill callbacks for streaming large tensors) and writes
 * one file atomically (temp file + rename), with the header padded to 8 bytes so every tensor's
 * data is aligned as in files written by the Python library.
 */
#ifndef TP_MODEL_SAFETENSORS_H
#define TP_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "telepathy/status.h"
#include "telepathy/tensor.h"

#define TP_ST_NAME_MAX 256

typedef struct tp_st_tensor {
    char name[TP_ST_NAME_MAX];
    tp_dtype dtype;
    int ndim; /* 0 (scalar) .. 4 */
    int64_t shape[4];
    const void *data; /* read-only mapping; aligned to the dtype size */
    size_t nbytes;
    const char *file; /* path of the file holding it (owned by the model) */
} tp_st_tensor;

/* One file or a sharded set, mmap'd read-only; tensors stay valid until tp_st_close. */
typedef struct tp_st_model tp_st_model;

/* path_or_dir: a .safetensors file, a model.safetensors.index.json, or a directory holding
 * model.safetensors (preferred) or model.safetensors.index.json. */
tp_status tp_st_open(tp_st_model **out, const char *path_or_dir, tp_err *err);
/* NULL when absent. */
const tp_st_tensor *tp_st_find(const tp_st_model *m, const char *name);
/* Tensors in name order. */
int tp_st_count(const tp_st_model *m);
const tp_st_tensor *tp_st_at(const tp_st_model *m, int i);
/* A string from __metadata__ (sharded: the index's "metadata" first, then each shard's);
 * NULL when absent. */
const char *tp_st_metadata(const tp_st_model *m, const char *key);
/* All metadata entries as a malloc'd compact JSON object (index first, then shards; the first
 * occurrence of a key wins); NULL only when out of memory. */
char *tp_st_metadata_json(const tp_st_model *m);
void tp_st_close(tp_st_model *m);

/* Convenience: copies a tensor of any supported float dtype into dst as f32 (n = element count
 * the caller expects; a different count is a TP_ESHAPE error naming the tensor). */
tp_status tp_st_read_f32(const tp_st_tensor *t, float *dst, size_t n, tp_err *err);

/* ---- writer ---- */
typedef struct tp_st_writer tp_st_writer;

/* Fills buf with bytes [offset, offset + nbytes) of a tensor's data (streaming writes). */
typedef tp_status (*tp_st_fill_fn)(void *user, void *buf, size_t offset, size_t nbytes,
                                   tp_err *err);

tp_st_writer *tp_st_writer_new(void);
/* data must stay valid until tp_st_writer_write. Names must be unique and < 256 bytes. */
tp_status tp_st_writer_add(tp_st_writer *w, const char *name, tp_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, tp_err *err);
/* Streaming variant: fill is called in chunks, in order, while the file is written, so a
 * multi-GB tensor never has to be in memory at once. */
tp_status tp_st_writer_add_fill(tp_st_writer *w, const char *name, tp_dtype dtype, int ndim,
                                const int64_t *shape, tp_st_fill_fn fill, void *user, tp_err *err);
/* __metadata__ entry (string to string); a second call with the same key replaces it. */
tp_status tp_st_writer_meta(tp_st_writer *w, const char *key, const char *value, tp_err *err);
/* Writes path atomically: a temp file next to it, then rename. Disk full is reported as such. */
tp_status tp_st_writer_write(tp_st_writer *w, const char *path, tp_err *err);
void tp_st_writer_free(tp_st_writer *w);

#endif
