/* test_checkpoint.c — checkpoints: params + optimiser state + metadata round trip exactly,
 * files are plain safetensors, and every mismatch (missing, unexpected, wrong shape, missing
 * optimiser state, bad metadata, bad names) is a clear error that leaves params untouched. */
#include <stdlib.h>
#include <string.h>

#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "telepathy/optim.h"
#include "tp_test.h"

static tp_tensor *param(tp_params *ps, const char *name, int ndim, const int64_t *shape,
                        float base) {
    tp_err err = {0};
    tp_tensor *t = tp_param_alloc(name, ndim, shape, &err);
    TP_CHECKF(t != NULL, "%s", err.msg);
    if (!t) return NULL;
    float *d = t->data;
    for (int64_t i = 0; i < tp_numel(t); i++) d[i] = base + 0.25f * (float)i;
    ps->p[ps->n++] = t;
    return t;
}

static tp_tensor *state(tp_tensor **arr, int *n, const char *name, int ndim, const int64_t *shape,
                        float base) {
    tp_err err = {0};
    tp_tensor *t = tp_tensor_alloc(TP_F32, TP_CPU, ndim, shape, &err);
    TP_CHECKF(t != NULL, "%s", err.msg);
    if (!t) return NULL;
    snprintf(t->name, sizeof t->name, "%s", name);
    float *d = t->data;
    for (int64_t i = 0; i < tp_numel(t); i++) d[i] = base - (float)i;
    arr[(*n)++] = t;
    return t;
}

static void free_params(tp_params *ps) {
    for (int i = 0; i < ps->n; i++) tp_tensor_free(ps->p[i]);
    ps->n = 0;
}

static const char *ckpt_path(const char *name) {
    static char p[4][1024];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, 1024, "%s/%s", tp_test_tmpdir(), name);
    return s;
}

static const char *META = "{\"plugin\":\"perceiver\",\"version\":\"1.2\",\"options\":{\"tokens\":"
                          "8,\"depth\":2},\"step\":120}";

/* the "bridge": latents [4,3], proj.w [2,3], proj.b [2] */
static void make_bridge(tp_params *ps, float base) {
    ps->n = 0;
    param(ps, "latents", 2, (int64_t[]){4, 3}, base);
    param(ps, "proj.w", 2, (int64_t[]){2, 3}, base + 100);
    param(ps, "proj.b", 1, (int64_t[]){2}, base + 200);
}

