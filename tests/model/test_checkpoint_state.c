/* test_checkpoint_state.c — the opaque bridge-state blob in checkpoints (checkpoint.h,
 * tp_checkpoint_save_blob / tp_checkpoint_load_blob): bytes of any length round trip exactly
 * beside the params, a file without a blob loads with present = 0, a loader that asks for no
 * blob ignores one, and a damaged blob (sha256 mismatch, metadata missing or contradicting the
 * tensor) is a TP_EFORMAT error naming the file, found before any parameter is written; the
 * blob's tensor and metadata names are reserved. */
#include <stdlib.h>
#include <string.h>

#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tp_test.h"
#include "util/sha256.h"

static const char *path_of(const char *name) {
    static char p[4][1024];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, 1024, "%s/%s", tp_test_tmpdir(), name);
    return s;
}

/* one parameter "w" [3] = base, base + 1, base + 2 */
static void make(tp_params *ps, float base) {
    tp_err err = {0};
    ps->n = 0;
    tp_tensor *t = tp_param_alloc("w", 1, (int64_t[]){3}, &err);
    TP_CHECKF(t != NULL, "%s", err.msg);
    if (!t) return;
    for (int i = 0; i < 3; i++) ((float *)t->data)[i] = base + (float)i;
    ps->p[ps->n++] = t;
}

static void drop(tp_params *ps) {
    for (int i = 0; i < ps->n; i++) tp_tensor_free(ps->p[i]);
    ps->n = 0;
}

static void test_blob_roundtrip(void) {
    tp_err err = {0};
    tp_params a = {0}, b = {0};
    make(&a, 1.0f);
    make(&b, -5.0f);
    /* 7 bytes: not a multiple of the I32 words it is stored in */
    unsigned char bytes[7] = {1, 2, 3, 250, 0, 7, 9};
    tp_ckpt_blob blob = {bytes, sizeof bytes, 0};
    const char *p = path_of("blob.safetensors");
    TP_CHECKF(tp_checkpoint_save_blob(p, &a, NULL, &blob, "{\"step\":\"3\"}", &err) == TP_OK, "%s",
              err.msg);
    tp_ckpt_blob got;
    char *meta = NULL;
    TP_CHECKF(tp_checkpoint_load_blob(p, &b, NULL, &got, &meta, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(got.present && got.n == sizeof bytes && got.data &&
             !memcmp(got.data, bytes, sizeof bytes));
    TP_CHECK(((float *)b.p[0]->data)[2] == 3.0f);
    TP_CHECK(meta && strstr(meta, "\"bridge_state_bytes\":\"7\"") && strstr(meta, "\"step\""));
    free(got.data);
    free(meta);
    /* an evaluation-style load that asks for no blob ignores it */
    TP_CHECKF(tp_checkpoint_load(p, &b, NULL, NULL, &err) == TP_OK, "%s", err.msg);
    /* a file without a blob: present = 0 */
    const char *q = path_of("noblob.safetensors");
    TP_CHECK(tp_checkpoint_save(q, &a, NULL, NULL, &err) == TP_OK);
    TP_CHECKF(tp_checkpoint_load_blob(q, &b, NULL, &got, NULL, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(!got.present && got.data == NULL && got.n == 0);
    /* n = 0 saves nothing */
    tp_ckpt_blob empty = {NULL, 0, 0};
    TP_CHECK(tp_checkpoint_save_blob(q, &a, NULL, &empty, NULL, &err) == TP_OK);
    tp_st_model *m = NULL;
    TP_CHECK(tp_st_open(&m, q, &err) == TP_OK);
    if (m) TP_CHECK(tp_st_find(m, TP_CKPT_BLOB_TENSOR) == NULL);
    tp_st_close(m);
    drop(&a);
    drop(&b);
}

/* Writes a checkpoint holding "w" and a hand-made blob tensor/metadata. */
static void write_raw(const char *path, const void *words, int64_t nwords, const char *bytes,
                      const char *sha) {
    tp_err err = {0};
    float w[3] = {7, 8, 9};
    tp_st_writer *wr = tp_st_writer_new();
    tp_st_writer_add(wr, "w", TP_F32, 1, (int64_t[]){3}, w, &err);
    if (words)
        tp_st_writer_add(wr, TP_CKPT_BLOB_TENSOR, TP_I32, 1, (int64_t[]){nwords}, words, &err);
    if (bytes) tp_st_writer_meta(wr, "bridge_state_bytes", bytes, &err);
    if (sha) tp_st_writer_meta(wr, "bridge_state_sha256", sha, &err);
    TP_CHECKF(tp_st_writer_write(wr, path, &err) == TP_OK, "%s", err.msg);
    tp_st_writer_free(wr);
}

static void expect_bad(const char *path, const char *want) {
    tp_err err = {0};
    tp_params b = {0};
    make(&b, -1.0f);
    tp_ckpt_blob got;
    tp_status st = tp_checkpoint_load_blob(path, &b, NULL, &got, NULL, &err);
    TP_CHECKF(st == TP_EFORMAT && strstr(err.msg, path) && strstr(err.msg, want), "%d %s", (int)st,
              err.msg);
    TP_CHECK(got.data == NULL && !got.present);
    /* nothing was written */
    if (b.n) TP_CHECK(((float *)b.p[0]->data)[0] == -1.0f);
    drop(&b);
}

static void test_blob_damaged(void) {
    int32_t words[2] = {0x04030201, 0x00000005};
    char good[65], other[65];
    tp_sha256_hex(words, 5, good);
    tp_sha256_hex(words, 4, other);
    const char *p = path_of("bad.safetensors");
    write_raw(p, words, 2, "5", good);
    {
        tp_err err = {0};
        tp_params b = {0};
        make(&b, 0);
        tp_ckpt_blob got;
        TP_CHECKF(tp_checkpoint_load_blob(p, &b, NULL, &got, NULL, &err) == TP_OK, "%s", err.msg);
        TP_CHECK(got.present && got.n == 5);
        free(got.data);
        drop(&b);
    }
    write_raw(p, words, 2, "5", other);
    expect_bad(p, "corrupted");
    write_raw(p, words, 2, NULL, good);
    expect_bad(p, "incomplete bridge state");
    write_raw(p, NULL, 0, "5", good);
    expect_bad(p, "incomplete bridge state");
    write_raw(p, words, 2, "9", good); /* 9 bytes need 3 words */
    expect_bad(p, "not I32 [3]");
    write_raw(p, words, 2, "five", good);
    expect_bad(p, "expected a positive byte count");
}

static void test_reserved_names(void) {
    tp_err err = {0};
    tp_params a = {0};
    tp_tensor *t = tp_param_alloc(TP_CKPT_BLOB_TENSOR, 1, (int64_t[]){1}, &err);
    TP_CHECK(t != NULL);
    if (!t) return;
    a.p[a.n++] = t;
    const char *p = path_of("reserved.safetensors");
    TP_CHECK(tp_checkpoint_save(p, &a, NULL, NULL, &err) == TP_EINVAL &&
             strstr(err.msg, "reserved for the bridge state"));
    drop(&a);
    make(&a, 0);
    TP_CHECK(tp_checkpoint_save(p, &a, NULL, "{\"bridge_state_bytes\":\"4\"}", &err) == TP_EINVAL &&
             strstr(err.msg, "reserved"));
    drop(&a);
}

TP_TEST_RUN(TP_CASE(test_blob_roundtrip), TP_CASE(test_blob_damaged), TP_CASE(test_reserved_names))
