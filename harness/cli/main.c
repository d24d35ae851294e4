/* main.c — `telepathy <subcommand> [options]`: global options, the command table, dispatch, and
 * the lazily loaded configuration and plugin registry every subcommand shares (cli.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "plugin/config.h"
#include "plugin/loader.h"
#include "util/log.h"
#include "util/strutil.h"

const tp_cli_command tp_cli_commands[] = {
    {"run", "run a Lua experiment script (telepathy run script.lua [--set k=v ...])", tp_cmd_run},
    {"ls", "list runs recorded in results.db", tp_cmd_ls},
    {"show", "show one run: config, results, metrics, environment", tp_cmd_show},
    {"db", "results.db maintenance: migrate, check", tp_cmd_db},
    {"generate", "generate text with a model (greedy or sampled)", tp_cmd_generate},
    {"make-tiny", "write a random model in HF layout (the offline demo's models)",
     tp_cmd_make_tiny},
    {"import-llama2c", "convert a llama2.c checkpoint + tokenizer to a Hugging Face model dir",
     tp_cmd_import_llama2c},
    {"tokenize", "show the token ids of a text (or decode ids) with a tokenizer", tp_cmd_tokenize},
    {"plugins", "list the plugins found on the plugin path, with their options", tp_cmd_plugins},
    {"config", "print the resolved configuration and where each value came from", tp_cmd_config},
    {"version", "print versions: harness, plugin ABI, libraries, CUDA", tp_cmd_version},
    {"bench", "time the study's cases on the real shapes (GPU), beside PyTorch + transformers",
     tp_cmd_bench},
    {"table", "a paper table from results.db (md, LaTeX, CSV) with seeds and significance marks",
     tp_cmd_table},
    {"plan", "record a script's configurations as a pending sweep (telepathy plan S.lua --sweep N)",
     tp_cmd_plan},
    {"work", "run a sweep's pending configurations: one worker, or one per GPU (--gpus 0,1)",
     tp_cmd_work},
    {"submit", "submit a sweep as a Slurm job array writing one shard per task", tp_cmd_submit},
    {"merge", "fold Slurm shards into results.db (idempotent, by config hash)", tp_cmd_merge},
    {"status", "a sweep's pending / running / done / failed counts and ETA", tp_cmd_status},
    {"import-preserved", "read the study's preserved result files into results.db (origin study)",
     tp_cmd_import_preserved},
    {"replay", "re-run a stored run from its config and compare old vs new bit for bit",
     tp_cmd_replay},
    {"plot", "figures from results.db through gnuplot: token scaling, layers, curves, latency",
     tp_cmd_plot},
};
const int tp_cli_n_commands = (int)(sizeof tp_cli_commands / sizeof tp_cli_commands[0]);

static void usage(FILE *f) {
    fprintf(f, "usage: telepathy [--config FILE] [--plugin-path DIRS] [-q] <command> [options]\n"
               "\n"
               "commands:\n");
    int w = 0;
    for (int i = 0; i < tp_cli_n_commands; i++)
        if ((int)strlen(tp_cli_commands[i].name) > w) w = (int)strlen(tp_cli_commands[i].name);
    for (int i = 0; i < tp_cli_n_commands; i++)
        fprintf(f, "  %-*s  %s\n", w, tp_cli_commands[i].name, tp_cli_commands[i].help);
    fprintf(f,
            "\n"
            "global options (anywhere before a '--'):\n"
            "  --config FILE       configuration file (else $TELEPATHY_CONFIG, ./telepathy.ini)\n"
            "  --plugin-path DIRS  colon-separated plugin directories (overrides\n"
            "                      $TELEPATHY_PLUGIN_PATH and [paths] plugins)\n"
            "  -q, --quiet         only warnings and errors on stderr\n"
            "  -h, --help          this help; `telepathy <command> --help` for a command\n"
            "\n"
            "exit status: 0 success, 1 the command failed, 2 usage error\n");
}

int tp_cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) return 0;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    }
    return 0;
}

int tp_cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "telepathy %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'telepathy %s --help'.\n", cmd);
    return 2;
}

int tp_cli_fail(const char *cmd, const tp_err *err) {
    fprintf(stderr, "telepathy %s: %s\n", cmd, err && err->msg[0] ? err->msg : "failed");
    return 1;
}

tp_status tp_cli_config(tp_cli_env *env, struct tp_config **out, tp_err *err) {
    if (!env->config) {
        tp_config *c;
        TP_TRY(tp_config_load(env->config_path, &c, err));
        if (env->plugin_path) {
            tp_status st = tp_config_set(c, "paths.plugins", env->plugin_path, TP_ORIGIN_CLI,
                                         "--plugin-path", err);
            if (st != TP_OK) {
                tp_config_free(c);
                return st;
            }
        }
        /* -q wins over the configured level */
        if (!env->quiet) {
            int lvl = tp_log_level_parse(tp_config_get(c, "run.log_level"));
            if (lvl >= 0) tp_log_set_level((tp_log_level)lvl);
        }
        env->config = c;
    }
    *out = env->config;
    return TP_OK;
}

