/* cmd_tokenize.c — `telepathy tokenize --tokenizer PATH [--no-bos] TEXT...` prints the ids of
 * each TEXT and one line per token (id, piece as stored in the vocab, decoded text), for checking
 * a tokenizer by eye; `--decode ID,ID,...` goes the other way. PATH is a tokenizer.json, a
 * SentencePiece tokenizer.model or a model directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/tokenizer.h"

static const char *usage =
    "usage: telepathy tokenize --tokenizer PATH [--no-bos] [--ids-only] TEXT...\n"
    "       telepathy tokenize --tokenizer PATH --decode ID[,ID...] [--skip-special]\n"
    "Prints the token ids of each TEXT (with BOS unless --no-bos) and, unless --ids-only, one\n"
    "line per token: id, the vocab piece, and the text it decodes to.\n"
    "  --tokenizer PATH  tokenizer.json, SentencePiece tokenizer.model, or a model directory\n"
    "  --no-bos          do not add the BOS token (the post-processor template)\n"
    "  --ids-only        print only the id list\n"
    "  --decode IDS      decode comma-separated ids instead\n"
    "  --skip-special    with --decode: drop special tokens\n"
    "  --spm-mode M      for a SentencePiece tokenizer.model: sentencepiece (default: merges by\n"
    "                    piece score, as the sentencepiece library) or transformers5 (what\n"
    "                    transformers 5 builds from a bare .model: piece-order merges)\n";

/* Prints s as a JSON-style quoted string so spaces, newlines and control bytes are visible. */
static void print_quoted(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p == '\t')
            fputs("\\t", stdout);
        else if (*p == '\r')
            fputs("\\r", stdout);
        else if (*p < 0x20 || *p == 0x7F)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static int do_decode(const tp_tokenizer *t, const char *list, int skip) {
    int cap = 16, n = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    const char *p = list;
    while (ids && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < -2147483647L || v > 2147483647L) {
            free(ids);
            return tp_cli_usage_error("tokenize", "--decode: '%s' is not a comma-separated id list",
                                      list);
        }
        if (n == cap) {
            int32_t *nv = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            if (!nv) break;
            ids = nv;
        }
        ids[n++] = (int32_t)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    tp_err err = {0};
    char *text = NULL;
    if (!ids) return tp_cli_fail("tokenize", &(tp_err){TP_ENOMEM, "out of memory"});
    tp_status st = tp_tokenizer_decode(t, ids, n, skip, &text, &err);
    free(ids);
    if (st != TP_OK) return tp_cli_fail("tokenize", &err);
    printf("%s\n", text);
    free(text);
    return 0;
}

int tp_cmd_tokenize(int argc, char **argv, tp_cli_env *env) {
    (void)env;
    if (tp_cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *path = NULL, *decode = NULL, *mode = NULL;
    int bos = 1, ids_only = 0, skip = 0, n_texts = 0, dashdash = 0;
    const char **texts = calloc((size_t)argc + 1, sizeof *texts);
    if (!texts) return tp_cli_fail("tokenize", &(tp_err){TP_ENOMEM, "out of memory"});
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dashdash) {
            texts[n_texts++] = a;
        } else if (strcmp(a, "--") == 0) {
            dashdash = 1;
        } else if (strcmp(a, "--tokenizer") == 0 || strcmp(a, "--decode") == 0 ||
                   strcmp(a, "--spm-mode") == 0) {
            if (i + 1 >= argc) {
                free(texts);
                return tp_cli_usage_error("tokenize", "%s needs a value", a);
            }
            *(a[2] == 't' ? &path : a[2] == 'd' ? &decode : &mode) = argv[++i];
        } else if (strcmp(a, "--no-bos") == 0) {
            bos = 0;
        } else if (strcmp(a, "--ids-only") == 0) {
            ids_only = 1;
        } else if (strcmp(a, "--skip-special") == 0) {
            skip = 1;
        } else if (a[0] == '-' && a[1]) {
            free(texts);
            return tp_cli_usage_error("tokenize", "unknown option '%s'", a);
        } else {
            texts[n_texts++] = a;
        }
    }
    int rc = 0;
    if (!path)
        rc = tp_cli_usage_error("tokenize", "missing --tokenizer PATH");
    else if (!decode && !n_texts)
        rc = tp_cli_usage_error("tokenize", "missing TEXT");
    else if (decode && n_texts)
        rc = tp_cli_usage_error("tokenize", "--decode takes no TEXT");
    else if (mode && strcmp(mode, "sentencepiece") != 0 && strcmp(mode, "transformers5") != 0)
        rc = tp_cli_usage_error("tokenize",
                                "--spm-mode '%s': expected sentencepiece or transformers5", mode);
    if (rc) {
        free(texts);
        return rc;
    }
    tp_err err = {0};
    tp_tokenizer *t = NULL;
    tp_tokenizer_opts opts = {mode && strcmp(mode, "transformers5") == 0 ? TP_SPM_TRANSFORMERS5
                                                                         : TP_SPM_SENTENCEPIECE};
    if (tp_tokenizer_load_opts(&t, path, &opts, &err) != TP_OK) {
        free(texts);
        return tp_cli_fail("tokenize", &err);
    }
    if (decode) {
        rc = do_decode(t, decode, skip);
        tp_tokenizer_free(t);
        free(texts);
        return rc;
    }
    for (int i = 0; i < n_texts && rc == 0; i++) {
        int32_t *ids = NULL;
        int n = 0;
        if (tp_tokenizer_encode(t, texts[i], bos, &ids, &n, &err) != TP_OK) {
            rc = tp_cli_fail("tokenize", &err);
            break;
        }
        if (!ids_only)
            printf("%d tokens (%s, vocab %d):\n", n, tp_tokenizer_kind(t),
                   tp_tokenizer_vocab_size(t));
        putchar('[');
        for (int k = 0; k < n; k++) printf("%s%d", k ? ", " : "", ids[k]);
        puts("]");
        for (int k = 0; k < n && !ids_only; k++) {
            char *piece_text = NULL;
            printf("  %7d  ", ids[k]);
            print_quoted(tp_tokenizer_piece(t, ids[k]));
            if (tp_tokenizer_decode(t, &ids[k], 1, 0, &piece_text, &err) == TP_OK) {
                fputs("  -> ", stdout);
                print_quoted(piece_text);
            }
            putchar('\n');
            free(piece_text);
        }
        free(ids);
    }
    tp_tokenizer_free(t);
    free(texts);
    return rc;
}
