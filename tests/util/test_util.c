/* test_util.c — util: SHA-256 against FIPS vectors, canonical JSON (key order, number forms,
 * stable hash), Levenshtein and suggestions, strbuf, fsutil (read, mkdir -p, atomic write). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tp_test.h"
#include "util/canon_json.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/sha256.h"
#include "util/strutil.h"

static void sha256_vectors(void) {
    char hex[TP_SHA256_HEX];
    tp_sha256_hex("", 0, hex);
    TP_CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    tp_sha256_hex("abc", 3, hex);
    TP_CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    tp_sha256_hex(m, strlen(m), hex);
    TP_CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    /* one million 'a', fed in odd-sized pieces to exercise the block buffering */
    tp_sha256 s;
    tp_sha256_init(&s);
    char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof chunk ? left : sizeof chunk;
        tp_sha256_update(&s, chunk, k);
        left -= k;
    }
    uint8_t dg[32];
    tp_sha256_final(&s, dg);
    tp_sha256_to_hex(dg, hex);
    TP_CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
    /* lengths around the padding boundary must differ from each other and be stable */
    char a[130];
    memset(a, 'x', sizeof a);
    char h55[TP_SHA256_HEX], h56[TP_SHA256_HEX], h64[TP_SHA256_HEX];
    tp_sha256_hex(a, 55, h55);
    tp_sha256_hex(a, 56, h56);
    tp_sha256_hex(a, 64, h64);
    TP_CHECK(strcmp(h55, h56) != 0 && strcmp(h56, h64) != 0);
}

static void sha256_file(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/abc.txt", tp_test_tmpdir());
    tp_err err = {0};
    TP_CHECK(tp_write_file_atomic(path, "abc", 3, &err) == TP_OK);
    char hex[TP_SHA256_HEX];
    TP_CHECK(tp_sha256_file_hex(path, hex, &err) == TP_OK);
    TP_CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    snprintf(path, sizeof path, "%s/missing.bin", tp_test_tmpdir());
    TP_CHECK(tp_sha256_file_hex(path, hex, &err) == TP_EIO);
    TP_CHECK(strstr(err.msg, "missing.bin") != NULL);
}

static char *canon_of(const char *text) {
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (!v) return NULL;
    char *out = NULL;
    tp_err err = {0};
    if (tp_canon_json(v, &out, &err) != TP_OK) out = NULL;
    json_decref(v);
    return out;
}

static void canon_json_forms(void) {
    char *s =
        canon_of("{ \"b\": 1, \"a\": [true, null, 2.5], \"c\": {\"z\": \"x\\ny\", \"y\": 1.0}}");
    TP_CHECKF(s && strcmp(s, "{\"a\":[true,null,2.5],\"b\":1,\"c\":{\"y\":1.0,\"z\":\"x\\ny\"}}") ==
                       0,
              "got %s", s ? s : "(null)");
    free(s);
    s = canon_of("[0.1, 1e300, -0.0, 100000000000000000000.0, 3, \"\\u0001\\\"\"]");
    TP_CHECKF(s && strcmp(s, "[0.1,1e+300,-0.0,1e+20,3,\"\\u0001\\\"\"]") == 0, "got %s",
              s ? s : "(null)");
    free(s);
    char buf[64];
    tp_canon_real(1.0 / 3.0, buf, sizeof buf);
    TP_CHECK(strtod(buf, NULL) == 1.0 / 3.0);
    tp_canon_real(2.0, buf, sizeof buf);
    TP_CHECK(strcmp(buf, "2.0") == 0);
}

static void canon_json_hash_stable(void) {
    /* same content, different key order and whitespace: same hash; any value change: different */
    json_error_t je;
    json_t *a = json_loads("{\"lr\": 0.001, \"tokens\": 16, \"bridge\": {\"name\": \"perceiver\"}}",
                           0, &je);
    json_t *b =
        json_loads("{\"bridge\":{\"name\":\"perceiver\"},\"tokens\":16,\"lr\":1e-3}", 0, &je);
    json_t *c =
        json_loads("{\"bridge\":{\"name\":\"perceiver\"},\"tokens\":17,\"lr\":1e-3}", 0, &je);
    char ha[TP_SHA256_HEX], hb[TP_SHA256_HEX], hc[TP_SHA256_HEX];
    tp_err err = {0};
    char *canon = NULL;
    TP_CHECK(tp_canon_json_hash(a, &canon, ha, &err) == TP_OK);
    TP_CHECK(tp_canon_json_hash(b, NULL, hb, &err) == TP_OK);
    TP_CHECK(tp_canon_json_hash(c, NULL, hc, &err) == TP_OK);
    TP_CHECK(strcmp(ha, hb) == 0);
    TP_CHECK(strcmp(ha, hc) != 0);
    TP_CHECKF(
        canon &&
            strcmp(canon, "{\"bridge\":{\"name\":\"perceiver\"},\"lr\":0.001,\"tokens\":16}") == 0,
        "got %s", canon ? canon : "(null)");
    /* the hash is the sha256 of the canonical bytes, so it can be checked with sha256sum */
    char h2[TP_SHA256_HEX];
    tp_sha256_hex(canon, strlen(canon), h2);
    TP_CHECK(strcmp(h2, ha) == 0);
    free(canon);
    json_t *bad = json_pack("{s:f}", "x", 1.0);
    json_real_set(json_object_get(bad, "x"), 0.0);
    TP_CHECK(tp_canon_json_hash(bad, NULL, ha, &err) == TP_OK);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(bad);
}

