/* checkpoint.h — bridge checkpoints as safetensors (the format users expect: `safetensors.torch
 * .load_file` reads them): every trainable parameter under its own name (f32), the optimiser
 * state under "optim.<name>", the bridge's hidden state as an opaque blob (below), and
 * __metadata__ with the plugin name, version, options and step
 * (whatever the caller puts in meta_json) plus "format": "pt" and "telepathy_checkpoint": "1".
 * Loading checks that every parameter is present with the same shape, that the file holds no
 * tensor the caller did not ask for, and says which one differs and how. */
#ifndef TP_MODEL_CHECKPOINT_H
#define TP_MODEL_CHECKPOINT_H

#include "telepathy/plugin.h"
#include "telepathy/status.h"
#include "telepathy/tensor.h"

/* Optimiser state as named tensors (t[i]->name), e.g. AdamW's, straight from telepathy/optim.h:
 *   tp_tensor **ts; int n = tp_adamw_state(opt, &ts); tp_ckpt_state st = {n, ts};
 * (its "step" tensor travels with the moments, so loading restores the step count too). */
typedef struct tp_ckpt_state {
    int n;
    tp_tensor **t;
} tp_ckpt_state;

/* Opaque bytes saved beside the tensors: a bridge's hidden state (bridge.h save_state). In the
 * file: tensor "__bridge_state__", I32 [ceil(n/4)] (the bytes, zero-padded: safetensors has
 * no byte dtype every reader accepts), and metadata "bridge_state_bytes" = n and
 * "bridge_state_sha256" = the bytes' sha256 (hex). */
#define TP_CKPT_BLOB_TENSOR "__bridge_state__"
typedef struct tp_ckpt_blob {
    void *data; /* save: the caller's bytes; load: malloc'd (caller frees), NULL when absent */
    size_t n;
    int present; /* load: whether the file held a blob */
} tp_ckpt_blob;

/* meta_json: a JSON object (or NULL); string values are stored as they are, other values as
 * compact JSON text. Conventional keys: "plugin", "version", "options" (object), "step".
 * optim may be NULL. Written atomically (temp file + rename). */
tp_status tp_checkpoint_save(const char *path, const tp_params *params, const tp_ckpt_state *optim,
                             const char *meta_json, tp_err *err);

/* Fills the caller's already-created params (and optim, unless NULL) from path. bf16/f16 files
 * are widened to f32. *meta_json (if meta_json is non-NULL) receives a malloc'd JSON object of
 * all metadata entries (values as stored: strings). A missing parameter, a shape mismatch or an
 * unexpected tensor is an error naming the file and the tensor; params are untouched then.
 * Optimiser tensors in the file are ignored when optim is NULL (loading for evaluation). */
tp_status tp_checkpoint_load(const char *path, tp_params *params, tp_ckpt_state *optim,
                             char **meta_json, tp_err *err);

/* The same with a blob: saved when blob && blob->n > 0. Loading with blob != NULL fills it
 * (present = 0, data NULL when the file has none); a blob whose size, shape or sha256 does not
 * match its metadata is a TP_EFORMAT error naming the file, found before anything is written.
 * Loading with blob == NULL ignores a blob in the file, as optim == NULL ignores optimiser
 * tensors. */
tp_status tp_checkpoint_save_blob(const char *path, const tp_params *params,
                                  const tp_ckpt_state *optim, const tp_ckpt_blob *blob,
                                  const char *meta_json, tp_err *err);
tp_status tp_checkpoint_load_blob(const char *path, tp_params *params, tp_ckpt_state *optim,
                                  tp_ckpt_blob *blob, char **meta_json, tp_err *err);

#endif
