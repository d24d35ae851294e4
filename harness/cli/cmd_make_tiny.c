/* cmd_make_tiny.c — `telepathy make-tiny DIR --arch llama|mistral|qwen2 --seed N [--shape NAME]`:
 * writes a random model in Hugging Face layout (see model/make_tiny.h for the shapes). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/make_tiny.h"

static const char *usage =
    "usage: telepathy make-tiny DIR --arch llama|mistral|qwen2 --seed N [--shape NAME]\n"
    "Writes a random model in Hugging Face layout (config.json, model.safetensors,\n"
    "tokenizer.json) to DIR. Weights are N(0, 0.02) from a seeded Philox stream: the same\n"
    "arch, seed and shape give the same bytes.\n"
    "  --arch A      llama | mistral | qwen2\n"
    "  --seed N      unsigned integer seed\n"
    "  --shape NAME  tiny (default; f32) | tiny-bf16 | llama-3.1-8b | llama-1b | mistral-7b\n"
    "                (bf16, real dimensions, written streaming); append :L to keep L layers\n";

int tp_cmd_make_tiny(int argc, char **argv, tp_cli_env *env) {
    (void)env;
    if (tp_cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *dir = NULL, *arch = NULL, *shape = NULL, *seed_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--arch") == 0    ? &arch
                            : strcmp(a, "--seed") == 0  ? &seed_s
                            : strcmp(a, "--shape") == 0 ? &shape
                                                        : NULL;
        if (slot) {
            if (i + 1 >= argc) return tp_cli_usage_error("make-tiny", "%s needs a value", a);
            *slot = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return tp_cli_usage_error("make-tiny", "unknown option '%s'", a);
        } else if (!dir) {
            dir = a;
        } else {
            return tp_cli_usage_error("make-tiny", "unexpected argument '%s' (DIR is '%s')", a,
                                      dir);
        }
    }
    if (!dir) return tp_cli_usage_error("make-tiny", "missing DIR");
    if (!arch) return tp_cli_usage_error("make-tiny", "missing --arch llama|mistral|qwen2");
    if (!seed_s) return tp_cli_usage_error("make-tiny", "missing --seed N");
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(seed_s, &end, 10);
    if (errno || *end || !seed_s[0] || seed_s[0] == '-')
        return tp_cli_usage_error("make-tiny", "--seed '%s': expected an unsigned integer", seed_s);
    tp_err err = {0};
    if (tp_make_tiny(dir, arch, (uint64_t)seed, shape, &err) != TP_OK)
        return tp_cli_fail("make-tiny", &err);
    if (!env || !env->quiet)
        fprintf(stderr, "make-tiny: wrote %s model (shape %s, seed %llu) to %s\n", arch,
                shape ? shape : "tiny", seed, dir);
    return 0;
}
