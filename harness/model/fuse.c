/* fuse.c — stacks a layer's q/k/v projections into one [Q+2KV, D] weight (and their biases into
 * one vector), so the attention input is one GEMM instead of three, and its gate/up projections
 * into one [2I, D] weight, so the MLP input is one GEMM instead of two (one launch fewer per
 * layer; at decode both halves stream through the same GEMV). Why: at the study's shapes
 * (67 or 23 rows against 4096x4096 and 1024x4096 weights) the k and v GEMMs are too thin for the
 * GPU: on the H100 cuBLASLt ran them split-K at ~1 TB/s with a reduction kernel each, and the
 * three GEMMs plus two reductions took 41 us per layer against ~17 us for one 50 MB weight read.
 * The old wq/wk/wv (and bq/bk/bv, w_gate/w_up) stay valid: they become non-owning row blocks of the
 * stacked tensor, so nothing else changes and no memory is duplicated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* Copies srcs (row blocks, same dtype/device, same columns) into one new tensor and turns each
 * src into a non-owning view of its rows of it. */
static tp_status stack_rows(tp_tensor **srcs, int n, tp_tensor **out, tp_err *err) {
    int64_t rows = 0, cols = srcs[0]->ndim == 2 ? srcs[0]->shape[1] : 1;
    for (int i = 0; i < n; i++) rows += srcs[i]->shape[0];
    int nd = srcs[0]->ndim;
    int64_t shape[2] = {rows, cols};
    tp_tensor *dst = tp_tensor_alloc(srcs[0]->dtype, srcs[0]->device, nd, shape, err);
    if (!dst) return err ? err->code : TP_ENOMEM;
    size_t esz = tp_dtype_size(dst->dtype);
    int64_t r0 = 0;
    tp_tensor *views[4] = {0};
    tp_status s = TP_OK;
    for (int i = 0; i < n && s == TP_OK; i++) {
        views[i] = tp_tensor_wrap(dst->dtype, dst->device, nd, srcs[i]->shape,
                                  (char *)dst->data + (size_t)(r0 * cols) * esz, err);
        if (!views[i])
            s = err ? err->code : TP_ENOMEM;
        else
            s = tp_copy_into(views[i], srcs[i], err);
        r0 += srcs[i]->shape[0];
    }
    if (s != TP_OK) {
        for (int i = 0; i < n; i++) tp_tensor_free(views[i]);
        tp_tensor_free(dst);
        return s;
    }
    for (int i = 0; i < n; i++) {
        snprintf(views[i]->name, sizeof views[i]->name, "%s", srcs[i]->name);
        tp_tensor_free(srcs[i]);
        srcs[i] = views[i];
    }
    *out = dst;
    return TP_OK;
}

tp_status tp_model_fuse_qkv(tp_model *m, tp_err *err) {
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        tp_layer_weights *w = &m->layers[l];
        if (w->wqkv) continue;
        int nb = !!w->bq + !!w->bk + !!w->bv;
        if (!w->wq || !w->wk || !w->wv || (nb != 0 && nb != 3) || w->wq->dtype != w->wk->dtype ||
            w->wq->dtype != w->wv->dtype || (w->wq->flags & TP_FLAG_REQUIRES_GRAD))
            continue; /* mixed layouts or trainable weights: keep the three projections */
        tp_tensor *ws[3] = {w->wq, w->wk, w->wv};
        tp_status s = stack_rows(ws, 3, &w->wqkv, err);
        if (s == TP_OK) {
            w->wq = ws[0], w->wk = ws[1], w->wv = ws[2];
            if (nb == 3) {
                tp_tensor *bs[3] = {w->bq, w->bk, w->bv};
                s = stack_rows(bs, 3, &w->bqkv, err);
                if (s == TP_OK) w->bq = bs[0], w->bk = bs[1], w->bv = bs[2];
            }
        }
        if (s != TP_OK) return tp_err_prefix(err, "fusing the q/k/v weights of layer %d", l);
    }
    const char *e = getenv("TP_FUSE_GATE_UP"); /* 0: keep two GEMMs (A/B timing) */
    for (int l = 0; l < m->cfg.num_hidden_layers && !(e && strcmp(e, "0") == 0); l++) {
        tp_layer_weights *w = &m->layers[l];
        if (w->wgu || !w->w_gate || !w->w_up || w->w_gate->dtype != w->w_up->dtype ||
            ((w->w_gate->flags | w->w_up->flags) & TP_FLAG_REQUIRES_GRAD))
            continue;
        tp_tensor *ws[2] = {w->w_gate, w->w_up};
        if (stack_rows(ws, 2, &w->wgu, err) != TP_OK)
            return tp_err_prefix(err, "fusing the gate/up weights of layer %d", l);
        w->w_gate = ws[0], w->w_up = ws[1];
    }
    return TP_OK;
}
