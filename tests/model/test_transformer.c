/* test_transformer.c — the decoder forward without fixtures: shapes and logit selection, left vs
 * right padding, hidden-state indexing and early stop, Mistral's sliding window, input gradients
 * against finite differences (and no weight gradient anywhere), loading a model directory
 * (f32 and bf16 weights, missing tensors, mismatched sizes) and the bad-input errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "model_testutil.h"

#define V 50
#define D 32

static void test_shapes_and_logit_selection(void) {
    tp_model *m = tu_tiny(TP_ARCH_LLAMA, 2, 1);
    TP_CHECK(m != NULL);
    if (!m) return;
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    int32_t ids[2 * 5] = {3, 7, 9, 11, 4, 5, 6, 8, 10, 12};
    float mask[2 * 5] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0}; /* row 1 right-padded, length 3 */
    float *all = tu_logits(m, ctx, 2, 5, ids, mask, NULL);
    TP_CHECK(all != NULL);

    tp_fwd_in in;
    memset(&in, 0, sizeof in);
    in.ids = tp_from_i32(ctx, TP_DIMS(2, 5), ids);
    in.mask = tp_from_f32(ctx, TP_DIMS(2, 5), mask);
    in.logits = TP_LOGITS_LAST;
    tp_fwd_out out;
    tp_err err = {0};
    TP_CHECKF(tp_model_forward(m, ctx, &in, &out, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(out.logits && out.logits->ndim == 3 && out.logits->shape[0] == 2 &&
             out.logits->shape[1] == 1 && out.logits->shape[2] == V);
    float *last = tu_host(out.logits);
    if (all && last) {
        /* row 0 last real = 4, row 1 last real = 2 */
        TP_CHECK(tu_rel_err(last, all + 4 * V, V, 1e-6) < 1e-6);
        TP_CHECK(tu_rel_err(last + V, all + (5 + 2) * V, V, 1e-6) < 1e-6);
    }
    /* an i32 mask means the same as the f32 one */
    int32_t mi[2 * 5] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    in.mask = tp_from_i32(ctx, TP_DIMS(2, 5), mi);
    TP_CHECKF(tp_model_forward(m, ctx, &in, &out, &err) == TP_OK, "%s", err.msg);
    float *last_i = tu_host(out.logits);
    TP_CHECK(last && last_i && tu_rel_err(last_i, last, 2 * V, 1e-6) == 0.0);
    free(last_i);
    in.mask = tp_from_f32(ctx, TP_DIMS(2, 5), mask);
    int32_t lp[2 * 2] = {0, 3, 2, 1};
    in.logits = TP_LOGITS_AT;
    in.logit_pos = tp_from_i32(ctx, TP_DIMS(2, 2), lp);
    TP_CHECKF(tp_model_forward(m, ctx, &in, &out, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(out.logits && out.logits->shape[1] == 2);
    float *at = tu_host(out.logits);
    if (all && at)
        for (int b = 0; b < 2; b++)
            for (int p = 0; p < 2; p++)
                TP_CHECK(tu_rel_err(at + (b * 2 + p) * V, all + (b * 5 + lp[b * 2 + p]) * V, V,
                                    1e-6) < 1e-6);
    in.logits = TP_LOGITS_NONE;
    in.n_hidden = 1;
    in.hidden_layers[0] = 1;
    TP_CHECKF(tp_model_forward(m, ctx, &in, &out, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(out.logits == NULL && out.hidden[0] && out.hidden[0]->shape[2] == D);
    free(all);
    free(last);
    free(at);
    tp_ctx_free(ctx);
    tp_model_free(m);
}

/* The same sequences right-padded (default positions) and left-padded (mask positions) give
 * the same logits at every real token, and the same as each sequence run alone. */
static void test_left_right_padding(void) {
    for (int arch = 0; arch < 3; arch++) {
        tp_model *m = tu_tiny((tp_arch)arch, 2, 10 + (uint64_t)arch);
        if (!m) {
            TP_CHECK(m != NULL);
            continue;
        }
        if (arch == TP_ARCH_MISTRAL) m->cfg.sliding_window = 3;
        tp_ctx *ctx = tp_ctx_new(TP_CPU);
        enum { B = 3, T = 6 };
        const int len[B] = {6, 4, 1};
        const int32_t seq[B][T] = {
            {5, 9, 13, 17, 21, 25}, {30, 2, 44, 8, 0, 0}, {49, 0, 0, 0, 0, 0}};
        int32_t rid[B * T], lid[B * T];
        float rm[B * T], lm[B * T];
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                int lt = t - (T - len[b]);
                rid[b * T + t] = t < len[b] ? seq[b][t] : 0;
                rm[b * T + t] = t < len[b];
                lid[b * T + t] = lt >= 0 ? seq[b][lt] : 0;
                lm[b * T + t] = lt >= 0;
            }
        tp_err err = {0};
        tp_tensor *lmask = tp_from_f32(ctx, TP_DIMS(B, T), lm);
        tp_tensor *lpos = tp_positions_from_mask(ctx, lmask, &err);
        TP_CHECKF(lpos != NULL, "%s", err.msg);
        int32_t *lp = lpos ? (int32_t *)lpos->data : NULL;
        float *r = tu_logits(m, ctx, B, T, rid, rm, NULL);
        float *l = lp ? tu_logits(m, ctx, B, T, lid, lm, lp) : NULL;
        TP_CHECK(r && l);
        for (int b = 0; r && l && b < B; b++) {
            float *alone = tu_logits(m, ctx, 1, len[b], seq[b], NULL, NULL);
            for (int t = 0; alone && t < len[b]; t++) {
                const float *rr = r + (b * T + t) * V, *ll = l + (b * T + T - len[b] + t) * V;
                TP_CHECKF(tu_rel_err(ll, rr, V, 1e-3) < 1e-5, "arch %d row %d t %d: left %g", arch,
                          b, t, tu_rel_err(ll, rr, V, 1e-3));
                TP_CHECKF(tu_rel_err(alone + t * V, rr, V, 1e-3) < 1e-5, "arch %d row %d t %d",
                          arch, b, t);
            }
            free(alone);
        }
        free(r);
        free(l);
        tp_ctx_free(ctx);
        tp_model_free(m);
    }
}

static void test_hidden_states(void) {
    tp_model *m = tu_tiny(TP_ARCH_QWEN2, 3, 2);
    if (!m) {
        TP_CHECK(m != NULL);
        return;
    }
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    int32_t ids[4] = {1, 2, 3, 4};
    tp_tensor *tid = tp_from_i32(ctx, TP_DIMS(1, 4), ids);
    tp_fwd_in in;
    memset(&in, 0, sizeof in);
    in.ids = tid;
    in.n_hidden = 4;
    for (int i = 0; i < 4; i++) in.hidden_layers[i] = i; /* 0..3 = N */
    in.logits = TP_LOGITS_ALL;
    tp_fwd_out full;
    tp_err err = {0};
    TP_CHECKF(tp_model_forward(m, ctx, &in, &full, &err) == TP_OK, "%s", err.msg);
    tp_tensor *emb = tp_model_embed(m, ctx, tid, &err);
    float *e = tu_host(emb), *h0 = tu_host(full.hidden[0]), *h3 = tu_host(full.hidden[3]);
    float *lg = tu_host(full.logits);
    TP_CHECK(e && h0 && tu_rel_err(h0, e, 4 * D, 1e-6) == 0.0);
    /* hidden_states[N] is after the final norm: each row has RMS ~ the norm weights' scale, and
     * the logits are exactly lm_head (tied: the embedding) applied to it */
    if (h3 && lg) {
        float *w = tu_host(m->embed);
        double worst = 0;
        for (int t = 0; w && t < 4; t++)
            for (int v = 0; v < V; v++) {
                double s = 0;
                for (int d = 0; d < D; d++) s += (double)h3[t * D + d] * w[v * D + d];
                double dd = fabs(s - lg[t * V + v]);
                if (dd > worst) worst = dd;
            }
        TP_CHECKF(worst < 1e-4, "logits vs lm_head(hidden[N]): %g", worst);
        free(w);
    }
    /* early stop: asking only for hidden 2 runs 2 layers and gives the same numbers */
    float *h2 = tu_host(full.hidden[2]);
    tp_fwd_in in2 = in;
    in2.n_hidden = 1;
    in2.hidden_layers[0] = 2;
    in2.logits = TP_LOGITS_NONE;
    tp_fwd_out part;
    TP_CHECKF(tp_model_forward(m, ctx, &in2, &part, &err) == TP_OK, "%s", err.msg);
    float *p2 = tu_host(part.hidden[0]);
    TP_CHECK(h2 && p2 && tu_rel_err(p2, h2, 4 * D, 1e-6) == 0.0);
    /* out-of-range layer */
    in2.hidden_layers[0] = 4;
    TP_CHECK(tp_model_forward(m, ctx, &in2, &part, &err) == TP_ERANGE);
    TP_CHECKF(strstr(err.msg, "hidden_states 0..3") != NULL, "%s", err.msg);
    free(e);
    free(h0);
    free(h3);
    free(lg);
    free(h2);
    free(p2);
    tp_ctx_free(ctx);
    tp_model_free(m);
}

/* One layer with window w: the output at position t equals running only tokens t-w+1..t (with
 * their original positions); with the window off it does not. */
static void test_sliding_window(void) {
    tp_model *m = tu_tiny(TP_ARCH_MISTRAL, 1, 3);
    if (!m) {
        TP_CHECK(m != NULL);
        return;
    }
    const int W = 3, T = 8;
    m->cfg.sliding_window = W;
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    int32_t ids[8] = {4, 8, 15, 16, 23, 42, 7, 9};
    float *win = tu_logits(m, ctx, 1, T, ids, NULL, NULL);
    m->cfg.sliding_window = 0;
    float *fullattn = tu_logits(m, ctx, 1, T, ids, NULL, NULL);
    TP_CHECK(win && fullattn);
    for (int t = 0; win && fullattn && t < T; t++) {
        int s0 = t - W + 1 < 0 ? 0 : t - W + 1, n = t - s0 + 1;
        int32_t pos[8];
        for (int i = 0; i < n; i++) pos[i] = s0 + i;
        float *cut = tu_logits(m, ctx, 1, n, ids + s0, NULL, pos);
        TP_CHECKF(cut && tu_rel_err(win + t * V, cut + (n - 1) * V, V, 1e-3) < 1e-5, "t=%d", t);
        double d = tu_rel_err(win + t * V, fullattn + t * V, V, 1e-3);
        if (t < W)
            TP_CHECKF(d < 1e-6, "t=%d inside the window differs: %g", t, d);
        else
            TP_CHECKF(d > 1e-4, "t=%d outside the window: the window changed nothing", t);
        free(cut);
    }
    free(win);
    free(fullattn);
    tp_ctx_free(ctx);
    tp_model_free(m);
}

static int any_weight_grad(const tp_model *m) {
    if (m->embed->grad || m->norm->grad || m->lm_head->grad) return 1;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        tp_tensor *const *w = (tp_tensor *const *)&m->layers[l];
        for (size_t i = 0; i < sizeof(tp_layer_weights) / sizeof(tp_tensor *); i++)
            if (w[i] && (w[i]->grad || (w[i]->flags & TP_FLAG_REQUIRES_GRAD))) return 1;
    }
    return 0;
}

/* loss = mean_b CE(logits at last real token of row b, tgt[b]) for inputs_embeds e. */
static double loss_at(tp_model *m, tp_ctx *ctx, const float *e, const float *mask,
                      const int32_t *tgt, int B, int T, tp_tensor **emb_out, tp_tensor **loss_out) {
    tp_fwd_in in;
    memset(&in, 0, sizeof in);
    in.embeds = tp_from_f32(ctx, TP_DIMS(B, T, D), e);
    if (emb_out) {
        tp_requires_grad(ctx, in.embeds);
        *emb_out = in.embeds;
    }
    in.mask = tp_from_f32(ctx, TP_DIMS(B, T), mask);
    in.logits = TP_LOGITS_LAST;
    tp_fwd_out out;
    tp_err err = {0};
    if (tp_model_forward(m, ctx, &in, &out, &err) != TP_OK) {
        fprintf(stderr, "loss_at: %s\n", err.msg);
        return NAN;
    }
    tp_tensor *lg = tp_reshape(ctx, out.logits, TP_DIMS(B, V));
    tp_tensor *loss = tp_cross_entropy(ctx, lg, tp_from_i32(ctx, TP_DIMS(B), tgt), -100, 0.0f);
    if (loss_out) *loss_out = loss;
    return loss ? tp_item(loss, 0) : NAN;
}

static void test_input_grad_finite_diff(void) {
    for (int arch = 0; arch < 3; arch++) {
        tp_model *m = tu_tiny((tp_arch)arch, 2, 20 + (uint64_t)arch);
        if (!m) {
            TP_CHECK(m != NULL);
            continue;
        }
        if (arch == TP_ARCH_MISTRAL) m->cfg.sliding_window = 2;
        enum { B = 2, T = 4 };
        float e[B * T * D], mask[B * T] = {1, 1, 1, 1, 0, 1, 1, 1}; /* row 1 left-padded */
        int32_t tgt[B] = {7, 33};
        tp_rng rng = {99, (uint64_t)arch, 0};
        for (int i = 0; i < B * T * D; i++) e[i] = 0.5f * tp_rng_normal(&rng);
        tp_ctx *ctx = tp_ctx_new(TP_CPU), *fd = tp_ctx_new(TP_CPU);
        tp_tensor *emb = NULL, *loss = NULL;
        double l0 = loss_at(m, ctx, e, mask, tgt, B, T, &emb, &loss);
        TP_CHECK(isfinite(l0) && loss);
        tp_status s = loss ? tp_backward(ctx, loss, NULL) : TP_EINVAL;
        TP_CHECKF(s == TP_OK, "%s", tp_ctx_error(ctx));
        float *g = emb && emb->grad ? tu_host(emb->grad) : NULL;
        TP_CHECK(g != NULL);
        TP_CHECKF(!any_weight_grad(m), "arch %d: a frozen weight got a gradient", arch);
        double worst = 0;
        for (int k = 0; g && k < 24; k++) {
            int i = (int)(((uint32_t)k * 2654435761u) % (uint32_t)(B * T * D));
            const float h = 1e-2f;
            float keep = e[i];
            e[i] = keep + h;
            tp_ctx_reset(fd);
            double lp = loss_at(m, fd, e, mask, tgt, B, T, NULL, NULL);
            e[i] = keep - h;
            tp_ctx_reset(fd);
            double lm = loss_at(m, fd, e, mask, tgt, B, T, NULL, NULL);
            e[i] = keep;
            double num = (lp - lm) / (2 * h), d = fabs(num - g[i]) / (fabs(num) + 2e-2);
            if (d > worst) worst = d;
            if (i / D == 4) TP_CHECKF(g[i] == 0.0f, "pad position got grad %g", g[i]);
        }
        TP_CHECKF(worst < 2e-2, "arch %d: input grad vs finite differences: %g", arch, worst);
        free(g);
        tp_ctx_free(fd);
        tp_ctx_free(ctx);
        tp_model_free(m);
    }
}

static void test_bad_input(void) {
    tp_model *m = tu_tiny(TP_ARCH_LLAMA, 1, 4);
    if (!m) {
        TP_CHECK(m != NULL);
        return;
    }
    tp_ctx *ctx = tp_ctx_new(TP_CPU);
    tp_err err = {0};
    tp_fwd_in in;
    tp_fwd_out out;
    memset(&in, 0, sizeof in);
    int32_t bad[3] = {1, V, 2};
    in.ids = tp_from_i32(ctx, TP_DIMS(1, 3), bad);
    in.logits = TP_LOGITS_ALL;
    TP_CHECK(tp_model_forward(m, ctx, &in, &out, &err) == TP_ERANGE);
    TP_CHECKF(strstr(err.msg, "token id 50") && strstr(err.msg, "vocab"), "%s", err.msg);
    int32_t neg[3] = {1, -1, 2};
    in.ids = tp_from_i32(ctx, TP_DIMS(1, 3), neg);
    TP_CHECK(tp_model_forward(m, ctx, &in, &out, &err) == TP_ERANGE);
    TP_CHECK(tp_model_embed(m, ctx, in.ids, &err) == NULL && err.code == TP_ERANGE);
    /* longer than max_position_embeddings (64) */
    int32_t *lng = calloc(65, sizeof *lng);
    in.ids = tp_from_i32(ctx, TP_DIMS(1, 65), lng);
    TP_CHECK(tp_model_forward(m, ctx, &in, &out, &err) == TP_ERANGE);
    TP_CHECKF(strstr(err.msg, "max_position_embeddings 64") != NULL, "%s", err.msg);
    in.ids = tp_from_i32(ctx, TP_DIMS(1, 3), bad + 0);
    int32_t pos[3] = {10, 64, 12};
    bad[1] = 3;
    in.ids = tp_from_i32(ctx, TP_DIMS(1, 3), bad);
    in.pos = tp_from_i32(ctx, TP_DIMS(1, 3), pos);
    TP_CHECK(tp_model_forward(m, ctx, &in, &out, &err) == TP_ERANGE);
    TP_CHECKF(strstr(err.msg, "position 64") != NULL, "%s", err.msg);
    in.pos = NULL;
    /* both / neither of ids and embeds, wrong widths */
    in.embeds = tp_zeros(ctx, TP_F32, TP_DIMS(1, 3, D));
    TP_CHECK(tp_model_forward(m, ctx, &in, &out, &err) == TP_EINVAL);
    in.ids = NULL;
    in.embeds = tp_zeros(ctx, TP_F32, TP_DIMS(1, 3, D + 1));
    TP_CHECK(tp_model_forward(m, ctx, &in, &out, &err) == TP_ESHAPE);
    in.embeds = NULL;
    TP_CHECK(tp_model_forward(m, ctx, &in, &out, &err) == TP_EINVAL);
    /* logits at an all-padding row */
    float zm[3] = {0, 0, 0};
    in.ids = tp_from_i32(ctx, TP_DIMS(1, 3), bad);
    in.mask = tp_from_f32(ctx, TP_DIMS(1, 3), zm);
    in.logits = TP_LOGITS_LAST;
    TP_CHECK(tp_model_forward(m, ctx, &in, &out, &err) == TP_EINVAL);
    free(lng);
    tp_ctx_free(ctx);
    tp_model_free(m);
}

/* ---- loading a model directory ---- */

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static void config_json(char *buf, size_t cap, const tp_model_config *c, const char *arch,
                        const char *mtype, int vocab) {
    snprintf(
        buf, cap,
        "{\"architectures\": [\"%s\"], \"model_type\": \"%s\", \"vocab_size\": %d,\n"
        " \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,\n"
        " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"rms_norm_eps\": 1e-05,\n"
        " \"rope_theta\": 10000.0, \"max_position_embeddings\": 64, \"hidden_act\": \"silu\",\n"
        " \"tie_word_embeddings\": %s, \"bos_token_id\": 1, \"eos_token_id\": 2}\n",
        arch, mtype, vocab, c->hidden_size, c->intermediate_size, c->num_hidden_layers,
        c->num_attention_heads, c->num_key_value_heads, c->tie_word_embeddings ? "true" : "false");
}

/* Writes every weight of m (optionally as bf16, optionally skipping names containing `skip`). */
static int save_weights_ex(const tp_model *m, const char *path, int as_bf16, const char *skip,
                           const char *only) {
    tp_st_writer *w = tp_st_writer_new();
    tp_err err = {0};
    uint16_t *bufs[64];
    int nb = 0, rc = 0;
    const tp_tensor *all[64];
    int n = 0;
    all[n++] = m->embed;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        tp_tensor *const *ws = (tp_tensor *const *)&m->layers[l];
        for (size_t i = 0; i < sizeof(tp_layer_weights) / sizeof(tp_tensor *); i++)
            if (ws[i]) all[n++] = ws[i];
    }
    all[n++] = m->norm;
    if (m->lm_head != m->embed) all[n++] = m->lm_head;
    for (int i = 0; i < n && rc == 0; i++) {
        const tp_tensor *t = all[i];
        if ((skip && strstr(t->name, skip)) || (only && !strstr(t->name, only))) continue;
        const void *data = t->data;
        tp_dtype dt = TP_F32;
        if (as_bf16) {
            int64_t k = tp_numel(t);
            uint16_t *b = malloc((size_t)k * 2);
            for (int64_t j = 0; j < k; j++) b[j] = tp_f32_to_bf16(((const float *)t->data)[j]);
            bufs[nb++] = b;
            data = b;
            dt = TP_BF16;
        }
        if (tp_st_writer_add(w, t->name, dt, t->ndim, t->shape, data, &err) != TP_OK) rc = -1;
    }
    if (rc == 0 && tp_st_writer_write(w, path, &err) != TP_OK) rc = -1;
    if (rc) fprintf(stderr, "save_weights: %s\n", err.msg);
    tp_st_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    return rc;
}

static int save_weights(const tp_model *m, const char *path, int as_bf16, const char *skip) {
    return save_weights_ex(m, path, as_bf16, skip, NULL);
}

static void test_load_directory(void) {
    for (int arch = 0; arch < 3; arch++) {
        tp_model *m = tu_tiny((tp_arch)arch, 2, 30 + (uint64_t)arch);
        if (!m) {
            TP_CHECK(m != NULL);
            continue;
        }
        static const char *names[3][2] = {{"LlamaForCausalLM", "llama"},
                                          {"MistralForCausalLM", "mistral"},
                                          {"Qwen2ForCausalLM", "qwen2"}};
        char dir[512], path[600], cfg[2048];
        snprintf(dir, sizeof dir, "%s/model_%d", tp_test_tmpdir(), arch);
        mkdir(dir, 0755);
        snprintf(path, sizeof path, "%s/config.json", dir);
        config_json(cfg, sizeof cfg, &m->cfg, names[arch][0], names[arch][1], V);
        TP_CHECK(write_text(path, cfg) == 0);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        int bf16 = arch == TP_ARCH_MISTRAL;
        TP_CHECK(save_weights(m, path, bf16, NULL) == 0);
        tp_model *lm = NULL;
        tp_err err = {0};
        TP_CHECKF(tp_model_load(&lm, dir, NULL, &err) == TP_OK, "%s", err.msg);
        if (lm) {
            TP_CHECK(lm->tok == NULL && lm->n_params == m->n_params);
            TP_CHECK(lm->embed->grad == NULL && !(lm->embed->flags & TP_FLAG_PARAM));
            TP_CHECK((lm->lm_head == lm->embed) == (arch == TP_ARCH_QWEN2));
            if (bf16) /* the in-memory model becomes what bf16 storage holds */
                for (int l = 0; l < 2; l++) {
                    float *a = (float *)m->layers[l].wq->data;
                    for (int64_t i = 0; i < tp_numel(m->layers[l].wq); i++)
                        a[i] = tp_bf16_to_f32(tp_f32_to_bf16(a[i]));
                }
            float *w0 = tu_host(m->layers[1].wq), *w1 = tu_host(lm->layers[1].wq);
            TP_CHECK(w0 && w1 && tu_rel_err(w1, w0, tp_numel(m->layers[1].wq), 1e-9) == 0.0);
            free(w0);
            free(w1);
            if (bf16) { /* weights held as bf16 (the GPU path): same numbers, half the bytes */
                tp_model_load_opts o = tp_model_load_defaults();
                o.weight_dtype = TP_BF16;
                tp_model *hm = NULL;
                TP_CHECKF(tp_model_load(&hm, dir, &o, &err) == TP_OK, "%s", err.msg);
                if (hm) {
                    TP_CHECK(hm->embed->dtype == TP_BF16 && hm->layers[0].wq->dtype == TP_BF16);
                    tp_ctx *ctx = tp_ctx_new(TP_CPU);
                    int32_t ids[5] = {1, 2, 3, 4, 5};
                    float *a = tu_logits(lm, ctx, 1, 5, ids, NULL, NULL);
                    float *b = tu_logits(hm, ctx, 1, 5, ids, NULL, NULL);
                    TP_CHECK(a && b && tu_rel_err(b, a, 5 * V, 1e-6) == 0.0);
                    free(a);
                    free(b);
                    tp_ctx_free(ctx);
                    tp_model_free(hm);
                }
            }
            if (!bf16) {
                tp_ctx *ctx = tp_ctx_new(TP_CPU);
                int32_t ids[5] = {1, 2, 3, 4, 5};
                float *a = tu_logits(m, ctx, 1, 5, ids, NULL, NULL);
                float *b = tu_logits(lm, ctx, 1, 5, ids, NULL, NULL);
                TP_CHECK(a && b && tu_rel_err(b, a, 5 * V, 1e-6) == 0.0);
                free(a);
                free(b);
                tp_ctx_free(ctx);
            }
            tp_model_free(lm);
        }
        /* a tensor missing: every missing one is named */
        TP_CHECK(save_weights(m, path, 0, "layers.1.mlp") == 0);
        lm = NULL;
        TP_CHECK(tp_model_load(&lm, dir, NULL, &err) == TP_EFORMAT && lm == NULL);
        TP_CHECKF(strstr(err.msg, "3 tensor(s) missing") &&
                      strstr(err.msg, "model.layers.1.mlp.gate_proj.weight") &&
                      strstr(err.msg, "model.layers.1.mlp.down_proj.weight"),
                  "%s", err.msg);
        /* vocab in config.json disagrees with the embedding */
        TP_CHECK(save_weights(m, path, 0, NULL) == 0);
        config_json(cfg, sizeof cfg, &m->cfg, names[arch][0], names[arch][1], V + 1);
        snprintf(path, sizeof path, "%s/config.json", dir);
        TP_CHECK(write_text(path, cfg) == 0);
        TP_CHECK(tp_model_load(&lm, dir, NULL, &err) == TP_ESHAPE);
        TP_CHECKF(strstr(err.msg, "model.embed_tokens.weight") && strstr(err.msg, "[51,32]"), "%s",
                  err.msg);
        /* a tokenizer with more ids than the embedding has rows */
        config_json(cfg, sizeof cfg, &m->cfg, names[arch][0], names[arch][1], V);
        TP_CHECK(write_text(path, cfg) == 0);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        TP_CHECKF(tp_tokenizer_write_tiny(path, "bytelevel", 300, 1, &err) == TP_OK, "%s", err.msg);
        TP_CHECK(tp_model_load(&lm, dir, NULL, &err) == TP_ESHAPE && lm == NULL);
        TP_CHECKF(strstr(err.msg, "tokenizer has 300 ids") && strstr(err.msg, "50 rows"), "%s",
                  err.msg);
        tp_model_load_opts o = tp_model_load_defaults();
        o.skip_tokenizer = 1;
        TP_CHECKF(tp_model_load(&lm, dir, &o, &err) == TP_OK, "%s", err.msg);
        tp_model_free(lm);
        tp_model_free(m);
    }
    tp_model *lm = NULL;
    tp_err err = {0};
    TP_CHECK(tp_model_load(&lm, "/nonexistent/model/dir", NULL, &err) != TP_OK && lm == NULL);
    TP_CHECKF(strstr(err.msg, "/nonexistent/model/dir") != NULL, "%s", err.msg);
}

/* Hugging Face's sharded layout: model-0000k-of-00002.safetensors + model.safetensors.index.json
 * (no model.safetensors); a missing shard is an error naming it. */
static void test_load_sharded(void) {
    tp_model *m = tu_tiny(TP_ARCH_LLAMA, 2, 35);
    if (!m) {
        TP_CHECK(m != NULL);
        return;
    }
    char dir[512], path[600], cfg[2048];
    snprintf(dir, sizeof dir, "%s/sharded", tp_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    config_json(cfg, sizeof cfg, &m->cfg, "LlamaForCausalLM", "llama", V);
    TP_CHECK(write_text(path, cfg) == 0);
    const char *shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    snprintf(path, sizeof path, "%s/%s", dir, shard[0]);
    TP_CHECK(save_weights_ex(m, path, 0, "layers.1.", NULL) == 0);
    snprintf(path, sizeof path, "%s/%s", dir, shard[1]);
    TP_CHECK(save_weights_ex(m, path, 0, NULL, "layers.1.") == 0);
    /* the index: every tensor name -> its shard */
    char *idx = malloc(16384);
    size_t o =
        (size_t)snprintf(idx, 16384, "{\"metadata\": {\"total_size\": %lld},\n \"weight_map\": {",
                         (long long)(m->n_params * 4));
    const tp_tensor *all[64];
    int n = 0;
    all[n++] = m->embed;
    for (int l = 0; l < 2; l++) {
        tp_tensor *const *ws = (tp_tensor *const *)&m->layers[l];
        for (size_t i = 0; i < sizeof(tp_layer_weights) / sizeof(tp_tensor *); i++)
            if (ws[i]) all[n++] = ws[i];
    }
    all[n++] = m->norm;
    all[n++] = m->lm_head;
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(idx + o, 16384 - o, "%s\"%s\": \"%s\"", i ? ",\n  " : "",
                              all[i]->name, shard[strstr(all[i]->name, "layers.1.") != NULL]);
    snprintf(idx + o, 16384 - o, "}}\n");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    TP_CHECK(write_text(path, idx) == 0);
    free(idx);
    tp_model *lm = NULL;
    tp_err err = {0};
    TP_CHECKF(tp_model_load(&lm, dir, NULL, &err) == TP_OK, "%s", err.msg);
    if (lm) {
        tp_ctx *ctx = tp_ctx_new(TP_CPU);
        int32_t ids[5] = {1, 2, 3, 4, 5};
        float *a = tu_logits(m, ctx, 1, 5, ids, NULL, NULL);
        float *b = tu_logits(lm, ctx, 1, 5, ids, NULL, NULL);
        TP_CHECK(a && b && tu_rel_err(b, a, 5 * V, 1e-6) == 0.0);
        free(a);
        free(b);
        tp_ctx_free(ctx);
        tp_model_free(lm);
    }
    snprintf(path, sizeof path, "%s/%s", dir, shard[1]);
    TP_CHECK(unlink(path) == 0);
    lm = NULL;
    TP_CHECK(tp_model_load(&lm, dir, NULL, &err) != TP_OK && lm == NULL);
    TP_CHECKF(strstr(err.msg, shard[1]) != NULL, "%s", err.msg);
    tp_model_free(m);
}

TP_TEST_RUN(TP_CASE(test_shapes_and_logit_selection), TP_CASE(test_left_right_padding),
            TP_CASE(test_hidden_states), TP_CASE(test_sliding_window),
            TP_CASE(test_input_grad_finite_diff), TP_CASE(test_bad_input),
            TP_CASE(test_load_directory), TP_CASE(test_load_sharded))
