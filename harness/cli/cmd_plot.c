/* cmd_plot.c — `telepathy plot`: figures from results.db through gnuplot (run/plot.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_store.h"
#include "run/plot.h"

static const char *USAGE =
    "usage: telepathy plot KIND -o FILE.png|svg|pdf [--db PATH] [--experiment NAME]\n"
    "                      [--metric M] [--x KEY] [--series KEY] [--run ID ...] [--split S]\n"
    "                      [--origin harness|study] [--title T]\n"
    "\n"
    "KIND:\n"
    "  scaling   metric vs soft tokens (bridge.options.tokens, log2 axis), a line per series\n"
    "            (default task), mean ± std over seeds: inverse token scaling\n"
    "  layers    metric vs sender layer\n"
    "  xy        metric vs any numeric key given with --x\n"
    "  curve     a logged metric (default train/loss) vs step, a line per run\n"
    "  latency   latency rows as bars (ms per call), one per run, stage and batch\n"
    "Data come straight from results.db; gnuplot (Debian gnuplot-nox) draws the file.\n"
    "  --run ID   curve/latency: only this run (repeat for several)\n";

int tp_cmd_plot(int argc, char **argv, tp_cli_env *env) {
    const char *cmd = "plot";
    if (tp_cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    tp_plot_opts o = {0};
    const char *db = NULL;
    int64_t runs[256];
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if ((v = tp_cli_opt(argc, argv, &i, "--db", &missing)))
            db = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "-o", &missing)) ||
                 (v = tp_cli_opt(argc, argv, &i, "--out", &missing)))
            o.out = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--experiment", &missing)))
            o.experiment = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--metric", &missing)))
            o.metric = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--x", &missing)))
            o.x = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--series", &missing)))
            o.series = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--split", &missing)))
            o.split = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--origin", &missing)))
            o.origin = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--title", &missing)))
            o.title = v;
        else if ((v = tp_cli_opt(argc, argv, &i, "--run", &missing))) {
            char *end;
            long long id = strtoll(v, &end, 10);
            if (end == v || *end || id < 1)
                return tp_cli_usage_error(cmd, "--run: expected a run id, got '%s'", v);
            if (o.n_runs >= 256) return tp_cli_usage_error(cmd, "--run: at most 256 runs");
            runs[o.n_runs++] = id;
        } else if (missing)
            return tp_cli_usage_error(cmd, "option %s needs a value", argv[i]);
        else if (argv[i][0] == '-')
            return tp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        else if (!o.kind)
            o.kind = argv[i];
        else
            return tp_cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    o.runs = runs;
    if (!o.kind)
        return tp_cli_usage_error(cmd, "KIND is required (scaling, layers, xy, curve, latency)");
    if (!o.out) return tp_cli_usage_error(cmd, "-o FILE.png|svg|pdf is required");
    tp_err err = {0};
    tp_store *s;
    if (tp_cli_open_ro(env, db, &s, &err) != TP_OK) return tp_cli_fail(cmd, &err);
    tp_status st = tp_plot(s, &o, &err);
    tp_store_close(s);
    if (st != TP_OK) return tp_cli_fail(cmd, &err);
    printf("wrote %s\n", o.out);
    return 0;
}
