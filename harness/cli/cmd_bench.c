/* cmd_bench.c — `telepathy bench`: options in, tp_bench_run (run/bench.h) out. Exit codes: 0 all
 * cases ran, 1 a case or the setup failed (message on stderr), 2 usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "run/bench.h"

static void help(void) {
    printf(
        "usage: telepathy bench [options]\n"
        "\n"
        "Times the study's cases on the real shapes (Llama-3.1-8B sender, Mistral-7B receiver,\n"
        "random bf16 weights made on the GPU; Perceiver bridge M=16): sender_encode, bridge,\n"
        "receiver_decode, end_to_end, receiver_direct, text_relay (B <= 8), train_step (B = 8),\n"
        "bridge_graph (ours only), attention (one sender attention op; the peer times cuDNN's\n"
        "fused attention through torch SDPA, and flash/efficient for the record) and\n"
        "decode_token (B <= 8: one generated token of the sender at a cache of seq +\n"
        "relay_tokens/2 keys; ours also prints the bytes read and the bandwidth reached as a\n"
        "share of the device's peak), then runs\n"
        "bench/peer_torch.py (PyTorch + transformers, sdpa) on the same GPU and prints the\n"
        "ratio. Medians of --iters calls after warm-up, CUDA-event timed.\n"
        "\n"
        "options:\n"
        "  --device cuda|cpu     where to run (default cuda; cpu only with --tiny)\n"
        "  --batches LIST        batch sizes (default 1,8,32)\n"
        "  --cases LIST          subset of the cases above (default all)\n"
        "  --layers N            truncate both models to N layers (smoke runs; default 32)\n"
        "  --sender-layer L      sender hidden_states index read (default 31)\n"
        "  --seq N --soft M --relay-tokens N   shapes (defaults 67, 16, 50)\n"
        "  --iters N --warmup N  timed calls and warm-up calls per case (defaults 10, 2)\n"
        "  --tiny                tiny widths (a smoke test of the command itself)\n"
        "  --db FILE             record the latency rows in this results.db\n"
        "  --json FILE --md FILE write the joint table as JSON / markdown\n"
        "  --peer FILE           peer script (default: none; e.g. bench/peer_torch.py)\n"
        "  --python EXE          interpreter for the peer (default python3)\n"
        "  --peer-compile        also time torch.compile (reduce-overhead) at batch 1\n"
        "  --deadline S          end within S seconds: the peer is stopped at the deadline and\n"
        "                        the rows it wrote by then are kept (default: no limit)\n"
        "  --train-precision P   train_step's bridge params: bf16 (default; the study's and the\n"
        "                        peer's pure-bf16 training: bf16 params and AdamW moments, f32\n"
        "                        grads) or f32 (f32 master weights and moments, a bf16 cast of\n"
        "                        the weights each step on the GPU)\n"
        "  --seed N              weight / input seed (default 1234)\n");
}

static int num(const char *cmd, const char *opt, const char *v, int lo, int *out) {
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > 1000000) {
        tp_cli_usage_error(cmd, "%s: expected an integer >= %d, got '%s'", opt, lo, v);
        return 0;
    }
    *out = (int)x;
    return 1;
}

int tp_cmd_bench(int argc, char **argv, tp_cli_env *env) {
    (void)env;
    if (tp_cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    tp_bench_opts o;
    tp_bench_defaults(&o);
    o.peer = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--tiny")) {
            o.tiny = 1;
            continue;
        }
        if (!strcmp(a, "--peer-compile")) {
            o.peer_compile = 1;
            continue;
        }
        static const char *const known[] = {"--device", "--batches",      "--cases",
                                            "--layers", "--sender-layer", "--seq",
                                            "--soft",   "--relay-tokens", "--iters",
                                            "--warmup", "--db",           "--json",
                                            "--md",     "--peer",         "--python",
                                            "--seed",   "--deadline",     "--train-precision"};
        int is_known = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            is_known |= !strcmp(a, known[k]);
        if (!is_known) return tp_cli_usage_error("bench", "unknown option '%s'", a);
        if (i + 1 >= argc) return tp_cli_usage_error("bench", "option '%s' needs a value", a);
        const char *v = argv[++i];
        int ok = 1, n = 0;
        if (!strcmp(a, "--device")) {
            if (!strcmp(v, "cuda"))
                o.device = TP_CUDA;
            else if (!strcmp(v, "cpu"))
                o.device = TP_CPU;
            else
                return tp_cli_usage_error("bench", "--device: expected cuda or cpu, got '%s'", v);
        } else if (!strcmp(a, "--batches")) {
            o.batches = v;
        } else if (!strcmp(a, "--cases")) {
            o.cases = v;
        } else if (!strcmp(a, "--layers")) {
            ok = num("bench", a, v, 0, &o.layers);
        } else if (!strcmp(a, "--sender-layer")) {
            ok = num("bench", a, v, 0, &o.sender_layer);
        } else if (!strcmp(a, "--seq")) {
            ok = num("bench", a, v, 5, &o.seq);
        } else if (!strcmp(a, "--soft")) {
            ok = num("bench", a, v, 1, &o.soft);
        } else if (!strcmp(a, "--relay-tokens")) {
            ok = num("bench", a, v, 1, &o.relay_tokens);
        } else if (!strcmp(a, "--iters")) {
            ok = num("bench", a, v, 1, &o.iters);
        } else if (!strcmp(a, "--warmup")) {
            ok = num("bench", a, v, 0, &o.warmup);
        } else if (!strcmp(a, "--db")) {
            o.db = v;
        } else if (!strcmp(a, "--json")) {
            o.json_out = v;
        } else if (!strcmp(a, "--md")) {
            o.md_out = v;
        } else if (!strcmp(a, "--peer")) {
            o.peer = v;
        } else if (!strcmp(a, "--python")) {
            o.python = v;
        } else if (!strcmp(a, "--train-precision")) {
            if (!strcmp(v, "bf16"))
                o.train_dtype = TP_BF16;
            else if (!strcmp(v, "f32"))
                o.train_dtype = TP_F32;
            else
                return tp_cli_usage_error("bench",
                                          "--train-precision: expected bf16 or f32, got '%s'", v);
        } else if (!strcmp(a, "--deadline")) {
            ok = num("bench", a, v, 1, &o.deadline_s);
        } else if (!strcmp(a, "--seed")) {
            ok = num("bench", a, v, 0, &n);
            o.seed = (uint64_t)n;
        } else {
            return tp_cli_usage_error("bench", "unknown option '%s'", a);
        }
        if (!ok) return 2;
    }
    for (const char *p = o.batches; *p; p++)
        if (!(*p >= '0' && *p <= '9') && *p != ',')
            return tp_cli_usage_error("bench", "--batches: expected a list like 1,8,32, got '%s'",
                                      o.batches);
    if (o.device == TP_CPU && !o.tiny)
        return tp_cli_usage_error("bench", "--device cpu needs --tiny (8B models on the CPU would "
                                           "take hours)");
    tp_err err = {0};
    if (tp_bench_run(&o, &err) != TP_OK) {
        fprintf(stderr, "telepathy bench: %s\n", err.msg);
        return 1;
    }
    return 0;
}
