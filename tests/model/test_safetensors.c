/* test_safetensors.c — safetensors reader/writer: round trips of every dtype, sharded sets,
 * every header validation error (each naming file and tensor), streaming writes, misaligned
 * data, and random corruptions of a valid file that must never crash (run under ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "tp_test.h"

static char g_path[1024];

static const char *tmp(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", tp_test_tmpdir(), name);
    return g_path;
}

static int write_bytes(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(buf, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

/* A raw file from a header string and a data blob (length field written as given). */
static int write_raw(const char *path, const char *hdr, const void *data, size_t dn) {
    size_t hl = strlen(hdr);
    unsigned char *buf = malloc(8 + hl + dn + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    if (dn) memcpy(buf + 8 + hl, data, dn);
    int r = write_bytes(path, buf, 8 + hl + dn);
    free(buf);
    return r;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void test_roundtrip_dtypes(void) {
    float f32[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-3f, -7.0f};
    /* bf16 of 1.0, -2.5, 0x1p-133 (subnormal), +inf */
    uint16_t bf16[4] = {0x3f80, 0xc020, 0x0001, 0x7f80};
    /* f16 of 1.0, -2.0, smallest subnormal 2^-24, 65504 */
    uint16_t f16[4] = {0x3c00, 0xc000, 0x0001, 0x7bff};
    int32_t i32[3] = {7, -1, 2147483647};
    float scalar = 42.0f;
    tp_err err = {0};
    tp_st_writer *w = tp_st_writer_new();
    TP_CHECK(w != NULL);
    TP_CHECK(tp_st_writer_add(w, "w.f32", TP_F32, 2, (int64_t[]){2, 3}, f32, &err) == TP_OK);
    TP_CHECK(tp_st_writer_add(w, "a.bf16", TP_BF16, 1, (int64_t[]){4}, bf16, &err) == TP_OK);
    TP_CHECK(tp_st_writer_add(w, "c.f16", TP_F16, 2, (int64_t[]){2, 2}, f16, &err) == TP_OK);
    TP_CHECK(tp_st_writer_add(w, "ids", TP_I32, 1, (int64_t[]){3}, i32, &err) == TP_OK);
    TP_CHECK(tp_st_writer_add(w, "scalar", TP_F32, 0, NULL, &scalar, &err) == TP_OK);
    TP_CHECK(tp_st_writer_add(w, "empty", TP_F32, 2, (int64_t[]){0, 5}, NULL, &err) == TP_OK);
    TP_CHECK(tp_st_writer_add(w, "ids", TP_I32, 1, (int64_t[]){3}, i32, &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "'ids' added twice") != NULL);
    TP_CHECK(tp_st_writer_meta(w, "format", "pt", &err) == TP_OK);
    TP_CHECK(tp_st_writer_meta(w, "step", "3", &err) == TP_OK);
    TP_CHECK(tp_st_writer_meta(w, "step", "4", &err) == TP_OK);
    const char *path = tmp("rt.safetensors");
    TP_CHECKF(tp_st_writer_write(w, path, &err) == TP_OK, "%s", err.msg);
    tp_st_writer_free(w);

    /* header length is padded to 8 */
    size_t n;
    unsigned char *raw = read_all(path, &n);
    TP_CHECK(raw && raw[0] % 8 == 0);
    free(raw);

    tp_st_model *m = NULL;
    TP_CHECKF(tp_st_open(&m, path, &err) == TP_OK, "%s", err.msg);
    if (!m) return;
    TP_CHECK(tp_st_count(m) == 6);
    /* name order */
    TP_CHECK(strcmp(tp_st_at(m, 0)->name, "a.bf16") == 0);
    TP_CHECK(strcmp(tp_st_at(m, 5)->name, "w.f32") == 0);
    TP_CHECK(tp_st_at(m, 6) == NULL && tp_st_at(m, -1) == NULL);
    const tp_st_tensor *t = tp_st_find(m, "w.f32");
    TP_CHECK(t && t->dtype == TP_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    TP_CHECK(t && t->nbytes == sizeof f32 && memcmp(t->data, f32, sizeof f32) == 0);
    TP_CHECK(t && strcmp(t->file, path) == 0);
    TP_CHECK(t && (uintptr_t)t->data % 4 == 0);
    t = tp_st_find(m, "ids");
    TP_CHECK(t && t->dtype == TP_I32 && memcmp(t->data, i32, sizeof i32) == 0);
    t = tp_st_find(m, "scalar");
    TP_CHECK(t && t->ndim == 0 && t->nbytes == 4 && *(const float *)t->data == 42.0f);
    t = tp_st_find(m, "empty");
    TP_CHECK(t && t->nbytes == 0 && t->shape[0] == 0 && t->shape[1] == 5);
    TP_CHECK(tp_st_find(m, "nope") == NULL);
    TP_CHECK(strcmp(tp_st_metadata(m, "format"), "pt") == 0);
    TP_CHECK(strcmp(tp_st_metadata(m, "step"), "4") == 0);
    TP_CHECK(tp_st_metadata(m, "absent") == NULL);

    float out[4];
    t = tp_st_find(m, "a.bf16");
    TP_CHECK(tp_st_read_f32(t, out, 4, &err) == TP_OK);
    TP_CHECK(out[0] == 1.0f && out[1] == -2.5f && out[2] == 0x1p-133f && isinf(out[3]));
    t = tp_st_find(m, "c.f16");
    TP_CHECK(tp_st_read_f32(t, out, 4, &err) == TP_OK);
    TP_CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0x1p-24f && out[3] == 65504.0f);
    TP_CHECK(tp_st_read_f32(t, out, 3, &err) == TP_ESHAPE);
    TP_CHECK(strstr(err.msg, "c.f16") && strstr(err.msg, "4 elements"));
    t = tp_st_find(m, "ids");
    TP_CHECK(tp_st_read_f32(t, out, 3, &err) == TP_EDTYPE);
    tp_st_close(m);

    /* a directory holding model.safetensors opens too */
    char dir[1024], dst[1100];
    snprintf(dir, sizeof dir, "%s/dirmodel", tp_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    TP_CHECK(rename(tmp("rt.safetensors"), dst) == 0);
    TP_CHECKF(tp_st_open(&m, dir, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(tp_st_count(m) == 6);
    tp_st_close(m);
}

static tp_status gen_fill(void *user, void *buf, size_t off, size_t nb, tp_err *err) {
    (void)err;
    unsigned char *b = buf;
    for (size_t i = 0; i < nb; i++) b[i] = (unsigned char)((off + i) * 31u + 7u);
    (*(int *)user)++;
    return TP_OK;
}

static tp_status fail_fill(void *user, void *buf, size_t off, size_t nb, tp_err *err) {
    (void)user, (void)buf, (void)off, (void)nb;
    return tp_errf(err, TP_EINVAL, "generator refused");
}

static void test_streaming_write(void) {
    tp_err err = {0};
    int calls = 0;
    tp_st_writer *w = tp_st_writer_new();
    /* 3M bf16 values = 6 MB > one 4 MB chunk */
    TP_CHECK(tp_st_writer_add_fill(w, "big", TP_BF16, 2, (int64_t[]){1000, 3000}, gen_fill, &calls,
                                   &err) == TP_OK);
    const char *path = tmp("stream.safetensors");
    TP_CHECKF(tp_st_writer_write(w, path, &err) == TP_OK, "%s", err.msg);
    tp_st_writer_free(w);
    TP_CHECK(calls == 2);
    tp_st_model *m = NULL;
    TP_CHECKF(tp_st_open(&m, path, &err) == TP_OK, "%s", err.msg);
    const tp_st_tensor *t = tp_st_find(m, "big");
    int ok = t && t->nbytes == 6000000;
    for (size_t i = 0; ok && i < t->nbytes; i++)
        if (((const unsigned char *)t->data)[i] != (unsigned char)(i * 31u + 7u)) ok = 0;
    TP_CHECK(ok);
    tp_st_close(m);

    /* a failing generator leaves neither the file nor the temp file */
    w = tp_st_writer_new();
    TP_CHECK(tp_st_writer_add_fill(w, "x", TP_F32, 1, (int64_t[]){10}, fail_fill, NULL, &err) ==
             TP_OK);
    const char *p2 = tmp("fail.safetensors");
    TP_CHECK(tp_st_writer_write(w, p2, &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "'x'") && strstr(err.msg, "generator refused"));
    TP_CHECK(access(p2, F_OK) != 0);
    tp_st_writer_free(w);

    /* unwritable location is an I/O error naming the path */
    float v = 1;
    w = tp_st_writer_new();
    TP_CHECK(tp_st_writer_add(w, "v", TP_F32, 1, (int64_t[]){1}, &v, &err) == TP_OK);
    TP_CHECK(tp_st_writer_write(w, "/nonexistent-dir/x.safetensors", &err) == TP_EIO);
    TP_CHECK(strstr(err.msg, "/nonexistent-dir/x.safetensors") != NULL);
    tp_st_writer_free(w);
}

/* Expects tp_st_open(path) to fail with code and a message holding each of want[]. */
static void expect_open_error(const char *path, tp_status code, const char *w1, const char *w2) {
    tp_err err = {0};
    tp_st_model *m = NULL;
    tp_status s = tp_st_open(&m, path, &err);
    TP_CHECKF(s == code, "%s: got %s (%s), want %s", path, tp_status_name(s), err.msg,
              tp_status_name(code));
    TP_CHECK(m == NULL);
    if (w1) TP_CHECKF(strstr(err.msg, w1) != NULL, "message '%s' lacks '%s'", err.msg, w1);
    if (w2) TP_CHECKF(strstr(err.msg, w2) != NULL, "message '%s' lacks '%s'", err.msg, w2);
    tp_st_close(m);
}

static void test_header_errors(void) {
    float d[4] = {1, 2, 3, 4};
    const char *p = tmp("bad.safetensors");
    write_bytes(p, "abc", 3);
    expect_open_error(p, TP_EFORMAT, p, "truncated");
    /* header length larger than the file */
    unsigned char big[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, big, 10);
    expect_open_error(p, TP_EFORMAT, "truncated", p);
    /* absurd header length */
    unsigned char huge[10] = {0, 0, 0, 0, 0, 0, 0, 0x10, '{', '}'};
    write_bytes(p, huge, 10);
    expect_open_error(p, TP_EFORMAT, "not sane", p);
    write_raw(p, "{\"a\": [1, 2", NULL, 0);
    expect_open_error(p, TP_EFORMAT, "malformed", p);
    write_raw(p, "[1,2]", NULL, 0);
    expect_open_error(p, TP_EFORMAT, "'{'", p);
    write_raw(p, "{\"t\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", d, 16);
    expect_open_error(p, TP_EUNSUP, "'t'", "F64");
    write_raw(p, "{\"t\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8);
    expect_open_error(p, TP_EFORMAT, "'t'", "unknown dtype 'Q4'");
    write_raw(p, "{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8);
    expect_open_error(p, TP_EFORMAT, "'t'", "dtype");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", d, 8);
    expect_open_error(p, TP_EFORMAT, "'t'", "outside the data region");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8);
    expect_open_error(p, TP_EFORMAT, "'t'", "12 bytes");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[-3],\"data_offsets\":[0,8]}}", d, 8);
    expect_open_error(p, TP_EFORMAT, "'t'", "shape[0]");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", d, 8);
    expect_open_error(p, TP_EUNSUP, "'t'", "5 dimensions");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", d, 8);
    expect_open_error(p, TP_EFORMAT, "'t'", "outside");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", d, 8);
    expect_open_error(p, TP_EFORMAT, "'t'", "data_offsets");
    write_raw(p,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
              d, 12);
    expect_open_error(p, TP_EFORMAT, "overlaps", "'a'");
    write_raw(p,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              d, 16);
    expect_open_error(p, TP_EFORMAT, "'b'", "gap");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 16);
    expect_open_error(p, TP_EFORMAT, "trailing", p);
    write_raw(p,
              "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
              d, 8);
    expect_open_error(p, TP_EFORMAT, "malformed", p);
    write_raw(p,
              "{\"__metadata__\":{\"k\":3},\"t\":{\"dtype\":\"F32\",\"shape\":[2],"
              "\"data_offsets\":[0,8]}}",
              d, 8);
    expect_open_error(p, TP_EFORMAT, "'k'", "string");
    expect_open_error(tmp("does-not-exist.safetensors"), TP_EIO, "does-not-exist", NULL);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/emptydir", tp_test_tmpdir());
    mkdir(dir, 0755);
    expect_open_error(dir, TP_EIO, "emptydir", "model.safetensors");
    /* truncated copy of a valid file */
    tp_err err = {0};
    tp_st_writer *w = tp_st_writer_new();
    tp_st_writer_add(w, "t", TP_F32, 1, (int64_t[]){4}, d, &err);
    tp_st_writer_write(w, p, &err);
    tp_st_writer_free(w);
    size_t n;
    unsigned char *raw = read_all(p, &n);
    write_bytes(p, raw, n - 3);
    free(raw);
    expect_open_error(p, TP_EFORMAT, "'t'", p);
}

static void test_misaligned(void) {
    /* header of odd length, not padded: the f32 data lands at an odd offset */
    const char *hdr = "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    TP_CHECK(strlen(hdr) % 4 != 0);
    float d[3] = {1.25f, -3.0f, 9.5f};
    const char *p = tmp("misaligned.safetensors");
    write_raw(p, hdr, d, 12);
    tp_err err = {0};
    tp_st_model *m = NULL;
    TP_CHECKF(tp_st_open(&m, p, &err) == TP_OK, "%s", err.msg);
    const tp_st_tensor *t = tp_st_find(m, "t");
    TP_CHECK(t && (uintptr_t)t->data % 4 == 0);
    TP_CHECK(t && memcmp(t->data, d, 12) == 0);
    tp_st_close(m);
}

static void write_shard(const char *dir, const char *name, const char *t1, const char *t2,
                        const float *v) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tp_err err = {0};
    tp_st_writer *w = tp_st_writer_new();
    tp_st_writer_add(w, t1, TP_F32, 1, (int64_t[]){2}, v, &err);
    if (t2) tp_st_writer_add(w, t2, TP_F32, 1, (int64_t[]){2}, v + 2, &err);
    tp_st_writer_meta(w, "format", "pt", &err);
    TP_CHECKF(tp_st_writer_write(w, path, &err) == TP_OK, "%s", err.msg);
    tp_st_writer_free(w);
}

static void write_index(const char *dir, const char *body) {
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_bytes(path, body, strlen(body));
}

static void test_sharded(void) {
    char dir[1024], idx[1200];
    snprintf(dir, sizeof dir, "%s/sharded", tp_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    float v[4] = {1, 2, 3, 4};
    write_shard(dir, "model-00001-of-00002.safetensors", "a", "b", v);
    write_shard(dir, "model-00002-of-00002.safetensors", "c", NULL, v);
    write_index(dir, "{\"metadata\":{\"total_size\":\"24\"},\"weight_map\":{"
                     "\"a\":\"model-00001-of-00002.safetensors\","
                     "\"b\":\"model-00001-of-00002.safetensors\","
                     "\"c\":\"model-00002-of-00002.safetensors\"}}");
    tp_err err = {0};
    tp_st_model *m = NULL;
    TP_CHECKF(tp_st_open(&m, dir, &err) == TP_OK, "%s", err.msg);
    TP_CHECK(tp_st_count(m) == 3);
    const tp_st_tensor *t = tp_st_find(m, "b");
    TP_CHECK(t && ((const float *)t->data)[0] == 3.0f && strstr(t->file, "00001"));
    t = tp_st_find(m, "c");
    TP_CHECK(t && ((const float *)t->data)[1] == 2.0f && strstr(t->file, "00002"));
    TP_CHECK(tp_st_metadata(m, "total_size") && strcmp(tp_st_metadata(m, "total_size"), "24") == 0);
    TP_CHECK(tp_st_metadata(m, "format") && strcmp(tp_st_metadata(m, "format"), "pt") == 0);
    tp_st_close(m);
    /* the index path itself opens too */
    TP_CHECKF(tp_st_open(&m, idx, &err) == TP_OK, "%s", err.msg);
    tp_st_close(m);

    /* tensor in the index but not in its shard */
    write_index(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                     "\"b\":\"model-00001-of-00002.safetensors\","
                     "\"c\":\"model-00002-of-00002.safetensors\","
                     "\"d\":\"model-00002-of-00002.safetensors\"}}");
    expect_open_error(dir, TP_EFORMAT, "'d'", "00002");
    /* tensor in a shard but not in the index */
    write_index(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                     "\"c\":\"model-00002-of-00002.safetensors\"}}");
    expect_open_error(dir, TP_EFORMAT, "'b'", "not listed");
    /* listed in the wrong shard */
    write_index(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                     "\"b\":\"model-00001-of-00002.safetensors\","
                     "\"c\":\"model-00001-of-00002.safetensors\","
                     "\"z\":\"model-00002-of-00002.safetensors\"}}");
    expect_open_error(dir, TP_EFORMAT, "'c'", "00001");
    /* missing shard */
    write_index(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                     "\"b\":\"model-00001-of-00002.safetensors\","
                     "\"c\":\"model-00003-of-00003.safetensors\"}}");
    expect_open_error(dir, TP_EIO, "model-00003-of-00003.safetensors", "'c'");
    /* path escape and malformed index */
    write_index(dir, "{\"weight_map\":{\"a\":\"../x.safetensors\"}}");
    expect_open_error(dir, TP_EFORMAT, "plain file name", "'a'");
    write_index(dir, "{\"weight_map\":[1]}");
    expect_open_error(dir, TP_EFORMAT, "weight_map", idx);
    write_index(dir, "{\"weight_map\":{");
    expect_open_error(dir, TP_EFORMAT, "malformed JSON", idx);
    /* a corrupt shard names the shard */
    write_index(dir, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                     "\"b\":\"model-00001-of-00002.safetensors\","
                     "\"c\":\"model-00002-of-00002.safetensors\"}}");
    char shard2[1200];
    snprintf(shard2, sizeof shard2, "%s/model-00002-of-00002.safetensors", dir);
    write_bytes(shard2, "xx", 2);
    expect_open_error(dir, TP_EFORMAT, "model-00002-of-00002.safetensors", "truncated");
}

/* xorshift for reproducible corruptions */
static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static void test_fuzz_corruptions(void) {
    float d[24];
    for (int i = 0; i < 24; i++) d[i] = (float)i;
    uint16_t h[6] = {1, 2, 3, 4, 5, 6};
    tp_err err = {0};
    tp_st_writer *w = tp_st_writer_new();
    tp_st_writer_add(w, "model.layers.0.weight", TP_F32, 2, (int64_t[]){4, 6}, d, &err);
    tp_st_writer_add(w, "model.norm.weight", TP_BF16, 1, (int64_t[]){6}, h, &err);
    tp_st_writer_add(w, "ids", TP_I32, 1, (int64_t[]){3}, d, &err);
    tp_st_writer_meta(w, "format", "pt", &err);
    const char *p = tmp("fuzz-src.safetensors");
    TP_CHECK(tp_st_writer_write(w, p, &err) == TP_OK);
    tp_st_writer_free(w);
    size_t n;
    unsigned char *orig = read_all(p, &n);
    unsigned char *buf = malloc(n + 64);
    const char *fp = tmp("fuzz.safetensors");
    int opened = 0, failed = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, orig, n);
        size_t len = n;
        int kind = (int)(rnd() % 5);
        int reps = 1 + (int)(rnd() % 4);
        for (int r = 0; r < reps; r++) {
            if (kind == 0) { /* flip a byte anywhere */
                buf[rnd() % len] ^= (unsigned char)(1u << (rnd() % 8));
            } else if (kind == 1) { /* replace a header byte with a JSON-significant char */
                static const char sig[] = "{}[],:\"0123456789-e .";
                buf[8 + rnd() % (len - 8)] = (unsigned char)sig[rnd() % (sizeof sig - 1)];
            } else if (kind == 2) { /* truncate */
                len = (size_t)(rnd() % len);
                if (len == 0) len = 1;
            } else if (kind == 3) { /* corrupt the length field */
                buf[rnd() % 8] = (unsigned char)rnd();
            } else { /* random digits into offsets/shape area */
                size_t at = 8 + rnd() % (len - 8);
                buf[at] = (unsigned char)('0' + rnd() % 10);
            }
        }
        write_bytes(fp, buf, len);
        tp_st_model *m = NULL;
        tp_err e2 = {0};
        if (tp_st_open(&m, fp, &e2) == TP_OK) {
            opened++;
            /* touch every byte of every tensor: ASan catches any out-of-bounds view */
            unsigned sum = 0;
            for (int i = 0; i < tp_st_count(m); i++) {
                const tp_st_tensor *t = tp_st_at(m, i);
                for (size_t b = 0; b < t->nbytes; b++) sum += ((const unsigned char *)t->data)[b];
            }
            (void)sum;
            tp_st_close(m);
        } else {
            failed++;
            TP_CHECKF(e2.msg[0] != 0, "error without a message (code %d)", e2.code);
            TP_CHECKF(strstr(e2.msg, "fuzz.safetensors") != NULL, "error lacks file: %s", e2.msg);
        }
    }
    TP_CHECK(failed > 1000); /* most corruptions must be caught */
    fprintf(stderr, "fuzz: %d opened (harmless corruptions), %d rejected\n", opened, failed);
    free(buf);
    free(orig);
}

TP_TEST_RUN(TP_CASE(test_roundtrip_dtypes), TP_CASE(test_streaming_write),
            TP_CASE(test_header_errors), TP_CASE(test_misaligned), TP_CASE(test_sharded),
            TP_CASE(test_fuzz_corruptions))
