/* cmd_import_llama2c.c — `telepathy import-llama2c MODEL.bin TOK.bin DIR`: converts a llama2.c
 * checkpoint and tokenizer into a Hugging Face model directory (see model/llama2c.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "model/llama2c.h"

static const char *usage =
    "usage: telepathy import-llama2c MODEL.bin TOK.bin DIR\n"
    "Converts a llama2.c checkpoint (legacy format) and its tokenizer (.bin) into a Hugging\n"
    "Face model directory: config.json, model.safetensors, tokenizer.json.\n"
    "Example: telepathy import-llama2c stories260K.bin tok512.bin models/stories260K\n";

int tp_cmd_import_llama2c(int argc, char **argv, tp_cli_env *env) {
    if (tp_cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *pos[3];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1])
            return tp_cli_usage_error("import-llama2c", "unknown option '%s'", argv[i]);
        if (n == 3)
            return tp_cli_usage_error("import-llama2c", "unexpected argument '%s'", argv[i]);
        pos[n++] = argv[i];
    }
    if (n != 3)
        return tp_cli_usage_error("import-llama2c",
                                  "expected MODEL.bin TOK.bin DIR (got %d "
                                  "argument%s)",
                                  n, n == 1 ? "" : "s");
    tp_err err = {0};
    tp_llama2c_header h;
    if (tp_import_llama2c(pos[0], pos[1], pos[2], &err) != TP_OK ||
        tp_llama2c_read_header(pos[0], &h, &err) != TP_OK)
        return tp_cli_fail("import-llama2c", &err);
    if (!env || !env->quiet)
        fprintf(stderr,
                "import-llama2c: dim %d, %d layers, %d/%d heads, vocab %d, seq_len %d -> %s\n",
                h.dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len, pos[2]);
    return 0;
}
