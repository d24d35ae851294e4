/* bench_tokenizer.c — tokenises the sentences of a JSONL file (one JSON string per line, e.g.
 * .carry/tok/bench_sst2.jsonl from tests/golden/tokenizer/extract_texts.py) with one tokenizer,
 * single-threaded, and prints one JSON object: load time, a cold pass (empty pre-token cache),
 * the best of three warm passes, sentences/s and tokens/s, and the token count (equal to HF's
 * n_tokens in bench_hf.json when both tokenised the same sentences the same way).
 *
 * Build (static PCRE2 + jansson, so it runs on the GPU machine, which lacks them):
 *   mkdir -p build-tokbench && gcc -O2 -std=c11 -D_GNU_SOURCE -Iharness/include -Iharness \
 *     bench/bench_tokenizer.c harness/model/tokenizer*.c harness/model/unicode_nfc*.c \
 *     harness/model/spm_proto.c harness/util/status.c harness/util/fsutil.c \
 *     harness/util/strutil.c -Wl,-Bstatic -lpcre2-8 -ljansson -Wl,-Bdynamic -lpthread \
 *     -o build-tokbench/bench_tokenizer
 * Usage: bench_tokenizer TOKENIZER SENTENCES.jsonl */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long pass(const tp_tokenizer *t, char **s, int n, double *secs, unsigned long long *sum) {
    long tokens = 0;
    *sum = 0;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        int32_t *ids;
        int k;
        tp_err err;
        if (tp_tokenizer_encode(t, s[i], 1, &ids, &k, &err) != TP_OK) {
            fprintf(stderr, "bench_tokenizer: sentence %d: %s\n", i, err.msg);
            return -1;
        }
        tokens += k;
        for (int j = 0; j < k; j++) *sum = *sum * 31 + (unsigned)ids[j];
        free(ids);
    }
    *secs = now() - t0;
    return tokens;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER SENTENCES.jsonl\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        fprintf(stderr, "bench_tokenizer: cannot open %s\n", argv[2]);
        return 1;
    }
    char **s = NULL, *line = NULL;
    int n = 0;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        json_t *j = json_loadb(line, (size_t)len, JSON_DECODE_ANY, NULL);
        if (!json_is_string(j)) {
            fprintf(stderr, "bench_tokenizer: %s line %d: expected a JSON string\n", argv[2],
                    n + 1);
            return 1;
        }
        s = realloc(s, (size_t)(n + 1) * sizeof *s);
        s[n++] = strdup(json_string_value(j));
        json_decref(j);
    }
    free(line);
    fclose(f);
    tp_tokenizer *t;
    tp_err err;
    double t0 = now();
    if (tp_tokenizer_load(&t, argv[1], &err) != TP_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
    }
    double load = now() - t0, cold, warm = 1e30;
    unsigned long long sum;
    long tokens = pass(t, s, n, &cold, &sum);
    if (tokens < 0) return 1;
    for (int r = 0; r < 3; r++) {
        double w;
        if (pass(t, s, n, &w, &sum) < 0) return 1;
        if (w < warm) warm = w;
    }
    printf("{\"tokenizer\": \"%s\", \"n_sentences\": %d, \"n_tokens\": %ld, \"load_s\": %.4f, "
           "\"cold_s\": %.4f, \"warm_s\": %.4f, \"sentences_per_s\": %.0f, \"tokens_per_s\": "
           "%.0f, \"ids_hash\": \"%016llx\"}\n",
           argv[1], n, tokens, load, cold, warm, n / warm, tokens / warm, sum);
    tp_tokenizer_free(t);
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
    return 0;
}