static void test_roundtrip(void) {
    tp_err err = {0};
    tp_params a = {0}, b = {0};
    make_bridge(&a, 1.0f);
    tp_tensor *st[8];
    int ns = 0;
    for (int i = 0; i < a.n; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s.m", a.p[i]->name);
        state(st, &ns, nm, a.p[i]->ndim, a.p[i]->shape, 0.5f * (float)i);
        snprintf(nm, sizeof nm, "%s.v", a.p[i]->name);
        state(st, &ns, nm, a.p[i]->ndim, a.p[i]->shape, 9.0f + (float)i);
    }
    tp_ckpt_state sa = {ns, st};
    const char *path = ckpt_path("bridge.safetensors");
    TP_CHECKF(tp_checkpoint_save(path, &a, &sa, META, &err) == TP_OK, "%s", err.msg);

    /* a plain safetensors file: params under their names, optimiser under optim. */
    tp_st_model *m = NULL;
    TP_CHECKF(tp_st_open(&m, path, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(tp_st_count(m) == 9);
    const tp_st_tensor *t = tp_st_find(m, "proj.w");
    TP_CHECK(t && t->dtype == TP_F32 && ((const float *)t->data)[1] == 101.25f);
    TP_CHECK(tp_st_find(m, "optim.latents.v") != NULL);
    TP_CHECK(strcmp(tp_st_metadata(m, "plugin"), "perceiver") == 0);
    TP_CHECK(strcmp(tp_st_metadata(m, "step"), "120") == 0);
    TP_CHECK(strcmp(tp_st_metadata(m, "options"), "{\"depth\":2,\"tokens\":8}") == 0);
    TP_CHECK(strcmp(tp_st_metadata(m, "format"), "pt") == 0);
    tp_st_close(m);

    /* load into a fresh instance */
    make_bridge(&b, -50.0f);
    tp_tensor *st2[8];
    int ns2 = 0;
    for (int i = 0; i < ns; i++) state(st2, &ns2, st[i]->name, st[i]->ndim, st[i]->shape, 0);
    tp_ckpt_state sb = {ns2, st2};
    char *meta = NULL;
    TP_CHECKF(tp_checkpoint_load(path, &b, &sb, &meta, &err) == TP_OK, "%s", err.msg);
    for (int i = 0; i < a.n; i++)
        TP_CHECKF(memcmp(a.p[i]->data, b.p[i]->data, (size_t)tp_numel(a.p[i]) * 4) == 0, "%s",
                  a.p[i]->name);
    for (int i = 0; i < ns; i++)
        TP_CHECKF(memcmp(st[i]->data, st2[i]->data, (size_t)tp_numel(st[i]) * 4) == 0, "%s",
                  st[i]->name);
    TP_CHECK(meta && strstr(meta, "\"plugin\":\"perceiver\"") && strstr(meta, "\"step\":\"120\""));
    free(meta);

    /* evaluation load: no optimiser wanted, its tensors are ignored */
    free_params(&b);
    make_bridge(&b, 7.0f);
    TP_CHECKF(tp_checkpoint_load(path, &b, NULL, NULL, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(memcmp(a.p[0]->data, b.p[0]->data, 12 * 4) == 0);
    free_params(&b);
    for (int i = 0; i < ns2; i++) tp_tensor_free(st2[i]);

    /* a params-only checkpoint cannot restore an optimiser */
    const char *p2 = ckpt_path("noopt.safetensors");
    TP_CHECK(tp_checkpoint_save(p2, &a, NULL, NULL, &err) == TP_OK);
    TP_CHECK(tp_checkpoint_load(p2, &a, &sa, NULL, &err) == TP_EFORMAT);
    TP_CHECK(strstr(err.msg, "optim.latents.m") && strstr(err.msg, "noopt.safetensors"));
    free_params(&a);
    for (int i = 0; i < ns; i++) tp_tensor_free(st[i]);
}

static void test_mismatches(void) {
    tp_err err = {0};
    tp_params a = {0}, b = {0};
    make_bridge(&a, 1.0f);
    const char *path = ckpt_path("mm.safetensors");
    TP_CHECK(tp_checkpoint_save(path, &a, NULL, META, &err) == TP_OK);

    /* shape differs: error names tensor and both shapes; nothing is written */
    b.n = 0;
    param(&b, "latents", 2, (int64_t[]){4, 3}, -1.0f);
    param(&b, "proj.w", 2, (int64_t[]){2, 4}, -1.0f);
    param(&b, "proj.b", 1, (int64_t[]){2}, -1.0f);
    TP_CHECK(tp_checkpoint_load(path, &b, NULL, NULL, &err) == TP_ESHAPE);
    TP_CHECK(strstr(err.msg, "'proj.w'") && strstr(err.msg, "[2, 3]") && strstr(err.msg, "[2, 4]"));
    TP_CHECK(((float *)b.p[0]->data)[0] == -1.0f); /* untouched */
    free_params(&b);

    /* parameter missing from the file */
    make_bridge(&b, 0);
    param(&b, "extra", 1, (int64_t[]){3}, 0);
    TP_CHECK(tp_checkpoint_load(path, &b, NULL, NULL, &err) == TP_EFORMAT);
    TP_CHECK(strstr(err.msg, "no tensor 'extra'") && strstr(err.msg, "mm.safetensors"));
    free_params(&b);

    /* the file holds a tensor this instance does not have */
    b.n = 0;
    param(&b, "latents", 2, (int64_t[]){4, 3}, 0);
    param(&b, "proj.w", 2, (int64_t[]){2, 3}, 0);
    TP_CHECK(tp_checkpoint_load(path, &b, NULL, NULL, &err) == TP_EFORMAT);
    TP_CHECK(strstr(err.msg, "unexpected tensor 'proj.b'"));
    free_params(&b);

    /* not a checkpoint at all */
    TP_CHECK(tp_checkpoint_load(ckpt_path("none.safetensors"), &a, NULL, NULL, &err) == TP_EIO);

    /* bad metadata, reserved names, duplicates, non-f32 */
    TP_CHECK(tp_checkpoint_save(path, &a, NULL, "[1]", &err) == TP_EINVAL &&
             strstr(err.msg, "JSON object"));
    TP_CHECK(tp_checkpoint_save(path, &a, NULL, "{\"plugin\":", &err) == TP_EINVAL);
    TP_CHECK(tp_checkpoint_save(path, &a, NULL, "{\"format\":\"x\"}", &err) == TP_EINVAL &&
             strstr(err.msg, "reserved"));
    tp_params d = {0};
    param(&d, "w", 1, (int64_t[]){2}, 0);
    param(&d, "w", 1, (int64_t[]){2}, 0);
    TP_CHECK(tp_checkpoint_save(path, &d, NULL, NULL, &err) == TP_EINVAL && strstr(err.msg, "'w'"));
    free_params(&d);
    param(&d, "optim.x", 1, (int64_t[]){2}, 0);
    TP_CHECK(tp_checkpoint_save(path, &d, NULL, NULL, &err) == TP_EINVAL &&
             strstr(err.msg, "reserved prefix"));
    free_params(&d);
    tp_tensor *h = tp_tensor_alloc(TP_F16, TP_CPU, 1, (int64_t[]){2}, &err);
    snprintf(h->name, sizeof h->name, "half");
    d.p[d.n++] = h;
    TP_CHECK(tp_checkpoint_save(path, &d, NULL, NULL, &err) == TP_EDTYPE &&
             strstr(err.msg, "'half'"));
    free_params(&d);
    free_params(&a);
}

static void test_bf16_file_loads(void) {
    /* a checkpoint re-saved in bf16 by another tool still loads (widened to f32) */
    tp_err err = {0};
    uint16_t w[2] = {0x3fc0, 0xc000}; /* 1.5, -2 */
    tp_st_writer *wr = tp_st_writer_new();
    tp_st_writer_add(wr, "w", TP_BF16, 1, (int64_t[]){2}, w, &err);
    const char *path = ckpt_path("bf16.safetensors");
    TP_CHECK(tp_st_writer_write(wr, path, &err) == TP_OK);
    tp_st_writer_free(wr);
    tp_params p = {0};
    param(&p, "w", 1, (int64_t[]){2}, 0);
    TP_CHECKF(tp_checkpoint_load(path, &p, NULL, NULL, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(((float *)p.p[0]->data)[0] == 1.5f && ((float *)p.p[0]->data)[1] == -2.0f);
    free_params(&p);
}

/* Gradients for a deterministic fake step: g = 0.1 * (i + 1) * (step + 1) - value. */
static void set_grads(tp_params *ps, int step) {
    for (int k = 0; k < ps->n; k++) {
        tp_tensor *p = ps->p[k];
        float *g = p->grad->data, *v = p->data;
        for (int64_t i = 0; i < tp_numel(p); i++) g[i] = 0.1f * (float)(i + 1) * (step + 1) - v[i];
    }
}

static void test_adamw_resume_is_exact(void) {
    /* train 3 steps, checkpoint, 2 more steps; vs. resume from the checkpoint in a fresh
     * instance and do the same 2 steps: parameters must match bit for bit */
    tp_err err = {0};
    tp_adamw_cfg cfg = tp_adamw_defaults();
    tp_params a = {0};
    make_bridge(&a, 0.5f);
    tp_adamw *oa = tp_adamw_new(a.p, a.n, &cfg, &err);
    TP_CHECKF(oa != NULL, "%s", err.msg);
    if (!oa) return;
    for (int s = 0; s < 3; s++) {
        set_grads(&a, s);
        TP_CHECK(tp_adamw_step(oa, 1e-2f, &err) == TP_OK);
    }
    tp_tensor **ts = NULL;
    int nts = tp_adamw_state(oa, &ts);
    TP_CHECK(nts == 2 * a.n + 1);
    tp_ckpt_state sa = {nts, ts};
    const char *path = ckpt_path("adamw.safetensors");
    TP_CHECKF(tp_checkpoint_save(path, &a, &sa, "{\"step\":3}", &err) == TP_OK, "%s", err.msg);
    for (int s = 3; s < 5; s++) {
        set_grads(&a, s);
        TP_CHECK(tp_adamw_step(oa, 1e-2f, &err) == TP_OK);
    }

    tp_params b = {0};
    make_bridge(&b, -9.0f);
    tp_adamw *ob = tp_adamw_new(b.p, b.n, &cfg, &err);
    tp_tensor **tb = NULL;
    int ntb = tp_adamw_state(ob, &tb);
    tp_ckpt_state sb = {ntb, tb};
    TP_CHECKF(tp_checkpoint_load(path, &b, &sb, NULL, &err) == TP_OK, "%s", err.msg);
    for (int s = 3; s < 5; s++) {
        set_grads(&b, s);
        TP_CHECK(tp_adamw_step(ob, 1e-2f, &err) == TP_OK);
    }
    TP_CHECK(tp_adamw_steps(ob) == 5);
    for (int i = 0; i < a.n; i++)
        TP_CHECKF(memcmp(a.p[i]->data, b.p[i]->data, (size_t)tp_numel(a.p[i]) * 4) == 0,
                  "param %s differs after resume", a.p[i]->name);
    tp_adamw_free(oa);
    tp_adamw_free(ob);
    free_params(&a);
    free_params(&b);
}

TP_TEST_RUN(TP_CASE(test_roundtrip), TP_CASE(test_mismatches), TP_CASE(test_bf16_file_loads),
            TP_CASE(test_adamw_resume_is_exact))
