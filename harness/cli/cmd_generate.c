/* cmd_generate.c — `telepathy generate`: load a model directory, tokenize a prompt, decode a
 * continuation (greedy or top-p sampled) and print it, so a person can check a model by eye. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "model/generate.h"
#include "model/model.h"

static const char *USAGE =
    "usage: telepathy generate --model DIR --prompt TEXT [--max-new-tokens N]\n"
    "                          [--greedy | --temperature T --top-p P --seed S]\n"
    "\n"
    "Prints the model's continuation of TEXT (BOS is added as the model's tokenizer does; an\n"
    "empty prompt starts from BOS). Greedy unless --temperature or --top-p is given.\n"
    "  --model DIR           Hugging Face layout: config.json, model.safetensors, tokenizer\n"
    "  --prompt TEXT         the prompt (UTF-8)\n"
    "  --max-new-tokens N    tokens to generate at most (default 32); stops early at EOS\n"
    "  --greedy              argmax decoding (the default)\n"
    "  --temperature T       sampling temperature > 0 (default 1 when sampling)\n"
    "  --top-p P             nucleus sampling mass in (0, 1] (default 1)\n"
    "  --seed S              sampling seed (default 0); the same seed replays exactly\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "--name value" or "--name=value"; advances *i past what it used. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *bad) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != 0) return NULL;
    if (*i + 1 >= argc) {
        *bad = 1;
        return NULL;
    }
    return argv[++*i];
}

static int parse_num(const char *cmd, const char *opt, const char *s, double lo, double hi,
                     double *out) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (!end || end == s || *end || !(v >= lo && v <= hi))
        return tp_cli_usage_error(cmd, "%s: expected a number in [%g, %g], got '%s'", opt, lo, hi,
                                  s);
    *out = v;
    return 0;
}

int tp_cmd_generate(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "generate";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *dir = NULL, *prompt = NULL;
    double max_new = 32, temp = -1, top_p = -1, seed = 0;
    int greedy = 0, sampling = 0;
    for (int i = 1; i < argc; i++) {
        int bad = 0;
        const char *v;
        if ((v = opt_value(argc, argv, &i, "--model", &bad)))
            dir = v;
        else if ((v = opt_value(argc, argv, &i, "--prompt", &bad)))
            prompt = v;
        else if ((v = opt_value(argc, argv, &i, "--max-new-tokens", &bad))) {
            if (parse_num(cmd, "--max-new-tokens", v, 1, 1 << 20, &max_new)) return 2;
        } else if ((v = opt_value(argc, argv, &i, "--temperature", &bad))) {
            if (parse_num(cmd, "--temperature", v, 1e-6, 1e6, &temp)) return 2;
            sampling = 1;
        } else if ((v = opt_value(argc, argv, &i, "--top-p", &bad))) {
            if (parse_num(cmd, "--top-p", v, 1e-9, 1, &top_p)) return 2;
            sampling = 1;
        } else if ((v = opt_value(argc, argv, &i, "--seed", &bad))) {
            if (parse_num(cmd, "--seed", v, 0, 9007199254740992.0, &seed)) return 2;
        } else if (strcmp(argv[i], "--greedy") == 0)
            greedy = 1;
        else if (bad)
            return tp_cli_usage_error(cmd, "%s needs a value", argv[i]);
        else
            return tp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        if (bad) return tp_cli_usage_error(cmd, "%s needs a value", argv[i]);
    }
    if (!dir) return tp_cli_usage_error(cmd, "--model DIR is required");
    if (!prompt) return tp_cli_usage_error(cmd, "--prompt TEXT is required (may be \"\")");
    if (greedy && sampling)
        return tp_cli_usage_error(cmd, "--greedy cannot be combined with --temperature/--top-p");
    if (max_new != (int)max_new)
        return tp_cli_usage_error(cmd, "--max-new-tokens: expected an integer");

    tp_err err = {0};
    tp_model *m = NULL;
    if (tp_model_load(&m, dir, NULL, &err) != TP_OK) return tp_cli_fail(cmd, &err);
    int rc = 0;
    int32_t *ids = NULL;
    char *text = NULL;
    tp_gen_out out = {0};
    int n = 0;
    if (!m->tok) {
        tp_errf(&err, TP_EIO, "%s: no tokenizer.json or tokenizer.model; generate needs one", dir);
        rc = tp_cli_fail(cmd, &err);
        goto done;
    }
    if (tp_tokenizer_encode(m->tok, prompt, 1, &ids, &n, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto done;
    }
    if (n == 0) { /* an empty prompt (and a tokenizer that adds no BOS): start from BOS */
        int bos = tp_tokenizer_bos(m->tok) >= 0 ? tp_tokenizer_bos(m->tok) : m->cfg.bos_token_id;
        if (bos < 0) {
            tp_errf(&err, TP_EINVAL, "%s: empty prompt and the model has no BOS token", dir);
            rc = tp_cli_fail(cmd, &err);
            goto done;
        }
        free(ids);
        ids = malloc(sizeof *ids);
        if (!ids) {
            tp_errf(&err, TP_ENOMEM, "out of memory");
            rc = tp_cli_fail(cmd, &err);
            goto done;
        }
        ids[0] = bos;
        n = 1;
    }
    tp_gen_cfg g = tp_gen_defaults(m);
    g.max_new_tokens = (int)max_new;
    if (tp_tokenizer_eos(m->tok) >= 0 && g.n_eos == 0) {
        g.eos_ids[0] = tp_tokenizer_eos(m->tok);
        g.n_eos = 1;
    }
    if (sampling) {
        g.greedy = 0;
        g.temperature = temp > 0 ? (float)temp : 1.0f;
        g.top_p = top_p > 0 ? (float)top_p : 1.0f;
        g.seed = (uint64_t)seed;
    }
    tp_gen_in in = {1, n, ids, NULL, NULL};
    double t0 = now_s();
    if (tp_generate(m, &in, &g, &out, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto done;
    }
    double dt = now_s() - t0;
    if (tp_tokenizer_decode(m->tok, out.tokens, out.n_tokens[0], 1, &text, &err) != TP_OK) {
        rc = tp_cli_fail(cmd, &err);
        goto done;
    }
    printf("%s\n", text);
    if (!env || !env->quiet)
        fprintf(stderr, "[generate] %d prompt + %d new tokens in %.2f s (%.1f tokens/s)\n", n,
                out.n_tokens[0], dt, dt > 0 ? out.n_tokens[0] / dt : 0.0);
done:
    free(text);
    free(ids);
    tp_gen_out_free(&out);
    tp_model_free(m);
    return rc;
}