tp_status tp_cli_registry(tp_cli_env *env, struct tp_registry **out, tp_err *err) {
    if (!env->registry) {
        tp_config *c;
        TP_TRY(tp_cli_config(env, &c, err));
        tp_registry *r;
        TP_TRY(tp_registry_new(&r, err));
        tp_status st = tp_registry_scan(r, tp_config_get(c, "paths.plugins"), err);
        if (st != TP_OK) {
            tp_registry_free(r);
            return st;
        }
        env->registry = r;
    }
    *out = env->registry;
    return TP_OK;
}

/* Takes the value of --opt VALUE or --opt=VALUE at argv[*i]; NULL if argv[*i] is not --opt. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt, int *missing) {
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n)) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n]) return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int main(int argc, char **argv) {
    tp_cli_env env = {.argv0 = argv[0]};
    /* global options are removed wherever they are (before "--"); the rest keeps its order */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) {
        fprintf(stderr, "telepathy: out of memory\n");
        return 1;
    }
    int nrest = 0, cmd_at = -1, help = 0, version = 0, passthrough = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;
        if (passthrough) {
            rest[nrest++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            passthrough = 1;
            rest[nrest++] = argv[i];
        } else if ((v = opt_value(argc, argv, &i, "--config", &missing)))
            env.config_path = v;
        else if ((v = opt_value(argc, argv, &i, "--plugin-path", &missing)))
            env.plugin_path = v;
        else if (missing) {
            fprintf(stderr, "telepathy: option %s needs a value\n", a);
            usage(stderr);
            free(rest);
            return 2;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            env.quiet = 1;
        else if (cmd_at < 0 && (!strcmp(a, "-h") || !strcmp(a, "--help")))
            help = 1;
        else if (cmd_at < 0 && !strcmp(a, "--version"))
            version = 1;
        else if (cmd_at < 0 && a[0] == '-') {
            fprintf(stderr, "telepathy: unknown option '%s'\n", a);
            usage(stderr);
            free(rest);
            return 2;
        } else {
            if (cmd_at < 0) cmd_at = nrest;
            rest[nrest++] = argv[i];
        }
    }
    if (env.quiet) tp_log_set_quiet(1);
    int rc;
    if (help && cmd_at < 0) {
        usage(stdout);
        rc = 0;
    } else if (version && cmd_at < 0) {
        char *vargv[] = {"version", NULL};
        rc = tp_cmd_version(1, vargv, &env);
    } else if (cmd_at < 0) {
        usage(stderr);
        rc = 2;
    } else {
        const char *name = rest[cmd_at];
        const tp_cli_command *cmd = NULL;
        const char *names[64];
        for (int i = 0; i < tp_cli_n_commands; i++) {
            names[i] = tp_cli_commands[i].name;
            if (!strcmp(name, tp_cli_commands[i].name)) cmd = &tp_cli_commands[i];
        }
        if (!cmd) {
            const char *hint = tp_suggest(name, names, tp_cli_n_commands);
            fprintf(stderr, "telepathy: unknown command '%s'%s%s%s\n", name,
                    hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
            usage(stderr);
            rc = 2;
        } else {
            rc = cmd->fn(nrest - cmd_at, rest + cmd_at, &env);
        }
    }
    tp_registry_free(env.registry);
    tp_config_free(env.config);
    free(rest);
    return rc;
}