static void levenshtein_and_suggest(void) {
    TP_CHECK(tp_levenshtein("", "") == 0);
    TP_CHECK(tp_levenshtein("kitten", "sitting") == 3);
    TP_CHECK(tp_levenshtein("tokns", "tokens") == 1);
    TP_CHECK(tp_levenshtein("abc", "") == 3);
    TP_CHECK(tp_levenshtein("flaw", "lawn") == 2);
    const char *names[] = {"tokens", "depth", "heads", "dropout"};
    TP_CHECK(tp_suggest("tokns", names, 4) == names[0]);
    TP_CHECK(tp_suggest("dept", names, 4) == names[1]);
    TP_CHECK(tp_suggest("DEPTH", names, 4) == names[1]);
    TP_CHECK(tp_suggest("learning_rate", names, 4) == NULL);
    TP_CHECK(tp_suggest("x", names, 0) == NULL);
    char buf[32];
    tp_str_join_list(buf, sizeof buf, names, 2);
    TP_CHECK(strcmp(buf, "tokens, depth") == 0);
    tp_str_join_list(buf, 16, names, 4);
    TP_CHECKF(strlen(buf) < 16 && strstr(buf, "...") != NULL, "got '%s'", buf);
}

static void strbuf_and_trim(void) {
    tp_strbuf b;
    tp_strbuf_init(&b);
    for (int i = 0; i < 1000; i++) tp_strbuf_printf(&b, "%d,", i % 10);
    TP_CHECK(b.len == 2000);
    char *s = tp_strbuf_take(&b);
    TP_CHECK(s && strncmp(s, "0,1,2,", 6) == 0 && strlen(s) == 2000);
    free(s);
    s = tp_strbuf_take(&b);
    TP_CHECK(s && s[0] == 0);
    free(s);
    char t[] = "  \t hello world \n";
    TP_CHECK(strcmp(tp_str_trim(t), "hello world") == 0);
    char small[4];
    TP_CHECK(tp_strlcpy(small, "abcdef", sizeof small) == 6 && strcmp(small, "abc") == 0);
    TP_CHECK(tp_str_ends_with("x.so", ".so") && !tp_str_ends_with("so", ".so"));
}

static void fs_helpers(void) {
    tp_err err = {0};
    char dir[600], file[700], path[800];
    snprintf(dir, sizeof dir, "%s/a/b/c/", tp_test_tmpdir());
    TP_CHECK(tp_mkdir_p(dir, &err) == TP_OK);
    TP_CHECK(tp_mkdir_p(dir, &err) == TP_OK); /* idempotent */
    TP_CHECK(tp_dir_exists(dir));
    TP_CHECK(tp_path_join(file, sizeof file, dir, "f.txt", &err) == TP_OK);
    TP_CHECK(strstr(file, "c/f.txt") && !strstr(file, "//"));
    TP_CHECK(tp_write_file_atomic(file, "one", 3, &err) == TP_OK);
    TP_CHECK(tp_write_file_atomic(file, "second", 6, &err) == TP_OK);
    char *data;
    size_t n;
    TP_CHECK(tp_read_file(file, &data, &n, &err) == TP_OK);
    TP_CHECK(n == 6 && strcmp(data, "second") == 0);
    free(data);
    /* a file where a directory is wanted */
    snprintf(path, sizeof path, "%s/x", file);
    TP_CHECK(tp_mkdir_p(path, &err) == TP_EIO);
    TP_CHECKF(strstr(err.msg, "not a directory") != NULL, "%s", err.msg);
    /* writing into a missing directory names the path */
    snprintf(path, sizeof path, "%s/nope/f.txt", tp_test_tmpdir());
    TP_CHECK(tp_write_file_atomic(path, "x", 1, &err) == TP_EIO);
    TP_CHECK(strstr(err.msg, "nope/f.txt") != NULL);
    TP_CHECK(tp_read_file(path, &data, &n, &err) == TP_EIO && data == NULL);
    /* a large file crosses the read buffer growth */
    size_t big = 300000;
    char *blob = malloc(big);
    for (size_t i = 0; i < big; i++) blob[i] = (char)('a' + i % 26);
    TP_CHECK(tp_write_file_atomic(file, blob, big, &err) == TP_OK);
    TP_CHECK(tp_read_file(file, &data, &n, &err) == TP_OK && n == big &&
             memcmp(data, blob, big) == 0);
    free(data);
    free(blob);
}

static void fs_disk_full(void) {
    tp_err err = {0};
    TP_CHECK(tp_fs_write_error(&err, "writing", "/x/results.db", ENOSPC) == TP_EIO);
    TP_CHECKF(strstr(err.msg, "disk full") && strstr(err.msg, "/x/results.db"), "%s", err.msg);
    TP_CHECK(tp_fs_write_error(&err, "writing", "/x/y", EACCES) == TP_EIO);
    TP_CHECK(strstr(err.msg, "disk full") == NULL);
}

static void log_levels(void) {
    TP_CHECK(tp_log_level_parse("warn") == TP_LOG_WARN);
    TP_CHECK(tp_log_level_parse("loud") == -1);
    tp_log_set_quiet(1);
    TP_CHECK(tp_log_get_level() == TP_LOG_WARN);
    tp_log(TP_LOG_INFO, "test", "this must not appear");
    tp_log_set_quiet(0);
    TP_CHECK(tp_log_get_level() == TP_LOG_INFO);
    TP_CHECK(strcmp(tp_log_level_name(TP_LOG_ERROR), "error") == 0);
}

TP_TEST_RUN(TP_CASE(sha256_vectors), TP_CASE(sha256_file), TP_CASE(canon_json_forms),
            TP_CASE(canon_json_hash_stable), TP_CASE(levenshtein_and_suggest),
            TP_CASE(strbuf_and_trim), TP_CASE(fs_helpers), TP_CASE(fs_disk_full),
            TP_CASE(log_levels))
